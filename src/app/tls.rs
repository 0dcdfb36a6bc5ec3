//! TLS and mutual TLS with rustls on the one port: gRPC and the HTTP shim (ALPN `h2` and
//! `http/1.1`).
//!
//! # Guarantees
//! - The certificate, key and optional client CA are read from files and re-read when their
//!   modification time changes, so a rotated certificate takes effect for new connections
//!   without a restart; unusable new files are refused with a log line and the previous
//!   configuration stays in force.
//! - With a client CA, every connection must present a certificate that chains to it.
//! - Handshakes run off the accept loop, each bounded by [`HANDSHAKE_TIMEOUT`]: a slow or
//!   plaintext client cannot stall other connections.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA of the client certificates every connection must present (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS material is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

fn read_error(path: &Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::Read { path: path.to_owned(), detail: error.to_string() }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// Builds the server configuration from the files.
fn configure(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_error(&files.key, e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| TlsError::Config(format!("client CA {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

/// The server side of TLS, with its current configuration.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

impl Tls {
    /// Reads the files; refuses unusable ones (start-up stops with the reason).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        // rustls needs a process-wide default provider for anything not given one explicitly.
        let _ = CryptoProvider::install_default(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = configure(&files)?;
        let stamps = Self::stamps(&files);
        Ok(Arc::new(Self { files, current: RwLock::new((config, stamps)) }))
    }

    fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
        let mut paths = vec![&files.cert, &files.key];
        paths.extend(files.client_ca.as_ref());
        paths.into_iter().map(|path| modified(path)).collect()
    }

    fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone()
    }

    /// Re-reads the files if any changed; returns true when a new configuration took effect.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = Self::stamps(&self.files);
        if self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).1 == stamps {
            return false;
        }
        match configure(&self.files) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = (config, stamps);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                // Keep serving with the previous material; try again when the files change.
                self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()).1 = stamps;
                tracing::error!(%error, "new TLS files are unusable; keeping the previous certificate");
                false
            }
        }
    }

    /// Checks the files every `period` until `stop`.
    pub async fn watch(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        crate::control::every::every(period, &stop, async || {
            self.reload_if_changed();
        })
        .await;
    }

    /// Turns accepted TCP connections into TLS ones. Each handshake runs in its own task; a
    /// failed one (a plaintext client, a missing or untrusted client certificate) is dropped.
    pub fn incoming(
        self: Arc<Self>,
        mut tcp: TcpIncoming,
    ) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
        let (sender, receiver) = mpsc::channel(128);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = sender.closed() => return,
                    accepted = tcp.next() => accepted,
                };
                let stream = match accepted {
                    Some(Ok(stream)) => stream,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "accept failed");
                        continue;
                    }
                    None => return,
                };
                let (acceptor, sender) = (TlsAcceptor::from(self.config()), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send(Ok(tls)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        ReceiverStream::new(receiver)
    }
}
