-- Withdrawals: see SQLite's migration 7, which is the same but for the rebuild of the entries
-- (PostgreSQL changes the CHECK in place) and, as for transfers, no foreign keys on the hot path.

CREATE TABLE withdrawals (
    id               TEXT COLLATE "C" PRIMARY KEY,   -- wd_<32 hex>: also the payout's ref
    user_id          TEXT COLLATE "C" NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL CHECK (status IN ('processing', 'success', 'failure')),
    payout_id        TEXT COLLATE "C" UNIQUE,
    -- What the bank's answer to the request made it answer (SQLite's migration 7 says more).
    first_answer     TEXT COLLATE "C" CHECK (first_answer IN ('created', 'refused')),
    idempotency_key  TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
ALTER TABLE withdrawals SET (fillfactor = 80);
CREATE UNIQUE INDEX withdrawals_idempotency ON withdrawals (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX withdrawals_user_created ON withdrawals (user_id, created_at, id);

CREATE TABLE pending_withdrawals (
    next_check_at  BIGINT NOT NULL,
    withdrawal_id  TEXT COLLATE "C" NOT NULL,
    checks         INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (next_check_at, withdrawal_id)
);

INSERT INTO ledger_accounts (system, currency, balance, last_entry, updated_at)
SELECT 'payouts_in_flight', currency, 0, 0, 0 FROM ledger_accounts WHERE system = 'bank_clearing';

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('deposit', 'transfer', 'withdrawal', 'payout', 'payout_return'));
