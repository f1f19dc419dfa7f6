//! Who the client is, behind a proxy (`server.trusted_proxies`, config.md).
//!
//! Behind a load balancer every connection comes from the balancer, so a per-address rate limit
//! would put every user in one bucket. The balancer names the client in `X-Forwarded-For`, but
//! anyone can send that header: it is believed only on a connection from a listed proxy, and
//! then read from the right, where the proxies appended what they saw, skipping the listed
//! proxies themselves. The first address that is not a listed proxy is the client; whatever a
//! client wrote further left is its own claim and is never read.

use actix_web::http::header::{HeaderMap, HeaderName};
use serde::Deserialize;
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The addresses whose `X-Forwarded-For` names the client. From a file a list
/// (`trusted_proxies = ["10.0.0.1"]`); from the environment one string with commas
/// (`ONRAMP__SERVER__TRUSTED_PROXIES=10.0.0.1,10.0.0.2`). Anything that is not an IP address
/// refuses the configuration: a typo must not silently trust nobody (or the wrong host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    pub fn new(addresses: Vec<IpAddr>) -> Self {
        TrustedProxies(addresses)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|p| p.to_canonical() == ip)
    }

    /// The client of a request that arrived from `peer` with `headers`. `None` only when the
    /// connection has no peer address (a test request, a Unix socket).
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        // Several header lines are one list, in order (RFC 9110, 5.3). Read as bytes: a line
        // with a byte that is not ASCII must not vanish whole, or the address the proxy appended
        // to the client's own line would vanish with it.
        let hops: Vec<&[u8]> = headers
            .get_all(X_FORWARDED_FOR)
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                // A proxy in the chain: the hop before it says who called it.
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return Some(ip),
                // An unreadable hop ends what can be believed: the last proxy is the client.
                None => return Some(client),
            }
        }
        Some(client)
    }
}

/// One hop of `X-Forwarded-For`: an address, bare or with a port as some balancers write it
/// (`192.0.2.7:5678`, `[2001:db8::7]:443`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Listed {
            List(Vec<String>),
            Commas(String),
        }
        let items = match Listed::deserialize(d)? {
            Listed::List(items) => items,
            Listed::Commas(s) => s.split(',').map(str::to_owned).collect(),
        };
        items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "server.trusted_proxies: {s:?} is not an IP address"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        h
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| ip(s)).collect())
    }

    #[test]
    fn a_header_from_an_unlisted_address_is_ignored() {
        let none = TrustedProxies::default();
        let h = forwarded(&["198.51.100.7"]);
        assert_eq!(
            none.client(Some(ip("203.0.113.9")), &h),
            Some(ip("203.0.113.9"))
        );
        let other = proxies(&["10.0.0.1"]);
        assert_eq!(
            other.client(Some(ip("203.0.113.9")), &h),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn a_listed_proxy_names_the_client_it_saw() {
        let p = proxies(&["10.0.0.1"]);
        let h = forwarded(&["198.51.100.7"]);
        assert_eq!(p.client(Some(ip("10.0.0.1")), &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn what_a_client_wrote_before_the_proxy_is_never_believed() {
        // The client sent `X-Forwarded-For: 1.2.3.4`; nginx appended the address it saw.
        let p = proxies(&["10.0.0.1"]);
        let h = forwarded(&["1.2.3.4, 198.51.100.7"]);
        assert_eq!(p.client(Some(ip("10.0.0.1")), &h), Some(ip("198.51.100.7")));
        let two_lines = forwarded(&["1.2.3.4", "198.51.100.7"]);
        assert_eq!(
            p.client(Some(ip("10.0.0.1")), &two_lines),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn a_chain_of_listed_proxies_is_walked_to_the_first_unlisted_hop() {
        let p = proxies(&["10.0.0.1", "10.0.0.2"]);
        let h = forwarded(&["1.2.3.4, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(p.client(Some(ip("10.0.0.1")), &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn no_header_or_an_unreadable_hop_leaves_the_proxy_as_the_client() {
        let p = proxies(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            p.client(Some(ip("10.0.0.1")), &HeaderMap::new()),
            Some(ip("10.0.0.1"))
        );
        let h = forwarded(&["198.51.100.7, not-an-address, 10.0.0.2"]);
        assert_eq!(p.client(Some(ip("10.0.0.1")), &h), Some(ip("10.0.0.2")));
    }

    #[test]
    fn a_line_with_bytes_that_are_not_ascii_hides_nothing_the_proxy_appended() {
        // The client sent `X-Forwarded-For: \xff`; nginx appended the address it saw.
        let p = proxies(&["10.0.0.1"]);
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff, 198.51.100.7").unwrap(),
        );
        assert_eq!(p.client(Some(ip("10.0.0.1")), &h), Some(ip("198.51.100.7")));
    }

    #[test]
    fn a_hop_written_with_a_port_names_its_address() {
        let p = proxies(&["10.0.0.1"]);
        let v4 = forwarded(&["198.51.100.7:5678"]);
        assert_eq!(
            p.client(Some(ip("10.0.0.1")), &v4),
            Some(ip("198.51.100.7"))
        );
        let v6 = forwarded(&["[2001:db8::7]:443"]);
        assert_eq!(p.client(Some(ip("10.0.0.1")), &v6), Some(ip("2001:db8::7")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_their_ipv4_form() {
        let p = proxies(&["127.0.0.1"]);
        let h = forwarded(&["::ffff:198.51.100.7"]);
        assert_eq!(
            p.client(Some(ip("::ffff:127.0.0.1")), &h),
            Some(ip("::ffff:198.51.100.7"))
        );
    }

    #[test]
    fn the_list_comes_from_a_file_or_from_one_string_with_commas() {
        #[derive(Debug, Deserialize)]
        struct S {
            trusted_proxies: TrustedProxies,
        }
        let from_file: S =
            serde_json::from_str(r#"{"trusted_proxies": ["10.0.0.1", "::1"]}"#).unwrap();
        assert_eq!(from_file.trusted_proxies, proxies(&["10.0.0.1", "::1"]));
        let from_env: S =
            serde_json::from_str(r#"{"trusted_proxies": "10.0.0.1, 10.0.0.2"}"#).unwrap();
        assert_eq!(from_env.trusted_proxies, proxies(&["10.0.0.1", "10.0.0.2"]));
        let empty: S = serde_json::from_str(r#"{"trusted_proxies": ""}"#).unwrap();
        assert_eq!(empty.trusted_proxies, TrustedProxies::default());
        let typo = serde_json::from_str::<S>(r#"{"trusted_proxies": "10.0.0.1,10.0.0.300"}"#)
            .expect_err("a bad address is refused");
        assert!(
            typo.to_string()
                .contains("\"10.0.0.300\" is not an IP address"),
            "{typo}"
        );
    }
}
