-- The DB writer's own connection: scratch tables for one batch at a time (see sqlite_batch.sql).
-- TEMP objects live in this connection only and are never written to the database file.

-- Checkpoint (copy the WAL back into the database file) after 10,000 pages instead of SQLite's
-- 1,000. A connection of its own checkpoints every 250 ms (`Checkpointer` in sqlite.rs), so this
-- is the backstop: the writer's commit that crosses the mark copies what that has not copied
-- yet (little, normally), and the WAL then starts over from its beginning. At 1,000 the writer
-- itself checkpointed every eighth commit of transfers; a page changed by many commits in
-- between (an account row, an index leaf) is copied once per checkpoint. Readers find a page in
-- the WAL through its index. A WAL that grew past 64 MiB (a long read, such as `onramp audit`
-- beside the app, holds back the checkpoint's restart) is cut back to that size.
PRAGMA wal_autocheckpoint = 10000;
PRAGMA journal_size_limit = 67108864;

-- The batch's changes: one JSON array of rows per kind.
CREATE TEMP TABLE batch (kind TEXT PRIMARY KEY, rows TEXT NOT NULL);

-- Each kind's rows (`r`, a JSON array) in batch order (`key`).
CREATE TEMP VIEW batch_deposits AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'deposits'));
CREATE TEMP VIEW batch_orders AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'orders'));
CREATE TEMP VIEW batch_sessions AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'sessions'));
CREATE TEMP VIEW batch_touches AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'touches'));
CREATE TEMP VIEW batch_logouts AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'logouts'));
CREATE TEMP VIEW batch_checks AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'checks'));
CREATE TEMP VIEW batch_forgets AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'forgets'));
CREATE TEMP VIEW batch_transfers AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'transfers'));
CREATE TEMP VIEW batch_settlements AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'settlements'));
CREATE TEMP VIEW batch_withdrawals AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'withdrawals'));
CREATE TEMP VIEW batch_payouts AS
    SELECT key, value AS r FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'payouts'));
CREATE TEMP VIEW batch_payout_settlements AS
    SELECT key, value AS r
    FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'payout_settlements'));
CREATE TEMP VIEW batch_withdrawal_checks AS
    SELECT key, value AS r
    FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'withdrawal_checks'));
CREATE TEMP VIEW batch_withdrawal_forgets AS
    SELECT key, value AS r
    FROM json_each((SELECT rows FROM temp.batch WHERE kind = 'withdrawal_forgets'));

-- The settlements of the batch being applied: those whose deposit was still processing.
CREATE TEMP TABLE settling (
    seq         INTEGER PRIMARY KEY,  -- the settlement's position among the batch's settlements
    deposit_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    now         INTEGER NOT NULL
);

-- The payouts' ends of the batch being applied: those whose withdrawal was still processing.
CREATE TEMP TABLE paying (
    seq            INTEGER PRIMARY KEY,  -- its position among the batch's payouts' ends
    withdrawal_id  TEXT NOT NULL,
    status         TEXT NOT NULL,
    answer         TEXT,                 -- `refused`: the bank refused the request itself
    user_id        TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    now            INTEGER NOT NULL
);

-- The ledger entries the batch makes, one per movement, in the order they are inserted
-- (`seq`). A missing account leaves a NULL, which NOT NULL refuses: the batch fails rather than
-- move money halfway.
CREATE TEMP TABLE moves (
    seq      INTEGER PRIMARY KEY,
    entry    INTEGER,  -- the id its ledger entry gets
    kind     TEXT NOT NULL,
    ref      TEXT NOT NULL,
    debit    INTEGER NOT NULL,
    credit   INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    now      INTEGER NOT NULL
);
