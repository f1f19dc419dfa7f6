//! Sessions. The [`SessionManager`] actor owns every change (create, renew, revoke, purge) and
//! persists it through the DB writer. Looking a session up does not go through its mailbox: the
//! request path reads a shared cache (a `DashMap`) and, on a miss, the database, so lookups on
//! every request run concurrently.

use crate::writer::{DbWriter, WriteError};
use actix::prelude::*;
use dashmap::DashMap;
use onramp_store::domain::{now_ms, SessionHash, SessionToken, UserId};
use onramp_store::{
    EndSession, NewSession, Purge, SessionRow, Store, StoreError, TouchSession,
    ENDED_SESSIONS_KEPT_MS, ENDED_SESSIONS_MARGIN_MS,
};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct SessionConfig {
    /// Absolute lifetime.
    pub ttl: Duration,
    /// A session unused for this long ends.
    pub idle: Duration,
    /// How often ended sessions are swept (and failed revocations retried).
    pub sweep_every: Duration,
    /// How long a durable revocation's marker is kept in memory (it only guards against a
    /// lookup that read the row before its delete).
    pub revoked_ttl: Duration,
    /// Among several processes, a logout on another one reaches this one only through the
    /// database. Every third of this, the manager reads the logouts since its last read
    /// ([`Store::ended_sessions_since`]) and drops those sessions from the cache; a cached
    /// session is believed while such a read succeeded within this long (and every living
    /// process lists its logouts), and otherwise read again at each use once it is this old.
    /// `None` alone.
    pub recheck_after: Option<Duration>,
    /// Whether this process sweeps ended sessions from the database (one of the service's
    /// processes at a time does).
    pub sweeps: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Live sessions kept in memory at most (`cache.sessions`). Past it, a session not
    /// yet kept is read from the database at each use; logout markers are always kept (they
    /// are few, and swept after `revoked_ttl`).
    pub capacity: usize,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("ttl", &self.ttl)
            .field("idle", &self.idle)
            .field("recheck_after", &self.recheck_after)
            .finish_non_exhaustive()
    }
}

/// The default of `cache.sessions`: about 30 MiB of sessions.
pub const DEFAULT_CAPACITY: usize = 100_000;

impl SessionConfig {
    /// The sweep and marker times the app runs with.
    pub fn new(ttl: Duration, idle: Duration) -> Self {
        SessionConfig {
            ttl,
            idle,
            sweep_every: Duration::from_secs(60),
            revoked_ttl: Duration::from_secs(600),
            recheck_after: None,
            sweeps: Arc::new(|| true),
            capacity: DEFAULT_CAPACITY,
        }
    }
}

impl SessionConfig {
    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }
    fn idle_ms(&self) -> i64 {
        self.idle.as_millis() as i64
    }
    /// How stale `last_seen_at` may get before it is written again: a small share of the idle
    /// period, so a session in use never looks idle, without a write per request.
    fn touch_after_ms(&self) -> i64 {
        (self.idle_ms() / 20).clamp(0, 60_000)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the session manager has stopped")]
    Stopped,
}

#[derive(Debug, Clone)]
enum Cached {
    /// Alive when last read from the database, at `checked` (ms).
    Live(SessionRow, i64),
    /// Logged out or expired at `at`. Kept while its delete is not committed (`durable`
    /// false: the row is still in the database, and only this marker refuses it; the sweep
    /// retries the delete), then a while longer, so that a lookup that read the row before the
    /// delete cannot bring it back.
    Revoked { at: i64, durable: bool },
}

type Cache = Arc<DashMap<SessionHash, Cached>>;

/// What the reads of other processes' logouts have told.
struct EndsFeed {
    /// When the last read that can be believed began, on this process's monotonic clock
    /// ([`mono_ms`]): every logout committed before then has been dropped from the cache.
    read_at: AtomicI64,
    /// The database's clock at the last read (ms since the epoch; 0: none yet), where the next
    /// read starts.
    db_read_at: AtomicI64,
    reading: AtomicBool,
}

impl Default for EndsFeed {
    fn default() -> Self {
        EndsFeed {
            // Never: nothing is believed on the feed's word before its first read.
            read_at: AtomicI64::new(i64::MIN / 2),
            db_read_at: AtomicI64::new(0),
            reading: AtomicBool::new(false),
        }
    }
}

/// Milliseconds on a clock that never goes back (the wall clock may, and a feed read would
/// then look fresh for as long).
fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as i64
}

/// The handle the app uses.
#[derive(Clone)]
pub struct Sessions {
    cache: Cache,
    store: Arc<dyn Store>,
    addr: Addr<SessionManager>,
    config: SessionConfig,
    feed: Arc<EndsFeed>,
    /// Sessions read from the database, for metrics and tests.
    reads: Arc<AtomicU64>,
}

impl Sessions {
    /// Starts the session manager on its own arbiter.
    pub fn start(store: Arc<dyn Store>, writer: DbWriter, config: SessionConfig) -> Sessions {
        let cache: Cache = Arc::new(DashMap::new());
        let feed = Arc::new(EndsFeed::default());
        let manager = SessionManager {
            cache: cache.clone(),
            writer,
            store: store.clone(),
            feed: feed.clone(),
            config: config.clone(),
        };
        let addr = SessionManager::start_in_arbiter(&Arbiter::new().handle(), |_| manager);
        Sessions {
            cache,
            store,
            addr,
            config,
            feed,
            reads: Arc::default(),
        }
    }

    /// Creates a durable session for `user` and returns its token (shown to the browser once).
    pub async fn create(&self, user: UserId) -> Result<SessionToken, SessionError> {
        self.addr
            .send(Create { user })
            .await
            .map_err(|_| SessionError::Stopped)?
    }

    /// The user behind `token`, if its session is alive. Renews the idle timer.
    pub async fn lookup(&self, token: &SessionToken) -> Result<Option<UserId>, SessionError> {
        let hash = token.hash();
        let now = now_ms();
        let cached = match self.cache.get(&hash).map(|e| e.value().clone()) {
            Some(Cached::Revoked { .. }) => return Ok(None),
            Some(Cached::Live(row, checked)) if self.believed(now, checked) => Some(row),
            _ => None,
        };
        // Among several processes, a session that looks idle here may be in use on another
        // one, whose renewals only the database has.
        let cached = cached.filter(|row| !(self.shared() && self.ended(row, now)));
        let row = match cached {
            Some(row) => row,
            None => match self.read(&hash, now).await? {
                Some(row) => row,
                None => return Ok(None),
            },
        };
        if self.ended(&row, now) {
            self.addr.do_send(Revoke { hash });
            return Ok(None);
        }
        if now - row.last_seen_at >= self.config.touch_after_ms() {
            if let Some(mut e) = self.cache.get_mut(&hash) {
                if let Cached::Live(r, _) = e.value_mut() {
                    r.last_seen_at = now;
                }
            }
            self.addr.do_send(Touch { hash, at: now });
        }
        Ok(Some(row.user_id))
    }

    /// Whether several processes share the sessions.
    fn shared(&self) -> bool {
        self.config.recheck_after.is_some()
    }

    /// Whether a session cached at `checked` is believed at `now`: alone, always; among
    /// several processes, while the logouts were read recently or it was.
    fn believed(&self, now: i64, checked: i64) -> bool {
        let Some(after) = self.config.recheck_after else {
            return true;
        };
        let after = after.as_millis() as i64;
        mono_ms() - self.feed.read_at.load(Ordering::Acquire) < after || now - checked < after
    }

    /// Whether `row` has run out at `now` (its lifetime, or idle).
    fn ended(&self, row: &SessionRow, now: i64) -> bool {
        now >= row.expires_at || now - row.last_seen_at >= self.config.idle_ms()
    }

    /// Reads the session from the database and keeps it (room permitting); `None` when it is
    /// gone or was logged out meanwhile.
    async fn read(&self, hash: &SessionHash, now: i64) -> Result<Option<SessionRow>, SessionError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let Some(row) = self.store.session(hash).await? else {
            // Ended elsewhere (another process's logout or sweep).
            self.cache
                .remove_if(hash, |_, c| matches!(c, Cached::Live(..)));
            return Ok(None);
        };
        if self.full(hash) {
            return Ok(Some(row));
        }
        let mut entry = self
            .cache
            .entry(hash.clone())
            .or_insert(Cached::Live(row.clone(), now));
        match entry.value_mut() {
            Cached::Live(cached, checked) => {
                // A touch not yet written is newer than the row.
                let seen = cached.last_seen_at.max(row.last_seen_at);
                *cached = row;
                cached.last_seen_at = seen;
                *checked = now;
                Ok(Some(cached.clone()))
            }
            Cached::Revoked { .. } => Ok(None),
        }
    }

    /// Sessions read from the database so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Ends the session at once (logout). Unknown tokens are fine.
    pub async fn revoke(&self, token: &SessionToken) -> Result<(), SessionError> {
        self.addr
            .send(Revoke { hash: token.hash() })
            .await
            .map_err(|_| SessionError::Stopped)?
    }

    /// Whether `hash` may not be kept: it is not, and the cache holds its capacity.
    fn full(&self, hash: &SessionHash) -> bool {
        !self.cache.contains_key(hash) && self.cache.len() >= self.config.capacity
    }

    /// Sessions held in memory (for metrics).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

pub struct SessionManager {
    cache: Cache,
    writer: DbWriter,
    store: Arc<dyn Store>,
    feed: Arc<EndsFeed>,
    config: SessionConfig,
}

impl Actor for SessionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.sweep_every, |act, _| act.sweep());
        if let Some(after) = self.config.recheck_after {
            ctx.run_interval(after / 3, |act, _| act.read_ends());
        }
    }
}

impl SessionManager {
    /// Reads the logouts of every process since the last read and drops those sessions from
    /// the cache; then records when the read began. One read at a time, for at most the recheck
    /// interval. A read after a gap longer than the database keeps logouts for drops every
    /// cached session (each is read again at its next use): some logouts may be gone unseen.
    fn read_ends(&mut self) {
        let Some(limit) = self.config.recheck_after else {
            return;
        };
        if self.feed.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, cache, feed) = (self.store.clone(), self.cache.clone(), self.feed.clone());
        actix::spawn(async move {
            let began = mono_ms();
            let since = Some(feed.db_read_at.load(Ordering::Acquire)).filter(|t| *t != 0);
            match tokio::time::timeout(limit, store.ended_sessions_since(since)).await {
                Ok(Ok(ended)) => {
                    for hash in &ended.hashes {
                        cache.remove_if(hash, |_, c| matches!(c, Cached::Live(..)));
                    }
                    let gap = since.map_or(0, |s| ended.read_at - s);
                    if gap > ENDED_SESSIONS_KEPT_MS - ENDED_SESSIONS_MARGIN_MS {
                        tracing::warn!(
                            gap_ms = gap,
                            "logouts unread too long: every cached session will be read again"
                        );
                        cache.retain(|_, c| !matches!(c, Cached::Live(..)));
                    }
                    feed.db_read_at.store(ended.read_at, Ordering::Release);
                    if ended.complete {
                        feed.read_at.fetch_max(began, Ordering::AcqRel);
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "reading the service's logouts failed"),
                Err(_) => tracing::warn!("reading the service's logouts timed out"),
            }
            feed.reading.store(false, Ordering::Release);
        });
    }
}

impl SessionManager {
    /// Drops ended sessions from memory and the database.
    fn sweep(&mut self) {
        let now = now_ms();
        let idle = self.config.idle_ms();
        let revoked_ms = self.config.revoked_ttl.as_millis() as i64;
        let mut unfinished = Vec::new();
        // A full cache makes room for the sessions in use: a session in use is touched (its
        // `last_seen_at` renewed) every `touch_after`, so one untouched for twice that is not.
        let unused_ms = if self.cache.len() >= self.config.capacity {
            (2 * self.config.touch_after_ms()).max(1_000)
        } else {
            i64::MAX
        };
        self.cache.retain(|hash, c| match c {
            Cached::Live(r, _) => now < r.expires_at && now - r.last_seen_at < idle.min(unused_ms),
            Cached::Revoked { durable: false, .. } => {
                unfinished.push(hash.clone());
                true
            }
            Cached::Revoked { at, durable: true } => now - *at < revoked_ms,
        });
        for hash in unfinished {
            actix::spawn(revoke_durably(
                self.writer.clone(),
                self.cache.clone(),
                hash,
            ));
        }
        if !(self.config.sweeps)() {
            return;
        }
        let writer = self.writer.clone();
        actix::spawn(async move {
            if let Err(e) = writer.commit(Purge { now, idle_ms: idle }).await {
                tracing::warn!(error = %e, "purging ended sessions failed");
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "Result<SessionToken, SessionError>")]
struct Create {
    user: UserId,
}

impl Handler<Create> for SessionManager {
    type Result = ResponseFuture<Result<SessionToken, SessionError>>;

    #[tracing::instrument(level = "debug", name = "sessions.create", skip_all, fields(user = %msg.user))]
    fn handle(&mut self, msg: Create, _: &mut Self::Context) -> Self::Result {
        let token = SessionToken::generate();
        let hash = token.hash();
        let now = now_ms();
        let row = SessionRow {
            user_id: msg.user,
            created_at: now,
            expires_at: now + self.config.ttl_ms(),
            last_seen_at: now,
        };
        let writer = self.writer.clone();
        let cache = self.cache.clone();
        let capacity = self.config.capacity;
        Box::pin(async move {
            writer
                .commit(NewSession {
                    hash: hash.clone(),
                    user_id: row.user_id,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                })
                .await?;
            if cache.len() < capacity {
                cache.insert(hash, Cached::Live(row, now_ms()));
            }
            Ok(token)
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), SessionError>")]
struct Revoke {
    hash: SessionHash,
}

impl Handler<Revoke> for SessionManager {
    type Result = ResponseFuture<Result<(), SessionError>>;

    #[tracing::instrument(level = "debug", name = "sessions.revoke", skip_all)]
    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) -> Self::Result {
        let revoked = Cached::Revoked {
            at: now_ms(),
            durable: false,
        };
        self.cache.insert(msg.hash.clone(), revoked);
        Box::pin(revoke_durably(
            self.writer.clone(),
            self.cache.clone(),
            msg.hash,
        ))
    }
}

/// Deletes the session's row and, once that is committed, lets its marker age out. Until then
/// the marker stays (the sweep calls this again), so a failed delete never brings the session
/// back.
async fn revoke_durably(
    writer: DbWriter,
    cache: Cache,
    hash: SessionHash,
) -> Result<(), SessionError> {
    let deleted = writer.commit(EndSession { hash: hash.clone() }).await;
    match deleted {
        Ok(()) => {
            if let Some(mut entry) = cache.get_mut(&hash) {
                if let Cached::Revoked { durable, .. } = entry.value_mut() {
                    *durable = true;
                }
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "a logout is not durable yet; retrying at the next sweep");
            Err(e.into())
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Touch {
    hash: SessionHash,
    at: i64,
}

impl Handler<Touch> for SessionManager {
    type Result = ResponseFuture<()>;

    #[tracing::instrument(level = "trace", name = "sessions.touch", skip_all)]
    fn handle(&mut self, msg: Touch, _: &mut Self::Context) -> Self::Result {
        let writer = self.writer.clone();
        Box::pin(async move {
            let op = TouchSession {
                hash: msg.hash,
                last_seen_at: msg.at,
            };
            if let Err(e) = writer.commit(op).await {
                tracing::warn!(error = %e, "renewing a session failed");
            }
        })
    }
}
