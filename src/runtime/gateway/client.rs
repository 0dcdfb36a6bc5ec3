//! A client of the OpenClaw Gateway's WebSocket RPC (protocol 4): one connection kept open by a
//! supervisor task that handshakes (`connect.challenge` → signed `connect`), routes responses
//! to their callers by id, counts `config.changed` events, and reconnects with backoff.
//!
//! Bounds: frames are at most [`MAX_FRAME_BYTES`]; at most [`MAX_PENDING`] calls wait at once;
//! every call has a deadline. The shared token never leaves this module except inside the
//! `connect` frame, and no error carries it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use super::device::{DeviceKey, SignedConnect};

/// Largest frame read from or sent to the Gateway (a config of `--max-config-bytes` ≤ 32 MiB
/// arrives three times in `config.get`: raw, parsed, resolved).
pub const MAX_FRAME_BYTES: usize = 128 << 20;
/// Calls waiting for an answer at once (jhf-warp makes a handful; more means a stuck Gateway).
const MAX_PENDING: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a connection that is not up.
const CONNECT_WAIT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The scopes jhf-warp asks for: reads, and `config.*`/agent changes (operator.admin).
pub const SCOPES: [&str; 3] = ["operator.read", "operator.write", "operator.admin"];
const CLIENT_ID: &str = "cli";
const CLIENT_MODE: &str = "cli";

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting(String),
    Ready {
        server_version: Option<String>,
    },
    /// The Gateway knows this device but an operator has not approved it yet.
    PairingPending(String),
    /// The Gateway refused the credentials or scopes; retried slowly.
    Refused(String),
}

/// An answer the Gateway gave with `ok: false`, or no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Gateway { code: String, detail_code: Option<String>, message: String, retry_after: Option<Duration> },
    Unreachable(String),
    Timeout,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway { code, message, .. } => write!(f, "gateway answered {code}: {message}"),
            Self::Unreachable(detail) => write!(f, "{detail}"),
            Self::Timeout => write!(f, "the gateway did not answer in time"),
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, CallError>>>>>;

struct Link {
    frames: mpsc::Sender<String>,
    pending: Pending,
}

/// A shared handle on the Gateway connection.
#[derive(Clone)]
pub struct GatewayClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    token: String,
    device: DeviceKey,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    link: Mutex<Option<Arc<Link>>>,
    state: watch::Sender<LinkState>,
    changes: watch::Sender<u64>,
    next_id: AtomicU64,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

impl GatewayClient {
    /// Starts the supervisor; the connection comes up in the background.
    pub fn start(
        url: String,
        token: String,
        device: DeviceKey,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Self {
        let inner = Arc::new(Inner {
            url,
            token,
            device,
            tls,
            link: Mutex::new(None),
            state: watch::channel(LinkState::Connecting("starting".to_owned())).0,
            changes: watch::channel(0).0,
            next_id: AtomicU64::new(1),
            stop: CancellationToken::new(),
        });
        tokio::spawn(supervise(Arc::downgrade(&inner), inner.stop.clone()));
        Self { inner }
    }

    /// Where the connection stands now.
    pub fn state(&self) -> LinkState {
        self.inner.state.borrow().clone()
    }

    /// A counter that moves on every `config.changed` event.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Calls `method` and returns its payload, waiting up to `timeout` in all (connection
    /// included).
    pub async fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // A Gateway that is down answers with the reason quickly rather than at the deadline.
        let link = self.ready_link(deadline.min(tokio::time::Instant::now() + CONNECT_WAIT)).await?;
        let id = format!("w{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = lock(&link.pending);
            if pending.len() >= MAX_PENDING {
                return Err(CallError::Unreachable("too many gateway calls waiting".to_owned()));
            }
            pending.insert(id.clone(), answer);
        }
        let frame = json!({"type": "req", "id": id, "method": method, "params": params}).to_string();
        if frame.len() > MAX_FRAME_BYTES || link.frames.send(frame).await.is_err() {
            lock(&link.pending).remove(&id);
            return Err(CallError::Unreachable("the gateway connection closed".to_owned()));
        }
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::Unreachable("the gateway connection closed".to_owned())),
            Err(_) => {
                lock(&link.pending).remove(&id);
                Err(CallError::Timeout)
            }
        }
    }

    async fn ready_link(&self, deadline: tokio::time::Instant) -> Result<Arc<Link>, CallError> {
        let mut state = self.inner.state.subscribe();
        loop {
            let now = state.borrow_and_update().clone();
            match now {
                LinkState::Ready { .. } => {
                    if let Some(link) = lock(&self.inner.link).clone() {
                        return Ok(link);
                    }
                }
                LinkState::PairingPending(detail) | LinkState::Refused(detail) => {
                    return Err(CallError::Unreachable(detail));
                }
                LinkState::Connecting(_) => {}
            }
            match tokio::time::timeout_at(deadline, state.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(CallError::Unreachable("the gateway client stopped".to_owned())),
                Err(_) => {
                    let LinkState::Connecting(detail) = self.state() else { continue };
                    return Err(CallError::Unreachable(format!(
                        "gateway {} is not connected: {detail}",
                        self.inner.url
                    )));
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps one connection up until `stop`; never holds a strong reference between attempts, so
/// dropping the last client ends it.
async fn supervise(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let wait = match connect(&strong).await {
            Ok((socket, server_version)) => {
                backoff = Duration::from_millis(500);
                let pending: Pending = Arc::default();
                let (frames, outgoing) = mpsc::channel(64);
                *lock(&strong.link) = Some(Arc::new(Link { frames, pending: pending.clone() }));
                strong.state.send_replace(LinkState::Ready { server_version });
                // `config.changed` events sent while the link was down are lost: a (re)connect
                // counts as a change, so the observer reads the config again at once.
                strong.changes.send_modify(|seen| *seen = seen.wrapping_add(1));
                let changes = strong.changes.clone();
                drop(strong);
                let reason = pump(socket, outgoing, &pending, &changes, &stop).await;
                let Some(strong) = inner.upgrade() else { return };
                *lock(&strong.link) = None;
                for (_, waiting) in lock(&pending).drain() {
                    let _ = waiting.send(Err(CallError::Unreachable(format!(
                        "the gateway connection closed: {reason}"
                    ))));
                }
                strong.state.send_replace(LinkState::Connecting(format!("reconnecting after: {reason}")));
                tracing::warn!(url = %strong.url, %reason, "gateway connection lost; reconnecting");
                Duration::from_millis(200)
            }
            Err(Failure { state, retry_after }) => {
                let wait = retry_after.unwrap_or(backoff);
                if strong.state.borrow().clone() != state {
                    tracing::warn!(url = %strong.url, state = ?state, "gateway not connected");
                }
                strong.state.send_replace(state);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

struct Failure {
    state: LinkState,
    retry_after: Option<Duration>,
}

fn connecting(detail: impl Into<String>) -> Failure {
    Failure { state: LinkState::Connecting(detail.into()), retry_after: None }
}

type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Duplex>>;

/// Opens the socket and completes the handshake; returns the Gateway's version.
async fn connect(inner: &Inner) -> Result<(Socket, Option<String>), Failure> {
    let mut socket = open_socket(inner).await?;
    let challenge = next_json(&mut socket).await?;
    let payload = challenge.get("payload").cloned().unwrap_or_default();
    let (Some("connect.challenge"), Some(nonce), Some(ts)) = (
        challenge.get("event").and_then(Value::as_str),
        payload.get("nonce").and_then(Value::as_str).filter(|n| !n.is_empty()),
        payload.get("ts").and_then(Value::as_i64).filter(|ts| *ts >= 0),
    ) else {
        return Err(connecting("the gateway sent no valid connect.challenge"));
    };
    socket
        .send(Message::text(connect_request(inner, nonce, ts).to_string()))
        .await
        .map_err(|e| connecting(format!("send failed: {e}")))?;
    let hello = loop {
        let frame = next_json(&mut socket).await?;
        if frame.get("type").and_then(Value::as_str) == Some("res")
            && frame.get("id").and_then(Value::as_str) == Some("connect")
        {
            break frame;
        }
    };
    if hello.get("ok").and_then(Value::as_bool) != Some(true) {
        return Err(refusal(inner, hello.get("error").cloned().unwrap_or_default()));
    }
    let payload = hello.get("payload").cloned().unwrap_or_default();
    let granted: Vec<&str> = payload
        .pointer("/auth/scopes")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !granted.contains(&"operator.admin") {
        return Err(Failure {
            state: LinkState::Refused(format!(
                "the gateway granted scopes [{}] to device {}; jhf-warp needs operator.admin for config.* (approve the device's scope upgrade)",
                granted.join(", "),
                inner.device.id()
            )),
            retry_after: Some(MAX_BACKOFF),
        });
    }
    let version = payload.pointer("/server/version").and_then(Value::as_str).map(str::to_owned);
    Ok((socket, version))
}

/// TCP (then TLS for `wss://`) and the WebSocket upgrade, each step under its own timeout.
async fn open_socket(inner: &Inner) -> Result<Socket, Failure> {
    let request = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        inner.url.as_str().into_client_request().map_err(|e| connecting(format!("bad gateway url: {e}")))?
    };
    let host = request.uri().host().unwrap_or_default().trim_matches(['[', ']']).to_owned();
    let port = request.uri().port_u16().unwrap_or(if inner.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| connecting("TCP connect timed out"))?
        .map_err(|e| connecting(format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Duplex> = match &inner.tls {
        Some(config) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| connecting(format!("bad TLS server name {host}: {e}")))?;
            let tls = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
            )
            .await
            .map_err(|_| connecting("TLS handshake timed out"))?
            .map_err(|e| connecting(format!("TLS handshake failed: {e}")))?;
            Box::new(tls)
        }
        None => Box::new(tcp),
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let (socket, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)),
    )
    .await
    .map_err(|_| connecting("WebSocket upgrade timed out"))?
    .map_err(|e| connecting(format!("WebSocket upgrade failed: {e}")))?;
    Ok(socket)
}

/// The `connect` request answering the challenge: the shared token, and this device's
/// signature over the challenge's nonce and time.
fn connect_request(inner: &Inner, nonce: &str, ts: i64) -> Value {
    let signed = SignedConnect {
        client_id: CLIENT_ID,
        client_mode: CLIENT_MODE,
        role: "operator",
        scopes: &SCOPES,
        signed_at_ms: ts,
        token: &inner.token,
        nonce,
        platform: std::env::consts::OS,
    };
    json!({
        "type": "req",
        "id": "connect",
        "method": "connect",
        "params": {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {
                "id": CLIENT_ID,
                "displayName": "jhf-warp",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": std::env::consts::OS,
                "mode": CLIENT_MODE,
            },
            "role": "operator",
            "scopes": SCOPES,
            "caps": ["agent-kind"],
            "auth": {"token": inner.token},
            "userAgent": concat!("jhf-warp/", env!("CARGO_PKG_VERSION")),
            "device": {
                "id": inner.device.id(),
                "publicKey": inner.device.public_key(),
                "signature": inner.device.sign(&signed),
                "signedAt": ts,
                "nonce": nonce,
            },
        },
    })
}

/// Maps a refused `connect` to a state an operator can act on.
fn refusal(inner: &Inner, error: Value) -> Failure {
    let code = error.get("code").and_then(Value::as_str).unwrap_or("ERROR").to_owned();
    let detail_code = error.pointer("/details/code").and_then(Value::as_str).unwrap_or("").to_owned();
    let message: String =
        error.get("message").and_then(Value::as_str).unwrap_or("refused").chars().take(300).collect();
    let retry_after =
        error.get("retryAfterMs").and_then(Value::as_u64).map(|ms| Duration::from_millis(ms.min(60_000)));
    if detail_code.contains("PAIRING") || message.to_ascii_lowercase().contains("pairing") {
        let request = error
            .pointer("/details/requestId")
            .and_then(Value::as_str)
            .map(|r| format!(" (request {r})"))
            .unwrap_or_default();
        return Failure {
            state: LinkState::PairingPending(format!(
                "gateway pairing pending: approve device {}{request} on the gateway host (`openclaw devices list`, then `openclaw devices approve <requestId>`)",
                inner.device.id()
            )),
            retry_after: Some(retry_after.unwrap_or(Duration::from_secs(5))),
        };
    }
    if code == "UNAVAILABLE" {
        return Failure {
            state: LinkState::Connecting(format!("gateway unavailable: {message}")),
            retry_after,
        };
    }
    Failure {
        state: LinkState::Refused(format!(
            "the gateway refused the connection ({code} {detail_code}): {message}"
        )),
        retry_after: Some(retry_after.unwrap_or(MAX_BACKOFF)),
    }
}

async fn next_json(socket: &mut Socket) -> Result<Value, Failure> {
    loop {
        let message = tokio::time::timeout(CONNECT_TIMEOUT, socket.next())
            .await
            .map_err(|_| connecting("the gateway did not answer the handshake"))?
            .ok_or_else(|| connecting("the gateway closed the connection during the handshake"))?
            .map_err(|e| connecting(format!("handshake read failed: {e}")))?;
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|_| connecting("the gateway sent a frame that is not JSON"));
            }
            Message::Close(frame) => {
                let reason = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                return Err(connecting(format!("the gateway closed the connection: {reason}")));
            }
            _ => {}
        }
    }
}

/// Moves frames until the socket ends or `stop`; returns why it ended.
async fn pump(
    mut socket: Socket,
    mut outgoing: mpsc::Receiver<String>,
    pending: &Pending,
    changes: &watch::Sender<u64>,
    stop: &CancellationToken,
) -> String {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = socket.close(None).await;
                return "stopped".to_owned();
            }
            frame = outgoing.recv() => {
                let Some(frame) = frame else { return "client dropped".to_owned() };
                if let Err(error) = socket.send(Message::text(frame)).await {
                    return format!("send failed: {error}");
                }
            }
            message = socket.next() => {
                let text = match message {
                    None => return "closed by the gateway".to_owned(),
                    Some(Err(error)) => return format!("read failed: {error}"),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return frame.map(|f| format!("closed by the gateway: {} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "closed by the gateway".to_owned());
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                route(frame, pending, changes);
            }
        }
    }
}

fn route(frame: Value, pending: &Pending, changes: &watch::Sender<u64>) {
    match frame.get("type").and_then(Value::as_str) {
        Some("res") => {
            let Some(id) = frame.get("id").and_then(Value::as_str) else { return };
            let Some(waiting) = lock(pending).remove(id) else { return };
            let _ = waiting.send(answer(frame));
        }
        Some("event") if frame.get("event").and_then(Value::as_str) == Some("config.changed") => {
            changes.send_modify(|count| *count += 1);
        }
        _ => {}
    }
}

fn answer(mut frame: Value) -> Result<Value, CallError> {
    if frame.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(frame.get_mut("payload").map(Value::take).unwrap_or(Value::Null));
    }
    let error = frame.get("error").cloned().unwrap_or_default();
    Err(CallError::Gateway {
        code: error.get("code").and_then(Value::as_str).unwrap_or("ERROR").to_owned(),
        detail_code: error
            .pointer("/details/code")
            .or_else(|| error.pointer("/details/type"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        message: error.get("message").and_then(Value::as_str).unwrap_or("").chars().take(500).collect(),
        retry_after: error.get("retryAfterMs").and_then(Value::as_u64).map(Duration::from_millis),
    })
}
