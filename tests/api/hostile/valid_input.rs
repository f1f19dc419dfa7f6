//! Input that looks hostile but is valid (SQL and unicode in a name and an email, SQL as an
//! `Idempotency-Key`) is stored and answered as plain text.

use super::helpers::signed_in_with_cookie;
use super::SQL_NO_SPACES;
use onramp_test_support::{on_both_databases, spawn_app, Backend};
use serde_json::{json, Value};

on_both_databases!(sql_and_unicode_that_are_valid_input_are_stored_as_plain_text);

async fn sql_and_unicode_that_are_valid_input_are_stored_as_plain_text(backend: Backend) {
    let app = spawn_app(backend).await;
    // A name full of SQL and unicode; an email with SQL in it.
    let name = "Robert'); DROP TABLE users;-- 🦀 Ünïcödé \u{202e}ǝɯɐu";
    let email = "robert');drop/**/table/**/users;--@example.com";
    let (person, _) = signed_in_with_cookie(&app, email, name).await;
    let me: Value = person.me().await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(me["name"], name);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);

    // An Idempotency-Key made of SQL (printable ASCII, so it is a valid key) is just a key.
    let first = person
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("idempotency-key", SQL_NO_SPACES)
        .json(&json!({"amount": 1234}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = person
        .client
        .post(format!("{}/api/deposit", app.address))
        .header("idempotency-key", SQL_NO_SPACES)
        .json(&json!({"amount": 1234}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(
        app.db.strings("SELECT idempotency_key FROM deposits").await,
        vec![SQL_NO_SPACES.to_owned()]
    );
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM deposits").await, 1);
    assert_eq!(app.db.scalar("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(person.transactions().await.len(), 1);
}
