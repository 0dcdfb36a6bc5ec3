//! Telemetry: logging setup (an env filter and a text or JSON formatter on stderr) and the
//! process metrics (RPCs, runtime operations, rollouts). A leaf: it knows nothing of the rest
//! of the service — the RPC layer that records calls lives in `grpc::observe`, the runtime
//! wrapper that times operations in `runtime::measured`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber for `filter` (an `EnvFilter` directive); a bad filter falls
/// back to `info` and says so.
pub fn init(filter: &str, format: LogFormat) {
    let (filter, bad_filter) = match EnvFilter::try_new(filter) {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new("info"), Some(err.to_string())),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let (Ok(()), Some(error)) = (installed, bad_filter) {
        tracing::warn!(%error, "invalid log filter; using info");
    }
}

mod metrics;

pub use metrics::Telemetry;
