-- Several processes, one service (PostgreSQL only: SQLite stays one process). Users fall into a
-- fixed number of shards; each shard is leased by one process at a time. `epoch` grows at every
-- takeover, and every group commit that changes a wallet checks, in its own transaction, that
-- its process still holds the epochs it wrote under, holding the shard's advisory lock shared
-- until it commits (a takeover, which needs it exclusively, skips the shard meanwhile, and a
-- commit after the takeover finds the new epoch and writes nothing). Times are the database's own clock: no process's clock decides who owns
-- what. `owner_lock` is the owner's liveness lock (below).
CREATE TABLE cluster_shards (
    shard       INT PRIMARY KEY,
    owner       TEXT COLLATE "C",
    owner_lock  INT,
    url         TEXT,
    epoch       BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
INSERT INTO cluster_shards (shard) SELECT generate_series(0, 63);

-- The processes alive now, so each knows its fair share of the shards. Each holds, for its
-- whole life, the advisory lock (28526, lock_key) on a connection of its own: PostgreSQL drops
-- it the moment that connection closes, so the shards of a process that died (SIGKILL, a
-- crash) are taken at once, while one that is only silent (paused, cut off) keeps them until
-- its lease runs out. A process leaving (SIGTERM) deletes its row here first, so the others
-- count their share without it, and keeps its shards until it releases them.
CREATE TABLE cluster_nodes (
    node        TEXT COLLATE "C" PRIMARY KEY,
    url         TEXT NOT NULL,
    lock_key    INT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
