//! A property test of `POST /api/webhooks/bank`: correctly signed bodies, whatever they hold
//! (any JSON, the real event with one thing wrong, any bytes), never crash the app or change
//! the books.

use super::helpers::snapshot;
use super::judge::{check_json_error, forbidden_in_errors, Answer};
use super::{AMOUNT, SQL};
use onramp_bank_protocol::signature::sign_header;
use onramp_test_support::{spawn_app, Backend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Property: correctly signed webhook bodies, whatever they hold, never crash the app or change
// the books. A sync test drives the proptest runner and each case's requests on one actix system.

mod signed_webhook_bodies_never_crash_the_app_or_change_anything {
    use onramp_test_support::Backend;

    #[test]
    fn sqlite() {
        super::signed_webhook_bodies(Backend::Sqlite)
    }
    #[test]
    fn postgres() {
        super::signed_webhook_bodies(Backend::Postgres)
    }
}

const EVENT_FIELDS: [&str; 6] = ["event_id", "token", "ref", "amount", "currency", "status"];

/// Any JSON: numbers of every kind, unicode strings, and the event's own words.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "SUCCESS",
            "FAILURE",
            "INR",
            "evt_1",
            SQL,
            "bank_session_x"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EVENT_FIELDS.to_vec()).prop_map(String::from),
        ".{0,12}",
    ]
}

/// A real event for the deposit with one thing wrong: a field replaced by any other JSON value
/// (never a valid status), or a field missing; and maybe extra fields.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(&'static str, Value),
    Remove(&'static str),
}

fn mutation() -> impl Strategy<Value = (Mutation, Vec<(String, Value)>)> {
    let replace = (
        prop::sample::select(vec!["token", "ref", "amount", "currency", "status"]),
        prop_oneof![
            1 => any_json(),
            2 => ".{0,40}".prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
        ],
    )
        .prop_map(|(f, v)| Mutation::Replace(f, v));
    let remove = prop::sample::select(EVENT_FIELDS.to_vec()).prop_map(Mutation::Remove);
    let extra = prop::collection::vec(
        (
            ".{1,12}".prop_filter("not an event field", |k| {
                !EVENT_FIELDS.contains(&k.as_str())
            }),
            any_json(),
        ),
        0..3,
    );
    (prop_oneof![3 => replace, 1 => remove], extra)
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Mutated(Mutation, Vec<(String, Value)>),
    Bytes(Vec<u8>),
}

fn webhook_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => any_json().prop_map(Body::Json),
        2 => mutation().prop_map(|(m, extra)| Body::Mutated(m, extra)),
        1 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(Body::Bytes),
    ]
}

fn signed_webhook_bodies(backend: Backend) {
    const CASES: u32 = 256;
    let system = actix_web::rt::System::new();
    let (app, person, event) = system.block_on(async {
        let app = spawn_app(backend).await;
        let person = app.signed_in("prop@example.com", "Prop").await;
        let id = person.deposit(AMOUNT).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let event = app.event_for(&id, "SUCCESS").await;
        (app, person, event)
    });
    let forbidden = forbidden_in_errors(&app, "");
    let before = system.block_on(snapshot(&app));
    let secret = app.webhook_secret();
    let started = Instant::now();

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(BTreeMap::<u16, u32>::new());
    let result = runner.run(&webhook_body(), |body| {
        let raw = match &body {
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
            Body::Bytes(b) => b.clone(),
            Body::Mutated(m, extra) => {
                let mut e = event.clone();
                let obj = e.as_object_mut().unwrap();
                match m {
                    Mutation::Replace(field, v) => {
                        prop_assume!(obj[*field] != *v);
                        prop_assume!(!(*field == "status" && (v == "SUCCESS" || v == "FAILURE")));
                        obj.insert(field.to_string(), v.clone());
                    }
                    Mutation::Remove(field) => {
                        obj.remove(*field);
                    }
                }
                for (k, v) in extra {
                    obj.insert(k.clone(), v.clone());
                }
                serde_json::to_vec(&e).unwrap()
            }
        };
        system.block_on(async {
            let t = chrono::Utc::now().timestamp();
            let header = sign_header(&[&secret], t, &raw);
            let r = app.post_raw_webhook(raw.clone(), Some(header)).await;
            let a = Answer {
                status: r.status().as_u16(),
                headers: r
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: r.bytes().await.unwrap().to_vec(),
            };
            *statuses.borrow_mut().entry(a.status).or_default() += 1;
            prop_assert!(
                matches!(a.status, 400 | 404 | 422),
                "status {} for {:?}: {}",
                a.status,
                String::from_utf8_lossy(&raw),
                a.text()
            );
            check_json_error(&a, None, &forbidden).map_err(TestCaseError::fail)?;
            let now = snapshot(&app).await;
            prop_assert_eq!(&before, &now, "the database changed");
            Ok(())
        })
    });
    println!(
        "{backend:?}: {CASES} signed webhook bodies in {:?}, statuses {:?}",
        started.elapsed(),
        statuses.borrow()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    system.block_on(async {
        // The real event is still applied once.
        let r = app.post_webhook(&event, None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(person.balance().await, AMOUNT);
        app.assert_books_balance().await;
        app.handle.stop(false).await;
    });
}
