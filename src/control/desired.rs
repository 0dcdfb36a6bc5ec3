//! Desired topology: validated, versioned (etag), idempotent writes; reads, comparisons,
//! the agent catalog and change notifications.

use super::AuditContext;
use super::Ctx;
use super::events::TopologyEvent;
use super::paging::{finish_page, numeric_cursor, page_request};
use super::{AppError, ObservationService};
use crate::domain::Topology;
use std::sync::Arc;

use crate::domain::catalog::AgentCatalog;
use crate::domain::desired::{DesiredInput, DesiredRevision, check_workspaces, etag, validate_desired};
use crate::domain::drift::{DriftDifference, diff_topologies};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::observation::StoredObservation;
use crate::store::PutDesiredOutcome;

const LIST_SCOPE: &str = "ListTopologyRevisions";

/// Where a topology for a comparison comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologySelector {
    DesiredGeneration(i64),
    LatestDesired,
    Observed,
}

/// The result of a put.
#[derive(Debug, Clone)]
pub struct PutResult {
    pub desired: DesiredRevision,
    pub validate_only: bool,
}

/// A put request after transport decoding.
pub struct PutRequest {
    pub input: DesiredInput,
    pub etag: String,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

/// Desired topology use cases.
#[derive(Clone)]
pub struct DesiredTopologyService {
    ctx: Ctx,
    observations: ObservationService,
}

impl DesiredTopologyService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService) -> Self {
        Self { ctx: ctx.clone(), observations }
    }

    /// Validates and (unless `validate_only`) stores a new desired revision.
    pub async fn put(&self, request: PutRequest, caller: &AuditContext) -> Result<PutResult, AppError> {
        let topology = validate_desired(&request.input)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let violations = check_workspaces(&request.input, &self.ctx.runtime.workspace_policy());
        if !violations.is_empty() {
            return Err(AppError::InvalidArgument { violations });
        }
        let now = self.ctx.clock.now();
        if request.validate_only {
            let latest = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
            check_etag(latest.as_ref().map(|d| d.etag.as_str()), &request.etag)?;
            let generation = latest.map(|d| d.generation).unwrap_or(0) + 1;
            let desired = DesiredRevision {
                generation,
                etag: etag(generation, &topology.revision),
                author: caller.actor.clone(),
                created_at: now,
                topology,
            };
            return Ok(PutResult { desired, validate_only: true });
        }
        let audit = caller.event_in(
            self.ctx.runtime_name(),
            "desired-topology",
            format!(
                "stored a desired topology: {} agents, {} edges, {} routes, revision {}",
                topology.nodes.len(),
                topology.edges.len(),
                topology.routes.len(),
                topology.revision
            ),
        );
        let outcome = self
            .ctx
            .store
            .put_desired(
                self.ctx.runtime_name(),
                &request.etag,
                &topology,
                &caller.actor,
                &request.idempotency,
                now,
                &audit,
            )
            .await?;
        match outcome {
            PutDesiredOutcome::Stored(desired) => {
                tracing::info!(generation = desired.generation, author = %caller.actor, revision = %desired.topology.revision, "desired topology stored");
                self.ctx.snapshot.put_desired(desired.clone());
                self.ctx.events.publish_topology(TopologyEvent::Desired(desired.clone()));
                Ok(PutResult { desired, validate_only: false })
            }
            PutDesiredOutcome::Replayed(desired) => Ok(PutResult { desired, validate_only: false }),
            PutDesiredOutcome::EtagMismatch { current } => {
                Err(etag_mismatch(current.as_deref(), &request.etag))
            }
            PutDesiredOutcome::RequestIdReused => Err(AppError::request_id_reused()),
        }
    }

    /// Returns the revision of `generation` (0 = latest).
    pub async fn get(&self, generation: i64) -> Result<DesiredRevision, AppError> {
        if generation < 0 {
            return Err(AppError::invalid("generation", "must not be negative"));
        }
        let found = if generation == 0 {
            self.ctx.snapshot.desired().map(|d| (*d).clone())
        } else {
            self.ctx.store.desired_at(self.ctx.runtime_name(), generation).await?
        };
        found.ok_or_else(|| AppError::NotFound {
            resource: if generation == 0 {
                "desired topology".to_owned()
            } else {
                format!("desired generation {generation}")
            },
        })
    }

    /// Returns the latest desired revision, if any (from the snapshot).
    pub fn latest(&self) -> Option<Arc<DesiredRevision>> {
        self.ctx.snapshot.desired()
    }

    /// Lists revisions newest first.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<DesiredRevision>, String), AppError> {
        let page = page_request(&self.ctx.page_tokens, LIST_SCOPE, page_size, page_token)?;
        let before = numeric_cursor(page.cursor)?;
        let rows = self.ctx.store.list_desired(self.ctx.runtime_name(), before, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, LIST_SCOPE, rows, page.size, |r| r.generation.to_string()))
    }

    async fn resolve(&self, selector: TopologySelector, field: &'static str) -> Result<Topology, AppError> {
        match selector {
            TopologySelector::DesiredGeneration(generation) if generation <= 0 => Err(AppError::invalid(
                format!("{field}.generation"),
                "must be positive for TOPOLOGY_SOURCE_DESIRED_GENERATION",
            )),
            TopologySelector::DesiredGeneration(generation) => Ok(self.get(generation).await?.topology),
            TopologySelector::LatestDesired => Ok(self.get(0).await?.topology),
            TopologySelector::Observed => Ok(self.observations.latest_stored()?.topology.clone()),
        }
    }

    /// Compares two topologies; `base` is the reference.
    pub async fn diff(
        &self,
        base: TopologySelector,
        target: TopologySelector,
    ) -> Result<(String, String, Vec<DriftDifference>), AppError> {
        let base = self.resolve(base, "base").await?;
        let target = self.resolve(target, "target").await?;
        let differences = diff_topologies(&base, &target);
        Ok((base.revision, target.revision, differences))
    }

    /// Returns the agent catalog of the stored state (no runtime read, so it is repeatable).
    pub fn catalog(&self) -> Arc<AgentCatalog> {
        self.ctx.snapshot.catalog()
    }

    /// Returns the current desired revision and observed topology (for watch streams).
    pub fn current(&self) -> (Option<Arc<DesiredRevision>>, Option<Arc<StoredObservation>>) {
        (self.ctx.snapshot.desired(), self.observations.latest_stored_opt())
    }

    /// Subscribes to topology changes.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TopologyEvent> {
        self.ctx.events.topology()
    }
}

fn check_etag(current: Option<&str>, given: &str) -> Result<(), AppError> {
    if current.unwrap_or("") == given { Ok(()) } else { Err(etag_mismatch(current, given)) }
}

fn etag_mismatch(current: Option<&str>, given: &str) -> AppError {
    let description = match (current, given.is_empty()) {
        (None, _) => {
            "no desired topology exists yet: create the first revision with an empty etag".to_owned()
        }
        (Some(current), true) => {
            format!("a desired topology exists: pass its etag (current etag is {current})")
        }
        (Some(current), false) => format!("etag {given} is stale: the current etag is {current}"),
    };
    AppError::FailedPrecondition {
        reason: "ETAG_MISMATCH",
        subject: "desired-topology".to_owned(),
        description,
    }
}
