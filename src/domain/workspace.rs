//! Where a desired agent workspace may live. jhf-warp writes the workspace into the config and
//! creates it, so a path that names a home directory, a dot-directory of one or the state dir
//! itself would have it create and fill a directory it must never touch.
//!
//! # Guarantees
//! - A workspace is accepted only when it lies strictly below the state dir, or strictly below
//!   one of the configured roots without being a home directory or inside a dot-directory of
//!   one (`~/.ssh`, `/root/.config`, …). Any `..` component is refused before anything else.
//! - Paths are resolved the way OpenClaw resolves them: `~/` against the runtime user's home,
//!   relative paths against the state dir.

use std::path::{Component, Path, PathBuf};

/// The directories a workspace may be placed in, on the runtime host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkspacePolicy {
    pub state_dir: PathBuf,
    /// The runtime user's home, for `~/` and as a home directory to protect.
    pub home_dir: Option<PathBuf>,
    /// Directories besides the state dir that workspaces may live in.
    pub roots: Vec<PathBuf>,
}

/// Returns true when `path` is a home directory (`/root`, `/home/<user>` or the runtime
/// user's own).
fn is_home(path: &Path, home: Option<&Path>) -> bool {
    let parts: Vec<Component> = path.components().collect();
    let under_home = matches!(parts.as_slice(), [Component::RootDir, Component::Normal(h), Component::Normal(_)] if *h == "home");
    path == Path::new("/root") || under_home || home == Some(path)
}

/// Returns true when `path` lies inside a dot-directory of a home directory.
fn in_home_dot_dir(path: &Path, home: Option<&Path>) -> bool {
    path.ancestors().skip(1).any(|ancestor| {
        is_home(ancestor, home)
            && path
                .strip_prefix(ancestor)
                .ok()
                .and_then(|rest| rest.components().next())
                .is_some_and(|first| first.as_os_str().to_string_lossy().starts_with('.'))
    })
}

impl WorkspacePolicy {
    /// Resolves a workspace path as OpenClaw does, refusing any `..` component.
    fn resolve(&self, workspace: &str) -> Result<PathBuf, String> {
        let path = Path::new(workspace);
        if path.components().any(|c| c == Component::ParentDir) {
            return Err("must not contain `..`".to_owned());
        }
        let resolved = match (workspace.strip_prefix("~/"), &self.home_dir) {
            (Some(rest), Some(home)) => home.join(rest),
            (Some(_), None) => {
                return Err("`~/` cannot be resolved: the runtime user's home is unknown".to_owned());
            }
            (None, _) if path.is_absolute() => path.to_path_buf(),
            (None, _) => self.state_dir.join(path),
        };
        // Drop `.` components and trailing slashes.
        Ok(resolved.components().collect())
    }

    /// Checks a desired workspace (empty means "any", as the runtime chooses).
    pub fn check(&self, workspace: &str) -> Result<(), String> {
        if workspace.is_empty() {
            return Ok(());
        }
        let path = self.resolve(workspace)?;
        let state_dir: PathBuf = self.state_dir.components().collect();
        if path == state_dir {
            return Err("must not be the OpenClaw state dir itself".to_owned());
        }
        if path.starts_with(&state_dir) {
            return Ok(());
        }
        let home = self.home_dir.as_deref();
        let under_root = self.roots.iter().any(|root| path.starts_with(root) && path != *root);
        if !under_root {
            return Err(format!(
                "must lie below the state dir {} or a configured workspace root (--workspace-root)",
                state_dir.display()
            ));
        }
        if is_home(&path, home) {
            return Err("must not be a home directory".to_owned());
        }
        if in_home_dot_dir(&path, home) {
            return Err("must not be inside a dot-directory of a home directory".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WorkspacePolicy {
        WorkspacePolicy {
            state_dir: "/home/ops/.openclaw".into(),
            home_dir: Some("/home/ops".into()),
            roots: vec!["/srv/agents".into(), "/home".into()],
        }
    }

    #[test]
    fn workspaces_below_the_state_dir_or_a_root_are_accepted() {
        let policy = policy();
        for ok in
            ["", "/home/ops/.openclaw/workspace-lead", "workspace-qa", "~/.openclaw/ws/x", "/srv/agents/lead"]
        {
            assert_eq!(policy.check(ok), Ok(()), "{ok}");
        }
        assert!(policy.check("/home/alice/projects/ws").is_ok(), "inside a home, not a dot-dir");
    }

    #[test]
    fn the_state_dir_homes_dot_dirs_traversal_and_elsewhere_are_refused() {
        let policy = policy();
        for bad in [
            "/",
            "~/.ssh",
            "/home/ops/.ssh/keys",
            "/home/ops/.openclaw",
            "/home/ops/.openclaw/",
            "../..",
            "workspace/../../..",
            "/home/alice",
            "/home/alice/.config/x",
            "/root",
            "/root/.ssh",
            "/etc/cron.d",
            "/srv/agents",
        ] {
            assert!(policy.check(bad).is_err(), "{bad} must be refused");
        }
    }
}
