//! `POST /api/webhooks/bank`'s cases: signatures, correctly signed bodies that are not a valid
//! event for the deposit, and content types.

use super::case::{api, get, kib, post, wrong_method, Case, Fixture};
use super::{AMOUNT, SQL, SQL_NO_SPACES};
use onramp_bank_protocol::signature::sign_header;
use serde_json::{json, Value};

/// How a webhook case is signed.
enum Sig {
    /// Correctly, with the app's secret, now.
    Good,
    Missing,
    /// Correctly but 330 s ago / ahead (a margin over the 300 s tolerance, since a second may
    /// tick between signing and the app's check; the exact boundary is a property test).
    Stale,
    Future,
    /// Two correct `X-Bank-Signature` headers.
    Doubled,
    /// Correctly, but over other bytes.
    OtherBody,
    Raw(Vec<u8>),
}

fn webhook(secret: &[u8], name: &str, body: impl AsRef<[u8]>, sig: Sig) -> Case {
    let body = body.as_ref().to_vec();
    let now = chrono::Utc::now().timestamp();
    let sign = |t: i64, b: &[u8]| sign_header(&[secret], t, b).into_bytes();
    let mut case = post("/api/webhooks/bank", format!("webhook: {name}")).header(
        "x-bank-event-id",
        format!("evt_{}", uuid::Uuid::new_v4().simple()),
    );
    match sig {
        Sig::Good => case = case.header("x-bank-signature", sign(now, &body)),
        Sig::Missing => {}
        Sig::Stale => case = case.header("x-bank-signature", sign(now - 330, &body)),
        Sig::Future => case = case.header("x-bank-signature", sign(now + 330, &body)),
        Sig::Doubled => {
            case = case
                .header("x-bank-signature", sign(now, &body))
                .header("x-bank-signature", sign(now, &body))
        }
        Sig::OtherBody => case = case.header("x-bank-signature", sign(now, b"{}")),
        Sig::Raw(h) => case = case.header("x-bank-signature", h),
    }
    case.body(body)
}

/// A webhook case sent as `application/json`.
fn json_webhook(f: &Fixture, name: &str, body: &[u8], sig: Sig) -> Case {
    webhook(&f.secret, name, body, sig).header("content-type", "application/json")
}

/// The fixture's event with `field` set to `value`.
fn event_with(f: &Fixture, field: &str, value: Value) -> Vec<u8> {
    let mut e = f.event.clone();
    e[field] = value;
    serde_json::to_vec(&e).unwrap()
}

/// `POST /api/webhooks/bank`: signatures (over a body that would otherwise be applied).
pub(super) fn signature_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let event = serde_json::to_vec(&f.event).unwrap();
    let wh = |name: &str, body: &[u8], sig: Sig| json_webhook(f, name, body, sig);
    let bad_sig = api(401, "invalid_signature");
    cases.extend([
        wh("no signature", &event, Sig::Missing).expect(bad_sig.clone()),
        wh("a stale signature", &event, Sig::Stale).expect(bad_sig.clone()),
        wh("a signature from the future", &event, Sig::Future).expect(bad_sig.clone()),
        wh("two correct signature headers", &event, Sig::Doubled).expect(bad_sig.clone()),
        wh("a signature over other bytes", &event, Sig::OtherBody).expect(bad_sig.clone()),
        wh("SQL as the signature", &event, Sig::Raw(SQL.into())).expect(bad_sig.clone()),
        wh(
            "unicode in the signature",
            &event,
            Sig::Raw("t=１,v1=💥".into()),
        )
        .expect(bad_sig.clone()),
        wh(
            "invalid UTF-8 in the signature",
            &event,
            Sig::Raw(b"t=1\xff,v1=\xfe".to_vec()),
        )
        .expect(bad_sig.clone()),
        wh(
            "a timestamp past i64",
            &event,
            Sig::Raw(format!("t=99999999999999999999,v1={}", "0".repeat(64)).into()),
        )
        .expect(bad_sig.clone()),
        wh(
            "a 16 KiB signature",
            &event,
            Sig::Raw(format!("t=1{}", format!(",v1={}", "0".repeat(64)).repeat(240)).into()),
        )
        .expect(bad_sig.clone()),
        wh("an empty signature", &event, Sig::Raw(Vec::new())).expect(bad_sig.clone()),
        wh("a signed 1 MiB body", kib(1024, ' ').as_bytes(), Sig::Good)
            .expect(api(413, "payload_too_large")),
        wh(
            "an unsigned 1 MiB body",
            kib(1024, ' ').as_bytes(),
            Sig::Missing,
        )
        .expect(api(413, "payload_too_large")),
        wh(
            "a signed body one byte past 16 KiB",
            &{
                let mut b = event.clone();
                b.resize(16 * 1024 + 1, b' ');
                b
            },
            Sig::Good,
        )
        .expect(api(413, "payload_too_large")),
        wh("from a browser on another site", &event, Sig::Good)
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        get("/api/webhooks/bank", "webhook by GET").expect(wrong_method()),
    ]);
}

/// `POST /api/webhooks/bank`: correctly signed bodies that do not read as an event (`400`).
pub(super) fn body_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let event = serde_json::to_vec(&f.event).unwrap();
    let wh = |name: &str, body: &[u8], sig: Sig| json_webhook(f, name, body, sig);
    let with = |field: &str, value: Value| event_with(f, field, value);
    let without = |field: &str| {
        let mut e = f.event.clone();
        e.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&e).unwrap()
    };
    let raw_event = |amount: &str, extra: &str| {
        format!(
            r#"{{"event_id":"evt_1","token":"{}","ref":"{}","amount":{amount},"currency":"INR","status":"SUCCESS"{extra}}}"#,
            f.token, f.deposit_id
        )
        .into_bytes()
    };
    for (name, body, expect) in [
        ("an empty body", b"".to_vec(), api(400, "invalid_body")),
        ("text", b"hello".to_vec(), api(400, "invalid_body")),
        ("a JSON array", b"[]".to_vec(), api(400, "invalid_body")),
        ("an empty object", b"{}".to_vec(), api(400, "invalid_body")),
        ("null", b"null".to_vec(), api(400, "invalid_body")),
        (
            "amount 1e400",
            raw_event("1e400", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount 9223372036854775808",
            raw_event("9223372036854775808", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount -9223372036854775809",
            raw_event("-9223372036854775809", ""),
            api(400, "invalid_body"),
        ),
        (
            "amount as a string",
            with("amount", json!(AMOUNT.to_string())),
            api(400, "invalid_body"),
        ),
        (
            "amount as a float",
            raw_event(&format!("{AMOUNT}.0"), ""),
            api(400, "invalid_body"),
        ),
        (
            "amount true",
            with("amount", json!(true)),
            api(400, "invalid_body"),
        ),
        (
            "amount {}",
            with("amount", json!({})),
            api(400, "invalid_body"),
        ),
        (
            "amount []",
            with("amount", json!([])),
            api(400, "invalid_body"),
        ),
        (
            "status in lower case",
            with("status", json!("success")),
            api(400, "invalid_body"),
        ),
        (
            "status PENDING",
            with("status", json!("PENDING")),
            api(400, "invalid_body"),
        ),
        (
            "status with a NUL",
            with("status", json!("SUCCESS\u{0}")),
            api(400, "invalid_body"),
        ),
        ("no status", without("status"), api(400, "invalid_body")),
        ("no token", without("token"), api(400, "invalid_body")),
        ("no event_id", without("event_id"), api(400, "invalid_body")),
        (
            "the token as a number",
            with("token", json!(1)),
            api(400, "invalid_body"),
        ),
        (
            "a doubled status",
            raw_event(&AMOUNT.to_string(), r#","status":"FAILURE""#),
            api(400, "invalid_body"),
        ),
        (
            "a doubled amount",
            raw_event(
                &AMOUNT.to_string(),
                &format!(r#","amount":{}"#, AMOUNT * 1000),
            ),
            api(400, "invalid_body"),
        ),
        (
            "a raw NUL after it",
            [event.as_slice(), b"\0"].concat(),
            api(400, "invalid_body"),
        ),
        (
            "a second event after it",
            [event.as_slice(), event.as_slice()].concat(),
            api(400, "invalid_body"),
        ),
        (
            "invalid UTF-8",
            b"{\"event_id\":\"evt_\xff\xfe\"}".to_vec(),
            api(400, "invalid_body"),
        ),
        (
            "a byte-order mark",
            [b"\xef\xbb\xbf".as_slice(), event.as_slice()].concat(),
            api(400, "invalid_body"),
        ),
        (
            "5000 nested arrays",
            format!(
                r#"{{"event_id":{}1{}}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            api(400, "invalid_body"),
        ),
    ] {
        cases.push(wh(name, &body, Sig::Good).expect(expect));
    }
}

/// `POST /api/webhooks/bank`: correctly signed events for no deposit of ours, or that differ
/// from the deposit's.
pub(super) fn wrong_event_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let wh = |name: &str, body: &[u8], sig: Sig| json_webhook(f, name, body, sig);
    let with = |field: &str, value: Value| event_with(f, field, value);
    for (name, body, expect) in [
        (
            "an unknown token",
            with("token", json!("bank_session_unknown")),
            api(404, "unknown_token"),
        ),
        (
            "SQL as the token",
            with("token", json!(SQL)),
            api(404, "unknown_token"),
        ),
        (
            "SQL without spaces as the token",
            with("token", json!(SQL_NO_SPACES)),
            api(404, "unknown_token"),
        ),
        (
            "a unicode token",
            with("token", json!("токен💥")),
            api(404, "unknown_token"),
        ),
        (
            "an empty token",
            with("token", json!("")),
            api(404, "unknown_token"),
        ),
        (
            "a 10 KiB token",
            with("token", json!(kib(10, 't'))),
            api(404, "unknown_token"),
        ),
        (
            "SQL as the ref",
            with("ref", json!(SQL)),
            api(422, "deposit_mismatch"),
        ),
        (
            "another amount",
            with("amount", json!(AMOUNT + 1)),
            api(422, "deposit_mismatch"),
        ),
        (
            "a negative amount",
            with("amount", json!(-AMOUNT)),
            api(422, "deposit_mismatch"),
        ),
        (
            "amount i64::MAX",
            with("amount", json!(i64::MAX)),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency USD",
            with("currency", json!("USD")),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency inr",
            with("currency", json!("inr")),
            api(422, "deposit_mismatch"),
        ),
        (
            "currency INR with a NUL",
            with("currency", json!("INR\u{0}")),
            api(422, "deposit_mismatch"),
        ),
    ] {
        cases.push(wh(name, &body, Sig::Good).expect(expect));
    }
}

/// `POST /api/webhooks/bank`: the signature is checked before the body, whatever the content
/// type says.
pub(super) fn content_type_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let event = serde_json::to_vec(&f.event).unwrap();
    let bad_sig = api(401, "invalid_signature");
    let unknown = event_with(f, "token", json!("bank_session_unknown"));
    cases.extend([
        webhook(
            &f.secret,
            "unknown token without a Content-Type",
            &unknown,
            Sig::Good,
        )
        .expect(api(404, "unknown_token")),
        webhook(
            &f.secret,
            "unknown token as text/plain",
            &unknown,
            Sig::Good,
        )
        .header("content-type", "text/plain")
        .expect(api(404, "unknown_token")),
        webhook(&f.secret, "unsigned, as text/plain", &event, Sig::Missing)
            .header("content-type", "text/plain")
            .expect(bad_sig.clone()),
    ]);
}
