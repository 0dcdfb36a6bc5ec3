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

/// Log lines the writer may hold before it drops new ones (and counts them): a burst of
/// several seconds at full load, a few MiB at most.
const BUFFERED_LINES: usize = 16_384;

/// Lines the log writer dropped because its buffer was full (read by the metrics).
static DROPPED: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> =
    std::sync::OnceLock::new();

/// Lines dropped so far by the log writer (0 before [`init`]).
pub fn dropped_log_lines() -> u64 {
    DROPPED.get().map_or(0, |counter| counter.dropped_lines() as u64)
}

/// Keeps the log writer's thread; dropping it flushes what is buffered. Hold it for the
/// process's lifetime.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber for `filter` (an `EnvFilter` directive); a bad filter falls
/// back to `info` and says so.
///
/// Lines go to stderr through a writer thread: a call's log line is formatted on the request
/// path but never waits for the terminal or a pipe; when the buffer is full new lines are
/// dropped and counted (`jhf_warp_log_lines_dropped_total`) rather than slowing the service.
/// Colours only when stderr is a terminal.
pub fn init(filter: &str, format: LogFormat) -> LogGuard {
    use std::io::IsTerminal;
    let (filter, bad_filter) = match EnvFilter::try_new(filter) {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new("info"), Some(err.to_string())),
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("jhf-warp-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let (Ok(()), Some(error)) = (installed, bad_filter) {
        tracing::warn!(%error, "invalid log filter; using info");
    }
    LogGuard(guard)
}

mod metrics;

pub use metrics::Telemetry;
