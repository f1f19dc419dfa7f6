//! The double-entry ledger on both databases: transfers move money between two wallets in one
//! entry, the database refuses what would overdraw a wallet, the audit names what is wrong, and
//! the migration turns the books of before (wallets and a credit ledger) into double entries.

mod common;

use common::*;
use onramp_store::domain::{DepositId, EmailKey, Settlement, TransferId, UserId};
use onramp_store::{self as store, Counterparty, HistoryItem, NewAccount, Store, TransferResult};
use onramp_test_support::{on_both_databases, Backend, TestDb};
use std::sync::Arc;

on_both_databases!(
    a_transfer_is_one_entry_that_changes_both_wallets_together,
    a_transfer_that_would_overdraw_a_wallet_is_refused_by_the_database,
    a_transfer_key_answers_once_until_its_cutoff,
    the_latest_verified_sign_in_owns_an_email_in_any_case,
    the_audit_names_what_is_wrong,
    a_credit_that_would_overflow_a_balance_is_refused,
    the_migration_turns_wallets_and_the_credit_ledger_into_double_entries,
    the_migration_gives_earlier_transfers_their_recipients_name_and_email_of_now,
);

fn applied(outcome: &TransferResult) -> (i64, i64) {
    match outcome {
        TransferResult::Applied { from, to } => (from.paise, to.paise),
        other => panic!("expected an applied transfer, got {other:?}"),
    }
}

/// Two users, the first with `paise` deposited.
async fn funded(store: &Arc<dyn Store>, paise: i64) -> (UserId, UserId) {
    let users = store
        .commit(&batch![account("asha", "Asha"), account("bilal", "Bilal")])
        .await
        .unwrap()
        .accounts;
    let (a, b) = (users[0], users[1]);
    let id = DepositId::new();
    store
        .commit(&batch![deposit(&id, a, paise, None, 2)])
        .await
        .unwrap();
    store
        .commit(&batch![settle(&id, a, paise, Settlement::Success)])
        .await
        .unwrap();
    (a, b)
}

async fn a_transfer_is_one_entry_that_changes_both_wallets_together(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let (a, b) = funded(&store, 1_000).await;
    // A deposit of Bilal's lands in the same group commit as two transfers of Asha's to him.
    let id = DepositId::new();
    store
        .commit(&batch![deposit(&id, b, 50, None, 3)])
        .await
        .unwrap();
    let outcomes = store
        .commit(&batch![
            transfer(a, b, 300, None, 5),
            settle(&id, b, 50, Settlement::Success),
            transfer(a, b, 200, None, 5),
        ])
        .await
        .unwrap()
        .transfers;
    // Both answer the balances after the batch: 1000 − 500 and 500 + 50.
    assert_eq!(applied(&outcomes[0]), (500, 550));
    assert_eq!(applied(&outcomes[1]), (500, 550));
    assert_eq!(store.balance(a).await.unwrap().paise, 500);
    assert_eq!(store.balance(b).await.unwrap().paise, 550);
    let entries = db
        .strings(
            "SELECT e.kind || ' ' || COALESCE(f.user_id, f.system) || ' -> ' || r.user_id || ' ' \
             || CAST(e.amount AS TEXT) FROM ledger_entries AS e \
             JOIN ledger_accounts AS f ON f.id = e.debit_account \
             JOIN ledger_accounts AS r ON r.id = e.credit_account ORDER BY e.id",
        )
        .await;
    // Credits are written before transfers in a batch, each kind in the order queued.
    assert_eq!(
        entries,
        vec![
            format!("deposit bank_clearing -> {a} 1000"),
            format!("deposit bank_clearing -> {b} 50"),
            format!("transfer {a} -> {b} 300"),
            format!("transfer {a} -> {b} 200"),
        ]
    );
    // The history shows each side its own kind, with the other person.
    let asha = store.history_page(a, None, 10).await.unwrap();
    let kinds: Vec<String> = asha
        .iter()
        .map(|h| match h {
            HistoryItem::Deposit(d) => format!("deposit {}", d.amount.paise()),
            HistoryItem::Withdrawal(w) => format!("withdrawal {}", w.amount.paise()),
            HistoryItem::TransferOut(t, c) => format!("out {} {}", t.amount.paise(), c.name),
            HistoryItem::TransferIn(t, c) => format!("in {} {}", t.amount.paise(), c.name),
        })
        .collect();
    assert_eq!(kinds.len(), 3);
    assert!(kinds.contains(&"out 300 Bilal".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"out 200 Bilal".to_owned()), "{kinds:?}");
    assert_eq!(kinds[2], "deposit 1000", "newest first: {kinds:?}");
    let bilal = store.history_page(b, None, 2).await.unwrap();
    assert_eq!(bilal.len(), 2);
    let (at, id) = bilal[1].key();
    let rest = store
        .history_page(b, Some((at, id.to_owned())), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "the second page holds the rest");
    assert!(bilal
        .iter()
        .chain(&rest)
        .all(|h| !matches!(h, HistoryItem::TransferOut(..))));
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
    assert_eq!((audit.transfers, audit.users_total), (2, 1_050));
}

async fn a_transfer_that_would_overdraw_a_wallet_is_refused_by_the_database(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let (a, b) = funded(&store, 1_000).await;
    // The actors never send this; the database is the last line of defence.
    let refused = store
        .commit(&batch![
            transfer(a, b, 600, None, 5),
            transfer(a, b, 600, None, 5)
        ])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM transfers").await, 0);
    assert_eq!(store.balance(a).await.unwrap().paise, 1_000);
    assert_eq!(store.balance(b).await.unwrap().paise, 0);
    assert!(store.audit().await.unwrap().is_ok());
    // One of them alone is fine.
    let ok = store
        .commit(&batch![transfer(a, b, 600, None, 6)])
        .await
        .unwrap()
        .transfers;
    assert_eq!(applied(&ok[0]), (400, 600));
}

async fn a_transfer_key_answers_once_until_its_cutoff(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let (a, b) = funded(&store, 1_000).await;
    let first = transfer(a, b, 100, Some("k"), 10);
    let outcomes = store
        .commit(&batch![
            first.clone(),
            to_someone_else(transfer(a, b, 100, Some("k"), 10)),
        ])
        .await
        .unwrap()
        .transfers;
    assert_eq!(applied(&outcomes[0]), (900, 100));
    assert_eq!(
        outcomes[1],
        TransferResult::KeyTaken,
        "the same key in the same batch moves money once"
    );
    let later = store
        .commit(&batch![to_someone_else(transfer(
            a,
            b,
            100,
            Some("k"),
            500
        ))])
        .await
        .unwrap()
        .transfers;
    assert_eq!(later[0], TransferResult::KeyTaken);
    let held = store.transfer_by_key(a, "k").await.unwrap().unwrap();
    assert_eq!((held.transfer.id, held.transfer.to), (first.id, b));
    assert_eq!(
        held.recipient, first.recipient,
        "the recipient as the first answer named them, not as a copy refused later did"
    );
    // Past the cutoff the key passes to a new transfer.
    let reused = store
        .commit(&batch![transfer(a, b, 100, Some("k"), 5_000)])
        .await
        .unwrap()
        .transfers;
    assert_eq!(applied(&reused[0]), (800, 200));
}

/// `t` with its recipient named otherwise (as if they had signed in again in between).
fn to_someone_else(mut t: store::NewTransfer) -> store::NewTransfer {
    t.recipient = Counterparty {
        name: "Someone Else".into(),
        email: "else@x.test".into(),
    };
    t
}

fn sign_in(sub: &str, email: &str, verified: bool, now: i64) -> NewAccount {
    NewAccount {
        provider: onramp_store::domain::Provider::Google,
        sub: onramp_store::domain::ProviderSub::parse(sub).unwrap(),
        email: email.into(),
        email_verified: verified,
        name: sub.into(),
        picture: String::new(),
        now,
    }
}

async fn the_latest_verified_sign_in_owns_an_email_in_any_case(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let find = |email: &str| {
        let store = store.clone();
        let key = EmailKey::of(email);
        async move { store.user_by_email(&key).await.unwrap().map(|u| u.name) }
    };
    store
        .commit(&batch![sign_in("old", "Shared@Example.com", true, 1)])
        .await
        .unwrap();
    assert_eq!(find("shared@example.COM").await.as_deref(), Some("old"));
    store
        .commit(&batch![sign_in("new", "shared@example.com", true, 2)])
        .await
        .unwrap();
    assert_eq!(find(" SHARED@example.com ").await.as_deref(), Some("new"));
    // An unverified claim on the email takes nothing over.
    store
        .commit(&batch![sign_in("claim", "shared@example.com", false, 3)])
        .await
        .unwrap();
    assert_eq!(find("shared@example.com").await.as_deref(), Some("new"));
    // The older account signs in again: it is the most recent now.
    store
        .commit(&batch![sign_in("old", "shared@example.com", true, 4)])
        .await
        .unwrap();
    assert_eq!(find("shared@example.com").await.as_deref(), Some("old"));
    assert_eq!(find("nobody@example.com").await, None);

    // Many emails in one read find what each would alone.
    store
        .commit(&batch![sign_in("other", "other@example.com", true, 5)])
        .await
        .unwrap();
    let emails = [
        "shared@example.com",
        "nobody@example.com",
        "other@example.com",
    ];
    let keys: Vec<EmailKey> = emails.iter().map(|e| EmailKey::of(e)).collect();
    let mut found: Vec<(String, String)> = (store.users_by_email(&keys).await.unwrap())
        .into_iter()
        .map(|u| (u.email_key.unwrap().as_str().to_owned(), u.name))
        .collect();
    found.sort();
    let pair = |e: &str, n: &str| (e.to_owned(), n.to_owned());
    assert_eq!(
        found,
        [
            pair("other@example.com", "other"),
            pair("shared@example.com", "old")
        ]
    );
    assert!(store.users_by_email(&[]).await.unwrap().is_empty());
    // Two accounts signed in with one email at the same instant: both reads pick the same one.
    store
        .commit(&batch![
            sign_in("tie-a", "tie@example.com", true, 9),
            sign_in("tie-b", "tie@example.com", true, 9)
        ])
        .await
        .unwrap();
    let tie = EmailKey::of("tie@example.com");
    let alone = store.user_by_email(&tie).await.unwrap().unwrap();
    let together = store.users_by_email(&[tie.clone(), keys[0].clone()]).await;
    let together: Vec<_> = together.unwrap().into_iter().map(|u| u.id).collect();
    assert!(
        together.contains(&alone.id),
        "{together:?} against {alone:?}"
    );
    assert_eq!(together.len(), 2);

    // And many ids in one read find the users that exist, as one at a time would.
    let old = store.user_by_email(&keys[0]).await.unwrap().unwrap();
    let other = store.user_by_email(&keys[2]).await.unwrap().unwrap();
    let mut ids: Vec<UserId> = store
        .users(&[other.id, UserId::new(), old.id])
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    ids.sort();
    let mut expected = vec![old.id, other.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(store.users(&[old.id]).await.unwrap(), vec![old]);
}

async fn the_audit_names_what_is_wrong(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let (a, b) = funded(&store, 1_000).await;
    store
        .commit(&batch![transfer(a, b, 300, None, 5)])
        .await
        .unwrap();
    let clean = store.audit().await.unwrap();
    assert!(clean.is_ok(), "{clean}");
    assert_eq!(
        (
            clean.entries,
            clean.transfers,
            clean.deposited,
            clean.users_total
        ),
        (2, 1, 1_000, 1_000)
    );

    // A balance changed behind the ledger's back.
    db.execute(&format!(
        "UPDATE ledger_accounts SET balance = balance + 5 WHERE user_id = '{b}'"
    ))
    .await
    .unwrap();
    // A deposit marked successful without its credit.
    let uncredited = DepositId::new();
    store
        .commit(&batch![deposit(&uncredited, a, 70, None, 6)])
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE deposits SET status = 'success' WHERE id = '{uncredited}'"
    ))
    .await
    .unwrap();
    let report = store.audit().await.unwrap();
    assert!(!report.is_ok());
    let text = report.to_string();
    for wanted in [
        "an account whose balance is not the sum of its entries",
        &b.to_string(),
        "a deposit not credited exactly as it succeeded",
        uncredited.as_str(),
        "do not add up to zero",
        "successful deposits total 1070 paise",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }
}

/// The schema of before this change, migrated to one version short of the ledger's migration.
async fn database_before_the_ledger(backend: Backend, url: &str) -> TestDb {
    database_before(backend, url, "double entry").await
}

/// A database migrated to one version short of the migration `described`.
async fn database_before(backend: Backend, url: &str, described: &str) -> TestDb {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    let version = migrator
        .migrations
        .iter()
        .find(|m| m.description.contains(described))
        .unwrap_or_else(|| panic!("a migration described {described:?}"))
        .version;
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    match backend {
        Backend::Sqlite => {
            let options = url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run(&pool).await.unwrap();
            TestDb::Sqlite(pool)
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            TestDb::Postgres(pool)
        }
    }
}

async fn the_migration_turns_wallets_and_the_credit_ledger_into_double_entries(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let old = database_before_the_ledger(backend, &url).await;
    let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
    let (d1, d2, d3, d4, d5) = (
        DepositId::new(),
        DepositId::new(),
        DepositId::new(),
        DepositId::new(),
        DepositId::new(),
    );
    for sql in [
        format!("INSERT INTO users (id, email, name, created_at) VALUES ('{a}', 'a@x.test', 'A', 1), ('{b}', 'b@x.test', 'B', 2), ('{c}', 'c@x.test', 'C', 3)"),
        format!("INSERT INTO wallets (user_id, balance, updated_at, last_entry) VALUES ('{a}', 700, 5, 3), ('{b}', 200, 5, 2)"),
        format!("INSERT INTO deposits (id, user_id, amount, currency, status, created_at, updated_at) VALUES \
                 ('{d1}', '{a}', 300, 'INR', 'success', 1, 2), ('{d2}', '{b}', 200, 'INR', 'success', 1, 2), \
                 ('{d3}', '{a}', 400, 'INR', 'success', 1, 2), ('{d4}', '{b}', 999, 'INR', 'processing', 1, 1), \
                 ('{d5}', '{c}', 50, 'INR', 'success', 1, 2)"),
        format!("INSERT INTO ledger (id, user_id, deposit_id, amount, balance_after, created_at) VALUES \
                 (1, '{a}', '{d1}', 300, 300, 2), (2, '{b}', '{d2}', 200, 200, 3), (3, '{a}', '{d3}', 400, 700, 4), \
                 (4, '{c}', '{d5}', 50, 50, 5)"),
    ] {
        old.execute(&sql).await.unwrap();
    }
    old.close().await;

    // The app opens it: the rest of the migrations run.
    let store = store::connect(&url, 2).await.unwrap();
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
    assert_eq!(
        (
            audit.accounts,
            audit.entries,
            audit.deposited,
            audit.users_total
        ),
        // Three wallets, bank clearing and payouts in flight.
        (5, 4, 950, 950)
    );
    // C had no wallet row (the schema of before allowed it): C's credit is kept all the same.
    assert_eq!(store.balance(c).await.unwrap().paise, 50);
    let balance = store.balance(a).await.unwrap();
    assert_eq!(
        (balance.paise, balance.entry),
        (700, 3),
        "the last entry keeps its id"
    );
    let db = TestDb::connect(&url).await;
    assert_eq!(
        db.scalar("SELECT balance FROM ledger_accounts WHERE system = 'bank_clearing'")
            .await,
        -950
    );
    // Nobody can be found by an email whose verification we never saw, until they sign in.
    assert!(store
        .user_by_email(&EmailKey::of("a@x.test"))
        .await
        .unwrap()
        .is_none());

    // The books go on from there: the processing deposit lands, then B pays A.
    let landed = store
        .commit(&batch![settle(&d4, b, 999, Settlement::Success)])
        .await
        .unwrap()
        .settlements;
    let after = settled(&landed[0]).unwrap();
    assert_eq!(after.paise, 1_199);
    assert!(after.entry > 4, "new entries follow the migrated ones");
    store
        .commit(&batch![transfer(b, a, 1_199, None, 9)])
        .await
        .unwrap();
    assert_eq!(store.balance(a).await.unwrap().paise, 1_899);
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
}

/// Transfers written before transfers kept their recipient's name and email are given the
/// recipient's of the migration's time (the nearest there is), so a key given again still finds
/// an answer.
async fn the_migration_gives_earlier_transfers_their_recipients_name_and_email_of_now(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    let old = database_before(backend, &url, "transfer recipient").await;
    let (a, b) = (UserId::new(), UserId::new());
    let id = TransferId::new();
    for sql in [
        format!("INSERT INTO users (id, email, name, created_at) VALUES ('{a}', 'a@x.test', 'A', 1), ('{b}', 'Bee@X.test', 'Bee', 2)"),
        format!("INSERT INTO transfers (id, from_user, to_user, amount, currency, idempotency_key, created_at) \
                 VALUES ('{id}', '{a}', '{b}', 300, 'INR', 'k', 7), ('{}', '{a}', '{b}', 200, 'INR', NULL, 8)", TransferId::new()),
    ] {
        old.execute(&sql).await.unwrap();
    }
    old.close().await;

    let store = store::connect(&url, 2).await.unwrap();
    let held = store.transfer_by_key(a, "k").await.unwrap().unwrap();
    assert_eq!((held.transfer.id, held.transfer.amount.paise()), (id, 300));
    assert_eq!(
        held.recipient,
        Counterparty {
            name: "Bee".into(),
            email: "Bee@X.test".into()
        }
    );
    let db = TestDb::connect(&url).await;
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM transfers WHERE to_name = 'Bee' AND to_email = 'Bee@X.test'"
        )
        .await,
        2,
        "every earlier transfer, with a key or not"
    );
}

/// Balances are checked arithmetic in the database too: SQLite would turn an overflowing sum
/// into a float (its CHECK on the type refuses it), PostgreSQL's BIGINT refuses by itself. The
/// batch fails and nothing changes. (Amounts are bounded far below this; a corrupted or hostile
/// balance must still not wrap or lose precision.)
async fn a_credit_that_would_overflow_a_balance_is_refused(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let (a, _) = funded(&store, 1_000).await;
    let near = i64::MAX - 10;
    db.execute(&format!(
        "UPDATE ledger_accounts SET balance = {near} WHERE user_id = '{a}'"
    ))
    .await
    .unwrap();
    let id = DepositId::new();
    store
        .commit(&batch![deposit(&id, a, 100, None, 3)])
        .await
        .unwrap();
    let refused = store
        .commit(&batch![settle(&id, a, 100, Settlement::Success)])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(store.balance(a).await.unwrap().paise, near);
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM ledger_entries WHERE ref = '{id}'"
        ))
        .await,
        0
    );
}
