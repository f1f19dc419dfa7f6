-- Reconciliation by due time: each deposit waiting for the bank has its next check time and the
-- number of checks so far, and the due ones are found through an index, so a backlog of
-- deposits the bank cannot answer for never hides a newer one. Existing rows are due at once.
ALTER TABLE pending_deposits ADD COLUMN next_check_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_deposits ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
CREATE INDEX pending_deposits_due ON pending_deposits (next_check_at);
