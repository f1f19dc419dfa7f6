-- Logouts, for the other processes of the service. Each process caches the sessions it serves;
-- it reads this list every fraction of a second (the logouts of the last few seconds, by the
-- database's clock) and drops the sessions named, instead of reading every cached session again
-- at each use. A logout writes its row in the statement that deletes the session, which also
-- drops the rows older than a minute.
CREATE TABLE session_ends (
    token_hash  TEXT COLLATE "C" NOT NULL,
    ended_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX session_ends_at ON session_ends (ended_at);

-- Whether the process lists its logouts. One of an earlier release, alive during a rolling
-- upgrade, does not: while one lives, the others read each cached session again at its use.
ALTER TABLE cluster_nodes ADD COLUMN lists_logouts BOOLEAN NOT NULL DEFAULT false;
