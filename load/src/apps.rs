//! The app's base URLs (`--app`): one, or one per process of one service (config.md, "Several
//! processes"), the requests spread over them in turn.

use anyhow::{bail, ensure, Context};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[derive(Debug)]
pub struct Apps {
    urls: Vec<String>,
    next: AtomicUsize,
}

impl Apps {
    /// `list`: base URLs separated by commas. Each must be an `http` or `https` URL, and none may
    /// come twice (its `/metrics` would be counted twice in the writer's figures).
    pub fn parse(list: &str) -> anyhow::Result<Apps> {
        let mut urls: Vec<String> = Vec::new();
        for item in list.split(',').map(str::trim) {
            ensure!(!item.is_empty(), "--app {list:?} has an empty URL");
            let url =
                url::Url::parse(item).with_context(|| format!("--app {item:?} is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!("--app {item:?} is not an http or https URL");
            }
            let base = item.trim_end_matches('/').to_owned();
            ensure!(!urls.contains(&base), "--app names {base} twice");
            urls.push(base);
        }
        Ok(Apps {
            urls,
            next: AtomicUsize::new(0),
        })
    }

    /// The URL for the next request: each in turn.
    pub fn next(&self) -> &str {
        &self.urls[self.next.fetch_add(1, Relaxed) % self.urls.len()]
    }

    pub fn all(&self) -> &[String] {
        &self.urls
    }

    /// The URLs as `--app` takes them.
    pub fn list(&self) -> String {
        self.urls.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_each_url_in_turn() {
        let apps = Apps::parse("http://10.0.0.1:8080, http://10.0.0.2:8080/").unwrap();
        let sent: Vec<&str> = (0..4).map(|_| apps.next()).collect();
        assert_eq!(
            sent,
            [
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080",
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080"
            ]
        );
        assert_eq!(apps.list(), "http://10.0.0.1:8080,http://10.0.0.2:8080");
        let one = Apps::parse("http://localhost:8080").unwrap();
        assert_eq!(
            (one.next(), one.next()),
            ("http://localhost:8080", "http://localhost:8080")
        );
    }

    #[test]
    fn a_bad_list_is_refused_with_its_reason() {
        let refusal = |list: &str| Apps::parse(list).unwrap_err().to_string();
        assert!(
            refusal("localhost:8080").contains("not"),
            "{}",
            refusal("localhost:8080")
        );
        assert!(refusal("ftp://h/").contains("not an http or https URL"));
        assert!(refusal("http://a:1,").contains("an empty URL"));
        assert!(refusal("http://a:1,http://a:1/").contains("names http://a:1 twice"));
    }
}
