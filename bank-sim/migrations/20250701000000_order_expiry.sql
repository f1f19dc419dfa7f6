-- Order expiry and cancel (docs/bank.md): every order gets `expires_at` (unix milliseconds, a whole
-- second), and the statuses `EXPIRED` and `CANCELLED`.
--
-- SQLite cannot change a CHECK constraint in place, so `orders` is rebuilt. `deliveries` is
-- rebuilt with it: its foreign key must point at the new table, and with foreign keys on (the
-- simulator's connections enable them) dropping a parent that still has children fails. So both
-- new tables are filled, the old ones dropped (child first), and the new ones renamed; renaming
-- rewrites the `REFERENCES orders_new` below to `orders`. All of it runs in the migration's
-- transaction.
--
-- Existing orders expire at created_at + 3600 s, rounded up to a whole second: the contract's
-- default, which is what the bank promises for every order created without `expires_in` (and no
-- earlier order could carry one, as the simulator refused the field). A far-future expiry would
-- instead keep old PENDING orders payable forever, which no order created from now on can be, and
-- would show callers an `expires_at` the contract never produces. An order still PENDING more
-- than an hour after it was created therefore reads as EXPIRED after the upgrade; settled orders
-- keep their status (expiry only ends PENDING orders).

CREATE TABLE orders_new (
    token      TEXT    PRIMARY KEY NOT NULL,
    ref        TEXT    NOT NULL UNIQUE,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    currency   TEXT    NOT NULL,
    return_url TEXT    NOT NULL,
    status     TEXT    NOT NULL
        CHECK (status IN ('PENDING', 'SUCCESS', 'FAILURE', 'EXPIRED', 'CANCELLED')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- A PENDING order is EXPIRED once the clock reaches this (set lazily, when it is next read).
    expires_at INTEGER NOT NULL
);

INSERT INTO orders_new (token, ref, amount, currency, return_url, status, created_at, updated_at, expires_at)
SELECT token, ref, amount, currency, return_url, status, created_at, updated_at,
       ((created_at + 999) / 1000 + 3600) * 1000
FROM orders;

CREATE TABLE deliveries_new (
    event_id         TEXT    PRIMARY KEY NOT NULL,
    token            TEXT    NOT NULL REFERENCES orders_new (token),
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

INSERT INTO deliveries_new (event_id, token, body, attempts, next_attempt_at, delivered_at, failed_at,
                            last_error, last_status_code, created_at)
SELECT event_id, token, body, attempts, next_attempt_at, delivered_at, failed_at,
       last_error, last_status_code, created_at
FROM deliveries;

DROP TABLE deliveries;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE INDEX deliveries_token ON deliveries (token);
