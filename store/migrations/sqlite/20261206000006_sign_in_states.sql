-- The states of sign-ins that reached the callback. A sign-in's state, PKCE verifier and nonce
-- travel in a sealed cookie (nothing is stored when a sign-in starts, so a flood of starts costs
-- nothing); the state is single-use, so the callback records it here and refuses one found
-- already. A row is kept until its cookie would be refused anyway (`expires_at`, unix ms), then
-- purged with the sessions. In the database, not in memory, so that every process sees it.
CREATE TABLE sign_in_states (
    state_hash  TEXT PRIMARY KEY NOT NULL,  -- SHA-256 of the state, hex
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sign_in_states_expiry ON sign_in_states (expires_at);
