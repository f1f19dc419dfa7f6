//! Several processes, one service (docs/cluster.md): the calls one process forwards to the
//! process that owns a wallet, over HTTP at its `server.advertise_url`, and their proof.
//!
//! A forwarded call is JSON ([`WalletCall`]) signed like the bank's webhooks (a timestamp and
//! an HMAC-SHA256 over it and the body, in `onramp-proof`) with a key derived from
//! `cluster.key`, so no outside client can send what only a process may send, and a signature
//! made for one purpose (a webhook) never passes for another. The owner answers
//! `Result<WalletReply, CallError>` as JSON, exactly what its own [`Wallets`] answered.

use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use onramp_actors::ownership::{ClusterConfig, Ownership};
use onramp_actors::wallet::{CallError, Transport, Undelivered, WalletCall, WalletReply, Wallets};
use onramp_bank_protocol::signature;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The path every process serves forwarded calls on (never under `/api`: nginx's sample
/// refuses it from outside, and it is not part of the public API).
pub const CALL_PATH: &str = "/internal/wallet";
const PROOF_HEADER: &str = "onramp-proof";
/// How long a forwarded call may take: the owner answers from its actor and one group commit
/// (never the bank, never a wait for a shard), a few milliseconds, or a second under heavy
/// load. Longer means the owner is paused or gone: the call is sent again to whoever owns the
/// wallet then, or answered of unknown outcome if it moves money out.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection to another process is kept idle for the next call: less than the
/// drain at SIGTERM (`startup::DRAIN`), so that none is left open to a process that stops.
const IDLE_CONNECTION: Duration = Duration::from_secs(1);

/// The key that signs forwarded calls, derived from `cluster.key` for this purpose alone.
#[derive(Clone)]
pub struct ProofKey([u8; 32]);

impl ProofKey {
    pub fn new(cluster_key: &str) -> ProofKey {
        let mut h = Sha256::new();
        h.update(b"onramp forwarded wallet call v1\0");
        h.update(cluster_key.as_bytes());
        ProofKey(h.finalize().into())
    }

    fn sign(&self, body: &[u8]) -> String {
        signature::sign_header(&[&self.0], unix_now(), body)
    }

    fn verify(&self, header: Option<&str>, body: &[u8]) -> bool {
        signature::verify(header, &[&self.0], body, unix_now()).is_ok()
    }
}

fn unix_now() -> i64 {
    onramp_store::domain::now_ms() / 1000
}

/// Calls sent to other processes over pooled HTTP connections.
pub struct HttpTransport {
    client: reqwest::Client,
    key: ProofKey,
}

impl HttpTransport {
    pub fn new(key: ProofKey) -> anyhow::Result<HttpTransport> {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(IDLE_CONNECTION)
            .build()?;
        Ok(HttpTransport { client, key })
    }
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn send(
        &self,
        url: &str,
        call: &WalletCall,
    ) -> Result<Result<WalletReply, CallError>, Undelivered> {
        let body = serde_json::to_vec(call).map_err(|_| Undelivered::NotSent)?;
        let response = self
            .client
            .post(format!("{}{CALL_PATH}", url.trim_end_matches('/')))
            .header(PROOF_HEADER, self.key.sign(&body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, url, "forwarding a call failed");
                if e.is_connect() {
                    Undelivered::NotSent
                } else {
                    Undelivered::Unknown
                }
            })?;
        if !response.status().is_success() {
            // Refused before it was read (a proof the process does not accept, or a process
            // stopping): nothing was done there.
            tracing::warn!(status = %response.status(), url, "a process refused a forwarded call");
            return Err(Undelivered::NotSent);
        }
        response.json().await.map_err(|_| Undelivered::Unknown)
    }
}

/// `POST /internal/wallet`: a call another process forwarded, answered by this process's
/// wallet if it owns it (else `moved`, and nothing is done). Refused `401` without a valid
/// proof.
pub async fn serve_call(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let proof = req
        .headers()
        .get(PROOF_HEADER)
        .and_then(|v| v.to_str().ok());
    let Some(key) = &state.proof_key else {
        return HttpResponse::NotFound().finish();
    };
    if !key.verify(proof, &body) {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(call) = serde_json::from_slice::<WalletCall>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let answer: Result<WalletReply, CallError> = state.wallets.serve(call).await;
    HttpResponse::Ok().json(answer)
}

/// Starts this process's part in the service on PostgreSQL: its leases, kept by a task of
/// their own, and the transport to the others. `None` on SQLite, which one process serves.
pub async fn join(
    database_url: &str,
    advertise_url: &str,
    lease: Duration,
    cluster_key: &str,
) -> anyhow::Result<Option<(Ownership, std::sync::Arc<HttpTransport>, ProofKey)>> {
    if database_url.starts_with("sqlite:") {
        return Ok(None);
    }
    let leases = onramp_store::cluster::Leases::connect(database_url).await?;
    let config = ClusterConfig {
        node: uuid::Uuid::new_v4().to_string(),
        url: advertise_url.trim_end_matches('/').to_owned(),
        lease,
    };
    tracing::info!(node = %config.node, url = %config.url, "joining the service");
    let ownership = Ownership::cluster(config, leases);
    actix_web::rt::spawn(ownership.clone().run());
    let key = ProofKey::new(cluster_key);
    let transport = std::sync::Arc::new(HttpTransport::new(key.clone())?);
    Ok(Some((ownership, transport, key)))
}

/// The wallets of this process: alone, or among the service's processes.
pub fn wallets(
    store: std::sync::Arc<dyn onramp_store::Store>,
    writer: onramp_actors::writer::DbWriter,
    idle: Duration,
    arbiters: usize,
    joined: Option<(Ownership, std::sync::Arc<HttpTransport>)>,
) -> Wallets {
    match joined {
        Some((ownership, transport)) => {
            Wallets::owned(store, writer, idle, arbiters, ownership, Some(transport))
        }
        None => Wallets::new(store, writer, idle, arbiters),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_passes_only_for_its_body_and_its_key() {
        let key = ProofKey::new("k1");
        let header = key.sign(b"{\"balance\":{}}");
        assert!(key.verify(Some(&header), b"{\"balance\":{}}"));
        assert!(!key.verify(Some(&header), b"{\"balance\":{ }}"));
        assert!(!ProofKey::new("k2").verify(Some(&header), b"{\"balance\":{}}"));
        assert!(!key.verify(None, b"{\"balance\":{}}"));
        // A webhook signed with the cluster key itself is not a proof.
        let webhook = signature::sign_header(&[b"k1"], unix_now(), b"{}");
        assert!(!key.verify(Some(&webhook), b"{}"));
    }
}
