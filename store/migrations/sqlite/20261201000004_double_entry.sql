-- The double-entry ledger (PostgreSQL's migration 6 is the same).
--
-- Accounts: one per user wallet and currency, and the system accounts money comes from and goes
-- to (`bank_clearing`: what the bank holds for our users' deposits; withdrawals will add
-- `payouts_in_flight`). An account's balance is its credits minus its debits, kept with the row;
-- a user's can never go below zero, and SQLite's own arithmetic may not turn it into a float
-- (an integer overflow in SQLite gives a REAL, which the typeof check refuses).
--
-- Entries: one row is one complete double entry (TigerBeetle's transfer): it debits one account
-- and credits another by the same positive amount, for one cause (`kind`, `ref`: a deposit or a
-- transfer; withdrawals will add theirs), at most once per cause. Entries are append-only.
--
-- The existing wallets and ledger become accounts and entries: every credit in the ledger is an
-- entry from bank clearing to the user, with its id kept (so the last entry a balance includes
-- still names it), and bank clearing's balance is minus the credits. Then the old tables go.

ALTER TABLE users ADD COLUMN email_key TEXT;
ALTER TABLE users ADD COLUMN signed_in_at INTEGER NOT NULL DEFAULT 0;
UPDATE users SET signed_in_at = created_at;
-- `email_key` is the lower-cased email when the provider said it is verified, NULL otherwise;
-- until a user signs in again after this migration nobody can find them by email, since we do
-- not know whether it was verified.
CREATE INDEX users_email ON users (email_key, signed_in_at) WHERE email_key IS NOT NULL;

CREATE TABLE ledger_accounts (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT REFERENCES users (id),
    system      TEXT CHECK (system IN ('bank_clearing', 'payouts_in_flight')),
    currency    TEXT NOT NULL,
    balance     INTEGER NOT NULL CHECK (typeof(balance) = 'integer'),
    last_entry  INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (system IS NULL)),
    CHECK (user_id IS NULL OR balance >= 0),
    UNIQUE (user_id, currency),
    UNIQUE (system, currency)
);

CREATE TABLE ledger_entries (
    id              INTEGER PRIMARY KEY,  -- rowid: append-only, so ids only grow
    kind            TEXT NOT NULL CHECK (kind IN ('deposit', 'transfer')),
    ref             TEXT NOT NULL,
    debit_account   INTEGER NOT NULL REFERENCES ledger_accounts (id),
    credit_account  INTEGER NOT NULL REFERENCES ledger_accounts (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    created_at      INTEGER NOT NULL,
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, ref)
);

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TABLE transfers (
    id               TEXT PRIMARY KEY,
    from_user        TEXT NOT NULL REFERENCES users (id),
    to_user          TEXT NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    CHECK (from_user <> to_user)
);
CREATE UNIQUE INDEX transfers_idempotency ON transfers (from_user, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX transfers_from ON transfers (from_user, created_at, id);
CREATE INDEX transfers_to ON transfers (to_user, created_at, id);

INSERT INTO ledger_accounts (system, currency, balance, last_entry, updated_at)
SELECT 'bank_clearing', c.currency,
       -COALESCE((SELECT SUM(l.amount) FROM ledger AS l JOIN deposits AS d ON d.id = l.deposit_id
                  WHERE d.currency = c.currency), 0),
       COALESCE((SELECT MAX(l.id) FROM ledger AS l JOIN deposits AS d ON d.id = l.deposit_id
                  WHERE d.currency = c.currency), 0),
       COALESCE((SELECT MAX(created_at) FROM ledger), 0)
FROM (SELECT 'INR' AS currency UNION SELECT DISTINCT currency FROM wallets) AS c;

INSERT INTO ledger_accounts (user_id, currency, balance, last_entry, updated_at)
SELECT user_id, currency, balance, last_entry, updated_at FROM wallets;

-- A user without a wallet row (none is expected: the row is made with the user) gets an account
-- holding what the ledger credited them, so that no credit is lost on the way.
INSERT INTO ledger_accounts (user_id, currency, balance, last_entry, updated_at)
SELECT u.id, 'INR',
       COALESCE((SELECT SUM(l.amount) FROM ledger AS l WHERE l.user_id = u.id), 0),
       COALESCE((SELECT MAX(l.id) FROM ledger AS l WHERE l.user_id = u.id), 0),
       u.created_at
FROM users AS u WHERE NOT EXISTS (SELECT 1 FROM wallets AS w WHERE w.user_id = u.id);

INSERT INTO ledger_entries (id, kind, ref, debit_account, credit_account, amount, created_at)
SELECT l.id, 'deposit', l.deposit_id, c.id, a.id, l.amount, l.created_at
FROM ledger AS l
JOIN deposits AS d ON d.id = l.deposit_id
JOIN ledger_accounts AS a ON a.user_id = l.user_id AND a.currency = d.currency
JOIN ledger_accounts AS c ON c.system = 'bank_clearing' AND c.currency = d.currency
ORDER BY l.id;

DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_delete;
DROP TABLE ledger;
DROP TABLE wallets;
