-- The DB writer's own connection: scratch tables for one batch at a time (see sqlite_batch.sql).
-- TEMP objects live in this connection only and are never written to the database file.

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

-- The settlements of the batch being applied: those whose deposit was still processing.
CREATE TEMP TABLE settling (
    seq         INTEGER PRIMARY KEY,  -- the settlement's position in the batch
    deposit_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    now         INTEGER NOT NULL
);

-- The ledger entries the batch makes, one per credit or transfer, by batch position. A missing
-- account leaves a NULL, which NOT NULL refuses: the batch fails rather than move money halfway.
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
