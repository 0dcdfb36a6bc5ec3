//! Reconcile cycles on demand: observe → track drift → (PLAN) plan → (HEAL) roll out, with the
//! HEAL guards of DESIGN §3. A cycle is one scheduler run, idempotent by its cycle id.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Ctx;
use super::observer::ReadCause;
use super::paging::{finish_page, numeric_cursor, page_request};
use super::{AppError, AuditContext, CreateRolloutRequest, HealPlan, ObservationService, RolloutService};
use crate::domain::drift::tracker::TrackedItem;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::patch::{PatchPlan, PlanKind};
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

/// How a cycle ended: the run's final state and message.
type Ended = (RunState, String);

/// Why a cycle's steps stopped before the end: a decision the run records, or an error.
enum Stop {
    Ended(Ended),
    Failed(AppError),
}

impl Stop {
    fn skipped(message: impl Into<String>) -> Self {
        Self::Ended((RunState::Skipped, message.into()))
    }
}

impl From<AppError> for Stop {
    fn from(error: AppError) -> Self {
        Self::Failed(error)
    }
}

fn stop_if_cancelled(cancel: &CancellationToken) -> Result<(), Stop> {
    if cancel.is_cancelled() {
        return Err(Stop::Ended((RunState::Failed, LOST_LEADERSHIP.to_owned())));
    }
    Ok(())
}

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
        self.observations.runtime_name()
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
        let audit = caller.event_in(
            self.runtime(),
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

    /// Runs the cycle's steps and records how it ended on `run`.
    async fn cycle(
        &self,
        run: &mut SchedulerRun,
        caller: &AuditContext,
        cancel: &CancellationToken,
    ) -> Result<(), AppError> {
        let (state, message) = match self.steps(run, caller, cancel).await {
            Ok(ended) | Err(Stop::Ended(ended)) => ended,
            Err(Stop::Failed(error)) => return Err(error),
        };
        run.state = state;
        run.message = message;
        Ok(())
    }

    /// observe → (PLAN, HEAL) plan → (HEAL) roll out; every step may end the cycle early.
    async fn steps(
        &self,
        run: &mut SchedulerRun,
        caller: &AuditContext,
        cancel: &CancellationToken,
    ) -> Result<Ended, Stop> {
        let items = self.observe(run).await?;
        if run.mode == ReconcileMode::Observe {
            return Ok((RunState::Succeeded, format!("observed: {} open drift item(s)", run.open_items)));
        }
        // Generations start at 1: 0 means no desired topology was ever written.
        if run.desired_generation == 0 {
            return Err(Stop::skipped("no desired topology"));
        }
        if run.mode == ReconcileMode::Heal {
            self.hold_heal(run, &items).await?;
        }
        stop_if_cancelled(cancel)?;
        let plan = self.plan(run, &items).await?;
        run.plan_id = Some(plan.id.clone());
        if run.mode == ReconcileMode::Plan || plan.is_empty() {
            return Ok((RunState::Succeeded, format!("planned {} operation(s)", plan.operations.len())));
        }
        stop_if_cancelled(cancel)?;
        self.claim_heal_attempt(run).await?;
        self.roll_out(run, &plan, caller, cancel).await
    }

    /// Observes the runtime and records what the cycle starts from; returns the open items.
    async fn observe(&self, run: &mut SchedulerRun) -> Result<Vec<TrackedItem>, AppError> {
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
        let desired = self.ctx.store.latest_desired(self.ctx.runtime_name()).await?;
        run.desired_generation = desired.as_ref().map(|d| d.generation).unwrap_or(0);
        Ok(items)
    }

    /// The HEAL guards of DESIGN §3 (confirmed, not flapping, not attempted in a row).
    async fn hold_heal(&self, run: &SchedulerRun, items: &[TrackedItem]) -> Result<(), Stop> {
        let attempts = self.heal_attempts().await?;
        match heal_decision(items, &attempts, run.desired_generation, &run.config_hash, self.ctx.clock.now())
        {
            HealDecision::Hold(reason) => Err(Stop::skipped(reason)),
            HealDecision::Heal => Ok(()),
        }
    }

    /// HEAL changes only what is confirmed (and not flapping); PLAN shows the whole way.
    async fn plan(&self, run: &SchedulerRun, items: &[TrackedItem]) -> Result<PatchPlan, Stop> {
        if run.mode != ReconcileMode::Heal {
            return Ok(self.rollouts.plan(PlanKind::Apply).await?.0);
        }
        let acting_on: BTreeSet<String> = actionable(items).iter().map(|i| i.key().to_owned()).collect();
        match self.rollouts.plan_heal(&acting_on).await? {
            // The confirmed items are already gone from the runtime (the tracker resolves them
            // after enough absent observations).
            HealPlan::Ready(plan) if plan.is_empty() => {
                Err(Stop::skipped("nothing to change: the runtime already has what the confirmed items ask"))
            }
            HealPlan::Ready(plan) => Ok(*plan),
            HealPlan::Unsupported(why) => {
                Err(Stop::skipped(format!("the confirmed items alone cannot be applied yet: {why}")))
            }
        }
    }

    /// Once per (desired generation, config hash), decided by a stored key: a cycle racing
    /// this one (a manual HEAL beside a scheduled one) cannot roll out for it too.
    async fn claim_heal_attempt(&self, run: &mut SchedulerRun) -> Result<(), Stop> {
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
            .await
            .map_err(AppError::from)?;
        if !first {
            return Err(Stop::skipped(format!(
                "already attempted once for desired generation {} and config hash {}",
                run.desired_generation, run.config_hash
            )));
        }
        run.heal_attempted = true;
        Ok(())
    }

    async fn roll_out(
        &self,
        run: &mut SchedulerRun,
        plan: &PatchPlan,
        caller: &AuditContext,
        cancel: &CancellationToken,
    ) -> Result<Ended, Stop> {
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
        let message = format!(
            "rollout {} {}{}",
            finished.id,
            finished.state.as_str(),
            finished.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
        Ok((if run.heal_succeeded { RunState::Succeeded } else { RunState::Failed }, message))
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
