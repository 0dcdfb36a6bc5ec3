//! The metrics jhf-warp counts as it runs (prometheus-client), rendered after the gauges the
//! metrics service reads from the store at scrape time.
//!
//! Label values come from closed sets only (known method paths, fixed operation names,
//! rollout states, gRPC code names), so no caller can grow the registry.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: String,
    grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    /// A fleet runtime's name: bounded by the registry (at most 2 000).
    runtime: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationKind {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkName {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

fn latency() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn slow_latency() -> Histogram {
    // 10 ms … ~20 min (runtime operations and whole rollouts).
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

struct Families {
    registry: Registry,
    handled: Family<HandledLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
    runtime_ops: Family<OperationLabels, Counter>,
    runtime_seconds: Family<OperationKind, Histogram, fn() -> Histogram>,
    rollouts: Family<StateLabels, Histogram, fn() -> Histogram>,
    outbound_attempts: Family<SinkLabels, Counter>,
    outbound_seconds: Family<SinkName, Histogram, fn() -> Histogram>,
}

/// Shared handle on the process metrics.
#[derive(Clone)]
pub struct Telemetry {
    families: Arc<Families>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Creates the registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let handled = Family::<HandledLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, by method and gRPC code.",
            handled.clone(),
        );
        let handling = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency as fn() -> Histogram,
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from request to the end of the answer, by method.",
            handling.clone(),
        );
        let runtime_ops = Family::<OperationLabels, Counter>::default();
        registry.register(
            "jhf_warp_runtime_operations",
            "Runtime adapter operations (reads and writes of OpenClaw) by outcome.",
            runtime_ops.clone(),
        );
        let runtime_seconds = Family::<OperationKind, Histogram, fn() -> Histogram>::new_with_constructor(
            slow_latency as fn() -> Histogram,
        );
        registry.register(
            "jhf_warp_runtime_operation_seconds",
            "Latency of runtime adapter operations.",
            runtime_seconds.clone(),
        );
        let rollouts = Family::<StateLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            slow_latency as fn() -> Histogram,
        );
        registry.register(
            "jhf_warp_rollout_duration_seconds",
            "Rollouts this replica finished, from creation to the final state, by that state.",
            rollouts.clone(),
        );
        let outbound_attempts = Family::<SinkLabels, Counter>::default();
        registry.register(
            "jhf_warp_outbound_attempts",
            "Delivery attempts of outbound events by sink and outcome (delivered, failed, dead_lettered).",
            outbound_attempts.clone(),
        );
        let outbound_seconds = Family::<SinkName, Histogram, fn() -> Histogram>::new_with_constructor(
            latency as fn() -> Histogram,
        );
        registry.register(
            "jhf_warp_outbound_attempt_seconds",
            "Time of one delivery attempt (connect, send, answer) by sink.",
            outbound_seconds.clone(),
        );
        Self {
            families: Arc::new(Families {
                outbound_attempts,
                outbound_seconds,
                registry,
                handled,
                handling,
                runtime_ops,
                runtime_seconds,
                rollouts,
            }),
        }
    }

    /// Counts one finished RPC.
    pub fn rpc(&self, service: &str, method: &str, code: &str, took: Duration) {
        let f = &self.families;
        f.handled
            .get_or_create(&HandledLabels {
                grpc_service: service.to_owned(),
                grpc_method: method.to_owned(),
                grpc_code: code.to_owned(),
            })
            .inc();
        f.handling
            .get_or_create(&MethodLabels { grpc_service: service.to_owned(), grpc_method: method.to_owned() })
            .observe(took.as_secs_f64());
    }

    /// Counts one operation of runtime `runtime`'s adapter (the latency histogram is not
    /// split by runtime: a fleet of 2 000 would make it 2 000 times larger).
    pub fn runtime_operation(&self, runtime: &str, operation: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        let labels = OperationLabels { runtime: runtime.to_owned(), operation, outcome };
        self.families.runtime_ops.get_or_create(&labels).inc();
        self.families.runtime_seconds.get_or_create(&OperationKind { operation }).observe(took.as_secs_f64());
    }

    /// Records a rollout that reached its final `state` after `took`.
    pub fn rollout_finished(&self, state: &'static str, took: Duration) {
        self.families.rollouts.get_or_create(&StateLabels { state }).observe(took.as_secs_f64());
    }

    /// Counts one delivery attempt to `sink` (a configured sink's name: a closed set).
    pub fn outbound_attempt(&self, sink: &str, outcome: &'static str, took: Duration) {
        let f = &self.families;
        f.outbound_attempts.get_or_create(&SinkLabels { sink: sink.to_owned(), outcome }).inc();
        f.outbound_seconds.get_or_create(&SinkName { sink: sink.to_owned() }).observe(took.as_secs_f64());
    }

    /// The families in the OpenMetrics text format, without the closing `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.families.registry).is_err() {
            return String::new();
        }
        // Kept by the log writer, not the registry: rendered here so it is never stale.
        out.push_str(
            "# HELP jhf_warp_log_lines_dropped Log lines dropped because the log writer's buffer was full.\n\
             # TYPE jhf_warp_log_lines_dropped counter\n",
        );
        out.push_str(&format!("jhf_warp_log_lines_dropped_total {}\n", super::dropped_log_lines()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_their_labels() {
        let telemetry = Telemetry::new();
        telemetry.rpc("jhf.warp.v1.MetaService", "GetVersion", "OK", Duration::from_millis(2));
        telemetry.runtime_operation("blue", "observe", false, Duration::from_millis(40));
        telemetry.rollout_finished("SUCCEEDED", Duration::from_secs(3));
        let text = telemetry.encode();
        for line in [
            "grpc_server_handled_total{grpc_service=\"jhf.warp.v1.MetaService\",grpc_method=\"GetVersion\",grpc_code=\"OK\"} 1",
            "grpc_server_handling_seconds_count{grpc_service=\"jhf.warp.v1.MetaService\",grpc_method=\"GetVersion\"} 1",
            "jhf_warp_runtime_operations_total{runtime=\"blue\",operation=\"observe\",outcome=\"error\"} 1",
            "jhf_warp_rollout_duration_seconds_count{state=\"SUCCEEDED\"} 1",
            "jhf_warp_log_lines_dropped_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
