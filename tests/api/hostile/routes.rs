//! The routes besides the API's: health checks, metrics, and unknown paths and methods.

use super::case::{api, get, kib, post, request, urlencode, wrong_method, Case};
use super::SQL;

/// Health checks, metrics, and unknown paths and methods.
pub(super) fn route_cases(cases: &mut Vec<Case>) {
    cases.extend([
        post("/healthz", "healthz by POST").expect(wrong_method()),
        post("/metrics", "metrics by POST")
            .json("{}")
            .expect(wrong_method()),
        request("DELETE", "/readyz", "readyz by DELETE").expect(wrong_method()),
        post("/healthz", "healthz by POST from another site")
            .header("origin", "https://evil.example")
            .expect(api(403, "cross_origin")),
        get("/nope", "an unknown path").expect(api(404, "not_found")),
        get("/api/deposits", "a near-miss path")
            .session()
            .expect(api(404, "not_found")),
        post("/nope", "an unknown path by POST")
            .json("{}")
            .expect(api(404, "not_found")),
        get(format!("/api/{}", urlencode(SQL)), "SQL as a path").expect(api(404, "not_found")),
        get("/api/%00", "a NUL in the path").expect(api(404, "not_found")),
        get("/api/%FF%FE", "invalid UTF-8 in the path").expect(api(404, "not_found")),
        get("/api/ключ/💥", "unicode in the path").expect(api(404, "not_found")),
        get(format!("/{}", kib(16, 'p')), "a 16 KiB path").expect(api(404, "not_found")),
        get("/api/balance/", "a trailing slash")
            .session()
            .expect(api(404, "not_found")),
    ]);
}
