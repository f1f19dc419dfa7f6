-- One group commit on SQLite: each kind of change in the batch is written by one set-based
-- statement, so the whole batch is a single command to SQLite's worker thread. ?1 is a JSON
-- object with an array of rows per kind (a kind with no changes is left out, and its statements
-- do nothing); each row is an object whose fields are read by name (`n.r ->> '$.amount'`), as
-- `batch.rs` names them (`DepositItem`, `TransferItem`, ...). `pos` is a change's position among
-- the changes of its kind.
-- A statement marked `-- when: <kinds>` runs only in a batch that has changes of one of those
-- kinds (`deposit_keys`, `transfer_keys` and `withdrawal_keys`: one with an idempotency key);
-- the others always run (the scratch tables are emptied every time, since the last statement
-- reads them). A statement with nothing to do still costs its setup, and most batches have one
-- or two kinds of change only.
-- Every statement starts from its rows and finds its targets through an index (a test in
-- sqlite.rs checks the plans). The last one answers the positions of the settlements applied,
-- of the deposits inserted, of the transfers and withdrawals written and of the payouts' ends
-- applied, and the balance of every user account the batch changed ([user id, balance, last
-- entry]). The scratch tables are in sqlite_writer.sql.

DELETE FROM temp.batch;

INSERT INTO temp.batch (kind, rows) SELECT key, value FROM json_each(?1);

-- An idempotency key held by a deposit older than the cutoff is given up to the new one.
-- when: deposit_keys
UPDATE deposits SET idempotency_key = NULL
WHERE rowid IN (
    SELECT d.rowid FROM temp.batch_deposits AS n
    CROSS JOIN deposits AS d ON d.user_id = n.r ->> '$.user' AND d.idempotency_key = n.r ->> '$.key'
    WHERE d.created_at < n.r ->> '$.cutoff');

-- when: deposits
INSERT INTO deposits (id, user_id, amount, currency, status, idempotency_key, created_at, updated_at)
SELECT n.r ->> '$.id', n.r ->> '$.user', n.r ->> '$.amount', n.r ->> '$.currency', 'processing',
       n.r ->> '$.key', n.r ->> '$.now', n.r ->> '$.now'
FROM temp.batch_deposits AS n WHERE true ORDER BY n.key
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- The deposits inserted wait for the bank (one whose key was taken was not inserted).
-- when: deposits
INSERT INTO pending_deposits (next_check_at, deposit_id, created_at)
SELECT n.r ->> '$.first_check', d.id, d.created_at
FROM temp.batch_deposits AS n CROSS JOIN deposits AS d ON d.id = n.r ->> '$.id';

-- Reconciliation's next checks of deposits still waiting, found by their current key.
-- when: checks
UPDATE pending_deposits SET next_check_at = c.r ->> '$.next', checks = checks + 1
FROM temp.batch_checks AS c
WHERE pending_deposits.next_check_at = c.r ->> '$.due'
  AND pending_deposits.deposit_id = c.r ->> '$.id';

-- The rows of deposits reconciliation found settled.
-- when: forgets
DELETE FROM pending_deposits WHERE (next_check_at, deposit_id) IN (
    SELECT f.r ->> '$.due', f.r ->> '$.id' FROM temp.batch_forgets AS f);

-- Reconciliation's next checks of withdrawals still waiting, and the rows of settled ones.
-- when: withdrawal_checks
UPDATE pending_withdrawals SET next_check_at = c.r ->> '$.next', checks = checks + 1
FROM temp.batch_withdrawal_checks AS c
WHERE pending_withdrawals.next_check_at = c.r ->> '$.due'
  AND pending_withdrawals.withdrawal_id = c.r ->> '$.id';

-- when: withdrawal_forgets
DELETE FROM pending_withdrawals WHERE (next_check_at, withdrawal_id) IN (
    SELECT f.r ->> '$.due', f.r ->> '$.id' FROM temp.batch_withdrawal_forgets AS f);

-- when: orders
UPDATE deposits SET bank_token = o.r ->> '$.token', pay_url = o.r ->> '$.pay_url',
    updated_at = o.r ->> '$.now'
FROM temp.batch_orders AS o WHERE deposits.id = o.r ->> '$.deposit';

-- when: sessions
INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at)
SELECT s.r ->> '$.hash', s.r ->> '$.user', s.r ->> '$.created_at', s.r ->> '$.expires_at',
       s.r ->> '$.created_at'
FROM temp.batch_sessions AS s;

-- when: touches
UPDATE sessions SET last_seen_at = t.seen
FROM (SELECT r ->> '$.hash' AS hash, MAX(r ->> '$.seen') AS seen FROM temp.batch_touches
      GROUP BY 1) AS t
WHERE sessions.token_hash = t.hash AND sessions.last_seen_at < t.seen;

-- when: logouts
DELETE FROM sessions WHERE token_hash IN (SELECT r ->> '$.hash' FROM temp.batch_logouts);

-- Transfers: a key held by a transfer older than the cutoff is given up, then the transfers
-- are inserted (one whose key is still held is not).
-- when: transfer_keys
UPDATE transfers SET idempotency_key = NULL
WHERE rowid IN (
    SELECT tr.rowid FROM temp.batch_transfers AS n
    CROSS JOIN transfers AS tr ON tr.from_user = n.r ->> '$.from' AND tr.idempotency_key = n.r ->> '$.key'
    WHERE tr.created_at < n.r ->> '$.cutoff');

-- when: transfers
INSERT INTO transfers (id, from_user, to_user, amount, currency, idempotency_key, created_at,
                       to_name, to_email)
SELECT n.r ->> '$.id', n.r ->> '$.from', n.r ->> '$.to', n.r ->> '$.amount', n.r ->> '$.currency',
       n.r ->> '$.key', n.r ->> '$.now', n.r ->> '$.to_name', n.r ->> '$.to_email'
FROM temp.batch_transfers AS n WHERE true ORDER BY n.key
ON CONFLICT (from_user, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- Withdrawals: a key held by a withdrawal older than the cutoff is given up, then the
-- withdrawals are inserted (one whose key is still held is not) and wait for the bank.
-- when: withdrawal_keys
UPDATE withdrawals SET idempotency_key = NULL
WHERE rowid IN (
    SELECT w.rowid FROM temp.batch_withdrawals AS n
    CROSS JOIN withdrawals AS w
        ON w.user_id = n.r ->> '$.user' AND w.idempotency_key = n.r ->> '$.key'
    WHERE w.created_at < n.r ->> '$.cutoff');

-- when: withdrawals
INSERT INTO withdrawals (id, user_id, amount, currency, status, idempotency_key, created_at,
                         updated_at)
SELECT n.r ->> '$.id', n.r ->> '$.user', n.r ->> '$.amount', n.r ->> '$.currency', 'processing',
       n.r ->> '$.key', n.r ->> '$.now', n.r ->> '$.now'
FROM temp.batch_withdrawals AS n WHERE true ORDER BY n.key
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- when: withdrawals
INSERT INTO pending_withdrawals (next_check_at, withdrawal_id, created_at)
SELECT n.r ->> '$.first_check', w.id, w.created_at
FROM temp.batch_withdrawals AS n CROSS JOIN withdrawals AS w ON w.id = n.r ->> '$.id';

-- when: payouts
UPDATE withdrawals SET payout_id = p.r ->> '$.payout_id',
    first_answer = COALESCE(p.r ->> '$.answer', first_answer), updated_at = p.r ->> '$.now'
FROM temp.batch_payouts AS p WHERE withdrawals.id = p.r ->> '$.withdrawal';

-- Settlements: those whose deposit is still processing are applied; the rest change nothing.
-- The user, amount and currency credited are the deposit's own.
DELETE FROM temp.settling;

-- when: settlements
INSERT INTO temp.settling (seq, deposit_id, status, user_id, amount, currency, now)
SELECT s.r ->> '$.pos', d.id, s.r ->> '$.status', d.user_id, d.amount, d.currency, s.r ->> '$.now'
FROM temp.batch_settlements AS s CROSS JOIN deposits AS d ON d.id = s.r ->> '$.deposit'
WHERE d.status = 'processing';

-- when: settlements
UPDATE deposits SET status = s.status, updated_at = s.now
FROM temp.settling AS s WHERE deposits.id = s.deposit_id;

-- Payouts' ends: those whose withdrawal is still processing are applied; the rest change
-- nothing. The user, amount and currency are the withdrawal's own.
DELETE FROM temp.paying;

-- when: payout_settlements
INSERT INTO temp.paying (seq, withdrawal_id, status, answer, user_id, amount, currency, now)
SELECT s.r ->> '$.pos', w.id, s.r ->> '$.status', s.r ->> '$.answer', w.user_id, w.amount,
       w.currency, s.r ->> '$.now'
FROM temp.batch_payout_settlements AS s CROSS JOIN withdrawals AS w ON w.id = s.r ->> '$.withdrawal'
WHERE w.status = 'processing';

-- when: payout_settlements
UPDATE withdrawals SET status = s.status, first_answer = COALESCE(s.answer, first_answer),
    updated_at = s.now
FROM temp.paying AS s WHERE withdrawals.id = s.withdrawal_id;

-- The batch's ledger entries, in order: each credit moves money from bank clearing to the user,
-- each transfer written from the sender to the recipient, each withdrawal written from the user
-- to payouts in flight, and each payout's end from payouts in flight to bank clearing (paid) or
-- back to the user (failed). `seq` is given as they are inserted.
DELETE FROM temp.moves;

-- when: settlements
INSERT INTO temp.moves (kind, ref, debit, credit, amount, now)
SELECT 'deposit', s.deposit_id, c.id, a.id, s.amount, s.now
FROM temp.settling AS s
LEFT JOIN ledger_accounts AS a ON a.user_id = s.user_id AND a.currency = s.currency
LEFT JOIN ledger_accounts AS c ON c.system = 'bank_clearing' AND c.currency = s.currency
WHERE s.status = 'success' ORDER BY s.seq;

-- when: transfers
INSERT INTO temp.moves (kind, ref, debit, credit, amount, now)
SELECT 'transfer', tr.id, f.id, r.id, tr.amount, tr.created_at
FROM temp.batch_transfers AS n CROSS JOIN transfers AS tr ON tr.id = n.r ->> '$.id'
LEFT JOIN ledger_accounts AS f ON f.user_id = tr.from_user AND f.currency = tr.currency
LEFT JOIN ledger_accounts AS r ON r.user_id = tr.to_user AND r.currency = tr.currency
ORDER BY n.key;

-- when: withdrawals
INSERT INTO temp.moves (kind, ref, debit, credit, amount, now)
SELECT 'withdrawal', w.id, a.id, p.id, w.amount, w.created_at
FROM temp.batch_withdrawals AS n CROSS JOIN withdrawals AS w ON w.id = n.r ->> '$.id'
LEFT JOIN ledger_accounts AS a ON a.user_id = w.user_id AND a.currency = w.currency
LEFT JOIN ledger_accounts AS p ON p.system = 'payouts_in_flight' AND p.currency = w.currency
ORDER BY n.key;

-- when: payout_settlements
INSERT INTO temp.moves (kind, ref, debit, credit, amount, now)
SELECT CASE s.status WHEN 'success' THEN 'payout' ELSE 'payout_return' END, s.withdrawal_id,
       p.id, CASE s.status WHEN 'success' THEN c.id ELSE a.id END, s.amount, s.now
FROM temp.paying AS s
LEFT JOIN ledger_accounts AS p ON p.system = 'payouts_in_flight' AND p.currency = s.currency
LEFT JOIN ledger_accounts AS c ON c.system = 'bank_clearing' AND c.currency = s.currency
LEFT JOIN ledger_accounts AS a ON a.user_id = s.user_id AND a.currency = s.currency
ORDER BY s.seq;

-- Entry ids are given here, in that order after the last one (the single writer makes them
-- ids of its own), so that the accounts below know them without looking the entries up.
-- when: settlements, transfers, withdrawals, payout_settlements
UPDATE temp.moves SET entry = n.id
FROM (SELECT seq, (SELECT COALESCE(MAX(id), 0) FROM ledger_entries)
                  + row_number() OVER (ORDER BY seq) AS id FROM temp.moves) AS n
WHERE moves.seq = n.seq;

-- when: settlements, transfers, withdrawals, payout_settlements
INSERT INTO ledger_entries (id, kind, ref, debit_account, credit_account, amount, created_at)
SELECT entry, kind, ref, debit, credit, amount, now FROM temp.moves ORDER BY seq;

-- Each account changes once per batch, by the sum of its entries in it (bank clearing too,
-- however many deposits the batch credits), and records the last entry it now includes. A
-- user's balance below zero is refused here by the table's CHECK: the whole batch fails.
-- when: settlements, transfers, withdrawals, payout_settlements
UPDATE ledger_accounts SET balance = balance + m.delta, last_entry = m.last, updated_at = m.at
FROM (SELECT x.account, SUM(x.delta) AS delta, MAX(x.entry) AS last, MAX(x.now) AS at
      FROM (SELECT credit AS account, amount AS delta, entry, now FROM temp.moves
            UNION ALL
            SELECT debit, -amount, entry, now FROM temp.moves) AS x
      GROUP BY x.account) AS m
WHERE ledger_accounts.id = m.account;

SELECT (SELECT json_group_array(seq) FROM temp.settling) AS settled,
       (SELECT json_group_array(n.r ->> '$.pos') FROM temp.batch_deposits AS n
        CROSS JOIN deposits AS d ON d.id = n.r ->> '$.id') AS inserted,
       (SELECT json_group_array(n.r ->> '$.pos') FROM temp.batch_transfers AS n
        CROSS JOIN transfers AS tr ON tr.id = n.r ->> '$.id') AS transferred,
       (SELECT json_group_array(n.r ->> '$.pos') FROM temp.batch_withdrawals AS n
        CROSS JOIN withdrawals AS w ON w.id = n.r ->> '$.id') AS withdrawn,
       (SELECT json_group_array(seq) FROM temp.paying) AS paid,
       (SELECT json_group_array(json_array(a.user_id, a.balance, a.last_entry))
        FROM ledger_accounts AS a
        WHERE a.id IN (SELECT credit FROM temp.moves UNION SELECT debit FROM temp.moves)
          AND a.user_id IS NOT NULL) AS balances
