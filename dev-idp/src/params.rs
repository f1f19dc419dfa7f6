//! `application/x-www-form-urlencoded` parameters (query strings and form bodies).

use std::collections::HashMap;

use actix_web::{http::header, HttpRequest};

/// Parsed parameters. A parameter may appear at most once (RFC 6749 §3.1, §3.2), and a parameter
/// sent without a value is treated as omitted.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses form-encoded input; fails on a repeated parameter, naming it.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (key, value) in url::form_urlencoded::parse(input) {
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(format!("parameter {key:?} was given more than once"));
            }
        }
        Ok(Self(map))
    }

    /// The value of a parameter, `None` when absent or empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Whether the request declares a form-encoded body.
pub(crate) fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let p = Params::parse(b"a=1&b=x+y%26z&c=").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x y&z"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), None);
    }

    #[test]
    fn rejects_duplicates() {
        assert!(Params::parse(b"a=1&a=2").is_err());
    }
}
