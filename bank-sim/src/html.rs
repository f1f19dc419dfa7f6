//! The pay page's HTML, written with `maud`: every interpolated value is escaped by
//! construction; only the constant stylesheet is spliced in raw.

use crate::db::Order;
use crate::{rfc3339, MERCHANT_NAME};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use onramp_bank_protocol::{format_inr, OrderStatus};

/// The page's only styling, inline (the pay page's CSP allows `style-src 'unsafe-inline'`).
const STYLE: &str = "
body { font-family: system-ui, sans-serif; background: #f3f4f6; margin: 0; }
main { max-width: 26rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem; box-shadow: 0 2px 10px rgba(0,0,0,.08); }
h1 { font-size: 1.1rem; color: #374151; margin-top: 0; }
.amount { font-size: 2.2rem; font-weight: 700; margin: .5rem 0 1rem; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
.actions form { flex: 1; }
button { width: 100%; padding: .8rem; border: 0; border-radius: 8px; font-size: 1rem; cursor: pointer; }
.approve { background: #15803d; color: #fff; }
.decline { background: #e5e7eb; color: #111827; }
.muted { color: #6b7280; font-size: .9rem; }
";

fn layout(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Simulated Bank" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "Simulated Bank" }
                    (content)
                }
            }
        }
    }
}

fn summary(order: &Order) -> Markup {
    html! {
        p { "Pay " strong data-testid="bank-merchant" { (MERCHANT_NAME) } }
        p.amount data-testid="bank-amount" { (format_inr(order.amount)) }
        p.muted { "Reference " code data-testid="bank-ref" { (order.reference) } }
    }
}

/// The page of a `PENDING` order: the amount, the merchant, Approve and Decline.
pub(crate) fn pay_page(order: &Order) -> Markup {
    layout(
        &format!("Pay {MERCHANT_NAME}"),
        html! {
            (summary(order))
            p.muted { "Expires " time data-testid="bank-expires-at" { (rfc3339(order.expires_at)) } }
            div.actions {
                form method="post" action="pay/approve" {
                    input type="hidden" name="token" value=(order.token);
                    button type="submit" class="approve" data-testid="bank-approve" { "Approve" }
                }
                form method="post" action="pay/decline" {
                    input type="hidden" name="token" value=(order.token);
                    button type="submit" class="decline" data-testid="bank-decline" { "Decline" }
                }
            }
        },
    )
}

/// The page of an order that is no longer `PENDING`: paid or declined, or ended unpaid.
pub(crate) fn final_page(order: &Order) -> Markup {
    match order.status {
        OrderStatus::Expired | OrderStatus::Cancelled => ended_page(order),
        OrderStatus::Pending | OrderStatus::Success | OrderStatus::Failure => {
            already_final_page(order)
        }
    }
}

/// The page of an order that was already approved or declined.
pub(crate) fn already_final_page(order: &Order) -> Markup {
    let status = match order.status {
        OrderStatus::Success => "approved",
        OrderStatus::Failure => "declined",
        other => other.as_str(),
    };
    layout(
        "Payment already completed",
        html! {
            (summary(order))
            p data-testid="bank-already-final" {
                "This payment was already " (status) " ("
                span data-testid="bank-status" { (order.status.as_str()) }
                "); nothing was changed."
            }
            p { a href=(order.return_url) data-testid="bank-return" { "Return to " (MERCHANT_NAME) } }
        },
    )
}

/// The page of an order that ended unpaid (`EXPIRED` or `CANCELLED`): it can no longer be paid.
pub(crate) fn ended_page(order: &Order) -> Markup {
    let (title, what) = match order.status {
        OrderStatus::Cancelled => ("Payment request cancelled", "was cancelled"),
        _ => ("Payment request expired", "has expired"),
    };
    layout(
        title,
        html! {
            (summary(order))
            p data-testid="bank-order-ended" {
                "This payment request " (what) " ("
                span data-testid="bank-status" { (order.status.as_str()) }
                "); it can no longer be paid, and nothing was changed."
            }
            p { a href=(order.return_url) data-testid="bank-return" { "Return to " (MERCHANT_NAME) } }
        },
    )
}

/// A page with just a message (unknown order, bad request).
pub(crate) fn message_page(title: &str, message: &str, testid: &str) -> Markup {
    layout(title, html! { p data-testid=(testid) { (message) } })
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
        let page = message_page(
            r#"<a href="x">'&'</a>"#,
            r#"<script>alert("x&y")</script>"#,
            r#"t"><script>"#,
        )
        .into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains(
                "<title>&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt; · Simulated Bank</title>"
            ),
            "{page}"
        );
        assert!(
            page.contains(
                r#"<p data-testid="t&quot;&gt;&lt;script&gt;">&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;</p>"#
            ),
            "{page}"
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
            status: OrderStatus::Success,
            expires_at: 1_748_779_200_000,
        };
        let ended = |status| {
            ended_page(&Order {
                status,
                ..order.clone()
            })
        };
        for page in [
            pay_page(&order),
            already_final_page(&order),
            ended(OrderStatus::Expired),
            ended(OrderStatus::Cancelled),
        ] {
            let page = page.into_string();
            assert!(!page.contains("<script>"), "{page}");
            assert!(page.contains("&lt;b&gt;ref&lt;/b&gt;"), "{page}");
            assert!(!page.contains("<b>ref"), "{page}");
            assert!(page.contains("₹100.00"));
            assert!(page.contains(MERCHANT_NAME));
        }
        let page = pay_page(&order).into_string();
        assert!(page.contains(r#"data-testid="bank-approve""#));
        assert!(page.contains(r#"data-testid="bank-decline""#));
        assert!(page.contains(r#"name="token" value="bank_session_&quot;&gt;&lt;script&gt;""#));
        assert!(page.contains(r#"<time data-testid="bank-expires-at">2025-06-01T12:00:00Z</time>"#));
        let page = already_final_page(&order).into_string();
        assert!(page.contains(r#"data-testid="bank-already-final""#));
        assert!(page
            .contains(r#"href="http://app/?a=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;""#));
        assert!(page.contains("<style>\nbody { font-family"), "{page}");
        assert_eq!(final_page(&order).into_string(), page);
    }

    #[test]
    fn ended_orders_say_so_and_offer_no_buttons() {
        let order = Order {
            token: "bank_session_1".into(),
            reference: "txn_1".into(),
            amount: 100,
            currency: "INR".into(),
            return_url: "http://app/dashboard".into(),
            status: OrderStatus::Expired,
            expires_at: 0,
        };
        for (status, words) in [
            (OrderStatus::Expired, "This payment request has expired"),
            (OrderStatus::Cancelled, "This payment request was cancelled"),
        ] {
            let page = final_page(&Order {
                status,
                ..order.clone()
            })
            .into_string();
            assert!(page.contains(words), "{page}");
            assert!(page.contains(r#"data-testid="bank-order-ended""#), "{page}");
            assert!(
                page.contains(&format!(
                    r#"<span data-testid="bank-status">{}</span>"#,
                    status.as_str()
                )),
                "{page}"
            );
            assert!(page.contains(r#"data-testid="bank-return""#), "{page}");
            assert!(!page.contains("bank-approve") && !page.contains("bank-decline"));
            assert!(!page.contains("bank-already-final") && !page.contains("<form"));
        }
    }
}
