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

#[tokio::test]
async fn a_command_that_prints_without_end_is_stopped_and_stderr_floods_are_kept_to_their_tail() {
    let shell = LocalShell;
    let endless = shell.run("yes", None, Duration::from_secs(30)).await;
    assert!(matches!(endless, Err(RuntimeError::InvalidOutput { .. })), "{endless:?}");
    let flood = shell
        .run(
            "head -c 10000000 /dev/zero | tr '\\0' x >&2; echo END >&2; echo ok",
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!((flood.exit_code, flood.stdout.trim()), (Some(0), "ok"));
    assert!(
        flood.stderr.len() <= 2 * STDERR_KEPT && flood.stderr.ends_with("END\n"),
        "{}",
        flood.stderr.len()
    );
}
