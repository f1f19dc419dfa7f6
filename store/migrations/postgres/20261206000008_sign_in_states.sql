-- The states of sign-ins that reached the callback: see SQLite's migration 6, which is the same.
CREATE TABLE sign_in_states (
    state_hash  TEXT COLLATE "C" PRIMARY KEY,  -- SHA-256 of the state, hex
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sign_in_states_expiry ON sign_in_states (expires_at);
