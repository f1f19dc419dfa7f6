//! Hostile input. Someone sends every endpoint what no browser or bank would: malformed JSON,
//! wrong content types, missing and doubled headers, bodies past the limit, numbers past `i64`,
//! floats and strings where integers belong, unicode and control characters, SQL-looking text,
//! very long cookies and headers, and bytes that are not HTTP at all. Each gets a `4xx` with a
//! JSON error (or the redirect `identity.md` names), the database does not change, and the server
//! keeps serving: afterwards the person can still add money and the bank can still credit it.
//!
//! What reaches our handlers must answer JSON. A few requests are refused by actix-web's HTTP/1
//! parser before any handler or middleware runs (a NUL byte in a header, a broken request line,
//! two different `Content-Length`s, more than 96 headers, a head past 128 KiB): those answer a
//! `400` or `431` with an empty body, and the table marks them `HttpLayer`. Note that actix-web's
//! head limit is 128 KiB, so an 8 KiB cookie and a 16 KiB header do reach our handlers (and get
//! our JSON `401`s); only the 100-header and 160 KiB-header requests are refused by the parser.
//!
//! The table of hostile requests is built a file per endpoint (`sign_in`, `sessions`, `deposit`,
//! `transfers`, `balance`, `history`, `webhook`, `routes`) from the cases of `case`; `judge`
//! sends each case and judges its answer, and `helpers` holds the people, sign-in flows and
//! database snapshots around them. The other tests are in `http_layer`, `security_headers`,
//! `valid_input` and `webhook_property`.

use case::{Case, Fixture};
use helpers::{row_counts, signed_in_with_cookie, snapshot, started_flow, still_serving};
use judge::{forbidden_in_errors, judge, send};
use onramp_test_support::{on_both_databases, spawn_app, Backend};
use std::collections::BTreeMap;
use std::time::Instant;

mod balance;
mod case;
mod deposit;
mod helpers;
mod history;
mod http_layer;
mod judge;
mod routes;
mod security_headers;
mod sessions;
mod sign_in;
mod transfers;
mod valid_input;
mod webhook;
mod webhook_property;

on_both_databases!(every_endpoint_answers_hostile_input_with_a_json_4xx_and_changes_nothing);

const SQL: &str = "'; DROP TABLE users; --";
/// SQL without spaces, so that it passes checks for printable ASCII and reaches the database.
const SQL_NO_SPACES: &str = "';DROP/**/TABLE/**/deposits;--";
const AMOUNT: i64 = 2_500;

/// Every endpoint, with what it must answer. `session` cases carry the signed-in person's cookie.
fn hostile_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    sign_in::start_cases(&mut cases);
    sign_in::callback_cases(f, &mut cases);
    sessions::logout_cases(&mut cases);
    sessions::me_cases(&mut cases);
    deposit::amount_cases(&mut cases);
    deposit::body_cases(&mut cases);
    deposit::content_type_cases(&mut cases);
    deposit::idempotency_key_cases(&mut cases);
    deposit::who_cases(f, &mut cases);
    transfers::transfer_cases(f, &mut cases);
    sessions::unknown_session_cases(&mut cases);
    balance::balance_cases(&mut cases);
    history::limit_cases(&mut cases);
    history::cursor_and_query_cases(&mut cases);
    webhook::signature_cases(f, &mut cases);
    webhook::body_cases(f, &mut cases);
    webhook::wrong_event_cases(f, &mut cases);
    webhook::content_type_cases(f, &mut cases);
    routes::route_cases(&mut cases);
    cases
}

async fn every_endpoint_answers_hostile_input_with_a_json_4xx_and_changes_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (person, cookie) = signed_in_with_cookie(&app, "mallory@example.com", "Mallory").await;
    let deposit = person.deposit(AMOUNT).await;
    let deposit_id = deposit["id"].as_str().unwrap().to_owned();
    let mut flows = Vec::new();
    for _ in 0..5 {
        flows.push(started_flow(&app).await);
    }
    let fixture = Fixture {
        secret: app.webhook_secret(),
        origin: app.state.urls.public_origin.clone(),
        token: app.token_of(&deposit_id).await,
        event: app.event_for(&deposit_id, "SUCCESS").await,
        deposit_id: deposit_id.clone(),
        flows,
        recipient: "trent@example.com".into(),
    };
    app.signed_in(&fixture.recipient, "Trent").await;
    let forbidden = forbidden_in_errors(&app, &cookie);
    let before = snapshot(&app).await;
    println!("before: {}", row_counts(&before));

    let cases = hostile_cases(&fixture);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for case in &cases {
        let answer = send(&app, &cookie, case).await;
        *statuses.entry(answer.status).or_default() += 1;
        let verdict = judge(&app, &case.expect, &answer, &forbidden);
        println!(
            "{:>3} {:<7} {:<5} {:<60} {}",
            answer.status,
            case.method,
            if verdict.is_ok() { "ok" } else { "FAIL" },
            case.name,
            verdict.as_ref().err().map(String::as_str).unwrap_or("")
        );
        if let Err(why) = verdict {
            failures.push(format!(
                "{} ({} {}): {why}",
                case.name, case.method, case.path
            ));
        }
    }
    println!(
        "{} cases in {:?}; statuses {statuses:?}",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let after = snapshot(&app).await;
    assert_eq!(before, after, "hostile requests changed the database");
    still_serving(&app, &person, &deposit_id).await;
}
