-- A wallet row records the last ledger entry its balance includes, so a wallet's committed
-- balance (and how new it is) is one row's read. The ledger is reached per user through the
-- user's deposits (ledger.deposit_id is unique) and needs no index by user of its own: with
-- credits to many wallets in one group commit, that index took a random page write per credit.
ALTER TABLE wallets ADD COLUMN last_entry BIGINT NOT NULL DEFAULT 0;
UPDATE wallets SET last_entry = COALESCE(
    (SELECT MAX(id) FROM ledger WHERE ledger.user_id = wallets.user_id), 0);
DROP INDEX ledger_user;
