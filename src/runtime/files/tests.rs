use std::os::unix::fs::symlink;

use super::*;

fn roots(dir: &Path) -> Vec<PathBuf> {
    vec![dir.to_path_buf()]
}

#[test]
fn a_planted_symlink_target_is_refused_and_the_file_it_points_to_is_untouched() {
    let temp = tempfile::tempdir().unwrap();
    let (workspace, outside) = (temp.path().join("workspace"), temp.path().join("outside"));
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(&outside, "precious").unwrap();
    symlink(&outside, workspace.join("AGENTS.md")).unwrap();
    let refused = write_confined(&workspace.join("AGENTS.md"), b"managed", &roots(&workspace)).unwrap_err();
    assert!(matches!(refused, RuntimeError::Refused { .. }), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert_eq!(
        read_confined(&workspace.join("AGENTS.md"), 1024, &roots(&workspace)).unwrap(),
        WorkspaceFile::Refused("is a symbolic link".to_owned())
    );
}

#[test]
fn a_planted_temporary_file_cannot_redirect_the_write() {
    let temp = tempfile::tempdir().unwrap();
    let workspace = temp.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let outside = temp.path().join("outside");
    std::fs::write(&outside, "precious").unwrap();
    // The name the old code used, and the kind of name the new code uses: neither is followed.
    symlink(&outside, workspace.join("AGENTS.md.jhf-warp.tmp")).unwrap();
    write_confined(&workspace.join("AGENTS.md"), b"managed", &roots(&workspace)).unwrap();
    assert_eq!(std::fs::read_to_string(workspace.join("AGENTS.md")).unwrap(), "managed");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
}

#[test]
fn a_directory_that_resolves_outside_the_roots_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let (state, elsewhere) = (temp.path().join("state"), temp.path().join("elsewhere"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, state.join("workspace-lead")).unwrap();
    let refused = write_confined(&state.join("workspace-lead/AGENTS.md"), b"x", &roots(&state)).unwrap_err();
    assert!(matches!(refused, RuntimeError::Refused { .. }), "{refused:?}");
    assert!(!elsewhere.join("AGENTS.md").exists());
    let read = read_confined(&state.join("workspace-lead/AGENTS.md"), 1024, &roots(&state)).unwrap();
    assert!(matches!(read, WorkspaceFile::Refused(_)), "{read:?}");
}

#[test]
fn reads_take_only_regular_files_within_their_cap() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(dir.join("big.md"), vec![b'x'; 2048]).unwrap();
    assert!(matches!(read_capped(&dir.join("big.md"), 1024).unwrap(), WorkspaceFile::Refused(_)));
    symlink("/dev/zero", dir.join("zero.md")).unwrap();
    assert!(matches!(read_capped(&dir.join("zero.md"), 1024).unwrap(), WorkspaceFile::Refused(_)));
    let fifo = dir.join("fifo.md");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    assert!(matches!(read_capped(&fifo, 1024).unwrap(), WorkspaceFile::Refused(_)), "a FIFO never blocks");
    assert_eq!(read_capped(&dir.join("absent.md"), 1024).unwrap(), WorkspaceFile::Absent);
    std::fs::write(dir.join("ok.md"), "hello").unwrap();
    assert_eq!(read_capped(&dir.join("ok.md"), 1024).unwrap(), WorkspaceFile::Text("hello".to_owned()));
}

#[test]
fn the_config_backup_is_written_safely_too() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("openclaw.json"), "{}\n").unwrap();
    let outside = temp.path().join("outside");
    std::fs::write(&outside, "precious").unwrap();
    symlink(&outside, state.join("openclaw.json.bak")).unwrap();
    write_config_confined(&state.join("openclaw.json"), "{\"a\":1}\n", &roots(&state), 1 << 20).unwrap();
    assert_eq!(std::fs::read_to_string(state.join("openclaw.json.bak")).unwrap(), "{}\n");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(state.join("openclaw.json.bak")).unwrap().file_type().is_symlink());
}
