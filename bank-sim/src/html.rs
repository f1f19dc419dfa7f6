//! The pay page's HTML. Everything interpolated goes through [`escape`].

use crate::db::Order;
use crate::MERCHANT_NAME;

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

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn layout(title: &str, main: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Simulated Bank</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f3f4f6; margin: 0; }}
main {{ max-width: 26rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.1rem; color: #374151; margin-top: 0; }}
.amount {{ font-size: 2.2rem; font-weight: 700; margin: .5rem 0 1rem; }}
.actions {{ display: flex; gap: .75rem; margin-top: 1.5rem; }}
.actions form {{ flex: 1; }}
button {{ width: 100%; padding: .8rem; border: 0; border-radius: 8px; font-size: 1rem; cursor: pointer; }}
.approve {{ background: #15803d; color: #fff; }}
.decline {{ background: #e5e7eb; color: #111827; }}
.muted {{ color: #6b7280; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<h1>Simulated Bank</h1>
{main}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

fn summary(order: &Order) -> String {
    format!(
        r#"<p>Pay <strong data-testid="bank-merchant">{merchant}</strong></p>
<p class="amount" data-testid="bank-amount">{amount}</p>
<p class="muted">Reference <code data-testid="bank-ref">{reference}</code></p>"#,
        merchant = escape(MERCHANT_NAME),
        amount = escape(&format_inr(order.amount)),
        reference = escape(&order.reference),
    )
}

/// The page of a `PENDING` order: the amount, the merchant, Approve and Decline.
pub(crate) fn pay_page(order: &Order) -> String {
    let token = escape(&order.token);
    layout(
        &format!("Pay {MERCHANT_NAME}"),
        &format!(
            r#"{summary}
<div class="actions">
<form method="post" action="pay/approve"><input type="hidden" name="token" value="{token}"><button type="submit" class="approve" data-testid="bank-approve">Approve</button></form>
<form method="post" action="pay/decline"><input type="hidden" name="token" value="{token}"><button type="submit" class="decline" data-testid="bank-decline">Decline</button></form>
</div>"#,
            summary = summary(order),
        ),
    )
}

/// The page of an order that is no longer `PENDING`.
pub(crate) fn already_final_page(order: &Order) -> String {
    let status = match order.status.as_str() {
        "SUCCESS" => "approved",
        "FAILURE" => "declined",
        other => other,
    };
    layout(
        "Payment already completed",
        &format!(
            r#"{summary}
<p data-testid="bank-already-final">This payment was already {status} (<span data-testid="bank-status">{raw}</span>); nothing was changed.</p>
<p><a href="{return_url}" data-testid="bank-return">Return to {merchant}</a></p>"#,
            summary = summary(order),
            status = escape(status),
            raw = escape(&order.status),
            return_url = escape(&order.return_url),
            merchant = escape(MERCHANT_NAME),
        ),
    )
}

/// A page with just a message (unknown order, bad request).
pub(crate) fn message_page(title: &str, message: &str, testid: &str) -> String {
    layout(
        title,
        &format!(
            r#"<p data-testid="{testid}">{message}</p>"#,
            testid = escape(testid),
            message = escape(message),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_from_paise() {
        assert_eq!(format_inr(10000), "₹100.00");
        assert_eq!(format_inr(123456), "₹1,234.56");
        assert_eq!(format_inr(1), "₹0.01");
        assert_eq!(format_inr(100), "₹1.00");
        assert_eq!(format_inr(99999), "₹999.99");
        assert_eq!(format_inr(10000000), "₹1,00,000.00");
        assert_eq!(format_inr(1234567890), "₹1,23,45,678.90");
        assert_eq!(format_inr(12345678901), "₹12,34,56,789.01");
        assert_eq!(format_inr(-150), "-₹1.50");
        assert_eq!(format_inr(i64::MAX), "₹92,23,37,20,36,85,47,758.07");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn pages_escape_what_they_show() {
        let order = Order {
            token: "bank_session_\"><script>".into(),
            reference: "<b>ref</b>".into(),
            amount: 10000,
            currency: "INR".into(),
            return_url: "http://app/?a=\"><script>alert(1)</script>".into(),
            status: "SUCCESS".into(),
        };
        for page in [pay_page(&order), already_final_page(&order)] {
            assert!(!page.contains("<script>"), "{page}");
            assert!(!page.contains("<b>ref"), "{page}");
            assert!(page.contains("₹100.00"));
            assert!(page.contains(MERCHANT_NAME));
        }
        let page = pay_page(&order);
        assert!(page.contains(r#"data-testid="bank-approve""#));
        assert!(page.contains(r#"data-testid="bank-decline""#));
        assert!(already_final_page(&order).contains(r#"data-testid="bank-already-final""#));
    }
}
