//! Drift queries and commands: summary, items, acknowledgement, on-demand observation and
//! transition notifications.

use super::AuditContext;
use super::Ctx;
use super::events::DriftEvent;
use super::observer::Observed;
use super::paging::{finish_page, page_request};
use super::{AppError, ObservationService};
use crate::domain::drift::filter::parse;
use std::sync::Arc;

use crate::domain::drift::summary::DriftSummary;
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::idempotency::IdempotencyKey;
use crate::store::AcknowledgeOutcome;

const LIST_SCOPE: &str = "ListDriftItems";

/// The stored answer of `ObserveNow`, replayed on retries.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ObserveNowResult {
    pub summary: DriftSummary,
    pub transitioned: Vec<TrackedItem>,
}

/// Drift use cases.
#[derive(Clone)]
pub struct DriftMonitor {
    ctx: Ctx,
    observations: ObservationService,
}

impl DriftMonitor {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService) -> Self {
        Self { ctx: ctx.clone(), observations }
    }

    fn runtime(&self) -> &str {
        self.observations.runtime_name()
    }

    /// Returns the summary of the stored state (from the snapshot).
    pub fn summary(&self) -> Arc<DriftSummary> {
        self.ctx.snapshot.summary()
    }

    /// Lists items sorted by key, filtered.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        filter: &str,
    ) -> Result<(Vec<TrackedItem>, String), AppError> {
        let parsed = parse(filter).map_err(|description| AppError::invalid("filter", description))?;
        // The filter is part of the token scope: a token cannot be replayed with another filter.
        let scope = format!("{LIST_SCOPE}:{}:{filter}", self.runtime());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let items = self.ctx.snapshot.drift_items();
        let rows: Vec<TrackedItem> = items
            .values()
            .filter(|item| parsed.matches(item))
            .filter(|item| page.cursor.as_deref().is_none_or(|after| item.key() > after))
            .take(page.size as usize + 1)
            .cloned()
            .collect();
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |item| item.key().to_owned()))
    }

    /// Returns one item.
    pub async fn get(&self, key: &str) -> Result<TrackedItem, AppError> {
        if key.is_empty() {
            return Err(AppError::invalid("key", "required"));
        }
        self.ctx
            .snapshot
            .drift_items()
            .get(key)
            .cloned()
            .ok_or_else(|| AppError::NotFound { resource: format!("drift item {key}") })
    }

    /// Acknowledges an item (idempotent by request id).
    pub async fn acknowledge(
        &self,
        key: &str,
        caller: &AuditContext,
        idempotency: &IdempotencyKey,
        validate_only: bool,
    ) -> Result<TrackedItem, AppError> {
        if validate_only {
            return self.get(key).await;
        }
        if key.is_empty() {
            return Err(AppError::invalid("key", "required"));
        }
        let now = self.ctx.clock.now();
        let audit = caller.event_in(
            self.runtime(),
            format!("drift-item/{key}"),
            format!("acknowledged drift item {key}"),
        );
        match self
            .ctx
            .store
            .acknowledge_drift_item(self.runtime(), key, &caller.actor, idempotency, now, &audit)
            .await?
        {
            AcknowledgeOutcome::Acknowledged(item) => {
                tracing::info!(key, by = %caller.actor, "drift item acknowledged");
                self.ctx.snapshot.put_drift_item(item.clone());
                Ok(item)
            }
            AcknowledgeOutcome::Replayed(item) => Ok(item),
            AcknowledgeOutcome::NotFound => Err(AppError::NotFound { resource: format!("drift item {key}") }),
            AcknowledgeOutcome::RequestIdReused => Err(AppError::request_id_reused()),
        }
    }

    /// Observes now (idempotent by request id) and returns the summary and transitions.
    pub async fn observe_now(
        &self,
        idempotency: &IdempotencyKey,
        validate_only: bool,
        caller: &AuditContext,
    ) -> Result<ObserveNowResult, AppError> {
        if validate_only {
            return Ok(result_of(self.observations.observe(false).await?));
        }
        if let Some(answer) = self.ctx.replayed(idempotency).await? {
            return Ok(answer);
        }
        let audit = caller.event(format!("runtime/{}", self.runtime()), "observed the runtime on request");
        let result = result_of(self.observations.observe_audited(&audit).await?);
        self.ctx.store.remember_answer(idempotency, &result, self.ctx.clock.now()).await?;
        Ok(result)
    }

    /// Returns the open items (for the initial events of a watch stream).
    pub fn open_items(&self) -> Vec<TrackedItem> {
        self.ctx.snapshot.drift_items().values().filter(|item| item.state.is_open()).cloned().collect()
    }

    /// Subscribes to drift transitions.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<DriftEvent> {
        self.ctx.events.drift()
    }
}

fn result_of(observed: Observed) -> ObserveNowResult {
    ObserveNowResult {
        summary: observed.summary,
        transitioned: observed.transitions.into_iter().map(|(item, _)| item).collect(),
    }
}
