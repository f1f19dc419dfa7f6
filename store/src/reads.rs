//! The read queries, written once for both databases: their SQL is the same on SQLite and
//! PostgreSQL (`$n` placeholders, which sqlx's SQLite driver binds by number, and row-value
//! comparisons, which both support), and [`reads_for!`] makes one set of functions per pool
//! type from the same bodies. Writes differ (set-based SQL per backend) and live with each
//! backend.

macro_rules! select_deposits {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, amount, currency, status, bank_token, pay_url, created_at, \
             updated_at FROM deposits ",
            $rest
        )
    };
}

pub(crate) const USER: &str = "SELECT id, email, email_key, name, picture FROM users WHERE id = $1";
pub(crate) const SESSION: &str =
    "SELECT user_id, created_at, expires_at, last_seen_at FROM sessions WHERE token_hash = $1";
pub(crate) const BALANCE: &str =
    "SELECT balance, last_entry FROM ledger_accounts WHERE user_id = $1 AND currency = $2";
pub(crate) const USER_BY_EMAIL: &str = "SELECT id, email, email_key, name, picture FROM users \
     WHERE email_key = $1 ORDER BY signed_in_at DESC, id DESC LIMIT 1";
pub(crate) const TRANSFER_BY_KEY: &str =
    "SELECT id, from_user, to_user, amount, currency, created_at, to_name, to_email \
     FROM transfers WHERE from_user = $1 AND idempotency_key = $2";
pub(crate) const DEPOSIT: &str = select_deposits!("WHERE id = $1");

macro_rules! select_withdrawals {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, amount, currency, status, payout_id, first_answer, created_at, \
             updated_at FROM withdrawals ",
            $rest
        )
    };
}

pub(crate) const WITHDRAWAL: &str = select_withdrawals!("WHERE id = $1");
pub(crate) const WITHDRAWAL_BY_PAYOUT: &str = select_withdrawals!("WHERE payout_id = $1");
pub(crate) const WITHDRAWAL_BY_KEY: &str =
    select_withdrawals!("WHERE user_id = $1 AND idempotency_key = $2");

/// The withdrawals waiting for the bank whose payout check is due, soonest first.
pub(crate) const DUE_WITHDRAWALS: &str =
    "SELECT w.id, w.user_id, w.amount, w.currency, w.status, w.payout_id, w.first_answer, \
     w.created_at, w.updated_at, p.checks, p.next_check_at \
     FROM pending_withdrawals AS p JOIN withdrawals AS w ON w.id = p.withdrawal_id \
     WHERE p.next_check_at <= $1 ORDER BY p.next_check_at LIMIT $2";
pub(crate) const DEPOSIT_BY_TOKEN: &str = select_deposits!("WHERE bank_token = $1");
pub(crate) const DEPOSIT_BY_KEY: &str =
    select_deposits!("WHERE user_id = $1 AND idempotency_key = $2");

/// A page of a user's history: the newest `$4` items before `($2, $3)` (`(created_at, id)` is
/// the order's key; the first page passes a key after everything) of each of deposits,
/// withdrawals, transfers out and transfers in, each read from its own index, then merged. A
/// withdrawal's payout id rides in `bank_token`.
pub(crate) const HISTORY_PAGE: &str =
    "SELECT * FROM (SELECT 'deposit' AS kind, id, user_id AS other, amount, currency, \
                 status, bank_token, pay_url, created_at, updated_at, '' AS name, '' AS email \
             FROM deposits \
             WHERE user_id = $1 AND (created_at, id) < ($2, $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4) AS d \
             UNION ALL SELECT * FROM (SELECT 'withdrawal', id, user_id, amount, currency, status, \
                 payout_id, NULL, created_at, updated_at, '', '' \
             FROM withdrawals \
             WHERE user_id = $1 AND (created_at, id) < ($2, $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4) AS w \
             UNION ALL SELECT * FROM (SELECT 'transfer_out', t.id, t.to_user, t.amount, \
                 t.currency, 'success', NULL, NULL, t.created_at, t.created_at, u.name, u.email \
             FROM transfers AS t JOIN users AS u ON u.id = t.to_user \
             WHERE t.from_user = $1 AND (t.created_at, t.id) < ($2, $3) \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $4) AS o \
             UNION ALL SELECT * FROM (SELECT 'transfer_in', t.id, t.from_user, t.amount, \
                 t.currency, 'success', NULL, NULL, t.created_at, t.created_at, u.name, u.email \
             FROM transfers AS t JOIN users AS u ON u.id = t.from_user \
             WHERE t.to_user = $1 AND (t.created_at, t.id) < ($2, $3) \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $4) AS i \
             ORDER BY created_at DESC, id DESC LIMIT $4";

/// The deposits waiting for the bank whose check is due, soonest first (index on
/// `next_check_at`), with their checks so far.
pub(crate) const DUE: &str =
    "SELECT d.id, d.user_id, d.amount, d.currency, d.status, d.bank_token, \
     d.pay_url, d.created_at, d.updated_at, p.checks, p.next_check_at \
     FROM pending_deposits AS p JOIN deposits AS d ON d.id = p.deposit_id \
     WHERE p.next_check_at <= $1 ORDER BY p.next_check_at LIMIT $2";
/// Over every scheduled deposit still processing (a read of the whole schedule: for gauges,
/// now and then).
pub(crate) const PENDING_SUMMARY: &str = "SELECT CAST(COUNT(*) AS BIGINT), \
     CAST(COALESCE(SUM(CASE WHEN p.next_check_at <= $1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
     MIN(p.created_at) FROM pending_deposits AS p JOIN deposits AS d ON d.id = p.deposit_id \
     WHERE d.status = 'processing'";

/// A user's wallet account: its entries (a full read of the ledger: for tests and checks, not
/// for serving), their sum, and the balance kept on the row.
pub(crate) const LEDGER_TOTALS: &str = "SELECT \
     (SELECT COUNT(*) FROM ledger_entries AS e \
      WHERE e.credit_account = a.id OR e.debit_account = a.id), \
     (SELECT CAST(COALESCE(SUM(CASE WHEN e.credit_account = a.id THEN e.amount \
                                     ELSE -e.amount END), 0) AS BIGINT) \
      FROM ledger_entries AS e WHERE e.credit_account = a.id OR e.debit_account = a.id), \
     a.balance \
     FROM ledger_accounts AS a WHERE a.user_id = $1 AND a.currency = $2";

/// The read half of [`crate::Store`] over one pool type.
macro_rules! reads_for {
    ($module:ident, $pool:ty, $db:ty, $many:ident) => {
        pub(crate) mod $module {
            use crate::domain::{
                BankToken, Currency, DepositId, EmailKey, PayoutId, SessionHash, UserId,
                WithdrawalId,
            };
            use crate::reads::*;
            use crate::{
                Balance, Deposit, DepositRow, Due, DueWithdrawal, HistoryItem, HistoryRow,
                KeyedTransfer, KeyedTransferRow, LedgerTotals, PendingSummary, SessionDbRow,
                SessionRow, StoreError, User, UserRow, Withdrawal, WithdrawalRow,
            };

            /// The row `sql` finds with `binds` (its text parameters, in order), read as an `R`
            /// and checked into a `T`.
            async fn one<R, T>(
                pool: &$pool,
                sql: &'static str,
                binds: &[&str],
            ) -> Result<Option<T>, StoreError>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = StoreError>,
            {
                let mut query = sqlx::query_as::<$db, R>(sql);
                for value in binds {
                    query = query.bind(*value);
                }
                query
                    .fetch_optional(pool)
                    .await?
                    .map(T::try_from)
                    .transpose()
            }

            pub async fn user(pool: &$pool, id: UserId) -> Result<Option<User>, StoreError> {
                one::<UserRow, _>(pool, USER, &[&id.to_string()]).await
            }

            /// The rows `sql` finds for `list` (bound as one JSON array of text), checked into
            /// users.
            async fn users_of(
                pool: &$pool,
                sql: &'static str,
                list: Vec<&str>,
            ) -> Result<Vec<User>, StoreError> {
                let list = serde_json::to_string(&list).expect("strings serialize");
                let rows: Vec<UserRow> = sqlx::query_as(sql).bind(list).fetch_all(pool).await?;
                rows.into_iter().map(User::try_from).collect()
            }

            pub async fn users(pool: &$pool, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
                let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                let ids = ids.iter().map(String::as_str).collect();
                users_of(pool, crate::reads::$many::USERS, ids).await
            }

            pub async fn users_by_email(
                pool: &$pool,
                emails: &[EmailKey],
            ) -> Result<Vec<User>, StoreError> {
                let emails = emails.iter().map(EmailKey::as_str).collect();
                users_of(pool, crate::reads::$many::USERS_BY_EMAIL, emails).await
            }

            pub async fn session(
                pool: &$pool,
                hash: &SessionHash,
            ) -> Result<Option<SessionRow>, StoreError> {
                one::<SessionDbRow, _>(pool, SESSION, &[hash.as_str()]).await
            }

            pub async fn balance(pool: &$pool, user: UserId) -> Result<Balance, StoreError> {
                let row: Option<(i64, i64)> = sqlx::query_as(BALANCE)
                    .bind(user.to_string())
                    .bind(Currency::default().code())
                    .fetch_optional(pool)
                    .await?;
                let (paise, entry) = row.unwrap_or_default();
                Ok(Balance { paise, entry })
            }

            pub async fn deposit(
                pool: &$pool,
                id: &DepositId,
            ) -> Result<Option<Deposit>, StoreError> {
                one::<DepositRow, _>(pool, DEPOSIT, &[id.as_str()]).await
            }

            pub async fn deposit_by_token(
                pool: &$pool,
                token: &BankToken,
            ) -> Result<Option<Deposit>, StoreError> {
                one::<DepositRow, _>(pool, DEPOSIT_BY_TOKEN, &[token.as_str()]).await
            }

            pub async fn deposit_by_key(
                pool: &$pool,
                user: UserId,
                key: &str,
            ) -> Result<Option<Deposit>, StoreError> {
                one::<DepositRow, _>(pool, DEPOSIT_BY_KEY, &[&user.to_string(), key]).await
            }

            pub async fn withdrawal(
                pool: &$pool,
                id: &WithdrawalId,
            ) -> Result<Option<Withdrawal>, StoreError> {
                one::<WithdrawalRow, _>(pool, WITHDRAWAL, &[id.as_str()]).await
            }

            pub async fn withdrawal_by_payout(
                pool: &$pool,
                payout: &PayoutId,
            ) -> Result<Option<Withdrawal>, StoreError> {
                one::<WithdrawalRow, _>(pool, WITHDRAWAL_BY_PAYOUT, &[payout.as_str()]).await
            }

            pub async fn withdrawal_by_key(
                pool: &$pool,
                user: UserId,
                key: &str,
            ) -> Result<Option<Withdrawal>, StoreError> {
                one::<WithdrawalRow, _>(pool, WITHDRAWAL_BY_KEY, &[&user.to_string(), key]).await
            }

            pub async fn due_withdrawals(
                pool: &$pool,
                now: i64,
                limit: u32,
            ) -> Result<Vec<DueWithdrawal>, StoreError> {
                #[derive(sqlx::FromRow)]
                struct DueRow {
                    #[sqlx(flatten)]
                    withdrawal: WithdrawalRow,
                    checks: i32,
                    next_check_at: i64,
                }
                let rows: Vec<DueRow> = sqlx::query_as(DUE_WITHDRAWALS)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(DueWithdrawal {
                            withdrawal: Withdrawal::try_from(r.withdrawal)?,
                            checks: r.checks.max(0) as u32,
                            due_at: r.next_check_at,
                        })
                    })
                    .collect()
            }

            pub async fn transfer_by_key(
                pool: &$pool,
                user: UserId,
                key: &str,
            ) -> Result<Option<KeyedTransfer>, StoreError> {
                one::<KeyedTransferRow, _>(pool, TRANSFER_BY_KEY, &[&user.to_string(), key]).await
            }

            pub async fn user_by_email(
                pool: &$pool,
                email: &EmailKey,
            ) -> Result<Option<User>, StoreError> {
                one::<UserRow, _>(pool, USER_BY_EMAIL, &[email.as_str()]).await
            }

            pub async fn history_page(
                pool: &$pool,
                user: UserId,
                before: Option<(i64, String)>,
                limit: u32,
            ) -> Result<Vec<HistoryItem>, StoreError> {
                // After every id: ids are ASCII letters, digits and `_`.
                let (created_at, id) = before.unwrap_or((i64::MAX, "~".into()));
                let rows: Vec<HistoryRow> = sqlx::query_as(HISTORY_PAGE)
                    .bind(user.to_string())
                    .bind(created_at)
                    .bind(id)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.into_iter().map(|r| r.into_item(user)).collect()
            }

            pub async fn due_deposits(
                pool: &$pool,
                now: i64,
                limit: u32,
            ) -> Result<Vec<Due>, StoreError> {
                #[derive(sqlx::FromRow)]
                struct DueRow {
                    #[sqlx(flatten)]
                    deposit: DepositRow,
                    checks: i32,
                    next_check_at: i64,
                }
                let rows: Vec<DueRow> = sqlx::query_as(DUE)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(Due {
                            deposit: Deposit::try_from(r.deposit)?,
                            checks: r.checks.max(0) as u32,
                            due_at: r.next_check_at,
                        })
                    })
                    .collect()
            }

            pub async fn pending_summary(
                pool: &$pool,
                now: i64,
            ) -> Result<PendingSummary, StoreError> {
                let (pending, due, oldest_created_at): (i64, i64, Option<i64>) =
                    sqlx::query_as(PENDING_SUMMARY)
                        .bind(now)
                        .fetch_one(pool)
                        .await?;
                Ok(PendingSummary {
                    pending,
                    due,
                    oldest_created_at,
                })
            }

            pub async fn ledger_totals(
                pool: &$pool,
                user: UserId,
            ) -> Result<LedgerTotals, StoreError> {
                let row: Option<(i64, i64, i64)> = sqlx::query_as(LEDGER_TOTALS)
                    .bind(user.to_string())
                    .bind(Currency::default().code())
                    .fetch_optional(pool)
                    .await?;
                Ok(
                    row.map_or_else(LedgerTotals::default, |(entries, sum, balance)| {
                        LedgerTotals {
                            entries,
                            sum,
                            balance,
                        }
                    }),
                )
            }
        }
    };
}

/// `impl Store for $store`: its `ping` and `commit` (inherent methods, per backend) and the
/// reads of [`reads_for!`]'s `$reads` module over its `pool`, written once for both backends.
macro_rules! impl_store {
    ($store:ty, $reads:ident) => {
        #[async_trait::async_trait]
        impl crate::Store for $store {
            async fn ping(&self) -> Result<(), crate::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn commit(
                &self,
                batch: &crate::Batch,
            ) -> Result<crate::Outcomes, crate::StoreError> {
                self.write_batch(batch).await
            }

            async fn user(
                &self,
                id: crate::domain::UserId,
            ) -> Result<Option<crate::User>, crate::StoreError> {
                crate::reads::$reads::user(&self.pool, id).await
            }

            async fn users(
                &self,
                ids: &[crate::domain::UserId],
            ) -> Result<Vec<crate::User>, crate::StoreError> {
                crate::reads::$reads::users(&self.pool, ids).await
            }

            async fn session(
                &self,
                hash: &crate::domain::SessionHash,
            ) -> Result<Option<crate::SessionRow>, crate::StoreError> {
                crate::reads::$reads::session(&self.pool, hash).await
            }

            async fn ended_sessions_since(
                &self,
                since: Option<i64>,
            ) -> Result<crate::EndedSessions, crate::StoreError> {
                self.ended_sessions(since).await
            }

            async fn balance(
                &self,
                user: crate::domain::UserId,
            ) -> Result<crate::Balance, crate::StoreError> {
                crate::reads::$reads::balance(&self.pool, user).await
            }

            async fn deposit(
                &self,
                id: &crate::domain::DepositId,
            ) -> Result<Option<crate::Deposit>, crate::StoreError> {
                crate::reads::$reads::deposit(&self.pool, id).await
            }

            async fn deposit_by_token(
                &self,
                token: &crate::domain::BankToken,
            ) -> Result<Option<crate::Deposit>, crate::StoreError> {
                crate::reads::$reads::deposit_by_token(&self.pool, token).await
            }

            async fn deposit_by_key(
                &self,
                user: crate::domain::UserId,
                key: &str,
            ) -> Result<Option<crate::Deposit>, crate::StoreError> {
                crate::reads::$reads::deposit_by_key(&self.pool, user, key).await
            }

            async fn transfer_by_key(
                &self,
                user: crate::domain::UserId,
                key: &str,
            ) -> Result<Option<crate::KeyedTransfer>, crate::StoreError> {
                crate::reads::$reads::transfer_by_key(&self.pool, user, key).await
            }

            async fn withdrawal(
                &self,
                id: &crate::domain::WithdrawalId,
            ) -> Result<Option<crate::Withdrawal>, crate::StoreError> {
                crate::reads::$reads::withdrawal(&self.pool, id).await
            }

            async fn withdrawal_by_payout(
                &self,
                payout: &crate::domain::PayoutId,
            ) -> Result<Option<crate::Withdrawal>, crate::StoreError> {
                crate::reads::$reads::withdrawal_by_payout(&self.pool, payout).await
            }

            async fn withdrawal_by_key(
                &self,
                user: crate::domain::UserId,
                key: &str,
            ) -> Result<Option<crate::Withdrawal>, crate::StoreError> {
                crate::reads::$reads::withdrawal_by_key(&self.pool, user, key).await
            }

            async fn due_withdrawals(
                &self,
                now: i64,
                limit: u32,
            ) -> Result<Vec<crate::DueWithdrawal>, crate::StoreError> {
                crate::reads::$reads::due_withdrawals(&self.pool, now, limit).await
            }

            async fn user_by_email(
                &self,
                email: &crate::domain::EmailKey,
            ) -> Result<Option<crate::User>, crate::StoreError> {
                crate::reads::$reads::user_by_email(&self.pool, email).await
            }

            async fn users_by_email(
                &self,
                emails: &[crate::domain::EmailKey],
            ) -> Result<Vec<crate::User>, crate::StoreError> {
                crate::reads::$reads::users_by_email(&self.pool, emails).await
            }

            async fn history_page(
                &self,
                user: crate::domain::UserId,
                before: Option<(i64, String)>,
                limit: u32,
            ) -> Result<Vec<crate::HistoryItem>, crate::StoreError> {
                crate::reads::$reads::history_page(&self.pool, user, before, limit).await
            }

            async fn due_deposits(
                &self,
                now: i64,
                limit: u32,
            ) -> Result<Vec<crate::Due>, crate::StoreError> {
                crate::reads::$reads::due_deposits(&self.pool, now, limit).await
            }

            async fn pending_summary(
                &self,
                now: i64,
            ) -> Result<crate::PendingSummary, crate::StoreError> {
                crate::reads::$reads::pending_summary(&self.pool, now).await
            }

            async fn ledger_totals(
                &self,
                user: crate::domain::UserId,
            ) -> Result<crate::LedgerTotals, crate::StoreError> {
                crate::reads::$reads::ledger_totals(&self.pool, user).await
            }

            async fn audit(&self) -> Result<crate::audit::Report, crate::StoreError> {
                crate::audit::$reads::audit(&self.pool).await
            }
        }
    };
}

reads_for!(sqlite, sqlx::SqlitePool, sqlx::Sqlite, sqlite_many);
reads_for!(postgres, sqlx::PgPool, sqlx::Postgres, postgres_many);

// Many keys in one read, bound as one JSON array of text, which each database reads its own
// way. Each keeps the plan of the one-key read: a primary-key look-up per id, and per email
// the newest entry of `users_email` (as `USER_BY_EMAIL`). Checked with EXPLAIN on 10,000 users:
// PostgreSQL hashes the whole table for `id IN (SELECT … FROM json_array_elements_text(…))`
// and for a join on a correlated subquery, hence `= ANY(ARRAY(…))` and `LATERAL` there.

mod sqlite_many {
    pub(crate) const USERS: &str = "SELECT id, email, email_key, name, picture FROM users \
         WHERE id IN (SELECT value FROM json_each($1))";
    pub(crate) const USERS_BY_EMAIL: &str =
        "SELECT u.id, u.email, u.email_key, u.name, u.picture FROM json_each($1) AS k \
         JOIN users AS u ON u.id = (SELECT v.id FROM users AS v WHERE v.email_key = k.value \
         ORDER BY v.signed_in_at DESC, v.id DESC LIMIT 1)";
}

mod postgres_many {
    pub(crate) const USERS: &str = "SELECT id, email, email_key, name, picture FROM users \
         WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))";
    pub(crate) const USERS_BY_EMAIL: &str = "SELECT u.id, u.email, u.email_key, u.name, u.picture \
         FROM json_array_elements_text($1::json) AS k CROSS JOIN LATERAL ( \
         SELECT v.id, v.email, v.email_key, v.name, v.picture FROM users AS v \
         WHERE v.email_key = k.value ORDER BY v.signed_in_at DESC, v.id DESC LIMIT 1) AS u";
}

pub(crate) use impl_store;

/// Sign-ins, sign-in states and purges, written once for both databases like the reads (they
/// are one at a time, not part of a set-based batch statement: none is a hot path).
macro_rules! accounts_for {
    ($module:ident, $conn:ty) => {
        pub(crate) mod $module {
            use crate::batch::{AccountItem, Plan};
            use crate::domain::{Currency, UserId};
            use crate::StoreError;

            /// The batch's sign-ins, sign-in states and purges, one statement each, before its
            /// set-based statements.
            pub async fn write(conn: &mut $conn, plan: &mut Plan<'_>) -> Result<(), StoreError> {
                let mut users = Vec::with_capacity(plan.accounts.len());
                for account in &plan.accounts {
                    users.push(upsert(conn, account).await?);
                }
                for user in users {
                    plan.push_user(user);
                }
                let mut fresh = Vec::new();
                for state in &plan.states {
                    let inserted = sqlx::query(
                        "INSERT INTO sign_in_states (state_hash, expires_at) VALUES ($1, $2) \
                         ON CONFLICT (state_hash) DO NOTHING",
                    )
                    .bind(state.hash)
                    .bind(state.expires_at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 1 {
                        fresh.push(state.pos);
                    }
                }
                for pos in fresh {
                    plan.state_fresh(pos);
                }
                for (now, idle_ms) in &plan.purges {
                    purge(conn, *now, *idle_ms).await?;
                }
                Ok(())
            }

            async fn purge(conn: &mut $conn, now: i64, idle_ms: i64) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
                    .bind(now)
                    .bind(now - idle_ms)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM sign_in_states WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Finds the user behind `(provider, sub)`, refreshing the profile, or creates the
            /// user, its wallet account in the ledger and the sign-in account.
            pub async fn upsert(
                conn: &mut $conn,
                a: &AccountItem<'_>,
            ) -> Result<UserId, StoreError> {
                let existing: Option<(String,)> = sqlx::query_as(
                    "SELECT user_id FROM auth_accounts WHERE provider = $1 AND sub = $2",
                )
                .bind(a.provider)
                .bind(a.sub.as_str())
                .fetch_optional(&mut *conn)
                .await?;
                if let Some((id,)) = existing {
                    sqlx::query(
                        "UPDATE users SET email = $1, name = $2, picture = $3, email_key = $5, \
                         signed_in_at = $6 WHERE id = $4",
                    )
                    .bind(a.email)
                    .bind(a.name)
                    .bind(a.picture)
                    .bind(&id)
                    .bind(a.email_key.as_ref().map(|k| k.as_str()))
                    .bind(a.now)
                    .execute(&mut *conn)
                    .await?;
                    return UserId::parse(&id).map_err(StoreError::Corrupt);
                }
                let id = UserId::new();
                create(conn, a, &id).await?;
                Ok(id)
            }

            async fn create(
                conn: &mut $conn,
                a: &AccountItem<'_>,
                id: &UserId,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, email, name, picture, created_at, email_key, \
                     signed_in_at) VALUES ($1, $2, $3, $4, $5, $6, $5)",
                )
                .bind(id.to_string())
                .bind(a.email)
                .bind(a.name)
                .bind(a.picture)
                .bind(a.now)
                .bind(a.email_key.as_ref().map(|k| k.as_str()))
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO ledger_accounts (user_id, currency, balance, updated_at) \
                     VALUES ($1, $2, 0, $3)",
                )
                .bind(id.to_string())
                .bind(Currency::default().code())
                .bind(a.now)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "INSERT INTO auth_accounts (provider, sub, user_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(a.provider)
                .bind(a.sub.as_str())
                .bind(id.to_string())
                .bind(a.now)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
        }
    };
}

accounts_for!(accounts_sqlite, sqlx::SqliteConnection);
accounts_for!(accounts_postgres, sqlx::PgConnection);
