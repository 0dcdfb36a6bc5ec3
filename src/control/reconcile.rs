//! Reconcile cycles on demand: observe → track drift → (PLAN) plan → (HEAL) roll out, with the
//! HEAL guards of DESIGN §3. A cycle is one scheduler run, idempotent by its cycle id.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Ctx;
use super::observer::ReadCause;
use super::paging::{finish_page, numeric_cursor, page_request};
use super::{AppError, AuditContext, CreateRolloutRequest, ObservationService, RolloutService};
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::patch::PlanKind;
use crate::domain::reconcile::{
    HealAttempt, HealDecision, ReconcileMode, RunState, SchedulerRun, actionable, heal_decision,
};
use crate::domain::rollout::RolloutState;
use crate::store::{Fence, StartRun};
use tokio_util::sync::CancellationToken;

const LIST_SCOPE: &str = "ListSchedulerRuns";
/// Trigger of a cycle started by the Reconcile RPC.
pub const TRIGGER_MANUAL: &str = "MANUAL";
/// Trigger of a cycle started by the periodic loop.
pub const TRIGGER_SCHEDULED: &str = "SCHEDULED";
const LOST_LEADERSHIP: &str = "stopped: this replica lost the reconciler lease";

/// One cycle to run.
pub struct CycleRequest {
    pub mode: ReconcileMode,
    /// Generated (`manual-…`) when absent.
    pub cycle_id: Option<String>,
    pub trigger: &'static str,
    /// The lease the cycle must start under (scheduled cycles).
    pub fence: Option<Fence>,
    /// Cancelled when the cycle must stop early (leadership lost).
    pub cancel: CancellationToken,
}

/// What running a cycle did.
#[derive(Debug)]
pub enum CycleOutcome {
    Ran(SchedulerRun),
    /// The cycle id had run: the first run.
    Replayed(SchedulerRun),
    /// The fence did not hold; nothing ran.
    Fenced(crate::domain::lease::LeaseError),
    /// The schedule was paused before the cycle could start; nothing ran.
    Paused,
}
/// Longest a HEAL cycle waits for its rollout.
const ROLLOUT_WAIT: Duration = Duration::from_secs(900);

/// Reconcile use cases.
#[derive(Clone)]
pub struct ReconcileService {
    ctx: Ctx,
    observations: ObservationService,
    rollouts: RolloutService,
}

impl ReconcileService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService, rollouts: RolloutService) -> Self {
        Self { ctx: ctx.clone(), observations, rollouts }
    }

    fn runtime(&self) -> &str {
        self.observations.runtime_address()
    }

    /// Runs one cycle on demand; the same cycle id twice returns the first run (`true` =
    /// replayed).
    pub async fn reconcile(
        &self,
        mode: ReconcileMode,
        cycle_id: Option<String>,
        caller: &AuditContext,
    ) -> Result<(SchedulerRun, bool), AppError> {
        let request = CycleRequest {
            mode,
            cycle_id,
            trigger: TRIGGER_MANUAL,
            fence: None,
            cancel: CancellationToken::new(),
        };
        match self.run_cycle(request, caller).await? {
            CycleOutcome::Ran(run) => Ok((run, false)),
            // A cycle id is the call's idempotency key: reused with another mode, or naming a
            // scheduled cycle, it is another request.
            CycleOutcome::Replayed(run) if run.mode != mode || run.trigger != TRIGGER_MANUAL => {
                Err(AppError::invalid("cycle_id", "this cycle_id was already used for a different cycle"))
            }
            CycleOutcome::Replayed(run) => Ok((run, true)),
            CycleOutcome::Fenced(_) | CycleOutcome::Paused => {
                Err(AppError::Internal { detail: "an unfenced cycle was fenced".to_owned() })
            }
        }
    }

    /// Runs one cycle: on demand, or scheduled under the reconciler lease (`fence`).
    pub async fn run_cycle(
        &self,
        request: CycleRequest,
        caller: &AuditContext,
    ) -> Result<CycleOutcome, AppError> {
        let CycleRequest { mode, cycle_id, trigger, fence, cancel } = request;
        let now = self.ctx.clock.now();
        let cycle_id = match cycle_id {
            Some(id) if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(AppError::invalid(
                    "cycle_id",
                    "must be 1..128 printable characters without spaces",
                ));
            }
            Some(id) => id,
            None => super::ids::time_sorted_id("manual", now, "")?,
        };
        let mut run = SchedulerRun {
            cycle_id: cycle_id.clone(),
            mode,
            trigger: trigger.to_owned(),
            state: RunState::Running,
            actor: caller.actor.clone(),
            started_at: now,
            finished_at: None,
            desired_generation: 0,
            config_hash: String::new(),
            open_items: 0,
            actionable_items: 0,
            plan_id: None,
            rollout_id: None,
            heal_attempted: false,
            heal_succeeded: false,
            message: String::new(),
        };
        match self.ctx.store.start_run(self.runtime(), &run, fence.as_ref()).await? {
            StartRun::Started if fence.is_some() => self.ctx.snapshot.put_scheduled_start(run.started_at),
            StartRun::Started => {}
            StartRun::Existing(existing) => return Ok(CycleOutcome::Replayed(existing)),
            StartRun::Fenced(refusal) => return Ok(CycleOutcome::Fenced(refusal)),
            StartRun::Paused => return Ok(CycleOutcome::Paused),
        }
        let outcome = self.cycle(&mut run, caller, &cancel).await;
        run.finished_at = Some(self.ctx.clock.now());
        if let Err(error) = outcome {
            run.state = RunState::Failed;
            run.message = error.public_message();
        }
        let audit = caller.event(
            format!("scheduler-run/{cycle_id}"),
            format!("{} cycle {}: {} — {}", mode.as_str(), cycle_id, run.state.as_str(), run.message),
        );
        self.ctx.store.finish_run(&run, Some(&audit)).await?;
        tracing::info!(cycle_id = %run.cycle_id, mode = mode.as_str(), trigger, state = run.state.as_str(), message = %run.message, "reconcile cycle finished");
        Ok(CycleOutcome::Ran(run))
    }

    /// Marks scheduled runs left RUNNING by a leader that is gone as FAILED. Called by a new
    /// leader: a RUNNING scheduled run of another holder can only belong to a lost leader.
    pub async fn abandon_orphaned_runs(&self, own_actor: &str) -> Result<usize, AppError> {
        let runs = self.ctx.store.list_runs(self.runtime(), None, 50).await?;
        let mut abandoned = 0;
        for (_, mut run) in runs {
            if run.state == RunState::Running && run.trigger == TRIGGER_SCHEDULED && run.actor != own_actor {
                run.state = RunState::Failed;
                run.finished_at = Some(self.ctx.clock.now());
                run.message = format!("abandoned: {} lost the reconciler lease mid-cycle", run.actor);
                self.ctx.store.finish_run(&run, None).await?;
                abandoned += 1;
            }
        }
        Ok(abandoned)
    }

    async fn cycle(
        &self,
        run: &mut SchedulerRun,
        caller: &AuditContext,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        let observed = self.observations.observe_as(true, ReadCause::Requested).await?;
        run.config_hash = observed.observation.inventory.config_hash.clone();
        let items: Vec<TrackedItem> = self
            .ctx
            .store
            .drift_items(self.runtime())
            .await?
            .into_values()
            .filter(|i| i.state.is_open())
            .collect();
        run.open_items = items.len() as i64;
        run.actionable_items = actionable(&items).len() as i64;
        let desired = self.ctx.store.latest_desired().await?;
        run.desired_generation = desired.as_ref().map(|d| d.generation).unwrap_or(0);
        if run.mode == ReconcileMode::Observe {
            run.state = RunState::Succeeded;
            run.message = format!("observed: {} open drift item(s)", run.open_items);
            return Ok(());
        }
        if desired.is_none() {
            run.state = RunState::Skipped;
            run.message = "no desired topology".to_owned();
            return Ok(());
        }
        if run.mode == ReconcileMode::Heal {
            let attempts = self.heal_attempts().await?;
            if let HealDecision::Hold(reason) = heal_decision(
                &items,
                &attempts,
                run.desired_generation,
                &run.config_hash,
                self.ctx.clock.now(),
            ) {
                run.state = RunState::Skipped;
                run.message = reason;
                return Ok(());
            }
        }
        if cancel.is_cancelled() {
            run.state = RunState::Failed;
            run.message = LOST_LEADERSHIP.to_owned();
            return Ok(());
        }
        // HEAL changes only what is confirmed (and not flapping); PLAN shows the whole way.
        let planned = if run.mode == ReconcileMode::Heal {
            let acting_on: BTreeSet<String> = actionable(&items).iter().map(|i| i.key().to_owned()).collect();
            self.rollouts.plan_heal(&acting_on).await
        } else {
            self.rollouts.plan(PlanKind::Apply).await
        };
        let plan = match planned {
            Ok((plan, _)) => plan,
            Err(AppError::FailedPrecondition { reason: "PLAN_UNSUPPORTED", description, .. })
                if run.mode == ReconcileMode::Heal =>
            {
                run.state = RunState::Skipped;
                run.message = format!("the confirmed items alone cannot be applied yet: {description}");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        run.plan_id = Some(plan.id.clone());
        if run.mode == ReconcileMode::Heal && plan.is_empty() {
            // The confirmed items are already gone from the runtime (the tracker resolves them
            // after enough absent observations).
            run.state = RunState::Skipped;
            run.message =
                "nothing to change: the runtime already has what the confirmed items ask".to_owned();
            return Ok(());
        }
        if run.mode == ReconcileMode::Plan || plan.is_empty() {
            run.state = RunState::Succeeded;
            run.message = format!("planned {} operation(s)", plan.operations.len());
            return Ok(());
        }
        if cancel.is_cancelled() {
            run.state = RunState::Failed;
            run.message = LOST_LEADERSHIP.to_owned();
            return Ok(());
        }
        // Once per (desired generation, config hash), decided by a stored key: a cycle racing
        // this one (a manual HEAL beside a scheduled one) cannot roll out for it too.
        let first = self
            .ctx
            .store
            .record_heal_attempt(
                self.runtime(),
                run.desired_generation,
                &run.config_hash,
                &run.cycle_id,
                self.ctx.clock.now(),
            )
            .await?;
        if !first {
            run.state = RunState::Skipped;
            run.message = format!(
                "already attempted once for desired generation {} and config hash {}",
                run.desired_generation, run.config_hash
            );
            return Ok(());
        }
        run.heal_attempted = true;
        let request = CreateRolloutRequest {
            plan_id: plan.id.clone(),
            dry_run: false,
            idempotency: IdempotencyKey {
                scope: "Reconcile".to_owned(),
                request_id: run.cycle_id.clone(),
                fingerprint: plan.id.clone(),
            },
            validate_only: false,
        };
        let rollout = self.rollouts.create(request, caller).await?;
        run.rollout_id = Some(rollout.id.clone());
        let finished = self.rollouts.wait_until_final(&rollout.id, ROLLOUT_WAIT, cancel).await?;
        run.heal_succeeded = finished.state == RolloutState::Succeeded;
        run.state = if run.heal_succeeded { RunState::Succeeded } else { RunState::Failed };
        run.message = format!(
            "rollout {} {}{}",
            finished.id,
            finished.state.as_str(),
            finished.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
        Ok(())
    }

    /// Previous HEAL attempts, newest first.
    async fn heal_attempts(&self) -> Result<Vec<HealAttempt>, AppError> {
        let runs = self.ctx.store.list_runs(self.runtime(), None, 200).await?;
        Ok(runs
            .into_iter()
            .map(|(_, run)| run)
            .filter(|run| run.heal_attempted)
            .map(|run| HealAttempt {
                desired_generation: run.desired_generation,
                config_hash: run.config_hash,
                succeeded: run.heal_succeeded,
                finished_at: run.finished_at.unwrap_or(run.started_at),
            })
            .collect())
    }

    /// Lists runs newest first.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<SchedulerRun>, String), AppError> {
        let scope = format!("{LIST_SCOPE}:{}", self.runtime());
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let before = numeric_cursor(page.cursor)?;
        let rows = self.ctx.store.list_runs(self.runtime(), before, page.size + 1).await?;
        let (rows, next) =
            finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |(seq, _)| seq.to_string());
        Ok((rows.into_iter().map(|(_, run)| run).collect(), next))
    }
}
