//! Which process owns which wallets. Alone (SQLite, or tests) a process owns every wallet.
//! Among several processes on one PostgreSQL, users fall into [`SHARDS`] shards, and each shard
//! is leased by one process at a time ([`onramp_store::cluster::Leases`]): its owner runs the
//! shard's wallet actors, and every other process sends it the shard's calls.
//!
//! A process trusts a lease it holds only for three quarters of its length after the renewal
//! that extended it was *sent* (its own monotonic clock, never another's), so it stops serving a
//! shard before the database lets anyone else take it. That is a matter of fresh reads only:
//! what keeps two processes from both changing a wallet is the fence every batch carries
//! ([`Lease`], checked in the writer's transaction), which holds however long a process was
//! paused.
//!
//! Each call on a shard held here holds a [`ShardGuard`] until it is answered, so a shard is
//! handed over (at SIGTERM, or to even out the shards among the processes) only once the calls
//! it let in are answered; calls that arrive meanwhile wait for the next owner.

use onramp_store::cluster::{Leases, ShardOwner};
use onramp_store::domain::UserId;
use onramp_store::StoreError;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use onramp_store::cluster::SHARDS;

/// The shard of `user`'s wallet: the same in every process and every build (SHA-256 of the
/// id's text, not a hasher whose keys or algorithm may change).
pub fn shard_of(user: UserId) -> i32 {
    let digest = Sha256::digest(user.to_string().as_bytes());
    let head = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (head % SHARDS as u32) as i32
}

/// A shard's lease as one of its wallets' changes was made under: the writer commits the
/// change only if `node` still holds `shard` at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node: Arc<str>,
    pub shard: i32,
    pub epoch: i64,
}

/// Where a wallet's calls are answered.
pub enum Place {
    /// Here, by this process's actor; with the lease it holds, among several processes.
    Here(Option<ShardGuard>),
    /// At another process, reached at this URL (its `server.advertise_url`).
    There(String),
}

/// A call let in on a shard held here; the shard is not handed over while one lives.
pub struct ShardGuard {
    lease: Lease,
    inflight: Arc<AtomicUsize>,
}

impl ShardGuard {
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl Drop for ShardGuard {
    fn drop(&mut self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This process's id in the lease table: new at every start.
    pub node: String,
    /// Where the others reach this process.
    pub url: String,
    /// `cluster.lease_secs`.
    pub lease: Duration,
}

/// Who owns what, as this process knows it; cheap to clone.
#[derive(Clone)]
pub struct Ownership {
    cluster: Option<Arc<Cluster>>,
}

struct Cluster {
    config: ClusterConfig,
    node: Arc<str>,
    leases: Leases,
    slots: Vec<Mutex<Slot>>,
    /// Processes alive at the last heartbeat.
    alive: AtomicI64,
    /// SIGTERM: take nothing more.
    stopping: AtomicBool,
    /// When the leases were last renewed.
    renewed_at: Mutex<Option<Instant>>,
    /// The liveness lock was found lost: no lease is trusted until a renewal succeeds.
    distrusted: AtomicBool,
    /// Held by the one waiting call that asks the database for a shard's owner (or takes the
    /// shard) now, with when it last did: the others wait for its answer instead of all asking.
    poll: tokio::sync::Mutex<Instant>,
}

#[derive(Default)]
struct Slot {
    held: Option<Held>,
    /// Another process's URL, while it is known to hold the shard.
    elsewhere: Option<String>,
}

struct Held {
    epoch: i64,
    valid_until: Instant,
    /// Being handed over: no new call is let in.
    leaving: bool,
    inflight: Arc<AtomicUsize>,
}

/// How long a call waits for a shard to have an owner (a takeover) before it is answered
/// `503`: a little more than a lease, the longest a dead owner keeps its shards.
fn patience(lease: Duration) -> Duration {
    lease + Duration::from_secs(2)
}

impl Ownership {
    /// One process owning every wallet.
    pub fn solo() -> Ownership {
        Ownership { cluster: None }
    }

    /// One of several processes; call [`Ownership::run`] to take and keep leases.
    pub fn cluster(config: ClusterConfig, leases: Leases) -> Ownership {
        let node: Arc<str> = config.node.clone().into();
        Ownership {
            cluster: Some(Arc::new(Cluster {
                config,
                node,
                leases,
                slots: (0..SHARDS).map(|_| Mutex::default()).collect(),
                alive: AtomicI64::new(1),
                stopping: AtomicBool::new(false),
                renewed_at: Mutex::new(None),
                distrusted: AtomicBool::new(false),
                poll: tokio::sync::Mutex::new(Instant::now()),
            })),
        }
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// How long a call may wait for its wallet's shard to have an owner.
    pub fn patience(&self) -> Duration {
        self.cluster
            .as_ref()
            .map_or(Duration::ZERO, |c| patience(c.config.lease))
    }

    /// Where `user`'s wallet is served now, waiting out a takeover (up to a little more than a
    /// lease): `None` when no process took the shard in that time.
    pub async fn place(&self, user: UserId) -> Option<Place> {
        let Some(c) = &self.cluster else {
            return Some(Place::Here(None));
        };
        let shard = shard_of(user);
        let deadline = Instant::now() + patience(c.config.lease);
        loop {
            if let Some(place) = c.try_place(shard) {
                return Some(place);
            }
            if Instant::now() >= deadline {
                return None;
            }
            c.poll_owner(shard).await;
            if c.try_place(shard).is_none() {
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }

    /// Where `user`'s wallet is served now, without waiting for or taking its shard: `None`
    /// when no process holds it (a takeover under way). For telling a wallet's owner what it
    /// cannot know otherwise: a shard nobody holds has no memory to tell, and whoever takes it
    /// reads the wallet from the database after what there was to tell was committed.
    pub async fn place_owned(&self, user: UserId) -> Option<Place> {
        let Some(c) = &self.cluster else {
            return Some(Place::Here(None));
        };
        let shard = shard_of(user);
        if let Some(place) = c.try_place(shard) {
            return Some(place);
        }
        let _ = c.refresh().await;
        c.try_place(shard)
    }

    /// `user`'s wallet, if this process serves it now (a forwarded call is answered only
    /// then): `Some(None)` alone, `Some(Some(guard))` on a shard held here.
    pub fn place_here(&self, user: UserId) -> Option<Option<ShardGuard>> {
        let Some(c) = &self.cluster else {
            return Some(None);
        };
        match c.try_place(shard_of(user)) {
            Some(Place::Here(guard)) => Some(guard),
            _ => None,
        }
    }

    /// This process's commit under `lease` was fenced: the lease is lost, whatever the last
    /// renewal said; calls on its shard go to whoever holds it now.
    pub fn fenced(&self, lease: &Lease) {
        if let Some(c) = &self.cluster {
            let mut slot = c.slot(lease.shard);
            if slot.held.as_ref().is_some_and(|h| h.epoch == lease.epoch) {
                tracing::warn!(
                    shard = lease.shard,
                    epoch = lease.epoch,
                    "lost a shard (fenced)"
                );
                slot.held = None;
            }
        }
    }

    /// Whether `user`'s wallet is served by this process now.
    pub fn serves(&self, user: UserId) -> bool {
        self.place_here(user).is_some()
    }

    /// The process at `url` said it does not own `user`'s shard: ask the database again.
    pub fn moved(&self, user: UserId, url: &str) {
        if let Some(c) = &self.cluster {
            let mut slot = c.slot(shard_of(user));
            if slot.elsewhere.as_deref() == Some(url) {
                slot.elsewhere = None;
            }
        }
    }

    /// Whether this process runs the service's background work (reconciliation, purges): the
    /// holder of shard 0, so exactly one process at a time, or this one alone.
    pub fn leads(&self) -> bool {
        let Some(c) = &self.cluster else { return true };
        let slot = c.slot(0);
        matches!(&slot.held, Some(h) if !h.leaving && h.valid_until > Instant::now())
    }

    /// Shards held here now.
    pub fn held(&self) -> usize {
        self.cluster
            .as_ref()
            .map_or(SHARDS as usize, |c| c.held().len())
    }

    /// Keeps this process's leases: renews them, takes its share of the free ones, hands the
    /// excess over, every quarter lease (at most half a second), until
    /// [`Ownership::hand_over_all`].
    pub async fn run(self) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        // Often enough that shards a process gave up are taken within a fraction of a second
        // (a call that needs one takes it at once anyway), and a lease is renewed four times
        // or more before it runs out.
        let every =
            (c.config.lease / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !c.stopping.load(Ordering::Acquire) {
            ticks.tick().await;
            // A tick stuck on the database must not keep the next from renewing.
            match tokio::time::timeout(c.config.lease / 2, c.tick()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster lease tick failed"),
                Err(_) => tracing::warn!("cluster lease tick timed out"),
            }
        }
    }

    /// SIGTERM: lets no new call in on any shard held here, waits (up to `limit`) for those let
    /// in to be answered, and gives every lease up at once, so the others take the shards now.
    pub async fn hand_over_all(&self, limit: Duration) {
        let Some(c) = &self.cluster else { return };
        c.stopping.store(true, Ordering::Release);
        if c.alive.load(Ordering::Relaxed) <= 1 {
            // Nobody to hand over to: the calls in flight here are answered here, and the
            // leases are given up when the process is done ([`Ownership::close`]).
            tracing::info!("no other process to hand the shards over to");
            return;
        }
        // Out of the living first, so the others count their fair share without this one and
        // take its shards at their next tick.
        let _ = c.leases.leave(&c.config.node).await;
        let all: Vec<i32> = (0..SHARDS).collect();
        c.hand_over(&all, limit).await;
    }

    /// The process is done: whatever it still holds is given up, and its liveness lock too,
    /// so that a process started next on the same database takes every shard at once.
    pub async fn close(&self) {
        let Some(c) = &self.cluster else { return };
        c.stopping.store(true, Ordering::Release);
        let _ = c.leases.leave(&c.config.node).await;
        let all: Vec<i32> = (0..SHARDS).collect();
        c.hand_over(&all, Duration::from_secs(1)).await;
        c.leases.die().await;
    }
}

/// How often a call waiting for a shard's owner looks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

impl Cluster {
    /// Asks the database who holds `shard`, taking it first if it is free and this process is
    /// below its fair share (above it, the processes with fewer take it: a shard just handed
    /// over is not taken straight back). One waiting call asks at a time, at most every
    /// [`POLL_EVERY`]; the others find the answer in memory.
    async fn poll_owner(&self, shard: i32) {
        let Ok(mut last) = self.poll.try_lock() else {
            return;
        };
        if last.elapsed() < POLL_EVERY {
            return;
        }
        *last = Instant::now();
        let alive = self.alive.load(Ordering::Relaxed).max(1);
        let fair = (SHARDS as i64 + alive - 1) / alive;
        let below_share = (self.held().len() as i64) < fair;
        if below_share && !self.stopping.load(Ordering::Acquire) {
            if let Ok(taken) = self.take(1, Some(shard)).await {
                if !taken.is_empty() {
                    return;
                }
            }
        }
        let _ = self.refresh().await;
    }

    fn slot(&self, shard: i32) -> std::sync::MutexGuard<'_, Slot> {
        self.slots[shard as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn try_place(&self, shard: i32) -> Option<Place> {
        let slot = self.slot(shard);
        if let Some(h) = &slot.held {
            if !h.leaving && h.valid_until > Instant::now() {
                h.inflight.fetch_add(1, Ordering::AcqRel);
                return Some(Place::Here(Some(ShardGuard {
                    lease: Lease {
                        node: self.node.clone(),
                        shard,
                        epoch: h.epoch,
                    },
                    inflight: h.inflight.clone(),
                })));
            }
            return None;
        }
        slot.elsewhere.clone().map(Place::There)
    }

    fn held(&self) -> Vec<(i32, i64)> {
        (0..SHARDS)
            .filter_map(|s| self.slot(s).held.as_ref().map(|h| (s, h.epoch)))
            .collect()
    }

    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.config.lease * 3 / 4
    }

    /// Takes up to `want` free shards (or `only` that one); answers those taken.
    async fn take(&self, want: i64, only: Option<i32>) -> Result<Vec<(i32, i64)>, StoreError> {
        let sent = Instant::now();
        let c = &self.config;
        let taken = self
            .leases
            .take(&c.node, &c.url, want, only, c.lease)
            .await?;
        for &(shard, epoch) in &taken {
            tracing::info!(shard, epoch, "took a shard");
            let mut slot = self.slot(shard);
            slot.elsewhere = None;
            slot.held = Some(Held {
                epoch,
                valid_until: self.valid_until(sent),
                leaving: false,
                inflight: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(taken)
    }

    /// Learns who holds the shards not held here.
    async fn refresh(&self) -> Result<(), StoreError> {
        let owners = self.leases.owners().await?;
        for ShardOwner {
            shard, owner, url, ..
        } in owners
        {
            let mut slot = self.slot(shard);
            if slot.held.is_none() {
                slot.elsewhere = url.filter(|_| owner.as_deref() != Some(&*self.node));
            }
        }
        Ok(())
    }

    async fn tick(self: &Arc<Self>) -> Result<(), StoreError> {
        let c = &self.config;
        // Every tick, not only at renewals: a process whose liveness lock went with its
        // connection is counted dead by the others, who may take its shards at once. Its
        // leases are distrusted the moment that is found, before the lock is taken again.
        self.leases.stay_alive(|| self.distrust_leases()).await?;
        // Renewing writes every lease's row: a quarter lease apart is often enough (a lease is
        // trusted three quarters of its length), and the table stays small. Leases distrusted
        // are renewed at every tick until one renewal succeeds.
        let distrusted = self.distrusted.load(Ordering::Acquire);
        let due = {
            let mut last = self.renewed_at.lock().unwrap_or_else(|e| e.into_inner());
            let due = distrusted || last.is_none_or(|t| t.elapsed() >= c.lease / 4);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.renew().await?;
            if distrusted {
                self.distrusted.store(false, Ordering::Release);
            }
        }
        if self.stopping.load(Ordering::Acquire) {
            return Ok(());
        }
        let alive = self.alive.load(Ordering::Relaxed).max(1);
        let fair = (SHARDS as i64 + alive - 1) / alive;
        let mine = self.held().len() as i64;
        if mine < fair {
            self.take(fair - mine, None).await?;
        } else if mine > fair + 1 {
            // Even out: hand the highest shards over to the processes with fewer.
            let excess: Vec<i32> = self
                .held()
                .iter()
                .rev()
                .take((mine - fair) as usize)
                .map(|(s, _)| *s)
                .collect();
            // Aside: renewing the rest must not wait for these calls to end.
            let this = self.clone();
            tokio::spawn(async move { this.hand_over(&excess, Duration::from_secs(5)).await });
        }
        if self.held().len() < SHARDS as usize {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Lets no new call in on any shard held here until a renewal says the lease is still
    /// this process's: the liveness lock was lost, and while it was, the others could take
    /// any of them (calls already in are fenced at their commit if so).
    fn distrust_leases(&self) {
        self.distrusted.store(true, Ordering::Release);
        let now = Instant::now();
        let mut distrusted = 0;
        for shard in 0..SHARDS {
            if let Some(h) = self.slot(shard).held.as_mut() {
                h.valid_until = h.valid_until.min(now);
                distrusted += 1;
            }
        }
        if distrusted > 0 {
            tracing::warn!(
                distrusted,
                "the liveness lock was lost: no shard is served until its lease is renewed"
            );
        }
    }

    /// The heartbeat and the renewal of every lease held.
    async fn renew(&self) -> Result<(), StoreError> {
        let c = &self.config;
        let alive = self.leases.heartbeat(&c.node, &c.url, c.lease).await?;
        self.alive.store(alive, Ordering::Relaxed);
        let held = self.held();
        let sent = Instant::now();
        let renewed = self.leases.renew(&c.node, &held, c.lease).await?;
        for (shard, epoch) in held {
            let mut slot = self.slot(shard);
            let Some(h) = slot.held.as_mut().filter(|h| h.epoch == epoch) else {
                continue;
            };
            if renewed.contains(&shard) {
                h.valid_until = self.valid_until(sent);
            } else {
                // A shard being handed over was released meanwhile: nothing lost.
                if !h.leaving {
                    tracing::warn!(shard, epoch, "lost a shard's lease");
                }
                slot.held = None;
            }
        }
        Ok(())
    }

    /// Stops letting calls in on `shards`, waits (up to `limit`) for those let in, and releases
    /// their leases.
    async fn hand_over(&self, shards: &[i32], limit: Duration) {
        let mut leaving = Vec::new();
        for &shard in shards {
            let mut slot = self.slot(shard);
            if let Some(h) = slot.held.as_mut() {
                h.leaving = true;
                leaving.push((shard, h.epoch, h.inflight.clone()));
            }
        }
        let started = Instant::now();
        while leaving
            .iter()
            .any(|(_, _, n)| n.load(Ordering::Acquire) > 0)
            && started.elapsed() < limit
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pairs: Vec<(i32, i64)> = leaving.iter().map(|(s, e, _)| (*s, *e)).collect();
        if let Err(e) = self.leases.release(&self.config.node, &pairs).await {
            // They run out by themselves within a lease.
            tracing::warn!(error = %e, "could not release leases");
        }
        for (shard, epoch) in pairs {
            let mut slot = self.slot(shard);
            if slot.held.as_ref().is_some_and(|h| h.epoch == epoch) {
                slot.held = None;
            }
        }
        tracing::info!(shards = leaving.len(), "handed shards over");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_users_and_never_change() {
        let mut counts = vec![0usize; SHARDS as usize];
        for _ in 0..64_000 {
            counts[shard_of(UserId::new()) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
        // The mapping is part of the data: a rolling deploy runs two builds at once.
        let user = UserId::parse("6f1c1d2e-6a3b-4c5d-8e9f-0a1b2c3d4e5f").unwrap();
        assert_eq!(shard_of(user), shard_of(user));
        assert_eq!(shard_of(user), EXPECTED_SHARD);
    }

    /// SHA-256 of the id's text, its first four bytes big-endian, modulo 64: fixed for good.
    const EXPECTED_SHARD: i32 = 39;
}
