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
--   transfers    [id, from user, to user, amount, currency, idempotency_key or null,
--                 key_cutoff, now, batch position, recipient's name, recipient's email]
--   checks       [deposit id, current next_check_at, new next_check_at]
--   forgets      [deposit id, current next_check_at]
-- A statement marked `-- when: <kinds>` runs only in a batch that has changes of one of those
-- kinds (`deposit_keys` and `transfer_keys`: a deposit or transfer with an idempotency key);
-- the others always run (the scratch tables are emptied every time, since the last statement
-- reads them). A statement with nothing to do still costs its setup, and most batches have one
-- or two kinds of change only.
-- Every statement starts from its rows and finds its targets through an index (a test in
-- sqlite.rs checks the plans). The last one answers the batch positions of the settlements
-- applied, of the deposits inserted and of the transfers written, and the balance of every user
-- account the batch changed ([user id, balance, last entry]). The scratch tables are in sqlite_writer.sql.

DELETE FROM temp.batch;

INSERT INTO temp.batch (kind, rows) SELECT key, value FROM json_each(?1);

-- An idempotency key held by a deposit older than the cutoff is given up to the new one.
-- when: deposit_keys
UPDATE deposits SET idempotency_key = NULL
WHERE rowid IN (
    SELECT d.rowid FROM temp.batch_deposits AS n
    CROSS JOIN deposits AS d ON d.user_id = n.r ->> 1 AND d.idempotency_key = n.r ->> 3
    WHERE d.created_at < n.r ->> 4);

-- when: deposits
INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at)
SELECT n.r ->> 0, n.r ->> 1, n.r ->> 2, n.r ->> 7, 'processing', n.r ->> 3, n.r ->> 5, n.r ->> 5
FROM temp.batch_deposits AS n WHERE true ORDER BY n.key
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- The deposits inserted wait for the bank (one whose key was taken was not inserted).
-- when: deposits
INSERT INTO pending_deposits (next_check_at, deposit_id, created_at)
SELECT n.r ->> 8, d.id, d.created_at
FROM temp.batch_deposits AS n CROSS JOIN deposits AS d ON d.id = n.r ->> 0;

-- Reconciliation's next checks of deposits still waiting, found by their current key.
-- when: checks
UPDATE pending_deposits SET next_check_at = c.r ->> 2, checks = checks + 1
FROM temp.batch_checks AS c
WHERE pending_deposits.next_check_at = c.r ->> 1 AND pending_deposits.deposit_id = c.r ->> 0;

-- The rows of deposits reconciliation found settled.
-- when: forgets
DELETE FROM pending_deposits WHERE (next_check_at, deposit_id) IN (
    SELECT f.r ->> 1, f.r ->> 0 FROM temp.batch_forgets AS f);

-- when: orders
UPDATE deposits SET bank_token = o.r ->> 1, pay_url = o.r ->> 2, updated_at = o.r ->> 3
FROM temp.batch_orders AS o WHERE deposits.id = o.r ->> 0;

-- when: sessions
INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at)
SELECT s.r ->> 0, s.r ->> 1, s.r ->> 2, s.r ->> 3, s.r ->> 2 FROM temp.batch_sessions AS s;

-- when: touches
UPDATE sessions SET last_seen_at = t.seen
FROM (SELECT r ->> 0 AS hash, MAX(r ->> 1) AS seen FROM temp.batch_touches GROUP BY 1) AS t
WHERE sessions.token_hash = t.hash AND sessions.last_seen_at < t.seen;

-- when: logouts
DELETE FROM sessions WHERE token_hash IN (SELECT r ->> 0 FROM temp.batch_logouts);

-- Transfers: a key held by a transfer older than the cutoff is given up, then the transfers
-- are inserted (one whose key is still held is not).
-- when: transfer_keys
UPDATE transfers SET idempotency_key = NULL
WHERE rowid IN (
    SELECT tr.rowid FROM temp.batch_transfers AS n
    CROSS JOIN transfers AS tr ON tr.from_user = n.r ->> 1 AND tr.idempotency_key = n.r ->> 5
    WHERE tr.created_at < n.r ->> 6);

-- when: transfers
INSERT INTO transfers (id, from_user, to_user, amount, currency, idempotency_key, created_at,
                       to_name, to_email)
SELECT n.r ->> 0, n.r ->> 1, n.r ->> 2, n.r ->> 3, n.r ->> 4, n.r ->> 5, n.r ->> 7,
       n.r ->> 9, n.r ->> 10
FROM temp.batch_transfers AS n WHERE true ORDER BY n.key
ON CONFLICT (from_user, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- Settlements: those whose deposit is still processing are applied; the rest change nothing.
-- The user, amount and currency credited are the deposit's own.
DELETE FROM temp.settling;

-- when: settlements
INSERT INTO temp.settling (seq, deposit_id, status, user_id, amount, currency, now)
SELECT s.r ->> 0, d.id, s.r ->> 2, d.user_id, d.amount, d.currency, s.r ->> 5
FROM temp.batch_settlements AS s CROSS JOIN deposits AS d ON d.id = s.r ->> 1
WHERE d.status = 'processing';

-- when: settlements
UPDATE deposits SET status = s.status, updated_at = s.now
FROM temp.settling AS s WHERE deposits.id = s.deposit_id;

-- The batch's ledger entries: each credit moves money from bank clearing to the user, each
-- transfer written from the sender to the recipient.
DELETE FROM temp.moves;

-- when: settlements
INSERT INTO temp.moves (seq, kind, ref, debit, credit, amount, now)
SELECT s.seq, 'deposit', s.deposit_id, c.id, a.id, s.amount, s.now
FROM temp.settling AS s
LEFT JOIN ledger_accounts AS a ON a.user_id = s.user_id AND a.currency = s.currency
LEFT JOIN ledger_accounts AS c ON c.system = 'bank_clearing' AND c.currency = s.currency
WHERE s.status = 'success';

-- when: transfers
INSERT INTO temp.moves (seq, kind, ref, debit, credit, amount, now)
SELECT n.r ->> 8, 'transfer', tr.id, f.id, r.id, tr.amount, tr.created_at
FROM temp.batch_transfers AS n CROSS JOIN transfers AS tr ON tr.id = n.r ->> 0
LEFT JOIN ledger_accounts AS f ON f.user_id = tr.from_user AND f.currency = tr.currency
LEFT JOIN ledger_accounts AS r ON r.user_id = tr.to_user AND r.currency = tr.currency;

-- Entry ids are given here, in batch order after the last one (the single writer makes them
-- ids of its own), so that the accounts below know them without looking the entries up.
-- when: settlements, transfers
UPDATE temp.moves SET entry = n.id
FROM (SELECT seq, (SELECT COALESCE(MAX(id), 0) FROM ledger_entries)
                  + row_number() OVER (ORDER BY seq) AS id FROM temp.moves) AS n
WHERE moves.seq = n.seq;

-- when: settlements, transfers
INSERT INTO ledger_entries (id, kind, ref, debit_account, credit_account, amount, created_at)
SELECT entry, kind, ref, debit, credit, amount, now FROM temp.moves ORDER BY seq;

-- Each account changes once per batch, by the sum of its entries in it (bank clearing too,
-- however many deposits the batch credits), and records the last entry it now includes. A
-- user's balance below zero is refused here by the table's CHECK: the whole batch fails.
-- when: settlements, transfers
UPDATE ledger_accounts SET balance = balance + m.delta, last_entry = m.last, updated_at = m.at
FROM (SELECT x.account, SUM(x.delta) AS delta, MAX(x.entry) AS last, MAX(x.now) AS at
      FROM (SELECT credit AS account, amount AS delta, entry, now FROM temp.moves
            UNION ALL
            SELECT debit, -amount, entry, now FROM temp.moves) AS x
      GROUP BY x.account) AS m
WHERE ledger_accounts.id = m.account;

SELECT (SELECT json_group_array(seq) FROM temp.settling) AS settled,
       (SELECT json_group_array(n.r ->> 6) FROM temp.batch_deposits AS n
        CROSS JOIN deposits AS d ON d.id = n.r ->> 0) AS inserted,
       (SELECT json_group_array(n.r ->> 8) FROM temp.batch_transfers AS n
        CROSS JOIN transfers AS tr ON tr.id = n.r ->> 0) AS transferred,
       (SELECT json_group_array(json_array(a.user_id, a.balance, a.last_entry))
        FROM ledger_accounts AS a
        WHERE a.id IN (SELECT credit FROM temp.moves UNION SELECT debit FROM temp.moves)
          AND a.user_id IS NOT NULL) AS balances
