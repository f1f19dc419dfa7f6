//! The storage layer alone, on both databases: a group commit holding every kind of change is
//! written as one set of statements per kind, and each change still gets its own outcome.

use onramp_store::domain::{
    Amount, BankToken, DepositId, DepositStatus, ProviderSub, SessionToken, Settlement, UserId,
};
use onramp_store::{
    self as store, Balance, DepositInsert, NewAccount, NewDeposit, OpOutcome, SettleDeposit,
    SettleResult, Store, WriteOp,
};
use onramp_test_support::{on_both_databases, Backend, TestDb};
use std::sync::Arc;

on_both_databases!(
    one_batch_of_every_kind_of_change,
    credits_to_one_wallet_in_one_batch_carry_running_balances,
    an_idempotency_key_passes_to_a_new_deposit_only_after_the_cutoff,
);

struct Fixture {
    store: Arc<dyn Store>,
    db: TestDb,
    _dir: tempfile::TempDir,
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    Fixture {
        store: store::connect(&url, 4).await.unwrap(),
        db: TestDb::connect(&url).await,
        _dir: dir,
    }
}

fn account(sub: &str, name: &str) -> WriteOp {
    WriteOp::UpsertAccount(NewAccount {
        provider: onramp_store::domain::Provider::Google,
        sub: ProviderSub::parse(sub).unwrap(),
        email: format!("{sub}@example.com"),
        name: name.into(),
        picture: String::new(),
        now: 1,
    })
}

fn user(outcome: &OpOutcome) -> UserId {
    match outcome {
        OpOutcome::User(u) => *u,
        other => panic!("expected a user, got {other:?}"),
    }
}

/// The balance a settlement's commit answered: `Some` for a credit, `None` for a failure.
fn settled(outcome: &OpOutcome) -> Option<Balance> {
    match outcome {
        OpOutcome::Settle(SettleResult::Applied(balance)) => *balance,
        other => panic!("expected a settlement, got {other:?}"),
    }
}

fn paise(p: i64) -> Amount {
    Amount::parse(p, i64::MAX).unwrap()
}

fn deposit(id: &DepositId, user: UserId, amount: i64, key: Option<&str>, now: i64) -> WriteOp {
    WriteOp::InsertDeposit(NewDeposit {
        id: id.clone(),
        user_id: user,
        amount: paise(amount),
        currency: onramp_store::domain::Currency::Inr,
        idempotency_key: key.map(str::to_owned),
        key_cutoff: now - 1000,
        now,
        first_check_at: now + 60_000,
    })
}

fn order(id: &DepositId) -> WriteOp {
    WriteOp::AttachBankOrder {
        id: id.clone(),
        token: BankToken::parse(&format!("bank_session_{id}")).unwrap(),
        pay_url: format!("http://bank/pay?token=bank_session_{id}"),
        now: 3,
    }
}

fn settle(id: &DepositId, user: UserId, amount: i64, outcome: Settlement) -> WriteOp {
    WriteOp::Settle(SettleDeposit {
        deposit_id: id.clone(),
        user_id: user,
        amount: paise(amount),
        outcome,
        now: 4,
    })
}

async fn status(store: &Arc<dyn Store>, id: &DepositId) -> DepositStatus {
    store.deposit(id).await.unwrap().unwrap().status
}

/// The deposits reconciliation would ask the bank about (its schedule, less what is settled).
async fn pending(store: &Arc<dyn Store>) -> Vec<DepositId> {
    let mut ids: Vec<DepositId> = store
        .due_deposits(i64::MAX, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|due| due.deposit.status == DepositStatus::Processing)
        .map(|due| due.deposit.id)
        .collect();
    ids.sort();
    ids
}

async fn one_batch_of_every_kind_of_change(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;

    // Two people sign in for the first time; one of them twice in the same batch.
    let outcomes = store
        .commit_batch(&[
            account("asha", "Asha"),
            account("ravi", "Ravi"),
            account("asha", "Asha K"),
        ])
        .await
        .unwrap();
    let (asha, ravi) = (user(&outcomes[0]), user(&outcomes[1]));
    assert_ne!(asha, ravi);
    assert_eq!(user(&outcomes[2]), asha, "the same sub is the same user");
    assert_eq!(store.user(asha).await.unwrap().unwrap().name, "Asha K");

    // Sessions and deposits, two of Asha's under one idempotency key.
    let (s1, s2) = (SessionToken::generate(), SessionToken::generate());
    let ids: Vec<DepositId> = (0..4).map(|_| DepositId::new()).collect();
    let outcomes = store
        .commit_batch(&[
            WriteOp::InsertSession {
                hash: s1.hash(),
                user_id: asha,
                created_at: 2,
                expires_at: 1_000,
            },
            deposit(&ids[0], asha, 100, Some("key-1"), 2),
            deposit(&ids[1], asha, 250, Some("key-1"), 2),
            deposit(&ids[2], ravi, 700, None, 2),
            deposit(&ids[3], ravi, 900, None, 2),
            WriteOp::InsertSession {
                hash: s2.hash(),
                user_id: ravi,
                created_at: 2,
                expires_at: 1_000,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            OpOutcome::Done,
            OpOutcome::Deposit(DepositInsert::Inserted),
            OpOutcome::Deposit(DepositInsert::KeyTaken),
            OpOutcome::Deposit(DepositInsert::Inserted),
            OpOutcome::Deposit(DepositInsert::Inserted),
            OpOutcome::Done
        ]
    );
    assert!(store.deposit(&ids[1]).await.unwrap().is_none());
    let mut waiting = vec![ids[0].clone(), ids[2].clone(), ids[3].clone()];
    waiting.sort();
    assert_eq!(
        pending(&store).await,
        waiting,
        "new deposits wait for the bank"
    );
    assert_eq!(
        store
            .deposit_by_key(asha, "key-1")
            .await
            .unwrap()
            .unwrap()
            .id,
        ids[0]
    );

    // Bank orders, and a session used twice.
    let outcomes = store
        .commit_batch(&[
            order(&ids[0]),
            WriteOp::TouchSession {
                hash: s1.hash(),
                last_seen_at: 9,
            },
            order(&ids[2]),
            WriteOp::TouchSession {
                hash: s1.hash(),
                last_seen_at: 7,
            },
            order(&ids[3]),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![OpOutcome::Done; 5]);
    assert_eq!(
        store
            .session(&s1.hash())
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        9,
        "the latest use counts"
    );
    let by_token = store
        .deposit_by_token(&BankToken::parse(&format!("bank_session_{}", ids[2])).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_token.id, ids[2]);
    assert_eq!(
        by_token.pay_url.as_deref(),
        Some(format!("http://bank/pay?token=bank_session_{}", ids[2]).as_str())
    );

    // Webhooks: a success each, a decline, a duplicate in the same batch; Ravi logs out.
    let outcomes = store
        .commit_batch(&[
            settle(&ids[0], asha, 100, Settlement::Success),
            settle(&ids[2], ravi, 700, Settlement::Success),
            WriteOp::DeleteSession { hash: s2.hash() },
            settle(&ids[3], ravi, 900, Settlement::Failure),
            settle(&ids[0], asha, 100, Settlement::Success),
        ])
        .await
        .unwrap();
    assert_eq!(settled(&outcomes[0]).unwrap().paise, 100);
    assert_eq!(settled(&outcomes[1]).unwrap().paise, 700);
    assert_eq!(outcomes[2], OpOutcome::Done);
    assert_eq!(settled(&outcomes[3]), None, "a failure credits nothing");
    assert_eq!(outcomes[4], OpOutcome::Settle(SettleResult::NotProcessing));
    assert_eq!(status(&store, &ids[0]).await, DepositStatus::Success);
    assert_eq!(status(&store, &ids[2]).await, DepositStatus::Success);
    assert_eq!(status(&store, &ids[3]).await, DepositStatus::Failure);
    assert_eq!(
        store.balance(asha).await.unwrap(),
        settled(&outcomes[0]).unwrap()
    );
    assert_eq!(
        store.balance(ravi).await.unwrap(),
        settled(&outcomes[1]).unwrap()
    );
    assert!(store.session(&s2.hash()).await.unwrap().is_none());
    assert!(store.session(&s1.hash()).await.unwrap().is_some());
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ledger").await, 2);

    // A later contradicting or repeated settlement changes nothing.
    let outcomes = store
        .commit_batch(&[
            settle(&ids[3], ravi, 900, Settlement::Success),
            settle(&ids[2], ravi, 700, Settlement::Success),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![OpOutcome::Settle(SettleResult::NotProcessing); 2]
    );
    assert_eq!(store.balance(ravi).await.unwrap().paise, 700);
    assert_eq!(status(&store, &ids[3]).await, DepositStatus::Failure);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ledger").await, 2);

    // Expired sessions are purged along with other changes.
    let outcomes = store
        .commit_batch(&[
            WriteOp::PurgeSessions {
                now: 2_000,
                idle_ms: 10_000,
            },
            account("meera", "Meera"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes[0], OpOutcome::Done);
    user(&outcomes[1]);
    assert!(store.session(&s1.hash()).await.unwrap().is_none());
}

async fn credits_to_one_wallet_in_one_batch_carry_running_balances(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let users: Vec<UserId> = store
        .commit_batch(&[account("a", "A"), account("b", "B")])
        .await
        .unwrap()
        .iter()
        .map(user)
        .collect();
    let ids: Vec<DepositId> = (0..6).map(|_| DepositId::new()).collect();
    let amount = |i: usize| 100 * (i as i64 + 1);
    let owner = |i: usize| users[i % 2];
    let inserts: Vec<WriteOp> = (0..6)
        .map(|i| deposit(&ids[i], owner(i), amount(i), None, 2))
        .collect();
    store.commit_batch(&inserts).await.unwrap();

    // A earlier had 100 (deposit 0); now deposits 2 and 4 land together, with 1, 3 and 5 of B.
    store
        .commit_batch(&[settle(&ids[0], users[0], 100, Settlement::Success)])
        .await
        .unwrap();
    let batch: Vec<WriteOp> = [4, 1, 2, 5, 3]
        .iter()
        .map(|&i| settle(&ids[i], owner(i), amount(i), Settlement::Success))
        .collect();
    let outcomes = store.commit_batch(&batch).await.unwrap();
    // Each commit answers the balance after its own credit, in batch order.
    let after: Vec<i64> = outcomes.iter().map(|o| settled(o).unwrap().paise).collect();
    assert_eq!(
        after,
        vec![100 + 500, 200, 100 + 500 + 300, 200 + 600, 200 + 600 + 400]
    );

    // Each ledger entry, in the order written, with the balance after it.
    let rows = db
        .strings(
            "SELECT deposit_id || ' ' || CAST(amount AS TEXT) || ' ' || CAST(balance_after AS TEXT) \
             FROM ledger ORDER BY id",
        )
        .await;
    let expected: Vec<String> = [
        (0, 100),
        (4, 100 + 500),
        (1, 200),
        (2, 100 + 500 + 300),
        (5, 200 + 600),
        (3, 200 + 600 + 400),
    ]
    .iter()
    .map(|(i, after)| format!("{} {} {after}", ids[*i], amount(*i)))
    .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        store.balance(users[0]).await.unwrap(),
        settled(&outcomes[2]).unwrap(),
        "the balance read back is the last credit's, entry and all"
    );
    assert_eq!(
        store.balance(users[1]).await.unwrap(),
        settled(&outcomes[4]).unwrap()
    );
    for u in &users {
        let totals = store.ledger_totals(*u).await.unwrap();
        assert_eq!(Some(totals.sum), totals.last_balance_after);
        assert_eq!(totals.sum, store.balance(*u).await.unwrap().paise);
    }
}

async fn an_idempotency_key_passes_to_a_new_deposit_only_after_the_cutoff(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let asha = user(&store.commit_batch(&[account("a", "A")]).await.unwrap()[0]);
    let (first, early, late) = (DepositId::new(), DepositId::new(), DepositId::new());
    store
        .commit_batch(&[deposit(&first, asha, 100, Some("k"), 10_000)])
        .await
        .unwrap();
    // 500 ms later the key is still held (the cutoff is 1000 ms back): nothing is written.
    let outcomes = store
        .commit_batch(&[deposit(&early, asha, 100, Some("k"), 10_500)])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![OpOutcome::Deposit(DepositInsert::KeyTaken)]);
    assert!(store.deposit(&early).await.unwrap().is_none());
    // Past the cutoff the new deposit takes the key over.
    let outcomes = store
        .commit_batch(&[deposit(&late, asha, 100, Some("k"), 11_500)])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![OpOutcome::Deposit(DepositInsert::Inserted)]);
    assert_eq!(
        store.deposit_by_key(asha, "k").await.unwrap().unwrap().id,
        late
    );
    assert!(store.deposit(&first).await.unwrap().is_some());
}

/// The tables and columns each schema has once migrated.
async fn columns(backend: Backend) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    store::connect(&url, 1).await.unwrap();
    let db = TestDb::connect(&url).await;
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT t.name || '.' || c.name FROM sqlite_master AS t, pragma_table_info(t.name) AS c \
             WHERE t.type = 'table' AND t.name NOT LIKE '\\_%' ESCAPE '\\' AND t.name NOT LIKE 'sqlite%' \
             ORDER BY 1"
        }
        Backend::Postgres => {
            "SELECT table_name || '.' || column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%' ORDER BY 1"
        }
    };
    db.strings(sql).await
}

/// Both backends' migrations make the same tables with the same columns, so that one query
/// (reads.rs) serves both and a change to one schema cannot be forgotten in the other.
#[actix_web::test]
async fn the_two_schemas_have_the_same_tables_and_columns() {
    let sqlite = columns(Backend::Sqlite).await;
    let postgres = columns(Backend::Postgres).await;
    assert!(
        sqlite.contains(&"pending_deposits.next_check_at".to_owned()),
        "{sqlite:?}"
    );
    assert_eq!(sqlite, postgres);
}
