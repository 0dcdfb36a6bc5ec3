//! `local[:<state-dir>]` and `ssh://…`: a real OpenClaw installation, read with plain shell
//! commands and changed through the `openclaw` CLI, on this host or over SSH.
//!
//! # Guarantees
//! - The base hash is compared immediately before every write; a mismatch writes nothing.
//! - Without a working CLI the adapter is read-only (and readiness says so).
//! - CLI output is parsed as JSON; nothing the CLI prints is passed on except issue paths and
//!   messages, which never carry secret values.
//!
//! # Caveats
//! - `openclaw config patch` has no base hash, so there is a short window between the hash
//!   check and the write (the gateway's `config.patch` RPC closes it; not used yet).
//! - The CLI refuses to drop roster entries through a patch, so removed agents are deleted with
//!   `openclaw agents delete --force` (which also moves their workspace to the trash) — after
//!   the patch, which has already narrowed every list that names them.
//! - The CLI refuses to load an invalid config, so repair plans are written directly (atomic
//!   rename, `.bak` kept) after jhf-warp's own structural dry run, then validated by the CLI.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::files::{patched_text, structural_dry_run};
use super::shell::{CommandOutput, HostShell, quote};
use super::{
    BOOTSTRAP_FILE_CAP, ConfigText, DryRunReport, PatchRequest, RuntimeAdapter, RuntimeError, RuntimeLimits,
    RuntimeMode, WorkspaceFile,
};
use crate::domain::Inventory;
use crate::domain::inventory::{
    RuntimeFacts, SessionActivity, StateLayout, build_inventory, config_hash, resolve_agents,
};
use crate::domain::openclaw::{ConfigIssue, parse_config};
use crate::domain::patch::PatchShape;
use crate::domain::patch::gateway::without_roster_deletions;
use crate::domain::permissions::CronJob;

/// How long one CLI command may take (agent deletion takes ~12 s on a small machine).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a plain shell read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes of one legacy session store read (a larger one counts what fits).
const LEGACY_STORE_CAP: usize = 4 << 20;

/// Splits the output of [`CliRuntime::legacy_sessions`] into (agent, file text) pairs.
fn split_marked<'a>(text: &'a str, boundary: &str) -> Vec<(String, &'a str)> {
    let prefix = format!("=={boundary}:");
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&prefix) {
        let after = &rest[start + prefix.len()..];
        let Some(end) = after.find("==\n") else { break };
        let agent = after[..end].to_owned();
        let body = &after[end + 3..];
        let next = body.find(&prefix).map(|i| body[..i].rfind('\n').unwrap_or(i)).unwrap_or(body.len());
        parts.push((agent, &body[..next]));
        rest = &body[next..];
    }
    parts
}

/// An OpenClaw installation reached through a shell.
pub struct CliRuntime {
    address: String,
    mode: RuntimeMode,
    shell: Arc<dyn HostShell>,
    state_dir: String,
    home_dir: Option<String>,
    openclaw_bin: String,
    version: Option<String>,
    read_only_reason: Option<String>,
    limits: RuntimeLimits,
    /// The last `openclaw cron list` answer and when it was asked (it needs a running Gateway
    /// and costs a Node start-up, so it is asked at most every [`CRON_REFRESH`]).
    cron: std::sync::Mutex<Option<(std::time::Instant, Option<Vec<CronJob>>)>>,
}

/// How often a CLI runtime asks for its cron jobs.
const CRON_REFRESH: Duration = Duration::from_secs(300);

impl std::fmt::Debug for CliRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliRuntime")
            .field("address", &self.address)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

/// Extracts the first JSON document a CLI printed (it may print log lines first).
fn json_document(text: &str) -> Option<Value> {
    let start = text.find(['{', '['])?;
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    stream.next()?.ok()
}

impl CliRuntime {
    /// Connects: finds the state dir (default `$OPENCLAW_STATE_DIR` or `~/.openclaw`) and asks the
    /// CLI for its version; a missing CLI makes the adapter read-only.
    pub async fn connect(
        address: String,
        mode: RuntimeMode,
        shell: Arc<dyn HostShell>,
        state_dir: Option<String>,
        openclaw_bin: String,
        limits: RuntimeLimits,
    ) -> Result<Self, RuntimeError> {
        let probe = shell
            .run(r#"printf '%s\n%s\n' "$HOME" "${OPENCLAW_STATE_DIR:-$HOME/.openclaw}""#, None, READ_TIMEOUT)
            .await?;
        if !probe.success() {
            return Err(probe.failure());
        }
        let mut lines = probe.stdout.lines();
        let home_dir = lines.next().filter(|h| !h.is_empty()).map(str::to_owned);
        let default_state = lines.next().unwrap_or("").to_owned();
        let state_dir = state_dir.unwrap_or(default_state).trim_end_matches('/').to_owned();
        if state_dir.is_empty() {
            return Err(RuntimeError::Setup { detail: "cannot determine the OpenClaw state dir".to_owned() });
        }
        let mut runtime = Self {
            address,
            mode,
            shell,
            state_dir,
            home_dir,
            openclaw_bin,
            version: None,
            read_only_reason: None,
            limits,
            cron: std::sync::Mutex::new(None),
        };
        let version = runtime
            .shell
            .run(&format!("{} --version", quote(&runtime.openclaw_bin)), None, READ_TIMEOUT)
            .await;
        match version {
            Ok(out) if out.success() => {
                runtime.version = out
                    .stdout
                    .split_whitespace()
                    .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
                    .map(str::to_owned);
            }
            Ok(out) => {
                runtime.read_only_reason =
                    Some(format!("`{} --version` failed: {}", runtime.openclaw_bin, out.failure()))
            }
            Err(err) => runtime.read_only_reason = Some(format!("the openclaw CLI cannot run: {err}")),
        }
        Ok(runtime)
    }

    fn config_path(&self) -> String {
        format!("{}/openclaw.json", self.state_dir)
    }

    fn cli(&self, args: &str) -> String {
        format!("OPENCLAW_STATE_DIR={} {} {args}", quote(&self.state_dir), quote(&self.openclaw_bin))
    }

    fn require_cli(&self) -> Result<(), RuntimeError> {
        match &self.read_only_reason {
            Some(reason) => Err(RuntimeError::ReadOnly { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Probes workspaces, session stores and rejected writes in one round trip, then reads
    /// every legacy session store in a second one: two commands whatever the team's size, each
    /// script fed on stdin (no argument-size limit).
    async fn facts(&self, raw: &str) -> Result<RuntimeFacts, RuntimeError> {
        let layout = StateLayout { state_dir: self.state_dir.clone(), home_dir: self.home_dir.clone() };
        let mut facts = RuntimeFacts {
            config_path: self.config_path(),
            layout: layout.clone(),
            ..RuntimeFacts::default()
        };
        let agents = parse_config(raw).map(|parsed| resolve_agents(&parsed, &layout)).unwrap_or_default();
        let mut script = String::new();
        for agent in &agents {
            let root = format!("{}/agents/{}", self.state_dir, agent.id);
            script.push_str(&format!(
                "[ -d {ws} ] && printf 'dir\\t%s\\n' {ws}; [ -f {legacy} ] && printf 'legacy\\t%s\\n' {id}; [ -f {current} ] && printf 'current\\t%s\\n' {id};\n",
                ws = quote(&agent.workspace),
                legacy = quote(&format!("{root}/sessions/sessions.json")),
                current = quote(&format!("{root}/agent/openclaw-agent.sqlite")),
                id = quote(&agent.id),
            ));
        }
        script.push_str(&format!(
            "for f in {}/openclaw.json.rejected.*; do [ -e \"$f\" ] && printf 'rejected\\t%s\\n' \"${{f##*/}}\"; done; true\n",
            quote(&self.state_dir)
        ));
        let out = self.shell.run_script(&script, READ_TIMEOUT).await?;
        if !out.success() {
            return Err(out.failure());
        }
        let mut legacy = Vec::new();
        for line in out.stdout.lines() {
            let Some((kind, value)) = line.split_once('\t') else { continue };
            match kind {
                "dir" => {
                    facts.existing_workspaces.insert(value.to_owned());
                }
                "current" => {
                    facts
                        .session_stores
                        .entry(value.to_owned())
                        .or_insert_with(SessionActivity::current_store);
                }
                "legacy" => legacy.push(value.to_owned()),
                "rejected" => facts.rejected_writes.push(value.to_owned()),
                _ => {}
            }
        }
        facts.session_stores.extend(self.legacy_sessions(&legacy).await);
        facts.rejected_writes.sort();
        Ok(facts)
    }

    /// Reads the legacy session stores of `agents` in one command. Each file is printed after
    /// a marker line carrying a per-call random boundary, so a file's content cannot fake a
    /// marker; each is cut at [`LEGACY_STORE_CAP`] bytes.
    async fn legacy_sessions(&self, agents: &[String]) -> Vec<(String, SessionActivity)> {
        if agents.is_empty() {
            return Vec::new();
        }
        let Ok(boundary) = crate::random::random_hex(16) else { return Vec::new() };
        let mut script = String::new();
        for agent in agents {
            let path = format!("{}/agents/{agent}/sessions/sessions.json", self.state_dir);
            script.push_str(&format!(
                "printf '\\n%s\\n' {marker}; head -c {LEGACY_STORE_CAP} {path} 2>/dev/null;\n",
                marker = quote(&format!("=={boundary}:{agent}==")),
                path = quote(&path),
            ));
        }
        let text = match self.shell.run_script(&script, READ_TIMEOUT).await {
            Ok(out) if out.success() => out.stdout,
            _ => String::new(),
        };
        split_marked(&text, &boundary)
            .into_iter()
            .map(|(agent, body)| (agent, SessionActivity::from_legacy_store(body)))
            .collect()
    }

    /// `openclaw config validate --json`: the CLI's own schema issues.
    async fn validate(&self) -> Result<Vec<ConfigIssue>, RuntimeError> {
        let out = self.shell.run(&self.cli("config validate --json"), None, COMMAND_TIMEOUT).await?;
        let document = json_document(&out.stdout).ok_or_else(|| RuntimeError::InvalidOutput {
            detail: format!("`config validate --json` printed no JSON (exit {:?})", out.exit_code),
        })?;
        if document.get("valid").and_then(Value::as_bool) == Some(true) {
            return Ok(Vec::new());
        }
        let issues = document.get("issues").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut parsed: Vec<ConfigIssue> = issues
            .iter()
            .map(|issue| ConfigIssue {
                path: issue.get("path").and_then(Value::as_str).unwrap_or("<root>").to_owned(),
                message: issue.get("message").and_then(Value::as_str).unwrap_or("invalid").to_owned(),
            })
            .collect();
        if parsed.is_empty() {
            parsed.push(ConfigIssue {
                path: "<root>".to_owned(),
                message: "the CLI reports the config invalid".to_owned(),
            });
        }
        Ok(parsed)
    }

    /// The shell functions of confined file access (see `runtime/files.rs` for the rules):
    /// `inside REALDIR` holds when the directory lies in the state dir or a workspace root
    /// (each resolved on the host), `write_safely DIR NAME` writes stdin to DIR/NAME through a
    /// fresh `mktemp` file, refusing a symlinked or irregular target (exit 6) and a directory
    /// that resolves elsewhere (exit 5).
    fn confined_prelude(&self) -> String {
        let mut roots = vec![quote(&self.state_dir)];
        roots.extend(self.limits.workspace_roots.iter().map(|r| quote(&r.display().to_string())));
        format!(
            r#"set -eu
inside() {{
  for root in {roots}; do
    rr=$(cd -P -- "$root" 2>/dev/null && pwd -P) || continue
    case "$1/" in "$rr"/*) return 0;; esac
  done
  return 1
}}
write_safely() {{
  mkdir -p -- "$1"
  real=$(cd -P -- "$1" && pwd -P)
  inside "$real" || {{ echo "$1 resolves outside the directories jhf-warp may write" >&2; exit 5; }}
  t="$real/$2"
  if [ -L "$t" ]; then echo "$t is a symbolic link" >&2; exit 6; fi
  if [ -e "$t" ] && [ ! -f "$t" ]; then echo "$t is not a regular file" >&2; exit 6; fi
  tmp=$(mktemp "$real/.$2.jhf-warp.XXXXXXXX")
  if ! cat > "$tmp"; then rm -f -- "$tmp"; exit 1; fi
  chmod 644 "$tmp"
  sync -- "$tmp" 2>/dev/null || sync
  mv -f -- "$tmp" "$t"
  sync -- "$real" 2>/dev/null || true
}}
"#,
            roots = roots.join(" ")
        )
    }

    /// Maps the exit of a confined script: 5 and 6 are refusals, other failures errors.
    fn confined_result(out: CommandOutput) -> Result<CommandOutput, RuntimeError> {
        match out.exit_code {
            Some(0) => Ok(out),
            Some(5 | 6) => Err(RuntimeError::Refused { detail: out.stderr.trim().to_owned() }),
            _ => Err(out.failure()),
        }
    }

    /// Writes `text` as the config (the previous text kept as `.bak`, both written safely).
    async fn write_config(&self, text: &str) -> Result<String, RuntimeError> {
        let script = format!(
            r#"{prelude}
real=$(cd -P -- {dir} && pwd -P)
inside "$real" || {{ echo "the state dir resolves outside the directories jhf-warp may write" >&2; exit 5; }}
if [ -f "$real/openclaw.json" ] && [ ! -L "$real/openclaw.json" ]; then
  bak=$(mktemp "$real/.openclaw.json.bak.jhf-warp.XXXXXXXX")
  cat -- "$real/openclaw.json" > "$bak"
  mv -f -- "$bak" "$real/openclaw.json.bak"
fi
write_safely "$real" openclaw.json
"#,
            prelude = self.confined_prelude(),
            dir = quote(&self.state_dir)
        );
        Self::confined_result(self.shell.run(&script, Some(text.as_bytes()), READ_TIMEOUT).await?)?;
        Ok(config_hash(text))
    }

    async fn check_base(&self, expected: &str) -> Result<ConfigText, RuntimeError> {
        let current = self.read_config().await?;
        if current.hash != expected {
            return Err(RuntimeError::BaseHashMismatch {
                expected: expected.to_owned(),
                actual: current.hash,
            });
        }
        Ok(current)
    }

    async fn create_workspaces(&self, paths: &[String]) -> Result<(), RuntimeError> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut script = self.confined_prelude();
        for path in paths {
            script.push_str(&format!(
                "mkdir -p -- {p}; real=$(cd -P -- {p} && pwd -P); inside \"$real\" || {{ echo {p} resolves outside the directories jhf-warp may write >&2; exit 5; }}\n",
                p = quote(path)
            ));
        }
        Self::confined_result(self.shell.run_script(&script, READ_TIMEOUT).await?).map(drop)
    }

    /// Cron jobs as `openclaw cron list --all --json` prints them (it asks the installation's
    /// Gateway); `None` when there is no Gateway to ask, remembered for [`CRON_REFRESH`].
    async fn cron_jobs(&self) -> Option<Vec<CronJob>> {
        if let Some((at, jobs)) = self.cron.lock().unwrap_or_else(|p| p.into_inner()).clone()
            && at.elapsed() < CRON_REFRESH
        {
            return jobs;
        }
        let out =
            self.shell.run(&self.cli("cron list --all --json --timeout 5000"), None, READ_TIMEOUT).await;
        let jobs =
            out.ok().filter(CommandOutput::success).and_then(|out| json_document(&out.stdout)).map(|doc| {
                let rows = doc.get("jobs").cloned().unwrap_or(doc);
                rows.as_array()
                    .map(|rows| rows.iter().filter_map(CronJob::from_json).collect())
                    .unwrap_or_default()
            });
        *self.cron.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), jobs.clone()));
        jobs
    }

    fn replace_args(paths: &[String]) -> String {
        paths.iter().map(|p| format!(" --replace-path {}", quote(p))).collect()
    }
}

#[async_trait]
impl RuntimeAdapter for CliRuntime {
    fn address(&self) -> &str {
        &self.address
    }

    fn mode(&self) -> RuntimeMode {
        self.mode
    }

    fn read_only_reason(&self) -> Option<String> {
        self.read_only_reason.clone()
    }

    async fn observe(&self) -> Result<Inventory, RuntimeError> {
        // A config jhf-warp may not read (too large, not a regular file) is a finding.
        let (config, refused) = match self.read_config().await {
            Ok(config) => (config, None),
            Err(RuntimeError::Refused { detail }) => {
                (ConfigText { raw: String::new(), hash: config_hash("") }, Some(detail))
            }
            Err(other) => return Err(other),
        };
        let mut facts = self.facts(&config.raw).await?;
        if let Some(reason) = refused {
            facts.config_refused = Some(reason);
            facts.openclaw_version = self.version.clone();
            return Ok(build_inventory("", &facts));
        }
        facts.openclaw_version = self.version.clone();
        if self.read_only_reason.is_none() {
            facts.cli_issues = Some(self.validate().await?);
            facts.cron_jobs = self.cron_jobs().await;
        }
        Ok(build_inventory(&config.raw, &facts))
    }

    fn patch_shape(&self) -> PatchShape {
        PatchShape::Entries
    }

    async fn read_config(&self) -> Result<ConfigText, RuntimeError> {
        let cap = self.limits.config_max_bytes;
        let script = format!(
            r#"p={p}
if [ ! -f "$p" ]; then
  if [ -e "$p" ]; then echo "$p is not a regular file" >&2; exit 6; fi
  echo "$p does not exist" >&2; exit 3
fi
size=$(wc -c < "$p")
if [ "$size" -gt {cap} ]; then echo "$p is larger than {cap} bytes" >&2; exit 6; fi
head -c {cap} -- "$p""#,
            p = quote(&self.config_path())
        );
        let out = self.shell.run(&script, None, READ_TIMEOUT).await?;
        match out.exit_code {
            Some(0) => Ok(ConfigText { hash: config_hash(&out.stdout), raw: out.stdout }),
            Some(6) => Err(RuntimeError::Refused { detail: out.stderr.trim().to_owned() }),
            _ => Err(RuntimeError::Unreachable {
                detail: format!("cannot read {}: {}", self.config_path(), out.failure()),
            }),
        }
    }

    async fn dry_run(&self, patch: &PatchRequest<'_>) -> Result<DryRunReport, RuntimeError> {
        let current = self.read_config().await?;
        // A stale base answers the same either way; repair plans are checked by jhf-warp itself.
        if patch.repair || current.hash != patch.base_hash {
            return structural_dry_run(&current, patch);
        }
        self.require_cli()?;
        let command = self.cli(&format!(
            "config patch --stdin --dry-run --json{}",
            Self::replace_args(patch.replace_paths)
        ));
        let out =
            self.shell.run(&command, Some(patch.merge_patch.to_string().as_bytes()), COMMAND_TIMEOUT).await?;
        let document = json_document(&out.stdout).ok_or_else(|| RuntimeError::InvalidOutput {
            detail: format!("`config patch --dry-run --json` printed no JSON (exit {:?})", out.exit_code),
        })?;
        let ok = document.get("ok").and_then(Value::as_bool).unwrap_or(false);
        let errors = document
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(DryRunReport { ok, errors })
    }

    async fn apply(&self, patch: &PatchRequest<'_>) -> Result<String, RuntimeError> {
        self.require_cli()?;
        let current = self.check_base(patch.base_hash).await?;
        if patch.repair {
            self.write_config(&patched_text(&current.raw, patch.merge_patch)?).await?;
        } else {
            // The narrowing patch goes first and the deletions after it: `agents delete` prunes
            // the agent from `tools.agentToAgent.allow`, and a list it empties means "every
            // pair" to OpenClaw. With the patch first, the allow list already names only the
            // agents that stay, so no deletion can open it (and a refused patch deletes nothing).
            let merge_patch = without_roster_deletions(patch.merge_patch, patch.remove_agents);
            if merge_patch.as_object().is_none_or(|patch| !patch.is_empty()) {
                let command =
                    self.cli(&format!("config patch --stdin{}", Self::replace_args(patch.replace_paths)));
                let out = self
                    .shell
                    .run(&command, Some(merge_patch.to_string().as_bytes()), COMMAND_TIMEOUT)
                    .await?;
                if !out.success() {
                    return Err(out.failure());
                }
            }
            for agent in patch.remove_agents {
                let out = self
                    .shell
                    .run(
                        &self.cli(&format!("agents delete {} --force --json", quote(agent))),
                        None,
                        COMMAND_TIMEOUT,
                    )
                    .await?;
                if !out.success() {
                    return Err(out.failure());
                }
            }
        }
        self.create_workspaces(patch.create_workspaces).await?;
        Ok(self.read_config().await?.hash)
    }

    async fn restore(&self, pre_image: &str, expected_hash: &str) -> Result<String, RuntimeError> {
        self.require_cli()?;
        self.check_base(expected_hash).await?;
        self.write_config(pre_image).await
    }

    async fn read_workspace_file(&self, path: &str) -> Result<WorkspaceFile, RuntimeError> {
        // Exit 3 means absent; 5 and 6 are refusals (outside the roots, a symlink, not a
        // regular file, over the cap); anything else non-zero is a failure worth reporting.
        let script = format!(
            r#"{prelude}
p={p}
dir=$(dirname -- "$p")
real=$(cd -P -- "$dir" 2>/dev/null && pwd -P) || exit 3
inside "$real" || {{ echo "$dir resolves outside the directories jhf-warp may read" >&2; exit 5; }}
if [ -L "$p" ]; then echo "is a symbolic link" >&2; exit 6; fi
[ -e "$p" ] || exit 3
[ -f "$p" ] || {{ echo "is not a regular file" >&2; exit 6; }}
size=$(wc -c < "$p")
if [ "$size" -gt {cap} ]; then echo "is larger than {cap} bytes" >&2; exit 6; fi
cat -- "$p""#,
            prelude = self.confined_prelude(),
            p = quote(path),
            cap = BOOTSTRAP_FILE_CAP
        );
        let out = self.shell.run(&script, None, READ_TIMEOUT).await?;
        match out.exit_code {
            Some(0) => Ok(WorkspaceFile::Text(out.stdout)),
            Some(3) => Ok(WorkspaceFile::Absent),
            Some(5 | 6) => Ok(WorkspaceFile::Refused(out.stderr.trim().to_owned())),
            _ => Err(out.failure()),
        }
    }

    async fn write_workspace_file(&self, path: &str, text: &str) -> Result<(), RuntimeError> {
        self.require_cli()?;
        let path = std::path::Path::new(path);
        let dir = path.parent().and_then(|p| p.to_str()).unwrap_or(".");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let script = format!("{}\nwrite_safely {} {}\n", self.confined_prelude(), quote(dir), quote(name));
        Self::confined_result(self.shell.run(&script, Some(text.as_bytes()), READ_TIMEOUT).await?).map(drop)
    }

    fn workspace_roots(&self) -> Vec<std::path::PathBuf> {
        self.limits.workspace_roots.clone()
    }

    fn layout(&self) -> StateLayout {
        StateLayout { state_dir: self.state_dir.clone(), home_dir: self.home_dir.clone() }
    }
}

#[cfg(test)]
mod tests;
