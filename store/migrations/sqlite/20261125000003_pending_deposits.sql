-- Deposits waiting for the bank, for reconciliation, in a table of their own as on PostgreSQL
-- (its migrations 4 and 5), so that both schemas and their queries are the same. It replaces
-- the partial index on deposits.status.
--
-- Keyed by the next check time: reconciliation takes the due rows in order from the key, and a
-- new deposit is one B-tree insert. Settling a deposit does not touch this table (the webhook
-- path stays as cheap as it was); reconciliation drops the rows of settled deposits when they
-- come due. Existing processing deposits are due at once.
--
-- Unlike PostgreSQL's, deposit_id has no REFERENCES clause: SQLite checks every insert into a
-- parent table against each child table, and this one has no index on deposit_id, so each new
-- deposit would scan all pending ones. Its rows are written only by the batch script, from the
-- deposits it has just inserted.
CREATE TABLE pending_deposits (
    next_check_at  INTEGER NOT NULL,
    deposit_id     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    checks         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (next_check_at, deposit_id)
) WITHOUT ROWID;
INSERT INTO pending_deposits (next_check_at, deposit_id, created_at)
    SELECT 0, id, created_at FROM deposits WHERE status = 'processing';
DROP INDEX deposits_processing;
