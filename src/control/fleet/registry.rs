//! The runtime registry's use cases: register, update and deregister runtimes by RPC, and keep
//! the runtimes file's runtimes in the store (read at start, again when the file changes and on
//! SIGHUP). Definitions are checked before anything is stored — the name rule, the address
//! scheme, labels, the interval, and that a token file exists and is owner-only or a token
//! variable is set — and a bad runtimes file is refused whole, keeping the set that was.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Fleet, RuntimeFactory};
use crate::control::{AppError, AuditContext};
use crate::domain::desired::FieldViolation;
use crate::domain::fleet::{
    DEFAULT_RUNTIME, RegisteredRuntime, RuntimeSpec, RuntimesFileError, parse_runtimes_file, validate_spec,
};
use crate::domain::idempotency::IdempotencyKey;
use crate::store::{RegistryChange, RegistryOutcome};

/// Where the runtimes come from besides RPCs.
#[derive(Debug, Clone)]
pub enum RuntimesSource {
    /// `--runtimes-file`: the file's runtimes.
    File(PathBuf),
    /// `--runtime`: one runtime named `default`.
    Single(Box<RuntimeSpec>),
}

/// Why the runtimes file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("runtimes file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("runtimes file {path}: {error}")]
    Invalid { path: PathBuf, error: RuntimesFileError },
    #[error("runtimes file {path}: storing it: {error}")]
    Store { path: PathBuf, error: AppError },
}

/// Registry use cases.
#[derive(Clone)]
pub struct RegistryService {
    fleet: Fleet,
    factory: std::sync::Arc<dyn RuntimeFactory>,
    source: RuntimesSource,
}

/// A registry call after transport decoding.
pub struct RegistryRequest {
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

impl RegistryService {
    pub fn new(fleet: Fleet, factory: std::sync::Arc<dyn RuntimeFactory>, source: RuntimesSource) -> Self {
        Self { fleet, factory, source }
    }

    /// Every check of a definition: the rules, then the credential on this host.
    fn check(&self, spec: &RuntimeSpec, field: &str) -> Result<(), AppError> {
        let mut violations = validate_spec(spec, field);
        if violations.is_empty()
            && let Err(why) = self.factory.check_credential(spec)
        {
            let which = match spec.credential {
                crate::domain::fleet::Credential::Env(_) => "token_env",
                _ => "token_file",
            };
            violations.push(FieldViolation::new(format!("{field}.{which}"), why));
        }
        if violations.is_empty() { Ok(()) } else { Err(AppError::InvalidArgument { violations }) }
    }

    /// Registers a runtime; its cell exists on this replica when the call answers.
    pub async fn register(
        &self,
        spec: RuntimeSpec,
        request: RegistryRequest,
        caller: &AuditContext,
    ) -> Result<RegisteredRuntime, AppError> {
        self.check(&spec, "runtime")?;
        if request.validate_only {
            if self.fleet.cell(&spec.name).is_some() {
                return Err(exists(&spec.name));
            }
            let now = self.fleet.ctx().clock.now();
            return Ok(RegisteredRuntime {
                spec,
                source: crate::domain::fleet::RuntimeSource::Api,
                version: 1,
                created_at: now,
                updated_at: now,
            });
        }
        if self.fleet.len() >= crate::domain::fleet::MAX_RUNTIMES {
            return Err(AppError::FailedPrecondition {
                reason: "TOO_MANY_RUNTIMES",
                subject: format!("runtimes/{}", spec.name),
                description: format!(
                    "at most {} runtimes may be registered",
                    crate::domain::fleet::MAX_RUNTIMES
                ),
            });
        }
        let audit = caller.event(
            format!("runtimes/{}", spec.name),
            format!("registered runtime {} at {}", spec.name, spec.address),
        );
        let name = spec.name.clone();
        let outcome = self.change(RegistryChange::Register(&spec), &request.idempotency, &audit).await?;
        match outcome {
            RegistryOutcome::Exists => Err(exists(&name)),
            other => self.settle(other, &name).await,
        }
    }

    /// Replaces a runtime's definition under its etag (RPC-registered runtimes only).
    pub async fn update(
        &self,
        spec: RuntimeSpec,
        etag: &str,
        request: RegistryRequest,
        caller: &AuditContext,
    ) -> Result<RegisteredRuntime, AppError> {
        self.check(&spec, "runtime")?;
        let current = self.get(&spec.name).await?;
        if request.validate_only {
            if current.etag() != etag {
                return Err(stale(&spec.name, etag, &current.etag()));
            }
            return Ok(RegisteredRuntime { spec, version: current.version + 1, ..current });
        }
        let audit = caller.event(
            format!("runtimes/{}", spec.name),
            format!("updated runtime {} ({}, paused: {})", spec.name, spec.address, spec.paused),
        );
        let name = spec.name.clone();
        let outcome = self
            .change(RegistryChange::Update { spec: &spec, expected_etag: etag }, &request.idempotency, &audit)
            .await?;
        self.settle(outcome, &name).await
    }

    /// Removes a runtime (refused while one of its rollouts is unfinished).
    pub async fn deregister(
        &self,
        name: &str,
        request: RegistryRequest,
        caller: &AuditContext,
    ) -> Result<RegisteredRuntime, AppError> {
        let current = self.get(name).await?;
        if request.validate_only {
            return Ok(current);
        }
        let audit = caller.event(format!("runtimes/{name}"), format!("deregistered runtime {name}"));
        let outcome = self.change(RegistryChange::Deregister { name }, &request.idempotency, &audit).await?;
        self.settle(outcome, name).await
    }

    /// One registered runtime (from the store: the registry, not this replica's cells).
    pub async fn get(&self, name: &str) -> Result<RegisteredRuntime, AppError> {
        if !crate::domain::fleet::is_valid_runtime_name(name) {
            return Err(AppError::invalid(
                "name",
                format!("{:?} is not a runtime name", name.chars().take(64).collect::<String>()),
            ));
        }
        self.fleet
            .ctx()
            .store
            .registered_runtime(name)
            .await?
            .ok_or_else(|| AppError::NotFound { resource: format!("runtime {name}") })
    }

    async fn change(
        &self,
        change: RegistryChange<'_>,
        key: &IdempotencyKey,
        audit: &crate::domain::audit::NewAuditEvent,
    ) -> Result<RegistryOutcome, AppError> {
        let ctx = self.fleet.ctx();
        Ok(ctx.store.change_runtime(change, key, ctx.clock.now(), audit).await?)
    }

    /// Turns a store outcome into the answer, syncing this replica's cells first.
    async fn settle(&self, outcome: RegistryOutcome, name: &str) -> Result<RegisteredRuntime, AppError> {
        let runtime = match outcome {
            RegistryOutcome::Done(runtime) | RegistryOutcome::Replayed(runtime) => runtime,
            RegistryOutcome::Exists => return Err(exists(name)),
            RegistryOutcome::NotFound => {
                return Err(AppError::NotFound { resource: format!("runtime {name}") });
            }
            RegistryOutcome::FileOwned => {
                return Err(AppError::FailedPrecondition {
                    reason: "RUNTIME_FROM_FILE",
                    subject: format!("runtimes/{name}"),
                    description: format!(
                        "runtime {name} is defined by the runtimes file (or --runtime): change it there"
                    ),
                });
            }
            RegistryOutcome::EtagMismatch { current } => {
                return Err(AppError::FailedPrecondition {
                    reason: "ETAG_MISMATCH",
                    subject: format!("runtimes/{name}"),
                    description: format!("runtime {name} changed: its etag is now {current}"),
                });
            }
            RegistryOutcome::RolloutInFlight { rollout_id } => {
                return Err(AppError::FailedPrecondition {
                    reason: "ROLLOUT_IN_FLIGHT",
                    subject: format!("runtimes/{name}"),
                    description: format!(
                        "runtime {name} has an unfinished rollout ({rollout_id}): wait for it or let it fail"
                    ),
                });
            }
            RegistryOutcome::RequestIdReused => return Err(AppError::request_id_reused()),
        };
        self.fleet.sync().await?;
        Ok(runtime)
    }

    /// Reads the runtimes source and stores it (the file's set replaces the file's runtimes;
    /// `--runtime` stores the one runtime `default`); the cells follow.
    pub async fn load(&self) -> Result<(), FileError> {
        let specs = match &self.source {
            RuntimesSource::Single(spec) => vec![(**spec).clone()],
            RuntimesSource::File(path) => self.read_file(path)?,
        };
        let path = match &self.source {
            RuntimesSource::File(path) => path.clone(),
            RuntimesSource::Single(_) => PathBuf::from("--runtime"),
        };
        let ctx = self.fleet.ctx();
        let actor = format!("jhf-warp/{}", self.fleet.globals().replica_id);
        let audited = matches!(self.source, RuntimesSource::File(_)).then_some(actor.as_str());
        let (changed, kept) = ctx
            .store
            .sync_file_runtimes(&specs, ctx.clock.now(), audited)
            .await
            .map_err(|e| FileError::Store { path: path.clone(), error: e.into() })?;
        for (name, why) in kept {
            tracing::warn!(runtime = %name, %why, "runtime left the runtimes file but stays until its rollout ends");
        }
        if !changed.is_empty() {
            tracing::info!(path = %path.display(), changed = ?changed, "runtimes file applied");
        }
        self.fleet.sync().await.map_err(|error| FileError::Store { path, error })?;
        Ok(())
    }

    fn read_file(&self, path: &std::path::Path) -> Result<Vec<RuntimeSpec>, FileError> {
        let text = read_capped(path).map_err(|source| FileError::Read { path: path.to_owned(), source })?;
        let specs = parse_runtimes_file(&text)
            .map_err(|error| FileError::Invalid { path: path.to_owned(), error })?;
        let mut problems = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            if let Err(why) = self.factory.check_credential(spec) {
                problems.push(format!("runtimes[{index}] ({}): {why}", spec.name));
            }
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(FileError::Invalid { path: path.to_owned(), error: RuntimesFileError { problems } })
        }
    }

    /// Re-reads the runtimes file when its content changes (checked every `every`) or on
    /// SIGHUP, until `stop`. A bad file is logged with its problems and the set stays.
    pub async fn watch(&self, every: Duration, stop: CancellationToken) {
        let RuntimesSource::File(path) = &self.source else { return };
        let mut seen = file_digest(path);
        let mut hangups = hangup_signals();
        let mut ticker = crate::control::every::ticker(every);
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(signals) => {
                        signals.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let forced = tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => false,
                () = hangup => true,
            };
            let digest = file_digest(path);
            if !forced && digest == seen {
                continue;
            }
            seen = digest;
            match self.load().await {
                Ok(()) => tracing::info!(path = %path.display(), "runtimes file reread"),
                Err(error) => {
                    tracing::error!(%error, "runtimes file refused; the runtimes stay as they were")
                }
            }
        }
    }
}

/// The definition `--runtime` stands for: one runtime named `default`.
pub fn single_runtime(address: &str, credential: crate::domain::fleet::Credential) -> RuntimeSpec {
    RuntimeSpec { credential, ..RuntimeSpec::new(DEFAULT_RUNTIME, address) }
}

fn exists(name: &str) -> AppError {
    AppError::InvalidArgument {
        violations: vec![FieldViolation::new(
            "runtime.name",
            format!("runtime {name} is already registered"),
        )],
    }
}

fn stale(name: &str, given: &str, current: &str) -> AppError {
    AppError::FailedPrecondition {
        reason: "ETAG_MISMATCH",
        subject: format!("runtimes/{name}"),
        description: format!("runtime {name}: etag {given:?} is not the current {current}"),
    }
}

fn read_capped(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(crate::domain::fleet::MAX_FILE_BYTES as u64 + 1).read_to_string(&mut text)?;
    Ok(text)
}

fn file_digest(path: &std::path::Path) -> Option<[u8; 32]> {
    read_capped(path).ok().map(|text| Sha256::digest(text.as_bytes()).into())
}

fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
