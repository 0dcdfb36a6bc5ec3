//! Files on this host, written and read so that nothing planted in a workspace or the state
//! dir can redirect them.
//!
//! # Guarantees
//! - A write goes to a fresh random temporary name in the target's directory, created
//!   exclusively without following symlinks (`O_CREAT|O_EXCL|O_NOFOLLOW`), is fsynced, renamed
//!   over the target, and the directory is fsynced: a crash leaves the old or the new file.
//! - The target's directory must resolve (symlinks followed) inside one of the allowed roots,
//!   and the target itself must not be a symlink or anything but a regular file.
//! - A read never follows a symlink, reads only regular files (not a FIFO, not `/dev/zero`)
//!   and at most `cap` bytes; anything else is a refusal the caller reports, not a read.
//! - The config's previous text is kept as `openclaw.json.bak` by the same safe write.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{RuntimeError, WorkspaceFile};
use crate::domain::inventory::config_hash;
use crate::domain::openclaw::{ConfigIssue, parse_config, parse_json5_bounded, validate};
use crate::domain::patch::merge;

fn io_error(action: &str, path: &Path, err: &std::io::Error) -> RuntimeError {
    RuntimeError::Unreachable { detail: format!("cannot {action} {}: {}", path.display(), err.kind()) }
}

fn refused(path: &Path, why: &str) -> RuntimeError {
    RuntimeError::Refused { detail: format!("{}: {why}", path.display()) }
}

/// Returns the text the config would have after the patch (OpenClaw re-serialises plain JSON).
pub fn patched_text(raw: &str, merge_patch: &Value) -> Result<String, RuntimeError> {
    let mut document: Value = parse_json5_bounded(raw).map_err(|_| RuntimeError::InvalidOutput {
        detail: "the current config is not valid JSON5".to_owned(),
    })?;
    merge::apply(&mut document, merge_patch);
    let mut text = serde_json::to_string_pretty(&document).map_err(|e| RuntimeError::InvalidOutput {
        detail: format!("cannot serialise the patched config: {e}"),
    })?;
    text.push('\n');
    Ok(text)
}

/// The dry run jhf-warp does itself (fixture copies, repair plans, the Gateway, which has none):
/// the config must still be the text the plan was made against, and the patched text must
/// have no structural issue.
pub fn structural_dry_run(
    current: &super::ConfigText,
    patch: &super::PatchRequest<'_>,
) -> Result<super::DryRunReport, RuntimeError> {
    if current.hash != patch.base_hash {
        return Ok(super::DryRunReport {
            ok: false,
            errors: vec!["the config changed since the plan was made".to_owned()],
        });
    }
    let issues = structural_issues(&patched_text(&current.raw, patch.merge_patch)?);
    let errors: Vec<String> = issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect();
    Ok(super::DryRunReport { ok: errors.is_empty(), errors })
}

/// Returns jhf-warp's own structural issues of a config text.
pub fn structural_issues(text: &str) -> Vec<ConfigIssue> {
    match parse_config(text) {
        Ok(parsed) => validate(&parsed),
        Err(err) => vec![ConfigIssue { path: "<root>".to_owned(), message: err.to_string() }],
    }
}

/// Resolves `dir` (following symlinks) and checks it lies inside one of `roots`.
fn confined_dir(dir: &Path, roots: &[PathBuf]) -> Result<PathBuf, RuntimeError> {
    let real = std::fs::canonicalize(dir).map_err(|e| io_error("resolve", dir, &e))?;
    let inside =
        roots.iter().filter_map(|root| std::fs::canonicalize(root).ok()).any(|root| real.starts_with(&root));
    if inside { Ok(real) } else { Err(refused(dir, "resolves outside the directories jhf-warp may write")) }
}

/// Refuses a target that is a symlink or not a regular file.
fn check_target(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refused(path, "is a symbolic link")),
        Ok(meta) if !meta.is_file() => Err(refused(path, "is not a regular file")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("inspect", path, &e)),
    }
}

/// Writes `bytes` to `dir/name` through a fresh exclusive temporary file (see the module).
/// A symlinked target is refused unless `replace_link` (the rename replaces the link itself,
/// never what it points to: used for jhf-warp's own `.bak`).
fn replace_file(dir: &Path, name: &str, bytes: &[u8], replace_link: bool) -> Result<(), RuntimeError> {
    let target = dir.join(name);
    if !replace_link {
        check_target(&target)?;
    }
    let random = crate::random::random_hex(8).map_err(|e| RuntimeError::Setup { detail: e.to_string() })?;
    let staging = dir.join(format!(".{name}.jhf-warp.{random}.tmp"));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(io_error("write", &staging, &e));
    }
    if let Err(e) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_file(&staging);
        return Err(io_error("replace", &target, &e));
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("sync", dir, &e))
}

fn split(path: &Path) -> Result<(&Path, &str), RuntimeError> {
    let dir = path.parent().ok_or_else(|| refused(path, "has no directory"))?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| refused(path, "has no file name"))?;
    Ok((dir, name))
}

/// Writes a file confined to `roots`, creating its directory (see the module's guarantees).
pub fn write_confined(path: &Path, bytes: &[u8], roots: &[PathBuf]) -> Result<(), RuntimeError> {
    let (dir, name) = split(path)?;
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, &e))?;
    let real = confined_dir(dir, roots)?;
    replace_file(&real, name, bytes, false)
}

/// Writes the config confined to `roots`, keeping its previous text as `<name>.bak` (also
/// written safely, so a planted `.bak` symlink redirects nothing). Returns the new hash.
pub fn write_config_confined(
    path: &Path,
    text: &str,
    roots: &[PathBuf],
    cap: u64,
) -> Result<String, RuntimeError> {
    let (dir, name) = split(path)?;
    let real = confined_dir(dir, roots)?;
    if let WorkspaceFile::Text(previous) = read_capped(&real.join(name), cap)? {
        replace_file(&real, &format!("{name}.bak"), previous.as_bytes(), true)?;
    }
    replace_file(&real, name, text.as_bytes(), false)?;
    Ok(config_hash(text))
}

/// Reads a regular file without following a symlink, at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<WorkspaceFile, RuntimeError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Never block on a FIFO; never follow a planted symlink.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WorkspaceFile::Absent),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(WorkspaceFile::Refused("is a symbolic link".to_owned()));
        }
        Err(e) => return Err(io_error("read", path, &e)),
    };
    let meta = file.metadata().map_err(|e| io_error("inspect", path, &e))?;
    if !meta.is_file() {
        return Ok(WorkspaceFile::Refused("is not a regular file".to_owned()));
    }
    if meta.len() > cap {
        return Ok(WorkspaceFile::Refused(format!("is larger than {cap} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| io_error("read", path, &e))?;
    if bytes.len() as u64 > cap {
        return Ok(WorkspaceFile::Refused(format!("is larger than {cap} bytes")));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(WorkspaceFile::Text(text)),
        Err(_) => Ok(WorkspaceFile::Refused("is not UTF-8 text".to_owned())),
    }
}

/// Reads a file confined to `roots` (its directory must resolve inside one).
pub fn read_confined(path: &Path, cap: u64, roots: &[PathBuf]) -> Result<WorkspaceFile, RuntimeError> {
    let (dir, _) = split(path)?;
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WorkspaceFile::Absent),
        _ => {}
    }
    match confined_dir(dir, roots) {
        Ok(_) => read_capped(path, cap),
        Err(RuntimeError::Refused { detail }) => Ok(WorkspaceFile::Refused(detail)),
        Err(other) => Err(other),
    }
}

/// Creates workspace directories confined to `roots`.
pub fn create_dirs_confined(paths: &[String], roots: &[PathBuf]) -> Result<(), RuntimeError> {
    for path in paths {
        let path = Path::new(path);
        std::fs::create_dir_all(path).map_err(|e| io_error("create", path, &e))?;
        confined_dir(path, roots)?;
    }
    Ok(())
}

/// Runs blocking file work off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RuntimeError::Unreachable { detail: format!("file task failed: {e}") })?
}

#[cfg(test)]
mod tests;
