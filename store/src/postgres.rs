//! PostgreSQL: production. Each kind of change in a batch is written by one set-based statement
//! over `UNNEST` arrays instead of a round trip per change; the money (settlements and transfers
//! as ledger entries, with the accounts they change) is one statement of data-modifying CTEs,
//! and a batch of one kind, such as a storm of webhooks, is that statement alone, a transaction
//! without BEGIN and COMMIT.

use super::batch::{NewItem, Plan, TransferItem, Written};
use super::*;
use crate::reads::accounts_postgres as accounts;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // A transaction left open by a process that stopped mid-commit (paused, cut off) would
        // keep the accounts its fence locked, and every other process's postings waiting on
        // them: the server ends it after this long. A writer's transaction never idles that long
        // between its statements.
        let options = PgConnectOptions::from_str(&crate::redact::pg_url_for_sqlx(url))?
            .options([("idle_in_transaction_session_timeout", "5000")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// [`Store::ended_sessions_since`], by the database's clock.
    async fn ended_sessions(&self, since: Option<i64>) -> Result<EndedSessions, StoreError> {
        let (read_at, complete, hashes): (i64, bool, Vec<String>) = sqlx::query_as(
            "WITH c AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now_ms) \
             SELECT c.now_ms, \
                 COALESCE((SELECT bool_and(n.lists_logouts) FROM cluster_nodes AS n \
                           WHERE n.expires_at > now()), true), \
                 ARRAY(SELECT DISTINCT e.token_hash FROM session_ends AS e \
                       WHERE e.ended_at > to_timestamp( \
                           (COALESCE($1, c.now_ms - $3) - $2)::float8 / 1000)) \
             FROM c",
        )
        .bind(since)
        .bind(crate::ENDED_SESSIONS_MARGIN_MS)
        .bind(crate::ENDED_SESSIONS_KEPT_MS)
        .fetch_one(&self.pool)
        .await?;
        Ok(EndedSessions {
            hashes: (hashes.into_iter())
                .map(crate::domain::SessionHash::from_stored)
                .collect(),
            read_at,
            complete,
        })
    }
}

/// The kinds of money a batch moves: the parts of the ledger statement ([`post_sql`]) it needs.
/// A statement with only the parts a batch uses plans in a fraction of the time of one with
/// all of them (PostgreSQL plans each execution afresh: the arrays differ every time). Two more
/// flags shape it: `fenced`, the batch's fence inside the statement, gating every write of it;
/// `inserts_transfers`, the transfers' rows inserted by the statement itself (otherwise they
/// were inserted before it, by [`insert_transfers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    credits: bool,
    transfers: bool,
    withdrawals: bool,
    payouts: bool,
    fenced: bool,
    inserts_transfers: bool,
}

impl Parts {
    fn index(self) -> usize {
        usize::from(self.credits)
            | usize::from(self.transfers) << 1
            | usize::from(self.withdrawals) << 2
            | usize::from(self.payouts) << 3
            | usize::from(self.fenced) << 4
            | usize::from(self.inserts_transfers) << 5
    }

    fn of_index(i: usize) -> Parts {
        Parts {
            credits: i & 1 != 0,
            transfers: i & 2 != 0,
            withdrawals: i & 4 != 0,
            payouts: i & 8 != 0,
            fenced: i & 16 != 0,
            inserts_transfers: i & 32 != 0,
        }
    }

    /// Whether the statement moves any money.
    fn any(self) -> bool {
        self.credits || self.transfers || self.withdrawals || self.payouts
    }
}

/// The batch's money as ledger entries, in one statement, with the parts `parts` names, built
/// once per combination. Settlements whose deposit is still processing change it (their
/// pending rows are dropped later, by reconciliation), with the user, amount and currency of the
/// deposit's own row; payouts' ends likewise change a withdrawal still processing. Each credit is
/// an entry from bank clearing to the user, each transfer one from the sender to the recipient,
/// each withdrawal one from the user to payouts in flight, and each payout's end one from payouts
/// in flight to bank clearing (paid) or back to the user (failed): in that order of kinds, each
/// kind in its order in the batch (`rank`, `seq`: the same order as SQLite's script, so both
/// databases number the entries alike). A missing account leaves a NULL that the entry's NOT
/// NULL refuses. Each account then changes once by the sum of its entries in the batch, and
/// records the last entry it includes; a user's balance below zero fails the statement (the
/// table's CHECK). It answers the balances after it of the user accounts it changed (tag 1), the
/// settlements applied (tag 0), the payouts' ends applied (tag 2) and, when it inserts them, the
/// transfers inserted (tag 3: every one, or the statement failed).
/// Its parameters are the fence's four (when fenced: see `onramp_fence` in the migrations),
/// then the arrays of the parts present, in the order above (see [`post`]). A fenced statement
/// reads every input through the `fence` CTE, so no row is written before the fence's locks are
/// held and its leases checked; a lease lost raises, and the statement writes nothing.
fn post_sql(parts: Parts) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| (0..64).map(|i| build_post(Parts::of_index(i))).collect());
    &texts[parts.index()]
}

fn build_post(parts: Parts) -> String {
    let (mut ctes, mut moves, mut answers) = (Vec::new(), Vec::new(), Vec::new());
    let gate = if parts.fenced {
        ctes.push(
            "fence AS MATERIALIZED (SELECT onramp_fence($1::text, $2::int4[], $3::int8[], \
                 $4::int4[]) AS f)"
                .to_owned(),
        );
        "fence, "
    } else {
        ""
    };
    let mut n = if parts.fenced { 4 } else { 0 };
    let mut arrays = |types: &[&str]| {
        let list: Vec<String> = (types.iter())
            .map(|t| {
                n += 1;
                format!("${n}::{t}[]")
            })
            .collect();
        list.join(", ")
    };
    if parts.credits {
        let input = arrays(&["int8", "text", "text", "int8"]);
        ctes.push(format!(
            "input AS (SELECT u.* FROM {gate}UNNEST({input}) AS u(seq, deposit_id, status, now)), \
             settled AS ( \
                 UPDATE deposits AS d SET status = i.status, updated_at = i.now FROM input AS i \
                 WHERE d.id = i.deposit_id AND d.status = 'processing' \
                 RETURNING i.seq, d.id AS deposit_id, i.status, d.user_id, d.amount, d.currency, \
                     i.now)"
        ));
        moves.push(
            "SELECT 0 AS rank, s.seq, 'deposit' AS kind, s.deposit_id AS ref, c.id AS debit, \
                 a.id AS credit, s.amount, s.now \
             FROM settled AS s \
             LEFT JOIN ledger_accounts AS a ON a.user_id = s.user_id AND a.currency = s.currency \
             LEFT JOIN ledger_accounts AS c ON c.system = 'bank_clearing' \
                 AND c.currency = s.currency \
             WHERE s.status = 'success'",
        );
        answers.push("SELECT 0, seq, NULL, NULL, NULL FROM settled");
    }
    if parts.transfers && parts.inserts_transfers {
        let input = arrays(&[
            "int8", "text", "text", "text", "int8", "text", "int8", "text", "text", "text",
        ]);
        // A plain insert: a key another transfer of the sender's holds fails the statement
        // (see [`PgStore::post_alone`]), which costs less, in the common batch that has no such
        // key, than asking first or inserting speculatively (`ON CONFLICT`).
        ctes.push(format!(
            "transfer_input AS (SELECT t.* FROM {gate}UNNEST({input}) WITH ORDINALITY \
                 AS t(seq, id, from_user, to_user, amount, currency, now, key, to_name, to_email, \
                     ord)), \
             new_transfers AS ( \
                 INSERT INTO transfers (id, from_user, to_user, amount, currency, \
                     idempotency_key, created_at, to_name, to_email) \
                 SELECT id, from_user, to_user, amount, currency, key, now, to_name, to_email \
                 FROM transfer_input ORDER BY ord), \
             sent AS (SELECT seq, id, from_user, to_user, amount, currency, now \
                 FROM transfer_input)"
        ));
        answers.push("SELECT 3, seq, NULL, NULL, NULL FROM sent");
    } else if parts.transfers {
        let input = arrays(&["int8", "text", "text", "text", "int8", "text", "int8"]);
        ctes.push(format!(
            "sent AS (SELECT t.* FROM {gate}UNNEST({input}) \
                 AS t(seq, id, from_user, to_user, amount, currency, now))"
        ));
    }
    if parts.transfers {
        moves.push(
            "SELECT 1 AS rank, t.seq, 'transfer' AS kind, t.id AS ref, f.id AS debit, \
                 r.id AS credit, t.amount, t.now \
             FROM sent AS t \
             LEFT JOIN ledger_accounts AS f ON f.user_id = t.from_user AND f.currency = t.currency \
             LEFT JOIN ledger_accounts AS r ON r.user_id = t.to_user AND r.currency = t.currency",
        );
    }
    if parts.withdrawals {
        let input = arrays(&["int8", "text", "text", "int8", "text", "int8"]);
        ctes.push(format!(
            "withdrawn AS (SELECT w.* FROM {gate}UNNEST({input}) \
                 AS w(seq, id, user_id, amount, currency, now))"
        ));
        moves.push(
            "SELECT 2 AS rank, w.seq, 'withdrawal' AS kind, w.id AS ref, a.id AS debit, \
                 p.id AS credit, w.amount, w.now \
             FROM withdrawn AS w \
             LEFT JOIN ledger_accounts AS a ON a.user_id = w.user_id AND a.currency = w.currency \
             LEFT JOIN ledger_accounts AS p ON p.system = 'payouts_in_flight' \
                 AND p.currency = w.currency",
        );
    }
    if parts.payouts {
        let input = arrays(&["int8", "text", "text", "int8", "text"]);
        ctes.push(format!(
            "payout_input AS (SELECT u.* FROM {gate}UNNEST({input}) \
                 AS u(seq, withdrawal_id, status, now, answer)), \
             paid AS ( \
                 UPDATE withdrawals AS w SET status = i.status, \
                     first_answer = COALESCE(i.answer, w.first_answer), updated_at = i.now \
                 FROM payout_input AS i \
                 WHERE w.id = i.withdrawal_id AND w.status = 'processing' \
                 RETURNING i.seq, w.id, i.status, w.user_id, w.amount, w.currency, i.now)"
        ));
        moves.push(
            "SELECT 3 AS rank, s.seq, \
                 CASE WHEN s.status = 'success' THEN 'payout' ELSE 'payout_return' END AS kind, \
                 s.id AS ref, p.id AS debit, \
                 CASE WHEN s.status = 'success' THEN c.id ELSE a.id END AS credit, s.amount, s.now \
             FROM paid AS s \
             LEFT JOIN ledger_accounts AS p ON p.system = 'payouts_in_flight' \
                 AND p.currency = s.currency \
             LEFT JOIN ledger_accounts AS c ON c.system = 'bank_clearing' \
                 AND c.currency = s.currency \
             LEFT JOIN ledger_accounts AS a ON a.user_id = s.user_id AND a.currency = s.currency",
        );
        answers.push("SELECT 2, seq, NULL, NULL, NULL FROM paid");
    }
    let mut text = format!(
        "WITH {}, moves AS ({}), \
         entries AS ( \
             INSERT INTO ledger_entries (kind, ref, debit_account, credit_account, amount, \
                 created_at) \
             SELECT kind, ref, debit, credit, amount, now FROM moves ORDER BY rank, seq \
             RETURNING id, debit_account, credit_account, amount, created_at \
         ), deltas AS ( \
             SELECT account, SUM(delta) AS delta, MAX(id) AS last, MAX(created_at) AS at \
             FROM (SELECT credit_account AS account, amount AS delta, id, created_at \
                   FROM entries \
                   UNION ALL \
                   SELECT debit_account, -amount, id, created_at FROM entries) AS x \
             GROUP BY account \
         ), accounts AS ( \
             UPDATE ledger_accounts AS a \
             SET balance = a.balance + d.delta, last_entry = GREATEST(a.last_entry, d.last), \
                 updated_at = d.at \
             FROM deltas AS d WHERE a.id = d.account \
             RETURNING a.user_id, a.balance, a.last_entry \
         ) \
         SELECT 1 AS tag, 0::int8 AS seq, user_id, balance, last_entry FROM accounts \
         WHERE user_id IS NOT NULL",
        ctes.join(", "),
        moves.join(" UNION ALL "),
    );
    for answer in answers {
        text.push_str(" UNION ALL ");
        text.push_str(answer);
    }
    text
}

/// One part of writing a batch, in the order they run. The list for a batch ([`steps`]) is
/// both what runs and what decides the transaction: a batch whose list is one step of one
/// statement runs without BEGIN and COMMIT (a statement is a transaction of its own), and every
/// other batch runs in one transaction. [`Run`] holds the decision to what actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Sign-ins, sign-in states and purges, a statement or more each.
    OneAtATime,
    Deposits,
    Orders,
    Sessions,
    Schedule,
    Transfers,
    Withdrawals,
    Payouts,
    /// The ledger: settlements, payouts' ends and the transfers and withdrawals just inserted.
    Post,
}

impl Step {
    /// Whether this step runs exactly one statement for `plan`.
    fn one_statement(self, plan: &Plan<'_>) -> bool {
        match self {
            Step::OneAtATime => false,
            // A key held by an older deposit is given up first.
            Step::Deposits => !plan.has_deposit_keys(),
            Step::Orders | Step::Post => true,
            Step::Sessions => {
                [
                    !plan.new_sessions.is_empty(),
                    !plan.touches.is_empty(),
                    !plan.ended_sessions.is_empty(),
                ]
                .iter()
                .filter(|k| **k)
                .count()
                    == 1
            }
            Step::Schedule => {
                [
                    !plan.checks.is_empty(),
                    !plan.forgets.is_empty(),
                    !plan.withdrawal_checks.is_empty(),
                    !plan.withdrawal_forgets.is_empty(),
                ]
                .iter()
                .filter(|k| **k)
                .count()
                    == 1
            }
            // A key held by an older withdrawal is given up first.
            Step::Withdrawals => !plan.has_withdrawal_keys(),
            Step::Payouts => true,
            // A key refused may be given up and the insert tried again.
            Step::Transfers => !plan.has_transfer_keys(),
        }
    }
}

/// The steps `plan` needs, in order.
fn steps(plan: &Plan<'_>) -> Vec<Step> {
    let sessions = !plan.new_sessions.is_empty()
        || !plan.touches.is_empty()
        || !plan.ended_sessions.is_empty();
    let schedules = !plan.checks.is_empty()
        || !plan.forgets.is_empty()
        || !plan.withdrawal_checks.is_empty()
        || !plan.withdrawal_forgets.is_empty();
    [
        (Step::OneAtATime, plan.has_one_at_a_time()),
        (Step::Deposits, !plan.deposits.is_empty()),
        (Step::Orders, !plan.orders.is_empty()),
        (Step::Sessions, sessions),
        (Step::Schedule, schedules),
        (Step::Transfers, !plan.transfers.is_empty()),
        (Step::Withdrawals, !plan.withdrawals.is_empty()),
        (Step::Payouts, !plan.payouts.is_empty()),
        (Step::Post, plan.moves_money()),
    ]
    .into_iter()
    .filter_map(|(step, needed)| needed.then_some(step))
    .collect()
}

/// The statements of one batch on one connection. Outside a transaction it refuses a second
/// statement before sending it: a batch that [`steps`] judged one statement and that needs
/// more would otherwise be written halfway.
struct Run<'c> {
    conn: &'c mut PgConnection,
    in_transaction: bool,
    statements: usize,
}

impl Run<'_> {
    /// The connection, for the next statement.
    fn next(&mut self) -> Result<&mut PgConnection, StoreError> {
        if !self.in_transaction && self.statements == 1 {
            return Err(StoreError::Corrupt(
                "a batch written without a transaction needs a second statement".into(),
            ));
        }
        self.statements += 1;
        Ok(&mut *self.conn)
    }
}

/// Writes `plan` by its `steps` and answers what the database decided.
async fn write(
    run: &mut Run<'_>,
    plan: &mut Plan<'_>,
    steps: &[Step],
) -> Result<Written, StoreError> {
    let mut written = Written::default();
    for step in steps {
        match step {
            Step::OneAtATime => accounts::write(run.next()?, plan).await?,
            Step::Deposits => {
                written.inserted = insert_new(run, &plan.deposits, &NEW_DEPOSITS).await?
            }
            Step::Orders => write_orders(run, plan).await?,
            Step::Sessions => write_sessions(run, plan).await?,
            Step::Schedule => write_schedule(run, plan).await?,
            Step::Transfers => written.transferred = insert_transfers(run, plan).await?,
            Step::Withdrawals => {
                written.withdrawn = insert_new(run, &plan.withdrawals, &NEW_WITHDRAWALS).await?
            }
            Step::Payouts => write_payouts(run, plan).await?,
            Step::Post => {
                let posted = post(run, plan, &written, POST_AFTER_INSERTS).await?;
                written.settled = posted.settled;
                written.paid = posted.paid;
                written.balances = posted.balances;
            }
        }
    }
    Ok(written)
}

async fn write_orders(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<(), StoreError> {
    let o = &plan.orders;
    sqlx::query(
        "UPDATE deposits AS d SET bank_token = o.token, pay_url = o.pay_url, updated_at = o.now \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS o(id, token, pay_url, now) \
         WHERE d.id = o.id",
    )
    .bind(o.iter().map(|o| o.deposit).collect::<Vec<_>>())
    .bind(o.iter().map(|o| o.token).collect::<Vec<_>>())
    .bind(o.iter().map(|o| o.pay_url).collect::<Vec<_>>())
    .bind(o.iter().map(|o| o.now).collect::<Vec<_>>())
    .execute(run.next()?)
    .await?;
    Ok(())
}

/// New sessions, renewals and logouts.
async fn write_sessions(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.new_sessions.is_empty() {
        let s = &plan.new_sessions;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at) \
             SELECT hash, user_id, created_at, expires_at, created_at \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) AS s(hash, user_id, created_at, expires_at)",
        )
        .bind(s.iter().map(|s| s.hash).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.user.as_str()).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.created_at).collect::<Vec<_>>())
        .bind(s.iter().map(|s| s.expires_at).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    if !plan.touches.is_empty() {
        let t = &plan.touches;
        sqlx::query(
            "UPDATE sessions AS s SET last_seen_at = t.seen \
             FROM (SELECT hash, MAX(seen) AS seen FROM UNNEST($1::text[], $2::int8[]) AS u(hash, seen) \
                   GROUP BY hash) AS t \
             WHERE s.token_hash = t.hash AND s.last_seen_at < t.seen",
        )
        .bind(t.iter().map(|t| t.hash).collect::<Vec<_>>())
        .bind(t.iter().map(|t| t.seen).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    if !plan.ended_sessions.is_empty() {
        let hashes: Vec<&str> = plan.ended_sessions.iter().map(|e| e.hash).collect();
        // Each logout is listed for the other processes (see `recently_ended_sessions`), and
        // the list keeps only its last minute: it is read every fraction of a second, for a
        // window of seconds.
        sqlx::query(
            "WITH gone AS (DELETE FROM sessions WHERE token_hash = ANY($1) RETURNING token_hash), \
             old AS (DELETE FROM session_ends \
                     WHERE ended_at < clock_timestamp() - interval '1 minute') \
             INSERT INTO session_ends (token_hash) SELECT token_hash FROM gone",
        )
        .bind(hashes)
        .execute(run.next()?)
        .await?;
    }
    Ok(())
}

/// Reconciliation's next checks, and the rows of settled deposits it drops.
async fn write_schedule(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.checks.is_empty() {
        let c = &plan.checks;
        sqlx::query(
            "UPDATE pending_deposits AS p SET next_check_at = c.next, checks = p.checks + 1 \
             FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS c(id, due, next) \
             WHERE p.next_check_at = c.due AND p.deposit_id = c.id",
        )
        .bind(c.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.due).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.next).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    if !plan.forgets.is_empty() {
        let f = &plan.forgets;
        sqlx::query(
            "DELETE FROM pending_deposits AS p \
             USING UNNEST($1::text[], $2::int8[]) AS f(id, due) \
             WHERE p.next_check_at = f.due AND p.deposit_id = f.id",
        )
        .bind(f.iter().map(|f| f.id).collect::<Vec<_>>())
        .bind(f.iter().map(|f| f.due).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    write_withdrawal_schedule(run, plan).await
}

/// Reconciliation's next checks of withdrawals, and the rows of settled ones it drops.
async fn write_withdrawal_schedule(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<(), StoreError> {
    if !plan.withdrawal_checks.is_empty() {
        let c = &plan.withdrawal_checks;
        sqlx::query(
            "UPDATE pending_withdrawals AS p SET next_check_at = c.next, checks = p.checks + 1 \
             FROM UNNEST($1::text[], $2::int8[], $3::int8[]) AS c(id, due, next) \
             WHERE p.next_check_at = c.due AND p.withdrawal_id = c.id",
        )
        .bind(c.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.due).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.next).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    if !plan.withdrawal_forgets.is_empty() {
        let f = &plan.withdrawal_forgets;
        sqlx::query(
            "DELETE FROM pending_withdrawals AS p \
             USING UNNEST($1::text[], $2::int8[]) AS f(id, due) \
             WHERE p.next_check_at = f.due AND p.withdrawal_id = f.id",
        )
        .bind(f.iter().map(|f| f.id).collect::<Vec<_>>())
        .bind(f.iter().map(|f| f.due).collect::<Vec<_>>())
        .execute(run.next()?)
        .await?;
    }
    Ok(())
}

/// The bank's payout ids, stored with their withdrawals.
async fn write_payouts(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<(), StoreError> {
    let p = &plan.payouts;
    sqlx::query(
        "UPDATE withdrawals AS w SET payout_id = p.payout_id, \
         first_answer = COALESCE(p.answer, w.first_answer), updated_at = p.now \
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[]) AS p(id, payout_id, now, answer) \
         WHERE w.id = p.id",
    )
    .bind(p.iter().map(|p| p.withdrawal).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.payout_id).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.now).collect::<Vec<_>>())
    .bind(p.iter().map(|p| p.answer).collect::<Vec<_>>())
    .execute(run.next()?)
    .await?;
    Ok(())
}

/// Inserts the transfers and answers the positions of those inserted: a transfer whose key is
/// still held by another of the sender's is not. A key held by a transfer older than the cutoff
/// is given up, and that transfer inserted then; only such a batch pays for the second look
/// (the common batch has no conflict at all).
async fn insert_transfers(run: &mut Run<'_>, plan: &Plan<'_>) -> Result<Vec<usize>, StoreError> {
    let all: Vec<&TransferItem> = plan.transfers.iter().collect();
    let mut inserted = try_insert_transfers(run.next()?, &all).await?;
    let refused: Vec<&TransferItem> = all
        .iter()
        .copied()
        .filter(|t| t.key.is_some() && !inserted.contains(t.id))
        .collect();
    if !refused.is_empty() {
        let freed: Vec<(String, String)> = sqlx::query_as(
            "UPDATE transfers AS t SET idempotency_key = NULL \
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(from_user, key, cutoff) \
             WHERE t.from_user = k.from_user AND t.idempotency_key = k.key AND t.created_at < k.cutoff \
             RETURNING k.from_user, k.key",
        )
        .bind(refused.iter().map(|t| t.from.as_str()).collect::<Vec<_>>())
        .bind(refused.iter().map(|t| t.key).collect::<Vec<_>>())
        .bind(refused.iter().map(|t| t.cutoff).collect::<Vec<_>>())
        .fetch_all(run.next()?)
        .await?;
        let retry: Vec<&TransferItem> = refused
            .into_iter()
            .filter(|t| {
                freed
                    .iter()
                    .any(|(from, key)| *from == t.from && Some(key.as_str()) == t.key)
            })
            .collect();
        if !retry.is_empty() {
            inserted.extend(try_insert_transfers(run.next()?, &retry).await?);
        }
    }
    Ok(all
        .iter()
        .filter(|t| inserted.contains(t.id))
        .map(|t| t.pos)
        .collect())
}

/// One insert of `t`, in batch order; answers the ids inserted.
async fn try_insert_transfers(
    conn: &mut PgConnection,
    t: &[&TransferItem<'_>],
) -> Result<HashSet<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO transfers (id, from_user, to_user, amount, currency, idempotency_key, created_at, \
                                to_name, to_email) \
         SELECT id, from_user, to_user, amount, currency, key, now, to_name, to_email \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], \
                     $8::text[], $9::text[]) \
             WITH ORDINALITY AS u(id, from_user, to_user, amount, currency, key, now, to_name, to_email, ord) \
         ORDER BY ord \
         ON CONFLICT (from_user, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(t.iter().map(|t| t.id).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.from.as_str()).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.to.as_str()).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.amount).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.currency).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.key).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.now).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.to_name).collect::<Vec<_>>())
    .bind(t.iter().map(|t| t.to_email).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// What the ledger statement decided.
#[derive(Default)]
struct Posted {
    settled: Vec<usize>,
    paid: Vec<usize>,
    /// The transfers it inserted, when it inserts them (see [`Parts`]).
    transferred: Vec<usize>,
    balances: std::collections::HashMap<String, Balance>,
}

/// The fence's arguments to the ledger statement (`onramp_fence`): the node, its leases as two
/// arrays, and the account lock keys of the users whose accounts the batch may change.
struct Gate {
    node: String,
    shards: Vec<i32>,
    epochs: Vec<i64>,
    accounts: Vec<i32>,
}

impl Gate {
    fn new(fence: &crate::Fence, users: &[UserId]) -> Gate {
        Gate {
            node: fence.node.clone(),
            shards: fence.held.iter().map(|(s, _)| *s).collect(),
            epochs: fence.held.iter().map(|(_, e)| *e).collect(),
            accounts: account_lock_keys(users),
        }
    }
}

/// How the ledger statement is sent: with the fence inside it or not, and whether it inserts
/// the transfers' rows itself (else [`insert_transfers`] did, and `written` says which).
#[derive(Clone, Copy)]
struct PostAs<'g> {
    gate: Option<&'g Gate>,
    inserts_transfers: bool,
}

const POST_AFTER_INSERTS: PostAs<'static> = PostAs {
    gate: None,
    inserts_transfers: false,
};

/// The settlements, the payouts' ends and the transfers and withdrawals `written` (positions)
/// as ledger entries; or, when `how` says it inserts transfers, every transfer of the plan whose
/// key is free.
async fn post(
    run: &mut Run<'_>,
    plan: &Plan<'_>,
    written: &Written,
    how: PostAs<'_>,
) -> Result<Posted, StoreError> {
    let mut posted = Posted::default();
    let s = &plan.settles;
    let t: Vec<_> = (plan.transfers.iter())
        .filter(|t| how.inserts_transfers || written.transferred.contains(&t.pos))
        .collect();
    let w: Vec<_> = (plan.withdrawals.iter())
        .filter(|w| written.withdrawn.contains(&w.pos))
        .collect();
    let p = &plan.payout_settles;
    let parts = Parts {
        credits: !s.is_empty(),
        transfers: !t.is_empty(),
        withdrawals: !w.is_empty(),
        payouts: !p.is_empty(),
        fenced: how.gate.is_some(),
        inserts_transfers: how.inserts_transfers,
    };
    if !parts.any() {
        // Every transfer and withdrawal found its key taken: nothing moves.
        return Ok(posted);
    }
    /// `(tag, seq, user_id, balance, last_entry)`: see [`post_sql`].
    type Row = (i32, i64, Option<String>, Option<i64>, Option<i64>);
    let mut query = sqlx::query_as::<_, Row>(post_sql(parts));
    if let Some(gate) = how.gate {
        query = query
            .bind(gate.node.as_str())
            .bind(&gate.shards)
            .bind(&gate.epochs)
            .bind(&gate.accounts);
    }
    if parts.credits {
        query = query
            .bind(s.iter().map(|s| s.pos as i64).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.deposit).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.status).collect::<Vec<_>>())
            .bind(s.iter().map(|s| s.now).collect::<Vec<_>>());
    }
    if parts.transfers {
        query = query
            .bind(t.iter().map(|t| t.pos as i64).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.id).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.from.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.to.as_str()).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.amount).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.currency).collect::<Vec<_>>())
            .bind(t.iter().map(|t| t.now).collect::<Vec<_>>());
        if parts.inserts_transfers {
            query = query
                .bind(t.iter().map(|t| t.key).collect::<Vec<_>>())
                .bind(t.iter().map(|t| t.to_name).collect::<Vec<_>>())
                .bind(t.iter().map(|t| t.to_email).collect::<Vec<_>>());
        }
    }
    if parts.withdrawals {
        query = query
            .bind(w.iter().map(|w| w.pos as i64).collect::<Vec<_>>())
            .bind(w.iter().map(|w| w.id).collect::<Vec<_>>())
            .bind(w.iter().map(|w| w.user.as_str()).collect::<Vec<_>>())
            .bind(w.iter().map(|w| w.amount).collect::<Vec<_>>())
            .bind(w.iter().map(|w| w.currency).collect::<Vec<_>>())
            .bind(w.iter().map(|w| w.now).collect::<Vec<_>>());
    }
    if parts.payouts {
        query = query
            .bind(p.iter().map(|p| p.pos as i64).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.withdrawal).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.status).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.now).collect::<Vec<_>>())
            .bind(p.iter().map(|p| p.answer).collect::<Vec<_>>());
    }
    let rows: Vec<Row> = query.fetch_all(run.next()?).await.map_err(fenced)?;
    for (tag, seq, user, paise, entry) in rows {
        match (tag, user, paise, entry) {
            (0, ..) => posted.settled.push(seq as usize),
            (2, ..) => posted.paid.push(seq as usize),
            (3, ..) => posted.transferred.push(seq as usize),
            (1, Some(user), Some(paise), Some(entry)) => {
                posted.balances.insert(user, Balance { paise, entry });
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "the ledger statement answered {other:?}"
                )))
            }
        }
    }
    Ok(posted)
}

/// The statements that insert new deposits or withdrawals: each `processing`, with its row in
/// reconciliation's schedule, for one table and its schedule.
macro_rules! new_rows_sql {
    ($table:literal, $pending:literal, $id:literal) => {
        NewRowsSql {
            give_up_keys: concat!(
                "UPDATE ",
                $table,
                " AS d SET idempotency_key = NULL \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS k(user_id, key, cutoff) \
                 WHERE d.user_id = k.user_id AND d.idempotency_key = k.key \
                 AND d.created_at < k.cutoff"
            ),
            insert: concat!(
                "WITH inserted AS ( \
                     INSERT INTO ",
                $table,
                " (id, user_id, amount, currency, status, \
                         idempotency_key, created_at, updated_at) \
                     SELECT id, user_id, amount, currency, 'processing', key, now, now \
                     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], \
                                 $6::text[]) \
                         WITH ORDINALITY AS u(id, user_id, amount, key, now, currency, ord) \
                     ORDER BY ord \
                     ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL \
                     DO NOTHING \
                     RETURNING id, created_at \
                 ), pending AS ( \
                     INSERT INTO ",
                $pending,
                " (next_check_at, ",
                $id,
                ", created_at) \
                     SELECT c.first_check, i.id, i.created_at FROM inserted AS i \
                     JOIN UNNEST($1::text[], $7::int8[]) AS c(id, first_check) ON c.id = i.id \
                 ) \
                 SELECT id FROM inserted"
            ),
        }
    };
}

struct NewRowsSql {
    give_up_keys: &'static str,
    insert: &'static str,
}

const NEW_DEPOSITS: NewRowsSql = new_rows_sql!("deposits", "pending_deposits", "deposit_id");
const NEW_WITHDRAWALS: NewRowsSql =
    new_rows_sql!("withdrawals", "pending_withdrawals", "withdrawal_id");

/// Inserts new deposits or withdrawals (`sql` says which), pending (an idempotency key held by
/// one older than the cutoff is given up first), and answers the positions of those inserted:
/// one whose key is still held is not.
async fn insert_new(
    run: &mut Run<'_>,
    items: &[NewItem<'_>],
    sql: &NewRowsSql,
) -> Result<Vec<usize>, StoreError> {
    let keyed: Vec<_> = items.iter().filter(|d| d.key.is_some()).collect();
    if !keyed.is_empty() {
        sqlx::query(sql.give_up_keys)
            .bind(keyed.iter().map(|d| d.user.as_str()).collect::<Vec<_>>())
            .bind(keyed.iter().map(|d| d.key).collect::<Vec<_>>())
            .bind(keyed.iter().map(|d| d.cutoff).collect::<Vec<_>>())
            .execute(run.next()?)
            .await?;
    }
    let rows: Vec<(String,)> = sqlx::query_as(sql.insert)
        .bind(items.iter().map(|d| d.id).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.user.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.amount).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.key).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.now).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.currency).collect::<Vec<_>>())
        .bind(items.iter().map(|d| d.first_check).collect::<Vec<_>>())
        .fetch_all(run.next()?)
        .await?;
    let inserted: HashSet<String> = rows.into_iter().map(|(id,)| id).collect();
    Ok(items
        .iter()
        .filter(|d| inserted.contains(d.id))
        .map(|d| d.pos)
        .collect())
}

crate::reads::impl_store!(PgStore, postgres);

/// A fenced batch: its transaction opened by [`begin_fenced`], its steps, its COMMIT.
async fn write_fenced(
    conn: &mut PgConnection,
    gate: &Gate,
    plan: &mut Plan<'_>,
    steps: &[Step],
) -> Result<(Written, usize), StoreError> {
    begin_fenced(conn, gate).await?;
    let mut run = Run {
        conn,
        in_transaction: true,
        statements: 0,
    };
    let written = write(&mut run, plan, steps).await?;
    let statements = run.statements;
    sqlx::query("COMMIT").execute(&mut *run.conn).await?;
    Ok((written, statements))
}

/// Opens a fenced batch's transaction: every lease it was made under must still be
/// `gate.node`'s at that epoch, or the batch writes nothing ([`StoreError::Fenced`]).
///
/// `BEGIN` and a call of `onramp_fence` (its migration says what it locks and checks;
/// docs/cluster.md, *Fencing*, why advisory locks, and why in that order),
/// the same fence a batch of money alone carries inside its ledger statement, in one round
/// trip: a query without arguments goes as one simple query, several statements and all, so
/// every value is written into the text. Every one is ours and of a type that cannot carry a
/// quote: integers, and the node id, a UUID.
async fn begin_fenced(conn: &mut sqlx::PgConnection, gate: &Gate) -> Result<(), StoreError> {
    let node = uuid::Uuid::parse_str(&gate.node)
        .map_err(|_| StoreError::Corrupt(format!("a node id that is no UUID: {:?}", gate.node)))?;
    let array = |values: Vec<String>, of: &str| format!("ARRAY[{}]::{of}[]", values.join(","));
    let text = format!(
        "BEGIN; SELECT onramp_fence('{node}', {}, {}, {})",
        array(gate.shards.iter().map(i32::to_string).collect(), "int4"),
        array(gate.epochs.iter().map(i64::to_string).collect(), "int8"),
        array(gate.accounts.iter().map(i32::to_string).collect(), "int4"),
    );
    sqlx::Executor::execute(&mut *conn, text.as_str())
        .await
        .map_err(fenced)?;
    Ok(())
}

/// The account lock keys a batch posting for `users` takes, in key order: theirs and, when
/// there are any, the system accounts'.
fn account_lock_keys(users: &[UserId]) -> Vec<i32> {
    let mut accounts: Vec<i32> = users.iter().map(|u| account_lock_key(*u)).collect();
    if !accounts.is_empty() {
        accounts.extend(SYSTEM_ACCOUNT_LOCKS);
    }
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

/// The SQLSTATE `onramp_fence` raises when a lease was lost (see its migration).
const FENCED_SQLSTATE: &str = "OR001";

/// A ledger statement's error: the fence's raise becomes [`StoreError::Fenced`] with the leases
/// its DETAIL names as still held; anything else is kept as it was.
fn fenced(e: sqlx::Error) -> StoreError {
    let Some(db) = e.as_database_error() else {
        return e.into();
    };
    if db.code().as_deref() != Some(FENCED_SQLSTATE) {
        return e.into();
    }
    let detail = db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|e| e.detail())
        .unwrap_or_default();
    match parse_held(detail) {
        Some(held) => StoreError::Fenced { held },
        None => StoreError::Corrupt(format!("the fence answered leases {detail:?}")),
    }
}

/// `shard:epoch,…` as `onramp_fence` lists the leases still held; empty is none.
fn parse_held(detail: &str) -> Option<Vec<(i32, i64)>> {
    let mut held = Vec::new();
    for lease in detail.split(',').filter(|l| !l.is_empty()) {
        let (shard, epoch) = lease.split_once(':')?;
        held.push((shard.parse().ok()?, epoch.parse().ok()?));
    }
    held.sort_unstable();
    Some(held)
}

/// The system accounts' lock keys (bank clearing, payouts in flight): every batch that posts
/// takes both. User keys are hashes; these two may share a key with a user, which only makes
/// that user's batches wait a little more.
const SYSTEM_ACCOUNT_LOCKS: [i32; 2] = [-1, -2];

/// A user's account lock key: the user id's last four bytes, random in every id we make (v4
/// before, v7 now, whose first six bytes are the sign-up's millisecond and would give everyone
/// who signed up in one minute one key). Two users with one key only wait on each other; no
/// lookup is needed to take it.
fn account_lock_key(user: UserId) -> i32 {
    let b = user.as_bytes();
    i32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

/// The first key of a shard's advisory lock, taken shared by every fenced commit on it and
/// exclusively by its takeover.
pub(crate) const SHARD_LOCK_CLASS: i32 = 28527;

/// How a batch was written: the statements it ran and whether in a transaction of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub statements: usize,
    pub in_transaction: bool,
}

impl PgStore {
    /// One group commit (the `Store::commit` of this backend).
    async fn write_batch(&self, batch: &Batch) -> Result<Outcomes, StoreError> {
        self.write_shaped(batch).await.map(|(outcomes, _)| outcomes)
    }

    /// [`PgStore::write_batch`], and how it was written.
    pub(crate) async fn write_shaped(
        &self,
        batch: &Batch,
    ) -> Result<(Outcomes, Shape), StoreError> {
        let mut plan = Plan::new(batch);
        let steps = steps(&plan);
        if steps.is_empty() {
            let shape = Shape {
                statements: 0,
                in_transaction: false,
            };
            return Ok((plan.finish(Written::default())?, shape));
        }
        let gate = (batch.fence.as_ref())
            .filter(|f| !f.held.is_empty())
            .map(|f| Gate::new(f, &batch.posting_users()));
        if matches!(steps[..], [Step::Post] | [Step::Transfers, Step::Post]) {
            if let Some(written) = self.post_alone(&plan, gate.as_ref()).await? {
                let shape = Shape {
                    statements: 1,
                    in_transaction: false,
                };
                return Ok((plan.finish(written)?, shape));
            }
        }
        // One statement is a transaction of its own: no BEGIN and COMMIT round trips. A fenced
        // batch checks its leases first, in its transaction.
        let in_transaction = gate.is_some() || !(steps.len() == 1 && steps[0].one_statement(&plan));
        let (written, statements) = if let Some(gate) = &gate {
            let mut conn = self.pool.acquire().await?;
            let result = write_fenced(&mut conn, gate, &mut plan, &steps).await;
            if result.is_err() {
                // The transaction this opened must not go back to the pool open.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    conn.close_on_drop();
                }
            }
            result?
        } else if in_transaction {
            let mut tx = self.pool.begin().await?;
            let mut run = Run {
                conn: &mut tx,
                in_transaction,
                statements: 0,
            };
            let written = write(&mut run, &mut plan, &steps).await?;
            let statements = run.statements;
            tx.commit().await?;
            (written, statements)
        } else {
            let mut conn = self.pool.acquire().await?;
            let mut run = Run {
                conn: &mut conn,
                in_transaction,
                statements: 0,
            };
            let written = write(&mut run, &mut plan, &steps).await?;
            (written, run.statements)
        };
        let shape = Shape {
            statements,
            in_transaction,
        };
        Ok((plan.finish(written)?, shape))
    }

    /// A batch of money alone (settlements, payouts' ends, transfers) as one autocommitted
    /// statement: the ledger statement inserting the transfers itself, with the fence inside it
    /// when `gate` is given. One round trip, where the same batch in a transaction took four
    /// (the fence with `BEGIN`, the transfers, the ledger, `COMMIT`). `None` when a transfer's
    /// idempotency key is held by another transfer of its sender's (a copy of a request, or a
    /// key reused past its 24 hours) or by another of the batch: the statement wrote nothing,
    /// and the batch goes the long way, which answers the copy or gives the old key up.
    async fn post_alone(
        &self,
        plan: &Plan<'_>,
        gate: Option<&Gate>,
    ) -> Result<Option<Written>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut run = Run {
            conn: &mut conn,
            in_transaction: false,
            statements: 0,
        };
        let how = PostAs {
            gate,
            inserts_transfers: true,
        };
        match post(&mut run, plan, &Written::default(), how).await {
            Ok(posted) => Ok(Some(Written {
                settled: posted.settled,
                paid: posted.paid,
                transferred: posted.transferred,
                balances: posted.balances,
                ..Written::default()
            })),
            Err(StoreError::Database(e))
                if e.as_database_error()
                    .is_some_and(|d| d.constraint() == Some("transfers_idempotency")) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Currency, DepositId, ProviderSub, SessionToken, Settlement};
    use crate::{NewAccount, NewDeposit, NewSession, SettleDeposit, TouchSession};

    #[test]
    fn people_who_sign_up_in_one_minute_do_not_share_an_account_lock() {
        let keys: std::collections::HashSet<i32> =
            (0..1000).map(|_| account_lock_key(UserId::new())).collect();
        // 1,000 random 32-bit keys collide with a chance of about one in 8,600.
        assert!(keys.len() >= 998, "{} distinct keys of 1,000", keys.len());
    }

    fn deposit(user: UserId, key: Option<&str>) -> NewDeposit {
        NewDeposit {
            id: DepositId::new(),
            user_id: user,
            amount: Amount::parse(100, i64::MAX).unwrap(),
            currency: Currency::Inr,
            idempotency_key: key.map(str::to_owned),
            key_cutoff: 0,
            now: 2,
            first_check_at: 3,
        }
    }

    fn sign_in(sub: &str) -> NewAccount {
        NewAccount {
            provider: crate::domain::Provider::Google,
            sub: ProviderSub::parse(sub).unwrap(),
            email: format!("{sub}@example.com"),
            email_verified: true,
            name: sub.to_uppercase(),
            picture: String::new(),
            now: 1,
        }
    }

    fn settle(d: &NewDeposit) -> SettleDeposit {
        SettleDeposit {
            deposit_id: d.id.clone(),
            user_id: d.user_id,
            amount: d.amount,
            outcome: Settlement::Success,
            now: 4,
        }
    }

    fn transfer(from: UserId, to: UserId, key: &str) -> crate::NewTransfer {
        crate::NewTransfer {
            id: crate::domain::TransferId::new(),
            from,
            to,
            amount: Amount::parse(10, i64::MAX).unwrap(),
            currency: Currency::Inr,
            idempotency_key: Some(key.into()),
            key_cutoff: 0,
            now: 5,
            recipient: crate::Counterparty {
                name: "B".into(),
                email: "b@example.com".into(),
            },
        }
    }

    fn under(fence: &crate::Fence, change: impl crate::Change) -> Batch {
        let mut batch = Batch::of(change);
        batch.fence = Some(fence.clone());
        batch
    }

    /// Money alone under a fence is one autocommitted statement with the fence inside it. It
    /// commits while the process holds its leases; once another process has taken one over,
    /// it writes nothing and names the leases still held, so the writer can retry the rest.
    #[actix_web::test]
    async fn money_under_a_fence_is_one_statement_that_writes_nothing_once_a_lease_moved() {
        let url = onramp_test_support::postgres::cluster()
            .fresh_database()
            .await;
        let store = PgStore::connect(&url, 2).await.unwrap();
        let users = (store.write_batch(&Batch::of(sign_in("a"))).await)
            .unwrap()
            .accounts;
        let b = (store.write_batch(&Batch::of(sign_in("b"))).await)
            .unwrap()
            .accounts[0];
        let a = users[0];
        let (first, second) = (deposit(a, None), deposit(a, None));
        let mut both = Batch::of(first.clone());
        both.add(second.clone());
        store.write_batch(&both).await.unwrap();
        let node = uuid::Uuid::new_v4().to_string();
        sqlx::query("UPDATE cluster_shards SET owner = $1, epoch = 7 WHERE shard IN (3, 4)")
            .bind(&node)
            .execute(store.pool())
            .await
            .unwrap();
        let fence = crate::Fence {
            node,
            held: vec![(3, 7), (4, 7)],
        };

        let (outcomes, shape) = store
            .write_shaped(&under(&fence, settle(&first)))
            .await
            .unwrap();
        assert_eq!(outcomes.settlements.len(), 1);
        let one = Shape {
            statements: 1,
            in_transaction: false,
        };
        assert_eq!(shape, one, "a settlement under a fence");
        let (outcomes, shape) = (store
            .write_shaped(&under(&fence, transfer(a, b, "t1")))
            .await)
            .unwrap();
        assert!(matches!(
            outcomes.transfers[0],
            crate::TransferResult::Applied { .. }
        ));
        assert_eq!(shape, one, "a transfer with a key under a fence");

        // Another process takes shard 4 over.
        sqlx::query("UPDATE cluster_shards SET owner = 'other', epoch = 8 WHERE shard = 4")
            .execute(store.pool())
            .await
            .unwrap();
        let mut late = under(&fence, settle(&second));
        late.add(transfer(a, b, "t2"));
        match store.write_shaped(&late).await {
            Err(StoreError::Fenced { held }) => assert_eq!(held, vec![(3, 7)]),
            other => panic!("expected Fenced, got {other:?}"),
        }
        let status: String = sqlx::query_scalar("SELECT status FROM deposits WHERE id = $1")
            .bind(second.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(status, "processing", "the fenced settlement wrote nothing");
        let transfers: i64 = sqlx::query_scalar("SELECT count(*) FROM transfers")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(transfers, 1, "the fenced transfer wrote nothing");
        assert_eq!(store.balance(a).await.unwrap().paise, 90);
        assert_eq!(store.balance(b).await.unwrap().paise, 10);
        // Without the lost lease, the same changes commit.
        let kept = crate::Fence {
            held: vec![(3, 7)],
            ..fence
        };
        let mut retried = under(&kept, settle(&second));
        retried.add(transfer(a, b, "t2"));
        store.write_shaped(&retried).await.unwrap();
        assert_eq!(store.balance(a).await.unwrap().paise, 180);
        assert!(store.audit().await.unwrap().is_ok());
    }

    /// Whether a batch runs in a transaction is decided by the steps it runs, and a batch
    /// written without one ran exactly one statement: every kind alone, and kinds together.
    #[actix_web::test]
    async fn a_batch_runs_without_a_transaction_only_when_it_is_one_statement() {
        let url = onramp_test_support::postgres::cluster()
            .fresh_database()
            .await;
        let store = PgStore::connect(&url, 2).await.unwrap();
        let (outcomes, shape) = store.write_shaped(&Batch::of(sign_in("s"))).await.unwrap();
        assert!(shape.in_transaction, "a sign-in is several statements");
        let user = outcomes.accounts[0];
        let other = (store.write_batch(&Batch::of(sign_in("o"))).await)
            .unwrap()
            .accounts[0];
        let token = SessionToken::generate();
        let first = deposit(user, None);
        let settle = SettleDeposit {
            deposit_id: first.id.clone(),
            user_id: user,
            amount: first.amount,
            outcome: Settlement::Success,
            now: 4,
        };
        let mut keyed_and_session = Batch::of(deposit(user, Some("k")));
        keyed_and_session.add(NewSession {
            hash: token.hash(),
            user_id: user,
            created_at: 1,
            expires_at: 9,
        });
        let cases: Vec<(&str, Batch, usize)> = vec![
            ("a deposit", Batch::of(first), 1),
            (
                "a deposit with a key",
                Batch::of(deposit(user, Some("j"))),
                2,
            ),
            ("a settlement", Batch::of(settle), 1),
            (
                "a transfer with a key",
                Batch::of(transfer(user, other, "k")),
                1,
            ),
            // The single statement fails on the key, and the long way answers the copy: its
            // insert refused, the key not given up (it is not past its cutoff), nothing posted.
            (
                "a copy of that transfer",
                Batch::of(transfer(user, other, "k")),
                2,
            ),
            (
                "a renewal",
                Batch::of(TouchSession {
                    hash: token.hash(),
                    last_seen_at: 5,
                }),
                1,
            ),
            ("a keyed deposit and a session", keyed_and_session, 3),
        ];
        for (what, batch, statements) in cases {
            let (outcomes, shape) = store.write_shaped(&batch).await.unwrap();
            if what == "a copy of that transfer" {
                assert_eq!(outcomes.transfers, [crate::TransferResult::KeyTaken]);
            }
            assert_eq!(shape.statements, statements, "{what}");
            assert_eq!(shape.in_transaction, statements > 1, "{what}");
        }
    }
}
