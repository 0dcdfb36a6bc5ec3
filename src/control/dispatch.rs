//! Classification (pure, with the loaded rules) and dispatch preview (reads only).

use std::sync::Arc;

use super::Ctx;
use super::{AppError, ObservationService};
use crate::domain::classify::{RiskLevel, Rules, TaskInput, TaskProfile, classify, validate_task};
use crate::domain::dispatch::{DispatchFacts, DispatchPreview, preview_dispatch};

/// Classifies tasks with the rules loaded at start-up.
#[derive(Clone)]
pub struct Classifier {
    rules: Arc<Rules>,
}

impl Classifier {
    /// Creates the classifier.
    pub fn new(rules: Arc<Rules>) -> Self {
        Self { rules }
    }

    /// Returns the rules in use.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Validates and classifies a task.
    pub fn classify(&self, task: &TaskInput) -> Result<TaskProfile, AppError> {
        validate_task(task, &self.rules).map_err(|violations| AppError::InvalidArgument { violations })?;
        Ok(classify(task, &self.rules))
    }
}

/// A work item to dispatch.
pub enum WorkItem {
    Task(TaskInput),
    Category { id: String, risk: Option<RiskLevel> },
}

/// A dispatch preview with the classification it was based on.
pub struct DispatchAnswer {
    pub preview: DispatchPreview,
    pub category: String,
    pub risk: RiskLevel,
    pub profile: Option<TaskProfile>,
}

/// Dispatch preview: reads the desired topology, the latest observation, leases and stored
/// watchdog observations; writes nothing.
#[derive(Clone)]
pub struct DispatchService {
    ctx: Ctx,
    observations: ObservationService,
    classifier: Classifier,
}

impl DispatchService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService, classifier: Classifier) -> Self {
        Self { ctx: ctx.clone(), observations, classifier }
    }

    /// Previews dispatching `item`; a control agent calling (`acting_agent`) may dispatch only to
    /// itself or to agents that delegated the `dispatch` right to it.
    pub async fn preview(
        &self,
        item: WorkItem,
        acting_agent: Option<&str>,
    ) -> Result<DispatchAnswer, AppError> {
        let rules = self.classifier.rules();
        let (category, risk, profile) = match item {
            WorkItem::Task(task) => {
                let profile = self.classifier.classify(&task)?;
                let category = rules.category(&profile.category).ok_or_else(|| AppError::NotFound {
                    resource: format!("category {}", profile.category),
                })?;
                (category, profile.risk, Some(profile))
            }
            WorkItem::Category { id, risk } => {
                let category = rules.category(&id).ok_or_else(|| {
                    let known: Vec<&str> = rules.categories.iter().map(|c| c.id.as_str()).collect();
                    AppError::invalid(
                        "category",
                        format!("unknown category \"{id}\"; known: {}", known.join(", ")),
                    )
                })?;
                (category, risk.unwrap_or(category.base_risk), None)
            }
        };
        let runtime = self.observations.runtime_name();
        let desired = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
        let latest = self.observations.latest_stored_opt();
        let (leases, db_now) = self.ctx.store.list_leases(None, 10_000).await?;
        let observations: Vec<_> =
            self.ctx.store.watchdog_observations(runtime).await?.into_values().collect();
        let mut preview = preview_dispatch(&DispatchFacts {
            category,
            risk,
            required_trust: rules.required_trust(risk),
            runtime,
            desired: desired.as_ref().map(|d| &d.topology),
            inventory: latest.as_ref().map(|o| &o.inventory),
            leases: &leases,
            db_now,
            observations: &observations,
        });
        if let (Some(caller), Some(target)) = (acting_agent, preview.target_agent_id.clone())
            && caller != target
            && !crate::domain::delegation::has_right(
                &self.ctx.store.delegations(self.ctx.runtime_name()).await?,
                caller,
                &target,
                "dispatch",
            )
        {
            preview.blockers.push(crate::domain::dispatch::Blocker {
                code: crate::domain::dispatch::BlockCode::NoStanding,
                message: format!(
                    "control agent {caller} has no standing for {target}: no active delegation from {target} with the dispatch right"
                ),
            });
        }
        Ok(DispatchAnswer { preview, category: category.id.clone(), risk, profile })
    }
}
