//! The real binary: start-up on embedded defaults and SIGTERM handling.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{eventually, eventually_within};

/// Starts `jhf-warp serve` with JSON logs on port 0 and returns it with its bound address.
fn start_binary(data_dir: &std::path::Path) -> (std::process::Child, String) {
    start_binary_with(data_dir, &[])
}

/// Like [`start_binary`], with extra `JHF_WARP_*` settings.
pub fn start_binary_with(
    data_dir: &std::path::Path,
    env: &[(&str, String)],
) -> (std::process::Child, String) {
    let (child, addr, _) = start_binary_logged(data_dir, env);
    (child, addr)
}

/// Like [`start_binary_with`], keeping every JSON log line the binary writes.
pub fn start_binary_logged(
    data_dir: &std::path::Path,
    env: &[(&str, String)],
) -> (std::process::Child, String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("JHF_WARP_FIXTURES_DIR", crate::helpers::fixtures_dir())
        .env_remove("JHF_WARP_DATABASE_URL")
        .env_remove("JHF_WARP_TOKENS")
        .env_remove("JHF_WARP_TOKEN_FILE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("binary logs until it serves").unwrap();
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if entry["message"] == "serving gRPC and HTTP" {
            break entry["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str(&line) {
                kept.lock().unwrap().push(entry);
            }
        }
    });
    (child, addr, logs)
}

/// The `jhf_warp::rpc` lines of `method` with `code` a binary wrote so far.
fn rpc_lines(logs: &std::sync::Mutex<Vec<serde_json::Value>>, method: &str, code: &str) -> usize {
    let logs = logs.lock().unwrap();
    logs.iter()
        .filter(|e| e["target"] == "jhf_warp::rpc" && e["method"] == method && e["code"] == code)
        .count()
}

/// A successful READ logs at DEBUG by default (its metrics count it), a refused one at INFO;
/// `JHF_WARP_LOG_EVERY_CALL` logs every call.
#[tokio::test]
async fn reads_that_succeed_are_quiet_unless_every_call_is_logged() {
    use jhf_warp::pb::v1 as pb;
    for every_call in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let env = [("JHF_WARP_LOG_EVERY_CALL", every_call.to_string())];
        let (mut child, addr, logs) = start_binary_logged(dir.path(), &env);
        let token = std::fs::read_to_string(dir.path().join("operator.token")).unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut control = pb::control_service_client::ControlServiceClient::new(channel);
        let read = || pb::GetScheduleRequest { runtime: String::new() };
        control.get_schedule(crate::helpers::with_token(read(), token.trim())).await.unwrap();
        let refused = control.get_schedule(read()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        eventually("the refused read's line", async || {
            (rpc_lines(&logs, "GetSchedule", "UNAUTHENTICATED") == 1).then_some(())
        })
        .await;
        // Lines are written in order by one writer thread: the refusal's line came after the
        // successful read's, so its absence is final.
        let ok = rpc_lines(&logs, "GetSchedule", "OK");
        assert_eq!(ok, usize::from(every_call), "every call logged: {every_call}");
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn every_change_and_refusal_gets_one_structured_log_line_from_the_layer() {
    use jhf_warp::pb::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, logs) = start_binary_logged(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("operator.token")).unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut drift = pb::drift_service_client::DriftServiceClient::new(channel);
    let request = pb::ObserveNowRequest {
        runtime: String::new(),
        request_id: "log-line-1".into(),
        validate_only: false,
    };
    drift.observe_now(crate::helpers::with_token(request, token.trim())).await.unwrap();
    let refused = drift
        .observe_now(pb::ObserveNowRequest {
            runtime: String::new(),
            request_id: "log-line-2".into(),
            validate_only: false,
        })
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    let line = |code: &'static str| {
        let logs = logs.clone();
        async move {
            logs.lock()
                .unwrap()
                .iter()
                .find(|e| e["target"] == "jhf_warp::rpc" && e["method"] == "ObserveNow" && e["code"] == code)
                .cloned()
        }
    };
    let ok = eventually("the call's log line", async || line("OK").await).await;
    assert_eq!(ok["service"], "jhf.warp.v1.DriftService");
    assert_eq!(ok["request_id"], "log-line-1");
    assert_eq!(ok["principal"], "local-operator");
    assert!(ok["latency_ms"].as_f64().is_some(), "{ok}");
    let refused = eventually("the refusal's log line", async || line("UNAUTHENTICATED").await).await;
    assert_eq!(refused["principal"], "");
    let count = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "jhf_warp::rpc" && e["method"] == "ObserveNow")
        .count();
    assert_eq!(count, 2, "one line per call");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn binary_serves_on_defaults_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start_binary(dir.path());
    let ready_url = format!("http://{addr}/ready");
    eventually("the binary to become ready", async || {
        (reqwest::get(&ready_url).await.map(|r| r.status().as_u16()).unwrap_or(0) == 200).then_some(())
    })
    .await;
    let token_path = dir.path().join("operator.token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(token.trim().len(), 64, "an operator token was generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&token_path), 0o600);
        assert_eq!(mode(dir.path()), 0o700, "the data dir is private");
        assert_eq!(mode(&dir.path().join("warp.db")), 0o600, "the database is private");
    }

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = eventually_within("the exit within 5 s of SIGTERM", Duration::from_secs(5), async || {
        child.try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn migrate_subcommand_applies_migrations_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env_remove("JHF_WARP_DATABASE_URL")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(dir.path().join("warp.db").exists());
}

#[test]
fn a_bad_runtime_address_fails_start_up_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
        .args(["serve", "--runtime", "ftp://example"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not one of fixture:<name>, local"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no colour codes when stderr is not a terminal: {stderr:?}");
}
