//! What a wallet actor knows of its money, and the reservation rule that keeps every balance at
//! zero or above without a database lock: a debit is reserved against the available balance (the
//! committed balance minus what is reserved) before it is committed, and is released when its
//! commit answers. Pure data, so the rule is tested on its own (the property test below).
//!
//! Withdrawals will reserve the same way; a reservation that waits on the bank is simply one
//! whose commit answers later.

use onramp_store::domain::Amount;
use onramp_store::Balance;

/// Money reserved for one debit not yet committed. Not `Clone`: a reservation ends once, by
/// [`Funds::commit`] or [`Funds::release`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation holds money until it is committed or released"]
pub struct Reservation {
    paise: i64,
}

impl Reservation {
    pub fn paise(&self) -> i64 {
        self.paise
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The committed balance is not in memory yet: load it, then ask again.
    NotLoaded,
    /// The amount is more than the available balance.
    Insufficient { available: i64 },
}

#[derive(Debug, Default)]
pub struct Funds {
    /// The newest committed balance known: `None` until loaded or told by a commit, and again
    /// after it is forgotten.
    committed: Option<Balance>,
    /// After a commit of unknown outcome only a balance read from the database afterwards is
    /// trusted: a late answer of an earlier commit could predate a debit that did land. Until
    /// that read completes, balances commits answer are kept in `seen`.
    must_load: bool,
    /// The newest balance a commit answered while a fresh read was awaited, or another
    /// wallet's commit told while no balance was known ([`Funds::told`]). It is not trusted
    /// alone, but it is never lost: the read that completes is compared with it, and of the two
    /// the one with the later ledger entry wins (entry ids grow in commit order).
    seen: Option<Balance>,
    reserved: i64,
    reservations: usize,
    /// Counts the times the balance was forgotten, and nothing else: a read that started before
    /// the last time (its [`Funds::epoch`] is older) may predate what was forgotten, and is
    /// refused. A read that started after it is always accepted, however many commits answer
    /// meanwhile, so one read that completes makes the balance known.
    epoch: u64,
}

impl Funds {
    pub fn committed(&self) -> Option<Balance> {
        self.committed
    }

    /// What a new debit may take: the committed balance minus every reservation. A commit
    /// answers the balance after its whole batch, which may already include other debits still
    /// reserved here until their own answers are handled a moment later: the sum then counts
    /// them twice, and is read as zero rather than below it (an understatement, never more
    /// than there is).
    pub fn available(&self) -> Option<i64> {
        self.committed.map(|c| (c.paise - self.reserved).max(0))
    }

    /// Give a database read this, and pass it back to [`Funds::load`] with its result.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Debits reserved and not yet committed or released.
    pub fn reservations(&self) -> usize {
        self.reservations
    }

    /// A balance this wallet's own commit answered: kept if it is newer than what is known (a
    /// later ledger entry). It is the database's balance as that commit left it, so it is
    /// trusted even when nothing was known, and a balance told earlier and set aside
    /// ([`Funds::told`]) then counts beside it. While a fresh read is awaited it is set aside
    /// for that read to be compared with.
    pub fn observe(&mut self, balance: Balance) {
        if self.must_load {
            self.seen = newer(self.seen, balance);
        } else {
            self.committed = newer(self.committed, balance);
            if let Some(seen) = self.seen.take() {
                self.committed = newer(self.committed, seen);
            }
        }
    }

    /// A balance another wallet's commit answered for this one (a transfer received, told by
    /// the sender's actor, in this process or another). Beside a balance already known the
    /// later entry wins, as for [`Funds::observe`]. With none known it is set aside until a
    /// read or a commit of this wallet's own: a debit of this wallet may have committed after
    /// it, before this actor started (under an earlier actor here, or another process's lease),
    /// and this actor would never be told of that one.
    pub fn told(&mut self, balance: Balance) {
        if self.committed.is_some() {
            self.observe(balance);
        } else {
            self.seen = newer(self.seen, balance);
        }
    }

    /// A balance read from the database by a read that started at `epoch`. One that started
    /// before the balance was last forgotten is refused (`false`); any other is kept, or the
    /// newer balance a commit answered meanwhile.
    pub fn load(&mut self, balance: Balance, epoch: u64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        let mut newest = newer(self.committed, balance);
        if let Some(seen) = self.seen.take() {
            newest = newer(newest, seen);
        }
        self.committed = newest;
        self.must_load = false;
        true
    }

    /// Forgets the committed balance: something may have committed that this wallet was not
    /// told (a commit of unknown outcome). The next debit waits for a fresh read.
    pub fn forget(&mut self) {
        self.committed = None;
        self.seen = None;
        self.must_load = true;
        self.epoch += 1;
    }

    /// Reserves `amount` if the available balance covers it.
    pub fn reserve(&mut self, amount: Amount) -> Result<Reservation, Refusal> {
        let available = self.available().ok_or(Refusal::NotLoaded)?;
        let paise = amount.paise();
        if paise > available {
            return Err(Refusal::Insufficient { available });
        }
        self.reserved += paise;
        self.reservations += 1;
        Ok(Reservation { paise })
    }

    /// The debit is committed; `after` is the balance its commit answered, which includes it.
    pub fn commit(&mut self, reservation: Reservation, after: Balance) {
        self.observe(after);
        self.end(reservation);
    }

    /// The debit was not written (refused, or its key was taken): the money is free again.
    pub fn release(&mut self, reservation: Reservation) {
        self.end(reservation);
    }

    /// The debit's commit failed, and a failure can be one whose outcome is not known (the
    /// connection dropped after COMMIT was sent). The reservation ends, and the committed
    /// balance is forgotten so that it is read afresh from the database before the next debit.
    pub fn release_unsure(&mut self, reservation: Reservation) {
        self.forget();
        self.end(reservation);
    }

    fn end(&mut self, reservation: Reservation) {
        self.reserved -= reservation.paise;
        self.reservations -= 1;
        debug_assert!(self.reserved >= 0 && (self.reservations > 0 || self.reserved == 0));
    }
}

/// The newer of a known balance (if any) and `balance`, by ledger entry.
fn newer(known: Option<Balance>, balance: Balance) -> Option<Balance> {
    match known {
        Some(k) if k.entry >= balance.entry => Some(k),
        _ => Some(balance),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A step of a random history of one wallet, against a model of its database row.
    #[derive(Debug, Clone)]
    enum Step {
        /// A deposit credited (its commit's answer may reach the actor late).
        Credit(i64),
        Reserve(i64),
        /// One group commit of up to n open reservations: each answer is the balance after the
        /// whole batch, delivered one by one.
        Commit(usize),
        /// The commit of the n-th open reservation was refused or its key was taken.
        Release(usize),
        /// The commit of the n-th open reservation failed without an answer; `landed` says
        /// whether it was in fact committed.
        Unsure(usize, bool),
        /// A transfer to this wallet failed without an answer (`landed`: it was committed), and
        /// the wallet forgets its balance.
        UnsureCredit(i64, bool),
        /// A database read starts now (with the actor's epoch)...
        ReadStarts,
        /// ...and the oldest read in flight arrives.
        ReadArrives,
        /// A late answer: an older balance reaches the actor again.
        Stale,
        /// The actor stops (idle, or its wallet handed to another process) with nothing in
        /// flight, and a fresh one starts knowing nothing.
        Restart,
        /// Another wallet's commit tells this one a balance the database had at some point (a
        /// transfer received; the tell may come late, after debits it does not include).
        Told(usize),
    }

    impl Step {
        /// Whether the step makes the wallet forget its balance.
        fn forgets(&self) -> bool {
            matches!(
                self,
                Step::Unsure(..) | Step::UnsureCredit(..) | Step::Restart
            )
        }
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1..5_000i64).prop_map(Step::Credit),
            (1..5_000i64).prop_map(Step::Reserve),
            (1..4usize).prop_map(Step::Commit),
            any::<usize>().prop_map(Step::Release),
            (any::<usize>(), any::<bool>()).prop_map(|(i, l)| Step::Unsure(i, l)),
            (1..5_000i64, any::<bool>()).prop_map(|(p, l)| Step::UnsureCredit(p, l)),
            Just(Step::ReadStarts),
            Just(Step::ReadArrives),
            Just(Step::Stale),
            Just(Step::Restart),
            any::<usize>().prop_map(Step::Told),
        ]
    }

    /// A wallet's funds beside a model of its database row, with the reads in flight.
    struct World {
        funds: Funds,
        db: Balance,
        /// Every balance the database has had, oldest first.
        history: Vec<Balance>,
        open: Vec<Reservation>,
        reads: std::collections::VecDeque<(Balance, u64)>,
        /// Where the running actor's life began in `history`: only its own commits can
        /// answer it late.
        born: usize,
    }

    impl World {
        fn new() -> Self {
            let db = Balance { paise: 0, entry: 0 };
            World {
                funds: Funds::default(),
                db,
                history: vec![db],
                open: Vec::new(),
                reads: Default::default(),
                born: 0,
            }
        }

        fn write(&mut self, delta: i64) -> Balance {
            self.db.paise += delta;
            self.db.entry += 1;
            self.history.push(self.db);
            self.db
        }

        fn apply(&mut self, step: Step) -> Result<(), TestCaseError> {
            match step {
                Step::Credit(p) => {
                    let after = self.write(p);
                    self.funds.observe(after);
                }
                Step::Reserve(p) => match self.funds.reserve(Amount::parse(p, i64::MAX).unwrap()) {
                    Ok(r) => self.open.push(r),
                    Err(Refusal::NotLoaded) => self.reads.push_back((self.db, self.funds.epoch())),
                    Err(Refusal::Insufficient { available }) => prop_assert!(p > available),
                },
                Step::Commit(n) if !self.open.is_empty() => {
                    let n = n.min(self.open.len());
                    let batch: Vec<Reservation> = self.open.drain(..n).collect();
                    let total: i64 = batch.iter().map(Reservation::paise).sum();
                    let after = self.write(-total);
                    for r in batch {
                        self.funds.commit(r, after);
                    }
                }
                Step::Release(i) if !self.open.is_empty() => {
                    let r = self.open.swap_remove(i % self.open.len());
                    self.funds.release(r);
                }
                Step::Unsure(i, landed) if !self.open.is_empty() => {
                    let r = self.open.swap_remove(i % self.open.len());
                    if landed {
                        self.write(-r.paise());
                    }
                    self.funds.release_unsure(r);
                }
                Step::UnsureCredit(p, landed) => {
                    if landed {
                        self.write(p);
                    }
                    self.funds.forget();
                }
                Step::ReadStarts => self.reads.push_back((self.db, self.funds.epoch())),
                Step::ReadArrives => {
                    if let Some((balance, epoch)) = self.reads.pop_front() {
                        self.funds.load(balance, epoch);
                    }
                }
                Step::Stale if self.history.len() > self.born => {
                    let own = self.born + (self.history.len() - self.born) / 2;
                    self.funds.observe(self.history[own]);
                }
                Step::Restart if self.open.is_empty() => {
                    self.funds = Funds::default();
                    self.reads.clear();
                    self.born = self.history.len();
                }
                Step::Told(i) => self.funds.told(self.history[i % self.history.len()]),
                _ => {}
            }
            self.check()
        }

        /// Safety: the database never below zero, and the available balance never below zero
        /// nor more than the database holds net of what is reserved.
        fn check(&self) -> Result<(), TestCaseError> {
            let db = self.db;
            prop_assert!(db.paise >= 0, "the database went below zero: {db:?}");
            if let Some(available) = self.funds.available() {
                let reserved: i64 = self.open.iter().map(Reservation::paise).sum();
                prop_assert!(available >= 0);
                prop_assert!(
                    available <= (db.paise - reserved).max(0),
                    "available {available} but the database holds {} with {reserved} reserved",
                    db.paise
                );
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the order of reserves, batch commits, failures, credits, slow reads and late
        /// answers: the available balance is never below zero and never more than the
        /// database holds net of what is reserved, the database's balance never goes below zero
        /// (every debit it took was covered), and once nothing is reserved the actor's balance is
        /// the database's own.
        #[test]
        fn reservations_never_overdraw_or_drift(steps in prop::collection::vec(step(), 1..200)) {
            let mut world = World::new();
            for step in steps {
                world.apply(step)?;
            }
            for r in world.open.drain(..) {
                world.funds.release(r);
            }
            let epoch = world.funds.epoch();
            world.funds.load(world.db, epoch);
            prop_assert_eq!(world.funds.reservations(), 0);
            prop_assert_eq!(world.funds.available(), Some(world.db.paise));
            prop_assert_eq!(world.funds.committed(), Some(world.db));
        }

        /// Liveness: after any history, a read that starts and completes makes the balance known
        /// (and the database's own), however many commits answer, late answers arrive and older
        /// reads complete while it is in flight, as long as nothing is forgotten meanwhile (only
        /// a commit of unknown outcome forgets). No other wallet's traffic can keep it unknown.
        #[test]
        fn one_read_that_completes_makes_the_balance_known(
            history in prop::collection::vec(step(), 0..200),
            meanwhile in prop::collection::vec(step(), 0..100),
        ) {
            let mut world = World::new();
            for step in history {
                world.apply(step)?;
            }
            let read = (world.db, world.funds.epoch());
            for step in meanwhile.into_iter().filter(|s| !s.forgets()) {
                world.apply(step)?;
            }
            prop_assert!(world.funds.load(read.0, read.1), "the read is accepted");
            prop_assert_eq!(world.funds.committed(), Some(world.db));
            world.check()?;
        }
    }

    #[test]
    fn a_wallet_that_can_afford_three_reserves_three() {
        let mut funds = Funds::default();
        let hundred = Amount::parse(100, i64::MAX).unwrap();
        assert_eq!(funds.reserve(hundred), Err(Refusal::NotLoaded));
        assert!(funds.load(
            Balance {
                paise: 300,
                entry: 1
            },
            funds.epoch()
        ));
        let held: Vec<Reservation> = (0..3).map(|_| funds.reserve(hundred).unwrap()).collect();
        assert_eq!(
            funds.reserve(hundred),
            Err(Refusal::Insufficient { available: 0 })
        );
        let mut after = 300;
        for (n, r) in held.into_iter().enumerate() {
            after -= 100;
            funds.commit(
                r,
                Balance {
                    paise: after,
                    entry: 2 + n as i64,
                },
            );
        }
        assert_eq!(funds.available(), Some(0));
        assert_eq!(funds.reservations(), 0);
    }

    /// A fresh actor told a balance by another wallet's commit does not take it as the truth:
    /// a withdrawal committed after it, by the wallet's earlier actor (here, or at the process
    /// that owned the wallet before), is not in it. The first debit reads the database instead.
    #[test]
    fn a_fresh_actor_does_not_believe_a_balance_told_before_a_debit_it_never_saw() {
        let mut funds = Funds::default();
        // A transfer in committed at entry 5 (balance 1,000); a withdrawal of 800 at entry 6,
        // before this actor started. The tell of entry 5 arrives only now.
        funds.told(Balance {
            paise: 1_000,
            entry: 5,
        });
        assert_eq!(funds.available(), None, "not known: read first");
        let all = Amount::parse(1_000, i64::MAX).unwrap();
        assert_eq!(funds.reserve(all), Err(Refusal::NotLoaded));
        assert!(funds.load(
            Balance {
                paise: 200,
                entry: 6
            },
            funds.epoch()
        ));
        assert_eq!(
            funds.reserve(all),
            Err(Refusal::Insufficient { available: 200 })
        );
        // A later tell counts beside what is known: a transfer in after the withdrawal.
        funds.told(Balance {
            paise: 700,
            entry: 7,
        });
        assert_eq!(funds.available(), Some(700));
    }

    /// A tell set aside counts once the actor's own commit makes a balance known: the later
    /// entry wins.
    #[test]
    fn a_tell_set_aside_counts_beside_the_first_own_commit() {
        let mut funds = Funds::default();
        funds.told(Balance {
            paise: 900,
            entry: 9,
        });
        funds.observe(Balance {
            paise: 400,
            entry: 8,
        });
        assert_eq!(funds.available(), Some(900));
    }

    /// The reviewer's case: a read starts, a commit of unknown outcome makes the actor forget,
    /// another debit commits, and then the old read arrives. It predates the commit, so it is
    /// refused rather than believed.
    #[test]
    fn a_read_that_started_before_the_balance_was_forgotten_is_refused() {
        let mut funds = Funds::default();
        let amount = |p| Amount::parse(p, i64::MAX).unwrap();
        funds.load(
            Balance {
                paise: 1_000,
                entry: 5,
            },
            0,
        );
        let r1 = funds.reserve(amount(300)).unwrap();
        let r2 = funds.reserve(amount(500)).unwrap();
        let read_started = funds.epoch();
        funds.release_unsure(r1);
        funds.commit(
            r2,
            Balance {
                paise: 500,
                entry: 6,
            },
        );
        assert!(!funds.load(
            Balance {
                paise: 1_000,
                entry: 5
            },
            read_started
        ));
        assert_eq!(funds.available(), None, "it waits for a fresh read");
        assert!(funds.load(
            Balance {
                paise: 500,
                entry: 6
            },
            funds.epoch()
        ));
        assert_eq!(funds.available(), Some(500));
    }
}
