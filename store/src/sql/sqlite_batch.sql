-- One group commit on SQLite: each kind of change in the batch is written by one set-based
-- statement, so the whole batch is a single command to SQLite's worker thread. ?1 is a JSON
-- object with an array of rows per kind (a kind with no changes is left out, and its statements
-- do nothing); each row is an array:
--   deposits     [id, user_id, amount, idempotency_key or null, key_cutoff, now, batch position,
--                 currency, first_check_at]
--   orders       [deposit id, bank token, pay_url, now]
--   sessions     [token_hash, user_id, created_at, expires_at]
--   touches      [token_hash, last_seen_at]
--   logouts      [token_hash]
--   settlements  [batch position, deposit id, new status, user_id, amount, now]
--   checks       [deposit id, current next_check_at, new next_check_at]
--   forgets      [deposit id, current next_check_at]
-- Every statement starts from its rows and finds its targets through an index (a test in
-- sqlite.rs checks the plans). The last one answers the settlements applied ([batch position,
-- ledger entry id, balance after] for a credit, [batch position, null, null] for a failure) and
-- the batch positions of the deposits inserted. The scratch tables are in sqlite_writer.sql.

DELETE FROM temp.batch;

INSERT INTO temp.batch (kind, rows) SELECT key, value FROM json_each(?1);

-- An idempotency key held by a deposit older than the cutoff is given up to the new one.
UPDATE deposits SET idempotency_key = NULL
WHERE rowid IN (
    SELECT d.rowid FROM temp.batch_deposits AS n
    CROSS JOIN deposits AS d ON d.user_id = n.r ->> 1 AND d.idempotency_key = n.r ->> 3
    WHERE d.created_at < n.r ->> 4);

INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at)
SELECT n.r ->> 0, n.r ->> 1, n.r ->> 2, n.r ->> 7, 'processing', n.r ->> 3, n.r ->> 5, n.r ->> 5
FROM temp.batch_deposits AS n WHERE true ORDER BY n.key
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- The deposits inserted wait for the bank (one whose key was taken was not inserted).
INSERT INTO pending_deposits (next_check_at, deposit_id, created_at)
SELECT n.r ->> 8, d.id, d.created_at
FROM temp.batch_deposits AS n CROSS JOIN deposits AS d ON d.id = n.r ->> 0;

-- Reconciliation's next checks of deposits still waiting, found by their current key.
UPDATE pending_deposits SET next_check_at = c.r ->> 2, checks = checks + 1
FROM temp.batch_checks AS c
WHERE pending_deposits.next_check_at = c.r ->> 1 AND pending_deposits.deposit_id = c.r ->> 0;

-- The rows of deposits reconciliation found settled.
DELETE FROM pending_deposits WHERE (next_check_at, deposit_id) IN (
    SELECT f.r ->> 1, f.r ->> 0 FROM temp.batch_forgets AS f);

UPDATE deposits SET bank_token = o.r ->> 1, pay_url = o.r ->> 2, updated_at = o.r ->> 3
FROM temp.batch_orders AS o WHERE deposits.id = o.r ->> 0;

INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at)
SELECT s.r ->> 0, s.r ->> 1, s.r ->> 2, s.r ->> 3, s.r ->> 2 FROM temp.batch_sessions AS s;

UPDATE sessions SET last_seen_at = t.seen
FROM (SELECT r ->> 0 AS hash, MAX(r ->> 1) AS seen FROM temp.batch_touches GROUP BY 1) AS t
WHERE sessions.token_hash = t.hash AND sessions.last_seen_at < t.seen;

DELETE FROM sessions WHERE token_hash IN (SELECT r ->> 0 FROM temp.batch_logouts);

-- Settlements: those whose deposit is still processing are applied; the rest change nothing.
DELETE FROM temp.settling;

INSERT INTO temp.settling (seq, deposit_id, status, user_id, amount, now)
SELECT s.r ->> 0, s.r ->> 1, s.r ->> 2, s.r ->> 3, s.r ->> 4, s.r ->> 5
FROM temp.batch_settlements AS s CROSS JOIN deposits AS d ON d.id = s.r ->> 1
WHERE d.status = 'processing';

UPDATE deposits SET status = s.status, updated_at = s.now
FROM temp.settling AS s WHERE deposits.id = s.deposit_id;

-- Each credit's balance_after: the wallet's balance before the batch plus its credits in this
-- batch up to and including this one, in batch order.
INSERT INTO ledger (user_id, deposit_id, amount, balance_after, created_at)
SELECT s.user_id, s.deposit_id, s.amount,
       COALESCE(w.balance, 0)
           + SUM(s.amount) OVER (PARTITION BY s.user_id ORDER BY s.seq ROWS UNBOUNDED PRECEDING),
       s.now
FROM temp.settling AS s LEFT JOIN wallets AS w ON w.user_id = s.user_id
WHERE s.status = 'success' ORDER BY s.seq;

-- The wallets, with the last ledger entry each balance now includes.
-- (A wallet row is made with its account, so the insert half only guards an impossible case.)
INSERT INTO wallets (user_id, balance, updated_at, last_entry)
SELECT s.user_id, SUM(s.amount), MAX(s.now), MAX(l.id)
FROM temp.settling AS s CROSS JOIN ledger AS l ON l.deposit_id = s.deposit_id
WHERE s.status = 'success' GROUP BY s.user_id
ON CONFLICT (user_id) DO UPDATE SET balance = balance + excluded.balance,
    updated_at = excluded.updated_at, last_entry = excluded.last_entry;

SELECT (SELECT json_group_array(json_array(s.seq, l.id, l.balance_after))
        FROM temp.settling AS s LEFT JOIN ledger AS l ON l.deposit_id = s.deposit_id) AS settled,
       (SELECT json_group_array(n.r ->> 6) FROM temp.batch_deposits AS n
        CROSS JOIN deposits AS d ON d.id = n.r ->> 0) AS inserted
