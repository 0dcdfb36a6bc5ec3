//! The servers the serving-path benchmarks drive: a bare tonic unary echo (the bench binary
//! re-executed with `JHF_WARP_BENCH_ROLE=echo`) and release `jhf-warp` processes, with what
//! `/proc` says about them, and the seed that gives every read something to answer.
// Each bench that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jhf_warp::pb::v1 as pb;
use tonic::transport::Channel;

use super::process;

/// The operator token every benchmarked `jhf-warp` accepts.
pub const TOKEN: &str = "bench-operator-token-0123456789";

// ---------------------------------------------------------------------------------------------
// The echo baseline: a tonic unary service with a prost message, no application code.

#[derive(Clone, PartialEq, prost::Message)]
pub struct Echo {
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

#[derive(Clone)]
struct EchoServer;

impl tonic::server::NamedService for EchoServer {
    const NAME: &'static str = "bench.Echo";
}

struct EchoCall;

impl tonic::server::UnaryService<Echo> for EchoCall {
    type Response = Echo;
    type Future = std::future::Ready<Result<tonic::Response<Echo>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Echo>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

impl tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>> for EchoServer {
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Echo, Echo>::default());
            Ok(grpc.unary(EchoCall, request).await)
        })
    }
}

pub fn run_echo_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("echo runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening {}", listener.local_addr().expect("addr"));
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(EchoServer)
            .serve_with_incoming(incoming)
            .await
            .expect("echo serves");
    });
}

// ---------------------------------------------------------------------------------------------
// Server processes and what /proc says about them.

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn echo() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this bench"))
            .env("JHF_WARP_BENCH_ROLE", "echo")
            .stdout(Stdio::piped())
            .spawn()
            .expect("echo server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("echo address");
        let addr = line.trim().trim_start_matches("listening ").parse().expect("echo address");
        Self { child, addr }
    }

    /// A release `jhf-warp` with one worker thread, logging at warn (the app's start-up at info).
    pub fn warp(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::warp_logging(data_dir, "warn,jhf_warp::app=info", extra)
    }

    /// Like [`Server::warp`] with the log filter `log_filter`.
    pub fn warp_logging(data_dir: &std::path::Path, log_filter: &str, extra: &[&str]) -> Self {
        let (child, addr) = process::serve(
            Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
                .args(["--log-format", "json", "--log-filter", log_filter, "serve"])
                .args(["--listen", "127.0.0.1:0", "--worker-threads", "1", "--observe-interval", "3600"])
                .arg("--data-dir")
                .arg(data_dir)
                .args(extra)
                .env("JHF_WARP_TOKENS", format!("bench:operator:{TOKEN}"))
                .env("JHF_WARP_FIXTURES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/openclaw"))
                .env("JHF_WARP_RECONCILE_PAUSED", "true"),
        );
        Self { child, addr: addr.parse().expect("addr") }
    }

    /// User + system CPU time of the process so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
        Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks_per_second())
    }

    pub fn rss_mib(&self) -> f64 {
        process::rss_mib(self.child.id())
    }

    pub async fn channels(&self, count: usize) -> Vec<Channel> {
        let mut channels = Vec::new();
        for _ in 0..count {
            let endpoint =
                Channel::from_shared(format!("http://{}", self.addr)).expect("uri").tcp_nodelay(true);
            channels.push(endpoint.connect().await.expect("connects"));
        }
        channels
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    // CLK_TCK is 100 on every Linux this runs on; `getconf` confirms it where available.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {TOKEN}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Gives the fixture runtime a desired topology (the observed one), a drift item and a lease,
/// so every read has something to answer.
pub async fn seed(server: &Server) {
    use pb::control_service_client::ControlServiceClient as Control;
    use pb::topology_service_client::TopologyServiceClient as Topology;
    let channel = server.channels(1).await.remove(0);
    let observed = Topology::new(channel.clone())
        .get_topology(authorized(pb::GetTopologyRequest {
            runtime: String::new(),
            read_mode: pb::ReadMode::Fresh as i32,
        }))
        .await
        .expect("observe")
        .into_inner()
        .topology
        .expect("topology");
    let mut desired = observed.clone();
    desired.nodes.retain(|node| node.agent_id != "writer");
    desired.edges.retain(|edge| edge.from_agent_id != "writer" && edge.to_agent_id != "writer");
    desired.routes.retain(|route| route.agent_id != "writer");
    let put = pb::PutDesiredTopologyRequest {
        runtime: String::new(),
        topology: Some(desired),
        etag: String::new(),
        request_id: "bench-seed".to_owned(),
        validate_only: false,
    };
    Topology::new(channel.clone()).put_desired_topology(authorized(put)).await.expect("desired");
    let observe = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "bench-observe".to_owned(),
        validate_only: false,
    };
    pb::drift_service_client::DriftServiceClient::new(channel.clone())
        .observe_now(authorized(observe))
        .await
        .expect("observe now");
    let acquire = pb::AcquireLeaseRequest {
        name: "agent/bench".to_owned(),
        holder: "bench".to_owned(),
        duration_seconds: 3600,
    };
    Control::new(channel).acquire_lease(authorized(acquire)).await.expect("lease");
}
