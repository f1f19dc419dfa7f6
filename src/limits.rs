//! Rate limits (`limits.*`): sign-in starts per client address, deposit creation per user. Each
//! key has a token bucket (GCRA, from the `governor` crate); past it the answer is `429` with
//! the JSON error and `Retry-After`. A flood of sign-in starts would otherwise fill the sign-in
//! flows and crowd out real sign-ins; a flood of deposits, the bank and reconciliation.

use crate::configuration::LimitSettings;
use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use onramp_api::ErrorCode;
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

    /// One sign-in start from `client` (an IPv6 client counts with its whole /64).
    pub fn sign_in(&self, client: IpAddr) -> Result<(), ApiError> {
        self.check(&self.sign_in, &client_key(client))
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

/// The bucket of a client address: an IPv4 address (also written as IPv4-mapped IPv6) is its
/// own; an IPv6 address counts with its /64, which one host is usually given whole (so it
/// cannot take a fresh bucket for each of its 2^64 addresses).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// `429` with `Retry-After` in whole seconds (at least 1).
fn limited(wait: std::time::Duration) -> ApiError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::RateLimited,
        "Too many requests. Please wait a moment and try again.",
    )
    .retry_after(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_limited_with_its_whole_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn addresses_of_one_slash_64_share_a_bucket() {
        let limits = Limits::new(&LimitSettings {
            sign_in_per_second: 1,
            sign_in_burst: 2,
            deposit_per_second: 1,
            deposit_burst: 1,
        });
        let host = |n: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 7, n, 0, 0, n));
        assert!(limits.sign_in(host(1)).is_ok());
        assert!(limits.sign_in(host(2)).is_ok());
        assert!(
            limits.sign_in(host(3)).is_err(),
            "the third from the same /64"
        );
        let elsewhere = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
        assert!(limits.sign_in(elsewhere).is_ok());
    }
}
