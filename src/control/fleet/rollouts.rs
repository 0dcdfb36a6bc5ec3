//! Fleet rollouts: create, read, pause, resume and cancel them, and the driver that carries
//! them out ([`crate::domain::fleet::rollout`] decides; this module acts and records).
//!
//! The driver runs on the replica holding `warp/fleet-rollouts` and writes under that lease's
//! fence; for each runtime of a starting wave it stores the team as the runtime's desired
//! topology and creates an ordinary rollout, both under idempotency keys derived from the
//! fleet rollout's id and the runtime — so a driver that restarts, or another replica's after a
//! SIGKILL, finds what was already done instead of doing it twice. The runtime's rollout is
//! then run by the replica that owns the runtime, as any rollout is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use super::{Cell, Fleet};
use crate::control::desired::PutRequest;
use crate::control::ownership::{KeptLease, replica_caller};
use crate::control::{AppError, AuditContext, CreateRolloutRequest};
use crate::domain::access::Role;
use crate::domain::desired::{DesiredInput, FieldViolation, check_workspaces, validate_desired};
use crate::domain::fleet::Selector;
use crate::domain::fleet::rollout::{
    FleetAction, FleetRollout, FleetRolloutState, TargetState, WaveStep, decide, halt_reason, plan_waves,
};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::patch::PlanKind;
use crate::store::{CreateOutcome, SaveFleetRollout};

/// The lease of the replica that drives fleet rollouts.
pub const DRIVER_LEASE: &str = "warp/fleet-rollouts";
/// How often the driver looks even when nothing woke it (another replica's rollouts finish
/// without telling this one on SQLite).
const DRIVER_TICK: Duration = Duration::from_millis(500);
/// Most fleet rollouts listed per page.
const MAX_PAGE: u64 = 100;

/// How the runtimes are split into waves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WavePlan {
    /// Cumulative steps over the selected runtimes in name order (`1,25%,100%`).
    Steps(Vec<WaveStep>),
    /// The runtimes of each wave, named.
    Explicit(Vec<Vec<String>>),
}

/// A CreateFleetRollout call after transport decoding.
pub struct CreateFleetRollout {
    pub input: DesiredInput,
    pub selector: String,
    pub waves: WavePlan,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

/// Fleet rollout use cases and the driver. Cheap to clone.
#[derive(Clone)]
pub struct FleetRollouts {
    fleet: Fleet,
    wake: Arc<Notify>,
    changes: broadcast::Sender<FleetRollout>,
    /// The newest version of each fleet rollout published to watchers on this replica.
    published: Arc<Mutex<BTreeMap<String, i64>>>,
}

fn precondition(reason: &'static str, id: &str, description: impl Into<String>) -> AppError {
    AppError::FailedPrecondition {
        reason,
        subject: format!("fleet-rollouts/{id}"),
        description: description.into(),
    }
}

impl FleetRollouts {
    pub fn new(fleet: Fleet) -> Self {
        Self {
            fleet,
            wake: Arc::new(Notify::new()),
            changes: broadcast::channel(256).0,
            published: Arc::default(),
        }
    }

    /// Wakes the driver (something changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Subscribes to fleet rollout changes seen by this replica.
    pub fn subscribe(&self) -> broadcast::Receiver<FleetRollout> {
        self.changes.subscribe()
    }

    fn publish(&self, rollout: &FleetRollout) {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if published.get(&rollout.id).is_some_and(|seen| *seen >= rollout.version) {
            return;
        }
        published.insert(rollout.id.clone(), rollout.version);
        while published.len() > 1024 {
            published.pop_first();
        }
        let _ = self.changes.send(rollout.clone());
    }

    /// Re-reads the unfinished and the newest fleet rollouts and publishes their changes
    /// (another replica moved them; a rollout that just ended is among the newest).
    pub async fn refresh(&self) -> Result<(), AppError> {
        let store = &self.fleet.ctx().store;
        for rollout in store
            .unfinished_fleet_rollouts()
            .await?
            .into_iter()
            .chain(store.list_fleet_rollouts(None, 20).await?)
        {
            self.publish(&rollout);
        }
        Ok(())
    }

    /// Checks and stores a new fleet rollout; the driver starts its first wave.
    pub async fn create(
        &self,
        request: CreateFleetRollout,
        caller: &AuditContext,
    ) -> Result<FleetRollout, AppError> {
        let ctx = self.fleet.ctx();
        if let Some(id) = ctx.replayed_id(&request.idempotency).await? {
            return self.get(&id).await;
        }
        let topology = validate_desired(&request.input)
            .map_err(|violations| AppError::InvalidArgument { violations })?;
        let selector =
            Selector::parse(&request.selector).map_err(|e| AppError::invalid("selector", e.reason))?;
        let (waves, skipped) = self.plan(&selector, &request.waves, &request.input)?;
        if waves.is_empty() && skipped.is_empty() {
            return Err(AppError::invalid(
                "selector",
                format!("{:?} matches no registered runtime", request.selector),
            ));
        }
        let now = ctx.clock.now();
        let id = crate::control::ids::time_sorted_id("fr-", now, "")?;
        let rollout =
            FleetRollout::new(id, selector.to_string(), topology, waves, skipped, caller.actor.clone(), now);
        if request.validate_only {
            return Ok(FleetRollout { id: String::new(), ..rollout });
        }
        let audit = caller.event(
            format!("fleet-rollouts/{}", rollout.id),
            format!(
                "fleet rollout of revision {} to {} runtime(s) in {} wave(s) (selector {:?})",
                rollout.topology.revision,
                rollout.targets.iter().filter(|t| t.state == TargetState::Waiting).count(),
                rollout.waves,
                rollout.selector
            ),
        );
        let created = match ctx.store.create_fleet_rollout(&rollout, &request.idempotency, &audit).await? {
            CreateOutcome::Created(created) | CreateOutcome::Replayed(created) => created,
            CreateOutcome::RequestIdReused => return Err(AppError::request_id_reused()),
        };
        self.publish(&created);
        self.wake();
        Ok(created)
    }

    /// The waves, and the runtimes skipped from the start (paused), from the selection.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        selector: &Selector,
        waves: &WavePlan,
        input: &DesiredInput,
    ) -> Result<(Vec<Vec<String>>, Vec<(String, String)>), AppError> {
        let cells = self.fleet.cells();
        let by_name: BTreeMap<&str, &Arc<Cell>> = cells.iter().map(|c| (c.name(), c)).collect();
        let mut violations = Vec::new();
        let named: Vec<Vec<String>> = match waves {
            WavePlan::Steps(steps) => {
                let selected: Vec<String> = cells
                    .iter()
                    .filter(|c| selector.matches(&c.runtime.spec.labels))
                    .map(|c| c.name().to_owned())
                    .collect();
                plan_waves(&selected, steps)
            }
            WavePlan::Explicit(waves) => {
                let mut seen = std::collections::BTreeSet::new();
                for (w, wave) in waves.iter().enumerate() {
                    for (r, name) in wave.iter().enumerate() {
                        let field = format!("waves[{w}].runtimes[{r}]");
                        match by_name.get(name.as_str()) {
                            None => violations
                                .push(FieldViolation::new(field, format!("unknown runtime {name:?}"))),
                            Some(cell) if !selector.matches(&cell.runtime.spec.labels) => {
                                violations.push(FieldViolation::new(
                                    field,
                                    format!("runtime {name} does not match the selector"),
                                ))
                            }
                            Some(_) if !seen.insert(name.clone()) => violations
                                .push(FieldViolation::new(field, format!("runtime {name} is in two waves"))),
                            Some(_) => {}
                        }
                    }
                }
                waves.iter().filter(|w| !w.is_empty()).cloned().collect()
            }
        };
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for wave in named {
            let mut runtimes = Vec::new();
            for name in wave {
                let Some(cell) = by_name.get(name.as_str()) else { continue };
                if cell.runtime.spec.paused {
                    skipped.push((name, "the runtime is paused".to_owned()));
                    continue;
                }
                for violation in check_workspaces(input, &cell.services.ctx.runtime.workspace_policy()) {
                    violations.push(FieldViolation::new(
                        violation.field,
                        format!("on runtime {name}: {}", violation.description),
                    ));
                }
                runtimes.push(name);
            }
            if !runtimes.is_empty() {
                kept.push(runtimes);
            }
        }
        if !violations.is_empty() {
            return Err(AppError::InvalidArgument { violations });
        }
        if kept.len() > crate::domain::fleet::rollout::MAX_WAVES {
            return Err(AppError::invalid(
                "waves",
                format!("at most {} waves", crate::domain::fleet::rollout::MAX_WAVES),
            ));
        }
        Ok((kept, skipped))
    }

    pub async fn get(&self, id: &str) -> Result<FleetRollout, AppError> {
        if id.is_empty() {
            return Err(AppError::invalid("fleet_rollout_id", "required"));
        }
        self.fleet
            .ctx()
            .store
            .fleet_rollout(id)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("fleet rollout {id}") })
    }

    /// One page, newest first.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<FleetRollout>, String), AppError> {
        let codec = &self.fleet.ctx().page_tokens;
        let page = crate::control::paging::page_request(codec, "ListFleetRollouts", page_size, page_token)?;
        let size = page.size.min(MAX_PAGE);
        let rows = self.fleet.ctx().store.list_fleet_rollouts(page.cursor.as_deref(), size + 1).await?;
        Ok(crate::control::paging::finish_page(codec, "ListFleetRollouts", rows, size, |r| r.id.clone()))
    }

    /// Applies a pause, resume or cancel, re-reading on a concurrent change.
    pub async fn transition(
        &self,
        id: &str,
        verb: &'static str,
        change: impl Fn(
            &mut FleetRollout,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<(), crate::domain::fleet::rollout::FleetTransitionError>,
        caller: &AuditContext,
    ) -> Result<FleetRollout, AppError> {
        for _ in 0..10 {
            let mut rollout = self.get(id).await?;
            let now = self.fleet.ctx().clock.now();
            change(&mut rollout, now).map_err(|e| precondition("FLEET_ROLLOUT_STATE", id, e.to_string()))?;
            let audit = caller.event(format!("fleet-rollouts/{id}"), format!("{verb} fleet rollout {id}"));
            match self.fleet.ctx().store.save_fleet_rollout(&rollout, None, Some(&audit)).await? {
                SaveFleetRollout::Saved => {
                    rollout.version += 1;
                    self.publish(&rollout);
                    self.wake();
                    return Ok(rollout);
                }
                SaveFleetRollout::Stale => continue,
                SaveFleetRollout::Fenced(refusal) => {
                    return Err(AppError::bug(format!("unfenced save refused: {refusal}")));
                }
            }
        }
        Err(AppError::Busy {
            reason: "FLEET_ROLLOUT_BUSY",
            description: format!("fleet rollout {id} kept changing; try again"),
            retry_after: Duration::from_secs(1),
        })
    }

    /// Drives fleet rollouts while this replica holds [`DRIVER_LEASE`], until `stop`.
    pub async fn run_driver(&self, lease: Duration, stop: CancellationToken) {
        let globals = self.fleet.globals().clone();
        let caller = replica_caller(&globals.replica_id, "fleet-rollouts");
        let mut held: Option<KeptLease> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(DRIVER_TICK) => {}
            }
            if held.as_ref().is_none_or(|h| !h.is_live()) {
                held = match KeptLease::try_take(
                    &globals.leases,
                    DRIVER_LEASE,
                    &globals.replica_id,
                    lease,
                    &caller,
                )
                .await
                {
                    Ok(taken) => taken,
                    Err(error) => {
                        tracing::debug!(%error, "fleet rollout driver lease: will retry");
                        None
                    }
                };
            }
            let Some(lease) = &held else { continue };
            let rollouts = match self.fleet.ctx().store.unfinished_fleet_rollouts().await {
                Ok(rollouts) => rollouts,
                Err(error) => {
                    tracing::warn!(%error, "reading fleet rollouts failed; will retry");
                    continue;
                }
            };
            for rollout in rollouts {
                if stop.is_cancelled() || !lease.is_live() {
                    break;
                }
                let id = rollout.id.clone();
                if let Err(error) = self.step(rollout, lease).await {
                    tracing::warn!(fleet_rollout = %id, %error, "fleet rollout step failed; will retry");
                }
            }
        }
        if let Some(lease) = held {
            lease.release().await;
        }
    }

    /// Carries one fleet rollout as far as it can go now, saving after every decision.
    async fn step(&self, mut rollout: FleetRollout, lease: &KeptLease) -> Result<(), AppError> {
        for _ in 0..64 {
            let action = decide(&rollout);
            let now = self.fleet.ctx().clock.now();
            match &action {
                FleetAction::Start(runtimes) => {
                    for runtime in runtimes.clone() {
                        self.start_target(&mut rollout, &runtime).await;
                    }
                }
                FleetAction::Restore(runtime) => self.restore_target(&mut rollout, runtime).await,
                FleetAction::Advance | FleetAction::Finish(_) => {
                    if let FleetAction::Finish(FleetRolloutState::Failed) = action {
                        rollout.error = halt_reason(&rollout);
                    }
                    rollout.apply(&action, now);
                }
                FleetAction::Wait => {
                    if !self.observe_targets(&mut rollout).await? {
                        return Ok(());
                    }
                }
            }
            if rollout.error.is_none() {
                rollout.error = halt_reason(&rollout);
            }
            rollout.updated_at = now;
            match self.fleet.ctx().store.save_fleet_rollout(&rollout, Some(lease.fence()), None).await? {
                SaveFleetRollout::Saved => {
                    rollout.version += 1;
                    self.publish(&rollout);
                }
                // A pause or cancel came in: the next pass reads it.
                SaveFleetRollout::Stale => return Ok(()),
                SaveFleetRollout::Fenced(refusal) => {
                    return Err(AppError::Busy {
                        reason: "DRIVER_LEASE_LOST",
                        description: format!("the fleet rollout driver lost its lease: {refusal}"),
                        retry_after: Duration::from_secs(1),
                    });
                }
            }
            if rollout.state.is_final() {
                tracing::info!(fleet_rollout = %rollout.id, state = rollout.state.as_str(), error = ?rollout.error, "fleet rollout ended");
                return Ok(());
            }
        }
        Ok(())
    }

    /// The audit identity of the driver acting for a fleet rollout.
    fn caller_for(&self, rollout: &FleetRollout) -> AuditContext {
        AuditContext {
            actor: rollout.actor.clone(),
            method: "jhf-warp/fleet-rollout".to_owned(),
            request_id: rollout.id.clone(),
            role: Role::Operator,
        }
    }

    fn key(rollout: &FleetRollout, what: &str, runtime: &str, fingerprint: &str) -> IdempotencyKey {
        IdempotencyKey {
            scope: format!("FleetRollout/{what}"),
            request_id: format!("{}/{runtime}", rollout.id),
            fingerprint: fingerprint.to_owned(),
        }
    }

    /// Stores the team on the runtime and starts its rollout (or finds both done before).
    async fn start_target(&self, rollout: &mut FleetRollout, runtime: &str) {
        let now = self.fleet.ctx().clock.now();
        let outcome = self.start_on(rollout, runtime).await;
        let Some(target) = rollout.targets.iter_mut().find(|t| t.runtime == runtime) else { return };
        target.started_at.get_or_insert(now);
        match outcome {
            Ok(Started { previous, generation, rollout_id }) => {
                target.previous_generation = previous;
                target.desired_generation = Some(generation);
                match rollout_id {
                    Some(id) => {
                        target.rollout_id = Some(id);
                        target.state = TargetState::Applying;
                    }
                    None => {
                        target.state = TargetState::Unchanged;
                        target.finished_at = Some(now);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(runtime, %error, "fleet rollout: the runtime could not start");
                target.state = TargetState::Failed;
                target.error = Some(format!("could not start: {}", error.public_message()));
                target.finished_at = Some(now);
            }
        }
    }

    async fn start_on(&self, rollout: &FleetRollout, runtime: &str) -> Result<Started, AppError> {
        let cell = self
            .fleet
            .cell(runtime)
            .ok_or_else(|| AppError::NotFound { resource: format!("runtime {runtime}") })?;
        let services = &cell.services;
        let caller = self.caller_for(rollout);
        let previous = services.ctx.store.latest_desired(runtime).await?;
        let put = services
            .desired
            .put(
                PutRequest {
                    input: DesiredInput::from(&rollout.topology),
                    etag: previous.as_ref().map(|d| d.etag.clone()).unwrap_or_default(),
                    idempotency: Self::key(rollout, "desired", runtime, &rollout.topology.revision),
                    validate_only: false,
                },
                &caller,
            )
            .await?;
        // A replayed put returns the generation it stored; what was before it is one less.
        let generation = put.desired.generation;
        let previous = (generation > 1).then_some(generation - 1);
        let rollout_key = Self::key(rollout, "rollout", runtime, "fleet");
        if let Some(id) = services.ctx.replayed_id(&rollout_key).await? {
            return Ok(Started { previous, generation, rollout_id: Some(id) });
        }
        let (plan, _) = services.rollouts.plan(PlanKind::Apply).await?;
        if plan.is_empty() {
            return Ok(Started { previous, generation, rollout_id: None });
        }
        let created = services
            .rollouts
            .create(
                CreateRolloutRequest {
                    plan_id: plan.id,
                    dry_run: false,
                    idempotency: rollout_key,
                    validate_only: false,
                },
                &caller,
            )
            .await?;
        Ok(Started { previous, generation, rollout_id: Some(created.id) })
    }

    /// Puts a failed runtime's previous desired team back (the observed team when it had
    /// none), so nothing heals it toward the team that failed.
    async fn restore_target(&self, rollout: &mut FleetRollout, runtime: &str) {
        let result = self.restore_on(rollout, runtime).await;
        let Some(target) = rollout.targets.iter_mut().find(|t| t.runtime == runtime) else { return };
        target.restored = true;
        if let Err(error) = result {
            tracing::warn!(runtime, %error, "fleet rollout: putting the previous team back failed");
            let note =
                format!("; its previous desired team could not be put back: {}", error.public_message());
            target.error = Some(format!("{}{note}", target.error.clone().unwrap_or_default()));
        }
    }

    async fn restore_on(&self, rollout: &FleetRollout, runtime: &str) -> Result<(), AppError> {
        let Some(cell) = self.fleet.cell(runtime) else { return Ok(()) };
        let Some(target) = rollout.targets.iter().find(|t| t.runtime == runtime) else { return Ok(()) };
        if target.desired_generation.is_none() {
            return Ok(());
        }
        let services = &cell.services;
        let previous = match target.previous_generation {
            Some(generation) => services.ctx.store.desired_at(runtime, generation).await?.map(|d| d.topology),
            None => services.observations.latest_stored_opt().map(|o| o.topology.clone()),
        };
        let Some(previous) = previous else { return Ok(()) };
        let current = services.ctx.store.latest_desired(runtime).await?;
        services
            .desired
            .put(
                PutRequest {
                    input: DesiredInput::from(&previous),
                    etag: current.map(|d| d.etag).unwrap_or_default(),
                    idempotency: Self::key(rollout, "restore", runtime, &previous.revision),
                    validate_only: false,
                },
                &self.caller_for(rollout),
            )
            .await?;
        Ok(())
    }

    /// Reads the rollouts of the targets in flight; true when any target moved.
    async fn observe_targets(&self, rollout: &mut FleetRollout) -> Result<bool, AppError> {
        let now = self.fleet.ctx().clock.now();
        let mut moved = false;
        for target in rollout.targets.iter_mut().filter(|t| t.state == TargetState::Applying) {
            let Some(id) = target.rollout_id.clone() else { continue };
            let Some(found) = self.fleet.ctx().store.rollout(&id).await? else {
                target.state = TargetState::Failed;
                target.error = Some(format!("rollout {id} vanished"));
                moved = true;
                continue;
            };
            if found.state.is_final() {
                target.observe(found.state, found.error.as_deref(), now);
                moved = true;
            }
        }
        Ok(moved)
    }
}

/// What starting one runtime did.
struct Started {
    previous: Option<i64>,
    generation: i64,
    /// `None`: the runtime already had the team.
    rollout_id: Option<String>,
}
