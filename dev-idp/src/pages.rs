//! HTML pages: the sign-in form and the error page, written with `maud`: every dynamic value
//! is escaped by construction; only the constant stylesheet is spliced in raw.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Headers shared by every response of the provider's browser-facing endpoints.
pub(crate) fn no_store(status: StatusCode) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    builder
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
            }
        }
    }
}

fn page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    no_store(status)
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .content_type("text/html; charset=utf-8")
        .body(document(title, body).into_string())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
label{display:block;margin-top:1rem}input{width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem}\
.buttons{margin-top:1.5rem;display:flex;gap:.5rem}button{padding:.5rem 1rem}\
.error{color:#a00}.note{color:#555;font-size:.9rem}";

fn error_body(message: &str) -> Markup {
    html! {
        h1 { "Sign-in error" }
        p.error data-testid="idp-error" { (message) }
    }
}

/// The error page: the request is not redirected anywhere.
pub(crate) fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    page(status, "Sign-in error", error_body(message))
}

fn sign_in_body(
    client_id: &str,
    hidden: &[(&str, &str)],
    email: &str,
    name: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        h1 { "Development sign-in" }
        p.note {
            "Signing in to " strong { (client_id) } ". Any email address works: \
             this provider only exists for development and tests."
        }
        @if let Some(error) = error {
            p.error role="alert" data-testid="idp-form-error" { (error) }
        }
        form method="post" action="/authorize" {
            @for (key, value) in hidden {
                input type="hidden" name=(key) value=(value);
            }
            label for="email" { "Email" }
            input id="email" type="email" name="email" data-testid="idp-email"
                autocomplete="email" maxlength="254" required autofocus value=(email);
            label for="name" { "Name" }
            input id="name" type="text" name="name" data-testid="idp-name"
                autocomplete="name" maxlength="100" value=(name);
            div.buttons {
                button type="submit" name="action" value="continue" data-testid="idp-continue" {
                    "Continue"
                }
                button type="submit" name="action" value="deny" formnovalidate data-testid="idp-deny" {
                    "Deny"
                }
            }
        }
    }
}

/// The sign-in form. `hidden` are the original authorization parameters, carried back on submit.
pub(crate) fn sign_in_form(
    status: StatusCode,
    client_id: &str,
    hidden: &[(&str, &str)],
    email: &str,
    name: &str,
    error: Option<&str>,
) -> HttpResponse {
    page(
        status,
        "Development sign-in",
        sign_in_body(client_id, hidden, email, name, error),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = r#"<script>alert("x&y")</script>'"#;
    const ESCAPED: &str = "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;'";

    #[test]
    fn escapes_everything_dangerous() {
        let page = document(HOSTILE, error_body(HOSTILE)).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains(&format!("<title>{ESCAPED}</title>")),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"data-testid="idp-error">{ESCAPED}</p>"#)),
            "{page}"
        );

        let hidden = [("state", HOSTILE), (HOSTILE, "x")];
        let page = sign_in_body(HOSTILE, &hidden, HOSTILE, HOSTILE, Some(HOSTILE)).into_string();
        assert!(!page.contains("<script>"), "{page}");
        // Content.
        assert!(
            page.contains(&format!("<strong>{ESCAPED}</strong>")),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"data-testid="idp-form-error">{ESCAPED}</p>"#)),
            "{page}"
        );
        // Attributes: names and values of the hidden fields, and the prefilled inputs.
        assert!(
            page.contains(&format!(
                r#"<input type="hidden" name="state" value="{ESCAPED}">"#
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                r#"<input type="hidden" name="{ESCAPED}" value="x">"#
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"required autofocus value="{ESCAPED}">"#)),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"maxlength="100" value="{ESCAPED}">"#)),
            "{page}"
        );
    }

    #[test]
    fn keeps_the_form_contract() {
        let page = sign_in_body("client", &[("state", "s")], "", "", None).into_string();
        for needle in [
            r#"<form method="post" action="/authorize">"#,
            r#"name="email" data-testid="idp-email""#,
            r#"name="name" data-testid="idp-name""#,
            r#"name="action" value="continue" data-testid="idp-continue""#,
            r#"name="action" value="deny" formnovalidate data-testid="idp-deny""#,
        ] {
            assert!(page.contains(needle), "{needle} missing from {page}");
        }
        assert!(!page.contains("idp-form-error"), "{page}");
        let page = document("t", error_body("m")).into_string();
        assert!(
            page.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{page}"
        );
        assert!(page.contains(&format!("<style>{STYLE}</style>")), "{page}");
    }
}
