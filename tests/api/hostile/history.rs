//! `GET /api/transactions`'s cases: limits, cursors and query strings it cannot read, no
//! session, and another method.

use super::case::{api, get, kib, post, urlencode, wrong_method, Case};
use super::{SQL, SQL_NO_SPACES};

/// `GET /api/transactions`: limits.
pub(super) fn limit_cases(cases: &mut Vec<Case>) {
    let tx = "/api/transactions";
    for limit in [
        "0",
        "101",
        "-1",
        "1.5",
        "1e1",
        "abc",
        "",
        "99999999999999999999",
        "%20",
        "%00",
        "%FF%FE",
        "１０",
        "10%20OR%201=1",
    ] {
        cases.push(
            get(
                format!("{tx}?limit={limit}"),
                format!("transactions with limit={limit}"),
            )
            .session()
            .expect(api(400, "invalid_limit")),
        );
    }
    cases.push(
        get(
            format!("{tx}?limit={}", urlencode(SQL)),
            "transactions with SQL as the limit",
        )
        .session()
        .expect(api(400, "invalid_limit")),
    );
}

/// `GET /api/transactions`: cursors, query strings, no session, another method.
pub(super) fn cursor_and_query_cases(cases: &mut Vec<Case>) {
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let tx = "/api/transactions";
    let txn = format!("txn_{}", "0".repeat(32));
    for (name, cursor) in [
        ("SQL", urlencode(SQL)),
        ("SQL in base64", b64(&format!("0:{SQL}"))),
        ("SQL in place of the id", b64(&format!("0:{SQL_NO_SPACES}"))),
        (
            "SQL in place of the time",
            b64(&format!("{SQL_NO_SPACES}:{txn}")),
        ),
        (
            "a time past i64",
            b64(&format!("99999999999999999999:{txn}")),
        ),
        ("an empty value", String::new()),
        ("10 KiB", kib(10, 'A')),
        ("a NUL", "%00".into()),
        ("invalid UTF-8", "%FF%FE".into()),
        ("invalid UTF-8 in base64", b64("\u{0}:\u{ffff}")),
        ("unicode", urlencode("курсор💥")),
    ] {
        cases.push(
            get(
                format!("{tx}?cursor={cursor}"),
                format!("transactions with a cursor of {name}"),
            )
            .session()
            .expect(api(400, "invalid_cursor")),
        );
    }
    cases.extend([
        get(
            format!("{tx}?limit=1&limit=2"),
            "transactions with a doubled limit",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(
            format!("{tx}?cursor=a&cursor=b"),
            "transactions with a doubled cursor",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(format!("{tx}?limit[]=1"), "transactions with limit[]")
            .session()
            .expect(api(400, "invalid_query")),
        get(
            format!("{tx}?{}=1", urlencode(SQL)),
            "transactions with SQL as a parameter name",
        )
        .session()
        .expect(api(400, "invalid_query")),
        get(format!("{tx}?limit=10"), "transactions without a session")
            .expect(api(401, "unauthorized")),
        post(tx, "transactions by POST")
            .session()
            .expect(wrong_method()),
    ]);
}
