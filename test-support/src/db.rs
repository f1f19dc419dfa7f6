//! Direct access to the app's database, to check what it holds behind the API, and the books
//! check every money test ends with.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A small pool on the app's database (SQLite file or PostgreSQL), beside the app's own.
pub enum TestDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepositRow {
    pub id: String,
    pub user_id: String,
    pub amount: i64,
    pub status: String,
    pub bank_token: Option<String>,
}

/// A deposit's credit in the ledger: an entry from bank clearing to the user's wallet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    pub id: i64,
    pub user_id: String,
    pub deposit_id: String,
    pub amount: i64,
    /// The account debited: `bank_clearing` for every deposit credit.
    pub debited: String,
}

/// A transfer with its ledger entry's accounts (NULL where the entry is missing).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub from_user: String,
    pub to_user: String,
    pub amount: i64,
    pub debited: Option<String>,
    pub credited: Option<String>,
    pub entry_amount: Option<i64>,
}

/// A withdrawal with how many entries of each kind it has.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WithdrawalRow {
    pub id: String,
    pub user_id: String,
    pub amount: i64,
    pub status: String,
    /// The bank's id of its payout, once the bank answered.
    pub payout_id: Option<String>,
    /// Its `withdrawal` entries (the wallet to payouts in flight): one.
    pub taken: i64,
    /// Its `payout` entries (paid out): one when `success`, else none.
    pub paid: i64,
    /// Its `payout_return` entries (back to the wallet): one when `failure`, else none.
    pub returned: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WalletRow {
    pub user_id: String,
    pub balance: i64,
}

const DEPOSITS: &str = "SELECT id, user_id, amount, status, bank_token FROM deposits ORDER BY id";
const LEDGER: &str = "SELECT e.id, a.user_id, e.ref AS deposit_id, e.amount, \
     COALESCE(d.user_id, d.system) AS debited \
     FROM ledger_entries AS e JOIN ledger_accounts AS a ON a.id = e.credit_account \
     JOIN ledger_accounts AS d ON d.id = e.debit_account WHERE e.kind = 'deposit' ORDER BY e.id";
const TRANSFERS: &str = "SELECT t.id, t.from_user, t.to_user, t.amount, \
     f.user_id AS debited, r.user_id AS credited, e.amount AS entry_amount \
     FROM transfers AS t LEFT JOIN ledger_entries AS e ON e.kind = 'transfer' AND e.ref = t.id \
     LEFT JOIN ledger_accounts AS f ON f.id = e.debit_account \
     LEFT JOIN ledger_accounts AS r ON r.id = e.credit_account ORDER BY t.id";
const WITHDRAWALS: &str = "SELECT w.id, w.user_id, w.amount, w.status, w.payout_id, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries AS e \
      WHERE e.kind = 'withdrawal' AND e.ref = w.id) AS taken, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries AS e \
      WHERE e.kind = 'payout' AND e.ref = w.id) AS paid, \
     (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_entries AS e \
      WHERE e.kind = 'payout_return' AND e.ref = w.id) AS returned \
     FROM withdrawals AS w ORDER BY w.id";
const WALLETS: &str = "SELECT user_id, balance FROM ledger_accounts \
     WHERE user_id IS NOT NULL ORDER BY user_id";
/// Every account's balance, system accounts too: they sum to zero in double-entry books.
const ALL_ACCOUNTS: &str = "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM ledger_accounts";

/// Two connections: enough for a test's reads, and few enough that a crash test's SQLite writer
/// or a cluster holding many test databases does not notice them.
async fn pool<DB: sqlx::Database>(url: &str) -> sqlx::Pool<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

/// The same query on whichever pool: sqlx's executors are per database type.
macro_rules! on_pool {
    ($db:expr, $p:ident => $e:expr) => {
        match $db {
            TestDb::Sqlite($p) => $e,
            TestDb::Postgres($p) => $e,
        }
    };
}

impl TestDb {
    pub async fn connect(url: &str) -> TestDb {
        if url.starts_with("sqlite") {
            TestDb::Sqlite(pool(url).await)
        } else {
            TestDb::Postgres(pool(url).await)
        }
    }

    /// One integer (a count or a sum). On PostgreSQL cast to `int8`, since `COUNT` and `SUM`
    /// there answer `bigint` and `numeric`.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(p)
                .await
                .unwrap(),
            TestDb::Postgres(p) => {
                let sql = format!("SELECT ({sql})::int8");
                sqlx::query_scalar::<_, i64>(&sql)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        }
    }

    /// The first column of every row, as text.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        on_pool!(self, p => sqlx::query_scalar::<_, String>(sql).fetch_all(p).await.unwrap())
    }

    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, p => sqlx::query(sql).execute(p).await.map(drop))
    }

    /// A script of `;`-separated statements, run in order on one connection (so that a table
    /// rebuilt by several of them is seen whole by the next).
    pub async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        on_pool!(self, p => {
            let mut conn = p.acquire().await?;
            sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop)
        })
    }

    /// The money tables as they are now.
    pub async fn snapshot(&self) -> Books {
        Books {
            deposits: on_pool!(self, p => sqlx::query_as(DEPOSITS).fetch_all(p).await.unwrap()),
            ledger: on_pool!(self, p => sqlx::query_as(LEDGER).fetch_all(p).await.unwrap()),
            transfers: on_pool!(self, p => sqlx::query_as(TRANSFERS).fetch_all(p).await.unwrap()),
            withdrawals: on_pool!(self, p => sqlx::query_as(WITHDRAWALS).fetch_all(p).await.unwrap()),
            wallets: on_pool!(self, p => sqlx::query_as(WALLETS).fetch_all(p).await.unwrap()),
            all_accounts: self.scalar(ALL_ACCOUNTS).await,
        }
    }

    /// The books balance now: see [`Books::assert_consistent`].
    pub async fn assert_books_balance(&self) {
        self.snapshot().await.assert_consistent();
    }

    pub async fn close(self) {
        on_pool!(self, p => p.close().await)
    }
}

/// The app's money tables at one moment.
pub struct Books {
    pub deposits: Vec<DepositRow>,
    pub ledger: Vec<LedgerRow>,
    pub transfers: Vec<TransferRow>,
    pub withdrawals: Vec<WithdrawalRow>,
    pub wallets: Vec<WalletRow>,
    pub all_accounts: i64,
}

impl Books {
    pub fn deposit_by_token(&self) -> HashMap<&str, &DepositRow> {
        self.deposits
            .iter()
            .filter_map(|d| d.bank_token.as_deref().map(|t| (t, d)))
            .collect()
    }

    pub fn ledger_by_deposit(&self) -> HashMap<&str, Vec<&LedgerRow>> {
        let mut m: HashMap<&str, Vec<&LedgerRow>> = HashMap::new();
        for l in &self.ledger {
            m.entry(l.deposit_id.as_str()).or_default().push(l);
        }
        m
    }

    /// The withdrawals not failed (paid out, or still on their way), in paise.
    pub fn withdrawn(&self) -> i64 {
        (self.withdrawals.iter())
            .filter(|w| w.status != "failure")
            .map(|w| w.amount)
            .sum()
    }

    pub fn balance_of(&self, user_id: &str) -> i64 {
        self.wallets
            .iter()
            .find(|w| w.user_id == user_id)
            .map_or(0, |w| w.balance)
    }

    pub fn total_balance(&self) -> i64 {
        self.wallets.iter().map(|w| w.balance).sum()
    }

    /// The app's own books agree with themselves: every deposit credit belongs to a successful
    /// deposit of the same user and amount and comes from bank clearing, every successful
    /// deposit has exactly one (nothing credited twice), every transfer has its one entry from
    /// the sender to the recipient, every wallet equals its credits plus transfers in minus
    /// transfers out, no wallet is below zero, and all accounts sum to zero. So the totals
    /// agree too: wallets = successful deposits.
    pub fn assert_consistent(&self) {
        let deposits: HashMap<&str, &DepositRow> =
            self.deposits.iter().map(|d| (d.id.as_str(), d)).collect();
        let by_deposit = self.ledger_by_deposit();
        let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
        for (deposit_id, entries) in &by_deposit {
            assert_eq!(
                entries.len(),
                1,
                "deposit {deposit_id} has {} ledger entries (credited more than once)",
                entries.len()
            );
            let d = deposits
                .get(deposit_id)
                .unwrap_or_else(|| panic!("ledger entry for unknown deposit {deposit_id}"));
            let e = entries[0];
            assert_eq!(
                d.status, "success",
                "ledger entry for a {} deposit",
                d.status
            );
            assert_eq!(e.user_id, d.user_id, "ledger entry {} user", e.id);
            assert_eq!(e.amount, d.amount, "ledger entry {} amount", e.id);
            assert_eq!(e.debited, "bank_clearing", "ledger entry {} source", e.id);
            *expected.entry(e.user_id.as_str()).or_insert(0) += e.amount;
        }
        for d in &self.deposits {
            if d.status == "success" {
                assert!(
                    by_deposit.contains_key(d.id.as_str()),
                    "successful deposit {} has no ledger entry",
                    d.id
                );
            }
        }
        for t in &self.transfers {
            assert_eq!(
                (t.debited.as_deref(), t.credited.as_deref(), t.entry_amount),
                (
                    Some(t.from_user.as_str()),
                    Some(t.to_user.as_str()),
                    Some(t.amount)
                ),
                "transfer {} and its ledger entry",
                t.id
            );
            *expected.entry(t.from_user.as_str()).or_insert(0) -= t.amount;
            *expected.entry(t.to_user.as_str()).or_insert(0) += t.amount;
        }
        for w in &self.withdrawals {
            let ends = match w.status.as_str() {
                "success" => (1, 0),
                "failure" => (0, 1),
                _ => (0, 0),
            };
            assert_eq!(
                (w.taken, w.paid, w.returned),
                (1, ends.0, ends.1),
                "withdrawal {} ({}): its entries (taken, paid, returned)",
                w.id,
                w.status
            );
            if w.status != "failure" {
                *expected.entry(w.user_id.as_str()).or_insert(0) -= w.amount;
            }
        }
        for w in &self.wallets {
            assert!(
                w.balance >= 0,
                "wallet of {} is below zero: {}",
                w.user_id,
                w.balance
            );
            let sum = expected.get(w.user_id.as_str()).copied().unwrap_or(0);
            assert_eq!(
                w.balance, sum,
                "wallet of {} is {} but its entries sum to {sum}",
                w.user_id, w.balance
            );
        }
        for (user, sum) in &expected {
            assert_eq!(
                self.balance_of(user),
                *sum,
                "user {user} has ledger entries summing to {sum} but no such wallet balance"
            );
        }
        assert_eq!(self.all_accounts, 0, "the accounts do not sum to zero");
        let success: i64 = self
            .deposits
            .iter()
            .filter(|d| d.status == "success")
            .map(|d| d.amount)
            .sum();
        assert_eq!(
            self.total_balance(),
            success - self.withdrawn(),
            "wallets disagree with successful deposits less withdrawals not failed"
        );
    }

    /// The app agrees with the bank: for every deposit the bank settled, the app holds the same
    /// final status, and each user's wallet is exactly the sum of that user's deposits the bank
    /// marked SUCCESS, plus what they received and less what they sent. Deposits the bank still has pending are processing and uncredited.
    pub fn assert_matches_bank(&self, bank: &HashMap<String, String>) {
        let mut expected: HashMap<&str, i64> = HashMap::new();
        let mut processing_settled = Vec::new();
        for d in &self.deposits {
            let token = d
                .bank_token
                .as_deref()
                .expect("every deposit has a bank order");
            let status = bank
                .get(token)
                .unwrap_or_else(|| panic!("the bank was not asked about {token}"));
            match status.as_str() {
                "SUCCESS" | "FAILURE" if d.status == "processing" => {
                    processing_settled.push(d.id.clone())
                }
                "SUCCESS" | "FAILURE" => assert_eq!(
                    d.status,
                    status.to_lowercase(),
                    "deposit {}: the bank says {status}",
                    d.id
                ),
                "PENDING" => assert_eq!(
                    d.status, "processing",
                    "deposit {} is {} but the bank has it pending",
                    d.id, d.status
                ),
                other => panic!("unknown bank status {other}"),
            }
            if status == "SUCCESS" {
                *expected.entry(d.user_id.as_str()).or_insert(0) += d.amount;
            }
        }
        // Money moved between users since: each transfer once; and out, each withdrawal not
        // failed once.
        for t in &self.transfers {
            *expected.entry(t.from_user.as_str()).or_insert(0) -= t.amount;
            *expected.entry(t.to_user.as_str()).or_insert(0) += t.amount;
        }
        for w in self.withdrawals.iter().filter(|w| w.status != "failure") {
            *expected.entry(w.user_id.as_str()).or_insert(0) -= w.amount;
        }
        assert!(
            processing_settled.is_empty(),
            "{} deposits settled at the bank are still processing: {:?}",
            processing_settled.len(),
            processing_settled
        );
        let users: BTreeSet<&str> = self
            .deposits
            .iter()
            .map(|d| d.user_id.as_str())
            .chain(self.wallets.iter().map(|w| w.user_id.as_str()))
            .collect();
        for user in users {
            let want = expected.get(user).copied().unwrap_or(0);
            assert_eq!(
                self.balance_of(user),
                want,
                "wallet of {user} differs from its deposits the bank marked SUCCESS"
            );
        }
    }
}
