//! Lease use cases: validate names and holders, then change the lease in one database
//! transaction judged by the database clock.
//!
//! # Guarantees
//! - Through the API a lease is held by the calling principal (the token's name): a holder
//!   named in a request must be the caller, and a lease another principal holds cannot be
//!   renewed or released (PERMISSION_DENIED).
//! - Names under `warp/` and `runtime/` belong to the replicas; a control agent holds
//!   `agent/<id>` only as that agent or with an active delegation from it.
//! - Fencing tokens are shown only to the holder and to operators.

use chrono::{DateTime, Utc};

use super::Ctx;
use super::paging::{finish_page, page_request};
use super::{AppError, AuditContext};
use crate::domain::access::Role;
use crate::domain::delegation::has_standing;
use crate::domain::lease::{self, CycleReport, HoldRefusal, Lease, LeaseError};
use crate::store::ReportOutcome;

const LIST_SCOPE: &str = "ListLeases";

/// Lease use cases.
#[derive(Clone)]
pub struct LeaseService {
    ctx: Ctx,
}

fn check_name(name: &str) -> Result<(), AppError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_.-".contains(&b));
    if valid { Ok(()) } else { Err(AppError::invalid("name", "must be 1..128 of [a-z0-9/_.-]")) }
}

fn check_holder(holder: &str) -> Result<(), AppError> {
    if !holder.is_empty() && holder.len() <= 128 && holder.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(AppError::invalid("holder", "must be 1..128 printable characters without spaces"))
    }
}

fn refused(error: LeaseError) -> AppError {
    match error {
        LeaseError::BadDuration => AppError::invalid("duration_seconds", error.to_string()),
        LeaseError::Held { ref name, .. } => AppError::FailedPrecondition {
            reason: "LEASE_HELD",
            subject: name.clone(),
            description: error.to_string(),
        },
        LeaseError::Stale { ref name, .. } => AppError::FailedPrecondition {
            reason: "LEASE_STALE_TOKEN",
            subject: name.clone(),
            description: error.to_string(),
        },
        LeaseError::NotHolder { .. } => {
            AppError::PermissionDenied { reason: "NOT_LEASE_HOLDER", message: error.to_string() }
        }
    }
}

/// The holder a request names must be its caller (empty means the caller).
fn holder_of<'a>(requested: &str, caller: &'a AuditContext) -> Result<&'a str, AppError> {
    if requested.is_empty() || requested == caller.actor {
        return Ok(&caller.actor);
    }
    check_holder(requested)?;
    Err(AppError::PermissionDenied {
        reason: "HOLDER_NOT_CALLER",
        message: format!("leases are held by the calling principal {}, not {requested}", caller.actor),
    })
}

/// Who changes a lease, which decides what the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseUse {
    /// An API caller: every change but a renewal is audited, and so are refusals.
    Api,
    /// This replica's leader election: changes are audited, refusals not (followers try every
    /// tick).
    Replica,
    /// A work lease this replica takes for every batch of work (the runtime, the observer):
    /// only taking it over from another holder is audited.
    Work,
}

impl LeaseService {
    /// Creates the service.
    pub fn new(ctx: &Ctx) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// Changes a lease; what is audited for `caller` follows `by` (see [`LeaseUse`]). A change
    /// that only extends the expiry (a renewal, or re-acquiring one's own live lease) is never
    /// audited (Kubernetes audit policies exclude lease renewals for the same reason: thousands
    /// a day, no new information).
    async fn change(
        &self,
        name: &str,
        caller: &AuditContext,
        by: LeaseUse,
        verb: &str,
        change: impl FnOnce(&Lease, DateTime<Utc>) -> Result<Lease, LeaseError>,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        let mut at = None;
        let describe = |current: &Lease, next: &Lease| {
            if lease::only_extends(current, next) {
                return None;
            }
            let takeover = current.holder.is_some() && next.holder.is_some() && current.holder != next.holder;
            if by == LeaseUse::Work && !takeover {
                return None;
            }
            let holder = next.holder.as_deref().unwrap_or("nobody");
            Some(caller.event(
                format!("lease/{name}"),
                format!("{verb} lease {name}: holder {holder}, fencing token {}", next.token),
            ))
        };
        let outcome = self
            .ctx
            .store
            .change_lease(
                name,
                |current, now| {
                    at = Some(now);
                    change(current, now)
                },
                describe,
            )
            .await?;
        match outcome {
            Ok(lease) => {
                let now = at.unwrap_or_else(Utc::now);
                self.ctx.leases.put(lease.clone(), now, self.ctx.store.clock_skew());
                Ok((lease, now))
            }
            Err(refusal) => {
                if by == LeaseUse::Api {
                    let mut event =
                        caller.event(format!("lease/{name}"), format!("{verb} refused: {refusal}"));
                    event.outcome = "REFUSED".to_owned();
                    if let Err(error) = self.ctx.store.append_audit(&event).await {
                        tracing::warn!(%error, lease = name, "could not record a refused lease operation");
                    }
                }
                Err(refused(refusal))
            }
        }
    }

    /// Refuses an API caller a lease name it may not hold.
    async fn check_may_hold(&self, name: &str, caller: &AuditContext) -> Result<(), AppError> {
        let control_agent = caller.role == Role::ControlAgent;
        // Delegations are read only when a control agent asks for another agent's lease.
        let grants = if control_agent && name.starts_with("agent/") {
            self.ctx.store.delegations_any().await?
        } else {
            Vec::new()
        };
        lease::may_hold(name, &caller.actor, control_agent, |agent| {
            has_standing(&grants, &caller.actor, agent)
        })
        .map_err(|refusal| AppError::PermissionDenied {
            reason: match refusal {
                HoldRefusal::Reserved(_) => "LEASE_NAME_RESERVED",
                HoldRefusal::NoStanding { .. } => "NO_STANDING",
            },
            message: refusal.to_string(),
        })
    }

    /// Acquires (or, for its live holder, renews) a lease for an API caller, who becomes its
    /// holder.
    pub async fn acquire(
        &self,
        name: &str,
        holder: &str,
        duration_secs: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        check_name(name)?;
        let holder = holder_of(holder, caller)?;
        self.check_may_hold(name, caller).await?;
        self.change(name, caller, LeaseUse::Api, "acquire", |current, now| {
            lease::acquire(current, holder, duration_secs, now)
        })
        .await
    }

    /// Takes (or renews) a lease for this replica: leader election ([`LeaseUse::Replica`]) or a
    /// work lease ([`LeaseUse::Work`]).
    pub async fn acquire_for(
        &self,
        by: LeaseUse,
        name: &str,
        holder: &str,
        duration_secs: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        let verb = if by == LeaseUse::Work { "take over" } else { "acquire" };
        self.change(name, caller, by, verb, |current, now| {
            lease::acquire(current, holder, duration_secs, now)
        })
        .await
    }

    /// Renews a live lease by holder and token (the holder must be the caller, who must
    /// still have standing for the name).
    pub async fn renew(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        duration_secs: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        check_name(name)?;
        let holder = holder_of(holder, caller)?;
        self.check_may_hold(name, caller).await?;
        self.renew_for(LeaseUse::Api, name, holder, token, duration_secs, caller).await
    }

    /// Renews a lease held by `holder` with `token` (for this replica, a refusal means it
    /// steps down). A renewal only extends a live lease, so it first tries the one-statement
    /// path (at the database's own speed); anything else — a stale token, an expired lease —
    /// goes through the transactional path, which refuses with the reason.
    pub async fn renew_for(
        &self,
        by: LeaseUse,
        name: &str,
        holder: &str,
        token: i64,
        duration_secs: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        lease::check_duration(duration_secs).map_err(refused)?;
        if let Some((renewed, now)) =
            self.ctx.store.renew_lease_fast(name, holder, token, duration_secs).await?
        {
            self.ctx.leases.put(renewed.clone(), now, self.ctx.store.clock_skew());
            return Ok((renewed, now));
        }
        self.change(name, caller, by, "renew", |current, now| {
            lease::renew(current, holder, token, duration_secs, now)
        })
        .await
    }

    /// Releases a lease by holder and token (the holder must be the caller).
    pub async fn release(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        check_name(name)?;
        let holder = holder_of(holder, caller)?;
        if lease::RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            self.check_may_hold(name, caller).await?;
        }
        self.release_for(LeaseUse::Api, name, holder, token, caller).await
    }

    /// Releases a lease held by `holder` with `token` (for this replica: on the way out, so
    /// another replica takes over at once).
    pub async fn release_for(
        &self,
        by: LeaseUse,
        name: &str,
        holder: &str,
        token: i64,
        caller: &AuditContext,
    ) -> Result<(Lease, DateTime<Utc>), AppError> {
        self.change(name, caller, by, "release", |current, now| lease::release(current, holder, token, now))
            .await
    }

    /// Records a control agent's cycle report, fenced by its lease token. Reporting a cycle id
    /// again returns the first report.
    pub async fn report(
        &self,
        report: CycleReport,
        caller: &AuditContext,
    ) -> Result<(CycleReport, bool), AppError> {
        check_name(&report.lease_name)?;
        let holder = holder_of(&report.holder, caller)?.to_owned();
        let report = CycleReport { holder, ..report };
        if lease::RESERVED_PREFIXES.iter().any(|prefix| report.lease_name.starts_with(prefix)) {
            self.check_may_hold(&report.lease_name, caller).await?;
        }
        let id_ok = !report.cycle_id.is_empty()
            && report.cycle_id.len() <= 128
            && report.cycle_id.bytes().all(|b| b.is_ascii_graphic());
        if !id_ok {
            return Err(AppError::invalid("cycle_id", "must be 1..128 printable characters without spaces"));
        }
        if report.summary.len() > 1000 {
            return Err(AppError::invalid("summary", "at most 1000 bytes"));
        }
        let audit = caller.event(
            format!("cycle/{}", report.cycle_id),
            format!(
                "{} reported cycle {} as {} under lease {} (token {})",
                report.holder, report.cycle_id, report.outcome, report.lease_name, report.fencing_token
            ),
        );
        match self.ctx.store.report_cycle(report, &audit).await? {
            ReportOutcome::Recorded(stored) => Ok((stored, true)),
            ReportOutcome::Repeated(first) => Ok((first, false)),
            ReportOutcome::Refused(refusal) => Err(refused(refusal)),
        }
    }

    /// Returns a lease as `caller` may see it, with the database time of the read: from the
    /// snapshot while its copy is live (renewals only extend a lease), else from the store.
    pub async fn get(&self, name: &str, caller: &AuditContext) -> Result<(Lease, DateTime<Utc>), AppError> {
        check_name(name)?;
        let skew = self.ctx.store.clock_skew();
        let (lease, now) = match self.ctx.leases.live_lease(name, skew) {
            Some(live) => live,
            None => {
                let (lease, now) = self.ctx.store.lease(name).await?;
                let lease = lease.ok_or_else(|| AppError::NotFound { resource: format!("lease {name}") })?;
                self.ctx.leases.put(lease.clone(), now, skew);
                (lease, now)
            }
        };
        Ok((lease::visible_to(&lease, &caller.actor, caller.role == Role::Operator), now))
    }

    /// Lists leases by name, as `caller` may see them.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        caller: &AuditContext,
    ) -> Result<(Vec<Lease>, String, DateTime<Utc>), AppError> {
        if self.ctx.failpoints.hit(super::failpoints::PANIC_IN_LIST_LEASES) {
            panic!("failpoint {}", super::failpoints::PANIC_IN_LIST_LEASES);
        }
        let page = page_request(&self.ctx.page_tokens, LIST_SCOPE, page_size, page_token)?;
        let (rows, now) = self.ctx.store.list_leases(page.cursor.as_deref(), page.size + 1).await?;
        let (rows, next) =
            finish_page(&self.ctx.page_tokens, LIST_SCOPE, rows, page.size, |l| l.name.clone());
        let operator = caller.role == Role::Operator;
        let shown = rows.iter().map(|lease| lease::visible_to(lease, &caller.actor, operator)).collect();
        Ok((shown, next, now))
    }
}
