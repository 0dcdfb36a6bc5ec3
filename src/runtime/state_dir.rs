//! Reading an OpenClaw state directory on this host's filesystem: the config text plus the
//! facts the domain asks for (workspaces, session stores, rejected writes).

use std::path::{Path, PathBuf};

use super::{RuntimeError, WorkspaceFile};
use crate::domain::inventory::{RuntimeFacts, SessionActivity, StateLayout, resolve_agents};
use crate::domain::openclaw::parse_config;

/// Bytes of one legacy session store read (a larger one is not read).
const LEGACY_STORE_CAP: u64 = 4 << 20;

/// What a read of a state directory produced.
pub struct StateRead {
    pub raw_config: String,
    pub facts: RuntimeFacts,
}

/// Reads `<state_dir>/openclaw.json` (at most `cap` bytes) and the facts around it. A config
/// over the cap, or not a regular file, is reported in the facts (a finding), not read.
pub async fn read_state_dir(
    state_dir: &Path,
    home_dir: Option<&Path>,
    cap: u64,
) -> Result<StateRead, RuntimeError> {
    let config_path = state_dir.join("openclaw.json");
    let path = config_path.clone();
    let (raw_config, config_refused) = match super::files::blocking(move || {
        super::files::read_capped(&path, cap)
    })
    .await?
    {
        WorkspaceFile::Text(text) => (text, None),
        WorkspaceFile::Refused(why) => (String::new(), Some(why)),
        WorkspaceFile::Absent => {
            return Err(RuntimeError::Unreachable {
                detail: format!("cannot read {}: {}", config_path.display(), std::io::ErrorKind::NotFound),
            });
        }
    };
    let layout = StateLayout {
        state_dir: state_dir.display().to_string(),
        home_dir: home_dir.map(|home| home.display().to_string()),
    };
    let mut facts = RuntimeFacts {
        config_path: config_path.display().to_string(),
        layout: layout.clone(),
        config_refused,
        ..RuntimeFacts::default()
    };
    // An unreadable config has no agents to probe; the domain reports it as a finding.
    if let Ok(parsed) = parse_config(&raw_config) {
        for agent in resolve_agents(&parsed, &layout) {
            if is_dir(Path::new(&agent.workspace)).await {
                facts.existing_workspaces.insert(agent.workspace.clone());
            }
            let activity = session_activity(&state_dir.join("agents").join(&agent.id)).await;
            facts.session_stores.insert(agent.id, activity);
        }
    }
    facts.rejected_writes = rejected_writes(state_dir).await;
    Ok(StateRead { raw_config, facts })
}

async fn is_dir(path: &Path) -> bool {
    tokio::fs::metadata(path).await.map(|meta| meta.is_dir()).unwrap_or(false)
}

/// Detects the agent's session store. The current SQLite store is only detected, not read:
/// its schema is OpenClaw's own. The legacy `sessions.json` is a JSON object keyed by session.
async fn session_activity(agent_root: &Path) -> SessionActivity {
    // The store lives where agents write: read it without following a symlink, capped.
    let legacy = agent_root.join("sessions").join("sessions.json");
    match super::files::blocking(move || super::files::read_capped(&legacy, LEGACY_STORE_CAP)).await {
        Ok(WorkspaceFile::Text(text)) => return SessionActivity::from_legacy_store(&text),
        Ok(WorkspaceFile::Refused(_)) => return SessionActivity::from_legacy_store(""),
        _ => {}
    }
    let current: PathBuf = agent_root.join("agent").join("openclaw-agent.sqlite");
    if tokio::fs::metadata(&current).await.is_ok() {
        return SessionActivity::current_store();
    }
    SessionActivity::default()
}

async fn rejected_writes(state_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(state_dir).await else { return found };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("openclaw.json.rejected.") {
            found.push(name);
        }
    }
    found.sort();
    found
}
