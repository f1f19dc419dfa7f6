-- The bank simulator's own database: orders and their durable webhook deliveries.
-- Times are unix milliseconds.

CREATE TABLE orders (
    token      TEXT    PRIMARY KEY NOT NULL,
    ref        TEXT    NOT NULL UNIQUE,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    currency   TEXT    NOT NULL,
    return_url TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILURE')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE deliveries (
    event_id         TEXT    PRIMARY KEY NOT NULL,
    token            TEXT    NOT NULL REFERENCES orders (token),
    -- The webhook body exactly as it is sent.
    body             TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    delivered_at     INTEGER,
    -- Set when the delivery was given up (attempts exhausted) or dropped by a fault mode.
    failed_at        INTEGER,
    last_error       TEXT,
    last_status_code INTEGER,
    created_at       INTEGER NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE INDEX deliveries_token ON deliveries (token);
