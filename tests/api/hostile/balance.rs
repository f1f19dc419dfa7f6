//! `GET /api/balance`'s cases: no session, a session of SQL or 8 KiB, and other methods.

use super::case::{api, big_cookie, get, post, request, wrong_method, Case};
use super::SQL;

/// `GET /api/balance`.
pub(super) fn balance_cases(cases: &mut Vec<Case>) {
    let big_cookie = big_cookie();
    cases.extend([
        get("/api/balance", "balance without a session").expect(api(401, "unauthorized")),
        get("/api/balance", "balance with SQL as the session")
            .header("cookie", format!("session_id={SQL}"))
            .expect(api(401, "unauthorized")),
        get("/api/balance", "balance with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        post("/api/balance", "balance by POST")
            .session()
            .expect(wrong_method()),
        request("PATCH", "/api/balance", "balance by PATCH")
            .session()
            .expect(wrong_method()),
        request("BREW", "/api/balance", "balance by BREW")
            .session()
            .expect(wrong_method()),
    ]);
}
