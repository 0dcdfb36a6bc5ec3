//! Readiness of the service, per component, published to every interested transport
//! (gRPC health, `/ready`, `GetReadiness`) through one watch channel.

use std::sync::Arc;

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

/// Shared, observable readiness.
#[derive(Clone, Debug)]
pub struct Readiness {
    sender: Arc<watch::Sender<ReadinessSnapshot>>,
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
        Self { sender: Arc::new(sender) }
    }

    /// Returns the current state.
    pub fn snapshot(&self) -> ReadinessSnapshot {
        self.sender.borrow().clone()
    }

    /// Returns a receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<ReadinessSnapshot> {
        self.sender.subscribe()
    }

    /// Marks the store ready (migrated) or not.
    pub fn set_store(&self, ready: bool, detail: impl Into<String>) {
        let state = ComponentState::new(ready, detail);
        self.sender.send_if_modified(|snap| replace(&mut snap.store, state));
    }

    /// Records the outcome of a runtime read. The runtime stays ready once it has answered;
    /// later failures only change the detail (the watchdog owns "unreachable" alerts).
    pub fn record_runtime_read(&self, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        self.sender.send_if_modified(|snap| {
            let ready = ok || snap.runtime.ready;
            replace(&mut snap.runtime, ComponentState::new(ready, detail))
        });
    }

    /// Records whether the periodic reconcile loop keeps its schedule.
    pub fn set_reconcile(&self, ready: bool, detail: impl Into<String>) {
        let state = ComponentState::new(ready, detail);
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
        readiness.record_runtime_read(true, "observed");
        assert!(readiness.snapshot().ready());
        readiness.record_runtime_read(false, "read failed");
        assert!(readiness.snapshot().ready(), "a failure after the first answer keeps it ready");
        readiness.set_reconcile(false, "overdue");
        assert!(readiness.snapshot().ready(), "a stalled loop is reported, not gating");
        assert!(!readiness.snapshot().components()[2].1.ready);
        readiness.begin_shutdown();
        assert!(!readiness.snapshot().ready());
    }
}
