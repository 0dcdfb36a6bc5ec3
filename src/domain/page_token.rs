//! Opaque, tamper-evident page tokens for List methods (AIP-158).
//!
//! A token is `base64url(payload) "." hex(mac)` with `mac = HMAC-SHA256(key, len(scope) ‖
//! scope ‖ payload)` truncated to 16 bytes (RFC 2104; the length prefix keeps scope and
//! payload from sliding into each other). Tokens longer than [`MAX_TOKEN_BYTES`] are refused
//! before any decoding. The key is a server secret shared by all replicas (kept in the
//! store), so a token works on any replica and a modified or foreign token is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Why a page token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageTokenError {
    #[error("page token is malformed")]
    Malformed,
    #[error("page token was not issued for this request or was modified")]
    Forged,
}

/// Longest page token accepted (the ones issued are far shorter).
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Page size bounds of every List method.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest page a caller may ask for.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Why a page size was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("page_size must not be negative")]
pub struct NegativePageSize;

/// Returns the effective page size: 0 → default, capped at the maximum, negative refused.
pub fn effective_page_size(requested: i32) -> Result<u64, NegativePageSize> {
    match u64::try_from(requested) {
        Err(_) => Err(NegativePageSize),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

/// Signs and checks page tokens with one secret key.
#[derive(Clone)]
pub struct PageTokenCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenCodec { key: <redacted> }")
    }
}

impl PageTokenCodec {
    /// Creates a codec from a secret key.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// Returns a token carrying `cursor` for requests of `scope` (method + filter).
    pub fn encode(&self, scope: &str, cursor: &str) -> String {
        format!("{}.{}", base64url_encode(cursor.as_bytes()), self.mac(scope, cursor.as_bytes()))
    }

    /// Returns the cursor of a token issued for `scope`.
    pub fn decode(&self, scope: &str, token: &str) -> Result<String, PageTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(PageTokenError::Malformed);
        }
        let (payload, mac) = token.split_once('.').ok_or(PageTokenError::Malformed)?;
        let cursor = base64url_decode(payload).ok_or(PageTokenError::Malformed)?;
        let expected = self.mac(scope, &cursor);
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(PageTokenError::Forged);
        }
        String::from_utf8(cursor).map_err(|_| PageTokenError::Malformed)
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> String {
        let scope_len = (scope.len() as u64).to_be_bytes();
        hex::encode(&hmac_sha256(&self.key, &[&scope_len, scope.as_bytes(), payload])[..16])
    }
}

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn base64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_within_their_scope() {
        let codec = PageTokenCodec::new(b"k".to_vec());
        for cursor in ["", "1", "12", "123", "id<42>"] {
            let token = codec.encode("list", cursor);
            assert_eq!(codec.decode("list", &token).unwrap(), cursor);
        }
    }

    #[test]
    fn modified_foreign_or_garbage_tokens_are_refused() {
        let codec = PageTokenCodec::new(b"k".to_vec());
        let token = codec.encode("list", "42");
        assert_eq!(codec.decode("other", &token), Err(PageTokenError::Forged));
        let other_key = PageTokenCodec::new(b"x".to_vec());
        assert_eq!(other_key.decode("list", &token), Err(PageTokenError::Forged));
        let forged = format!("{}.{}", base64url_encode(b"41"), token.split_once('.').unwrap().1);
        assert_eq!(codec.decode("list", &forged), Err(PageTokenError::Forged));
        assert_eq!(codec.decode("list", "nonsense"), Err(PageTokenError::Malformed));
        assert_eq!(codec.decode("list", "!!.00"), Err(PageTokenError::Malformed));
    }

    #[test]
    fn the_mac_is_hmac_sha256() {
        // RFC 4231, test cases 1 and 6 (a key longer than the block).
        let one = hmac_sha256(&[0x0b; 20], &[b"Hi ", b"There"]);
        assert_eq!(hex::encode(one), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        let six = hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex::encode(six), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn overlong_tokens_are_refused_before_decoding() {
        let codec = PageTokenCodec::new(b"k".to_vec());
        assert_eq!(codec.decode("list", &"a".repeat(MAX_TOKEN_BYTES + 1)), Err(PageTokenError::Malformed));
    }

    #[test]
    fn page_size_defaults_caps_and_refuses_negatives() {
        assert_eq!(effective_page_size(0), Ok(50));
        assert_eq!(effective_page_size(7), Ok(7));
        assert_eq!(effective_page_size(5000), Ok(1000));
        assert_eq!(effective_page_size(-1), Err(NegativePageSize));
    }
}
