//! Running shell commands on the runtime host: directly (`local`) or through the system `ssh`
//! client (`ssh://`), with a timeout, stdin, and typed failures.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::RuntimeError;

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Returns true for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Turns a non-zero exit into a typed error with the tail of stderr.
    pub fn failure(&self) -> RuntimeError {
        RuntimeError::CommandFailed { exit_code: self.exit_code, stderr_tail: tail(&self.stderr) }
    }
}

/// The last 400 characters of a command's stderr, ANSI colours removed.
fn tail(text: &str) -> String {
    let plain: String = strip_ansi(text);
    let trimmed = plain.trim();
    let start = trimmed.char_indices().rev().nth(399).map(|(i, _)| i).unwrap_or(0);
    trimmed[start..].to_owned()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a string for a POSIX shell.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs shell scripts on the runtime host.
#[async_trait]
pub trait HostShell: Send + Sync + 'static {
    /// Runs `script` with `sh -c`, feeding `stdin`, bounded by `timeout`.
    async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RuntimeError>;

    /// Runs a script of any length: it is fed to `sh -s` on stdin, so its size is not bound by
    /// the kernel's argument limit (a script naming 500 agents' paths fails with E2BIG as an
    /// argument).
    async fn run_script(&self, script: &str, timeout: Duration) -> Result<CommandOutput, RuntimeError>;
}

/// This host.
#[derive(Debug, Default)]
pub struct LocalShell;

#[async_trait]
impl HostShell for LocalShell {
    async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RuntimeError> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        execute(command, stdin, timeout).await
    }

    async fn run_script(&self, script: &str, timeout: Duration) -> Result<CommandOutput, RuntimeError> {
        let mut command = Command::new("sh");
        command.arg("-s");
        execute(command, Some(script.as_bytes()), timeout).await
    }
}

/// A remote host through the system `ssh` client: batch mode (never prompts), host keys
/// checked, connect and command timeouts.
#[derive(Debug, Clone)]
pub struct SshShell {
    pub destination: String,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl SshShell {
    /// Runs `remote` (one command line for the remote shell) with `stdin`.
    async fn remote(
        &self,
        remote: String,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RuntimeError> {
        let mut command = Command::new("ssh");
        command
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)));
        if let Some(known_hosts) = &self.known_hosts {
            command.arg("-o").arg(format!("UserKnownHostsFile={}", known_hosts.display()));
        }
        if let Some(identity) = &self.identity {
            command.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(identity);
        }
        if let Some(port) = self.port {
            command.arg("-p").arg(port.to_string());
        }
        // ssh joins the remote words into one command line for the remote shell.
        command.arg(&self.destination).arg("--").arg(remote);
        let output = execute(command, stdin, timeout).await?;
        if output.exit_code == Some(255) {
            return Err(RuntimeError::Unreachable {
                detail: format!("ssh to {} failed: {}", self.destination, tail(&output.stderr)),
            });
        }
        Ok(output)
    }
}

#[async_trait]
impl HostShell for SshShell {
    async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RuntimeError> {
        self.remote(format!("sh -c {}", quote(script)), stdin, timeout).await
    }

    async fn run_script(&self, script: &str, timeout: Duration) -> Result<CommandOutput, RuntimeError> {
        self.remote("sh -s".to_owned(), Some(script.as_bytes()), timeout).await
    }
}

/// Most a command may print on stdout before it is stopped and its answer refused (the facts
/// script prints the config, capped by --max-config-bytes, plus listings): a runtime that
/// prints without end must not grow this process's memory without bound.
pub const STDOUT_CAP: u64 = 64 << 20;
/// Most of stderr kept (only its tail is ever reported; the rest is read and dropped).
const STDERR_KEPT: usize = 64 << 10;

/// Reads a pipe to its end keeping at most `cap` bytes; true when more came.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(pipe) = pipe else { return Ok((Vec::new(), false)) };
    let mut kept = Vec::new();
    let mut limited = pipe.take(cap + 1);
    limited.read_to_end(&mut kept).await?;
    let over = kept.len() as u64 > cap;
    kept.truncate(cap as usize);
    Ok((kept, over))
}

/// Reads stderr to its end, keeping only its last `STDERR_KEPT` bytes (draining it all so the
/// command never blocks on a full pipe).
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let Some(mut pipe) = pipe else { return Ok(Vec::new()) };
    let (mut kept, mut chunk) = (Vec::new(), vec![0u8; 8192]);
    loop {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            return Ok(kept);
        }
        kept.extend_from_slice(&chunk[..read]);
        if kept.len() > 2 * STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
    }
}

async fn execute(
    mut command: Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<CommandOutput, RuntimeError> {
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|err| RuntimeError::Unreachable { detail: format!("cannot start command: {err}") })?;
    // Stdin is written while the output is read: a command that prints while it still reads
    // (a script fed to `sh -s`) would otherwise fill its stdout pipe and wait for us while we
    // wait for it to read more stdin.
    let pipe = child.stdin.take();
    let feed = async move {
        if let (Some(input), Some(mut pipe)) = (stdin, pipe) {
            // A command that exits without reading all its input is not a write failure.
            if let Err(err) = pipe.write_all(input).await
                && err.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(RuntimeError::Unreachable { detail: format!("cannot write to command: {err}") });
            }
        }
        Ok(())
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let failed =
        |err: std::io::Error| RuntimeError::Unreachable { detail: format!("command failed to run: {err}") };
    let run = async {
        let (fed, out, err) = tokio::join!(feed, read_capped(stdout, STDOUT_CAP), read_tail(stderr));
        fed?;
        let ((stdout, over), stderr) = (out.map_err(failed)?, err.map_err(failed)?);
        if over {
            // Dropping the child kills it (kill_on_drop).
            return Err(RuntimeError::InvalidOutput {
                detail: format!("the command printed more than {STDOUT_CAP} bytes; it was stopped"),
            });
        }
        let status = child.wait().await.map_err(failed)?;
        Ok((status, stdout, stderr))
    };
    let (status, stdout, stderr) =
        tokio::time::timeout(timeout, run).await.map_err(|_| RuntimeError::Timeout { after: timeout })??;
    Ok(CommandOutput {
        exit_code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests;
