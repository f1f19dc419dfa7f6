//! Database URLs with their secrets masked, for logs and messages: a URL may carry a password in
//! its user information (`postgres://user:pass@host/db`) or in its query (`?password=…`,
//! `?sslpassword=…`, which sqlx accepts too), and neither may ever be printed.

/// The query parameters of a PostgreSQL URL that sqlx reads. sqlx logs any other one *with its
/// value* ("ignoring unrecognized connect parameter"), and `sslpassword` is such a one: the
/// others are dropped (named in a warning, their values never shown) before sqlx sees the URL.
const PG_PARAMETERS: [&str; 17] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
];

/// A PostgreSQL URL as sqlx may be given it: without the query parameters it does not read
/// (`options` too is kept). A URL that does not parse is returned as it is, for sqlx to refuse.
pub(crate) fn pg_url_for_sqlx(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if parsed.query().is_none() {
        return url.to_owned();
    }
    let (kept, dropped): (Vec<_>, Vec<_>) = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .partition(|(k, _)| PG_PARAMETERS.contains(&k.as_str()) || k == "options");
    for (name, _) in &dropped {
        tracing::warn!(parameter = %name, "ignoring a database.url parameter the driver does not read");
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.to_string()
}

/// What stands in for a secret.
const MASK: &str = "****";

/// `url` with every password-bearing part masked: the password of its user information and the
/// value of every query parameter whose name contains `password` (in any case). A URL that does
/// not parse is shown by its scheme alone, since nothing in it can be told safe.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let scheme = url.split("://").next().filter(|s| s.len() < url.len());
        return match scheme {
            Some(scheme) => format!("{scheme}://{MASK} (a URL that does not parse)"),
            None => format!("{MASK} (a URL that does not parse)"),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("password");
                let v = if secret {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_hidden(url: &str, expected: &str) {
        let shown = redact_url(url);
        assert_eq!(shown, expected, "{url}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_password_in_the_user_information_is_masked() {
        assert_hidden(
            "postgres://onramp:hunter2@db.example:5432/onramp",
            "postgres://onramp:****@db.example:5432/onramp",
        );
        assert_hidden(
            "postgresql://onramp:hunter2@db.example/onramp?sslmode=require",
            "postgresql://onramp:****@db.example/onramp?sslmode=require",
        );
    }

    #[test]
    fn a_password_in_the_query_is_masked() {
        assert_hidden(
            "postgres://db.example/onramp?user=onramp&password=hunter2",
            "postgres://db.example/onramp?user=onramp&password=****",
        );
        assert_hidden(
            "postgres://db.example/onramp?sslmode=verify-full&sslpassword=hunter2",
            "postgres://db.example/onramp?sslmode=verify-full&sslpassword=****",
        );
        assert_hidden(
            "postgres://u:hunter2@db.example/onramp?PASSWORD=hunter2",
            "postgres://u:****@db.example/onramp?PASSWORD=****",
        );
    }

    #[test]
    fn parameters_the_driver_does_not_read_never_reach_it() {
        assert_eq!(
            pg_url_for_sqlx("postgres://db/x?sslmode=require&sslpassword=hunter2&password=p"),
            "postgres://db/x?sslmode=require&password=p"
        );
        assert_eq!(
            pg_url_for_sqlx("postgres://db/x?sslpassword=hunter2"),
            "postgres://db/x"
        );
        assert_eq!(
            pg_url_for_sqlx("postgres://u:p@db/x"),
            "postgres://u:p@db/x"
        );
    }

    #[test]
    fn a_url_without_secrets_is_shown_as_it_is() {
        assert_eq!(
            redact_url("sqlite://data/onramp.db"),
            "sqlite://data/onramp.db"
        );
        assert_eq!(
            redact_url("postgres://onramp@db.example/onramp?sslmode=require"),
            "postgres://onramp@db.example/onramp?sslmode=require"
        );
    }

    #[test]
    fn a_url_that_does_not_parse_shows_nothing_but_its_scheme() {
        assert_hidden(
            "postgres://u:hunter2@[bad-host/db",
            "postgres://**** (a URL that does not parse)",
        );
        assert_hidden("hunter2", "**** (a URL that does not parse)");
    }
}
