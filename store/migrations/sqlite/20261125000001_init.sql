-- onramp schema (SQLite). Times are unix milliseconds; money is integer paise.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    picture     TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE auth_accounts (
    provider    TEXT NOT NULL,
    sub         TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, sub)
);

-- Only a SHA-256 of the session token is stored, never the token.
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE wallets (
    user_id     TEXT PRIMARY KEY REFERENCES users (id),
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    currency    TEXT NOT NULL DEFAULT 'INR',
    updated_at  INTEGER NOT NULL
);

CREATE TABLE deposits (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('processing', 'success', 'failure')),
    bank_token       TEXT UNIQUE,
    pay_url          TEXT,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX deposits_idempotency ON deposits (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX deposits_user_created ON deposits (user_id, created_at DESC, id DESC);
CREATE INDEX deposits_processing ON deposits (created_at) WHERE status = 'processing';

-- Append-only: one credit per successful deposit, with the balance after it.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,  -- rowid: append-only, so ids only grow
    user_id        TEXT NOT NULL REFERENCES users (id),
    deposit_id     TEXT NOT NULL UNIQUE REFERENCES deposits (id),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    balance_after  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
