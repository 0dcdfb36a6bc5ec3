use super::*;

#[test]
fn the_first_json_document_is_found_after_log_lines() {
    let text = "Config warning: x\n{\"ok\": true, \"errors\": []}\ntrailing";
    assert_eq!(json_document(text).unwrap()["ok"], true);
    assert!(json_document("no json here").is_none());
}

#[test]
fn marked_legacy_stores_split_per_agent_whatever_they_contain() {
    let text =
        "\n==b0:lead==\n{\"a\":{\"updatedAt\":5}}\n==b0:qa==\n\n==b0:ops==\nnot json ==b0:fake== still ops";
    let parts = split_marked(text, "b0");
    let agents: Vec<&str> = parts.iter().map(|(agent, _)| agent.as_str()).collect();
    assert_eq!(agents, ["lead", "qa", "ops"]);
    assert_eq!(parts[0].1, "{\"a\":{\"updatedAt\":5}}");
    assert_eq!(parts[1].1, "");
    assert!(parts[2].1.starts_with("not json"));
}

#[tokio::test]
async fn a_team_too_large_for_one_argument_is_observed_through_stdin() {
    // 600 agents under a long state path: the fact script is ~300 KB, more than one argv
    // string may hold (128 KiB), which used to fail with E2BIG and read as "unreachable".
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("a".repeat(120)).join("install");
    crate::testing::write_state_tree(&root, 600, 20).unwrap();
    let state = root.join("state").display().to_string();
    let runtime = CliRuntime::connect(
        "local:test".into(),
        RuntimeMode::Local,
        Arc::new(crate::runtime::LocalShell),
        Some(state),
        "/nonexistent/openclaw".into(),
    )
    .await
    .unwrap();
    let inventory = runtime.observe().await.unwrap();
    assert_eq!(inventory.agents.len(), 600);
    assert!(inventory.agents.iter().all(|agent| agent.workspace_exists), "every workspace probed");
}
