//! What the API's requests that move money share: a strict JSON object body, its amount, and
//! the `Idempotency-Key` header, each refused with a clear `400` when it is not as the API says.

use crate::error::ApiError;
use actix_web::HttpRequest;
use onramp_api::ErrorCode;
use onramp_store::domain::Amount;

/// How long an `Idempotency-Key` is remembered.
pub const KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// A JSON object body whose fields are checked by hand. (A struct would also accept the array
/// `[100]`, which serde reads as a sequence of fields; a plain map would silently keep the last
/// of `{"amount": 100, "amount": 200}`, so a repeated field is refused.)
pub struct StrictObject(serde_json::Map<String, serde_json::Value>);

impl std::ops::Deref for StrictObject {
    type Target = serde_json::Map<String, serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl StrictObject {
    /// Refuses a field not among `fields`; `shape` shows the body as the API wants it.
    pub fn only(&self, fields: &[&str], shape: &str) -> Result<(), ApiError> {
        match self.keys().find(|k| !fields.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                format!("Unknown field {unknown:?}: send only {shape}."),
            )),
            None => Ok(()),
        }
    }

    /// A body of `{"amount": <paise>}` alone (a deposit's, a withdrawal's): its amount, from 1 to
    /// `max` paise.
    pub fn amount_only(&self, max: i64) -> Result<Amount, ApiError> {
        self.only(&["amount"], r#"{"amount": <paise>}"#)?;
        self.amount(max)
    }

    /// The `amount` field as the API wants it: a JSON integer from 1 to `max` paise.
    pub fn amount(&self, max: i64) -> Result<Amount, ApiError> {
        let missing = || ApiError::bad_request(ErrorCode::InvalidAmount, "The amount is missing.");
        let paise = match self.get("amount").ok_or_else(missing)? {
            serde_json::Value::Number(n) => n.as_i64().filter(|_| !n.is_f64()),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidAmount,
                "The amount must be a whole number of paise.",
            )
        })?;
        Amount::parse(paise, max)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidAmount, format!("{e}.")))
    }
}

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StrictObject, A::Error> {
                let mut fields = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if fields.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field {key:?}"
                        )));
                    }
                    fields.insert(key, value);
                }
                Ok(StrictObject(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// The request's `Idempotency-Key`, if it has one (at most one, of 1 to 255 printable ASCII
/// characters).
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = req.headers().get_all("Idempotency-Key");
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            "Send one Idempotency-Key.",
        ));
    }
    let key = first
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            "The Idempotency-Key must be 1 to 255 printable ASCII characters.",
        )
    })
}
