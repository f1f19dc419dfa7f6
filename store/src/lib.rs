//! onramp's storage: one trait, one implementation per database (SQLite and PostgreSQL),
//! chosen by the URL's scheme, each with its own migrations (`migrations/sqlite`,
//! `migrations/postgres`) kept at parity. Reads run concurrently on a pool; every change goes
//! through [`Store::commit`], which the DB writer calls with many changes at once (group
//! commit, [`changes`]). The domain types live here too: storage is where they are parsed back.

pub mod domain;

pub mod audit;
mod batch;
pub mod changes;
pub mod cluster;
pub mod lock;
mod postgres;
pub mod preload;
mod reads;
mod redact;
mod sqlite;

use crate::domain::{
    Amount, BankToken, Currency, DepositId, DepositStatus, EmailKey, FirstAnswer, PayoutId,
    SessionHash, TransferId, UserId, WithdrawalId, WithdrawalStatus,
};
use async_trait::async_trait;
use std::sync::Arc;

pub use changes::{
    AttachOrder, AttachPayout, Batch, Change, DepositInsert, EndSession, Fence, ForgetPending,
    ForgetPendingWithdrawal, NewAccount, NewDeposit, NewSession, NewTransfer, NewWithdrawal,
    Outcomes, Purge, ScheduleCheck, ScheduleWithdrawalCheck, SettleDeposit, SettlePayout,
    SettleResult, StateUse, TouchSession, TransferResult, UseSignInState, WithdrawalResult,
};
pub use postgres::PgStore;
pub use redact::redact_url;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The batch's process no longer holds every lease it was made under: nothing was
    /// written. `held` lists the (shard, epoch) of its fence that it does still hold.
    #[error("the batch's process no longer owns every wallet it changes")]
    Fenced { held: Vec<(i32, i64)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    /// The email others can find this user by: set when the provider said it is verified.
    pub email_key: Option<EmailKey>,
    pub name: String,
    pub picture: String,
}

/// How far before its `since` [`Store::ended_sessions_since`] looks: a logout committed up to
/// this long after its clock time (a batch takes milliseconds) is still listed.
pub const ENDED_SESSIONS_MARGIN_MS: i64 = 5_000;
/// How long a logout stays listed (the logout statement drops older rows): a reader whose last
/// read is older than this, less the margin, may have missed some ([`EndedSessions`]).
pub const ENDED_SESSIONS_KEPT_MS: i64 = 60_000;

/// What [`Store::ended_sessions_since`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndedSessions {
    /// The sessions logged out since the `since` asked for (less the margin).
    pub hashes: Vec<SessionHash>,
    /// The database's clock when it read them (ms since the epoch): the next read's `since`.
    pub read_at: i64,
    /// Whether every living process of the service lists its logouts. A process of an earlier
    /// release does not (it only deletes the session), so while one lives the list cannot stand
    /// in for reading each session again.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user_id: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub id: DepositId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub status: DepositStatus,
    pub bank_token: Option<String>,
    pub pay_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A transfer as stored (a stored transfer is always complete: it is written with its entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub from: UserId,
    pub to: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub created_at: i64,
}

/// Someone on the other side of a transfer, as the history shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counterparty {
    pub name: String,
    pub email: String,
}

/// A transfer found by its sender's idempotency key, with the recipient as its answer named
/// them then (whatever name and email they have signed in with since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedTransfer {
    pub transfer: Transfer,
    pub recipient: Counterparty,
}

/// A withdrawal as stored: `processing` until its payout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: WithdrawalId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
    pub status: WithdrawalStatus,
    /// The bank's id for its payout, once the bank answered.
    pub payout_id: Option<String>,
    /// What its own request answered, when the bank answered that request (not read by the
    /// history, where it is `None`).
    pub first_answer: Option<FirstAnswer>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A withdrawal whose payout check is due: the withdrawal as stored, the checks made so far, and
/// the time it was due (the schedule row's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWithdrawal {
    pub withdrawal: Withdrawal,
    pub checks: u32,
    pub due_at: i64,
}

/// One line of a user's history, newest first: their deposits, withdrawals, and transfers both
/// ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryItem {
    Deposit(Deposit),
    Withdrawal(Withdrawal),
    TransferOut(Transfer, Counterparty),
    TransferIn(Transfer, Counterparty),
}

impl HistoryItem {
    /// The item's place in the order of the history: `(created_at, id)`, newest first.
    pub fn key(&self) -> (i64, &str) {
        match self {
            HistoryItem::Deposit(d) => (d.created_at, d.id.as_str()),
            HistoryItem::Withdrawal(w) => (w.created_at, w.id.as_str()),
            HistoryItem::TransferOut(t, _) | HistoryItem::TransferIn(t, _) => {
                (t.created_at, t.id.as_str())
            }
        }
    }
}

/// A wallet's committed balance and the id of the last ledger entry it includes (0 before the
/// first). Entry ids grow in commit order, so of two readings the one with the later entry is
/// the newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Balance {
    pub paise: i64,
    pub entry: i64,
}

/// A deposit whose check is due: the deposit as stored, the checks made so far, and the time
/// it was due (the schedule row's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub deposit: Deposit,
    pub checks: u32,
    pub due_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingSummary {
    pub pending: i64,
    pub due: i64,
    pub oldest_created_at: Option<i64>,
}

/// A user's wallet account as the ledger has it: its entries, the sum they add up to (credits
/// minus debits), and the balance kept on the account row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerTotals {
    pub entries: i64,
    pub sum: i64,
    pub balance: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Writes `batch` in one transaction and answers each change that answers something
    /// ([`Outcomes`]), by kind and in the batch's order.
    async fn commit(&self, batch: &Batch) -> Result<Outcomes, StoreError>;

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// [`Store::user`] for many ids in one query: the users found, in no order.
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
    async fn session(&self, hash: &SessionHash) -> Result<Option<SessionRow>, StoreError>;
    /// The sessions logged out by any process of the service since `since` (the `read_at` of
    /// the last read; `None`: the last [`ENDED_SESSIONS_KEPT_MS`]), less
    /// [`ENDED_SESSIONS_MARGIN_MS`]: how each process keeps the sessions it caches in step with
    /// the others' logouts, with one read for all of them instead of one per use. SQLite serves
    /// one process, and answers none.
    async fn ended_sessions_since(&self, since: Option<i64>) -> Result<EndedSessions, StoreError>;
    /// The committed balance; 0 for a user without a wallet row.
    async fn balance(&self, user: UserId) -> Result<Balance, StoreError>;
    async fn deposit(&self, id: &DepositId) -> Result<Option<Deposit>, StoreError>;
    async fn deposit_by_token(&self, token: &BankToken) -> Result<Option<Deposit>, StoreError>;
    async fn deposit_by_key(&self, user: UserId, key: &str) -> Result<Option<Deposit>, StoreError>;
    async fn transfer_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<KeyedTransfer>, StoreError>;
    /// The user who most recently signed in with this verified email.
    async fn user_by_email(&self, email: &EmailKey) -> Result<Option<User>, StoreError>;
    /// [`Store::user_by_email`] for many emails in one query: for each email someone signed in
    /// with, that user (whose `email_key` is the email), in no order.
    async fn users_by_email(&self, emails: &[EmailKey]) -> Result<Vec<User>, StoreError>;
    /// The user's deposits and transfers, newest first; `before` is the `(created_at, id)` of
    /// the last item of the previous page.
    async fn history_page(
        &self,
        user: UserId,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<HistoryItem>, StoreError>;
    /// The scheduled deposits whose next check is due at `now`, soonest due first. Settled ones
    /// among them are for [`ForgetPending`].
    async fn due_deposits(&self, now: i64, limit: u32) -> Result<Vec<Due>, StoreError>;
    async fn withdrawal(&self, id: &WithdrawalId) -> Result<Option<Withdrawal>, StoreError>;
    async fn withdrawal_by_payout(
        &self,
        payout: &PayoutId,
    ) -> Result<Option<Withdrawal>, StoreError>;
    async fn withdrawal_by_key(
        &self,
        user: UserId,
        key: &str,
    ) -> Result<Option<Withdrawal>, StoreError>;
    /// The scheduled withdrawals whose payout check is due at `now`, soonest due first.
    /// Settled ones among them are for [`ForgetPendingWithdrawal`].
    async fn due_withdrawals(&self, now: i64, limit: u32)
        -> Result<Vec<DueWithdrawal>, StoreError>;
    /// How many deposits wait for the bank, how many of them are due at `now`, and when the
    /// oldest was created.
    async fn pending_summary(&self, now: i64) -> Result<PendingSummary, StoreError>;
    /// The user's wallet account in the ledger, for checking the books.
    async fn ledger_totals(&self, user: UserId) -> Result<LedgerTotals, StoreError>;
    /// Checks the whole ledger in one consistent snapshot (`onramp audit`).
    async fn audit(&self) -> Result<audit::Report, StoreError>;
}

/// Opens the database named by `url` (creating a SQLite file and its folder if needed) and
/// runs its migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// The raw row both backends read deposits into.
#[derive(sqlx::FromRow)]
struct DepositRow {
    id: String,
    user_id: String,
    amount: i64,
    currency: String,
    status: String,
    bank_token: Option<String>,
    pay_url: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DepositRow> for Deposit {
    type Error = StoreError;
    fn try_from(r: DepositRow) -> Result<Self, StoreError> {
        Ok(Deposit {
            id: DepositId::parse(&r.id).map_err(StoreError::Corrupt)?,
            user_id: UserId::parse(&r.user_id).map_err(StoreError::Corrupt)?,
            amount: Amount::from_stored(r.amount),
            currency: Currency::parse(&r.currency)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            status: DepositStatus::parse(&r.status).map_err(StoreError::Corrupt)?,
            bank_token: r.bank_token,
            pay_url: r.pay_url,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The raw row both backends read withdrawals into.
#[derive(sqlx::FromRow)]
struct WithdrawalRow {
    id: String,
    user_id: String,
    amount: i64,
    currency: String,
    status: String,
    payout_id: Option<String>,
    first_answer: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<WithdrawalRow> for Withdrawal {
    type Error = StoreError;
    fn try_from(r: WithdrawalRow) -> Result<Self, StoreError> {
        Ok(Withdrawal {
            id: WithdrawalId::parse(&r.id).map_err(StoreError::Corrupt)?,
            user_id: UserId::parse(&r.user_id).map_err(StoreError::Corrupt)?,
            amount: Amount::from_stored(r.amount),
            currency: Currency::parse(&r.currency)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            status: WithdrawalStatus::parse(&r.status).map_err(StoreError::Corrupt)?,
            payout_id: r.payout_id,
            first_answer: (r.first_answer.as_deref())
                .map(FirstAnswer::parse)
                .transpose()
                .map_err(StoreError::Corrupt)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    email: String,
    email_key: Option<String>,
    name: String,
    picture: String,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::parse(&r.id).map_err(StoreError::Corrupt)?,
            email: r.email,
            email_key: r.email_key.as_deref().map(EmailKey::of),
            name: r.name,
            picture: r.picture,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SessionDbRow {
    user_id: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
}

impl TryFrom<SessionDbRow> for SessionRow {
    type Error = StoreError;
    fn try_from(r: SessionDbRow) -> Result<Self, StoreError> {
        Ok(SessionRow {
            user_id: UserId::parse(&r.user_id).map_err(StoreError::Corrupt)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_seen_at: r.last_seen_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: String,
    from_user: String,
    to_user: String,
    amount: i64,
    currency: String,
    created_at: i64,
}

/// One row of `reads::TRANSFER_BY_KEY`.
#[derive(sqlx::FromRow)]
struct KeyedTransferRow {
    #[sqlx(flatten)]
    transfer: TransferRow,
    to_name: String,
    to_email: String,
}

impl TryFrom<KeyedTransferRow> for KeyedTransfer {
    type Error = StoreError;
    fn try_from(r: KeyedTransferRow) -> Result<Self, StoreError> {
        Ok(KeyedTransfer {
            transfer: r.transfer.try_into()?,
            recipient: Counterparty {
                name: r.to_name,
                email: r.to_email,
            },
        })
    }
}

impl TryFrom<TransferRow> for Transfer {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> Result<Self, StoreError> {
        Ok(Transfer {
            id: TransferId::parse(&r.id).map_err(StoreError::Corrupt)?,
            from: UserId::parse(&r.from_user).map_err(StoreError::Corrupt)?,
            to: UserId::parse(&r.to_user).map_err(StoreError::Corrupt)?,
            amount: Amount::from_stored(r.amount),
            currency: Currency::parse(&r.currency)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at: r.created_at,
        })
    }
}

/// One row of `reads::HISTORY_PAGE`: a deposit, or a transfer with the other side's user id,
/// name and email.
#[derive(sqlx::FromRow)]
struct HistoryRow {
    kind: String,
    id: String,
    other: String,
    amount: i64,
    currency: String,
    status: String,
    bank_token: Option<String>,
    pay_url: Option<String>,
    created_at: i64,
    updated_at: i64,
    name: String,
    email: String,
}

impl HistoryRow {
    fn into_item(self, user: UserId) -> Result<HistoryItem, StoreError> {
        let other = UserId::parse(&self.other).map_err(StoreError::Corrupt)?;
        let counterparty = Counterparty {
            name: self.name.clone(),
            email: self.email.clone(),
        };
        let transfer = |from, to, r: &HistoryRow| -> Result<Transfer, StoreError> {
            TransferRow {
                id: r.id.clone(),
                from_user: from,
                to_user: to,
                amount: r.amount,
                currency: r.currency.clone(),
                created_at: r.created_at,
            }
            .try_into()
        };
        match self.kind.as_str() {
            "withdrawal" => Ok(HistoryItem::Withdrawal(Withdrawal::try_from(
                WithdrawalRow {
                    id: self.id,
                    user_id: self.other,
                    amount: self.amount,
                    currency: self.currency,
                    status: self.status,
                    payout_id: self.bank_token,
                    // The history does not say it.
                    first_answer: None,
                    created_at: self.created_at,
                    updated_at: self.updated_at,
                },
            )?)),
            "deposit" => Ok(HistoryItem::Deposit(Deposit::try_from(DepositRow {
                id: self.id,
                user_id: self.other,
                amount: self.amount,
                currency: self.currency,
                status: self.status,
                bank_token: self.bank_token,
                pay_url: self.pay_url,
                created_at: self.created_at,
                updated_at: self.updated_at,
            })?)),
            "transfer_out" => Ok(HistoryItem::TransferOut(
                transfer(user.to_string(), other.to_string(), &self)?,
                counterparty,
            )),
            "transfer_in" => Ok(HistoryItem::TransferIn(
                transfer(other.to_string(), user.to_string(), &self)?,
                counterparty,
            )),
            kind => Err(StoreError::Corrupt(format!(
                "a history item of kind {kind:?}"
            ))),
        }
    }
}
