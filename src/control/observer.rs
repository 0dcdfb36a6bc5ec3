//! Observing the runtime: read it (with a timeout), derive the topology, record the
//! observation, and keep readiness current.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{AppError, Readiness};
use crate::domain::derive_topology;
use crate::domain::observation::{ObservationRecord, StoredObservation};
use crate::domain::page_token::{PageTokenCodec, effective_page_size};
use crate::runtime::{RuntimeAdapter, RuntimeError};
use crate::store::{NewObservation, Store};

/// Scope of page tokens of `ListObservations`.
const LIST_SCOPE: &str = "ListObservations";

/// Reads the runtime and serves stored observations.
#[derive(Clone)]
pub struct ObservationService {
    runtime: Arc<dyn RuntimeAdapter>,
    store: Store,
    readiness: Readiness,
    page_tokens: PageTokenCodec,
    history_limit: u64,
    runtime_timeout: Duration,
}

impl ObservationService {
    /// Creates the service.
    pub fn new(
        runtime: Arc<dyn RuntimeAdapter>,
        store: Store,
        readiness: Readiness,
        page_tokens: PageTokenCodec,
        history_limit: u64,
        runtime_timeout: Duration,
    ) -> Self {
        Self { runtime, store, readiness, page_tokens, history_limit, runtime_timeout }
    }

    /// Returns the configured runtime address.
    pub fn runtime_address(&self) -> &str {
        self.runtime.address()
    }

    /// Reads the runtime now, records the observation and returns it.
    #[tracing::instrument(skip(self), fields(runtime = self.runtime.address()))]
    pub async fn observe_now(&self) -> Result<StoredObservation, AppError> {
        let read = tokio::time::timeout(self.runtime_timeout, self.runtime.observe()).await;
        let inventory = match read {
            Ok(Ok(inventory)) => inventory,
            Ok(Err(err)) => return Err(self.read_failed(err)),
            Err(_) => return Err(self.read_failed(RuntimeError::Timeout { after: self.runtime_timeout })),
        };
        let topology = derive_topology(&inventory);
        let new = NewObservation {
            runtime: self.runtime.address(),
            inventory: &inventory,
            topology: &topology,
            observed_at: Utc::now(),
        };
        let record = self.store.record_observation(new, self.history_limit).await?;
        self.readiness.record_runtime_read(
            true,
            format!("observed {} ({} agents)", self.runtime.address(), inventory.agents.len()),
        );
        tracing::debug!(observation_id = record.id, revision = %record.revision, "runtime observed");
        Ok(StoredObservation { record, inventory, topology })
    }

    fn read_failed(&self, err: RuntimeError) -> AppError {
        tracing::warn!(runtime = self.runtime.address(), error = %err, "runtime read failed");
        self.readiness.record_runtime_read(false, format!("last read failed: {err}"));
        AppError::Runtime(err)
    }

    /// Returns the most recent stored observation.
    pub async fn latest_stored(&self) -> Result<StoredObservation, AppError> {
        self.store.latest_observation(self.runtime.address()).await?.ok_or_else(|| AppError::NotFound {
            resource: format!("observation of {}", self.runtime.address()),
        })
    }

    /// Lists stored observations newest first; returns the page and the next page token.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ObservationRecord>, String), AppError> {
        let size = effective_page_size(page_size)?;
        let scope = format!("{LIST_SCOPE}:{}", self.runtime.address());
        let before_id = if page_token.is_empty() {
            None
        } else {
            let cursor = self.page_tokens.decode(&scope, page_token)?;
            let id = cursor.parse::<i64>().map_err(|_| AppError::InvalidArgument {
                field: "page_token",
                description: "page token is malformed".to_owned(),
            })?;
            Some(id)
        };
        // One extra row tells whether another page exists without a count query.
        let mut records = self.store.list_observations(self.runtime.address(), before_id, size + 1).await?;
        let next = if records.len() as u64 > size {
            records.truncate(size as usize);
            records
                .last()
                .map(|last| self.page_tokens.encode(&scope, &last.id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((records, next))
    }

    /// Observes until the runtime answers once (backing off 0.5 s → 10 s), or until stopped.
    pub async fn observe_until_first_answer(&self, stop: tokio_util::sync::CancellationToken) {
        let mut delay = Duration::from_millis(500);
        loop {
            if self.observe_now().await.is_ok() {
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}
