//! What the store's tests share: a fresh database of either kind and the changes they write.
#![allow(dead_code)] // each test file uses its own part

use onramp_store::domain::{
    Amount, BankToken, Currency, DepositId, DepositStatus, ProviderSub, Settlement, TransferId,
    UserId,
};
use onramp_store::{
    self as store, AttachOrder, Balance, Counterparty, NewAccount, NewDeposit, NewTransfer,
    SettleDeposit, SettleResult, Store,
};
use onramp_test_support::{Backend, TestDb};
use std::sync::Arc;

pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub db: TestDb,
    pub _dir: tempfile::TempDir,
}

pub async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = backend.fresh_database(dir.path()).await;
    Fixture {
        store: store::connect(&url, 4).await.unwrap(),
        db: TestDb::connect(&url).await,
        _dir: dir,
    }
}

/// A batch of the changes given, of any kinds, each at the end of its kind.
#[macro_export]
macro_rules! batch {
    ($($change:expr),* $(,)?) => {{
        let mut batch = onramp_store::Batch::default();
        $(batch.add($change);)*
        batch
    }};
}

pub fn account(sub: &str, name: &str) -> NewAccount {
    NewAccount {
        provider: onramp_store::domain::Provider::Google,
        sub: ProviderSub::parse(sub).unwrap(),
        email: format!("{sub}@example.com"),
        email_verified: true,
        name: name.into(),
        picture: String::new(),
        now: 1,
    }
}

/// The balance a settlement's commit answered: `Some` for a credit, `None` for a failure.
pub fn settled(outcome: &SettleResult) -> Option<Balance> {
    match outcome {
        SettleResult::Applied(balance) => *balance,
        other => panic!("expected an applied settlement, got {other:?}"),
    }
}

pub fn paise(p: i64) -> Amount {
    Amount::parse(p, i64::MAX).unwrap()
}

pub fn deposit(
    id: &DepositId,
    user: UserId,
    amount: i64,
    key: Option<&str>,
    now: i64,
) -> NewDeposit {
    NewDeposit {
        id: id.clone(),
        user_id: user,
        amount: paise(amount),
        currency: onramp_store::domain::Currency::Inr,
        idempotency_key: key.map(str::to_owned),
        key_cutoff: now - 1000,
        now,
        first_check_at: now + 60_000,
    }
}

pub fn order(id: &DepositId) -> AttachOrder {
    AttachOrder {
        deposit_id: id.clone(),
        token: BankToken::parse(&format!("bank_session_{id}")).unwrap(),
        pay_url: format!("http://bank/pay?token=bank_session_{id}"),
        now: 3,
    }
}

pub fn settle(id: &DepositId, user: UserId, amount: i64, outcome: Settlement) -> SettleDeposit {
    SettleDeposit {
        deposit_id: id.clone(),
        user_id: user,
        amount: paise(amount),
        outcome,
        now: 4,
    }
}

pub fn transfer(from: UserId, to: UserId, paise: i64, key: Option<&str>, now: i64) -> NewTransfer {
    NewTransfer {
        id: TransferId::new(),
        from,
        to,
        amount: Amount::parse(paise, i64::MAX).unwrap(),
        currency: Currency::Inr,
        idempotency_key: key.map(str::to_owned),
        key_cutoff: now - 1000,
        now,
        recipient: Counterparty {
            name: "Bilal".into(),
            email: "bilal@x.test".into(),
        },
    }
}

pub async fn status(store: &Arc<dyn Store>, id: &DepositId) -> DepositStatus {
    store.deposit(id).await.unwrap().unwrap().status
}

/// The deposits reconciliation would ask the bank about (its schedule, less what is settled).
pub async fn pending(store: &Arc<dyn Store>) -> Vec<DepositId> {
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
