//! `jhf-warp ctl` and `jhf-warp healthcheck`: the real binary against a test server.

use std::process::Output;

use jhf_warp::pb::v1 as pb;

use crate::desired::observed;
use crate::helpers::{OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app, with_token};
use crate::rollout::trio_minus_writer_plus_qa;

pub(crate) async fn ctl(app: &TestApp, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
        .arg("ctl")
        .args(["--server", &format!("http://{}", app.addr)])
        .args(args)
        .env("JHF_WARP_TOKEN", token)
        .env("JHF_WARP_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

pub(crate) fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test]
async fn ctl_applies_a_team_file_and_follows_a_rollout_to_its_end() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team.yaml");
    let topology = trio_minus_writer_plus_qa(&observed(&app).await);
    let json = serde_json::to_value(&topology).unwrap();
    std::fs::write(&team, serde_yaml_ng::to_string(&json).unwrap()).unwrap();

    // Without a terminal and without --yes nothing is stored.
    let refused = ctl(&app, OPERATOR_TOKEN, &["desired", "apply", "-f", team.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("+ agent qa"), "the diff is shown first: {}", text(&refused));
    assert!(text(&refused).contains("pass --yes"), "{}", text(&refused));

    let applied =
        ctl(&app, OPERATOR_TOKEN, &["desired", "apply", "-f", team.to_str().unwrap(), "--yes"]).await;
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(text(&applied).contains("stored as generation 1"), "{}", text(&applied));
    let stored = app
        .topology()
        .await
        .get_desired_topology(with_token(
            pb::GetDesiredTopologyRequest { runtime: String::new(), generation: 0 },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(stored.desired.unwrap().topology.unwrap().nodes.iter().any(|n| n.agent_id == "qa"));

    let rollout = ctl(&app, OPERATOR_TOKEN, &["rollout", "create", "--watch"]).await;
    let shown = text(&rollout);
    assert_eq!(rollout.status.code(), Some(0), "{shown}");
    for step in ["planned", "add agent qa", "APPLYING", "VERIFYING", "SUCCEEDED", "ended SUCCEEDED"] {
        assert!(shown.contains(step), "missing {step:?} in:\n{shown}");
    }

    // Now the runtime has what is desired: the plan is empty, and in JSON too nothing is created.
    let empty = ctl(&app, OPERATOR_TOKEN, &["--output", "json", "rollout", "create"]).await;
    assert!(empty.status.success(), "{}", text(&empty));
    let answer: serde_json::Value = serde_json::from_slice(&empty.stdout).unwrap();
    assert_eq!(answer["created"], false, "{answer}");
    let rollouts = app
        .drift()
        .await
        .list_rollouts(with_token(pb::ListRolloutsRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rollouts.rollouts.len(), 1, "only the first rollout exists: {:?}", rollouts.rollouts);

    let status = ctl(&app, READER_TOKEN, &["--output", "json", "status"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(document["readiness"]["ready"], true);
    let svg = ctl(&app, READER_TOKEN, &["topology", "show", "--format", "svg"]).await;
    assert!(svg.status.success(), "{}", text(&svg));
    let drawn = String::from_utf8_lossy(&svg.stdout);
    assert!(drawn.starts_with("<svg xmlns="), "{drawn}");
    for agent in ["lead", "research", "qa"] {
        assert!(drawn.contains(&format!("data-agent=\"{agent}\"")), "{agent} is drawn");
    }
    let mermaid =
        ctl(&app, READER_TOKEN, &["topology", "show", "--format", "mermaid", "--source", "desired"]).await;
    assert!(String::from_utf8_lossy(&mermaid.stdout).starts_with("flowchart TD"), "{}", text(&mermaid));
    let verify = ctl(&app, READER_TOKEN, &["audit", "verify"]).await;
    assert!(verify.status.success() && text(&verify).contains("intact"), "{}", text(&verify));
    app.stop().await;
}

#[tokio::test]
async fn ctl_prints_a_refusal_on_one_line_with_its_code_and_reason() {
    let app = spawn_app().await;
    let denied = ctl(&app, READER_TOKEN, &["rollout", "rollback", "nope"]).await;
    assert_eq!(denied.status.code(), Some(1));
    let line = text(&denied);
    assert!(line.starts_with("error: PERMISSION_DENIED (ROLE_NOT_PERMITTED): "), "{line}");
    assert_eq!(line.trim_end().lines().count(), 1, "{line}");
    let bad = ctl(&app, "not-a-token", &["status"]).await;
    assert!(text(&bad).contains("UNAUTHENTICATED (TOKEN_INVALID)"), "{}", text(&bad));

    let mut hash = tokio::process::Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
        .args(["ctl", "token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    hash.stdin.take().unwrap().write_all(b"secret-token\n").await.unwrap();
    let out = hash.wait_with_output().await.unwrap();
    use sha2::Digest;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        hex::encode(sha2::Sha256::digest(b"secret-token"))
    );
    app.stop().await;
}

#[tokio::test]
async fn healthcheck_exits_zero_only_when_ready() {
    let app = spawn_app().await;
    let probe = |url: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_jhf-warp"))
            .args(["healthcheck", "--url", &url])
            .output()
            .await
            .unwrap()
            .status
    };
    assert!(probe(app.http_url("/ready")).await.success());
    assert!(!probe(app.http_url("/nope")).await.success(), "a 401/404 is not healthy");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert!(!probe(format!("http://{closed}/ready")).await.success(), "nothing listening");
    app.stop().await;
}
