//! HTML pages: the sign-in form and the error page. Every dynamic value is escaped.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    no_store(status)
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
label{display:block;margin-top:1rem}input{width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem}\
.buttons{margin-top:1.5rem;display:flex;gap:.5rem}button{padding:.5rem 1rem}\
.error{color:#a00}.note{color:#555;font-size:.9rem}";

/// The error page: the request is not redirected anywhere.
pub(crate) fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<h1>Sign-in error</h1>\n<p class=\"error\" data-testid=\"idp-error\">{}</p>",
        escape(message)
    );
    page(status, "Sign-in error", &body)
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
    let mut body = String::new();
    body.push_str("<h1>Development sign-in</h1>\n");
    body.push_str(&format!(
        "<p class=\"note\">Signing in to <strong>{}</strong>. Any email address works: \
         this provider only exists for development and tests.</p>\n",
        escape(client_id)
    ));
    if let Some(error) = error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\" data-testid=\"idp-form-error\">{}</p>\n",
            escape(error)
        ));
    }
    body.push_str("<form method=\"post\" action=\"/authorize\">\n");
    for (key, value) in hidden {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(key),
            escape(value)
        ));
    }
    body.push_str(&format!(
        "<label for=\"email\">Email</label>\n\
         <input id=\"email\" type=\"email\" name=\"email\" data-testid=\"idp-email\" \
         autocomplete=\"email\" maxlength=\"254\" required autofocus value=\"{}\">\n\
         <label for=\"name\">Name</label>\n\
         <input id=\"name\" type=\"text\" name=\"name\" data-testid=\"idp-name\" \
         autocomplete=\"name\" maxlength=\"100\" value=\"{}\">\n\
         <div class=\"buttons\">\n\
         <button type=\"submit\" name=\"action\" value=\"continue\" data-testid=\"idp-continue\">Continue</button>\n\
         <button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate data-testid=\"idp-deny\">Deny</button>\n\
         </div>\n</form>",
        escape(email),
        escape(name)
    ));
    page(status, "Development sign-in", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
