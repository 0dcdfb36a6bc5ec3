//! Who asked for a change, for the audit event written with it; and reading the log.

use super::AppError;
use super::Ctx;
use super::paging::{finish_page, numeric_cursor, page_request};
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
}

impl AuditContext {
    /// Returns the event recording a successful change of `resource`.
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
        let rows = self.ctx.store.list_audit(&filter, after, page.size + 1).await?;
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |e| e.seq.to_string()))
    }

    /// Verifies the chain: the number of events checked, or the first broken link.
    pub async fn verify(&self) -> Result<Result<i64, BrokenLink>, AppError> {
        Ok(self.ctx.store.verify_audit_chain().await?)
    }
}
