-- Payouts (docs/bank.md, "Payouts"): money the merchant sends back to a user's bank account. A
-- payout is `PENDING` until the bank settles it (`settle_at`, `dev.payout_delay_ms` after its
-- creation), then `SUCCESS` or `FAILURE` for good. `ref` is the app's withdrawal id: create is
-- idempotent on it.
CREATE TABLE payouts (
    payout_id  TEXT    PRIMARY KEY NOT NULL,
    ref        TEXT    NOT NULL UNIQUE,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    currency   TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILURE')),
    settle_at  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX payouts_due ON payouts (settle_at) WHERE status = 'PENDING';

-- A delivery is now an order's webhook or a payout's: `token` or `payout_id`, exactly one. SQLite
-- cannot drop a NOT NULL in place, so `deliveries` is rebuilt (see the order-expiry migration).
CREATE TABLE deliveries_new (
    event_id         TEXT    PRIMARY KEY NOT NULL,
    token            TEXT    REFERENCES orders (token),
    payout_id        TEXT    REFERENCES payouts (payout_id),
    -- The webhook body exactly as it is sent.
    body             TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    delivered_at     INTEGER,
    -- Set when the delivery was given up (attempts exhausted) or dropped by a fault mode.
    failed_at        INTEGER,
    last_error       TEXT,
    last_status_code INTEGER,
    created_at       INTEGER NOT NULL,
    CHECK ((token IS NULL) <> (payout_id IS NULL))
);

INSERT INTO deliveries_new (event_id, token, body, attempts, next_attempt_at, delivered_at, failed_at,
                            last_error, last_status_code, created_at)
SELECT event_id, token, body, attempts, next_attempt_at, delivered_at, failed_at,
       last_error, last_status_code, created_at
FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX deliveries_token ON deliveries (token);
CREATE INDEX deliveries_payout ON deliveries (payout_id);
