//! What one wallet's owner is told by another commit is taken only by an actor that runs and
//! knows its balance's history. A real SQLite database.

use onramp_actors::wallet::{WalletCall, Wallets};
use onramp_actors::writer::DbWriter;
use onramp_store::domain::{Provider, ProviderSub};
use onramp_store::{Balance, NewAccount, SqliteStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// A balance told to a wallet with no actor running (a transfer's credit told late, after the
/// wallet's shard changed hands and a debit committed there) must not start an actor that
/// believes it: the first read loads the database's balance instead.
#[actix::test]
async fn a_balance_told_to_a_wallet_with_no_actor_is_not_believed_over_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url, 2).await.unwrap());
    let writer = DbWriter::start(store.clone(), 16);
    let user = writer
        .commit(NewAccount {
            provider: Provider::Google,
            sub: ProviderSub::parse("told").unwrap(),
            email: "told@example.com".into(),
            email_verified: true,
            name: "Told".into(),
            picture: String::new(),
            now: 1,
        })
        .await
        .unwrap();
    let wallets = Wallets::new(store, writer, Duration::from_secs(60), 1);
    let told = Balance {
        paise: 1_000_000,
        entry: 999,
    };
    wallets
        .call(WalletCall::Observe {
            user,
            balance: told,
        })
        .await
        .unwrap();
    assert_eq!(
        wallets.balance(user).await.unwrap(),
        0,
        "the database's balance"
    );
}
