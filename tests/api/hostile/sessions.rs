//! Who is signed in: `POST /api/auth/logout`, `GET /api/user/me`, and session cookies that name
//! nobody on the routes that move money.

use super::case::{api, big_cookie, big_header, get, post, wrong_method, Case};
use super::{SQL, SQL_NO_SPACES};

/// `POST /api/auth/logout`.
pub(super) fn logout_cases(cases: &mut Vec<Case>) {
    let big_cookie = big_cookie();
    let logout = "/api/auth/logout";
    cases.extend([
        post(logout, "logout without a session").expect(api(401, "unauthorized")),
        post(logout, "logout with an unknown well-formed session")
            .header("cookie", format!("session_id={}", "ab".repeat(32)))
            .expect(api(401, "unauthorized")),
        post(logout, "logout with SQL as the session")
            .header("cookie", format!("session_id={SQL}"))
            .expect(api(401, "unauthorized")),
        post(logout, "logout with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        post(logout, "logout from another site")
            .session()
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        post(logout, "logout from an opaque origin")
            .session()
            .header("origin", "null")
            .expect(api(403, "cross_origin")),
        get(logout, "logout by GET")
            .session()
            .expect(wrong_method()),
    ]);
}

/// `GET /api/user/me`.
pub(super) fn me_cases(cases: &mut Vec<Case>) {
    let (big_cookie, big_header) = (big_cookie(), big_header());
    let me = "/api/user/me";
    cases.extend([
        get(me, "me without a session").expect(api(401, "unauthorized")),
        get(me, "me with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(api(401, "unauthorized")),
        get(me, "me with a 16 KiB header")
            .header("x-padding", &big_header)
            .expect(api(401, "unauthorized")),
        get(me, "me with 500 cookies")
            .header(
                "cookie",
                (0..500)
                    .map(|i| format!("c{i}=v{i}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .expect(api(401, "unauthorized")),
        get(me, "me with a unicode session cookie")
            .header("cookie", "session_id=сессия💥".as_bytes())
            .expect(api(401, "unauthorized")),
        get(me, "me with an invalid-UTF-8 session cookie")
            .header("cookie", b"session_id=\xff\xfe\xfd".as_slice())
            .expect(api(401, "unauthorized")),
        get(me, "me with SQL as the session")
            .header("cookie", format!("session_id={SQL_NO_SPACES}"))
            .expect(api(401, "unauthorized")),
        post(me, "me by POST").session().expect(wrong_method()),
    ]);
}

/// A cookie of the right shape that names no session is looked up in the database; whatever
/// the body, the routes that take one answer that nobody is signed in (the body used to answer
/// first).
pub(super) fn unknown_session_cases(cases: &mut Vec<Case>) {
    let stranger = format!("session_id={}", "A".repeat(43));
    for (path, what) in [("/api/transfers", "transfer"), ("/api/deposit", "deposit")] {
        for (name, content_type, body) in [
            ("text", "text/plain", "hello"),
            ("broken JSON", "application/json", "{"),
        ] {
            cases.push(
                post(path, format!("a {what} from an unknown session, {name}"))
                    .header("cookie", &stranger)
                    .header("content-type", content_type)
                    .body(body)
                    .expect(api(401, "unauthorized")),
            );
        }
    }
}
