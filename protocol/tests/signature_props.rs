//! Properties of the webhook signature (`X-Bank-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`):
//! the parser never panics on any text, a header the bank signs always verifies with the right
//! secret within ±300 s, and nothing else does: another body, another secret, another time, a
//! changed signature, a timestamp outside the tolerance.

use onramp_bank_protocol::signature::{
    parse_header, sign_header, verify, SignatureError, TOLERANCE_SECS,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Receiver clocks from 1970 to 2100 (the receiver's `now` is its own clock, never the sender's).
fn clock() -> impl Strategy<Value = i64> {
    0i64..4_102_444_800
}

fn secret() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..80)
}

/// Secrets used together (one, or two during a rotation, and a few more for good measure).
fn secrets() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(secret(), 1..4)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..512),
        ".{0,200}".prop_map(String::into_bytes),
        Just(br#"{"event_id":"evt_1","token":"t","ref":"txn_1","amount":100,"currency":"INR","status":"SUCCESS"}"#.to_vec()),
    ]
}

/// Text that looks like a signature header often enough to reach every branch of the parser:
/// the right keys, digits, hex of every length, signs, spaces, separators, unicode.
fn header_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "t=[0-9]{0,14}",
        "t=-?[0-9+ ]{0,14}",
        "v1=[0-9a-fA-F]{0,70}",
        "v1=[0-9a-f]{64}",
        "v1=[0-9a-fA-FxX ]{62,66}",
        "v0=[0-9a-f]{64}",
        " ?[a-zA-Z0-9]{0,3}=?[^,]{0,6} ?",
        "[=,]{0,3}",
        ".{0,8}",
    ];
    vec(part, 0..12).prop_map(|parts| parts.join(","))
}

/// Headers one step from valid: a `t` that is signed, padded, too long or out of range, and one
/// well-formed `v1`, in either order.
fn near_valid() -> impl Strategy<Value = String> {
    let t = prop_oneof![
        "[0-9]{1,12}",
        "-[0-9]{1,12}",
        "\\+[0-9]{1,11}",
        " ?[0-9]{1,11} ?",
        "[0-9]{13,20}",
        "[0-9]{0,6}[.e_][0-9]{0,5}",
    ];
    (t, "[0-9a-fA-F]{64}", any::<bool>()).prop_map(|(t, v1, t_first)| {
        if t_first {
            format!("t={t},v1={v1}")
        } else {
            format!("v1={v1},t={t}")
        }
    })
}

fn any_header() -> impl Strategy<Value = String> {
    prop_oneof![".*", header_like(), near_valid()]
}

/// Two HMAC keys sign alike when they are equal after HMAC's zero padding (keys up to the block
/// size are padded with zeros, so `b""` and `b"\0"` are the same key).
fn same_hmac_key(a: &[u8], b: &[u8]) -> bool {
    const BLOCK: usize = 64;
    if a.len() <= BLOCK && b.len() <= BLOCK {
        let trim = |k: &[u8]| k.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
        a[..trim(a)] == b[..trim(b)]
    } else {
        a == b
    }
}

fn refs(secrets: &[Vec<u8>]) -> Vec<&[u8]> {
    secrets.iter().map(Vec::as_slice).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_parses_or_is_malformed_and_never_panics(h in any_header()) {
        match parse_header(&h) {
            Ok(p) => {
                // What the parser accepts has one non-negative `t` and 1 to 8 signatures.
                prop_assert!((0..=999_999_999_999).contains(&p.t), "{h:?} gave t={}", p.t);
                prop_assert!((1..=8).contains(&p.v1.len()), "{h:?}");
                prop_assert!(h.contains("t=") && h.contains("v1="), "{h:?}");
            }
            Err(e) => prop_assert_eq!(e, SignatureError::Malformed, "{:?}", h),
        }
    }

    #[test]
    fn any_text_never_verifies(
        h in any_header(),
        secrets in secrets(),
        body in body(),
        now in clock(),
    ) {
        let result = verify(Some(&h), &refs(&secrets), &body, now);
        prop_assert!(result.is_err(), "{h:?} verified");
    }

    #[test]
    fn a_signed_header_verifies_with_each_secret_used_within_the_tolerance(
        secrets in secrets(),
        body in body(),
        t in clock(),
        skew in prop_oneof![
            Just(-TOLERANCE_SECS),
            Just(TOLERANCE_SECS),
            -TOLERANCE_SECS..=TOLERANCE_SECS,
        ],
    ) {
        let header = sign_header(&refs(&secrets), t, &body);
        let parsed = parse_header(&header).expect("a signed header parses");
        prop_assert_eq!(parsed.t, t);
        prop_assert_eq!(parsed.v1.len(), secrets.len());
        for s in &secrets {
            prop_assert_eq!(verify(Some(&header), &[s.as_slice()], &body, t + skew), Ok(()));
        }
        // The receiver may know several secrets (a rotation), one of which was used.
        let mut known = vec![b"some-other-secret".as_slice()];
        known.push(&secrets[0]);
        prop_assert_eq!(verify(Some(&header), &known, &body, t + skew), Ok(()));
    }

    #[test]
    fn a_signed_header_does_not_verify_another_body(
        secrets in secrets(),
        body in body(),
        other in body(),
        t in clock(),
    ) {
        prop_assume!(body != other);
        let header = sign_header(&refs(&secrets), t, &body);
        prop_assert_eq!(
            verify(Some(&header), &refs(&secrets), &other, t),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_signed_header_does_not_verify_with_a_secret_not_used(
        secrets in secrets(),
        other in secret(),
        body in body(),
        t in clock(),
    ) {
        prop_assume!(!secrets.iter().any(|s| same_hmac_key(s, &other)));
        let header = sign_header(&refs(&secrets), t, &body);
        prop_assert_eq!(
            verify(Some(&header), &[other.as_slice()], &body, t),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_changed_signature_or_timestamp_does_not_verify(
        secret in secret(),
        body in body(),
        t in TOLERANCE_SECS..4_102_444_800,
        nibble in 0usize..64,
        dt in prop_oneof![Just(-1i64), Just(1i64), -TOLERANCE_SECS..=TOLERANCE_SECS],
    ) {
        prop_assume!(dt != 0);
        let header = sign_header(&[&secret], t, &body);
        // One hex digit of the signature changed.
        let mut changed = header.clone().into_bytes();
        let at = changed.len() - 64 + nibble;
        changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
        let changed = String::from_utf8(changed).unwrap();
        prop_assert_eq!(
            verify(Some(&changed), &[&secret], &body, t),
            Err(SignatureError::NoMatch)
        );
        // The same signature under another timestamp still within the tolerance.
        let v1 = header.split_once(",v1=").unwrap().1;
        let moved = format!("t={},v1={v1}", t + dt);
        prop_assert_eq!(
            verify(Some(&moved), &[&secret], &body, t),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_timestamp_beyond_the_tolerance_is_stale_even_when_correctly_signed(
        secrets in secrets(),
        body in body(),
        t in clock(),
        beyond in prop_oneof![Just(TOLERANCE_SECS + 1), (TOLERANCE_SECS + 1)..10_000_000],
        future in any::<bool>(),
    ) {
        let header = sign_header(&refs(&secrets), t, &body);
        let now = if future { t - beyond } else { t + beyond };
        prop_assert_eq!(
            verify(Some(&header), &refs(&secrets), &body, now),
            Err(SignatureError::StaleTimestamp)
        );
    }

    #[test]
    fn unknown_schemes_and_spaces_around_parts_are_ignored(
        secret in secret(),
        body in body(),
        t in clock(),
        scheme in "[a-suw-z][a-z0-9]{0,3}=[0-9a-f]{0,64}",
        spaces in " {0,2}",
    ) {
        let header = sign_header(&[&secret], t, &body);
        let (t_part, v1_part) = header.split_once(',').unwrap();
        let decorated = format!("{scheme},{spaces}{t_part}{spaces},{spaces}{v1_part}");
        prop_assert_eq!(verify(Some(&decorated), &[&secret], &body, t), Ok(()));
    }

    #[test]
    fn a_header_with_a_second_timestamp_is_malformed(
        secret in secret(),
        body in body(),
        t in clock(),
        t2 in clock(),
    ) {
        let header = format!("{},t={t2}", sign_header(&[&secret], t, &body));
        prop_assert_eq!(parse_header(&header), Err(SignatureError::Malformed));
        prop_assert_eq!(
            verify(Some(&header), &[&secret], &body, t),
            Err(SignatureError::Malformed)
        );
    }
}

#[test]
fn the_hmac_key_padding_the_properties_allow_for_is_real() {
    // Why `a_signed_header_does_not_verify_with_a_secret_not_used` skips zero-padded twins.
    let header = sign_header(&[b"key"], 1_780_000_000, b"body");
    assert_eq!(
        verify(Some(&header), &[b"key\0\0"], b"body", 1_780_000_000),
        Ok(())
    );
    assert!(same_hmac_key(b"key", b"key\0\0"));
    assert!(!same_hmac_key(b"key", b"kez"));
}
