//! Identifiers the services mint: random suffixes and ids that sort by creation time.

use chrono::{DateTime, Utc};

use crate::control::AppError;

/// Returns `bytes` random bytes as hex; a failing OS RNG is an internal error (fail closed).
pub fn random_hex(bytes: usize) -> Result<String, AppError> {
    crate::random::random_hex(bytes).map_err(|e| AppError::Internal { detail: e.to_string() })
}

/// `<prefix>-<ms since epoch, 13 hex>-<extra><8 random hex>`: sorts by creation time.
pub fn time_sorted_id(prefix: &str, now: DateTime<Utc>, extra: &str) -> Result<String, AppError> {
    Ok(time_sorted_id_with(prefix, now, extra, &random_hex(4)?))
}

/// [`time_sorted_id`] with the random part drawn by the caller (ids minted in a batch, inside
/// a closure that cannot fail, share one draw and differ by `extra`).
pub fn time_sorted_id_with(prefix: &str, now: DateTime<Utc>, extra: &str, random: &str) -> String {
    format!("{prefix}-{:013x}-{extra}{random}", now.timestamp_millis().max(0))
}
