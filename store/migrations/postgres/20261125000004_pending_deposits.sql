-- Deposits still waiting for the bank, for reconciliation, in a table of their own instead of a
-- partial index on deposits.status: with the status in no index, settling a deposit is a HOT
-- update (no new index entries; fillfactor leaves room on the page), and leaving this table is
-- a delete, which PostgreSQL only marks.
CREATE TABLE pending_deposits (
    created_at  BIGINT NOT NULL,
    deposit_id  TEXT COLLATE "C" NOT NULL REFERENCES deposits (id),
    PRIMARY KEY (created_at, deposit_id)
);
INSERT INTO pending_deposits (created_at, deposit_id)
    SELECT created_at, id FROM deposits WHERE status = 'processing';
DROP INDEX deposits_processing;
ALTER TABLE deposits SET (fillfactor = 80);
