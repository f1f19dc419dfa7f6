//! `POST /api/transfers`'s cases: amounts, recipients, bodies, and who is asking.

use super::case::{api, get, post, wrong_method, Case, Fixture};
use super::SQL;

/// `POST /api/transfers`: Mallory's balance is 0 (her deposit is still processing) and Trent is
/// another user, so even a well-formed transfer to him is refused (`insufficient_funds`).
pub(super) fn transfer_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let path = "/api/transfers";
    let to = &f.recipient;
    let body = |to: &str, amount: &str| {
        format!(
            r#"{{"to": {}, "amount": {amount}}}"#,
            serde_json::to_string(to).unwrap()
        )
    };
    for (amount, code) in [
        ("1e400", "invalid_body"),
        ("9223372036854775808", "invalid_amount"),
        ("\"100\"", "invalid_amount"),
        ("100.0", "invalid_amount"),
        ("1.5", "invalid_amount"),
        ("true", "invalid_amount"),
        ("null", "invalid_amount"),
        ("[100]", "invalid_amount"),
        ("0", "invalid_amount"),
        ("-1", "invalid_amount"),
        ("10000001", "invalid_amount"),
        ("NaN", "invalid_body"),
    ] {
        cases.push(
            post(path, format!("transfer amount {amount}"))
                .session()
                .json(body(to, amount))
                .expect(api(400, code)),
        );
    }
    for (name, json, expect) in [
        (
            "a transfer without a recipient",
            r#"{"amount": 100}"#.to_owned(),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to a number",
            r#"{"to": 5, "amount": 100}"#.to_owned(),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to an empty email",
            body("  ", "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to a 300-byte email",
            body(&format!("{}@x.test", "a".repeat(300)), "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to an email with a NUL in it",
            body("trent\u{0}@example.com", "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer to an email with a line break in it",
            body("trent@example.com\r\nBcc: x@example.com", "100"),
            api(400, "invalid_recipient"),
        ),
        (
            "a transfer without an amount",
            format!(r#"{{"to": {to:?}}}"#),
            api(400, "invalid_amount"),
        ),
        (
            "a transfer with an extra field",
            format!(r#"{{"to": {to:?}, "amount": 100, "from": "x"}}"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer with a repeated amount",
            format!(r#"{{"to": {to:?}, "amount": 1, "amount": 100}}"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer as an array",
            format!(r#"[{to:?}, 100]"#),
            api(400, "invalid_body"),
        ),
        (
            "a transfer to herself",
            body("mallory@example.com", "100"),
            api(400, "self_transfer"),
        ),
        (
            "a transfer to herself in capitals",
            body(" MALLORY@Example.COM ", "100"),
            api(400, "self_transfer"),
        ),
        (
            "a transfer to nobody",
            body("nobody@example.com", "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer to SQL",
            body(SQL, "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer to a wildcard",
            body("%@example.com", "100"),
            api(404, "unknown_recipient"),
        ),
        (
            "a transfer over the balance",
            body(to, "100"),
            api(409, "insufficient_funds"),
        ),
        (
            "a transfer over the balance, in capitals",
            body(&to.to_uppercase(), "1"),
            api(409, "insufficient_funds"),
        ),
    ] {
        cases.push(post(path, name).session().json(json).expect(expect));
    }
    let valid = body(to, "100");
    cases.extend([
        post(path, "transfer without a session")
            .json(valid.clone())
            .expect(api(401, "unauthorized")),
        post(path, "transfer from another site")
            .session()
            .header("origin", "https://evil.example")
            .json(valid.clone())
            .expect(api(403, "cross_origin")),
        post(path, "transfer with an empty Idempotency-Key")
            .session()
            .header("idempotency-key", "")
            .json(valid.clone())
            .expect(api(400, "invalid_idempotency_key")),
        post(path, "transfer as text")
            .session()
            .header("content-type", "text/plain")
            .body(valid.clone())
            .expect(api(415, "unsupported_media_type")),
        get(path, "transfer by GET")
            .session()
            .expect(wrong_method()),
    ]);
}
