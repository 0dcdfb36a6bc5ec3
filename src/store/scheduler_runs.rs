//! Reconcile cycles. The cycle id is unique: the first insert wins, so a cycle runs once even
//! when several replicas or retries start it.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{heal_attempt, reconcile_schedule, scheduler_run};
use super::{Store, StoreError};
use crate::domain::audit::NewAuditEvent;
use crate::domain::lease::LeaseError;
use crate::domain::reconcile::SchedulerRun;
use crate::domain::schedule::SCHEDULED_PREFIX;

/// The lease a run must be started under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub token: i64,
}

/// What starting a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRun {
    Started,
    /// The cycle id had run (or is running): the first run.
    Existing(SchedulerRun),
    /// The fence no longer holds; nothing was written.
    Fenced(LeaseError),
    /// The schedule was paused meanwhile; nothing was written.
    Paused,
}

fn run_of(row: &scheduler_run::Model) -> Result<SchedulerRun, StoreError> {
    serde_json::from_str(&row.run_json)
        .map_err(|e| StoreError::Corrupt(format!("scheduler run {}: {e}", row.cycle_id)))
}

impl Store {
    /// Starts a run unless its cycle id exists. With a fence (a scheduled cycle), the run
    /// starts only while that lease is live with the given holder and token and the schedule is
    /// not paused, both checked in the transaction that holds the lease row and a shared lock on
    /// the schedule row: a replica that lost leadership cannot start a cycle, and once
    /// `UpdateSchedule` pausing it has returned, no replica starts one.
    pub async fn start_run(
        &self,
        runtime: &str,
        run: &SchedulerRun,
        fence: Option<&Fence>,
    ) -> Result<StartRun, StoreError> {
        let txn = self.begin_write().await?;
        if let Some(fence) = fence {
            if let Err(refusal) = self.check_fence_in(&txn, fence).await? {
                txn.rollback().await?;
                return Ok(StartRun::Fenced(refusal));
            }
            let schedule =
                reconcile_schedule::Entity::find_by_id(runtime.to_owned()).lock_shared().one(&txn).await?;
            if schedule.as_ref().map(super::schedules::schedule_of).transpose()?.is_some_and(|s| s.paused) {
                txn.rollback().await?;
                return Ok(StartRun::Paused);
            }
        }
        let row = scheduler_run::ActiveModel {
            cycle_id: Set(run.cycle_id.clone()),
            runtime: Set(runtime.to_owned()),
            started_at: Set(run.started_at),
            run_json: Set(serde_json::to_string(run).map_err(|e| StoreError::Corrupt(e.to_string()))?),
            ..Default::default()
        };
        let inserted = scheduler_run::Entity::insert(row)
            .on_conflict(OnConflict::column(scheduler_run::Column::CycleId).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        if inserted == 1 && fence.is_some() {
            super::changes::notify(&txn, super::Topic::Run, Some(runtime)).await?;
        }
        txn.commit().await?;
        if inserted == 1 {
            return Ok(StartRun::Started);
        }
        match self.run(&run.cycle_id).await? {
            Some(existing) => Ok(StartRun::Existing(existing)),
            None => Err(StoreError::Corrupt(format!("scheduler run {} vanished", run.cycle_id))),
        }
    }

    /// The `limit` most recent runs of every runtime.
    pub async fn recent_runs_any(&self, limit: u64) -> Result<Vec<(String, SchedulerRun)>, StoreError> {
        let rows = scheduler_run::Entity::find()
            .order_by_desc(scheduler_run::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.iter().map(|row| Ok((row.runtime.clone(), run_of(row)?))).collect()
    }

    /// Returns the newest scheduled (periodic) run of a runtime.
    pub async fn latest_scheduled_run(&self, runtime: &str) -> Result<Option<SchedulerRun>, StoreError> {
        let row = scheduler_run::Entity::find()
            .filter(scheduler_run::Column::Runtime.eq(runtime))
            .filter(scheduler_run::Column::CycleId.starts_with(SCHEDULED_PREFIX))
            .order_by_desc(scheduler_run::Column::Seq)
            .one(&self.db)
            .await?;
        row.as_ref().map(run_of).transpose()
    }

    /// Saves a run's outcome together with the audit event of the call that ran it.
    pub async fn finish_run(
        &self,
        run: &SchedulerRun,
        audit: Option<&NewAuditEvent>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        scheduler_run::Entity::update_many()
            .col_expr(
                scheduler_run::Column::RunJson,
                sea_orm::sea_query::Expr::value(
                    serde_json::to_string(run).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ),
            )
            .filter(scheduler_run::Column::CycleId.eq(run.cycle_id.clone()))
            .exec(&txn)
            .await?;
        if let Some(event) = audit {
            super::audit::append(self, &txn, event).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Returns a run by cycle id.
    pub async fn run(&self, cycle_id: &str) -> Result<Option<SchedulerRun>, StoreError> {
        let row = scheduler_run::Entity::find()
            .filter(scheduler_run::Column::CycleId.eq(cycle_id))
            .one(&self.db)
            .await?;
        row.as_ref().map(run_of).transpose()
    }

    /// Lists a runtime's runs newest first, below sequence `before`.
    pub async fn list_runs(
        &self,
        runtime: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, SchedulerRun)>, StoreError> {
        let mut query = scheduler_run::Entity::find().filter(scheduler_run::Column::Runtime.eq(runtime));
        if let Some(before) = before {
            query = query.filter(scheduler_run::Column::Seq.lt(before));
        }
        let rows = query.order_by_desc(scheduler_run::Column::Seq).limit(limit).all(&self.db).await?;
        rows.iter().map(|row| run_of(row).map(|run| (row.seq, run))).collect()
    }
}

impl Store {
    /// Records that HEAL rolls out for (runtime, desired generation, config hash); false when
    /// that key was recorded before (then HEAL must not roll out again for it). The key is the
    /// table's primary key, so two cycles racing for it cannot both win.
    pub async fn record_heal_attempt(
        &self,
        runtime: &str,
        desired_generation: i64,
        config_hash: &str,
        cycle_id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let row = heal_attempt::ActiveModel {
            runtime: Set(runtime.to_owned()),
            desired_generation: Set(desired_generation),
            config_hash: Set(config_hash.to_owned()),
            cycle_id: Set(cycle_id.to_owned()),
            attempted_at: Set(at),
        };
        let inserted = heal_attempt::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    heal_attempt::Column::Runtime,
                    heal_attempt::Column::DesiredGeneration,
                    heal_attempt::Column::ConfigHash,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted == 1)
    }
}
