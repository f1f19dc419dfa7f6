//! The sign-in's cases: `GET /api/auth/google` and its callback, whose refusals are redirects
//! to `/?error=<code>` with no session.

use super::case::{big_cookie, get, kib, post, urlencode, wrong_method, Case, Expect, Fixture};
use super::SQL;

/// `GET /api/auth/google`: junk is ignored, the browser goes to the provider.
pub(super) fn start_cases(cases: &mut Vec<Case>) {
    let big_cookie = big_cookie();
    cases.extend([
        get(
            "/api/auth/google?redirect_uri=https://evil.example/&client_id=evil&state=x",
            "sign-in start with injected OAuth parameters",
        )
        .expect(Expect::ToProvider),
        get("/api/auth/google", "sign-in start with an 8 KiB cookie")
            .header("cookie", &big_cookie)
            .expect(Expect::ToProvider),
        get(
            format!("/api/auth/google?q={}", urlencode(SQL)),
            "sign-in start with SQL in the query",
        )
        .expect(Expect::ToProvider),
        post("/api/auth/google", "sign-in start by POST").expect(wrong_method()),
    ]);
}

/// `GET /api/auth/google/callback`: every failure is a 303 to /?error=…, no session.
pub(super) fn callback_cases(f: &Fixture, cases: &mut Vec<Case>) {
    let cb = "/api/auth/google/callback";
    let (flow_a, state_a) = &f.flows[0];
    let (flow_b, state_b) = &f.flows[1];
    let (flow_c, state_c) = &f.flows[2];
    let (flow_d, state_d) = &f.flows[3];
    let (flow_e, state_e) = &f.flows[4];
    cases.extend([
        get(cb, "callback without parameters").expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code={0}&state={0}", urlencode(SQL)),
            "callback with SQL in code and state",
        )
        .expect(Expect::SignInError(Some("invalid_state"))),
        // Without its sealed flow a callback is refused on its state, whatever error it names.
        get(
            format!("{cb}?error=access_denied"),
            "callback with error=access_denied and no flow",
        )
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?error=access_denied&state={state_d}"),
            "callback with a real flow and error=access_denied",
        )
        .header("cookie", flow_d)
        .expect(Expect::SignInError(Some("access_denied"))),
        get(
            format!(
                "{cb}?state={state_e}&error={}",
                urlencode("ошибка\u{0}\u{7}\r\n\u{202e}💥")
            ),
            "callback with a real flow and unicode and control characters in error",
        )
        .header("cookie", flow_e)
        .expect(Expect::SignInError(Some("provider_error"))),
        get(
            format!("{cb}?code=a&state=b&state=c"),
            "callback with a doubled state",
        )
        .expect(Expect::SignInError(None)),
        get(
            format!("{cb}?code=a&state=b"),
            "callback with an 8 KiB flow cookie",
        )
        .header("cookie", format!("oauth_flow={}", kib(8, 'f')))
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code=a&state={}", kib(16, 's')),
            "callback with a 16 KiB state",
        )
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code=a&state={state_a}x"),
            "callback with a real flow, wrong state",
        )
        .header("cookie", flow_a)
        .expect(Expect::SignInError(Some("invalid_state"))),
        get(
            format!("{cb}?code={}&state={state_b}", urlencode(SQL)),
            "callback with a real flow, SQL as the code",
        )
        .header("cookie", flow_b)
        .expect(Expect::SignInError(Some("token_exchange_failed"))),
        get(
            format!("{cb}?code=&state={state_c}"),
            "callback with a real flow, empty code",
        )
        .header("cookie", flow_c)
        .expect(Expect::SignInError(Some("missing_code"))),
        post(cb, "callback by POST").expect(wrong_method()),
    ]);
}
