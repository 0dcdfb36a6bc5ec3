//! The runtime registry: runtimes registered by RPC and those of the runtimes file, one row per
//! name. Every change is checked and written in one transaction with its audit event and
//! idempotency record, and notifies the change feed so every replica's fleet follows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{rollout, runtime};
use super::{Store, StoreError, decode_json, encode_json, idempotency};
use crate::domain::audit::NewAuditEvent;
use crate::domain::fleet::{RegisteredRuntime, RuntimeSource, RuntimeSpec};
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::domain::rollout::RolloutState;

/// What a registry change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryOutcome {
    /// Stored (registered, updated or deregistered): the runtime as it now is (as it was, for
    /// a deregistration).
    Done(RegisteredRuntime),
    /// The request id was seen with this payload: the first call's runtime.
    Replayed(RegisteredRuntime),
    /// Registering a name that exists.
    Exists,
    NotFound,
    /// The runtimes file owns this runtime: change the file instead.
    FileOwned,
    /// `expected_etag` is not the current one.
    EtagMismatch {
        current: String,
    },
    /// A rollout of the runtime has not finished.
    RolloutInFlight {
        rollout_id: String,
    },
    RequestIdReused,
}

fn registered(row: runtime::Model) -> Result<RegisteredRuntime, StoreError> {
    let spec: RuntimeSpec = decode_json(&row.spec_json, &format!("runtime {}", row.name))?;
    let source = RuntimeSource::parse(&row.source)
        .ok_or_else(|| StoreError::Corrupt(format!("runtime {}: source {:?}", row.name, row.source)))?;
    Ok(RegisteredRuntime {
        spec,
        source,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// The answer a registry change remembers for replays: the runtime as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Remembered {
    spec: RuntimeSpec,
    source: RuntimeSource,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&RegisteredRuntime> for Remembered {
    fn from(r: &RegisteredRuntime) -> Self {
        Self {
            spec: r.spec.clone(),
            source: r.source,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<Remembered> for RegisteredRuntime {
    fn from(r: Remembered) -> Self {
        Self {
            spec: r.spec,
            source: r.source,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A registry change to make, checked against the current row inside the transaction.
pub enum RegistryChange<'a> {
    Register(&'a RuntimeSpec),
    Update { spec: &'a RuntimeSpec, expected_etag: &'a str },
    Deregister { name: &'a str },
}

impl Store {
    /// Every registered runtime, by name.
    pub async fn list_runtimes(&self) -> Result<Vec<RegisteredRuntime>, StoreError> {
        let rows = runtime::Entity::find().order_by_asc(runtime::Column::Name).all(&self.db).await?;
        rows.into_iter().map(registered).collect()
    }

    /// One registered runtime.
    pub async fn registered_runtime(&self, name: &str) -> Result<Option<RegisteredRuntime>, StoreError> {
        runtime::Entity::find_by_id(name.to_owned()).one(&self.db).await?.map(registered).transpose()
    }

    /// The first unfinished rollout of `runtime`, if any.
    async fn rollout_in_flight<C: sea_orm::ConnectionTrait>(
        conn: &C,
        runtime_name: &str,
    ) -> Result<Option<String>, StoreError> {
        let finals =
            [RolloutState::Succeeded, RolloutState::Failed, RolloutState::RolledBack].map(|s| s.as_str());
        let row = rollout::Entity::find()
            .filter(rollout::Column::Runtime.eq(runtime_name))
            .filter(rollout::Column::State.is_not_in(finals))
            .one(conn)
            .await?;
        Ok(row.map(|r| r.id))
    }

    /// Makes one registry change by RPC, idempotently by `key`.
    pub async fn change_runtime(
        &self,
        change: RegistryChange<'_>,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        audit: &NewAuditEvent,
    ) -> Result<RegistryOutcome, StoreError> {
        let txn = self.begin_write().await?;
        match idempotency::prior(&txn, key).await? {
            Prior::Unseen => {}
            Prior::Conflict => return Ok(RegistryOutcome::RequestIdReused),
            Prior::Replay(answer) => {
                let remembered: Remembered = decode_json(&answer, "remembered runtime")?;
                return Ok(RegistryOutcome::Replayed(remembered.into()));
            }
        }
        let name = match &change {
            RegistryChange::Register(spec) | RegistryChange::Update { spec, .. } => spec.name.as_str(),
            RegistryChange::Deregister { name } => name,
        };
        let current =
            runtime::Entity::find_by_id(name.to_owned()).one(&txn).await?.map(registered).transpose()?;
        let outcome = match (change, current) {
            (RegistryChange::Register(_), Some(_)) => return Ok(RegistryOutcome::Exists),
            (RegistryChange::Register(spec), None) => {
                let row = runtime::ActiveModel {
                    name: Set(spec.name.clone()),
                    spec_json: Set(encode_json(spec, "runtime spec")?),
                    source: Set(RuntimeSource::Api.as_str().to_owned()),
                    version: Set(1),
                    created_at: Set(now),
                    updated_at: Set(now),
                };
                registered(row.insert(&txn).await?)?
            }
            (_, None) => return Ok(RegistryOutcome::NotFound),
            (_, Some(current)) if current.source == RuntimeSource::File => {
                return Ok(RegistryOutcome::FileOwned);
            }
            (RegistryChange::Update { spec, expected_etag }, Some(current)) => {
                if current.etag() != expected_etag {
                    return Ok(RegistryOutcome::EtagMismatch { current: current.etag() });
                }
                let row = runtime::ActiveModel {
                    name: Set(spec.name.clone()),
                    spec_json: Set(encode_json(spec, "runtime spec")?),
                    source: Set(current.source.as_str().to_owned()),
                    version: Set(current.version + 1),
                    created_at: Set(current.created_at),
                    updated_at: Set(now),
                };
                registered(row.update(&txn).await?)?
            }
            (RegistryChange::Deregister { name }, Some(current)) => {
                if let Some(rollout_id) = Self::rollout_in_flight(&txn, name).await? {
                    return Ok(RegistryOutcome::RolloutInFlight { rollout_id });
                }
                runtime::Entity::delete_by_id(name.to_owned()).exec(&txn).await?;
                current
            }
        };
        idempotency::remember(
            &txn,
            key,
            encode_json(&Remembered::from(&outcome), "remembered runtime")?,
            now,
        )
        .await?;
        super::audit::append(self, &txn, audit).await?;
        super::changes::notify(&txn, super::Topic::Runtimes, None).await?;
        txn.commit().await?;
        Ok(RegistryOutcome::Done(outcome))
    }

    /// Makes the runtimes of the runtimes file exactly `specs`: new ones inserted, changed
    /// ones updated, file runtimes no longer listed removed (unless a rollout of theirs is in
    /// flight: they stay until the next sync). A name registered by RPC that the file now
    /// lists becomes the file's. Returns the names changed and those kept back, with why.
    /// `actor`: who the audit event names (`None`: not audited — `--runtime`, process
    /// configuration as it always was).
    pub async fn sync_file_runtimes(
        &self,
        specs: &[RuntimeSpec],
        now: DateTime<Utc>,
        actor: Option<&str>,
    ) -> Result<(Vec<String>, Vec<(String, String)>), StoreError> {
        let txn = self.begin_write().await?;
        let current: BTreeMap<String, RegisteredRuntime> = runtime::Entity::find()
            .all(&txn)
            .await?
            .into_iter()
            .map(|row| registered(row).map(|r| (r.spec.name.clone(), r)))
            .collect::<Result<_, _>>()?;
        let mut changed = Vec::new();
        let mut kept = Vec::new();
        for spec in specs {
            let json = encode_json(spec, "runtime spec")?;
            match current.get(&spec.name) {
                Some(existing) if existing.spec == *spec && existing.source == RuntimeSource::File => {
                    continue;
                }
                Some(existing) => {
                    let row = runtime::ActiveModel {
                        name: Set(spec.name.clone()),
                        spec_json: Set(json),
                        source: Set(RuntimeSource::File.as_str().to_owned()),
                        version: Set(existing.version + 1),
                        created_at: Set(existing.created_at),
                        updated_at: Set(now),
                    };
                    row.update(&txn).await?;
                }
                None => {
                    let row = runtime::ActiveModel {
                        name: Set(spec.name.clone()),
                        spec_json: Set(json),
                        source: Set(RuntimeSource::File.as_str().to_owned()),
                        version: Set(1),
                        created_at: Set(now),
                        updated_at: Set(now),
                    };
                    row.insert(&txn).await?;
                }
            }
            changed.push(spec.name.clone());
        }
        for (name, existing) in &current {
            if existing.source != RuntimeSource::File || specs.iter().any(|s| &s.name == name) {
                continue;
            }
            if let Some(rollout_id) = Self::rollout_in_flight(&txn, name).await? {
                kept.push((name.clone(), format!("rollout {rollout_id} has not finished")));
                continue;
            }
            runtime::Entity::delete_by_id(name.clone()).exec(&txn).await?;
            changed.push(name.clone());
        }
        if !changed.is_empty() {
            super::changes::notify(&txn, super::Topic::Runtimes, None).await?;
        }
        if let Some(actor) = actor.filter(|_| !changed.is_empty()) {
            let audit = NewAuditEvent {
                actor: actor.to_owned(),
                method: "jhf-warp/runtimes-file".to_owned(),
                resource: "runtimes".to_owned(),
                request_id: String::new(),
                outcome: "OK".to_owned(),
                summary: format!(
                    "runtimes file: {} runtime(s) added, changed or removed: {}",
                    changed.len(),
                    changed.join(", ")
                ),
            };
            super::audit::append(self, &txn, &audit).await?;
        }
        txn.commit().await?;
        Ok((changed, kept))
    }
}
