//! The `X-Bank-Signature` header parser and verifier on arbitrary bytes: they must never panic,
//! accept only what they can parse back, and a header we sign over the same input must verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onramp_bank_protocol::signature::{parse_header, sign_header, verify, TOLERANCE_SECS};

const NOW: i64 = 1_780_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = parse_header(header) {
        assert!(!parsed.v1.is_empty());
        assert!(parsed.t >= 0);
    }
    // Whatever the header, verification answers (never panics), and a random header never
    // matches a secret it was not made with.
    assert!(verify(Some(header), &[b"secret"], data, NOW).is_err());
    // The input as a body: our own signature over it verifies, and over other bytes it does not.
    let signed = sign_header(&[b"secret"], NOW, data);
    assert_eq!(verify(Some(&signed), &[b"secret"], data, NOW), Ok(()));
    assert!(verify(Some(&signed), &[b"other"], data, NOW).is_err());
    assert!(verify(Some(&signed), &[b"secret"], data, NOW + TOLERANCE_SECS + 1).is_err());
    let mut changed = data.to_vec();
    changed.push(b' ');
    assert!(verify(Some(&signed), &[b"secret"], &changed, NOW).is_err());
});
