//! The signed-in identity: email and name checks, the stable `sub`, the picture URL.

use sha2::{Digest, Sha256};

const MAX_EMAIL_LEN: usize = 254;
const MAX_NAME_CHARS: usize = 100;

/// The email as stored and answered: trimmed and lowercased (the key of the account).
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a submitted email: non-empty, at most 254 characters, exactly one `@` with something on
/// both sides, no whitespace or control characters.
pub(crate) fn validate_email(email: &str) -> Result<String, &'static str> {
    let email = normalize_email(email);
    if email.is_empty() {
        return Err("Enter an email address.");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err("The email address is too long (at most 254 characters).");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("The email address must not contain spaces.");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => Err("Enter an email address of the form name@example.com."),
    }
}

/// The display name: the trimmed name when it has 1..=100 characters, else the part of the
/// (valid) email before `@`.
pub(crate) fn display_name(name: Option<&str>, email: &str) -> String {
    let name = name.map(str::trim).unwrap_or_default();
    let chars = name.chars().count();
    if (1..=MAX_NAME_CHARS).contains(&chars) && !name.chars().any(char::is_control) {
        name.to_string()
    } else {
        email.split('@').next().unwrap_or_default().to_string()
    }
}

/// Google-like subject: `"1"` followed by 20 decimal digits, derived from the normalized email, so
/// one email is always one account.
pub(crate) fn sub_for(email: &str) -> String {
    let digest = Sha256::digest(normalize_email(email).as_bytes());
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    let n = u128::from_be_bytes(head) % 100_000_000_000_000_000_000u128;
    format!("1{n:020}")
}

/// Gravatar-style picture URL keyed by the SHA-256 of the normalized email.
pub(crate) fn picture_for(email: &str) -> String {
    let digest = Sha256::digest(normalize_email(email).as_bytes());
    format!(
        "https://www.gravatar.com/avatar/{}?d=identicon",
        hex::encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_is_stable_and_google_shaped() {
        let a = sub_for("Alice@Example.com ");
        assert_eq!(a, sub_for("alice@example.com"));
        assert_ne!(a, sub_for("bob@example.com"));
        assert_eq!(a.len(), 21);
        assert!(a.starts_with('1'));
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn email_rules() {
        assert_eq!(validate_email(" A@B.c ").unwrap(), "a@b.c");
        assert!(validate_email("").is_err());
        assert!(validate_email("   ").is_err());
        assert!(validate_email("no-at").is_err());
        assert!(validate_email("a@b@c").is_err());
        assert!(validate_email("@b").is_err());
        assert!(validate_email("a@").is_err());
        assert!(validate_email("a b@c").is_err());
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(validate_email(&long).is_err());
    }

    #[test]
    fn name_rules() {
        assert_eq!(display_name(Some("  Alice  "), "a@b.c"), "Alice");
        assert_eq!(display_name(Some("   "), "alice@b.c"), "alice");
        assert_eq!(display_name(None, "alice@b.c"), "alice");
        assert_eq!(display_name(Some(&"x".repeat(101)), "al@b.c"), "al");
        assert_eq!(
            display_name(Some(&"é".repeat(100)), "al@b.c"),
            "é".repeat(100)
        );
    }

    #[test]
    fn picture_is_gravatar() {
        let p = picture_for("a@b.c");
        assert!(p.starts_with("https://www.gravatar.com/avatar/"));
        assert!(p.ends_with("?d=identicon"));
    }
}
