//! The bank's wire protocol as onramp speaks it (`docs/bank.md`): the webhook signature, the
//! order and event bodies with their status enums, and the header names. The app, the bank
//! simulator and the load tool all use this crate, so the two sides cannot drift apart and the
//! production server never links the simulator to read a webhook.

pub mod money;
pub mod signature;
pub mod wire;

pub use money::{format_inr, Currency};
pub use signature::{EVENT_ID_HEADER, SIGNATURE_HEADER};
pub use wire::{
    BankEvent, CreateOrder, CreatePayout, CreatedOrder, ErrorBody, EventStatus, Order, OrderEvent,
    OrderStatus, Payout, PayoutEvent, PayoutKind, PayoutStatus,
};
