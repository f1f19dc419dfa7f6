//! The webhook body parser on arbitrary bytes: it never panics, and what it accepts survives a
//! round trip through our own serializer unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onramp_bank_protocol::wire::OrderEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<OrderEvent>(data) {
        let again = serde_json::to_vec(&event).expect("an event serializes");
        let back: OrderEvent = serde_json::from_slice(&again).expect("our own output parses");
        assert_eq!(back, event);
    }
});
