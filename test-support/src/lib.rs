//! One harness for onramp's tests, whether the app runs in the test process or as the real
//! binary in child processes:
//!
//! - [`Backend`]: SQLite file or PostgreSQL, each test with a fresh database; PostgreSQL is a
//!   throwaway cluster started from the installed binaries ([`postgres`]);
//! - [`Browser`]: a person's browser (a cookie jar, no automatic redirects) that signs in
//!   through the development identity provider and uses the API; it needs only the app's base
//!   URL, so it serves both kinds of test;
//! - [`app`]: the app in-process on port 0 ([`spawn_app`], [`TestApp`]);
//! - [`process`]: the real binary as child processes ([`World`], [`Proc`]);
//! - [`bank`] and [`webhook`]: the bank simulator's pay page and API, and webhooks signed as the
//!   bank signs them;
//! - [`db`]: direct access to the app's database ([`TestDb`]) and the books check.

pub mod app;
pub mod bank;
pub mod browser;
pub mod db;
pub mod nginx;
pub mod postgres;
pub mod process;
pub mod webhook;

pub use app::{spawn_app, spawn_app_with, test_settings, TestApp};
pub use bank::{delivery_figures, pay_token, Bank, Delivery, DeliveryFigures};
pub use browser::{location, Browser};
pub use db::{Books, DepositRow, LedgerRow, TestDb, TransferRow, WalletRow, WithdrawalRow};
pub use process::{sign_in_and_deposit, Binary, Made, Proc, Storm, World};

/// The app's database in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A URL to a new, empty database: a SQLite file in `dir` (created on first connection), or
    /// a new database in the test PostgreSQL cluster (started on first use).
    pub async fn fresh_database(self, dir: &std::path::Path) -> String {
        match self {
            Backend::Sqlite => format!("sqlite://{}/app.db", dir.display()),
            Backend::Postgres => postgres::cluster().fresh_database().await,
        }
    }
}

/// The API key the app calls the bank with (and the simulator expects).
fn bank_api_key(settings: &onramp::configuration::Settings) -> String {
    use secrecy::ExposeSecret;
    settings.bank.api_key.expose_secret().to_owned()
}

/// The secret the bank signs webhooks with (and the app checks them with).
fn webhook_secret(settings: &onramp::configuration::Settings) -> Vec<u8> {
    use secrecy::ExposeSecret;
    settings
        .bank
        .webhook_secret
        .expose_secret()
        .as_bytes()
        .to_vec()
}

/// A port that was free a moment ago. For processes that must be told their port up front (the
/// real binary, a restart on the same port); whatever can bind port 0 itself should.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local address where every connection is refused, for as long as this lives: a socket bound
/// to a port and not listening. A port bound and let go at once may be taken meanwhile by a
/// listener of another test (an app, a bank) that would answer.
pub struct RefusedAddress {
    _socket: socket2::Socket,
    pub url: String,
}

impl RefusedAddress {
    pub fn new() -> RefusedAddress {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any_port.into()).expect("bound to a free port");
        let bound = socket.local_addr().unwrap().as_socket().unwrap();
        RefusedAddress {
            _socket: socket,
            url: format!("http://{bound}"),
        }
    }
}

impl Default for RefusedAddress {
    fn default() -> Self {
        RefusedAddress::new()
    }
}

/// Runs one async test body on both databases, as two tests `<name>::sqlite` and
/// `<name>::postgres`. The calling crate needs `actix-web` (the tests run on an actix system,
/// which the in-process app's server needs).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[actix_web::test]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )*
    };
}

/// Runs `body(Backend::Sqlite)` as test `$sqlite` and `body(Backend::Postgres)` as test
/// `$postgres`, on a multi-threaded tokio runtime: for the real-binary tests, which drive child
/// processes and need no actix system. The calling crate needs `tokio`.
#[macro_export]
macro_rules! on_both_databases_as {
    ($body:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body($crate::Backend::Sqlite).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body($crate::Backend::Postgres).await
        }
    };
}

/// Prints to stdout (seen with `--nocapture`) and stderr (kept in CI logs on failure).
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        eprintln!("{line}");
    }};
}

/// The `onramp` binary of the calling test crate, built by Cargo for it. A macro because
/// `CARGO_BIN_EXE_onramp` exists only while compiling the `onramp` package's own integration
/// tests, not this crate.
#[macro_export]
macro_rules! onramp_binary {
    () => {
        $crate::Binary {
            exe: env!("CARGO_BIN_EXE_onramp"),
            dir: env!("CARGO_MANIFEST_DIR"),
        }
    };
}
