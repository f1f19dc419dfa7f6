-- The double-entry ledger: accounts, entries and transfers, and the existing wallets and ledger
-- moved into them. See SQLite's migration 4, which is the same but for two things: a balance is
-- a BIGINT, whose overflow PostgreSQL refuses by itself; and entries and transfers carry no
-- foreign keys to accounts and users. PostgreSQL checks a foreign key by locking the parent row
-- (FOR KEY SHARE), which dirties the users' and accounts' pages on every transfer: without the
-- four checks a group commit of transfers took half the time (10.3 ms instead of 22.7 ms for 41
-- transfers, BENCHMARKS.md). The batch writes only ids it has just looked up (a missing account
-- fails its NOT NULL), and `onramp audit` names an entry or transfer that names nobody.

ALTER TABLE users ADD COLUMN email_key TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN signed_in_at BIGINT NOT NULL DEFAULT 0;
UPDATE users SET signed_in_at = created_at;
CREATE INDEX users_email ON users (email_key, signed_in_at) WHERE email_key IS NOT NULL;

CREATE TABLE ledger_accounts (
    id          BIGSERIAL PRIMARY KEY,
    user_id     TEXT COLLATE "C" REFERENCES users (id),
    system      TEXT COLLATE "C" CHECK (system IN ('bank_clearing', 'payouts_in_flight')),
    currency    TEXT COLLATE "C" NOT NULL,
    balance     BIGINT NOT NULL,
    last_entry  BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (system IS NULL)),
    CONSTRAINT user_balance_not_negative CHECK (user_id IS NULL OR balance >= 0),
    UNIQUE (user_id, currency),
    UNIQUE (system, currency)
);
ALTER TABLE ledger_accounts SET (fillfactor = 80);

CREATE TABLE ledger_entries (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('deposit', 'transfer')),
    ref             TEXT COLLATE "C" NOT NULL,
    debit_account   BIGINT NOT NULL,
    credit_account  BIGINT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    created_at      BIGINT NOT NULL,
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, ref)
);

CREATE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE transfers (
    id               TEXT COLLATE "C" PRIMARY KEY,
    from_user        TEXT COLLATE "C" NOT NULL,
    to_user          TEXT COLLATE "C" NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT COLLATE "C" NOT NULL,
    idempotency_key  TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
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
SELECT setval(pg_get_serial_sequence('ledger_entries', 'id'),
              (SELECT COALESCE(MAX(id), 0) + 1 FROM ledger_entries), false);

DROP TABLE ledger;
DROP TABLE wallets;
