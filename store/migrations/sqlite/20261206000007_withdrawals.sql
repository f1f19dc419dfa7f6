-- Withdrawals: money out to the user's bank as a payout (PostgreSQL's migration 9 is the same).
--
-- A withdrawal is `processing` from its creation, when its amount leaves the user's wallet for
-- the system account `payouts_in_flight` (an entry of kind `withdrawal`), until the bank settles
-- its payout: `success` moves the amount on to `bank_clearing` (kind `payout`), `failure` returns
-- it to the wallet (kind `payout_return`). Each of the three entries exists at most once per
-- withdrawal (`UNIQUE (kind, ref)`). `payout_id` is the bank's id, once the bank answered.
-- `first_answer` is what the bank's answer to the withdrawal's own request made it answer
-- (`created`: 201, `refused`: 502 bank_refused; null: no answer, 502 bank_unavailable), so that a
-- copy of the request with its Idempotency-Key answers the same.
-- `pending_withdrawals` is reconciliation's schedule, keyed by the next check time, as
-- `pending_deposits` is for deposits.

CREATE TABLE withdrawals (
    id               TEXT PRIMARY KEY,          -- wd_<32 hex>: also the payout's ref
    user_id          TEXT NOT NULL REFERENCES users (id),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('processing', 'success', 'failure')),
    payout_id        TEXT UNIQUE,
    first_answer     TEXT CHECK (first_answer IN ('created', 'refused')),
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX withdrawals_idempotency ON withdrawals (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX withdrawals_user_created ON withdrawals (user_id, created_at, id);

-- As `pending_deposits`: no foreign key (its check would scan this table whenever a withdrawal
-- row is written), and the key is the table.
CREATE TABLE pending_withdrawals (
    next_check_at  INTEGER NOT NULL,
    withdrawal_id  TEXT NOT NULL,
    checks         INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (next_check_at, withdrawal_id)
) WITHOUT ROWID;

INSERT INTO ledger_accounts (system, currency, balance, last_entry, updated_at)
SELECT 'payouts_in_flight', currency, 0, 0, 0 FROM ledger_accounts WHERE system = 'bank_clearing';

-- The entries' kinds grow by three. SQLite cannot change a CHECK in place: the table is rebuilt
-- with its rows (ids kept), then its append-only triggers are made again.
CREATE TABLE ledger_entries_new (
    id              INTEGER PRIMARY KEY,  -- rowid: append-only, so ids only grow
    kind            TEXT NOT NULL
        CHECK (kind IN ('deposit', 'transfer', 'withdrawal', 'payout', 'payout_return')),
    ref             TEXT NOT NULL,
    debit_account   INTEGER NOT NULL REFERENCES ledger_accounts (id),
    credit_account  INTEGER NOT NULL REFERENCES ledger_accounts (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    created_at      INTEGER NOT NULL,
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, ref)
);
INSERT INTO ledger_entries_new (id, kind, ref, debit_account, credit_account, amount, created_at)
SELECT id, kind, ref, debit_account, credit_account, amount, created_at FROM ledger_entries
ORDER BY id;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_new RENAME TO ledger_entries;

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
