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
        crate::runtime::RuntimeLimits::default(),
    )
    .await
    .unwrap();
    let inventory = runtime.observe().await.unwrap();
    assert_eq!(inventory.agents.len(), 600);
    assert!(inventory.agents.iter().all(|agent| agent.workspace_exists), "every workspace probed");
}

#[tokio::test]
async fn shell_writes_refuse_planted_symlinks_and_reads_never_follow_them() {
    use std::os::unix::fs::symlink;
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let workspace = state.join("workspace-lead");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(state.join("openclaw.json"), "{}\n").unwrap();
    // A CLI that only answers --version: enough for the adapter to be writable.
    let bin = temp.path().join("openclaw");
    std::fs::write(&bin, "#!/bin/sh\necho 'OpenClaw 2026.9.6 (test)'\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
    let runtime = CliRuntime::connect(
        "local:test".into(),
        RuntimeMode::Local,
        Arc::new(crate::runtime::LocalShell),
        Some(state.display().to_string()),
        bin.display().to_string(),
        crate::runtime::RuntimeLimits::default(),
    )
    .await
    .unwrap();
    let outside = temp.path().join("outside");
    std::fs::write(&outside, "precious").unwrap();
    symlink(&outside, workspace.join("AGENTS.md")).unwrap();
    let target = workspace.join("AGENTS.md").display().to_string();
    let refused = runtime.write_workspace_file(&target, "managed").await.unwrap_err();
    assert!(matches!(refused, RuntimeError::Refused { .. }), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert!(matches!(runtime.read_workspace_file(&target).await.unwrap(), WorkspaceFile::Refused(_)));

    // A planted temporary name redirects nothing; the write lands in the workspace.
    symlink(&outside, workspace.join("SOUL.md.jhf-warp.tmp")).unwrap();
    let soul = workspace.join("SOUL.md").display().to_string();
    runtime.write_workspace_file(&soul, "managed").await.unwrap();
    assert_eq!(std::fs::read_to_string(workspace.join("SOUL.md")).unwrap(), "managed");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert_eq!(runtime.read_workspace_file(&soul).await.unwrap(), WorkspaceFile::Text("managed".into()));

    // A workspace that resolves outside the state dir is refused.
    let elsewhere = temp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, state.join("workspace-qa")).unwrap();
    let qa = state.join("workspace-qa/AGENTS.md").display().to_string();
    assert!(matches!(runtime.write_workspace_file(&qa, "x").await, Err(RuntimeError::Refused { .. })));
    assert!(!elsewhere.join("AGENTS.md").exists());
}
