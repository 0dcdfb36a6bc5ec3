//! Telemetry: logging setup (an env filter and a text or JSON formatter on stderr), the
//! process metrics (RPCs, runtime operations, rollouts) and the per-RPC span and log line.

use tracing_subscriber::EnvFilter;

use crate::config::{LogArgs, LogFormat};

/// Installs the global subscriber; a bad filter falls back to `info` and says so.
pub fn init(args: &LogArgs) {
    let (filter, bad_filter) = match EnvFilter::try_new(&args.log_filter) {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new("info"), Some(err.to_string())),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let (Ok(()), Some(error)) = (installed, bad_filter) {
        tracing::warn!(%error, "invalid log filter; using info");
    }
}

mod measured;
mod metrics;
mod rpc;

pub use measured::MeasuredRuntime;
pub use metrics::Telemetry;
pub use rpc::{CallNote, ObserveState, observe};
