//! `POST /api/deposit`'s cases: amounts, bodies, content types, `Idempotency-Key`s, and who is
//! asking.

use super::case::{
    api, api_any_code, big_cookie, big_header, get, kib, post, request, wrong_method, Case, Fixture,
};
use super::SQL;

/// `POST /api/deposit`: amounts.
pub(super) fn amount_cases(cases: &mut Vec<Case>) {
    let dep = "/api/deposit";
    for (amount, code) in [
        ("1e400", "invalid_body"),
        ("-1e400", "invalid_body"),
        ("9223372036854775808", "invalid_amount"),
        ("-9223372036854775809", "invalid_amount"),
        ("18446744073709551616", "invalid_amount"),
        ("99999999999999999999999999999999999999", "invalid_amount"),
        ("\"100\"", "invalid_amount"),
        ("\"'; DROP TABLE deposits; --\"", "invalid_amount"),
        ("\"１００\"", "invalid_amount"),
        ("100.0", "invalid_amount"),
        ("1.5", "invalid_amount"),
        ("1e2", "invalid_amount"),
        ("true", "invalid_amount"),
        ("null", "invalid_amount"),
        ("{}", "invalid_amount"),
        ("[]", "invalid_amount"),
        ("[100]", "invalid_amount"),
        ("0", "invalid_amount"),
        ("-1", "invalid_amount"),
        ("10000001", "invalid_amount"),
        ("NaN", "invalid_body"),
        ("Infinity", "invalid_body"),
        ("0x64", "invalid_body"),
        ("0100", "invalid_body"),
        ("+100", "invalid_body"),
    ] {
        cases.push(
            post(dep, format!("deposit amount {amount}"))
                .session()
                .json(format!(r#"{{"amount": {amount}}}"#))
                .expect(api(400, code)),
        );
    }
}

/// `POST /api/deposit`: bodies.
pub(super) fn body_cases(cases: &mut Vec<Case>) {
    let dep = "/api/deposit";
    let deep = format!(r#"{{"amount": {}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let mut past_limit = br#"{"amount": 100}"#.to_vec();
    past_limit.resize(16 * 1024 + 1, b' ');
    for (name, body, expect) in [
        ("an empty body", b"".to_vec(), api(400, "invalid_body")),
        ("a JSON array", b"[]".to_vec(), api(400, "invalid_body")),
        ("a bare number", b"100".to_vec(), api(400, "invalid_body")),
        (
            "a JSON string",
            b"\"amount\"".to_vec(),
            api(400, "invalid_body"),
        ),
        ("null", b"null".to_vec(), api(400, "invalid_body")),
        (
            "an empty object",
            b"{}".to_vec(),
            api(400, "invalid_amount"),
        ),
        (
            "truncated JSON",
            br#"{"amount": 1"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "an unknown field",
            br#"{"amount": 100, "extra": 1}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a capitalised key",
            br#"{"Amount": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a doubled amount",
            br#"{"amount": 100, "amount": 200}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a unicode key",
            r#"{"amöunt": 100}"#.as_bytes().to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "an escaped NUL in the key",
            br#"{"amount\u0000": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "SQL as a key",
            format!(r#"{{"{SQL}": 100}}"#).into_bytes(),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL after the object",
            b"{\"amount\": 100}\0".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL inside",
            b"{\"amount\": 1\x0000}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a raw control character in a string",
            b"{\"amount\": 100, \"n\": \"a\x01b\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8 in a string",
            b"{\"amount\": 100, \"n\": \"\xff\xfe\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8 as a key",
            b"{\"\xc3\x28\": 100}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a byte-order mark",
            b"\xef\xbb\xbf{\"amount\": 100}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "two objects",
            br#"{"amount": 100}{"amount": 100}"#.to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "5000 nested arrays",
            deep.into_bytes(),
            api(400, "invalid_body"),
        ),
        (
            "one byte past 16 KiB",
            past_limit,
            api(413, "payload_too_large"),
        ),
        (
            "1 MiB",
            kib(1024, ' ').into_bytes(),
            api(413, "payload_too_large"),
        ),
    ] {
        cases.push(
            post(dep, format!("deposit with {name}"))
                .session()
                .json(body)
                .expect(expect),
        );
    }
}

/// `POST /api/deposit`: content types.
pub(super) fn content_type_cases(cases: &mut Vec<Case>) {
    let dep = "/api/deposit";
    let big_header = big_header();
    let valid = br#"{"amount": 100}"#;
    let wrong_amount = br#"{"amount": "100"}"#;
    cases.extend([
        post(dep, "deposit without a Content-Type")
            .session()
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit as text/plain")
            .session()
            .header("content-type", "text/plain")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit as a form")
            .session()
            .header("content-type", "application/x-www-form-urlencoded")
            .body("amount=100")
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit with a broken Content-Type")
            .session()
            .header("content-type", ";;;/")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        post(dep, "deposit with text/plain then application/json")
            .session()
            .header("content-type", "text/plain")
            .header("content-type", "application/json")
            .body(valid)
            .expect(api(415, "unsupported_media_type")),
        // With a charset the body reaches the parser (and this one is refused there).
        post(dep, "deposit as application/json; charset=utf-8")
            .session()
            .header("content-type", "application/json; charset=utf-8")
            .body(wrong_amount)
            .expect(api(400, "invalid_amount")),
        post(dep, "deposit with a 16 KiB header")
            .session()
            .header("x-padding", &big_header)
            .json(wrong_amount)
            .expect(api(400, "invalid_amount")),
    ]);
}

/// `POST /api/deposit`: Idempotency-Key (with a valid body, so the key is what is refused).
pub(super) fn idempotency_key_cases(cases: &mut Vec<Case>) {
    let dep = "/api/deposit";
    let valid = br#"{"amount": 100}"#;
    for (name, key) in [
        ("SQL", SQL.as_bytes().to_vec()),
        ("empty", Vec::new()),
        ("256 characters", "k".repeat(256).into_bytes()),
        ("16 KiB", kib(16, 'k').into_bytes()),
        ("unicode", "ключ-💥".as_bytes().to_vec()),
        ("invalid UTF-8", b"key-\xff\xfe".to_vec()),
        ("a tab", b"a\tb".to_vec()),
    ] {
        cases.push(
            post(dep, format!("deposit with an Idempotency-Key of {name}"))
                .session()
                .header("idempotency-key", key)
                .json(valid)
                .expect(api(400, "invalid_idempotency_key")),
        );
    }
    cases.extend([
        post(dep, "deposit with a doubled Idempotency-Key")
            .session()
            .header("idempotency-key", "key-1")
            .header("idempotency-key", "key-2")
            .json(valid)
            .expect(api(400, "invalid_idempotency_key")),
        post(dep, "deposit with the same Idempotency-Key twice")
            .session()
            .header("idempotency-key", "key-1")
            .header("idempotency-key", "key-1")
            .json(valid)
            .expect(api(400, "invalid_idempotency_key")),
    ]);
}

/// `POST /api/deposit`: who is asking.
pub(super) fn who_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let dep = "/api/deposit";
    let valid = br#"{"amount": 100}"#;
    let big_cookie = big_cookie();
    cases.extend([
        post(dep, "deposit without a session")
            .json(valid)
            .expect(api(401, "unauthorized")),
        post(dep, "deposit with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .json(valid)
            .expect(api(401, "unauthorized")),
        post(dep, "deposit without a session, 1 MiB")
            .json(kib(1024, ' '))
            .expect(api_any_code(401)),
        post(dep, "deposit from another site")
            .session()
            .header("origin", "https://evil.example")
            .json(valid)
            .expect(api(403, "cross_origin")),
        post(dep, "deposit with our origin and another")
            .session()
            .header("origin", &f.origin)
            .header("origin", "https://evil.example")
            .json(valid)
            .expect(api(403, "cross_origin")),
        get(dep, "deposit by GET").session().expect(wrong_method()),
        request("PUT", dep, "deposit by PUT")
            .session()
            .json(valid)
            .expect(wrong_method()),
        request("DELETE", dep, "deposit by DELETE")
            .session()
            .expect(wrong_method()),
        request("OPTIONS", dep, "deposit by OPTIONS").expect(wrong_method()),
    ]);
}
