//! Builds the application: binds the listeners, resolves default URLs against the real ports,
//! opens the database, starts the actors and the development parties, and serves.

use crate::auth::google::{Endpoints, GoogleOAuth};
use crate::bank_client::BankClient;
use crate::configuration::Settings;
use crate::dev::{self, DevListeners, DevParties};
use crate::middleware::{close_when_draining, origin_check, security_headers, Draining, OwnOrigin};
use crate::state::{AppState, Urls};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use onramp_actors::sessions::{SessionConfig, Sessions};
use onramp_actors::writer::DbWriter;
use onramp_store as store;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::TcpListener;

use std::time::Duration;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    dev: DevParties,
    reconciler: Option<actix_web::rt::task::JoinHandle<()>>,
    /// The operator-only `/metrics` server on `server.metrics_listen`, and its port.
    metrics: Option<(ServerHandle, u16)>,
    /// The public listener's socket (a second handle to it), to stop listening at SIGTERM
    /// before the server stops.
    listening: TcpListener,
    /// This process's claim on a SQLite database (one process serves it), released when the
    /// app stops. PostgreSQL is shared by the service's processes through leases.
    _lock: Option<onramp_store::lock::ProcessLock>,
}

/// Among several processes, how long after SIGTERM this one keeps answering (each answer closing
/// its connection) before it stops listening: long enough for nginx's busy connections to it to
/// be closed by an answer, short enough that an idle process exits within a couple of seconds.
const DRAIN: Duration = Duration::from_millis(1500);

/// How long the accept queue gets to empty once new connections are dropped.
const ACCEPT_LIMIT: Duration = Duration::from_secs(1);

/// How long the connections accepted last have to be answered once the listener is shut.
const LAST_ANSWERS: Duration = Duration::from_millis(300);

/// How long SIGTERM waits for the calls on this process's wallets before handing them over
/// regardless (their commits are fenced: a late one writes nothing).
const HAND_OVER_LIMIT: Duration = Duration::from_secs(10);

/// How soon a process among several exits after SIGTERM (config.md, "Several processes").
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// What SIGTERM leaves for after the server has stopped: the DB writer's last flush, the
/// leases' release and the development parties' stop.
const LAST_STEPS: Duration = Duration::from_secs(3);

/// How long the requests still in flight get once the server stops. Alone, 30 s. Among
/// several processes, what [`STOP_WITHIN`] leaves after the hand-over, the listener's close
/// and the last steps (15 s): a request held longer (a body that never ends, a bank that never
/// answers) is cut off rather than keep the process past its bound. What it had committed
/// stays committed; a deposit waiting for the bank is reconciled.
fn in_flight_limit(cluster: bool) -> Duration {
    if cluster {
        STOP_WITHIN - HAND_OVER_LIMIT.max(DRAIN) - ACCEPT_LIMIT - LAST_ANSWERS - LAST_STEPS
    } else {
        STOP_WITHIN
    }
}

/// Among several processes, how long a session read from the database is trusted before it is
/// read again: a logout on one process is refused by every other within this (and a second).
const SESSION_RECHECK: Duration = Duration::from_millis(500);

/// Largest request body the API reads.
pub const BODY_LIMIT: usize = 16 * 1024;

fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

fn origin_of(url: &str) -> anyhow::Result<String> {
    let u = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
    Ok(u.origin().ascii_serialization())
}

fn required(value: Option<&String>, fallback: Option<String>, key: &str) -> anyhow::Result<String> {
    value
        .cloned()
        .or(fallback)
        .with_context(|| format!("{key} must be set when the development provider or bank is off"))
}

impl Application {
    /// Binds the listeners, resolves the URLs against the ports actually bound, opens the
    /// database, starts the actors and the development parties, and starts serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        refuse_unsafe(&settings)?;
        let lock = if settings.database.url.starts_with("sqlite:") {
            Some(onramp_store::lock::claim(&settings.database.url).await?)
        } else {
            None
        };
        let listener = bind(&settings.server.listen)?;
        let port = listener.local_addr()?.port();
        let advertise_url = settings.server.advertise_url.clone().unwrap_or_else(|| {
            let ip = listener.local_addr().map(|a| a.ip().to_string());
            format!(
                "http://{}:{port}",
                ip.unwrap_or_else(|_| "127.0.0.1".into())
            )
        });
        let metrics_listener = settings
            .server
            .metrics_listen
            .as_deref()
            .map(bind)
            .transpose()?;
        let dev_listeners = dev::bind(&settings)?;
        let urls = resolve_urls(&settings, port, &dev_listeners)?;
        crate::metrics::handle();
        tracing::info!(?urls, database = %onramp_store::redact_url(&settings.database.url), "starting");

        let state = web::Data::new(app_state(&settings, urls, &advertise_url).await?);
        let dev = dev::start(&settings, &state.urls, dev_listeners).await?;
        let reconciler = settings.reconcile.enabled.then(|| {
            let r = crate::reconcile::Reconciler::new(
                settings.reconcile.clone(),
                &state,
                Duration::from_millis(settings.bank.timeout_ms),
            );
            actix_web::rt::spawn(r.run())
        });
        let metrics_on_main = metrics_on_main_listener(&settings);
        let listening = listener.try_clone()?;
        let server = serve(
            state.clone(),
            listener,
            settings.server.workers,
            metrics_on_main,
        )?;
        let metrics = metrics_listener
            .map(|l| serve_metrics(state.clone(), l))
            .transpose()?;
        Ok(Application {
            port,
            server,
            state,
            dev,
            reconciler,
            metrics,
            listening,
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `server.metrics_listen`, when it is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn bank_url(&self) -> Option<String> {
        self.dev.bank_url()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGTERM, SIGINT or [`ServerHandle::stop`]), then
    /// flushes the DB writer and stops the development parties. A signal stops the server
    /// gracefully: no new connections, the requests in flight are answered (for at most the
    /// shutdown timeout), and only then does this return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let signals = crate::signals::shutdown_signals();
        let handle = self.server.handle();
        let ownership = self.state.wallets.ownership().clone();
        let draining = self.state.draining.clone();
        let listening = self.listening;
        let on_signal = actix_web::rt::spawn(async move {
            let signal = signals.await;
            tracing::info!(signal, "shutting down: finishing the requests in flight");
            if ownership.is_cluster() {
                // Among several processes: answers close their connections from now on, the
                // wallets served here go to the others (this process forwards to them
                // meanwhile), and only then does the listener close.
                let started = std::time::Instant::now();
                draining.0.store(true, std::sync::atomic::Ordering::Release);
                ownership.hand_over_all(HAND_OVER_LIMIT).await;
                tokio::time::sleep(DRAIN.saturating_sub(started.elapsed())).await;
                stop_listening(&listening, || handle.pause()).await;
                tokio::time::sleep(LAST_ANSWERS).await;
            }
            handle.stop(true).await;
        });
        let result = self.server.await;
        on_signal.abort();
        if let Some((metrics, _)) = self.metrics {
            metrics.stop(true).await;
        }
        if let Some(r) = self.reconciler {
            r.abort();
        }
        if let Err(e) = self.state.writer.flush().await {
            tracing::error!(error = %e, "final flush failed");
        }
        self.state.wallets.ownership().close().await;
        self.dev.stop().await;
        tracing::info!("stopped");
        Ok(result?)
    }
}

/// Stops taking connections, so that nginx passes new requests to the other processes (a
/// refused connection is one it may always try elsewhere), without resetting one it has sent a
/// request on (`crate::listener`): new connections are dropped first, the accept queue is
/// taken, and only then does `pause` stop the accept loop and the listener close. The
/// connections just accepted then get the time to have their request read and answered:
/// stopping the server closes a connection whose request it has not read yet, and nginx answers
/// that request 502.
async fn stop_listening<P: Future<Output = ()>>(
    listening: &TcpListener,
    pause: impl FnOnce() -> P,
) {
    match crate::listener::refuse_new_connections(listening) {
        Ok(()) => {
            if !crate::listener::wait_until_accepted(listening, ACCEPT_LIMIT).await {
                tracing::warn!("connections still queued when the listener closes");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not refuse new connections before stopping"),
    }
    pause().await;
    // Shut down, a listening socket refuses connections from then on (Linux).
    if let Err(e) = socket2::SockRef::from(listening).shutdown(std::net::Shutdown::Read) {
        tracing::warn!(error = %e, "could not stop listening before stopping");
    }
}

/// The start-up refusals of `docs/configuration.md` ("Safety"), all of them in one error.
fn refuse_unsafe(settings: &Settings) -> anyhow::Result<()> {
    let refusals = crate::safety::check(settings);
    if refusals.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = refusals.iter().map(|r| format!("  - {r}")).collect();
    anyhow::bail!("refusing to start:\n{}", lines.join("\n"))
}

/// The app's URLs: the configured ones, else defaults from the public URL and the development
/// parties' real addresses.
fn resolve_urls(settings: &Settings, port: u16, dev: &DevListeners) -> anyhow::Result<Urls> {
    let idp_base = DevListeners::base_url(&dev.idp)?;
    let bank_base = DevListeners::base_url(&dev.bank)?;
    let public_url = settings
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{port}"))
        .trim_end_matches('/')
        .to_owned();
    let g = &settings.google;
    let idp = |path: &str| idp_base.as_ref().map(|b| format!("{b}{path}"));
    Ok(Urls {
        public_origin: origin_of(&public_url)?,
        redirect_url: g
            .redirect_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}/api/auth/google/callback")),
        auth_url: required(g.auth_url.as_ref(), idp("/authorize"), "google.auth_url")?,
        token_url: required(g.token_url.as_ref(), idp("/token"), "google.token_url")?,
        userinfo_url: required(
            g.userinfo_url.as_ref(),
            idp("/userinfo"),
            "google.userinfo_url",
        )?,
        bank_api_url: required(settings.bank.api_url.as_ref(), bank_base, "bank.api_url")?,
        webhook_url: settings
            .dev
            .webhook_url
            .clone()
            .unwrap_or_else(|| format!("{public_url}/api/webhooks/bank")),
        public_url,
    })
}

/// Opens the database and starts the actors and clients every request shares.
async fn app_state(
    settings: &Settings,
    urls: Urls,
    advertise_url: &str,
) -> anyhow::Result<AppState> {
    let store = store::connect(&settings.database.url, settings.database.max_connections)
        .await
        .context("cannot open the database")?;
    let writer = DbWriter::start(store.clone(), settings.writer.max_batch);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let joined = crate::cluster::join(
        &settings.database.url,
        advertise_url,
        Duration::from_secs(settings.cluster.lease_secs.max(1)),
        settings.cluster.key.expose_secret(),
    )
    .await
    .context("cannot join the service's processes")?;
    let proof_key = joined.as_ref().map(|(_, _, key)| key.clone());
    let mut session_config = SessionConfig::new(
        Duration::from_secs(settings.session.ttl_secs),
        Duration::from_secs(settings.session.idle_secs),
    );
    session_config.capacity = settings.cache.sessions;
    if let Some((ownership, _, _)) = &joined {
        let ownership = ownership.clone();
        session_config.recheck_after = Some(SESSION_RECHECK);
        session_config.sweeps = std::sync::Arc::new(move || ownership.leads());
    }
    let sessions = Sessions::start(store.clone(), writer.clone(), session_config);
    let wallets = crate::cluster::wallets(
        store.clone(),
        writer.clone(),
        Duration::from_secs(settings.wallet.idle_secs),
        cores,
        joined.map(|(ownership, transport, _)| (ownership, transport)),
    );
    let g = &settings.google;
    let google = GoogleOAuth::new(Endpoints {
        client_id: &g.client_id,
        client_secret: &g.client_secret,
        auth_url: &urls.auth_url,
        token_url: &urls.token_url,
        userinfo_url: &urls.userinfo_url,
        redirect_url: &urls.redirect_url,
        timeout: Duration::from_millis(g.timeout_ms),
    })?;
    let bank = BankClient::new(
        &urls.bank_api_url,
        settings.bank.api_key.clone(),
        Duration::from_millis(settings.bank.timeout_ms),
        Duration::from_secs(settings.reconcile.max_age_secs),
    )?;
    let cookies = crate::auth::cookies::CookieNames::for_public_url(&urls.public_url);
    let cookie_key = crate::safety::key_bytes(settings.server.cookie_key.expose_secret())
        .context("server.cookie_key is not a key (refused at start-up already)")?;
    Ok(AppState {
        flows: crate::auth::flow::FlowCookies::new(&cookie_key, cookies.flow, cookies.secure),
        cookies,
        limits: crate::limits::Limits::new(&settings.limits),
        people: crate::people::People::new(store.clone(), settings.cache.people),
        openapi: crate::openapi::document(),
        webhook_secrets: settings.bank.webhook_secrets(),
        settings: settings.clone(),
        urls,
        store,
        writer,
        sessions,
        wallets,
        google,
        bank,
        paying: Default::default(),
        proof_key,
        draining: Draining::default(),
        pending: std::sync::Arc::new(crate::pending::PendingDeposits::new(
            settings.cache.pending_deposits,
            Duration::from_secs(settings.reconcile.max_age_secs),
        )),
    })
}

/// Whether `/metrics` is served on the public listener: only when no operator address is set,
/// and never for an https site, whose public listener anyone can reach.
pub fn metrics_on_main_listener(settings: &Settings) -> bool {
    let https = settings
        .server
        .public_url
        .as_deref()
        .is_some_and(crate::safety::is_https);
    settings.server.metrics_listen.is_none() && !https
}

/// `/metrics` alone on the operator's address.
fn serve_metrics(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> anyhow::Result<(ServerHandle, u16)> {
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(crate::routes::configure_metrics)
            .default_service(web::to(crate::routes::pages::not_found))
    })
    .workers(1)
    // It stops after the main server, within the time SIGTERM has left (`LAST_STEPS`): a
    // scrape takes milliseconds.
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((handle, port))
}

/// The HTTP server over `listener`: middleware, extractor limits and the routes.
fn serve(
    state: web::Data<AppState>,
    listener: TcpListener,
    workers: Option<usize>,
    metrics_on_main: bool,
) -> anyhow::Result<Server> {
    let own_origin = OwnOrigin(state.urls.public_origin.clone());
    let in_flight = in_flight_limit(state.wallets.ownership().is_cluster());
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(
                actix_web::middleware::ErrorHandlers::new()
                    .default_handler(crate::error::json_error_body),
            )
            .wrap(from_fn(origin_check))
            .wrap(from_fn(security_headers))
            .wrap(from_fn(close_when_draining))
            .wrap(tracing_actix_web::TracingLogger::<
                crate::telemetry::RedactingRootSpan,
            >::new())
            .app_data(state.clone())
            .app_data(own_origin.clone())
            .app_data(state.draining.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(|e, _| crate::error::json_error(e).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| crate::error::query_error(e).into()),
            )
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .configure(crate::routes::configure)
            .configure(|cfg| {
                if metrics_on_main {
                    crate::routes::configure_metrics(cfg)
                }
            })
            .default_service(web::to(crate::routes::pages::not_found))
    })
    .backlog(4096)
    .max_connections(50_000)
    .shutdown_timeout(in_flight.as_secs())
    // `run_until_stopped` handles SIGTERM and SIGINT: both stop gracefully, and without
    // stopping the actix System under the requests still in flight.
    .disable_signals();
    if let Some(n) = workers {
        server = server.workers(n);
    }
    Ok(server.listen(listener)?.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::default_settings;

    /// A request already in the accept queue when a process stops listening is answered, and
    /// one that tries to connect meanwhile is kept waiting for the closed listener to refuse it
    /// (nginx then passes it to another process, POST or not): neither is connected and then
    /// reset, which nginx answers 502 for a POST.
    #[actix_web::test]
    async fn requests_queued_or_connecting_as_the_listener_closes_are_never_reset() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listening = listener.try_clone().unwrap();
        let server = HttpServer::new(|| App::new().route("/", web::post().to(|| async { "ok" })))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let post = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

        // The accept loop lags: a request waits in the queue, and the loop takes it again
        // only after the listener has started closing.
        handle.pause().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut queued = tokio::net::TcpStream::connect(addr).await.unwrap();
        queued.write_all(post).await.unwrap();
        let resuming = handle.clone();
        actix_web::rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            resuming.resume().await;
        });

        let late = std::cell::RefCell::new(None);
        let (late_ref, pausing) = (&late, &handle);
        stop_listening(&listening, move || async move {
            pausing.pause().await;
            // The accept loop stops taking connections as a client connects.
            let connecting = tokio::net::TcpStream::connect(addr);
            let connecting = tokio::time::timeout(Duration::from_millis(300), connecting);
            *late_ref.borrow_mut() = Some(actix_web::rt::spawn(connecting));
        })
        .await;

        let mut answer = Vec::new();
        let read = queued.read_to_end(&mut answer).await;
        assert!(
            read.is_ok() && answer.starts_with(b"HTTP/1.1 200"),
            "the queued request: {read:?} ({} bytes of answer)",
            answer.len()
        );
        let late = late.into_inner().expect("the client tried").await.unwrap();
        match late {
            Err(_) => {} // its SYN was dropped: it never connected, nothing was sent
            Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
            Ok(Ok(mut stream)) => {
                let sent = stream.write_all(post).await;
                let mut answer = Vec::new();
                let read = stream.read_to_end(&mut answer).await;
                assert!(
                    sent.is_ok() && read.is_ok() && answer.starts_with(b"HTTP/1.1 200"),
                    "connected, then sending gave {sent:?} and reading {read:?} ({} bytes)",
                    answer.len()
                );
            }
        }
        handle.stop(true).await;
    }

    #[test]
    fn metrics_are_on_the_public_listener_only_for_plain_http_without_an_operator_address() {
        let mut s = default_settings();
        assert!(metrics_on_main_listener(&s));
        s.server.public_url = Some("https://wallet.example.com".into());
        assert!(!metrics_on_main_listener(&s), "never public under https");
        s.server.public_url = None;
        s.server.metrics_listen = Some("127.0.0.1:9100".into());
        assert!(!metrics_on_main_listener(&s));
    }
}
