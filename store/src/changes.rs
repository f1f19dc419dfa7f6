//! What the DB writer commits: one type per kind of change, gathered by kind into a [`Batch`]
//! that one transaction writes, and answered by kind in [`Outcomes`]. [`Change`] ties each kind to
//! its place in both and to the one type it answers, so a caller of the writer gets exactly its
//! own kind's answer and nothing else can come back.

use crate::domain::{
    Amount, BankToken, Currency, DepositId, PayoutId, ProviderSub, SessionHash, Settlement,
    TransferId, UserId, WithdrawalId,
};
use crate::{Balance, Counterparty};
use std::fmt::Debug;

/// Finds the user behind `(provider, sub)` (refreshing the profile) or creates the user, its
/// wallet and the account. Answers the user's id.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub provider: crate::domain::Provider,
    pub sub: ProviderSub,
    pub email: String,
    /// Whether the provider vouched for `email`: only then can others find the user by it.
    pub email_verified: bool,
    pub name: String,
    pub picture: String,
    pub now: i64,
}

/// Records a processing deposit. With an idempotency key still held by another deposit of the
/// same user created after `key_cutoff`, nothing is written ([`DepositInsert::KeyTaken`]); an
/// older holder gives the key up.
#[derive(Debug, Clone)]
pub struct NewDeposit {
    pub id: DepositId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub idempotency_key: Option<String>,
    pub key_cutoff: i64,
    pub now: i64,
    /// When reconciliation first asks the bank about it, unless its webhook came first.
    pub first_check_at: i64,
}

/// What [`NewDeposit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepositInsert {
    Inserted,
    /// Another deposit of the user holds the key: nothing was written.
    KeyTaken,
}

/// Stores the bank's order (token and pay URL) with its deposit.
#[derive(Debug, Clone)]
pub struct AttachOrder {
    pub deposit_id: DepositId,
    pub token: BankToken,
    pub pay_url: String,
    pub now: i64,
}

/// Moves a processing deposit to its final state; a success also credits the wallet and
/// appends a ledger entry. A deposit no longer processing is left alone
/// ([`SettleResult::NotProcessing`]).
#[derive(Debug, Clone)]
pub struct SettleDeposit {
    pub deposit_id: DepositId,
    pub user_id: UserId,
    pub amount: Amount,
    pub outcome: Settlement,
    pub now: i64,
}

/// What [`SettleDeposit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleResult {
    /// Applied; a credit answers the wallet's balance right after it.
    Applied(Option<Balance>),
    /// The deposit was no longer processing: nothing changed.
    NotProcessing,
}

/// Moves `amount` from one user's wallet to another's: the transfer row and its ledger entry,
/// both accounts' balances changed together. The sender's wallet actor reserved the amount, so
/// the database's refusal of a negative balance is only the last line of defence. An
/// idempotency key held by another transfer of the sender created after `key_cutoff` writes
/// nothing ([`TransferResult::KeyTaken`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewTransfer {
    pub id: TransferId,
    pub from: UserId,
    pub to: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub idempotency_key: Option<String>,
    pub key_cutoff: i64,
    pub now: i64,
    /// The recipient as the answer names them (its `to`), kept with the transfer: the same
    /// request given again with its key answers the same.
    pub recipient: Counterparty,
}

/// What [`NewTransfer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransferResult {
    /// Committed: the sender's and the recipient's balances after the batch that carried it.
    Applied { from: Balance, to: Balance },
    /// Another transfer of the sender holds the key: nothing was written.
    KeyTaken,
}

/// Takes `amount` out of a user's wallet for a payout to their bank: the withdrawal row
/// (`processing`), its row in reconciliation's schedule, and its ledger entry from the wallet to
/// `payouts_in_flight`. The user's wallet actor reserved the amount, so the database's refusal
/// of a negative balance is only the last line of defence. An idempotency key held by another
/// withdrawal of the user created after `key_cutoff` writes nothing
/// ([`WithdrawalResult::KeyTaken`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewWithdrawal {
    pub id: WithdrawalId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub idempotency_key: Option<String>,
    pub key_cutoff: i64,
    pub now: i64,
    /// When reconciliation first asks the bank about its payout, unless its webhook came first.
    pub first_check_at: i64,
}

/// What [`NewWithdrawal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WithdrawalResult {
    /// Committed: the wallet's balance after the batch that carried it.
    Applied(Balance),
    /// Another withdrawal of the user holds the key: nothing was written.
    KeyTaken,
}

/// Stores the bank's payout id with its withdrawal.
#[derive(Debug, Clone)]
pub struct AttachPayout {
    pub withdrawal_id: WithdrawalId,
    pub payout_id: PayoutId,
    /// The bank's answer to the withdrawal's own request (its first answer is then `201`), not
    /// to reconciliation or a webhook.
    pub answers_request: bool,
    pub now: i64,
}

/// Moves a processing withdrawal to its final state as its payout ended: a success moves the
/// amount on from `payouts_in_flight` to `bank_clearing` (entry `payout`); a failure returns it
/// to the wallet (entry `payout_return`) and answers the wallet's balance after it. The user and
/// amount are the withdrawal row's own. A withdrawal no longer processing is left alone
/// ([`SettleResult::NotProcessing`]).
#[derive(Debug, Clone)]
pub struct SettlePayout {
    pub withdrawal_id: WithdrawalId,
    pub user_id: UserId,
    pub amount: Amount,
    pub outcome: Settlement,
    /// The bank refused the withdrawal's own request (its first answer is then
    /// `502 bank_refused`): recorded with the failure, when it applies.
    pub refused_request: bool,
    pub now: i64,
}

/// Moves a withdrawal's next check from `due_at` to `next_check_at`, counting one more check.
#[derive(Debug, Clone)]
pub struct ScheduleWithdrawalCheck {
    pub withdrawal_id: WithdrawalId,
    pub due_at: i64,
    pub next_check_at: i64,
}

/// Drops the schedule of a withdrawal that is settled (read with `due_at`).
#[derive(Debug, Clone)]
pub struct ForgetPendingWithdrawal {
    pub withdrawal_id: WithdrawalId,
    pub due_at: i64,
}

/// A new session, keyed by the hash of its token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub hash: SessionHash,
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A session used at `last_seen_at` (its idle timer renewed; an earlier time changes nothing).
#[derive(Debug, Clone)]
pub struct TouchSession {
    pub hash: SessionHash,
    pub last_seen_at: i64,
}

/// A session ended (logout, or found expired).
#[derive(Debug, Clone)]
pub struct EndSession {
    pub hash: SessionHash,
}

/// Deletes the sessions past their absolute expiry or idle for longer than `idle_ms`, and the
/// sign-in states past theirs.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    pub now: i64,
    pub idle_ms: i64,
}

/// Moves a deposit's next check from `due_at` (the time [`crate::Store::due_deposits`] read; it
/// finds the row) to `next_check_at`, counting one more check.
#[derive(Debug, Clone)]
pub struct ScheduleCheck {
    pub deposit_id: DepositId,
    pub due_at: i64,
    pub next_check_at: i64,
}

/// Drops the schedule of a deposit that is settled (read with `due_at`).
#[derive(Debug, Clone)]
pub struct ForgetPending {
    pub deposit_id: DepositId,
    pub due_at: i64,
}

/// A sign-in's state that reached the callback, recorded so that it is refused if it comes
/// again (a state is single-use), until `expires_at`, past which its sealed cookie is refused
/// anyway. `hash` is the SHA-256 of the state, in hex.
#[derive(Debug, Clone)]
pub struct UseSignInState {
    pub hash: String,
    pub expires_at: i64,
}

/// What [`UseSignInState`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateUse {
    /// The first time: the sign-in may go on.
    Fresh,
    /// The state reached the callback before: refuse it.
    Used,
}

/// The changes of one group commit, by kind. The kinds are written in a fixed order (accounts,
/// deposits, bank orders, sessions, schedules, transfers, withdrawals, settlements), not in the
/// order they were queued: that is the same thing, since every change in one batch was queued
/// before any of them committed, so none was made in answer to another.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub accounts: Vec<NewAccount>,
    pub deposits: Vec<NewDeposit>,
    pub orders: Vec<AttachOrder>,
    pub new_sessions: Vec<NewSession>,
    pub touches: Vec<TouchSession>,
    pub ended_sessions: Vec<EndSession>,
    pub purges: Vec<Purge>,
    pub settlements: Vec<SettleDeposit>,
    pub transfers: Vec<NewTransfer>,
    pub checks: Vec<ScheduleCheck>,
    pub forgets: Vec<ForgetPending>,
    pub sign_in_states: Vec<UseSignInState>,
    pub withdrawals: Vec<NewWithdrawal>,
    pub payouts: Vec<AttachPayout>,
    pub payout_settlements: Vec<SettlePayout>,
    pub withdrawal_checks: Vec<ScheduleWithdrawalCheck>,
    pub withdrawal_forgets: Vec<ForgetPendingWithdrawal>,
    /// The shard leases its wallet changes were made under, when several processes share the
    /// database: the batch is committed only if its process still holds every one of them.
    pub fence: Option<Fence>,
}

/// Leases a batch must still hold to commit: `node` must own each `(shard, epoch)`. Checked in
/// the batch's own transaction, with the shards' locks held (shared) until its COMMIT, so a
/// takeover is either before the check (the batch writes nothing) or after the commit (the
/// new owner reads what it wrote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub held: Vec<(i32, i64)>,
}

impl Batch {
    /// Every user whose wallet account a ledger posting of this batch may change.
    pub fn posting_users(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self
            .settlements
            .iter()
            .map(|s| s.user_id)
            .chain(self.transfers.iter().flat_map(|t| [t.from, t.to]))
            .chain(self.withdrawals.iter().map(|w| w.user_id))
            .chain(self.payout_settlements.iter().map(|p| p.user_id))
            .collect();
        users.sort();
        users.dedup();
        users
    }
}

/// What a batch answered, by kind: one answer per change of that kind, in the batch's order.
/// Kinds that answer nothing but "done" have no list here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub accounts: Vec<UserId>,
    pub deposits: Vec<DepositInsert>,
    pub settlements: Vec<SettleResult>,
    pub transfers: Vec<TransferResult>,
    pub sign_in_states: Vec<StateUse>,
    pub withdrawals: Vec<WithdrawalResult>,
    pub payout_settlements: Vec<SettleResult>,
}

impl Outcomes {
    /// Whether there is one answer for each change of `batch` that answers something.
    pub fn answer(&self, batch: &Batch) -> bool {
        self.accounts.len() == batch.accounts.len()
            && self.deposits.len() == batch.deposits.len()
            && self.settlements.len() == batch.settlements.len()
            && self.transfers.len() == batch.transfers.len()
            && self.sign_in_states.len() == batch.sign_in_states.len()
            && self.withdrawals.len() == batch.withdrawals.len()
            && self.payout_settlements.len() == batch.payout_settlements.len()
    }
}

/// One kind of change: where it goes in a [`Batch`], and what it answers from [`Outcomes`].
pub trait Change: Debug + Clone + Send + Sync + 'static {
    /// What a change of this kind answers once committed.
    type Answer: Debug + Clone + Send + 'static;

    /// This kind's changes in `batch`.
    fn lane(batch: &Batch) -> &Vec<Self>;
    fn lane_mut(batch: &mut Batch) -> &mut Vec<Self>;
    /// The answer to this kind's `index`-th change (`None` only if the store answered fewer
    /// than it was given, which [`Outcomes::answer`] rules out).
    fn answer(outcomes: &Outcomes, index: usize) -> Option<Self::Answer>;
    /// Whether `answer`, given to this change committed alone after its batch failed, may be
    /// that failed batch's own doing: a batch whose COMMIT was sent and whose connection then
    /// broke may have committed all the same, and a change that finds its own trace (its key
    /// taken, its deposit settled) cannot tell that from another's. Such an answer is reported
    /// as unsure rather than as what it seems.
    fn unsure_after_failed_batch(_answer: &Self::Answer) -> bool {
        false
    }
}

impl Batch {
    /// A batch of one change.
    pub fn of<C: Change>(change: C) -> Batch {
        let mut batch = Batch::default();
        batch.add(change);
        batch
    }

    /// Adds `change` at the end of its kind; answers its index there.
    pub fn add<C: Change>(&mut self, change: C) -> usize {
        let lane = C::lane_mut(self);
        lane.push(change);
        lane.len() - 1
    }

    /// Changes in the batch, of every kind.
    pub fn len(&self) -> usize {
        self.accounts.len()
            + self.deposits.len()
            + self.orders.len()
            + self.new_sessions.len()
            + self.touches.len()
            + self.ended_sessions.len()
            + self.purges.len()
            + self.settlements.len()
            + self.transfers.len()
            + self.checks.len()
            + self.forgets.len()
            + self.sign_in_states.len()
            + self.withdrawals.len()
            + self.payouts.len()
            + self.payout_settlements.len()
            + self.withdrawal_checks.len()
            + self.withdrawal_forgets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `impl Change` for a kind: its list in [`Batch`] and, for kinds that answer something, its
/// list in [`Outcomes`].
macro_rules! change {
    ($kind:ty, $lane:ident) => {
        impl Change for $kind {
            type Answer = ();
            fn lane(batch: &Batch) -> &Vec<Self> {
                &batch.$lane
            }
            fn lane_mut(batch: &mut Batch) -> &mut Vec<Self> {
                &mut batch.$lane
            }
            fn answer(_: &Outcomes, _: usize) -> Option<()> {
                Some(())
            }
        }
    };
    ($kind:ty, $lane:ident => $answer:ty $(, unsure: $unsure:pat)?) => {
        impl Change for $kind {
            type Answer = $answer;
            fn lane(batch: &Batch) -> &Vec<Self> {
                &batch.$lane
            }
            fn lane_mut(batch: &mut Batch) -> &mut Vec<Self> {
                &mut batch.$lane
            }
            fn answer(outcomes: &Outcomes, index: usize) -> Option<$answer> {
                outcomes.$lane.get(index).cloned()
            }
            $(fn unsure_after_failed_batch(answer: &$answer) -> bool {
                matches!(answer, $unsure)
            })?
        }
    };
}

change!(NewAccount, accounts => UserId);
change!(NewDeposit, deposits => DepositInsert);
change!(AttachOrder, orders);
change!(NewSession, new_sessions);
change!(TouchSession, touches);
change!(EndSession, ended_sessions);
change!(Purge, purges);
// Its own settlement may have landed in the failed batch: the deposit is no longer processing.
change!(SettleDeposit, settlements => SettleResult, unsure: SettleResult::NotProcessing);
// Its own row may hold the key.
change!(NewTransfer, transfers => TransferResult, unsure: TransferResult::KeyTaken);
change!(ScheduleCheck, checks);
change!(ForgetPending, forgets);
// Its own record may be the one found.
change!(UseSignInState, sign_in_states => StateUse, unsure: StateUse::Used);
// Its own row may hold the key.
change!(NewWithdrawal, withdrawals => WithdrawalResult, unsure: WithdrawalResult::KeyTaken);
change!(AttachPayout, payouts);
// Its own settlement may have landed in the failed batch.
change!(SettlePayout, payout_settlements => SettleResult, unsure: SettleResult::NotProcessing);
change!(ScheduleWithdrawalCheck, withdrawal_checks);
change!(ForgetPendingWithdrawal, withdrawal_forgets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_added_to_its_own_kind_and_answered_from_it() {
        let mut batch = Batch::default();
        let end = |h: &str| EndSession {
            hash: SessionHash::from_stored(h.into()),
        };
        assert_eq!(batch.add(end("a")), 0);
        assert_eq!(batch.add(end("b")), 1);
        let state = UseSignInState {
            hash: "h".into(),
            expires_at: 1,
        };
        assert_eq!(batch.add(state), 0);
        assert_eq!((batch.len(), batch.ended_sessions.len()), (3, 2));
        let outcomes = Outcomes {
            sign_in_states: vec![StateUse::Used],
            ..Outcomes::default()
        };
        assert!(outcomes.answer(&batch));
        assert_eq!(UseSignInState::answer(&outcomes, 0), Some(StateUse::Used));
        assert_eq!(EndSession::answer(&outcomes, 1), Some(()));
        assert!(!Outcomes::default().answer(&batch), "an answer is missing");
        assert!(UseSignInState::unsure_after_failed_batch(&StateUse::Used));
        assert!(!UseSignInState::unsure_after_failed_batch(&StateUse::Fresh));
        assert!(!NewAccount::unsure_after_failed_batch(&UserId::new()));
    }
}
