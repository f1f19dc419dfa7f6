//! Who people are, for transfers: a user by id (the sender) and the owner of a verified email
//! (the recipient). Both are read from the database and kept a few seconds in bounded caches
//! (moka), so that a storm of transfers does not read the users table twice per request. A
//! sign-in through this process drops at once the entries it may change (the user's own, and
//! the email it now owns); the time to live bounds how long a change made anywhere else could
//! go unseen.

use moka::sync::Cache;
use onramp_store::domain::{EmailKey, UserId};
use onramp_store::{Store, StoreError, User};
use std::sync::Arc;
use std::time::Duration;

/// How long an answer is kept.
const TTL: Duration = Duration::from_secs(5);
/// Entries kept of each kind, at most.
const CAPACITY: u64 = 100_000;

pub struct People {
    store: Arc<dyn Store>,
    by_id: Cache<UserId, Arc<User>>,
    by_email: Cache<EmailKey, Arc<User>>,
}

impl People {
    pub fn new(store: Arc<dyn Store>) -> Self {
        People {
            store,
            by_id: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            by_email: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
        }
    }

    pub async fn user(&self, id: UserId) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(user) = self.by_id.get(&id) {
            return Ok(Some(user));
        }
        let user = self.store.user(id).await?.map(Arc::new);
        if let Some(user) = &user {
            self.by_id.insert(id, user.clone());
        }
        Ok(user)
    }

    /// The user who most recently signed in with this verified email. Nobody is not kept: a
    /// person who signs up is found at once.
    pub async fn by_email(&self, email: &EmailKey) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(user) = self.by_email.get(email) {
            return Ok(Some(user));
        }
        let user = self.store.user_by_email(email).await?.map(Arc::new);
        if let Some(user) = &user {
            self.by_email.insert(email.clone(), user.clone());
        }
        Ok(user)
    }

    /// A sign-in changed `user` and may have made it the owner of `email`.
    pub fn signed_in(&self, user: UserId, email: &EmailKey) {
        self.by_id.invalidate(&user);
        self.by_email.invalidate(email);
    }
}
