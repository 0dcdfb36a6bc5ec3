use super::*;

#[test]
fn quoting_survives_single_quotes() {
    assert_eq!(quote("it's"), r"'it'\''s'");
}

#[test]
fn stderr_tails_drop_colours_and_keep_the_end() {
    let text = format!("\u{1b}[35m[config]\u{1b}[39m {}END", "x".repeat(1000));
    let tail = tail(&text);
    assert!(tail.ends_with("END"));
    assert!(tail.chars().count() <= 400);
    assert!(!tail.contains('\u{1b}'));
}

#[tokio::test]
async fn local_commands_report_exit_codes_stdin_and_timeouts() {
    let shell = LocalShell;
    let out = shell.run("cat; echo err >&2; exit 3", Some(b"in"), Duration::from_secs(5)).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.trim()), (Some(3), "in", "err"));
    let slow = shell.run("sleep 5", None, Duration::from_millis(100)).await;
    assert!(matches!(slow, Err(RuntimeError::Timeout { .. })));
}
