//! `onramp audit`: the books checked from the database alone, in one consistent snapshot, so it
//! may run while the app writes. Written once for both databases, like the reads.

use std::fmt;

/// What the audit found. The books are right when [`Report::problems`] is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub accounts: i64,
    pub entries: i64,
    pub transfers: i64,
    pub successful_deposits: i64,
    /// The sum of successful deposits, in paise.
    pub deposited: i64,
    pub withdrawals: i64,
    /// The sum of the withdrawals not failed (paid out, or still processing), in paise.
    pub withdrawn: i64,
    /// The sum of the withdrawals still processing, in paise.
    pub withdrawing: i64,
    /// The balance of `payouts_in_flight`, in paise: what left the users for payouts the bank
    /// has not settled yet.
    pub in_flight: i64,
    /// The sum of the users' balances, in paise.
    pub users_total: i64,
    /// The sum of every account's balance, system accounts included: 0 in balanced books.
    pub all_accounts: i64,
    /// Each thing that is wrong, for a person.
    pub problems: Vec<String>,
}

impl Report {
    /// A report of the figures [`FIGURES`] reads, in its order.
    pub(crate) fn from_figures(f: &[i64]) -> Result<Report, crate::StoreError> {
        let &[accounts, entries, transfers, successful_deposits, deposited, withdrawals, withdrawn, withdrawing, in_flight, users_total, all_accounts] =
            f
        else {
            return Err(crate::StoreError::Corrupt(format!(
                "the audit read {} figures",
                f.len()
            )));
        };
        Ok(Report {
            accounts,
            entries,
            transfers,
            successful_deposits,
            deposited,
            withdrawals,
            withdrawn,
            withdrawing,
            in_flight,
            users_total,
            all_accounts,
            problems: Vec::new(),
        })
    }

    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The checks that compare totals, made from the figures read.
    pub(crate) fn check_totals(&mut self) {
        if self.all_accounts != 0 {
            self.problems.push(format!(
                "the accounts do not add up to zero: they sum to {} paise",
                self.all_accounts
            ));
        }
        // The users hold what came in less what went out (or is on its way out).
        if self.users_total != self.deposited - self.withdrawn {
            self.problems.push(format!(
                "the users hold {} paise but successful deposits total {} paise and withdrawals \
                 not failed {} paise",
                self.users_total, self.deposited, self.withdrawn
            ));
        }
        if self.in_flight != self.withdrawing {
            self.problems.push(format!(
                "payouts in flight hold {} paise but the withdrawals still processing total {} \
                 paise",
                self.in_flight, self.withdrawing
            ));
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "accounts:            {}", self.accounts)?;
        writeln!(f, "ledger entries:      {}", self.entries)?;
        writeln!(f, "transfers:           {}", self.transfers)?;
        writeln!(
            f,
            "successful deposits: {} ({} paise)",
            self.successful_deposits, self.deposited
        )?;
        writeln!(
            f,
            "withdrawals:         {} ({} paise not failed, {} paise processing)",
            self.withdrawals, self.withdrawn, self.withdrawing
        )?;
        writeln!(f, "payouts in flight:   {} paise", self.in_flight)?;
        writeln!(f, "users hold:          {} paise", self.users_total)?;
        writeln!(f, "all accounts sum to: {} paise", self.all_accounts)?;
        if self.is_ok() {
            write!(f, "the books balance")
        } else {
            for p in &self.problems {
                writeln!(f, "PROBLEM: {p}")?;
            }
            write!(f, "{} problem(s) found", self.problems.len())
        }
    }
}

/// Each check: a query answering one text per thing wrong, and how to say it.
pub(crate) const CHECKS: &[(&str, &str)] = &[
    (
        "an entry that does not balance (its amount is not positive, or it debits and credits one account)",
        "SELECT CAST(id AS TEXT) FROM ledger_entries \
         WHERE amount <= 0 OR debit_account = credit_account",
    ),
    (
        "an account whose balance is not the sum of its entries",
        "SELECT COALESCE(a.user_id, a.system) || ' ' || a.currency || ': balance ' \
             || CAST(a.balance AS TEXT) || ', entries ' \
             || CAST(COALESCE(c.total, 0) - COALESCE(d.total, 0) AS TEXT) \
         FROM ledger_accounts AS a \
         LEFT JOIN (SELECT credit_account AS id, CAST(SUM(amount) AS BIGINT) AS total \
                    FROM ledger_entries GROUP BY credit_account) AS c ON c.id = a.id \
         LEFT JOIN (SELECT debit_account AS id, CAST(SUM(amount) AS BIGINT) AS total \
                    FROM ledger_entries GROUP BY debit_account) AS d ON d.id = a.id \
         WHERE a.balance <> COALESCE(c.total, 0) - COALESCE(d.total, 0)",
    ),
    (
        "an account whose last entry is not its newest (the wallet actors order balances by it)",
        "SELECT COALESCE(a.user_id, a.system) || ' ' || a.currency || ': last entry ' \
             || CAST(a.last_entry AS TEXT) || ', newest ' || CAST(COALESCE(m.last, 0) AS TEXT) \
         FROM ledger_accounts AS a \
         LEFT JOIN (SELECT x.account, MAX(x.id) AS last \
                    FROM (SELECT credit_account AS account, id FROM ledger_entries \
                          UNION ALL SELECT debit_account, id FROM ledger_entries) AS x \
                    GROUP BY x.account) AS m ON m.account = a.id \
         WHERE a.last_entry <> COALESCE(m.last, 0)",
    ),
    (
        "an entry naming an account that does not exist",
        "SELECT CAST(e.id AS TEXT) FROM ledger_entries AS e \
         LEFT JOIN ledger_accounts AS d ON d.id = e.debit_account \
         LEFT JOIN ledger_accounts AS c ON c.id = e.credit_account \
         WHERE d.id IS NULL OR c.id IS NULL",
    ),
    (
        "a user whose balance is below zero",
        "SELECT user_id || ': ' || CAST(balance AS TEXT) FROM ledger_accounts \
         WHERE user_id IS NOT NULL AND balance < 0",
    ),
    (
        "a deposit not credited exactly as it succeeded (a success without its credit, a credit \
         without a success, or a credit of another amount or to another wallet)",
        "SELECT d.id FROM deposits AS d \
         LEFT JOIN ledger_entries AS e ON e.kind = 'deposit' AND e.ref = d.id \
         LEFT JOIN ledger_accounts AS a ON a.id = e.credit_account \
         LEFT JOIN ledger_accounts AS c ON c.id = e.debit_account \
         WHERE (d.status = 'success') <> (e.id IS NOT NULL) \
            OR (e.id IS NOT NULL AND (e.amount <> d.amount \
                OR a.user_id IS DISTINCT FROM d.user_id OR a.currency <> d.currency \
                OR c.system IS DISTINCT FROM 'bank_clearing'))",
    ),
    (
        "a deposit entry for no deposit",
        "SELECT e.ref FROM ledger_entries AS e LEFT JOIN deposits AS d ON d.id = e.ref \
         WHERE e.kind = 'deposit' AND d.id IS NULL",
    ),
    (
        "a transfer without its entry, or with an entry of another amount or between other wallets",
        "SELECT t.id FROM transfers AS t \
         LEFT JOIN ledger_entries AS e ON e.kind = 'transfer' AND e.ref = t.id \
         LEFT JOIN ledger_accounts AS f ON f.id = e.debit_account \
         LEFT JOIN ledger_accounts AS r ON r.id = e.credit_account \
         WHERE e.id IS NULL OR e.amount <> t.amount \
            OR f.user_id IS DISTINCT FROM t.from_user OR r.user_id IS DISTINCT FROM t.to_user",
    ),
    (
        "a transfer entry for no transfer",
        "SELECT e.ref FROM ledger_entries AS e LEFT JOIN transfers AS t ON t.id = e.ref \
         WHERE e.kind = 'transfer' AND t.id IS NULL",
    ),
    (
        "a withdrawal without its entry, or with an entry of another amount or not from its \
         user's wallet to payouts in flight",
        "SELECT w.id FROM withdrawals AS w \
         LEFT JOIN ledger_entries AS e ON e.kind = 'withdrawal' AND e.ref = w.id \
         LEFT JOIN ledger_accounts AS a ON a.id = e.debit_account \
         LEFT JOIN ledger_accounts AS p ON p.id = e.credit_account \
         WHERE e.id IS NULL OR e.amount <> w.amount OR a.user_id IS DISTINCT FROM w.user_id \
            OR p.system IS DISTINCT FROM 'payouts_in_flight'",
    ),
    (
        "a withdrawal whose payout's end does not match its status (paid: one entry from \
         payouts in flight to bank clearing; failed: one back to its user; processing: neither)",
        "SELECT w.id FROM withdrawals AS w \
         LEFT JOIN ledger_entries AS s ON s.kind = 'payout' AND s.ref = w.id \
         LEFT JOIN ledger_entries AS r ON r.kind = 'payout_return' AND r.ref = w.id \
         LEFT JOIN ledger_accounts AS sd ON sd.id = s.debit_account \
         LEFT JOIN ledger_accounts AS sc ON sc.id = s.credit_account \
         LEFT JOIN ledger_accounts AS rd ON rd.id = r.debit_account \
         LEFT JOIN ledger_accounts AS rc ON rc.id = r.credit_account \
         WHERE (w.status = 'success') <> (s.id IS NOT NULL) \
            OR (w.status = 'failure') <> (r.id IS NOT NULL) \
            OR (s.id IS NOT NULL AND (s.amount <> w.amount \
                OR sd.system IS DISTINCT FROM 'payouts_in_flight' \
                OR sc.system IS DISTINCT FROM 'bank_clearing')) \
            OR (r.id IS NOT NULL AND (r.amount <> w.amount \
                OR rd.system IS DISTINCT FROM 'payouts_in_flight' \
                OR rc.user_id IS DISTINCT FROM w.user_id))",
    ),
    (
        "a withdrawal still processing with no payout check scheduled (nothing would ever end it \
         but the bank's webhook)",
        "SELECT w.id FROM withdrawals AS w \
         LEFT JOIN pending_withdrawals AS p ON p.withdrawal_id = w.id \
         WHERE w.status = 'processing' AND p.withdrawal_id IS NULL",
    ),
    (
        "a withdrawal or payout entry for no withdrawal",
        "SELECT e.ref FROM ledger_entries AS e LEFT JOIN withdrawals AS w ON w.id = e.ref \
         WHERE e.kind IN ('withdrawal', 'payout', 'payout_return') AND w.id IS NULL",
    ),
];

/// The figures, in [`Report`]'s order.
pub(crate) const FIGURES: &str = "SELECT \
     (SELECT COUNT(*) FROM ledger_accounts), \
     (SELECT COUNT(*) FROM ledger_entries), \
     (SELECT COUNT(*) FROM transfers), \
     (SELECT COUNT(*) FROM deposits WHERE status = 'success'), \
     (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM deposits WHERE status = 'success'), \
     (SELECT COUNT(*) FROM withdrawals), \
     (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals WHERE status <> 'failure'), \
     (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals WHERE status = 'processing'), \
     (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM ledger_accounts \
      WHERE system = 'payouts_in_flight'), \
     (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM ledger_accounts WHERE user_id IS NOT NULL), \
     (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM ledger_accounts)";

/// How many examples of one problem the report names.
pub(crate) const EXAMPLES: usize = 5;

/// `audit` over one pool type: `$snapshot` is the statement that makes the transaction one
/// snapshot (PostgreSQL's default isolation reads each statement afresh; SQLite's WAL already
/// reads one snapshot from the transaction's first read).
macro_rules! audit_for {
    ($pool:ty, $snapshot:expr) => {
        pub(crate) async fn audit(pool: &$pool) -> Result<crate::audit::Report, crate::StoreError> {
            use crate::audit::{Report, CHECKS, EXAMPLES, FIGURES};
            let mut tx = pool.begin().await?;
            if let Some(sql) = $snapshot {
                sqlx::query(sql).execute(&mut *tx).await?;
            }
            let figures: Vec<i64> = {
                use sqlx::Row;
                let row = sqlx::query(FIGURES).fetch_one(&mut *tx).await?;
                (0..row.len())
                    .map(|i| row.try_get::<i64, _>(i))
                    .collect::<Result<_, _>>()?
            };
            let mut report = Report::from_figures(&figures)?;
            for (what, sql) in CHECKS {
                let found: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut *tx).await?;
                if !found.is_empty() {
                    let examples: Vec<&str> =
                        found.iter().take(EXAMPLES).map(|(s,)| s.as_str()).collect();
                    report.problems.push(format!(
                        "{} × {what}: {}",
                        found.len(),
                        examples.join(", ")
                    ));
                }
            }
            tx.rollback().await?;
            report.check_totals();
            Ok(report)
        }
    };
}

pub(crate) mod sqlite {
    audit_for!(sqlx::SqlitePool, None::<&str>);
}

pub(crate) mod postgres {
    audit_for!(
        sqlx::PgPool,
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    );
}
