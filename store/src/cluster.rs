//! Shard leases: which process owns which users' wallets, on PostgreSQL (the one database the
//! processes of a service share). Every time here is the database's clock (`now()`): a lease
//! is taken and renewed for `lease` from the database's now, and a process that stops
//! renewing loses it to whoever takes it next, with a greater epoch. What a lost lease may not
//! do (commit a wallet's change) is refused by the fence in the writer's own transaction
//! ([`crate::Fence`]); these calls only hand leases around.

use crate::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

/// The first key of every process's liveness lock ("on" in ASCII).
const LIVENESS_CLASS: i32 = 0x6f6e;

/// How long the liveness connection may take to answer or to open.
const LIVENESS_WAIT: Duration = Duration::from_secs(2);

/// A process counts as alive while its liveness lock is held (see the migration): SQL for "the
/// process holding shard row `s` is alive".
const OWNER_ALIVE: &str = "EXISTS (SELECT 1 FROM pg_locks AS l \
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 28526 \
        AND l.objid = s.owner_lock::oid AND l.objsubid = 2)";

/// SQL for "the process of node row `c` is alive".
const NODE_ALIVE: &str = "EXISTS (SELECT 1 FROM pg_locks AS l \
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 28526 \
        AND l.objid = c.lock_key::oid AND l.objsubid = 2)";

/// The number of shards users fall into. Fixed: the migration made these rows.
pub const SHARDS: i32 = 64;

/// One shard as the lease table has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOwner {
    pub shard: i32,
    /// The process holding it, while its lease lasts; `None` when it is free or expired.
    pub owner: Option<String>,
    /// Where that process is reached (its `server.advertise_url`).
    pub url: Option<String>,
    pub epoch: i64,
}

/// A row of `cluster_shards` as [`Leases::owners`] reads it: shard, owner, url, epoch, and
/// whether its lease is alive.
type OwnerRow = (i32, Option<String>, Option<String>, i64, bool);

/// The lease table's calls, on a connection of their own (a lease must be renewed even while
/// the app's pool is busy), beside the liveness connection.
#[derive(Clone)]
pub struct Leases {
    pool: PgPool,
    /// The connection holding this process's liveness lock, for as long as the process lives.
    liveness: Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
    lock_key: i32,
    /// The database, to open the liveness connection again when it breaks.
    url: Arc<str>,
    /// [`Leases::die`] was called: the liveness lock is not taken again.
    dead: Arc<std::sync::atomic::AtomicBool>,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Leases {
    pub async fn connect(url: &str) -> Result<Leases, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&crate::redact::pg_url_for_sqlx(url))
            .await?;
        let lock_key = (rand::random::<u32>() >> 1) as i32;
        let leases = Leases {
            pool,
            liveness: Arc::default(),
            lock_key,
            url: crate::redact::pg_url_for_sqlx(url).into(),
            dead: Arc::default(),
        };
        leases.stay_alive(|| {}).await?;
        if !leases.no_older_build().await? {
            return Err(StoreError::Corrupt(
                "an onramp process of a build from before several processes could share a \
                 database holds it (its exclusive lock): stop it first"
                    .into(),
            ));
        }
        Ok(leases)
    }

    /// Builds before several processes could serve one database took an exclusive advisory
    /// lock on it ([`crate::lock`]'s key) and fenced nothing. Every process of this build holds
    /// that lock shared, on its liveness connection: an older process cannot start beside it,
    /// nor it beside an older one (`false`).
    async fn no_older_build(&self) -> Result<bool, StoreError> {
        let mut held = self.liveness.lock().await;
        let Some(conn) = held.as_mut() else {
            return Ok(true);
        };
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock_shared($1)")
            .bind(crate::lock::PG_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        Ok(got)
    }

    /// Holds this process's liveness lock: takes it again on a new connection when the one
    /// that held it broke (PostgreSQL restarted or failed over, a proxy closed it), or the
    /// others would take this process for dead at every turn. `lost` is called as soon as the
    /// lock is found not held, before it is taken again: from then on the others count this
    /// process dead and may take its shards before their leases run out, so the caller trusts
    /// none of its leases until it has renewed them.
    pub async fn stay_alive(&self, lost: impl FnOnce()) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let mut held = self.liveness.lock().await;
        if self.dead.load(Ordering::Acquire) {
            return Ok(());
        }
        let bounded =
            |what| StoreError::Corrupt(format!("the liveness connection: {what} timed out"));
        if let Some(conn) = held.as_mut() {
            let ping = sqlx::query("SELECT 1").execute(&mut *conn);
            if let Ok(Ok(_)) = tokio::time::timeout(LIVENESS_WAIT, ping).await {
                return Ok(());
            }
            tracing::warn!("the liveness connection broke; taking the lock again");
        }
        lost();
        *held = None;
        let connect = sqlx::PgConnection::connect(&self.url);
        let mut conn = tokio::time::timeout(LIVENESS_WAIT, connect)
            .await
            .map_err(|_| bounded("connecting"))??;
        // Not waited for: the broken connection's server side may hold it a while yet.
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LIVENESS_CLASS)
            .bind(self.lock_key)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            return Err(StoreError::Corrupt(
                "the liveness lock is still held by a broken connection".into(),
            ));
        }
        let _ = sqlx::query("SELECT pg_try_advisory_lock_shared($1)")
            .bind(crate::lock::PG_LOCK_KEY)
            .execute(&mut conn)
            .await;
        *held = Some(conn);
        Ok(())
    }

    /// Closes the liveness connection: to the others this process is dead from now on.
    pub async fn die(&self) {
        self.dead.store(true, std::sync::atomic::Ordering::Release);
        if let Some(conn) = self.liveness.lock().await.take() {
            let _ = conn.close().await;
        }
    }

    /// Says `node` is alive for `lease` more, forgets processes long gone, and answers how many
    /// are alive (this one included). The liveness lock is the caller's to keep
    /// ([`Leases::stay_alive`]).
    pub async fn heartbeat(
        &self,
        node: &str,
        url: &str,
        lease: Duration,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO cluster_nodes (node, url, lock_key, expires_at, lists_logouts) \
             VALUES ($1, $2, $4, now() + $3 * interval '1 millisecond', true) \
             ON CONFLICT (node) DO UPDATE SET url = excluded.url, expires_at = excluded.expires_at, \
                 lists_logouts = true",
        )
        .bind(node)
        .bind(url)
        .bind(millis(lease))
        .bind(self.lock_key)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE expires_at < now() - interval '1 hour'")
            .execute(&self.pool)
            .await?;
        let (alive,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM cluster_nodes AS c WHERE c.expires_at > now() AND {NODE_ALIVE}"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(alive.max(1))
    }

    /// Removes `node` from the living (it is leaving).
    pub async fn leave(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM cluster_nodes WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Extends the leases of `held` (shard, epoch) that `node` still holds; answers those.
    pub async fn renew(
        &self,
        node: &str,
        held: &[(i32, i64)],
        lease: Duration,
    ) -> Result<Vec<i32>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (shards, epochs): (Vec<i32>, Vec<i64>) = held.iter().copied().unzip();
        let rows: Vec<(i32,)> = sqlx::query_as(
            "UPDATE cluster_shards AS s SET expires_at = now() + $4 * interval '1 millisecond' \
             FROM UNNEST($2::int4[], $3::int8[]) AS h(shard, epoch) \
             WHERE s.shard = h.shard AND s.epoch = h.epoch AND s.owner = $1 \
             RETURNING s.shard",
        )
        .bind(node)
        .bind(&shards)
        .bind(&epochs)
        .bind(millis(lease))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    /// Takes up to `want` shards that nobody holds (free, their lease expired, or their
    /// process dead), or only `only` if given; answers each taken with its new epoch. A shard
    /// whose lock a commit holds (see the fence in `postgres.rs`) is skipped for now: that
    /// commit ends under the epoch it holds, and the shard is taken at the next try.
    pub async fn take(
        &self,
        node: &str,
        url: &str,
        want: i64,
        only: Option<i32>,
        lease: Duration,
    ) -> Result<Vec<(i32, i64)>, StoreError> {
        if want <= 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(i32, i64)> = sqlx::query_as(&format!(
            "UPDATE cluster_shards AS t SET owner = $1, url = $2, owner_lock = $6, epoch = t.epoch + 1, \
                 expires_at = now() + $3 * interval '1 millisecond' \
             FROM (SELECT shard FROM cluster_shards AS s \
                   WHERE (owner IS NULL OR expires_at < now() OR NOT {OWNER_ALIVE}) \
                       AND ($5::int4 IS NULL OR shard = $5) \
                       AND pg_try_advisory_xact_lock({class}, shard) \
                   ORDER BY shard LIMIT $4 FOR UPDATE SKIP LOCKED) AS f \
             WHERE t.shard = f.shard \
             RETURNING t.shard, t.epoch",
            class = crate::postgres::SHARD_LOCK_CLASS
        ))
        .bind(node)
        .bind(url)
        .bind(millis(lease))
        .bind(want)
        .bind(only)
        .bind(self.lock_key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Gives up `held` (shard, epoch) at once, so another process may take them now.
    pub async fn release(&self, node: &str, held: &[(i32, i64)]) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let (shards, epochs): (Vec<i32>, Vec<i64>) = held.iter().copied().unzip();
        sqlx::query(
            "UPDATE cluster_shards AS s SET owner = NULL, url = NULL, expires_at = 'epoch' \
             FROM UNNEST($2::int4[], $3::int8[]) AS h(shard, epoch) \
             WHERE s.shard = h.shard AND s.epoch = h.epoch AND s.owner = $1",
        )
        .bind(node)
        .bind(&shards)
        .bind(&epochs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every shard's owner now (none where the lease is free or expired).
    pub async fn owners(&self) -> Result<Vec<ShardOwner>, StoreError> {
        let rows: Vec<OwnerRow> = sqlx::query_as(&format!(
            "SELECT shard, owner, url, epoch, \
                 owner IS NOT NULL AND expires_at > now() AND {OWNER_ALIVE} \
             FROM cluster_shards AS s ORDER BY shard"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(shard, owner, url, epoch, live)| ShardOwner {
                shard,
                owner: owner.filter(|_| live),
                url: url.filter(|_| live),
                epoch,
            })
            .collect())
    }
}
