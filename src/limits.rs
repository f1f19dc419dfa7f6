//! Rate limits (`limits.*`): sign-in starts per client address, deposit creation per user. Each
//! key has a token bucket (GCRA, from the `governor` crate); past it the answer is `429` with
//! the JSON error and `Retry-After`. A flood of sign-in starts would otherwise fill the sign-in
//! flows and crowd out real sign-ins; a flood of deposits, the bank and reconciliation.

use crate::configuration::LimitSettings;
use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use onramp_store::domain::UserId;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// The keys' buckets are pruned of full (idle) ones once per this many checks.
const PRUNE_EVERY: u64 = 4096;

pub struct Limits {
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    deposit: DefaultKeyedRateLimiter<UserId>,
    checks: AtomicU64,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let nonzero = |n: u32| NonZeroU32::new(n.max(1)).expect("at least one");
    Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst))
}

impl Limits {
    pub fn new(s: &LimitSettings) -> Self {
        Limits {
            sign_in: DefaultKeyedRateLimiter::keyed(quota(s.sign_in_per_second, s.sign_in_burst)),
            deposit: DefaultKeyedRateLimiter::keyed(quota(s.deposit_per_second, s.deposit_burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// One sign-in start from `client`.
    pub fn sign_in(&self, client: IpAddr) -> Result<(), ApiError> {
        self.check(&self.sign_in, &client)
    }

    /// One deposit of `user`.
    pub fn deposit(&self, user: UserId) -> Result<(), ApiError> {
        self.check(&self.deposit, &user)
    }

    fn check<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        self.prune_now_and_then();
        limiter
            .check_key(key)
            .map_err(|not_until| limited(not_until.wait_time_from(DefaultClock::default().now())))
    }

    fn prune_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.sign_in.retain_recent();
            self.deposit.retain_recent();
        }
    }
}

/// `429` with `Retry-After` in whole seconds (at least 1).
fn limited(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests. Please wait a moment and try again.",
    )
    .retry_after(secs.max(1))
}
