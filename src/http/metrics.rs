//! `GET /metrics`: OpenMetrics 1.0 text. READ: needs a bearer token. The gauges read from the
//! store at scrape time come first, then the counters and histograms the process keeps (RPCs,
//! runtime operations, rollouts; see `telemetry`).

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::control::metrics::RuntimeMetrics;
use crate::control::{MetricsService, MetricsSnapshot};

/// Serves the metrics; 503 (with the public reason) when the store cannot be read.
pub async fn metrics(State(service): State<MetricsService>) -> Response {
    match service.collect().await {
        Ok(snapshot) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            format!("{}{}# EOF\n", render(&snapshot), service.telemetry().encode()),
        )
            .into_response(),
        Err(error) => crate::grpc::status::refusal_for(false, error),
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// Renders a snapshot in the text exposition format.
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = Exposition(String::new());
    out.family("jhf_warp_build_info", "gauge", "Build of this replica (always 1).");
    out.sample(
        "jhf_warp_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("git_sha", env!("JHF_WARP_GIT_SHA"))],
        1.0,
    );
    out.family("jhf_warp_ready", "gauge", "1 when store and runtime are ready and shutdown has not begun.");
    out.sample("jhf_warp_ready", &[], flag(s.ready));
    out.family(
        "jhf_warp_component_ready",
        "gauge",
        "Readiness per component (reconcile is reported, not gating).",
    );
    for (component, ready) in &s.components {
        out.sample("jhf_warp_component_ready", &[("component", component)], flag(*ready));
    }
    out.family("jhf_warp_runtimes", "gauge", "Runtimes of the fleet by health.");
    for (health, count) in &s.runtimes_by_health {
        out.sample("jhf_warp_runtimes", &[("health", health)], *count as f64);
    }
    out.family("jhf_warp_outbound_deliveries", "gauge", "Outbound event deliveries by sink and state.");
    for (sink, state, count) in &s.outbound {
        out.sample(
            "jhf_warp_outbound_deliveries",
            &[("sink", sink), ("state", state.as_str())],
            *count as f64,
        );
    }
    out.family("jhf_warp_leases", "gauge", "Leases known, and those held by a live holder (database clock).");
    out.sample("jhf_warp_leases", &[("held", "false")], (s.leases_total - s.leases_held) as f64);
    out.sample("jhf_warp_leases", &[("held", "true")], s.leases_held as f64);
    render_runtimes(&mut out, &s.runtimes);
    out.0
}

/// The per-runtime families, every sample labelled with its runtime: counts, then the loops.
fn render_runtimes(out: &mut Exposition, runtimes: &[RuntimeMetrics]) {
    out.family("jhf_warp_drift_items", "gauge", "Tracked drift items by runtime, state and severity.");
    for r in runtimes {
        for ((state, severity), count) in &r.drift_items {
            out.sample(
                "jhf_warp_drift_items",
                &[("runtime", &r.runtime), ("state", state), ("severity", severity)],
                *count as f64,
            );
        }
    }
    out.family(
        "jhf_warp_watchdog_observations_open",
        "gauge",
        "Open watchdog observations by runtime, kind and severity.",
    );
    for r in runtimes {
        for ((kind, severity), count) in &r.watchdog_open {
            out.sample(
                "jhf_warp_watchdog_observations_open",
                &[("runtime", &r.runtime), ("kind", kind), ("severity", severity)],
                *count as f64,
            );
        }
    }
    out.family(
        "jhf_warp_rollouts",
        "gauge",
        "Rollouts by runtime and state (the 500 most recent of the fleet).",
    );
    for r in runtimes {
        for (state, count) in &r.rollouts {
            out.sample("jhf_warp_rollouts", &[("runtime", &r.runtime), ("state", state)], *count as f64);
        }
    }
    out.family(
        "jhf_warp_scheduler_runs",
        "gauge",
        "Reconcile cycles by runtime, trigger and state (the 500 most recent of the fleet).",
    );
    for r in runtimes {
        for ((trigger, state), count) in &r.runs {
            out.sample(
                "jhf_warp_scheduler_runs",
                &[("runtime", &r.runtime), ("trigger", trigger), ("state", state)],
                *count as f64,
            );
        }
    }
    render_runtime_loops(out, runtimes);
}

/// The per-runtime gauges of the reconcile and observation loops.
fn render_runtime_loops(out: &mut Exposition, runtimes: &[RuntimeMetrics]) {
    out.family(
        "jhf_warp_reconcile_leader",
        "gauge",
        "1 when this replica holds the runtime's reconciler lease.",
    );
    for r in runtimes {
        out.sample("jhf_warp_reconcile_leader", &[("runtime", &r.runtime)], flag(r.is_leader));
    }
    out.family(
        "jhf_warp_reconcile_schedule_paused",
        "gauge",
        "1 while the runtime's reconcile schedule is paused.",
    );
    for r in runtimes {
        out.sample("jhf_warp_reconcile_schedule_paused", &[("runtime", &r.runtime)], flag(r.schedule.paused));
    }
    out.family("jhf_warp_reconcile_interval_seconds", "gauge", "Interval of scheduled reconcile cycles.");
    for r in runtimes {
        out.sample(
            "jhf_warp_reconcile_interval_seconds",
            &[("runtime", &r.runtime)],
            r.schedule.interval_secs as f64,
        );
    }
    out.family(
        "jhf_warp_last_scheduled_cycle_timestamp_seconds",
        "gauge",
        "Start of the runtime's newest scheduled reconcile cycle (absent before the first).",
    );
    for r in runtimes {
        if let Some(at) = r.last_scheduled_start {
            out.sample(
                "jhf_warp_last_scheduled_cycle_timestamp_seconds",
                &[("runtime", &r.runtime)],
                at.timestamp() as f64,
            );
        }
    }
    out.family(
        "jhf_warp_last_observation_timestamp_seconds",
        "gauge",
        "When the runtime was last observed (absent before the first observation).",
    );
    for r in runtimes {
        if let Some(at) = r.last_observation {
            out.sample(
                "jhf_warp_last_observation_timestamp_seconds",
                &[("runtime", &r.runtime)],
                at.timestamp() as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
