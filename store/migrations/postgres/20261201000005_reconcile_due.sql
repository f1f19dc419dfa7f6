-- Reconciliation by due time: the table of deposits waiting for the bank is keyed by the next
-- check time, so the due ones are read in order from the key and a backlog the bank cannot
-- answer for never hides a newer deposit. Settling a deposit no longer deletes its row (the
-- webhook path writes less); reconciliation drops the rows of settled deposits as they come
-- due. Existing rows are due at once.
ALTER TABLE pending_deposits ADD COLUMN next_check_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pending_deposits ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pending_deposits DROP CONSTRAINT pending_deposits_pkey;
ALTER TABLE pending_deposits ADD PRIMARY KEY (next_check_at, deposit_id);
DELETE FROM pending_deposits AS p USING deposits AS d
    WHERE d.id = p.deposit_id AND d.status <> 'processing';
