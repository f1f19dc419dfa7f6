//! Withdrawals in the ledger, on both databases: the amount leaves the wallet for payouts in
//! flight when the withdrawal is written; the payout's success moves it on to bank clearing and
//! its failure returns it to the wallet, each once however often it is settled; the schedule
//! holds the withdrawal until it is forgotten; and the audit checks every figure.

mod common;

use common::*;
use onramp_store::domain::{
    Currency, DepositId, FirstAnswer, PayoutId, Settlement, Status, UserId, WithdrawalId,
};
use onramp_store::{
    AttachPayout, ForgetPendingWithdrawal, NewWithdrawal, ScheduleWithdrawalCheck, SettlePayout,
    SettleResult, Store, WithdrawalResult,
};
use onramp_test_support::{on_both_databases, Backend};
use std::sync::Arc;

on_both_databases!(
    a_withdrawal_leaves_at_once_and_its_payout_ends_it_once,
    a_withdrawal_key_answers_once_and_an_overdraft_is_refused,
    the_schedule_holds_a_withdrawal_until_it_is_forgotten,
    the_audit_names_a_withdrawal_whose_money_is_wrong,
    two_stores_of_one_payout_id_in_a_batch_keep_the_requests_answer,
);

fn withdrawal(user: UserId, paise: i64, key: Option<&str>, now: i64) -> NewWithdrawal {
    NewWithdrawal {
        id: WithdrawalId::new(),
        user_id: user,
        amount: common::paise(paise),
        currency: Currency::Inr,
        idempotency_key: key.map(str::to_owned),
        key_cutoff: now - 1000,
        now,
        first_check_at: now + 60_000,
    }
}

fn payout_end(w: &NewWithdrawal, outcome: Settlement) -> SettlePayout {
    SettlePayout {
        withdrawal_id: w.id.clone(),
        user_id: w.user_id,
        amount: w.amount,
        outcome,
        refused_request: false,
        now: w.now + 10,
    }
}

async fn applied(store: &Arc<dyn Store>, w: &NewWithdrawal) -> i64 {
    match store.commit(&batch![w.clone()]).await.unwrap().withdrawals[0] {
        WithdrawalResult::Applied(balance) => balance.paise,
        other => panic!("expected the withdrawal written, got {other:?}"),
    }
}

/// One user with `paise` deposited.
async fn funded(store: &Arc<dyn Store>, paise: i64) -> UserId {
    let user = store
        .commit(&batch![account("asha", "Asha")])
        .await
        .unwrap()
        .accounts[0];
    let id = DepositId::new();
    store
        .commit(&batch![deposit(&id, user, paise, None, 2)])
        .await
        .unwrap();
    store
        .commit(&batch![settle(&id, user, paise, Settlement::Success)])
        .await
        .unwrap();
    user
}

async fn a_withdrawal_leaves_at_once_and_its_payout_ends_it_once(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let asha = funded(&store, 1_000).await;
    let paid = withdrawal(asha, 300, None, 5);
    let failed = withdrawal(asha, 200, None, 6);
    assert_eq!(
        applied(&store, &paid).await,
        700,
        "the amount leaves at once"
    );
    assert_eq!(applied(&store, &failed).await, 500);
    let payout = PayoutId::parse("pout_1").unwrap();
    store
        .commit(&batch![AttachPayout {
            withdrawal_id: paid.id.clone(),
            payout_id: payout.clone(),
            answers_request: true,
            now: 7
        }])
        .await
        .unwrap();
    let found = store.withdrawal_by_payout(&payout).await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.status),
        (paid.id.clone(), Status::Processing)
    );
    assert_eq!(
        found.first_answer,
        Some(FirstAnswer::Created),
        "the request's answer"
    );

    // Both ends in one batch, each sent twice: each applies once.
    let ends = store
        .commit(&batch![
            payout_end(&paid, Settlement::Success),
            payout_end(&failed, Settlement::Failure),
            payout_end(&paid, Settlement::Success),
            payout_end(&failed, Settlement::Failure),
        ])
        .await
        .unwrap()
        .payout_settlements;
    assert_eq!(settled(&ends[0]), None, "a payout made changes no wallet");
    assert_eq!(
        settled(&ends[1]).unwrap().paise,
        700,
        "the failed 200 is back"
    );
    assert_eq!(&ends[2..], [SettleResult::NotProcessing; 2]);
    // Again later, either way: nothing more.
    let again = store
        .commit(&batch![payout_end(&failed, Settlement::Success)])
        .await
        .unwrap()
        .payout_settlements;
    assert_eq!(again, [SettleResult::NotProcessing]);

    assert_eq!(store.balance(asha).await.unwrap().paise, 700);
    let status = |id: &WithdrawalId| {
        let store = store.clone();
        let id = id.clone();
        async move { store.withdrawal(&id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(&paid.id).await, Status::Success);
    assert_eq!(status(&failed.id).await, Status::Failure);
    let failed_row = store.withdrawal(&failed.id).await.unwrap().unwrap();
    assert_eq!(
        failed_row.first_answer, None,
        "its request was never answered"
    );

    // The bank refused a request: the money is back, and the request's answer is recorded once.
    let refused = withdrawal(asha, 50, None, 8);
    assert_eq!(applied(&store, &refused).await, 650);
    let refusal = SettlePayout {
        refused_request: true,
        ..payout_end(&refused, Settlement::Failure)
    };
    let ends = store
        .commit(&batch![refusal.clone(), refusal])
        .await
        .unwrap();
    assert_eq!(settled(&ends.payout_settlements[0]).unwrap().paise, 700);
    assert_eq!(ends.payout_settlements[1], SettleResult::NotProcessing);
    let refused_row = store.withdrawal(&refused.id).await.unwrap().unwrap();
    assert_eq!(refused_row.first_answer, Some(FirstAnswer::Refused));
    let entries = db
        .strings(
            "SELECT e.kind || ' ' || COALESCE(f.system, 'wallet') || ' -> ' \
             || COALESCE(r.system, 'wallet') || ' ' || CAST(e.amount AS TEXT) \
             FROM ledger_entries AS e \
             JOIN ledger_accounts AS f ON f.id = e.debit_account \
             JOIN ledger_accounts AS r ON r.id = e.credit_account ORDER BY e.id",
        )
        .await;
    assert_eq!(
        entries,
        [
            "deposit bank_clearing -> wallet 1000",
            "withdrawal wallet -> payouts_in_flight 300",
            "withdrawal wallet -> payouts_in_flight 200",
            "payout payouts_in_flight -> bank_clearing 300",
            "payout_return payouts_in_flight -> wallet 200",
            "withdrawal wallet -> payouts_in_flight 50",
            "payout_return payouts_in_flight -> wallet 50",
        ]
    );
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
    assert_eq!(
        (
            audit.withdrawals,
            audit.withdrawn,
            audit.withdrawing,
            audit.in_flight
        ),
        (3, 300, 0, 0)
    );
    assert_eq!((audit.deposited, audit.users_total), (1_000, 700));
}

async fn a_withdrawal_key_answers_once_and_an_overdraft_is_refused(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let asha = funded(&store, 1_000).await;
    let first = withdrawal(asha, 400, Some("k"), 5);
    let copy = withdrawal(asha, 400, Some("k"), 6);
    let outcomes = store
        .commit(&batch![first.clone(), copy])
        .await
        .unwrap()
        .withdrawals;
    assert_eq!(outcomes[1], WithdrawalResult::KeyTaken);
    assert!(matches!(outcomes[0], WithdrawalResult::Applied(b) if b.paise == 600));
    let held = store.withdrawal_by_key(asha, "k").await.unwrap().unwrap();
    assert_eq!(held.id, first.id);

    // More than the wallet holds: the database refuses the batch, and nothing is written.
    let overdraft = withdrawal(asha, 601, None, 7);
    assert!(store.commit(&batch![overdraft.clone()]).await.is_err());
    assert!(store.withdrawal(&overdraft.id).await.unwrap().is_none());
    assert_eq!(store.balance(asha).await.unwrap().paise, 600);
    let audit = store.audit().await.unwrap();
    assert!(audit.is_ok(), "{audit}");
    assert_eq!((audit.withdrawing, audit.in_flight), (400, 400));
}

async fn the_schedule_holds_a_withdrawal_until_it_is_forgotten(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let asha = funded(&store, 1_000).await;
    let w = withdrawal(asha, 100, None, 5);
    applied(&store, &w).await;
    let first_check = w.first_check_at;
    assert!(store
        .due_withdrawals(first_check - 1, 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_withdrawals(first_check, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].withdrawal.id.clone(), due[0].checks),
        (w.id.clone(), 0)
    );

    let next = first_check + 300_000;
    store
        .commit(&batch![ScheduleWithdrawalCheck {
            withdrawal_id: w.id.clone(),
            due_at: first_check,
            next_check_at: next,
        }])
        .await
        .unwrap();
    assert!(store
        .due_withdrawals(next - 1, 10)
        .await
        .unwrap()
        .is_empty());
    let due = store.due_withdrawals(next, 10).await.unwrap();
    assert_eq!((due[0].checks, due[0].due_at), (1, next));

    store
        .commit(&batch![ForgetPendingWithdrawal {
            withdrawal_id: w.id.clone(),
            due_at: next,
        }])
        .await
        .unwrap();
    assert!(store
        .due_withdrawals(i64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn the_audit_names_a_withdrawal_whose_money_is_wrong(backend: Backend) {
    let Fixture { store, db, _dir } = fixture(backend).await;
    let asha = funded(&store, 1_000).await;
    let w = withdrawal(asha, 250, None, 5);
    applied(&store, &w).await;
    assert!(store.audit().await.unwrap().is_ok());
    // Marked paid behind the ledger's back: no payout entry, and in flight no longer matches.
    db.execute(&format!(
        "UPDATE withdrawals SET status = 'success' WHERE id = '{}'",
        w.id
    ))
    .await
    .unwrap();
    // Another, still processing, that lost its place in reconciliation's schedule.
    let unscheduled = withdrawal(asha, 100, None, 6);
    applied(&store, &unscheduled).await;
    db.execute(&format!(
        "DELETE FROM pending_withdrawals WHERE withdrawal_id = '{}'",
        unscheduled.id
    ))
    .await
    .unwrap();
    let report = store.audit().await.unwrap();
    let text = report.to_string();
    for wanted in [
        "a withdrawal still processing with no payout check scheduled",
        unscheduled.id.as_str(),
        "a withdrawal whose payout's end does not match its status",
        w.id.as_str(),
        "payouts in flight hold 350 paise but the withdrawals still processing total 100 paise",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }
}

/// The request and a webhook that found the withdrawal by its ref both store the payout id, in
/// the same group commit, in either order: the request's answer is kept.
async fn two_stores_of_one_payout_id_in_a_batch_keep_the_requests_answer(backend: Backend) {
    let Fixture { store, _dir, .. } = fixture(backend).await;
    let asha = funded(&store, 1_000).await;
    for request_first in [false, true] {
        let w = withdrawal(asha, 100, None, 5);
        applied(&store, &w).await;
        let attach = |answers_request| AttachPayout {
            withdrawal_id: w.id.clone(),
            payout_id: PayoutId::parse(&format!("po_{}", w.id)).unwrap(),
            answers_request,
            now: 6,
        };
        let batch = if request_first {
            batch![attach(true), attach(false)]
        } else {
            batch![attach(false), attach(true)]
        };
        store.commit(&batch).await.unwrap();
        let row = store.withdrawal(&w.id).await.unwrap().unwrap();
        assert_eq!(
            row.first_answer,
            Some(FirstAnswer::Created),
            "request first: {request_first}"
        );
    }
}
