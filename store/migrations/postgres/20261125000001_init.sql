-- onramp schema (PostgreSQL). Times are unix milliseconds; money is integer paise.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    picture     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE auth_accounts (
    provider    TEXT NOT NULL,
    sub         TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, sub)
);

-- Only a SHA-256 of the session token is stored, never the token.
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE wallets (
    user_id     TEXT PRIMARY KEY REFERENCES users (id),
    balance     BIGINT NOT NULL CHECK (balance >= 0),
    currency    TEXT NOT NULL DEFAULT 'INR',
    updated_at  BIGINT NOT NULL
);

CREATE TABLE deposits (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('processing', 'success', 'failure')),
    bank_token       TEXT UNIQUE,
    pay_url          TEXT,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX deposits_idempotency ON deposits (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX deposits_user_created ON deposits (user_id, created_at DESC, id DESC);
CREATE INDEX deposits_processing ON deposits (created_at) WHERE status = 'processing';

-- Append-only: one credit per successful deposit, with the balance after it.
CREATE TABLE ledger (
    id             BIGSERIAL PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    deposit_id     TEXT NOT NULL UNIQUE REFERENCES deposits (id),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    balance_after  BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
