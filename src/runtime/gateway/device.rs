//! The device identity jhf-warp presents to a Gateway: an Ed25519 key kept in the data dir
//! (0600, created once, never read through a symlink), its id (sha256 of the raw public key,
//! hex) and the signature of the `connect` payload over the Gateway's challenge nonce.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::runtime::RuntimeError;

/// The file under the data dir that holds the key's 32-byte seed, hex.
pub const DEVICE_KEY_FILE: &str = "gateway-device.key";

/// A stable device identity.
pub struct DeviceKey {
    key: SigningKey,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// What a connect request signs (the Gateway's v3 device-auth payload).
#[derive(Debug, Clone, Copy)]
pub struct SignedConnect<'a> {
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [&'a str],
    pub signed_at_ms: i64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
}

impl DeviceKey {
    /// Loads the key of `data_dir`, creating it (exclusively, 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, RuntimeError> {
        use std::io::{Read, Write};
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = data_dir.join(DEVICE_KEY_FILE);
        let setup = |detail: String| RuntimeError::Setup {
            detail: format!("gateway device key {}: {detail}", path.display()),
        };
        match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
            Ok(mut file) => {
                let meta = file.metadata().map_err(|e| setup(e.to_string()))?;
                if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
                    return Err(setup("must be a regular file readable by its owner only".to_owned()));
                }
                let mut text = String::new();
                std::io::Read::by_ref(&mut file)
                    .take(256)
                    .read_to_string(&mut text)
                    .map_err(|e| setup(e.to_string()))?;
                let seed: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| setup("does not hold a 32-byte hex seed".to_owned()))?;
                Ok(Self { key: SigningKey::from_bytes(&seed) })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| setup(format!("no randomness: {e}")))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| setup(e.to_string()))?;
                file.write_all(hex::encode(seed).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| setup(e.to_string()))?;
                Ok(Self { key: SigningKey::from_bytes(&seed) })
            }
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                Err(setup("is a symbolic link".to_owned()))
            }
            Err(error) => Err(setup(error.to_string())),
        }
    }

    #[cfg(test)]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// The raw public key, base64url without padding (the wire form).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes())
    }

    /// The device id: sha256 of the raw public key, hex.
    pub fn id(&self) -> String {
        hex::encode(Sha256::digest(self.key.verifying_key().as_bytes()))
    }

    /// Signs the connect payload; returns the signature, base64url without padding.
    pub fn sign(&self, connect: &SignedConnect<'_>) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload(&self.id(), connect).as_bytes()).to_bytes())
    }
}

/// `v3|device|client|mode|role|scopes|signedAt|token|nonce|platform|family`, the metadata
/// fields trimmed and lower-cased as the Gateway normalises them before it verifies.
pub fn payload(device_id: &str, c: &SignedConnect<'_>) -> String {
    let normalise = |text: &str| text.trim().to_ascii_lowercase();
    [
        "v3".to_owned(),
        device_id.to_owned(),
        c.client_id.to_owned(),
        c.client_mode.to_owned(),
        c.role.to_owned(),
        c.scopes.join(","),
        c.signed_at_ms.to_string(),
        c.token.to_owned(),
        c.nonce.to_owned(),
        normalise(c.platform),
        String::new(),
    ]
    .join("|")
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier};

    use super::*;

    #[test]
    fn the_signature_verifies_over_the_v3_payload_and_the_id_is_the_key_fingerprint() {
        let key = DeviceKey::from_seed([7; 32]);
        let connect = SignedConnect {
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &["operator.read", "operator.admin"],
            signed_at_ms: 1_737_264_000_000,
            token: "t0k",
            nonce: "n-1",
            platform: " Linux ",
        };
        let text = payload(&key.id(), &connect);
        assert_eq!(
            text,
            format!(
                "v3|{}|cli|cli|operator|operator.read,operator.admin|1737264000000|t0k|n-1|linux|",
                key.id()
            )
        );
        let signature = URL_SAFE_NO_PAD.decode(key.sign(&connect)).unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        assert!(key.key.verifying_key().verify(text.as_bytes(), &signature).is_ok());
        let raw = URL_SAFE_NO_PAD.decode(key.public_key()).unwrap();
        assert_eq!(key.id(), hex::encode(Sha256::digest(&raw)));
    }

    #[test]
    fn the_key_is_created_private_once_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = DeviceKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(DEVICE_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(DeviceKey::load_or_create(dir.path()).unwrap().id(), first.id());
        std::fs::set_permissions(dir.path().join(DEVICE_KEY_FILE), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(DeviceKey::load_or_create(dir.path()).is_err(), "a key readable by others is refused");
    }
}
