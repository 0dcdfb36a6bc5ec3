//! A fleet of runtimes: the runtime registry, fleet rollouts, and a runtime column wherever a
//! row belongs to one runtime.
//!
//! Until now a database served one runtime, and rows were keyed by that runtime's address (or
//! not keyed at all: desired revisions, setup previews, delegations). This migration names that
//! runtime `default`, the name `--runtime` now runs under: rows of the runtime observed last
//! (or, with no observation, of the one runtime the rows name) move to `default`; rows of
//! addresses used before it keep their old key, where nothing reads them (nothing is deleted).
//! Desired revisions are numbered per runtime from here on, so their table is rebuilt with
//! `(runtime, generation)` as its key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The name the single runtime of an existing database gets.
const DEFAULT_RUNTIME: &str = "default";

/// Tables keyed by a runtime before this migration.
const KEYED: [&str; 9] = [
    "observations",
    "drift_items",
    "patch_plans",
    "rollouts",
    "watchdog_observations",
    "scheduler_runs",
    "reconcile_schedules",
    "runtime_states",
    "heal_attempts",
];

#[derive(DeriveIden)]
enum Runtimes {
    Table,
    Name,
    SpecJson,
    Source,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FleetRollouts {
    Table,
    Id,
    State,
    Body,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DesiredTopologies {
    Table,
    Runtime,
    Generation,
    Etag,
    Revision,
    Author,
    CreatedAt,
    TopologyJson,
}

#[derive(DeriveIden)]
enum SetupPreviews {
    Table,
    Runtime,
}

#[derive(DeriveIden)]
enum Delegations {
    Table,
    Runtime,
}

/// The single-runtime table, renamed while its rows are copied.
#[derive(DeriveIden)]
enum DesiredTopologiesSingle {
    Table,
}

/// The runtime key the existing rows were written under: the newest observation's, else the one
/// key all keyed tables agree on (none: nothing to move).
async fn current_key(manager: &SchemaManager<'_>) -> Result<Option<String>, DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let newest = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT runtime FROM observations ORDER BY id DESC LIMIT 1",
        ))
        .await?;
    if let Some(row) = newest {
        return Ok(Some(row.try_get::<String>("", "runtime")?));
    }
    let mut keys = std::collections::BTreeSet::new();
    for table in KEYED {
        let rows = db
            .query_all_raw(Statement::from_string(backend, format!("SELECT DISTINCT runtime FROM {table}")))
            .await?;
        for row in rows {
            keys.insert(row.try_get::<String>("", "runtime")?);
        }
    }
    Ok(if keys.len() == 1 { keys.into_iter().next() } else { None })
}

async fn rename_key(manager: &SchemaManager<'_>, from: &str, to: &str) -> Result<(), DbErr> {
    for table in KEYED {
        let update = Query::update()
            .table(Alias::new(table))
            .value(Alias::new("runtime"), to)
            .and_where(Expr::col(Alias::new("runtime")).eq(from))
            .to_owned();
        manager.exec_stmt(update).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runtimes::Table)
                    .if_not_exists()
                    .col(string(Runtimes::Name).primary_key())
                    .col(text(Runtimes::SpecJson))
                    .col(string(Runtimes::Source))
                    .col(big_integer(Runtimes::Version))
                    .col(timestamp_with_time_zone(Runtimes::CreatedAt))
                    .col(timestamp_with_time_zone(Runtimes::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FleetRollouts::Table)
                    .if_not_exists()
                    .col(string(FleetRollouts::Id).primary_key())
                    .col(string(FleetRollouts::State))
                    .col(text(FleetRollouts::Body))
                    .col(big_integer(FleetRollouts::Version))
                    .col(timestamp_with_time_zone(FleetRollouts::CreatedAt))
                    .col(timestamp_with_time_zone(FleetRollouts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_fleet_rollouts_state")
                    .table(FleetRollouts::Table)
                    .col(FleetRollouts::State)
                    .to_owned(),
            )
            .await?;

        // Desired revisions: rebuilt keyed by (runtime, generation), the old rows as `default`.
        manager
            .rename_table(
                Table::rename().table(DesiredTopologies::Table, DesiredTopologiesSingle::Table).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DesiredTopologies::Table)
                    .col(string(DesiredTopologies::Runtime))
                    .col(big_integer(DesiredTopologies::Generation))
                    .col(string(DesiredTopologies::Etag))
                    .col(string(DesiredTopologies::Revision))
                    .col(string(DesiredTopologies::Author))
                    .col(timestamp_with_time_zone(DesiredTopologies::CreatedAt))
                    .col(text(DesiredTopologies::TopologyJson))
                    .primary_key(
                        Index::create().col(DesiredTopologies::Runtime).col(DesiredTopologies::Generation),
                    )
                    .to_owned(),
            )
            .await?;
        let columns = [
            DesiredTopologies::Generation,
            DesiredTopologies::Etag,
            DesiredTopologies::Revision,
            DesiredTopologies::Author,
            DesiredTopologies::CreatedAt,
            DesiredTopologies::TopologyJson,
        ];
        let copy = Query::insert()
            .into_table(DesiredTopologies::Table)
            .columns(std::iter::once(DesiredTopologies::Runtime).chain(columns))
            .select_from(
                Query::select()
                    .expr(Expr::val(DEFAULT_RUNTIME))
                    .columns(columns)
                    .from(DesiredTopologiesSingle::Table)
                    .to_owned(),
            )
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(copy).await?;
        manager.drop_table(Table::drop().table(DesiredTopologiesSingle::Table).to_owned()).await?;

        manager
            .alter_table(
                Table::alter()
                    .table(SetupPreviews::Table)
                    .add_column(string(SetupPreviews::Runtime).default(DEFAULT_RUNTIME))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Delegations::Table)
                    .add_column(string(Delegations::Runtime).default(DEFAULT_RUNTIME))
                    .to_owned(),
            )
            .await?;
        if let Some(current) = current_key(manager).await? {
            rename_key(manager, &current, DEFAULT_RUNTIME).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to one runtime: `default`'s rows keep the key `default` (the address is not
        // recorded), and only its desired revisions survive the single-runtime table.
        manager
            .alter_table(
                Table::alter().table(Delegations::Table).drop_column(Delegations::Runtime).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(SetupPreviews::Table).drop_column(SetupPreviews::Runtime).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DesiredTopologiesSingle::Table)
                    .col(big_integer(DesiredTopologies::Generation).primary_key())
                    .col(string(DesiredTopologies::Etag))
                    .col(string(DesiredTopologies::Revision))
                    .col(string(DesiredTopologies::Author))
                    .col(timestamp_with_time_zone(DesiredTopologies::CreatedAt))
                    .col(text(DesiredTopologies::TopologyJson))
                    .to_owned(),
            )
            .await?;
        let columns = [
            DesiredTopologies::Generation,
            DesiredTopologies::Etag,
            DesiredTopologies::Revision,
            DesiredTopologies::Author,
            DesiredTopologies::CreatedAt,
            DesiredTopologies::TopologyJson,
        ];
        let copy = Query::insert()
            .into_table(DesiredTopologiesSingle::Table)
            .columns(columns)
            .select_from(
                Query::select()
                    .columns(columns)
                    .from(DesiredTopologies::Table)
                    .and_where(Expr::col(DesiredTopologies::Runtime).eq(DEFAULT_RUNTIME))
                    .to_owned(),
            )
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(copy).await?;
        manager.drop_table(Table::drop().table(DesiredTopologies::Table).to_owned()).await?;
        manager
            .rename_table(
                Table::rename().table(DesiredTopologiesSingle::Table, DesiredTopologies::Table).to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(FleetRollouts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Runtimes::Table).to_owned()).await
    }
}
