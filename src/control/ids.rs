//! Identifiers the services mint: random suffixes and ids that sort by creation time.

use chrono::{DateTime, Utc};

/// Returns `bytes` random bytes as hex. A failing OS RNG leaves zeros: ids stay well-formed and
/// uniqueness then rests on the time part or the store's unique constraints.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    let _ = getrandom::fill(&mut buffer);
    hex::encode(buffer)
}

/// `<prefix>-<ms since epoch, 13 hex>-<extra><8 random hex>`: sorts by creation time.
pub fn time_sorted_id(prefix: &str, now: DateTime<Utc>, extra: &str) -> String {
    format!("{prefix}-{:013x}-{extra}{}", now.timestamp_millis().max(0), random_hex(4))
}
