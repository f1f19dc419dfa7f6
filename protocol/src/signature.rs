//! The bank's webhook signature: `X-Bank-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//! with `v1 = hex(HMAC-SHA256(secret, "<t>.<raw body>"))` (see `docs/bank.md`).
//!
//! Used by the bank simulator to sign and by the app to verify. Verification works on the raw
//! bytes, compares in constant time and refuses a timestamp too far from the receiver's clock.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "X-Bank-Signature";
pub const EVENT_ID_HEADER: &str = "X-Bank-Event-Id";
/// Largest accepted distance between the signature's `t` and the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;
/// At most this many `v1` values are looked at (a rotation needs two).
const MAX_SIGNATURES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is too far from now")]
    StaleTimestamp,
    #[error("no signature matches")]
    NoMatch,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The header value signing `body` at time `t` with each secret (two during a rotation).
pub fn sign_header(secrets: &[&[u8]], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac(secret, t, body)));
    }
    header
}

/// A parsed header: the timestamp and the candidate signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    pub t: i64,
    pub v1: Vec<[u8; 32]>,
}

/// Parses `t=<digits>,v1=<64 hex>[,v1=…]`. Unknown keys (other schemes) are ignored; exactly one
/// `t` and at least one well-formed `v1` are required.
pub fn parse_header(header: &str) -> Result<ParsedSignature, SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if t.is_some()
                    || value.is_empty()
                    || value.len() > 12
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(SignatureError::Malformed);
                }
                t = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "v1" => {
                let mut sig = [0u8; 32];
                hex::decode_to_slice(value, &mut sig).map_err(|_| SignatureError::Malformed)?;
                if v1.len() < MAX_SIGNATURES {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    match t {
        Some(t) if !v1.is_empty() => Ok(ParsedSignature { t, v1 }),
        _ => Err(SignatureError::Malformed),
    }
}

/// Verifies `header` over the raw `body` against any of `secrets` at time `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    secrets: &[&[u8]],
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let parsed = parse_header(header.ok_or(SignatureError::Missing)?)?;
    if (now - parsed.t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::StaleTimestamp);
    }
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let expected = mac(secret, parsed.t, body);
        for candidate in &parsed.v1 {
            matched |= expected.ct_eq(candidate);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000;

    #[test]
    fn a_signed_body_verifies() {
        let h = sign_header(&[b"secret"], NOW, b"{\"a\":1}");
        assert_eq!(verify(Some(&h), &[b"secret"], b"{\"a\":1}", NOW), Ok(()));
    }

    #[test]
    fn a_changed_body_or_secret_does_not() {
        let h = sign_header(&[b"secret"], NOW, b"{\"a\":1}");
        assert_eq!(
            verify(Some(&h), &[b"secret"], b"{\"a\":2}", NOW),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&h), &[b"other"], b"{\"a\":1}", NOW),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn one_match_among_rotated_values_is_enough() {
        let h = sign_header(&[b"old", b"new"], NOW, b"x");
        assert_eq!(h.matches("v1=").count(), 2);
        assert_eq!(verify(Some(&h), &[b"new"], b"x", NOW), Ok(()));
        assert_eq!(verify(Some(&h), &[b"old"], b"x", NOW), Ok(()));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let h = sign_header(&[b"s"], NOW - 301, b"x");
        assert_eq!(
            verify(Some(&h), &[b"s"], b"x", NOW),
            Err(SignatureError::StaleTimestamp)
        );
        let h = sign_header(&[b"s"], NOW + 301, b"x");
        assert_eq!(
            verify(Some(&h), &[b"s"], b"x", NOW),
            Err(SignatureError::StaleTimestamp)
        );
        let h = sign_header(&[b"s"], NOW - 300, b"x");
        assert_eq!(verify(Some(&h), &[b"s"], b"x", NOW), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in [
            "",
            "t=",
            "t=abc,v1=00",
            "v1=".to_string().as_str(),
            "t=1",
            "t=1,v1=zz",
            "t=1,t=2,v1=0000000000000000000000000000000000000000000000000000000000000000",
            "t=-1,v1=0000000000000000000000000000000000000000000000000000000000000000",
            "t=99999999999999999999,v1=0000000000000000000000000000000000000000000000000000000000000000",
            "garbage",
        ] {
            assert_eq!(parse_header(h), Err(SignatureError::Malformed), "{h:?}");
        }
        assert_eq!(
            verify(None, &[b"s"], b"x", NOW),
            Err(SignatureError::Missing)
        );
    }
}
