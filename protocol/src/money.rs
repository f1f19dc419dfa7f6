//! Currencies and how an amount is shown to a person: the one place money is formatted on the
//! server side (the bank simulator's pay page, the load tool's report).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The currencies a wallet holds. Amounts are integers in the currency's smallest unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Currency {
    /// Indian rupees, counted in paise (100 paise = ₹1).
    #[default]
    #[serde(rename = "INR")]
    Inr,
}

impl Currency {
    /// The ISO 4217 code, as the bank and our API spell it.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Inr => "INR",
        }
    }

    /// The currency behind an ISO 4217 code (exact spelling: `"inr"` is not a code).
    pub fn parse(code: &str) -> Result<Self, UnknownCurrency> {
        match code {
            "INR" => Ok(Currency::Inr),
            _ => Err(UnknownCurrency(code.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a currency this wallet holds")]
pub struct UnknownCurrency(String);

/// Formats an amount in paise as rupees with Indian digit grouping: `123456` → `₹1,234.56`,
/// `10000000` → `₹1,00,000.00`.
pub fn format_inr(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let paise = paise.unsigned_abs();
    let rupees = (paise / 100).to_string();
    let fraction = paise % 100;
    // The last three digits, then groups of two.
    let (head, tail) = rupees.split_at(rupees.len().saturating_sub(3));
    let mut grouped = String::new();
    let first = head.len() % 2;
    for (i, c) in head.chars().enumerate() {
        if i > 0 && (i + 2 - first) % 2 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if !head.is_empty() {
        grouped.push(',');
    }
    grouped.push_str(tail);
    format!("{sign}₹{grouped}.{fraction:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_are_grouped_the_indian_way() {
        for (paise, shown) in [
            (0, "₹0.00"),
            (1, "₹0.01"),
            (100, "₹1.00"),
            (123456, "₹1,234.56"),
            (10000000, "₹1,00,000.00"),
            (123456789012, "₹1,23,45,67,890.12"),
            (-2550, "-₹25.50"),
            (i64::MIN, "-₹92,23,37,20,36,85,47,758.08"),
        ] {
            assert_eq!(format_inr(paise), shown, "{paise}");
        }
    }

    #[test]
    fn only_the_exact_code_is_a_currency() {
        assert_eq!(Currency::parse("INR"), Ok(Currency::Inr));
        assert!(Currency::parse("inr").is_err());
        assert!(Currency::parse("USD").is_err());
        assert_eq!(serde_json::to_string(&Currency::Inr).unwrap(), "\"INR\"");
    }
}
