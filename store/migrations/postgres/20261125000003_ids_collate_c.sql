-- Ids, tokens and hashes are opaque ASCII: compare them byte by byte (COLLATE "C") instead of by
-- the database's locale, which every index lookup and join on them would otherwise pay for.
ALTER TABLE users ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE auth_accounts ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE sessions ALTER COLUMN token_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE wallets ALTER COLUMN user_id TYPE TEXT COLLATE "C";
ALTER TABLE deposits ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C",
    ALTER COLUMN bank_token TYPE TEXT COLLATE "C",
    ALTER COLUMN idempotency_key TYPE TEXT COLLATE "C";
ALTER TABLE ledger ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN deposit_id TYPE TEXT COLLATE "C";
