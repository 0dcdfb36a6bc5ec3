//! Readiness of the service, per component, published to every interested transport
//! (gRPC health, `/ready`, `GetReadiness`) through one watch channel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The state of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentState {
    pub ready: bool,
    pub detail: String,
}

impl ComponentState {
    fn new(ready: bool, detail: impl Into<String>) -> Self {
        Self { ready, detail: detail.into() }
    }
}

/// A point-in-time view of readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessSnapshot {
    pub store: ComponentState,
    pub runtime: ComponentState,
    /// The periodic reconcile loop (cluster-wide). It is reported, but does not gate overall
    /// readiness: a stalled loop is a background problem every replica would share, and
    /// taking all of them out of service would turn it into an API outage.
    pub reconcile: ComponentState,
    pub shutting_down: bool,
    pub warnings: Vec<String>,
}

impl ReadinessSnapshot {
    /// Returns true when every component is ready and shutdown has not begun.
    pub fn ready(&self) -> bool {
        self.store.ready && self.runtime.ready && !self.shutting_down
    }

    /// Returns the components in their stable order.
    pub fn components(&self) -> [(&'static str, ComponentState); 4] {
        let shutdown = if self.shutting_down {
            ComponentState::new(false, "shutting down")
        } else {
            ComponentState::new(true, "running")
        };
        [
            ("store", self.store.clone()),
            ("runtime", self.runtime.clone()),
            ("reconcile", self.reconcile.clone()),
            ("shutdown", shutdown),
        ]
    }
}

/// What each runtime of the fleet has answered: whether it ever did, and the last detail.
#[derive(Debug, Default)]
struct Reads {
    /// Runtime name → (answered at least once, last detail).
    runtimes: BTreeMap<String, (bool, String)>,
    /// Runtime name → whether its periodic reconcile loop keeps its schedule, and why not.
    reconcile: BTreeMap<String, (bool, String)>,
}

impl Reads {
    /// The `runtime` component. One runtime (the `--runtime` deployment): ready once it has
    /// answered, as before fleets. Several: ready once any has answered, so one unreachable
    /// Gateway never takes the whole control plane out of service (each runtime's health is in
    /// `ListRuntimes`). None: ready.
    fn component(&self) -> ComponentState {
        match self.runtimes.len() {
            0 => ComponentState::new(true, "no runtimes registered"),
            1 => {
                let (answered, detail) = self.runtimes.values().next().cloned().unwrap_or_default();
                ComponentState::new(answered, detail)
            }
            n => {
                let answered = self.runtimes.values().filter(|(answered, _)| *answered).count();
                let silent: Vec<&str> = self
                    .runtimes
                    .iter()
                    .filter(|(_, (answered, _))| !answered)
                    .map(|(name, _)| name.as_str())
                    .take(5)
                    .collect();
                let detail = if silent.is_empty() {
                    format!("all {n} runtimes answered")
                } else {
                    format!("{answered} of {n} runtimes answered; not yet: {}", silent.join(", "))
                };
                ComponentState::new(answered > 0, detail)
            }
        }
    }
}

/// Shared, observable readiness.
#[derive(Clone, Debug)]
pub struct Readiness {
    sender: Arc<watch::Sender<ReadinessSnapshot>>,
    reads: Arc<Mutex<Reads>>,
}

impl Readiness {
    /// Starts with nothing ready and the given standing warnings.
    pub fn new(warnings: Vec<String>) -> Self {
        let (sender, _) = watch::channel(ReadinessSnapshot {
            store: ComponentState::new(false, "not migrated yet"),
            runtime: ComponentState::new(false, "no observation yet"),
            reconcile: ComponentState::new(true, "waiting for the first scheduled cycle"),
            shutting_down: false,
            warnings,
        });
        Self { sender: Arc::new(sender), reads: Arc::default() }
    }

    /// Returns the current state.
    pub fn snapshot(&self) -> ReadinessSnapshot {
        self.sender.borrow().clone()
    }

    /// Returns a receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<ReadinessSnapshot> {
        self.sender.subscribe()
    }

    /// Adds a standing warning (one learnt after start, e.g. a read-only runtime adapter).
    pub fn add_warning(&self, warning: impl Into<String>) {
        let warning = warning.into();
        self.sender.send_if_modified(|snap| {
            if snap.warnings.contains(&warning) {
                return false;
            }
            snap.warnings.push(warning);
            true
        });
    }

    /// Marks the store ready (migrated) or not.
    pub fn set_store(&self, ready: bool, detail: impl Into<String>) {
        let state = ComponentState::new(ready, detail);
        self.sender.send_if_modified(|snap| replace(&mut snap.store, state));
    }

    /// Records the outcome of a read of `runtime`. A runtime stays answered once it has
    /// answered; later failures only change the detail (the watchdog owns "unreachable").
    pub fn record_runtime_read(&self, runtime: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let component = {
            let mut reads = self.reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = reads.runtimes.entry(runtime.to_owned()).or_default();
            *entry = (entry.0 || ok, detail);
            reads.component()
        };
        self.sender.send_if_modified(|snap| replace(&mut snap.runtime, component));
    }

    /// The last read of `runtime` as this replica recorded it: whether it ever answered, and
    /// the detail of the latest read (`None` before any read).
    pub fn runtime_read(&self, runtime: &str) -> Option<(bool, String)> {
        let reads = self.reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        reads.runtimes.get(runtime).cloned()
    }

    /// Sets the runtimes of the fleet (those no longer listed are forgotten).
    pub fn set_runtimes<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let component = {
            let mut reads = self.reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let before = std::mem::take(&mut reads.runtimes);
            for name in names {
                let entry = before.get(name).cloned().unwrap_or((false, "no observation yet".to_owned()));
                reads.runtimes.insert(name.to_owned(), entry);
            }
            reads.component()
        };
        self.sender.send_if_modified(|snap| replace(&mut snap.runtime, component));
    }

    /// Records whether `runtime`'s periodic reconcile loop keeps its schedule.
    pub fn set_reconcile(&self, runtime: &str, ready: bool, detail: impl Into<String>) {
        let state = {
            let mut reads = self.reads.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            reads.reconcile.insert(runtime.to_owned(), (ready, detail.into()));
            let Reads { runtimes, reconcile } = &mut *reads;
            reconcile.retain(|name, _| runtimes.is_empty() || runtimes.contains_key(name));
            let late: Vec<String> = reads
                .reconcile
                .iter()
                .filter(|(_, (ready, _))| !ready)
                .map(|(name, (_, detail))| format!("{name}: {detail}"))
                .take(5)
                .collect();
            match (reads.reconcile.len(), late.is_empty()) {
                (1, _) => {
                    let (ready, detail) = reads.reconcile.values().next().cloned().unwrap_or_default();
                    ComponentState::new(ready, detail)
                }
                (n, true) => ComponentState::new(true, format!("on schedule on all {n} runtimes")),
                (_, false) => ComponentState::new(false, late.join("; ")),
            }
        };
        self.sender.send_if_modified(|snap| replace(&mut snap.reconcile, state));
    }

    /// Marks the beginning of shutdown: from now on the service is not ready.
    pub fn begin_shutdown(&self) {
        self.sender.send_if_modified(|snap| !std::mem::replace(&mut snap.shutting_down, true));
    }
}

/// Probes the database every `period` until `stop`, turning the `store` component (and with it
/// `/ready` and health `""`) NOT_SERVING at the first failed probe and back at the first good
/// one: a replica whose database went away leaves load balancing within two probe periods.
pub async fn watch_store(
    store: crate::store::Store,
    readiness: Readiness,
    period: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = super::every::ticker(period);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let was_ready = readiness.snapshot().store.ready;
        match store.ping(period).await {
            Ok(()) if !was_ready => {
                tracing::info!(backend = store.backend_name(), "the database answers again");
                readiness.set_store(true, format!("migrated ({}); answering", store.backend_name()));
            }
            Ok(()) => {}
            Err(error) if was_ready => {
                tracing::warn!(%error, "the database does not answer; not ready until it does");
                // The detail is public (`/ready` is OPEN): the driver's text stays in the log.
                readiness.set_store(false, "the database does not answer; see the log");
            }
            Err(_) => {}
        }
    }
}

fn replace(slot: &mut ComponentState, state: ComponentState) -> bool {
    if *slot == state {
        return false;
    }
    *slot = state;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_store_and_runtime_and_ends_with_shutdown() {
        let readiness = Readiness::new(vec![]);
        assert!(!readiness.snapshot().ready());
        readiness.set_store(true, "migrated");
        assert!(!readiness.snapshot().ready());
        readiness.set_runtimes(["default"]);
        assert!(!readiness.snapshot().ready(), "the one runtime has not answered");
        readiness.record_runtime_read("default", true, "observed");
        assert!(readiness.snapshot().ready());
        readiness.record_runtime_read("default", false, "read failed");
        assert!(readiness.snapshot().ready(), "a failure after the first answer keeps it ready");
        readiness.set_reconcile("default", false, "overdue");
        assert!(readiness.snapshot().ready(), "a stalled loop is reported, not gating");
        assert!(!readiness.snapshot().components()[2].1.ready);
        readiness.begin_shutdown();
        assert!(!readiness.snapshot().ready());
    }

    #[test]
    fn in_a_fleet_one_silent_runtime_does_not_take_the_service_out() {
        let readiness = Readiness::new(vec![]);
        readiness.set_store(true, "migrated");
        readiness.set_runtimes(["a", "b", "c"]);
        assert!(!readiness.snapshot().ready(), "nothing answered yet");
        readiness.record_runtime_read("a", true, "observed");
        let snapshot = readiness.snapshot();
        assert!(snapshot.ready());
        assert_eq!(snapshot.runtime.detail, "1 of 3 runtimes answered; not yet: b, c");
        readiness.set_runtimes(["a"]);
        assert_eq!(readiness.snapshot().runtime.detail, "observed", "a deregistered runtime is forgotten");
        readiness.set_runtimes([]);
        assert!(readiness.snapshot().ready(), "no runtimes: nothing to wait for");
    }
}
