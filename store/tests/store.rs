//! The storage layer alone, on both databases: a group commit holding every kind of change is
//! written as one set of statements per kind, and each change still gets its own outcome.

mod common;

use common::*;
use onramp_store::domain::{
    BankToken, DepositId, DepositStatus, SessionToken, Settlement, WithdrawalId,
};
use onramp_store::{
    self as store, Batch, DepositInsert, EndSession, NewSession, NewWithdrawal, Outcomes, Purge,
    SettlePayout, SettleResult, StateUse, TouchSession, UseSignInState,
};
use onramp_test_support::{on_both_databases, Backend, TestDb};

on_both_databases!(
    one_batch_of_every_kind_of_change,
    credits_to_one_wallet_in_one_batch_answer_its_balance_after_the_batch,
    an_idempotency_key_passes_to_a_new_deposit_only_after_the_cutoff,
);

async fn one_batch_of_every_kind_of_change(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;

    // Two people sign in for the first time; one of them twice in the same batch.
    let users = store
        .commit(&batch![
            account("asha", "Asha"),
            account("ravi", "Ravi"),
            account("asha", "Asha K"),
        ])
        .await
        .unwrap()
        .accounts;
    let (asha, ravi) = (users[0], users[1]);
    assert_ne!(asha, ravi);
    assert_eq!(users[2], asha, "the same sub is the same user");
    assert_eq!(store.user(asha).await.unwrap().unwrap().name, "Asha K");

    // Sessions and deposits, two of Asha's under one idempotency key.
    let (s1, s2) = (SessionToken::generate(), SessionToken::generate());
    let ids: Vec<DepositId> = (0..4).map(|_| DepositId::new()).collect();
    let session = |token: &SessionToken, user_id| NewSession {
        hash: token.hash(),
        user_id,
        created_at: 2,
        expires_at: 1_000,
    };
    let outcomes = store
        .commit(&batch![
            session(&s1, asha),
            deposit(&ids[0], asha, 100, Some("key-1"), 2),
            deposit(&ids[1], asha, 250, Some("key-1"), 2),
            deposit(&ids[2], ravi, 700, None, 2),
            deposit(&ids[3], ravi, 900, None, 2),
            session(&s2, ravi),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        Outcomes {
            deposits: vec![
                DepositInsert::Inserted,
                DepositInsert::KeyTaken,
                DepositInsert::Inserted,
                DepositInsert::Inserted
            ],
            ..Outcomes::default()
        }
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
    let touch = |last_seen_at| TouchSession {
        hash: s1.hash(),
        last_seen_at,
    };
    let outcomes = store
        .commit(&batch![
            order(&ids[0]),
            touch(9),
            order(&ids[2]),
            touch(7),
            order(&ids[3]),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, Outcomes::default(), "nothing to answer but done");
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
        .commit(&batch![
            settle(&ids[0], asha, 100, Settlement::Success),
            settle(&ids[2], ravi, 700, Settlement::Success),
            EndSession { hash: s2.hash() },
            settle(&ids[3], ravi, 900, Settlement::Failure),
            settle(&ids[0], asha, 100, Settlement::Success),
        ])
        .await
        .unwrap()
        .settlements;
    assert_eq!(settled(&outcomes[0]).unwrap().paise, 100);
    assert_eq!(settled(&outcomes[1]).unwrap().paise, 700);
    assert_eq!(settled(&outcomes[2]), None, "a failure credits nothing");
    assert_eq!(outcomes[3], SettleResult::NotProcessing);
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
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ledger_entries").await, 2);

    // A later contradicting or repeated settlement changes nothing.
    let outcomes = store
        .commit(&batch![
            settle(&ids[3], ravi, 900, Settlement::Success),
            settle(&ids[2], ravi, 700, Settlement::Success),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.settlements, vec![SettleResult::NotProcessing; 2]);
    assert_eq!(store.balance(ravi).await.unwrap().paise, 700);
    assert_eq!(status(&store, &ids[3]).await, DepositStatus::Failure);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM ledger_entries").await, 2);

    // A sign-in's state is fresh once, also when it comes twice in one batch.
    let state = |hash: &str, expires_at| UseSignInState {
        hash: hash.into(),
        expires_at,
    };
    let outcomes = store
        .commit(&batch![
            state("s1", 1_500),
            state("s1", 1_500),
            state("s2", 3_000)
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes.sign_in_states,
        vec![StateUse::Fresh, StateUse::Used, StateUse::Fresh]
    );
    let again = store.commit(&batch![state("s2", 3_000)]).await.unwrap();
    assert_eq!(again.sign_in_states, vec![StateUse::Used]);

    // Expired sessions and sign-in states are purged along with other changes.
    let outcomes = store
        .commit(&batch![
            Purge {
                now: 2_000,
                idle_ms: 10_000,
            },
            account("meera", "Meera"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes.accounts.len(), 1);
    assert!(store.session(&s1.hash()).await.unwrap().is_none());
    assert_eq!(
        db.strings("SELECT state_hash FROM sign_in_states").await,
        vec!["s2".to_owned()],
        "the state past its time is gone, the other stays"
    );
}

async fn credits_to_one_wallet_in_one_batch_answer_its_balance_after_the_batch(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let users = store
        .commit(&batch![account("a", "A"), account("b", "B")])
        .await
        .unwrap()
        .accounts;
    let ids: Vec<DepositId> = (0..6).map(|_| DepositId::new()).collect();
    let amount = |i: usize| 100 * (i as i64 + 1);
    let owner = |i: usize| users[i % 2];
    let mut inserts = Batch::default();
    for (i, id) in ids.iter().enumerate() {
        inserts.add(deposit(id, owner(i), amount(i), None, 2));
    }
    store.commit(&inserts).await.unwrap();

    // A earlier had 100 (deposit 0); now deposits 2 and 4 land together, with 1, 3 and 5 of B.
    let first = store
        .commit(&batch![settle(&ids[0], users[0], 100, Settlement::Success)])
        .await
        .unwrap()
        .settlements;
    let mut batch = Batch::default();
    for i in [4, 1, 2, 5, 3] {
        batch.add(settle(&ids[i], owner(i), amount(i), Settlement::Success));
    }
    let outcomes = store.commit(&batch).await.unwrap().settlements;
    // Each credit answers its wallet's balance after the batch, which includes it, with the
    // last entry of that wallet in the batch: newer than anything before it.
    let after: Vec<i64> = outcomes.iter().map(|o| settled(o).unwrap().paise).collect();
    let (a, b) = (100 + 300 + 500, 200 + 400 + 600);
    assert_eq!(after, vec![a, b, a, b, b]);
    assert!(settled(&outcomes[0]).unwrap().entry > settled(&first[0]).unwrap().entry);

    // Each ledger entry, in the order written: from bank clearing to the depositor's wallet.
    let rows = db
        .strings(
            "SELECT e.ref || ' ' || CAST(e.amount AS TEXT) || ' ' || c.system || ' ' || a.user_id \
             FROM ledger_entries AS e \
             JOIN ledger_accounts AS a ON a.id = e.credit_account \
             JOIN ledger_accounts AS c ON c.id = e.debit_account ORDER BY e.id",
        )
        .await;
    let expected: Vec<String> = [0, 4, 1, 2, 5, 3]
        .iter()
        .map(|&i| format!("{} {} bank_clearing {}", ids[i], amount(i), owner(i)))
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        store.balance(users[0]).await.unwrap(),
        settled(&outcomes[2]).unwrap(),
        "the balance read back is the batch's, entry and all"
    );
    assert_eq!(
        store.balance(users[1]).await.unwrap(),
        settled(&outcomes[4]).unwrap()
    );
    for u in &users {
        let totals = store.ledger_totals(*u).await.unwrap();
        assert_eq!(totals.sum, totals.balance);
        assert_eq!(totals.sum, store.balance(*u).await.unwrap().paise);
    }
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
    assert_eq!((audit.users_total, audit.all_accounts), (a + b, 0));
}

async fn an_idempotency_key_passes_to_a_new_deposit_only_after_the_cutoff(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let asha = store
        .commit(&batch![account("a", "A")])
        .await
        .unwrap()
        .accounts[0];
    let (first, early, late) = (DepositId::new(), DepositId::new(), DepositId::new());
    store
        .commit(&batch![deposit(&first, asha, 100, Some("k"), 10_000)])
        .await
        .unwrap();
    // 500 ms later the key is still held (the cutoff is 1000 ms back): nothing is written.
    let outcomes = store
        .commit(&batch![deposit(&early, asha, 100, Some("k"), 10_500)])
        .await
        .unwrap();
    assert_eq!(outcomes.deposits, vec![DepositInsert::KeyTaken]);
    assert!(store.deposit(&early).await.unwrap().is_none());
    // Past the cutoff the new deposit takes the key over.
    let outcomes = store
        .commit(&batch![deposit(&late, asha, 100, Some("k"), 11_500)])
        .await
        .unwrap();
    assert_eq!(outcomes.deposits, vec![DepositInsert::Inserted]);
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
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%' \
             AND table_name NOT LIKE 'cluster\\_%' AND table_name <> 'session_ends' ORDER BY 1"
        }
    };
    db.strings(sql).await
}

/// Both backends' migrations make the same tables with the same columns, so that one query
/// (reads.rs) serves both and a change to one schema cannot be forgotten in the other. The
/// lease tables (`cluster_*`) and the list of logouts for the other processes (`session_ends`)
/// are PostgreSQL's alone: a SQLite database has one process.
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

/// One mixed group commit (sign-ins, settlements both ways, transfers both ways, a sign-in
/// state, a session) written on each database after the same history: the two ledgers agree
/// row by row (entry ids, kinds, refs, accounts by their owners' names, amounts), and so do the
/// balances and every answer.
#[actix_web::test]
async fn one_mixed_batch_writes_the_same_ledger_on_both_databases() {
    let deposits: Vec<DepositId> = (0..4).map(|_| DepositId::new()).collect();
    let withdrawals: Vec<WithdrawalId> = (0..3).map(|_| WithdrawalId::new()).collect();
    let transfers = [
        onramp_store::domain::TransferId::new(),
        onramp_store::domain::TransferId::new(),
    ];
    let mut ledgers = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Fixture { store, db, _dir } = fixture(backend).await;
        let users = store
            .commit(&batch![account("asha", "Asha"), account("bilal", "Bilal")])
            .await
            .unwrap()
            .accounts;
        let (asha, bilal) = (users[0], users[1]);
        let owners = [asha, asha, bilal];
        let mut inserts = Batch::default();
        for (id, owner) in deposits.iter().zip(owners) {
            inserts.add(deposit(id, owner, 700, None, 2));
        }
        store.commit(&inserts).await.unwrap();
        // Bilal has two withdrawals waiting for the bank, paid from a deposit of before.
        let before = &deposits[3];
        store
            .commit(&batch![deposit(before, bilal, 900, None, 2)])
            .await
            .unwrap();
        store
            .commit(&batch![settle(before, bilal, 900, Settlement::Success)])
            .await
            .unwrap();
        let withdraw = |i: usize, user, paise| NewWithdrawal {
            id: withdrawals[i].clone(),
            user_id: user,
            amount: common::paise(paise),
            currency: onramp_store::domain::Currency::Inr,
            idempotency_key: None,
            key_cutoff: 0,
            now: 3,
            first_check_at: 60_000,
        };
        let ends = |i: usize, paise, outcome| SettlePayout {
            withdrawal_id: withdrawals[i].clone(),
            user_id: bilal,
            amount: common::paise(paise),
            outcome,
            // The failed one's request was refused: both record it alike.
            refused_request: i == 1,
            now: 6,
        };
        store
            .commit(&batch![withdraw(0, bilal, 200), withdraw(1, bilal, 100)])
            .await
            .unwrap();
        let mut to_bilal = transfer(asha, bilal, 300, Some("k"), 5);
        to_bilal.id = transfers[0].clone();
        let mut to_asha = transfer(bilal, asha, 50, None, 5);
        to_asha.id = transfers[1].clone();
        let outcomes = store
            .commit(&batch![
                settle(&deposits[0], asha, 700, Settlement::Success),
                account("chitra", "Chitra"),
                to_bilal,
                settle(&deposits[1], asha, 700, Settlement::Failure),
                UseSignInState {
                    hash: "state".into(),
                    expires_at: 9,
                },
                to_asha,
                ends(1, 100, Settlement::Failure),
                withdraw(2, asha, 150),
                settle(&deposits[2], bilal, 700, Settlement::Success),
                ends(0, 200, Settlement::Success),
                NewSession {
                    hash: SessionToken::generate().hash(),
                    user_id: bilal,
                    created_at: 5,
                    expires_at: 50,
                },
            ])
            .await
            .unwrap();
        let ledger = db
            .strings(
                "SELECT CAST(e.id AS TEXT) || ' ' || e.kind || ' ' || e.ref || ' ' \
                 || COALESCE(du.name, d.system) || ' -> ' || COALESCE(cu.name, c.system) || ' ' \
                 || CAST(e.amount AS TEXT) \
                 FROM ledger_entries AS e \
                 JOIN ledger_accounts AS d ON d.id = e.debit_account \
                 LEFT JOIN users AS du ON du.id = d.user_id \
                 JOIN ledger_accounts AS c ON c.id = e.credit_account \
                 LEFT JOIN users AS cu ON cu.id = c.user_id ORDER BY e.id",
            )
            .await;
        let balances = db
            .strings(
                "SELECT COALESCE(u.name, a.system) || ' ' || CAST(a.balance AS TEXT) || ' ' \
                 || CAST(a.last_entry AS TEXT) FROM ledger_accounts AS a \
                 LEFT JOIN users AS u ON u.id = a.user_id ORDER BY 1",
            )
            .await;
        let withdrawn = db
            .strings(
                "SELECT id || ' ' || status || ' ' || COALESCE(first_answer, '-') \
                 FROM withdrawals ORDER BY id",
            )
            .await;
        let audit = store.audit().await.unwrap();
        assert!(audit.is_ok(), "{backend:?}: {audit}");
        ledgers.push((
            ledger,
            balances,
            withdrawn,
            outcomes.settlements,
            outcomes.transfers,
            outcomes.sign_in_states,
            outcomes.withdrawals,
            outcomes.payout_settlements,
        ));
    }
    let (sqlite, postgres) = (&ledgers[0], &ledgers[1]);
    assert_eq!(
        sqlite.0.len(),
        3 + 7,
        "a credit and two withdrawals before; then two credits, two transfers, a withdrawal \
         and two payouts' ends: {:?}",
        sqlite.0
    );
    assert_eq!(sqlite, postgres);
}

/// SQLite copies the WAL back into the database file in the background: within a second of a
/// few hundred commits, far fewer pages than the writer's own checkpoint waits for, the file
/// holds every page of the database.
#[tokio::test]
async fn sqlite_copies_its_wal_into_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let url = format!("sqlite://{}", path.display());
    let store = store::connect(&url, 2).await.unwrap();
    for i in 0..300 {
        let sub = format!("person-{i}");
        store.commit(&batch![account(&sub, &sub)]).await.unwrap();
    }
    let db = TestDb::connect(&url).await;
    let pages = db
        .scalar("SELECT page_count FROM pragma_page_count()")
        .await;
    let page_size = db.scalar("SELECT page_size FROM pragma_page_size()").await;
    let mut waited = std::time::Duration::ZERO;
    while std::fs::metadata(&path).unwrap().len() < (pages * page_size) as u64 {
        assert!(
            waited < std::time::Duration::from_secs(1),
            "the database file holds {} of {} pages a second later",
            std::fs::metadata(&path).unwrap().len() / page_size as u64,
            pages
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += std::time::Duration::from_millis(20);
    }
    db.close().await;
}
