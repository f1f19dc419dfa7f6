-- Deposits still waiting for the bank, for reconciliation, in a table of their own as on
-- PostgreSQL (its migration 4 says why there), so that both schemas and their queries are the
-- same. It replaces the partial index on deposits.status.
--
-- Unlike PostgreSQL's, deposit_id has no REFERENCES clause: SQLite checks every insert into a
-- parent table against each child table, and this one has no index on deposit_id, so each new
-- deposit would scan all pending ones. Its rows are written only by the batch script, from the
-- deposits it has just inserted.
CREATE TABLE pending_deposits (
    created_at  INTEGER NOT NULL,
    deposit_id  TEXT NOT NULL,
    PRIMARY KEY (created_at, deposit_id)
) WITHOUT ROWID;
INSERT INTO pending_deposits (created_at, deposit_id)
    SELECT created_at, id FROM deposits WHERE status = 'processing';
DROP INDEX deposits_processing;
