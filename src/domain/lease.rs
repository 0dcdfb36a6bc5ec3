//! Leases: named, time-bounded ownership with fencing tokens (DESIGN §3 "Control plane").
//!
//! # Guarantees
//! - Time is the database's: callers pass `now` read from the database clock in the same
//!   transaction that reads and writes the lease.
//! - The fencing token strictly increases per lease name with every change of holder and is
//!   never reused — releasing keeps the counter, so the next holder gets a higher token.
//! - Renew and release need the current holder *and* token; anything stale is refused with the
//!   current holder and expiry, so the caller can tell who owns it now.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Shortest and longest lease a caller may ask for.
pub const MIN_DURATION_SECS: i64 = 1;
/// Longest lease a caller may ask for (one hour).
pub const MAX_DURATION_SECS: i64 = 3600;

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: String,
    /// Current holder; `None` after a release.
    pub holder: Option<String>,
    /// The last fencing token issued for this name (0 before the first acquisition).
    pub token: i64,
    pub duration_secs: i64,
    pub acquired_at: Option<DateTime<Utc>>,
    pub renewed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// How many times the holder changed.
    pub transitions: i64,
}

impl Lease {
    /// Returns a never-held lease.
    pub fn vacant(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            holder: None,
            token: 0,
            duration_secs: 0,
            acquired_at: None,
            renewed_at: None,
            expires_at: None,
            transitions: 0,
        }
    }

    /// Returns the holder if the lease is held and unexpired at `now`.
    pub fn live_holder(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.holder, self.expires_at) {
            (Some(holder), Some(expires)) if expires > now => Some(holder),
            _ => None,
        }
    }
}

/// Why a lease operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {name} is held by {holder} until {expires_at}")]
    Held { name: String, holder: String, expires_at: DateTime<Utc> },
    #[error("stale lease: {name} is held by {holder:?} with token {token} (until {expires_at:?})")]
    Stale { name: String, holder: Option<String>, token: i64, expires_at: Option<DateTime<Utc>> },
    #[error("lease duration must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS} seconds")]
    BadDuration,
    #[error("lease {name} is held by {holder}; only its holder may renew or release it")]
    NotHolder { name: String, holder: String },
}

/// Lease names under these prefixes belong to the replicas themselves (leader election and
/// runtime ownership); no API caller may take, renew or release them.
pub const RESERVED_PREFIXES: [&str; 2] = ["warp/", "runtime/"];

/// Why an API caller may not hold a lease name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldRefusal {
    #[error("lease {0} is reserved for the replicas (names under warp/ and runtime/)")]
    Reserved(String),
    #[error(
        "{principal} has no standing for agent {agent}: hold agent/{agent} as that agent or with an active delegation from it"
    )]
    NoStanding { principal: String, agent: String },
}

/// Checks that a principal may hold `name` through the API: never a reserved name, and a
/// control agent holds `agent/<id>` only as that agent or with `has_standing(<id>)`
/// (an active delegation from it). Operators may hold any other name.
pub fn may_hold(
    name: &str,
    principal: &str,
    is_control_agent: bool,
    has_standing: impl FnOnce(&str) -> bool,
) -> Result<(), HoldRefusal> {
    if RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
        return Err(HoldRefusal::Reserved(name.to_owned()));
    }
    if is_control_agent
        && let Some(agent) = name.strip_prefix("agent/")
        && agent != principal
        && !has_standing(agent)
    {
        return Err(HoldRefusal::NoStanding { principal: principal.to_owned(), agent: agent.to_owned() });
    }
    Ok(())
}

/// Returns the lease as a caller may see it: the fencing token is the holder's secret (with
/// it one can renew, release or report in the holder's name), so only the holder and operators
/// see it; everyone else sees 0.
pub fn visible_to(lease: &Lease, principal: &str, is_operator: bool) -> Lease {
    let mut shown = lease.clone();
    if !is_operator && lease.holder.as_deref() != Some(principal) {
        shown.token = 0;
    }
    shown
}

/// Refuses a renewal or release of a lease someone else holds (before any token check).
fn check_holder(lease: &Lease, holder: &str) -> Result<(), LeaseError> {
    match &lease.holder {
        Some(current) if current != holder => {
            Err(LeaseError::NotHolder { name: lease.name.clone(), holder: current.clone() })
        }
        _ => Ok(()),
    }
}

/// Checks a requested lease duration.
pub fn check_duration(duration_secs: i64) -> Result<TimeDelta, LeaseError> {
    if (MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
        Ok(TimeDelta::seconds(duration_secs))
    } else {
        Err(LeaseError::BadDuration)
    }
}

fn stale(lease: &Lease) -> LeaseError {
    LeaseError::Stale {
        name: lease.name.clone(),
        holder: lease.holder.clone(),
        token: lease.token,
        expires_at: lease.expires_at,
    }
}

/// Acquires `lease` for `holder`. A free or expired lease goes to the caller with a new token;
/// the caller's own live lease is renewed (same token); someone else's live lease is refused.
pub fn acquire(
    lease: &Lease,
    holder: &str,
    duration_secs: i64,
    now: DateTime<Utc>,
) -> Result<Lease, LeaseError> {
    let duration = check_duration(duration_secs)?;
    let mut next = lease.clone();
    match lease.live_holder(now) {
        Some(current) if current == holder => {
            next.renewed_at = Some(now);
        }
        Some(current) => {
            return Err(LeaseError::Held {
                name: lease.name.clone(),
                holder: current.to_owned(),
                expires_at: lease.expires_at.unwrap_or(now),
            });
        }
        None => {
            next.token = lease.token + 1;
            if lease.holder.as_deref() != Some(holder) {
                next.transitions = lease.transitions + 1;
            }
            next.holder = Some(holder.to_owned());
            next.acquired_at = Some(now);
            next.renewed_at = Some(now);
        }
    }
    next.duration_secs = duration_secs;
    next.expires_at = Some(now + duration);
    Ok(next)
}

/// Renews a live lease held by `holder` with `token`.
pub fn renew(
    lease: &Lease,
    holder: &str,
    token: i64,
    duration_secs: i64,
    now: DateTime<Utc>,
) -> Result<Lease, LeaseError> {
    let duration = check_duration(duration_secs)?;
    check_holder(lease, holder)?;
    if lease.live_holder(now) != Some(holder) || lease.token != token {
        return Err(stale(lease));
    }
    let mut next = lease.clone();
    next.duration_secs = duration_secs;
    next.renewed_at = Some(now);
    next.expires_at = Some(now + duration);
    Ok(next)
}

/// Releases a lease held by `holder` with `token` (also an expired one, so a holder can clean
/// up after itself). The token counter is kept.
pub fn release(lease: &Lease, holder: &str, token: i64, now: DateTime<Utc>) -> Result<Lease, LeaseError> {
    check_holder(lease, holder)?;
    if lease.holder.as_deref() != Some(holder) || lease.token != token {
        return Err(stale(lease));
    }
    let mut next = lease.clone();
    next.holder = None;
    next.expires_at = Some(now);
    Ok(next)
}

/// Returns true when `next` differs from `current` only in its timing: the same holder keeps
/// the same token (a renewal, or re-acquiring one's own live lease). Such a change carries no
/// new ownership information.
pub fn only_extends(current: &Lease, next: &Lease) -> bool {
    next.holder.is_some() && current.holder == next.holder && current.token == next.token
}

/// Checks a fencing token presented with a write (e.g. a control agent's report).
pub fn check_fence(lease: &Lease, holder: &str, token: i64, now: DateTime<Utc>) -> Result<(), LeaseError> {
    if lease.live_holder(now) == Some(holder) && lease.token == token { Ok(()) } else { Err(stale(lease)) }
}

/// A control agent's report of a cycle it ran under a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleReport {
    pub cycle_id: String,
    pub lease_name: String,
    pub holder: String,
    pub fencing_token: i64,
    /// `SUCCEEDED`, `FAILED` or `SKIPPED`.
    pub outcome: String,
    pub summary: String,
    pub reported_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_free_lease_is_acquired_with_the_first_token() {
        let lease = acquire(&Lease::vacant("agent/lead"), "a", 10, t(0)).unwrap();
        assert_eq!((lease.holder.as_deref(), lease.token, lease.transitions), (Some("a"), 1, 1));
        assert_eq!(lease.expires_at, Some(t(10)));
    }

    #[test]
    fn a_live_lease_of_someone_else_is_refused_with_holder_and_expiry() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        let err = acquire(&lease, "b", 10, t(5)).unwrap_err();
        assert_eq!(err, LeaseError::Held { name: "x".into(), holder: "a".into(), expires_at: t(10) });
    }

    #[test]
    fn an_expired_lease_goes_to_the_next_holder_with_a_higher_token() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        let taken = acquire(&lease, "b", 10, t(10)).unwrap();
        assert_eq!((taken.holder.as_deref(), taken.token, taken.transitions), (Some("b"), 2, 2));
    }

    #[test]
    fn re_acquiring_ones_own_live_lease_renews_it_with_the_same_token() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        let again = acquire(&lease, "a", 10, t(5)).unwrap();
        assert_eq!((again.token, again.expires_at), (1, Some(t(15))));
    }

    #[test]
    fn renew_needs_holder_token_and_an_unexpired_lease() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        assert_eq!(renew(&lease, "a", 1, 10, t(5)).unwrap().expires_at, Some(t(15)));
        assert!(matches!(renew(&lease, "a", 0, 10, t(5)), Err(LeaseError::Stale { .. })));
        assert!(matches!(renew(&lease, "b", 1, 10, t(5)), Err(LeaseError::NotHolder { .. })));
        assert!(matches!(renew(&lease, "a", 1, 10, t(10)), Err(LeaseError::Stale { .. })), "expired");
    }

    #[test]
    fn release_keeps_the_token_counter_so_tokens_are_never_reused() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        let released = release(&lease, "a", 1, t(1)).unwrap();
        assert_eq!((released.holder.as_deref(), released.token), (None, 1));
        let next = acquire(&released, "a", 10, t(2)).unwrap();
        assert_eq!(next.token, 2);
        assert!(matches!(release(&next, "a", 1, t(3)), Err(LeaseError::Stale { .. })));
    }

    #[test]
    fn fences_accept_only_the_live_holder_and_token() {
        let lease = acquire(&Lease::vacant("x"), "a", 10, t(0)).unwrap();
        assert!(check_fence(&lease, "a", 1, t(1)).is_ok());
        assert!(check_fence(&lease, "a", 2, t(1)).is_err());
        assert!(check_fence(&lease, "a", 1, t(11)).is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(acquire(&Lease::vacant("x"), "a", 0, t(0)), Err(LeaseError::BadDuration));
        assert_eq!(acquire(&Lease::vacant("x"), "a", 3601, t(0)), Err(LeaseError::BadDuration));
    }

    #[test]
    fn only_renewals_merely_extend_a_lease() {
        let now = Utc::now();
        let vacant = Lease::vacant("agent/lead");
        let taken = acquire(&vacant, "a", 30, now).unwrap();
        assert!(!only_extends(&vacant, &taken), "an acquisition is news");
        let renewed = renew(&taken, "a", taken.token, 30, now + TimeDelta::seconds(5)).unwrap();
        assert!(only_extends(&taken, &renewed));
        let again = acquire(&renewed, "a", 30, now + TimeDelta::seconds(6)).unwrap();
        assert!(only_extends(&renewed, &again), "re-acquiring one's own live lease renews it");
        let released = release(&again, "a", again.token, now + TimeDelta::seconds(7)).unwrap();
        assert!(!only_extends(&again, &released));
        let later = now + TimeDelta::seconds(60);
        let taken_over = acquire(&taken, "b", 30, later).unwrap();
        assert!(!only_extends(&taken, &taken_over), "a take-over is news");
    }

    #[test]
    fn reserved_names_and_other_agents_leases_are_refused_to_api_callers() {
        assert!(matches!(may_hold("warp/reconciler", "ops", false, |_| true), Err(HoldRefusal::Reserved(_))));
        assert!(matches!(may_hold("runtime/local", "bot", true, |_| true), Err(HoldRefusal::Reserved(_))));
        assert!(may_hold("agent/lead", "lead", true, |_| false).is_ok(), "an agent holds its own lease");
        assert!(matches!(
            may_hold("agent/lead", "bot", true, |_| false),
            Err(HoldRefusal::NoStanding { .. })
        ));
        assert!(may_hold("agent/lead", "bot", true, |agent| agent == "lead").is_ok(), "with a delegation");
        assert!(may_hold("agent/lead", "ops", false, |_| false).is_ok(), "operators may");
        assert!(may_hold("job/nightly", "bot", true, |_| false).is_ok());
    }

    #[test]
    fn only_the_holder_renews_or_releases_and_sees_the_token() {
        let now = Utc::now();
        let held = acquire(&Lease::vacant("agent/lead"), "a", 30, now).unwrap();
        assert!(matches!(renew(&held, "b", held.token, 30, now), Err(LeaseError::NotHolder { .. })));
        assert!(matches!(release(&held, "b", held.token, now), Err(LeaseError::NotHolder { .. })));
        assert_eq!(visible_to(&held, "a", false).token, held.token);
        assert_eq!(visible_to(&held, "b", false).token, 0);
        assert_eq!(visible_to(&held, "b", true).token, held.token);
    }
}
