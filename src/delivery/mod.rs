//! Delivering events to sinks over HTTP: the sinks file, one configured sink, and an
//! HTTP/1.1 connection per sink (TLS for `https://`). Infrastructure of the outbound use case
//! (`control::outbound`), which decides what is sent when and records the outcomes.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;

use crate::domain::outbound::{
    CONTENT_TYPE, Delivery, SIGNATURE_HEADER, TypeFilter, signature, valid_sink_name,
};

/// Most of a sink's answer body that is read (and thrown away).
const ANSWER_CAP: usize = 64 * 1024;
/// Most sinks in one configuration.
pub const MAX_SINKS: usize = 32;

/// One configured receiver of events.
pub struct Sink {
    pub name: String,
    url: hyper::Uri,
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

impl Sink {
    /// The sink's URL (never with credentials: they are refused).
    pub fn url(&self) -> String {
        self.url.to_string()
    }
}

/// What a sink answered.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
}

/// A sink's connection, kept open between events (opened on first use and after a failure).
#[derive(Default)]
pub struct Connection {
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// Forgets the connection (the next post opens a new one).
    pub fn close(&mut self) {
        self.sender = None;
    }

    /// POSTs `body` (the structured event of `delivery`) to the sink. The `ce-*` headers repeat
    /// the envelope's identifying attributes, as the HTTP binding allows in structured mode, so
    /// a proxy or a receiver can de-duplicate by `ce-id` without parsing the body.
    pub async fn post(&mut self, sink: &Sink, delivery: &Delivery, body: Vec<u8>) -> Result<Answer, String> {
        post(sink, &mut self.sender, delivery, body).await
    }
}

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
