//! Who people are, for transfers: a user by id (the sender) and the owner of a verified email
//! (the recipient). Both are read from the database and kept a minute in bounded caches (moka),
//! so that a storm of transfers does not read the users table for each request. A sign-in
//! through this process drops at once the entries it may change (the user's own, and the email
//! it now owns), and a sign-in is the only change the app makes to either; the time to live
//! bounds how long a change made anywhere else (by hand in the database) could go unseen.
//!
//! Why a minute and not a few seconds: among 10,000 people sending each other money, a
//! five-second entry was read again for most transfers (two reads each, sender and recipient),
//! and those reads took more than a third of a core of SQLite's threads in `transfers-random`
//! (BENCHMARKS.md, "What a transfer costs").
//!
//! The misses themselves are read together ([`gather`]): a crowd of first transfers costs a few
//! queries, not one each.

mod gather;

use gather::{Found, Gather, Read};
use moka::sync::Cache;
use onramp_store::domain::{EmailKey, UserId};
use onramp_store::{Store, User};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long an answer is kept.
const TTL: Duration = Duration::from_secs(60);
/// Entries kept of each kind, at most, unless `cache.people` says otherwise.
pub const CAPACITY: u64 = 100_000;

pub struct People {
    read_by_id: Gather<UserId>,
    read_by_email: Gather<EmailKey>,
    by_id: Cache<UserId, Arc<User>>,
    /// The owner each email was found to have. An entry is only believed while the owner's
    /// entry in `by_id` (dropped at each of the owner's sign-ins) still has that email: a
    /// person who signs in with another email gives the old one up at once.
    by_email: Cache<EmailKey, Arc<User>>,
    /// Sign-ins seen so far. A read that raced a sign-in (it may have read the row from before
    /// it) is not kept: see [`People::keep`].
    sign_ins: AtomicU64,
}

fn cache<K, V>(capacity: u64) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(TTL)
        .build()
}

impl People {
    /// Keeps at most `capacity` people of each kind (by id, by email). Starts the thread that
    /// reads the misses (an actix arbiter: the actix system must be running).
    pub fn new(store: Arc<dyn Store>, capacity: u64) -> Self {
        let reads = store.clone();
        let read_by_id: Read<UserId> = Arc::new(move |ids| {
            let store = reads.clone();
            Box::pin(async move {
                let users = store.users(&ids).await?;
                Ok(users.into_iter().map(|u| (u.id, u)).collect())
            })
        });
        let read_by_email: Read<EmailKey> = Arc::new(move |emails| {
            let store = store.clone();
            Box::pin(async move {
                let users = store.users_by_email(&emails).await?;
                Ok(users
                    .into_iter()
                    .filter_map(|u| Some((u.email_key.clone()?, u)))
                    .collect())
            })
        });
        let (read_by_id, by_id_task) = Gather::new(read_by_id);
        let (read_by_email, by_email_task) = Gather::new(read_by_email);
        // A thread of their own: the main one runs the DB writer.
        let reader = actix::Arbiter::new();
        reader.spawn(by_id_task);
        reader.spawn(by_email_task);
        People {
            read_by_id,
            read_by_email,
            by_id: cache(capacity),
            by_email: cache(capacity),
            sign_ins: AtomicU64::new(0),
        }
    }

    pub async fn user(&self, id: UserId) -> Found {
        if let Some(user) = self.by_id.get(&id) {
            return Ok(Some(user));
        }
        let seen = self.sign_ins.load(Ordering::SeqCst);
        let user = self.read_by_id.get(id).await?;
        if let Some(user) = &user {
            self.keep(
                seen,
                || self.by_id.insert(id, user.clone()),
                || self.by_id.invalidate(&id),
            );
        }
        Ok(user)
    }

    /// The user who most recently signed in with this verified email. Nobody is not kept: a
    /// person who signs up is found at once.
    pub async fn by_email(&self, email: &EmailKey) -> Found {
        if let Some(owner) = self.by_email.get(email) {
            // Still theirs? Their own entry is as fresh as their last sign-in.
            match self.user(owner.id).await? {
                Some(now) if now.email_key.as_ref() == Some(email) => return Ok(Some(now)),
                _ => self.by_email.invalidate(email),
            }
        }
        let seen = self.sign_ins.load(Ordering::SeqCst);
        let user = self.read_by_email.get(email.clone()).await?;
        if let Some(user) = &user {
            self.keep(
                seen,
                || {
                    self.by_id.insert(user.id, user.clone());
                    self.by_email.insert(email.clone(), user.clone());
                },
                || {
                    self.by_id.invalidate(&user.id);
                    self.by_email.invalidate(email);
                },
            );
        }
        Ok(user)
    }

    /// Keeps what a read found unless a sign-in happened since `seen` (the read may be from
    /// before it). The check comes after the insert: a sign-in that counts itself after the
    /// check drops the entry afterwards ([`People::signed_in`] counts, then drops).
    fn keep(&self, seen: u64, insert: impl FnOnce(), undo: impl FnOnce()) {
        insert();
        if self.sign_ins.load(Ordering::SeqCst) != seen {
            undo();
        }
    }

    /// A sign-in changed `user`: it may now own `email` (and no longer own the email it had,
    /// which [`People::by_email`] sees from the user's own entry). Called after the sign-in
    /// is committed.
    pub fn signed_in(&self, user: UserId, email: &EmailKey) {
        self.sign_ins.fetch_add(1, Ordering::SeqCst);
        self.by_id.invalidate(&user);
        self.by_email.invalidate(email);
    }

    /// A sign-in whose commit failed, and which may have landed all the same (the connection
    /// was lost after COMMIT was sent): whom it changed is not known, so nobody is believed.
    pub fn sign_in_unsure(&self, email: &EmailKey) {
        self.sign_ins.fetch_add(1, Ordering::SeqCst);
        self.by_id.invalidate_all();
        self.by_email.invalidate(email);
    }
}
