//! Writing a config file on this host the way OpenClaw does: the previous text is kept as
//! `openclaw.json.bak`, and the new text appears by atomic rename (fsynced), so a crash leaves
//! either the old or the new file, never a torn one.

use std::path::Path;

use serde_json::Value;

use super::RuntimeError;
use crate::domain::inventory::config_hash;
use crate::domain::openclaw::{ConfigIssue, parse_config, validate};
use crate::domain::patch::merge;

fn io_error(action: &str, path: &Path, err: &std::io::Error) -> RuntimeError {
    RuntimeError::Unreachable { detail: format!("cannot {action} {}: {}", path.display(), err.kind()) }
}

/// Returns the text the config would have after the patch (OpenClaw re-serialises plain JSON).
pub fn patched_text(raw: &str, merge_patch: &Value) -> Result<String, RuntimeError> {
    let mut document: Value = json5::from_str(raw).map_err(|_| RuntimeError::InvalidOutput {
        detail: "the current config is not valid JSON5".to_owned(),
    })?;
    merge::apply(&mut document, merge_patch);
    let mut text = serde_json::to_string_pretty(&document).map_err(|e| RuntimeError::InvalidOutput {
        detail: format!("cannot serialise the patched config: {e}"),
    })?;
    text.push('\n');
    Ok(text)
}

/// Returns jhf-warp's own structural issues of a config text.
pub fn structural_issues(text: &str) -> Vec<ConfigIssue> {
    match parse_config(text) {
        Ok(parsed) => validate(&parsed),
        Err(err) => vec![ConfigIssue { path: "<root>".to_owned(), message: err.to_string() }],
    }
}

/// Writes `text` to `path` atomically, keeping the previous file as `<path>.bak`.
pub async fn write_atomically(path: &Path, text: &str) -> Result<String, RuntimeError> {
    let backup = path.with_extension("json.bak");
    if tokio::fs::try_exists(path).await.unwrap_or(false) {
        tokio::fs::copy(path, &backup).await.map_err(|e| io_error("back up", path, &e))?;
    }
    let staging = path.with_extension("json.jhf-warp.tmp");
    let (staging_path, body) = (staging.clone(), text.to_owned());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&staging_path)?;
        file.write_all(body.as_bytes())?;
        file.sync_all()
    })
    .await
    .map_err(|e| RuntimeError::Unreachable { detail: format!("write task failed: {e}") })?
    .map_err(|e| io_error("write", &staging, &e))?;
    tokio::fs::rename(&staging, path).await.map_err(|e| io_error("replace", path, &e))?;
    Ok(config_hash(text))
}

/// Reads a text file; `None` when it does not exist.
pub async fn read_optional(path: &Path) -> Result<Option<String>, RuntimeError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", path, &e)),
    }
}

/// Writes a text file by atomic rename (no backup: used for managed workspace files).
pub async fn write_file_atomically(path: &Path, text: &str) -> Result<(), RuntimeError> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| io_error("create", parent, &e))?;
    }
    let mut staging = path.as_os_str().to_owned();
    staging.push(".jhf-warp.tmp");
    let staging = std::path::PathBuf::from(staging);
    tokio::fs::write(&staging, text).await.map_err(|e| io_error("write", &staging, &e))?;
    tokio::fs::rename(&staging, path).await.map_err(|e| io_error("replace", path, &e))
}

/// Creates workspace directories (and their parents).
pub async fn create_dirs(paths: &[String]) -> Result<(), RuntimeError> {
    for path in paths {
        tokio::fs::create_dir_all(path).await.map_err(|e| io_error("create", Path::new(path), &e))?;
    }
    Ok(())
}
