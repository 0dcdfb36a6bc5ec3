//! The serving path against the transport's own cost, in one run.
//!
//! Starts a bare tonic unary echo server (this binary re-executed) and the release `jhf-warp`
//! binary, both with one worker thread, drives both with the same closed-loop load (4
//! connections x 16 in flight) and prints one line per figure with its ratio:
//! - read RPC throughput and server CPU per request vs echo (the RPCs served from memory);
//! - p50 latency at one request in flight vs `GetVersion`;
//! - lease renewals vs the same SQL run directly, at 1, 8 and 16 holders (SQLite; Postgres too
//!   when `JHF_WARP_BENCH_DATABASE_URL=postgres://…/postgres` is set);
//! - goodput at twice the saturating concurrency with the in-flight bound at saturation, and
//!   how long a refusal takes (clients honour the RetryInfo delay, as well-behaved ones do);
//! - server RSS idle and under load.
//!
//! `JHF_WARP_BENCH_SHORT=1` shortens every figure (CI). Nothing here asserts on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;
#[path = "support/servers.rs"]
mod servers;

use servers::{Echo, Server, authorized, run_echo_server, seed};

use jhf_warp::pb::v1 as pb;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 16;

async fn echo_call(channel: Channel) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = tonic::Request::new(Echo { payload: b"ping".to_vec() });
    let codec = tonic_prost::ProstCodec::<Echo, Echo>::default();
    grpc.unary(request, PathAndQuery::from_static("/bench.Echo/Echo"), codec).await.map(drop)
}

// ---------------------------------------------------------------------------------------------
// Closed-loop load.

#[derive(Default)]
struct Load {
    ok: u64,
    refused: u64,
    failed: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    refusal_latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(values: &mut [Duration], p: f64) -> Duration {
        if values.is_empty() {
            return Duration::ZERO;
        }
        values.sort();
        values[((values.len() - 1) as f64 * p) as usize]
    }
}

/// Runs `call` on every connection with `per_connection` calls in flight for `duration`.
/// A RESOURCE_EXHAUSTED answer counts as a refusal; the caller then waits its RetryInfo delay.
async fn closed_loop<F, Fut>(channels: &[Channel], per_connection: usize, duration: Duration, call: F) -> Load
where
    F: Fn(Channel) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for channel in channels {
        for _ in 0..per_connection {
            let (channel, call, stop) = (channel.clone(), call.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut load = Load::default();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    match call(channel.clone()).await {
                        Ok(()) => {
                            load.ok += 1;
                            load.latencies.push(began.elapsed());
                        }
                        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                            load.refused += 1;
                            load.refusal_latencies.push(began.elapsed());
                            let delay = tonic_types::StatusExt::get_error_details(&status)
                                .retry_info()
                                .and_then(|info| info.retry_delay)
                                .unwrap_or(Duration::from_millis(100));
                            tokio::time::sleep(delay).await;
                        }
                        Err(status) => {
                            load.failed += 1;
                            load.first_error.get_or_insert_with(|| status.to_string());
                        }
                    }
                }
                load
            }));
        }
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Load { elapsed: start.elapsed(), ..Load::default() };
    for task in tasks {
        let part = task.await.expect("load task");
        total.ok += part.ok;
        total.refused += part.refused;
        total.failed += part.failed;
        total.latencies.extend(part.latencies);
        total.refusal_latencies.extend(part.refusal_latencies);
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    total
}

/// Throughput and server CPU per request of one call under the standard load.
async fn throughput<F, Fut>(
    server: &Server,
    channels: &[Channel],
    duration: Duration,
    call: F,
) -> (f64, Duration, Load)
where
    F: Fn(Channel) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    // Warm up connections, caches and the allocator before counting.
    closed_loop(channels, IN_FLIGHT, duration / 4, call.clone()).await;
    let cpu_before = server.cpu();
    let load = closed_loop(channels, IN_FLIGHT, duration, call).await;
    let cpu = server.cpu().saturating_sub(cpu_before);
    let per_request = if load.ok > 0 { cpu / load.ok as u32 } else { Duration::ZERO };
    (load.rate(), per_request, load)
}

// ---------------------------------------------------------------------------------------------
// The read RPCs served from memory.

type Call = fn(Channel) -> std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::Status>> + Send>>;

fn read_calls() -> Vec<(&'static str, Call)> {
    use pb::control_service_client::ControlServiceClient as Control;
    use pb::drift_service_client::DriftServiceClient as Drift;
    use pb::topology_service_client::TopologyServiceClient as Topology;
    vec![
        ("GetTopology(STORED)", |c| {
            Box::pin(async move {
                let request =
                    pb::GetTopologyRequest { runtime: String::new(), read_mode: pb::ReadMode::Stored as i32 };
                Topology::new(c).get_topology(authorized(request)).await.map(drop)
            })
        }),
        ("GetInventory(STORED)", |c| {
            Box::pin(async move {
                let request = pb::GetInventoryRequest {
                    runtime: String::new(),
                    read_mode: pb::ReadMode::Stored as i32,
                };
                Topology::new(c).get_inventory(authorized(request)).await.map(drop)
            })
        }),
        ("GetDesiredTopology", |c| {
            Box::pin(async move {
                Topology::new(c)
                    .get_desired_topology(authorized(pb::GetDesiredTopologyRequest::default()))
                    .await
                    .map(drop)
            })
        }),
        ("GetAgentCatalog", |c| {
            Box::pin(async move {
                Topology::new(c)
                    .get_agent_catalog(authorized(pb::GetAgentCatalogRequest { runtime: String::new() }))
                    .await
                    .map(drop)
            })
        }),
        ("GetDriftSummary", |c| {
            Box::pin(async move {
                Drift::new(c)
                    .get_drift_summary(authorized(pb::GetDriftSummaryRequest { runtime: String::new() }))
                    .await
                    .map(drop)
            })
        }),
        ("ListDriftItems(first page)", |c| {
            Box::pin(async move {
                Drift::new(c)
                    .list_drift_items(authorized(pb::ListDriftItemsRequest::default()))
                    .await
                    .map(drop)
            })
        }),
        ("GetSchedule", |c| {
            Box::pin(async move {
                Control::new(c)
                    .get_schedule(authorized(pb::GetScheduleRequest { runtime: String::new() }))
                    .await
                    .map(drop)
            })
        }),
        ("GetLease", |c| {
            Box::pin(async move {
                let request = pb::GetLeaseRequest { name: "agent/bench".to_owned() };
                Control::new(c).get_lease(authorized(request)).await.map(drop)
            })
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Lease renewals: through the API, and the same statements run directly.

async fn renewals_via_api(server: &Server, holders: usize, duration: Duration) -> f64 {
    use pb::control_service_client::ControlServiceClient as Control;
    let channels = server.channels(holders).await;
    let mut tokens = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let acquire = pb::AcquireLeaseRequest {
            name: format!("agent/renew-{i}"),
            // A lease is held by the calling principal; every bench channel is `bench`.
            holder: "bench".to_owned(),
            duration_seconds: 3600,
        };
        let lease = Control::new(channel.clone()).acquire_lease(authorized(acquire)).await.expect("acquire");
        tokens.push(lease.into_inner().lease.expect("lease").fencing_token);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        let (stop, token) = (stop.clone(), tokens[i]);
        tasks.push(tokio::spawn(async move {
            let mut client = Control::new(channel);
            let mut count = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let renew = pb::RenewLeaseRequest {
                    name: format!("agent/renew-{i}"),
                    holder: "bench".to_owned(),
                    fencing_token: token,
                    duration_seconds: 3600,
                };
                if client.renew_lease(authorized(renew)).await.is_ok() {
                    count += 1;
                }
            }
            count
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("renew task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Renewal SQL run straight on a pool, without the service.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RawRenewal {
    /// The one UPDATE a renewal runs on Postgres (`store::leases::renew_lease_fast`).
    PostgresStatement,
    /// The transaction of `change_lease` (what a Postgres renewal ran before; refusals,
    /// acquisitions and releases still do).
    PostgresTransaction,
    /// The transaction of `change_lease`, which a renewal runs on SQLite.
    SqliteTransaction,
}

const PG_RENEW: &str = "WITH clock AS (SELECT clock_timestamp() + $5 * interval '1 millisecond' AS now) \
    UPDATE leases SET duration_secs = $4, renewed_at = clock.now, expires_at = clock.now + $4 * interval '1 second' \
    FROM clock WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock.now \
    RETURNING name, holder, token, duration_secs, acquired_at, renewed_at, expires_at, transitions, clock.now AS now";
const INSERT_VACANT: &str = "INSERT INTO leases (name, holder, token, duration_secs, transitions) VALUES ($1, NULL, 0, 0, 0) ON CONFLICT (name) DO NOTHING";
const SELECT_LEASE: &str = "SELECT name, holder, token, duration_secs, acquired_at, renewed_at, expires_at, transitions FROM leases WHERE name = $1";
const SELECT_LEASE_FOR_UPDATE: &str = "SELECT name, holder, token, duration_secs, acquired_at, renewed_at, expires_at, transitions FROM leases WHERE name = $1 FOR UPDATE";

async fn renewals_raw(url: &str, kind: RawRenewal, holders: usize, duration: Duration) -> f64 {
    use sea_orm::sqlx;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    if kind == RawRenewal::SqliteTransaction {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("sqlite url")
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .expect("sqlite");
        for i in 0..holders {
            let (pool, stop) = (pool.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let name = format!("agent/raw-{i}");
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut txn = pool.begin().await.expect("begin");
                    sqlx::query("DELETE FROM server_keys WHERE 1 = 0").execute(&mut *txn).await.expect("lock");
                    sqlx::query(INSERT_VACANT).bind(&name).execute(&mut *txn).await.expect("insert");
                    sqlx::query(SELECT_LEASE).bind(&name).fetch_one(&mut *txn).await.expect("select");
                    sqlx::query("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now")
                        .fetch_one(&mut *txn)
                        .await
                        .expect("clock");
                    sqlx::query("UPDATE leases SET holder = $2, token = 1, duration_secs = 3600, renewed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hour'), transitions = 1 WHERE name = $1")
                        .bind(&name)
                        .bind(format!("holder-{i}"))
                        .execute(&mut *txn)
                        .await
                        .expect("update");
                    txn.commit().await.expect("commit");
                    count += 1;
                }
                count
            }));
        }
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .connect(url)
            .await
            .expect("pg");
        for i in 0..holders {
            let (pool, stop) = (pool.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (name, holder) = (format!("agent/raw-{i}"), format!("holder-{i}"));
                sqlx::query("INSERT INTO leases (name, holder, token, duration_secs, transitions, expires_at) VALUES ($1, $2, 1, 3600, 1, now() + interval '1 hour') ON CONFLICT (name) DO UPDATE SET holder = $2, token = 1, expires_at = now() + interval '1 hour'")
                    .bind(&name)
                    .bind(&holder)
                    .execute(&pool)
                    .await
                    .expect("seed");
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if kind == RawRenewal::PostgresStatement {
                        sqlx::query(PG_RENEW)
                            .bind(&name)
                            .bind(&holder)
                            .bind(1i64)
                            .bind(3600i64)
                            .bind(0i64)
                            .fetch_one(&pool)
                            .await
                            .expect("renew");
                    } else {
                        let mut txn = pool.begin().await.expect("begin");
                        sqlx::query(INSERT_VACANT).bind(&name).execute(&mut *txn).await.expect("insert");
                        sqlx::query(SELECT_LEASE_FOR_UPDATE)
                            .bind(&name)
                            .fetch_one(&mut *txn)
                            .await
                            .expect("select");
                        sqlx::query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS now")
                            .fetch_one(&mut *txn)
                            .await
                            .expect("clock");
                        sqlx::query("UPDATE leases SET holder = $2, token = 1, duration_secs = 3600, renewed_at = now(), expires_at = now() + interval '1 hour', transitions = 1 WHERE name = $1")
                            .bind(&name)
                            .bind(&holder)
                            .execute(&mut *txn)
                            .await
                            .expect("update");
                        txn.commit().await.expect("commit");
                    }
                    count += 1;
                }
                count
            }));
        }
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("raw task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// A migrated, empty database for the raw baseline.
async fn migrated(url: &str) {
    let store =
        jhf_warp::store::Store::connect(url, jhf_warp::store::StoreOptions::default()).await.expect("store");
    store.migrate().await.expect("migrate");
    store.close().await.expect("close");
}

async fn fresh_postgres(base: &str, name: &str) -> String {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(base).await.expect("postgres reachable");
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.expect("drop");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create");
    admin.close().await.expect("close");
    let prefix = base.split('?').next().unwrap_or(base).rsplit_once('/').expect("url with a path").0;
    format!("{prefix}/{name}")
}

async fn renewal_figures(
    backend: &str,
    warp_url: &str,
    raw_url: &str,
    temp: &std::path::Path,
    duration: Duration,
) {
    migrated(raw_url).await;
    let data = temp.join(format!("renew-{backend}"));
    let server = Server::warp(&data, &["--database-url", warp_url]);
    for holders in [1usize, 8, 16] {
        let cpu_before = server.cpu();
        let started = Instant::now();
        let api = renewals_via_api(&server, holders, duration).await;
        let renewed = api * started.elapsed().as_secs_f64();
        let cpu = server.cpu().saturating_sub(cpu_before).as_secs_f64() / renewed.max(1.0);
        let line = format!(
            "  renewals {backend:<8} {holders:>2} holder(s): RenewLease {api:>7.0}/s ({:>3.0} us server CPU each)",
            cpu * 1e6
        );
        if backend == "postgres" {
            let statement = renewals_raw(raw_url, RawRenewal::PostgresStatement, holders, duration).await;
            let transaction = renewals_raw(raw_url, RawRenewal::PostgresTransaction, holders, duration).await;
            println!(
                "{line}  its one UPDATE directly {statement:>7.0}/s (x{:.2})  the former transaction directly {transaction:>6.0}/s (x{:.2})",
                api / statement.max(f64::MIN_POSITIVE),
                api / transaction.max(f64::MIN_POSITIVE)
            );
        } else {
            let raw = renewals_raw(raw_url, RawRenewal::SqliteTransaction, holders, duration).await;
            println!(
                "{line}  its transaction directly {raw:>7.0}/s (x{:.2})",
                api / raw.max(f64::MIN_POSITIVE)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if std::env::var("JHF_WARP_BENCH_ROLE").as_deref() == Ok("echo") {
        run_echo_server();
        return;
    }
    let short = std::env::var_os("JHF_WARP_BENCH_SHORT").is_some();
    let duration = if short { Duration::from_millis(1500) } else { Duration::from_secs(4) };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    runtime.block_on(run(duration));
}

async fn run(duration: Duration) {
    let temp = tempfile::tempdir().expect("temp dir");
    println!(
        "rpc bench: release servers with 1 worker thread; load {CONNECTIONS} connections x {IN_FLIGHT} in flight, {:.1} s per figure",
        duration.as_secs_f64()
    );

    let echo = Server::echo();
    let echo_channels = echo.channels(CONNECTIONS).await;
    let (echo_rate, echo_cpu, _) = throughput(&echo, &echo_channels, duration, echo_call).await;
    println!("  echo (bare tonic unary)      {echo_rate:>8.0} req/s  {:>6.1} us CPU/req", micros(echo_cpu));
    drop(echo_channels);
    drop(echo);

    let server = Server::warp(&temp.path().join("reads"), &["--max-in-flight", "100000"]);
    seed(&server).await;
    let idle_rss = server.rss_mib();
    let channels = server.channels(CONNECTIONS).await;
    let mut load_rss: f64 = 0.0;
    for (name, call) in read_calls() {
        let (rate, cpu, load) = throughput(&server, &channels, duration, call).await;
        load_rss = load_rss.max(server.rss_mib());
        if let Some(error) = load.first_error {
            println!("  {name:<28} FAILED: {error}");
            continue;
        }
        println!(
            "  {name:<28} {rate:>8.0} req/s  {:>6.1} us CPU/req  throughput x{:.2} of echo  CPU x{:.2} of echo",
            micros(cpu),
            rate / echo_rate,
            cpu.as_secs_f64() / echo_cpu.as_secs_f64().max(f64::MIN_POSITIVE),
        );
    }

    let single = &channels[..1];
    let version = closed_loop(single, 1, duration, |c| async move {
        pb::meta_service_client::MetaServiceClient::new(c)
            .get_version(pb::GetVersionRequest {})
            .await
            .map(drop)
    })
    .await;
    let topology = closed_loop(single, 1, duration, read_calls()[0].1).await;
    let (mut v, mut t) = (version.latencies, topology.latencies);
    let (v50, t50) = (Load::percentile(&mut v, 0.5), Load::percentile(&mut t, 0.5));
    println!(
        "  p50 at 1 in flight: GetVersion {:.3} ms, GetTopology(STORED) {:.3} ms  ratio x{:.2}",
        millis(v50),
        millis(t50),
        t50.as_secs_f64() / v50.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    println!("  server RSS: idle {idle_rss:.1} MiB, under this load {load_rss:.1} MiB");
    drop(channels);
    drop(server);

    overload(temp.path(), duration).await;

    let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", temp.path().join(name).display());
    renewal_figures("sqlite", &sqlite("warp-renew.db"), &sqlite("raw-renew.db"), temp.path(), duration).await;
    if let Ok(base) = std::env::var("JHF_WARP_BENCH_DATABASE_URL") {
        let warp = fresh_postgres(&base, "jhf_warp_test_bench_api").await;
        let raw = fresh_postgres(&base, "jhf_warp_test_bench_raw").await;
        renewal_figures("postgres", &warp, &raw, temp.path(), duration).await;
    } else {
        println!("  renewals postgres: set JHF_WARP_BENCH_DATABASE_URL=postgres://…/postgres to measure");
    }
}

/// Peak goodput at the standard concurrency with the in-flight bound set there, then twice
/// that concurrency against the same bound.
async fn overload(temp: &std::path::Path, duration: Duration) {
    let saturating = CONNECTIONS * IN_FLIGHT;
    let bound = saturating.to_string();
    let server = Server::warp(&temp.join("overload"), &["--max-in-flight", &bound]);
    seed(&server).await;
    let channels = server.channels(CONNECTIONS).await;
    let call = read_calls()[0].1;
    closed_loop(&channels, IN_FLIGHT, duration / 4, call).await;
    let peak = closed_loop(&channels, IN_FLIGHT, duration, call).await;
    let mut over = closed_loop(&channels, IN_FLIGHT * 2, duration, call).await;
    let (p50, p99) = (
        Load::percentile(&mut over.refusal_latencies, 0.5),
        Load::percentile(&mut over.refusal_latencies, 0.99),
    );
    println!(
        "  overload (bound {saturating} in flight): peak {:.0} req/s at {saturating}; at {}: goodput {:.0} req/s (x{:.2} of peak), {} refused, refusal p50 {:.2} ms p99 {:.2} ms",
        peak.rate(),
        saturating * 2,
        over.rate(),
        over.rate() / peak.rate().max(f64::MIN_POSITIVE),
        over.refused,
        millis(p50),
        millis(p99),
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
