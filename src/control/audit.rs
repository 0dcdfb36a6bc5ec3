//! Who asked for a change, for the audit event written with it; sealing pending events into
//! the hash chain; and reading the log.

use super::AppError;
use super::Ctx;
use super::paging::{finish_page, numeric_cursor, page_request};
use crate::domain::access::Role;
use crate::domain::audit::{AuditEvent, AuditFilter, BrokenLink, NewAuditEvent};

/// The caller of a mutating RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext {
    /// Token name of the caller.
    pub actor: String,
    /// Full gRPC method, e.g. `jhf.warp.v1.ControlService/AcquireLease`.
    pub method: String,
    /// The request's idempotency key (empty where the method has none).
    pub request_id: String,
    /// The caller's role (what it may do beyond its method's auth class).
    pub role: Role,
}

impl AuditContext {
    /// Returns the event recording a successful change of `resource`.
    /// The event recording a successful change of `resource` of `runtime`: resources of the
    /// runtime `default` keep the names they had before fleets (`desired-topology/3`), others
    /// are prefixed (`runtimes/<name>/desired-topology/3`).
    pub fn event_in(
        &self,
        runtime: &str,
        resource: impl Into<String>,
        summary: impl Into<String>,
    ) -> NewAuditEvent {
        let resource = resource.into();
        if runtime == crate::domain::fleet::DEFAULT_RUNTIME {
            self.event(resource, summary)
        } else {
            self.event(format!("runtimes/{runtime}/{resource}"), summary)
        }
    }

    pub fn event(&self, resource: impl Into<String>, summary: impl Into<String>) -> NewAuditEvent {
        NewAuditEvent {
            actor: self.actor.clone(),
            method: self.method.clone(),
            resource: resource.into(),
            request_id: self.request_id.clone(),
            outcome: "OK".to_owned(),
            summary: summary.into(),
        }
    }
}

const LIST_SCOPE: &str = "ListAuditEvents";
/// Events sealed per transaction (bounds how long one seal holds the chain head).
const SEAL_BATCH: u64 = 500;

/// The result of verifying the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    /// Events checked, or the first broken link.
    pub result: Result<i64, BrokenLink>,
    /// Events committed but not sealed when the check ended.
    pub unsealed: u64,
}

/// Reading and verifying the audit log.
#[derive(Clone)]
pub struct AuditService {
    ctx: Ctx,
}

impl AuditService {
    /// Creates the service.
    pub fn new(ctx: &Ctx) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// Seals every pending event (in batches); returns how many were sealed.
    pub async fn seal(&self) -> Result<u64, AppError> {
        let mut total = 0;
        loop {
            let sealed = self.ctx.store.seal_audit(SEAL_BATCH).await?;
            total += sealed;
            if sealed < SEAL_BATCH {
                return Ok(total);
            }
        }
    }

    /// Seals pending events every `period` until `stop`. Every replica runs it: sealers take
    /// turns on the chain head, so the chain is the same whichever replica seals.
    pub async fn run_sealer(&self, period: std::time::Duration, stop: tokio_util::sync::CancellationToken) {
        super::every::every(period, &stop, async || {
            super::every::log_failure("sealing audit events", self.seal().await.map(drop));
        })
        .await;
    }

    /// Lists events oldest first, filtered.
    pub async fn list(
        &self,
        filter: AuditFilter,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<AuditEvent>, String), AppError> {
        if let (Some(since), Some(until)) = (filter.since, filter.until)
            && since >= until
        {
            return Err(AppError::invalid("until_time", "must be after since_time"));
        }
        // The filter is part of the token scope, so a token cannot be replayed with another one.
        let scope = format!("{LIST_SCOPE}:{filter:?}");
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let after = numeric_cursor(page.cursor)?;
        // A caller lists every event committed before the call, sealed.
        self.seal().await?;
        let rows = self.ctx.store.list_audit(&filter, after, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |e| e.seq.to_string()))
    }

    /// Seals what is pending, then verifies the chain.
    pub async fn verify(&self) -> Result<ChainCheck, AppError> {
        self.seal().await?;
        let result = self.ctx.store.verify_audit_chain().await?;
        let unsealed = self.ctx.store.unsealed_audit_events().await?;
        Ok(ChainCheck { result, unsealed })
    }
}
