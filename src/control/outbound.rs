//! Outbound events: the sinks, the delivery worker and the delivery RPCs.
//!
//! # Guarantees
//! - One delivery worker per cluster: the replica holding lease `warp/outbound` runs it; every
//!   attempt's outcome is recorded under that lease's fence.
//! - At-least-once: an event is marked delivered only after its sink answered 2xx; a send whose
//!   outcome was not recorded (crash, lost lease, database down) is sent again, with the same
//!   body and CloudEvents `id`, so receivers de-duplicate by `id`.
//! - Per-sink order: a sink gets its events in outbox (commit) order; the next event waits
//!   until the one before it was delivered or dead-lettered. Sinks do not wait for each other.
//! - Failures back off exponentially with jitter (honouring `Retry-After`); after
//!   `max_attempts` the delivery is dead-lettered and the sink moves on.
//!
//! # Caveats
//! - `RedeliverEvent` puts an older event in front of the sink's queue: it arrives after newer
//!   ones (its `sequence` tells the receiver).
//! - A sink seen for the first time receives the events written from then on, not the history.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ownership::{KeptLease, replica_caller};
use super::paging::{finish_page, page_request};
use super::{AppError, AuditContext, Ctx, LeaseService};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::outbound::{
    AttemptOutcome, CONTENT_TYPE, Delivery, DeliveryState, RetryPolicy, SIGNATURE_HEADER, TypeFilter,
    after_failure, envelope, signature, valid_sink_name,
};
use crate::store::{Fence, RedeliverOutcome};

/// The lease of the delivery worker.
pub const OUTBOUND_LEASE: &str = "warp/outbound";
/// How long the delivery lease lasts (renewed every third).
const LEASE: Duration = Duration::from_secs(15);
/// How often an idle sink looks for new events (a local write wakes it at once).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Events read per fan-out.
const FAN_OUT_BATCH: u64 = 256;
/// Most of a sink's answer body that is read (and thrown away).
const ANSWER_CAP: usize = 64 * 1024;
/// Most sinks in one configuration.
pub const MAX_SINKS: usize = 32;
const LIST_SCOPE: &str = "deliveries";

/// One configured receiver of events.
pub struct Sink {
    pub name: String,
    pub url: hyper::Uri,
    /// The HMAC key of the signature header (never logged).
    secret: Vec<u8>,
    pub filter: TypeFilter,
    /// Trust for `https://` sinks.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

impl Sink {
    /// Validates one sink. `url` must be `http://` or `https://` without credentials (the
    /// secret goes in the signature, never in a URL that ends up in logs); `secret` at least
    /// 16 bytes.
    pub fn new(
        name: &str,
        url: &str,
        secret: Vec<u8>,
        types: Vec<String>,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Result<Self, String> {
        if !valid_sink_name(name) {
            return Err(format!("sink name {name:?}: use 1..64 of [a-z0-9_-]"));
        }
        let parsed: hyper::Uri = url.parse().map_err(|e| format!("sink {name}: url: {e}"))?;
        let https = match parsed.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("sink {name}: url must start with http:// or https://")),
        };
        let authority = parsed.authority().ok_or_else(|| format!("sink {name}: url has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("sink {name}: url must not carry credentials"));
        }
        if secret.len() < 16 {
            return Err(format!("sink {name}: the secret must be at least 16 bytes"));
        }
        if https && tls.is_none() {
            return Err(format!("sink {name}: https needs trusted roots"));
        }
        let filter = TypeFilter::new(types).map_err(|e| format!("sink {name}: {e}"))?;
        Ok(Self { name: name.to_owned(), url: parsed, secret, filter, tls: if https { tls } else { None } })
    }
}

/// What the outbound worker is configured with.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub sinks: Vec<Arc<Sink>>,
    pub retry: RetryPolicy,
    /// Longest time one attempt (connect, send, answer) may take.
    pub attempt_timeout: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            sinks: Vec::new(),
            retry: RetryPolicy {
                max_attempts: 12,
                initial: Duration::from_millis(500),
                max: Duration::from_secs(300),
            },
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Sinks, deliveries and the delivery worker.
#[derive(Clone)]
pub struct OutboundService {
    ctx: Ctx,
    settings: Arc<OutboundSettings>,
    wake: Arc<Notify>,
}

impl OutboundService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, settings: OutboundSettings) -> Self {
        Self { ctx: ctx.clone(), settings: Arc::new(settings), wake: Arc::new(Notify::new()) }
    }

    fn sink(&self, name: &str) -> Result<&Arc<Sink>, AppError> {
        self.settings
            .sinks
            .iter()
            .find(|sink| sink.name == name)
            .ok_or_else(|| AppError::NotFound { resource: format!("sink {name}") })
    }

    /// Lists deliveries, newest event first, optionally of one sink and one state.
    pub async fn list(
        &self,
        sink: &str,
        state: Option<DeliveryState>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Delivery>, String), AppError> {
        if sink.len() > 64 {
            return Err(AppError::invalid("sink", "at most 64 bytes"));
        }
        let scope = format!("{LIST_SCOPE}:{sink}:{}", state.map(DeliveryState::as_str).unwrap_or(""));
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let after = page
            .cursor
            .map(|cursor| {
                let (seq, sink) = cursor.split_once(':').unwrap_or((cursor.as_str(), ""));
                seq.parse::<i64>()
                    .map(|seq| (seq, sink.to_owned()))
                    .map_err(|_| AppError::invalid("page_token", "page token is malformed"))
            })
            .transpose()?;
        let sink = (!sink.is_empty()).then_some(sink);
        let rows = self.ctx.store.list_deliveries(sink, state, after, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |d| {
            format!("{}:{}", d.event.seq, d.sink)
        }))
    }

    /// Queues event `ce_id` for `sink` again, from its first attempt.
    pub async fn redeliver(
        &self,
        sink: &str,
        ce_id: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        validate_only: bool,
    ) -> Result<Delivery, AppError> {
        if ce_id.is_empty() || ce_id.len() > 64 {
            return Err(AppError::invalid("event_id", "1..64 bytes: the CloudEvents id of a retained event"));
        }
        self.sink(sink)?;
        let missing = || AppError::NotFound { resource: format!("event {ce_id}") };
        if validate_only {
            // The event must exist; nothing is written.
            let found = self.ctx.store.event_by_ce_id(ce_id).await?.ok_or_else(missing)?;
            return Ok(Delivery {
                sink: sink.to_owned(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_error: String::new(),
                next_attempt_at: self.ctx.clock.now(),
                delivered_at: None,
                updated_at: self.ctx.clock.now(),
                event: found,
            });
        }
        let audit = caller.event(
            format!("sink/{sink}/event/{ce_id}"),
            format!("queued event {ce_id} for sink {sink} again"),
        );
        let outcome = self.ctx.store.redeliver(sink, ce_id, idempotency, &audit, chrono::Utc::now()).await?;
        match outcome {
            RedeliverOutcome::Queued(delivery) => {
                self.wake.notify_waiters();
                Ok(delivery)
            }
            RedeliverOutcome::Replayed(delivery) => Ok(delivery),
            RedeliverOutcome::NoSuchEvent => Err(missing()),
            RedeliverOutcome::RequestIdReused => Err(super::desired::request_id_reused()),
        }
    }

    /// Gives every configured sink its cursor (a new sink starts at the current head). Runs
    /// before the replica serves, so no event written through it can precede its sinks.
    pub async fn register_sinks(&self) -> Result<(), crate::store::StoreError> {
        let names: Vec<String> = self.settings.sinks.iter().map(|s| s.name.clone()).collect();
        self.ctx.store.register_sinks(&names).await
    }

    /// Runs the delivery worker until `stop`: whenever this replica holds `warp/outbound`, it
    /// delivers to every sink (one task per sink).
    pub async fn run_loop(&self, leases: LeaseService, replica_id: String, stop: CancellationToken) {
        if self.settings.sinks.is_empty() {
            return;
        }
        let caller = replica_caller(&replica_id, "outbound");
        loop {
            let kept = match KeptLease::try_take(&leases, OUTBOUND_LEASE, &replica_id, LEASE, &caller).await {
                Ok(kept) => kept,
                Err(error) => {
                    tracing::warn!(%error, "outbound lease: will try again");
                    None
                }
            };
            let Some(kept) = kept else {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            };
            tracing::info!(fencing_token = kept.fence().token, "delivering outbound events");
            let kept = Arc::new(kept);
            let held = stop.child_token();
            let workers: Vec<_> = self
                .settings
                .sinks
                .iter()
                .map(|sink| tokio::spawn(self.clone().deliver_to(sink.clone(), kept.clone(), held.clone())))
                .collect();
            while kept.is_live() && !stop.is_cancelled() {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            held.cancel();
            for worker in workers {
                let _ = worker.await;
            }
            if let Ok(kept) = Arc::try_unwrap(kept) {
                kept.release().await;
            }
            if stop.is_cancelled() {
                return;
            }
            tracing::warn!("outbound lease lost; delivery stops here");
        }
    }

    /// Delivers `sink`'s events in order until `stop` or the lease is lost.
    async fn deliver_to(self, sink: Arc<Sink>, kept: Arc<KeptLease>, stop: CancellationToken) {
        let mut connection: Option<SendRequest<Full<Bytes>>> = None;
        let fence = kept.fence().clone();
        while !stop.is_cancelled() && kept.is_live() {
            let wait = match self.step(&sink, &fence, &mut connection).await {
                Ok(Step::Sent) => continue,
                Ok(Step::Idle) => IDLE_POLL,
                Ok(Step::NotBefore(delay)) => delay.min(IDLE_POLL),
                Ok(Step::Fenced) => return,
                Err(error) => {
                    tracing::warn!(sink = %sink.name, %error, "outbound delivery step failed; will retry");
                    Duration::from_secs(1)
                }
            };
            let woken = self.wake.notified();
            tokio::select! {
                () = stop.cancelled() => return,
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One step of a sink: fan out new events, then try the next delivery if it is due.
    async fn step(
        &self,
        sink: &Sink,
        fence: &Fence,
        connection: &mut Option<SendRequest<Full<Bytes>>>,
    ) -> Result<Step, AppError> {
        self.ctx.store.fan_out(&sink.name, |t| sink.filter.accepts(t), FAN_OUT_BATCH).await?;
        let Some(delivery) = self.ctx.store.next_delivery(&sink.name).await? else {
            return Ok(Step::Idle);
        };
        // Backoff is real time between attempts, so it is read from the system clock (not the
        // application clock, which tests may hold still). A first attempt is always due: its
        // time came from the database clock, which may run ahead of this host's.
        let now = chrono::Utc::now();
        if delivery.attempts > 0 && delivery.next_attempt_at > now {
            return Ok(Step::NotBefore((delivery.next_attempt_at - now).to_std().unwrap_or_default()));
        }
        let body = envelope(&delivery.event);
        let started = tokio::time::Instant::now();
        let answer =
            tokio::time::timeout(self.settings.attempt_timeout, post(sink, connection, &delivery, body))
                .await
                .unwrap_or_else(|_| {
                    Err(format!("no answer within {} ms", self.settings.attempt_timeout.as_millis()))
                });
        let outcome = match answer {
            Ok(Answer { status, .. }) if (200..300).contains(&status) => AttemptOutcome::Delivered,
            Ok(Answer { status, retry_after }) => {
                self.failed(&delivery, format!("the sink answered HTTP {status}"), retry_after)
            }
            Err(error) => {
                *connection = None;
                self.failed(&delivery, error, None)
            }
        };
        let label = match &outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "failed",
            AttemptOutcome::Dead { .. } => "dead_lettered",
        };
        self.ctx.telemetry.outbound_attempt(&sink.name, label, started.elapsed());
        if let AttemptOutcome::Dead { error } = &outcome {
            tracing::warn!(sink = %sink.name, event = %delivery.event.ce_id, %error, "event dead-lettered");
        }
        match self.ctx.store.record_attempt(fence, &sink.name, delivery.event.seq, &outcome).await? {
            Ok(()) => Ok(Step::Sent),
            Err(refusal) => {
                tracing::warn!(%refusal, "outbound lease moved; this replica stops delivering");
                Ok(Step::Fenced)
            }
        }
    }

    fn failed(&self, delivery: &Delivery, error: String, retry_after: Option<Duration>) -> AttemptOutcome {
        let unit = crate::random::random_bytes::<8>()
            .map(|bytes| (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64)
            .unwrap_or(0.5);
        after_failure(&self.settings.retry, delivery.attempts, error, chrono::Utc::now(), unit, retry_after)
    }
}

enum Step {
    /// An attempt was made and recorded.
    Sent,
    /// Nothing to deliver.
    Idle,
    /// The next delivery is due after this delay.
    NotBefore(Duration),
    /// The lease moved on.
    Fenced,
}

struct Answer {
    status: u16,
    retry_after: Option<Duration>,
}

/// POSTs `body` (the structured event of `delivery`) to the sink over `connection` (opened
/// when missing or closed). The `ce-*` headers repeat the envelope's identifying attributes,
/// as the HTTP binding allows in structured mode, so a proxy or a receiver can de-duplicate
/// by `ce-id` without parsing the body.
async fn post(
    sink: &Sink,
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    delivery: &Delivery,
    body: Vec<u8>,
) -> Result<Answer, String> {
    let event = &delivery.event;
    let reusable = match connection.as_mut() {
        Some(sender) => sender.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        *connection = Some(connect(sink).await?);
    }
    let sender = connection.as_mut().ok_or("no connection")?;
    let authority = sink.url.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = sink.url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(hyper::header::USER_AGENT, concat!("jhf-warp/", env!("CARGO_PKG_VERSION")))
        .header(SIGNATURE_HEADER, signature(&sink.secret, &body))
        .header("x-jhf-warp-delivery-attempt", (delivery.attempts + 1).to_string())
        .header("ce-specversion", "1.0")
        .header("ce-id", event.ce_id.as_str())
        .header("ce-type", event.event_type.as_str())
        .header("ce-source", crate::domain::outbound::SOURCE)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("sending failed: {e}"))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read (and drop) a bounded answer so the connection can carry the next event.
    if Limited::new(response.into_body(), ANSWER_CAP).collect().await.is_err() {
        *connection = None;
    }
    Ok(Answer { status, retry_after })
}

/// Opens an HTTP/1.1 connection to the sink (TLS for `https://`).
async fn connect(sink: &Sink) -> Result<SendRequest<Full<Bytes>>, String> {
    let host = sink.url.host().ok_or("the url has no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = sink.url.port_u16().unwrap_or(if sink.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let handshake_failed = |e: hyper::Error| format!("HTTP handshake failed: {e}");
    match &sink.tls {
        Some(config) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("bad TLS server name {host}: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host} failed: {e}"))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(handshake_failed)?;
            tokio::spawn(conn);
            Ok(sender)
        }
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(handshake_failed)?;
            tokio::spawn(conn);
            Ok(sender)
        }
    }
}

/// The sinks file (`--event-sinks-file`), YAML or JSON:
///
/// ```yaml
/// sinks:
///   - name: fabric
///     url: https://fabric.internal/hooks/warp
///     secret_file: /run/secrets/fabric-hook   # or secret_env: FABRIC_HOOK_SECRET
///     types: ["dev.jhf.warp.drift.*", "dev.jhf.warp.rollout.finished"]   # empty: all
/// ```
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksFile {
    pub sinks: Vec<SinkEntry>,
}

/// One sink of the sinks file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkEntry {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub types: Vec<String>,
}

/// Parses a sinks file; `secret` resolves an entry's secret (file or environment), `trust`
/// builds the TLS trust of `https://` sinks (asked once, and only when one is listed).
pub fn parse_sinks(
    text: &str,
    secret: impl Fn(&SinkEntry) -> Result<Vec<u8>, String>,
    trust: impl FnOnce() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String>,
) -> Result<Vec<Arc<Sink>>, String> {
    let file: SinksFile = serde_yaml_ng::from_str(text).map_err(|e| format!("not a sinks file: {e}"))?;
    if file.sinks.len() > MAX_SINKS {
        return Err(format!("at most {MAX_SINKS} sinks"));
    }
    let https =
        |entry: &SinkEntry| entry.url.parse::<hyper::Uri>().is_ok_and(|u| u.scheme_str() == Some("https"));
    let tls = if file.sinks.iter().any(https) { Some(trust()?) } else { None };
    let mut sinks: Vec<Arc<Sink>> = Vec::new();
    for entry in &file.sinks {
        if sinks.iter().any(|s| s.name == entry.name) {
            return Err(format!("sink {} is listed twice", entry.name));
        }
        let key = secret(entry)?;
        sinks.push(Arc::new(Sink::new(&entry.name, &entry.url, key, entry.types.clone(), tls.clone())?));
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(_: &SinkEntry) -> Result<Vec<u8>, String> {
        Ok(b"0123456789abcdef".to_vec())
    }

    fn no_roots() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
        Err("no trusted roots for https:// sinks".to_owned())
    }

    #[test]
    fn a_sinks_file_is_parsed_and_checked() {
        let sinks = parse_sinks(
            "sinks:\n  - name: fabric\n    url: http://127.0.0.1:9/hooks?x=1\n    secret_env: X\n    types: [dev.jhf.warp.drift.*]\n  - name: all\n    url: http://hooks.internal/\n    secret_env: Y\n",
            secret,
            no_roots,
        )
        .unwrap();
        assert_eq!(sinks.len(), 2);
        assert!(sinks[0].filter.accepts("dev.jhf.warp.drift.confirmed"));
        assert!(!sinks[0].filter.accepts("dev.jhf.warp.desired.stored"));
        assert!(sinks[1].filter.accepts("dev.jhf.warp.desired.stored"));
        assert!(!format!("{:?}", sinks[0]).contains("0123456789abcdef"), "the secret is never printed");
    }

    #[test]
    fn bad_sinks_are_refused_with_the_reason() {
        let refused = |text: &str| parse_sinks(text, secret, no_roots).unwrap_err();
        assert!(refused("sinks:\n  - {name: a, url: 'ftp://x/'}").contains("http"));
        assert!(refused("sinks:\n  - {name: a, url: 'http://u:p@x/'}").contains("credentials"));
        assert!(refused("sinks:\n  - {name: A, url: 'http://x/'}").contains("name"));
        assert!(refused("sinks:\n  - {name: a, url: 'https://x/'}").contains("trusted roots"));
        assert!(
            refused("sinks:\n  - {name: a, url: 'http://x/'}\n  - {name: a, url: 'http://y/'}")
                .contains("twice")
        );
        assert!(
            refused("sinks:\n  - {name: a, url: 'http://x/', types: [dev.jhf.warp.nope]}")
                .contains("matches no")
        );
        assert!(refused("sinks:\n  - {name: a, url: 'http://x/', colour: red}").contains("unknown field"));
        let short =
            parse_sinks("sinks:\n  - {name: a, url: 'http://x/'}", |_| Ok(b"short".to_vec()), no_roots);
        assert!(short.unwrap_err().contains("16 bytes"));
    }
}
