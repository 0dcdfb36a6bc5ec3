//! Bearer tokens: loading them from a file or the environment, generating the first operator
//! token, and checking a presented token in constant time.
//!
//! # Guarantees
//! - Tokens are kept only as sha256 digests in memory; a file may store digests only.
//! - A generated token is written with mode 0600 and never logged; only its path is.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::access::{Principal, Role};

/// Name of the token generated at first start when none is configured.
pub const GENERATED_TOKEN_NAME: &str = "local-operator";
/// File name of the generated token in the data dir.
pub const GENERATED_TOKEN_FILE: &str = "operator.token";

/// Why tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "token file {path} is {why}; refusing to use it (a token file must be a regular file only its owner can read: chmod 600)"
    )]
    Insecure { path: PathBuf, why: &'static str },
    #[error("token file {path} is invalid: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("JHF_WARP_TOKENS entry {index} is invalid: {detail}")]
    InvalidEnv { index: usize, detail: String },
    #[error("cannot write generated token {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

struct TokenEntry {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The configured tokens.
pub struct TokenStore {
    entries: Vec<TokenEntry>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|e| (&e.name, e.role)).collect();
        f.debug_struct("TokenStore").field("tokens", &names).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenFileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFileEntry {
    name: String,
    role: String,
    token: Option<String>,
    sha256: Option<String>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenStore {
    /// Creates a store from `(name, role, token)` triples.
    pub fn from_plain(tokens: impl IntoIterator<Item = (String, Role, String)>) -> Self {
        let entries = tokens
            .into_iter()
            .map(|(name, role, token)| TokenEntry { name, role, digest: digest(&token) })
            .collect();
        Self { entries }
    }

    /// Loads tokens from `--token-file` and `JHF_WARP_TOKENS`. When neither configures any,
    /// reuses or creates `<data_dir>/operator.token` and returns its path as the second value.
    pub fn load(
        token_file: Option<&Path>,
        env_tokens: Option<&str>,
        data_dir: &Path,
    ) -> Result<(Self, Option<PathBuf>), AuthSetupError> {
        let mut entries = Vec::new();
        if let Some(path) = token_file {
            entries.extend(read_token_file(path)?);
        }
        if let Some(spec) = env_tokens.filter(|s| !s.trim().is_empty()) {
            entries.extend(parse_env_tokens(spec)?);
        }
        if !entries.is_empty() {
            return Ok((Self { entries }, None));
        }
        let path = data_dir.join(GENERATED_TOKEN_FILE);
        let token = read_or_create_token(&path)?;
        let entry = TokenEntry {
            name: GENERATED_TOKEN_NAME.to_owned(),
            role: Role::Operator,
            digest: digest(&token),
        };
        Ok((Self { entries: vec![entry] }, Some(path)))
    }

    /// Returns the principal of a presented token; every entry is compared, in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let presented = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(Principal { name: entry.name.clone(), role: entry.role });
            }
        }
        found
    }
}

/// Reads a file of secrets: never through a symlink, only a regular file that neither its
/// group nor others can read (a token readable by anyone on the host is a token given away).
pub(crate) fn read_secret_file(path: &Path) -> Result<String, AuthSetupError> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let insecure = |why| AuthSetupError::Insecure { path: path.into(), why };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => insecure("reached through a symbolic link"),
            _ => AuthSetupError::Read { path: path.into(), source },
        })?;
    let meta = file.metadata().map_err(|source| AuthSetupError::Read { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(insecure("not a regular file"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(insecure("readable or writable by its group or others"));
    }
    let mut text = String::new();
    file.take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|source| AuthSetupError::Read { path: path.into(), source })?;
    Ok(text)
}

fn read_token_file(path: &Path) -> Result<Vec<TokenEntry>, AuthSetupError> {
    let text = read_secret_file(path)?;
    let invalid = |detail: String| AuthSetupError::Invalid { path: path.into(), detail };
    let file: TokenFile = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("not the expected JSON: line {} column {}", e.line(), e.column())))?;
    file.tokens
        .into_iter()
        .map(|entry| {
            let role = entry.role.parse::<Role>().map_err(|e| invalid(format!("{}: {e}", entry.name)))?;
            let digest = match (entry.token, entry.sha256) {
                (Some(token), None) if !token.is_empty() => digest(&token),
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest.trim())
                        .map_err(|_| invalid(format!("{}: sha256 is not hex", entry.name)))?;
                    bytes
                        .try_into()
                        .map_err(|_| invalid(format!("{}: sha256 must be 32 bytes", entry.name)))?
                }
                _ => return Err(invalid(format!("{}: set exactly one of token or sha256", entry.name))),
            };
            Ok(TokenEntry { name: entry.name, role, digest })
        })
        .collect()
}

/// Parses `name:role:token[,name:role:token…]`.
fn parse_env_tokens(spec: &str) -> Result<Vec<TokenEntry>, AuthSetupError> {
    spec.split(',')
        .enumerate()
        .map(|(index, item)| {
            let invalid = |detail: &str| AuthSetupError::InvalidEnv { index, detail: detail.to_owned() };
            let mut parts = item.trim().splitn(3, ':');
            let (Some(name), Some(role), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(invalid("expected name:role:token"));
            };
            if name.is_empty() || token.is_empty() {
                return Err(invalid("name and token must not be empty"));
            }
            let role = role.parse::<Role>().map_err(|e| AuthSetupError::InvalidEnv { index, detail: e })?;
            Ok(TokenEntry { name: name.to_owned(), role, digest: digest(token) })
        })
        .collect()
}

fn read_or_create_token(path: &Path) -> Result<String, AuthSetupError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            let existing = read_secret_file(path)?.trim().to_owned();
            if existing.is_empty() {
                return Err(AuthSetupError::Invalid {
                    path: path.into(),
                    detail: "the file is empty".to_owned(),
                });
            }
            Ok(existing)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = crate::random::random_hex(32).map_err(|e| AuthSetupError::Write {
                path: path.into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            create_private(path, &token)
                .map_err(|source| AuthSetupError::Write { path: path.into(), source })?;
            Ok(token)
        }
        Err(source) => Err(AuthSetupError::Read { path: path.into(), source }),
    }
}

/// Creates a file only its owner can read, exclusively (an existing file or a planted symlink
/// makes it fail instead of writing through them).
fn create_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_tokens_parse_and_authenticate_by_digest() {
        let entries = parse_env_tokens("ci:operator:abc:def, fabric:reader:xyz").unwrap();
        let store = TokenStore { entries };
        assert_eq!(store.authenticate("abc:def").map(|p| p.name), Some("ci".to_owned()));
        assert_eq!(store.authenticate("xyz").map(|p| p.role), Some(Role::Reader));
        assert!(store.authenticate("nope").is_none());
    }

    #[test]
    fn malformed_env_tokens_name_the_entry_but_not_the_secret() {
        let err = parse_env_tokens("ok:reader:t1,bad:root:s3cret").err().unwrap().to_string();
        assert!(err.contains("entry 1"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn generated_token_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = TokenStore::load(None, None, dir.path()).unwrap();
        let path = path.unwrap();
        let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
        assert_eq!(token.len(), 64);
        assert_eq!(store.authenticate(&token).unwrap().name, GENERATED_TOKEN_NAME);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, _) = TokenStore::load(None, None, dir.path()).unwrap();
        assert!(again.authenticate(&token).is_some());
    }

    #[test]
    fn token_file_accepts_plain_tokens_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let hashed = hex::encode(digest("hashed-secret"));
        std::fs::write(
            &path,
            format!(r#"{{"tokens":[{{"name":"a","role":"reader","token":"plain"}},{{"name":"b","role":"control-agent","sha256":"{hashed}"}}]}}"#),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (store, generated) = TokenStore::load(Some(&path), None, dir.path()).unwrap();
        assert!(generated.is_none());
        assert_eq!(store.authenticate("plain").unwrap().role, Role::Reader);
        assert_eq!(store.authenticate("hashed-secret").unwrap().role, Role::ControlAgent);
    }

    #[test]
    fn token_files_readable_by_others_or_behind_a_symlink_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("tokens.json");
        std::fs::write(&path, r#"{"tokens":[{"name":"ops","role":"operator","token":"t"}]}"#).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_token_file(&path), Err(AuthSetupError::Insecure { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&path).unwrap().len(), 1);
        let link = temp.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(read_token_file(&link), Err(AuthSetupError::Insecure { .. })));
    }

    #[test]
    fn the_generated_token_is_created_exclusively_and_privately() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("operator.token");
        let token = read_or_create_token(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_or_create_token(&path).unwrap(), token, "reused on restart");
        // A planted symlink is never written through or read.
        let planted = temp.path().join("planted.token");
        std::os::unix::fs::symlink("/etc/hostname", &planted).unwrap();
        assert!(read_or_create_token(&planted).is_err());
        // An existing token someone made group-readable is refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read_or_create_token(&path), Err(AuthSetupError::Insecure { .. })));
    }
}
