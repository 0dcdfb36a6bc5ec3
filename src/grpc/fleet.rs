//! The fleet's wire side: the runtime registry and fleet views (ControlService), fleet rollouts
//! (DriftService), and their conversions.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::Api;
use super::convert::timestamp;
use super::watch::{EventStream, WatchSource, spawn_watch};
use crate::control::fleet::registry::RegistryRequest;
use crate::control::fleet::rollouts::{CreateFleetRollout, WavePlan};
use crate::control::fleet::views::{Counts, FleetSummary, RuntimeView};
use crate::control::{AppError, AuditContext};
use crate::domain::desired::DesiredInput;
use crate::domain::fleet::rollout::{
    FleetRollout, FleetRolloutState, FleetTarget, TargetState, parse_wave_steps,
};
use crate::domain::fleet::{Credential, RuntimeHealth, RuntimeSource, RuntimeSpec, Selector};
use crate::domain::idempotency::IdempotencyKey;
use crate::pb::v1 as pb;

/// How often WatchFleet looks for changed views.
const WATCH_FLEET_EVERY: Duration = Duration::from_secs(1);

pub fn selector(text: &str) -> Result<Selector, AppError> {
    Selector::parse(text).map_err(|e| AppError::invalid("selector", e.reason))
}

impl From<RuntimeHealth> for pb::RuntimeHealth {
    fn from(value: RuntimeHealth) -> Self {
        match value {
            RuntimeHealth::Healthy => Self::Healthy,
            RuntimeHealth::Degraded => Self::Degraded,
            RuntimeHealth::Unreachable => Self::Unreachable,
            RuntimeHealth::Unknown => Self::Unknown,
            RuntimeHealth::Paused => Self::Paused,
        }
    }
}

fn spec_to_pb(spec: &RuntimeSpec) -> pb::RuntimeSpec {
    let (token_file, token_env) = match &spec.credential {
        Credential::None => (String::new(), String::new()),
        Credential::File(path) => (path.clone(), String::new()),
        Credential::Env(var) => (String::new(), var.clone()),
    };
    pb::RuntimeSpec {
        name: spec.name.clone(),
        address: spec.address.clone(),
        token_file,
        token_env,
        labels: spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        observe_interval_seconds: spec.observe_interval_secs.unwrap_or(0),
        paused: spec.paused,
    }
}

/// A request's definition; both token fields set is a violation the domain names.
fn spec_from_pb(value: Option<pb::RuntimeSpec>) -> Result<RuntimeSpec, AppError> {
    let value = value.ok_or_else(|| AppError::invalid("runtime", "required"))?;
    let credential = match (value.token_file.is_empty(), value.token_env.is_empty()) {
        (true, true) => Credential::None,
        (false, true) => Credential::File(value.token_file),
        (true, false) => Credential::Env(value.token_env),
        (false, false) => {
            return Err(AppError::invalid("runtime.token_env", "token_file and token_env are exclusive"));
        }
    };
    if value.labels.len() > crate::domain::fleet::MAX_LABELS {
        return Err(AppError::invalid(
            "runtime.labels",
            format!("at most {} labels, got {}", crate::domain::fleet::MAX_LABELS, value.labels.len()),
        ));
    }
    Ok(RuntimeSpec {
        name: value.name,
        address: value.address,
        credential,
        labels: value.labels.into_iter().collect::<BTreeMap<_, _>>(),
        observe_interval_secs: (value.observe_interval_seconds > 0).then_some(value.observe_interval_seconds),
        paused: value.paused,
    })
}

fn registered_to_pb(runtime: &crate::domain::fleet::RegisteredRuntime) -> pb::Runtime {
    pb::Runtime {
        spec: Some(spec_to_pb(&runtime.spec)),
        source: match runtime.source {
            RuntimeSource::File => pb::RuntimeSource::File,
            RuntimeSource::Api => pb::RuntimeSource::Api,
        }
        .into(),
        etag: runtime.etag(),
        create_time: Some(timestamp(runtime.created_at)),
        update_time: Some(timestamp(runtime.updated_at)),
        ..Default::default()
    }
}

impl From<&RuntimeView> for pb::Runtime {
    fn from(view: &RuntimeView) -> Self {
        let (active_rollout_id, active_rollout_state) = match &view.active_rollout {
            Some((id, state)) => (id.clone(), state.as_str().to_owned()),
            None => (String::new(), String::new()),
        };
        pb::Runtime {
            owner: view.owner.clone().unwrap_or_default(),
            health: pb::RuntimeHealth::from(view.health).into(),
            health_detail: view.health_detail.clone(),
            last_observation_time: view.last_observed_at.map(timestamp),
            config_hash: view.config_hash.clone(),
            agents: i32::try_from(view.agents).unwrap_or(i32::MAX),
            drift_open: view.drift_open,
            drift_needs_attention: view.drift_needs_attention,
            in_sync: view.in_sync,
            desired_generation: view.desired_generation,
            active_rollout_id,
            active_rollout_state,
            ..registered_to_pb(&view.runtime)
        }
    }
}

fn counts_to_pb(counts: &Counts) -> pb::FleetCounts {
    let n = |value: usize| i32::try_from(value).unwrap_or(i32::MAX);
    pb::FleetCounts {
        runtimes: n(counts.runtimes),
        by_health: counts
            .by_health
            .iter()
            .map(|(health, count)| pb::HealthCount {
                health: pb::RuntimeHealth::from(*health).into(),
                runtimes: n(*count),
            })
            .collect(),
        in_sync: n(counts.in_sync),
        drifting: n(counts.drifting),
        needs_attention: n(counts.needs_attention),
        rollouts_in_flight: n(counts.rollouts_in_flight),
    }
}

impl From<&FleetSummary> for pb::GetFleetSummaryResponse {
    fn from(summary: &FleetSummary) -> Self {
        pb::GetFleetSummaryResponse {
            selector: summary.selector.clone(),
            total: Some(counts_to_pb(&summary.total)),
            by_label: summary
                .by_label
                .iter()
                .map(|((key, value), counts)| pb::LabelCounts {
                    key: key.clone(),
                    value: value.clone(),
                    counts: Some(counts_to_pb(counts)),
                })
                .collect(),
        }
    }
}

pub async fn list_runtimes(
    api: &Api,
    request: pb::ListRuntimesRequest,
) -> Result<pb::ListRuntimesResponse, AppError> {
    let selector = selector(&request.selector)?;
    let (views, next_page_token) =
        api.fleet.list_views(&selector, request.page_size, &request.page_token).await?;
    Ok(pb::ListRuntimesResponse { runtimes: views.iter().map(Into::into).collect(), next_page_token })
}

/// The runtime as the fleet now shows it, after a registry change on this replica.
async fn shown(api: &Api, runtime: &crate::domain::fleet::RegisteredRuntime) -> pb::Runtime {
    match api.fleet.view(&runtime.spec.name).await {
        Ok(view) => (&view).into(),
        // Validate-only, or deregistered: the definition as it is (or was).
        Err(_) => registered_to_pb(runtime),
    }
}

pub async fn register(
    api: &Api,
    request: pb::RegisterRuntimeRequest,
    who: &AuditContext,
    key: &IdempotencyKey,
) -> Result<pb::Runtime, AppError> {
    let spec = spec_from_pb(request.runtime)?;
    let call = RegistryRequest { idempotency: key.clone(), validate_only: request.validate_only };
    let registered = api
        .fleet
        .globals()
        .calls
        .once(key, request.validate_only, api.registry.register(spec, call, who))
        .await?;
    Ok(if request.validate_only { registered_to_pb(&registered) } else { shown(api, &registered).await })
}

pub async fn update(
    api: &Api,
    request: pb::UpdateRuntimeRequest,
    who: &AuditContext,
    key: &IdempotencyKey,
) -> Result<pb::Runtime, AppError> {
    let spec = spec_from_pb(request.runtime)?;
    let call = RegistryRequest { idempotency: key.clone(), validate_only: request.validate_only };
    let updated = api
        .fleet
        .globals()
        .calls
        .once(key, request.validate_only, api.registry.update(spec, &request.etag, call, who))
        .await?;
    Ok(if request.validate_only { registered_to_pb(&updated) } else { shown(api, &updated).await })
}

pub async fn deregister(
    api: &Api,
    request: pb::DeregisterRuntimeRequest,
    who: &AuditContext,
    key: &IdempotencyKey,
) -> Result<pb::Runtime, AppError> {
    let call = RegistryRequest { idempotency: key.clone(), validate_only: request.validate_only };
    let removed = api
        .fleet
        .globals()
        .calls
        .once(key, request.validate_only, api.registry.deregister(&request.name, call, who))
        .await?;
    Ok(registered_to_pb(&removed))
}

/// WatchFleet: every runtime first, then each view that changed, looked for every second (a
/// view changes with the registry, the owner lease, observations, drift and rollouts; a
/// comparison of views catches all of them without a bus per cause).
struct FleetWatch {
    api: Api,
    selector: Selector,
    shown: BTreeMap<String, pb::Runtime>,
}

/// A view without what moves on every observation (the observation time), so an unchanged
/// runtime is not sent again every interval.
fn comparable(runtime: &pb::Runtime) -> pb::Runtime {
    pb::Runtime { last_observation_time: None, ..runtime.clone() }
}

impl FleetWatch {
    async fn changes(&mut self, initial: bool) -> Result<Vec<pb::WatchFleetResponse>, AppError> {
        let views = self.api.fleet.views(&self.selector).await?;
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for view in &views {
            let runtime = pb::Runtime::from(view);
            let name = view.runtime.spec.name.clone();
            seen.insert(name.clone());
            let changed =
                self.shown.get(&name).is_none_or(|before| comparable(before) != comparable(&runtime));
            if changed {
                self.shown.insert(name, runtime.clone());
                out.push(pb::WatchFleetResponse { runtime: Some(runtime), initial, removed: false });
            }
        }
        let gone: Vec<String> = self.shown.keys().filter(|name| !seen.contains(*name)).cloned().collect();
        for name in gone {
            if let Some(runtime) = self.shown.remove(&name) {
                out.push(pb::WatchFleetResponse { runtime: Some(runtime), initial: false, removed: true });
            }
        }
        Ok(out)
    }
}

pub fn watch_fleet(
    api: &Api,
    selector: Selector,
    stop: CancellationToken,
) -> Result<EventStream<pb::WatchFleetResponse>, AppError> {
    let slot = super::watch::watch_slot()?;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let mut watch = FleetWatch { api: api.clone(), selector, shown: BTreeMap::new() };
    tokio::spawn(async move {
        let _slot = slot;
        let mut initial = true;
        let mut ticker = crate::control::every::ticker(WATCH_FLEET_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = sender.closed() => return,
                _ = ticker.tick() => {}
            }
            let messages = match watch.changes(initial).await {
                Ok(messages) => messages,
                Err(error) => {
                    let _ = sender.send(Err(Status::from(error))).await;
                    return;
                }
            };
            initial = false;
            for message in messages {
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
}

impl From<FleetRolloutState> for pb::FleetRolloutState {
    fn from(value: FleetRolloutState) -> Self {
        match value {
            FleetRolloutState::Running => Self::Running,
            FleetRolloutState::Paused => Self::Paused,
            FleetRolloutState::Succeeded => Self::Succeeded,
            FleetRolloutState::Failed => Self::Failed,
            FleetRolloutState::Cancelled => Self::Cancelled,
        }
    }
}

impl From<TargetState> for pb::FleetTargetState {
    fn from(value: TargetState) -> Self {
        match value {
            TargetState::Waiting => Self::Waiting,
            TargetState::Applying => Self::Applying,
            TargetState::Succeeded => Self::Succeeded,
            TargetState::Unchanged => Self::Unchanged,
            TargetState::Failed => Self::Failed,
            TargetState::Skipped => Self::Skipped,
        }
    }
}

impl From<&FleetTarget> for pb::FleetTarget {
    fn from(target: &FleetTarget) -> Self {
        pb::FleetTarget {
            runtime: target.runtime.clone(),
            wave: i32::try_from(target.wave).unwrap_or(i32::MAX),
            state: pb::FleetTargetState::from(target.state).into(),
            rollout_id: target.rollout_id.clone().unwrap_or_default(),
            desired_generation: target.desired_generation.unwrap_or(0),
            restored: target.restored,
            error: target.error.clone().unwrap_or_default(),
            start_time: target.started_at.map(timestamp),
            finish_time: target.finished_at.map(timestamp),
        }
    }
}

impl From<&FleetRollout> for pb::FleetRollout {
    fn from(rollout: &FleetRollout) -> Self {
        pb::FleetRollout {
            id: rollout.id.clone(),
            selector: rollout.selector.clone(),
            revision: rollout.topology.revision.clone(),
            waves: i32::try_from(rollout.waves).unwrap_or(i32::MAX),
            current_wave: i32::try_from(rollout.current_wave).unwrap_or(i32::MAX),
            state: pb::FleetRolloutState::from(rollout.state).into(),
            cancel_requested: rollout.cancel_requested,
            error: rollout.error.clone().unwrap_or_default(),
            actor: rollout.actor.clone(),
            targets: rollout.targets.iter().map(Into::into).collect(),
            create_time: Some(timestamp(rollout.created_at)),
            update_time: Some(timestamp(rollout.updated_at)),
        }
    }
}

/// Decodes CreateFleetRollout.
pub fn create_request(
    request: pb::CreateFleetRolloutRequest,
    key: IdempotencyKey,
) -> Result<CreateFleetRollout, AppError> {
    let topology = request.topology.ok_or_else(|| AppError::invalid("topology", "required"))?;
    let input =
        DesiredInput::try_from(&topology).map_err(|violations| AppError::InvalidArgument { violations })?;
    let waves = match (request.wave_steps.is_empty(), request.waves.is_empty()) {
        (false, false) => return Err(AppError::invalid("waves", "wave_steps and waves are exclusive")),
        (true, true) => WavePlan::Steps(Vec::new()),
        (false, true) => WavePlan::Steps(
            parse_wave_steps(&request.wave_steps.join(","))
                .map_err(|e| AppError::invalid("wave_steps", e))?,
        ),
        (true, false) => {
            if request.waves.len() > crate::domain::fleet::rollout::MAX_WAVES {
                return Err(AppError::invalid(
                    "waves",
                    format!("at most {} waves", crate::domain::fleet::rollout::MAX_WAVES),
                ));
            }
            if request.waves.iter().map(|w| w.runtimes.len()).sum::<usize>()
                > crate::domain::fleet::MAX_RUNTIMES
            {
                return Err(AppError::invalid("waves", "more runtimes than a fleet holds"));
            }
            WavePlan::Explicit(request.waves.into_iter().map(|w| w.runtimes).collect())
        }
    };
    Ok(CreateFleetRollout {
        input,
        selector: request.selector,
        waves,
        idempotency: key,
        validate_only: request.validate_only,
    })
}

/// WatchFleetRollout: its state, then each change, until final.
pub struct FleetRolloutWatch {
    pub api: Api,
    pub id: String,
}

impl WatchSource for FleetRolloutWatch {
    type Event = FleetRollout;
    type Message = pb::WatchFleetRolloutResponse;

    async fn snapshot(&mut self) -> Result<Vec<Self::Message>, AppError> {
        let rollout = self.api.fleet_rollouts.get(&self.id).await?;
        Ok(vec![pb::WatchFleetRolloutResponse { fleet_rollout: Some((&rollout).into()) }])
    }

    fn map(&mut self, event: FleetRollout) -> Option<Self::Message> {
        (event.id == self.id).then(|| pb::WatchFleetRolloutResponse { fleet_rollout: Some((&event).into()) })
    }

    fn is_last(&self, message: &Self::Message) -> bool {
        let state = message.fleet_rollout.as_ref().map(|r| r.state).unwrap_or_default();
        [pb::FleetRolloutState::Succeeded, pb::FleetRolloutState::Failed, pb::FleetRolloutState::Cancelled]
            .iter()
            .any(|last| *last as i32 == state)
    }
}

pub async fn watch_fleet_rollout(
    api: &Api,
    id: String,
    stop: CancellationToken,
) -> Result<EventStream<pb::WatchFleetRolloutResponse>, Status> {
    // Subscribed before the first read: no change falls between the two.
    let events = api.fleet_rollouts.subscribe();
    let mut source = FleetRolloutWatch { api: api.clone(), id: id.clone() };
    let initial = source.snapshot().await?;
    let span = tracing::info_span!("watch_fleet_rollout", fleet_rollout = %id);
    Ok(spawn_watch(source, initial, events, stop, span)?)
}
