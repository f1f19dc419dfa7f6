//! Domain types: parsed once at the edge, so an invalid value cannot be built.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use onramp_bank_protocol::Currency;

/// Where a user's identity comes from. Stored as its name in `auth_accounts.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Google,
}

impl Provider {
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
        }
    }
}

/// A user's id (a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(uuid::Uuid);

impl UserId {
    /// A new user's id is time-ordered (UUIDv7: the sign-up's millisecond, then 74 random
    /// bits), so that people who signed up near each other sit near each other in every index
    /// that begins with a user id (sessions, accounts, deposits, transfers, withdrawals). On books
    /// of a million people, a random id put each new person's rows on a random leaf of each of
    /// those indexes, and every transfer dirtied three leaves nobody else was writing
    /// (BENCHMARKS.md, thirteenth session). Ids made before this stay as they are: an id is
    /// opaque, only its owner sees it, and nothing reads the time out of it.
    pub fn new() -> Self {
        UserId(uuid::Uuid::now_v7())
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        uuid::Uuid::parse_str(s)
            .map(UserId)
            .map_err(|_| format!("{s:?} is not a user id"))
    }
    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A positive amount of paise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

impl Amount {
    /// An amount from 1 to `max` paise.
    pub fn parse(paise: i64, max: i64) -> Result<Self, String> {
        if paise < 1 {
            Err("The amount must be at least 1 paisa".into())
        } else if paise > max {
            Err(format!("The amount must be at most {max} paise"))
        } else {
            Ok(Amount(paise))
        }
    }
    /// An amount read back from our own storage, where the schema keeps it positive.
    pub fn from_stored(paise: i64) -> Self {
        debug_assert!(paise > 0);
        Amount(paise)
    }
    pub fn paise(self) -> i64 {
        self.0
    }
}

/// A deposit's id, `txn_` and 32 hex digits; it is also the `ref` the bank sees. New ids are
/// UUIDv7 (time first, then random): deposits are settled in roughly the order they were made,
/// so time-ordered ids keep the writes of one group commit on a few neighbouring index pages
/// instead of one random page each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DepositId(String);

impl DepositId {
    pub fn new() -> Self {
        DepositId(format!("txn_{}", uuid::Uuid::now_v7().simple()))
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok =
            s.len() == 36 && s.starts_with("txn_") && s[4..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(DepositId(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a deposit id"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DepositId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DepositId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A transfer's id, `trf_` and 32 hex digits (UUIDv7, for the reason deposit ids are).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransferId(String);

impl TransferId {
    pub fn new() -> Self {
        TransferId(format!("trf_{}", uuid::Uuid::now_v7().simple()))
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok =
            s.len() == 36 && s.starts_with("trf_") && s[4..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(TransferId(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a transfer id"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TransferId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A withdrawal's id, `wd_` and 32 hex digits (UUIDv7, for the reason deposit ids are); it is
/// also the `ref` the bank sees for its payout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WithdrawalId(String);

impl WithdrawalId {
    pub fn new() -> Self {
        WithdrawalId(format!("wd_{}", uuid::Uuid::now_v7().simple()))
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok =
            s.len() == 35 && s.starts_with("wd_") && s[3..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(WithdrawalId(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a withdrawal id"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for WithdrawalId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WithdrawalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bank's id for a payout: printable ASCII without spaces, 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayoutId(String);

impl PayoutId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(PayoutId(s.to_owned()))
        } else {
            Err("not a payout id".into())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How an email is looked up: trimmed and lower-cased, so `Bob@Example.com` finds
/// `bob@example.com`. (Strictly the local part may be case-sensitive; no provider we accept
/// makes two accounts that differ only in case, and people type addresses in any case.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailKey(String);

impl EmailKey {
    pub fn of(email: &str) -> Self {
        EmailKey(email.trim().to_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bank's token for an order: printable ASCII without spaces, 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BankToken(String);

impl BankToken {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(BankToken(s.to_owned()))
        } else {
            Err("not a bank token".into())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A deposit's or a withdrawal's state. `Processing` turns into one of the final two exactly
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Processing,
    Success,
    Failure,
}

/// A deposit's state.
pub type DepositStatus = Status;
/// A withdrawal's state: `Processing` until the bank pays it out or fails it.
pub type WithdrawalStatus = Status;

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Processing => "processing",
            Status::Success => "success",
            Status::Failure => "failure",
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "processing" => Ok(Status::Processing),
            "success" => Ok(Status::Success),
            "failure" => Ok(Status::Failure),
            _ => Err(format!("{s:?} is not a status")),
        }
    }
}

/// What a withdrawal's own request answered, from the bank's answer to its create-payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstAnswer {
    /// The bank made the payout: `201`.
    Created,
    /// The bank refused it and the money went back: `502 bank_refused`.
    Refused,
}

impl FirstAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstAnswer::Created => "created",
            FirstAnswer::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "created" => Ok(FirstAnswer::Created),
            "refused" => Ok(FirstAnswer::Refused),
            other => Err(format!("unknown first answer {other:?}")),
        }
    }
}

/// The final outcome the bank reports for an order or a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Settlement {
    Success,
    Failure,
}

impl Settlement {
    pub fn status(self) -> DepositStatus {
        match self {
            Settlement::Success => DepositStatus::Success,
            Settlement::Failure => DepositStatus::Failure,
        }
    }
}

/// The provider's subject id: 1 to 255 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderSub(String);

impl ProviderSub {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control) {
            Ok(ProviderSub(s.to_owned()))
        } else {
            Err("not a valid subject id".into())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A session token as the browser holds it: 256 random bits, base64url without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        use base64_url::encode;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionToken(encode(&bytes))
    }
    /// The token of these 256 bits (`generate` draws them at random).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SessionToken(base64_url::encode(bytes))
    }
    /// Accepts only what `generate` makes: 43 base64url characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Ok(SessionToken(s.to_owned()))
        } else {
            Err("not a session token".into())
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> SessionHash {
        SessionHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

/// What the database keys a session by: the SHA-256 of its token, in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionHash(String);

impl SessionHash {
    pub fn from_stored(s: String) -> Self {
        SessionHash(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

mod base64_url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Base64url without padding.
    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

/// Serde reads these ids through their `parse` (an invalid id is refused) and writes their text.
macro_rules! id_text {
    ($($id:ident),*) => {$(
        impl TryFrom<String> for $id {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }
    )*};
}

id_text!(DepositId, TransferId, WithdrawalId);

impl TryFrom<String> for UserId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.to_string()
    }
}

impl TryFrom<i64> for Amount {
    type Error = String;
    fn try_from(paise: i64) -> Result<Self, String> {
        Amount::parse(paise, i64::MAX)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> i64 {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_positive_paise_up_to_the_maximum() {
        assert!(Amount::parse(0, 100).is_err());
        assert!(Amount::parse(-5, 100).is_err());
        assert!(Amount::parse(101, 100).is_err());
        assert_eq!(Amount::parse(100, 100).unwrap().paise(), 100);
        assert_eq!(Amount::parse(1, 100).unwrap().paise(), 1);
    }

    #[test]
    fn people_who_sign_up_later_get_ids_that_sort_later() {
        let first = UserId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = UserId::new();
        assert_eq!(first.0.get_version_num(), 7);
        assert!(first < second, "{first} then {second}");
        assert!(first.to_string() < second.to_string(), "as text too");
        assert_eq!(UserId::parse(&first.to_string()), Ok(first));
    }

    #[test]
    fn session_tokens_round_trip_and_hash() {
        let t = SessionToken::generate();
        assert_eq!(t.expose().len(), 43);
        let parsed = SessionToken::parse(t.expose()).unwrap();
        assert_eq!(parsed.hash(), t.hash());
        assert_ne!(t.hash().as_str(), t.expose());
        assert!(SessionToken::parse("short").is_err());
        assert!(SessionToken::parse(&"a".repeat(42).replace('a', "!")).is_err());
        assert_ne!(SessionToken::generate().expose(), t.expose());
    }

    #[test]
    fn withdrawal_ids_parse_only_their_own_shape() {
        let id = WithdrawalId::new();
        assert_eq!(WithdrawalId::parse(id.as_str()).unwrap(), id);
        assert!(WithdrawalId::parse(DepositId::new().as_str()).is_err());
        assert!(WithdrawalId::parse("wd_123").is_err());
        assert!(PayoutId::parse("po 1").is_err());
        assert!(PayoutId::parse("po_1").is_ok());
    }

    #[test]
    fn deposit_ids_parse_only_their_own_shape() {
        let id = DepositId::new();
        assert_eq!(DepositId::parse(id.as_str()).unwrap(), id);
        assert!(DepositId::parse("txn_123").is_err());
        assert!(DepositId::parse("' OR 1=1 --").is_err());
    }
}
