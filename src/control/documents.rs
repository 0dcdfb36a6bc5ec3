//! Small resources (persistent agents, workspace records, learning proposals) stored as
//! versioned JSON documents: one write path with idempotency, etags and one audit event per
//! call, shared by the services that own them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Ctx;
use super::paging::{finish_page, numeric_cursor, page_request};
use super::{AppError, AuditContext};
use crate::domain::idempotency::{IdempotencyKey, Prior};
use crate::store::{Doc, DocOutcome, DocWrite, decode_json, encode_json};

/// A stored document with its etag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

pub(super) fn decode<T: DeserializeOwned>(doc: &Doc, what: &str) -> Result<Versioned<T>, AppError> {
    let value = decode_json(&doc.body, what)?;
    Ok(Versioned { value, etag: doc.generation.to_string() })
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, AppError> {
    Ok(encode_json(value, "a document")?)
}

pub(super) fn expected(etag: &str) -> Result<i64, AppError> {
    etag.parse::<i64>().map_err(|_| AppError::invalid("etag", "required: the etag from the last read"))
}

pub(super) fn stale(kind: &str, id: &str, given: &str, current: Option<i64>) -> AppError {
    AppError::FailedPrecondition {
        reason: "ETAG_MISMATCH",
        subject: format!("{kind}/{id}"),
        description: match current {
            Some(current) => format!("etag \"{given}\" is not the current etag \"{current}\" of {kind} {id}"),
            None => format!("{kind} {id} already exists"),
        },
    }
}

/// Refuses a validate-only change whose etag is not the current one.
pub(super) fn require_etag(kind: &str, id: &str, given: &str, current: &str) -> Result<(), AppError> {
    if given == current { Ok(()) } else { Err(stale(kind, id, given, current.parse().ok())) }
}

/// Who asks for a change, under which idempotency key, and whether only to validate it.
#[derive(Clone, Copy)]
pub struct Mutation<'a> {
    pub key: &'a IdempotencyKey,
    pub validate_only: bool,
    pub caller: &'a AuditContext,
}

/// A multi-document write's request context.
pub(super) struct Write<'a> {
    pub(super) key: &'a IdempotencyKey,
    pub(super) caller: &'a AuditContext,
    pub(super) resource: String,
    pub(super) summary: String,
}

/// The document repository of the application services.
#[derive(Clone)]
pub(super) struct Documents {
    ctx: Ctx,
}

impl Documents {
    pub(super) fn new(ctx: &Ctx) -> Self {
        Self { ctx: ctx.clone() }
    }

    /// The application clock.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    /// Writes documents; returns their bodies as stored (or, for a retry, as first stored).
    pub(super) async fn write(
        &self,
        writes: Vec<DocWrite>,
        write: Write<'_>,
    ) -> Result<Vec<Versioned<String>>, AppError> {
        let key = write.key;
        let bodies: Vec<String> = writes.iter().map(|w| w.body.clone()).collect();
        let response = |generations: &[i64]| {
            let stored: Vec<(i64, &String)> = generations.iter().copied().zip(bodies.iter()).collect();
            serde_json::to_string(&stored).unwrap_or_default()
        };
        let audit = write.caller.event(write.resource, write.summary);
        let outcome = self.ctx.store.write_documents(&writes, key, response, self.now(), &audit).await?;
        let stored: Vec<(i64, String)> = match outcome {
            DocOutcome::Stored(generations) => {
                generations.into_iter().zip(writes.into_iter().map(|w| w.body)).collect()
            }
            DocOutcome::Replayed(json) => decode_json(&json, "idempotency response")?,
            DocOutcome::RequestIdReused => return Err(AppError::request_id_reused()),
            DocOutcome::Conflict { kind, id, current } => {
                let given = writes.iter().find(|w| w.id == id).and_then(|w| w.expected_generation);
                return Err(stale(kind, &id, &given.map(|g| g.to_string()).unwrap_or_default(), current));
            }
        };
        Ok(stored
            .into_iter()
            .map(|(generation, value)| Versioned { value, etag: generation.to_string() })
            .collect())
    }

    pub(super) fn parse<T: DeserializeOwned>(
        stored: &Versioned<String>,
        what: &str,
    ) -> Result<Versioned<T>, AppError> {
        let value = decode_json(&stored.value, what)?;
        Ok(Versioned { value, etag: stored.etag.clone() })
    }

    /// Returns a stored document, if any.
    pub(super) async fn find(&self, kind: &str, id: &str) -> Result<Option<Doc>, AppError> {
        Ok(self.ctx.store.document(kind, id).await?)
    }

    /// Returns a document decoded, or NOT_FOUND naming `resource`.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
        resource: &str,
    ) -> Result<Versioned<T>, AppError> {
        let doc =
            self.find(kind, id).await?.ok_or_else(|| AppError::NotFound { resource: resource.to_owned() })?;
        decode(&doc, kind)
    }

    /// True when `key` already produced a stored response (the call is a retry).
    pub(super) async fn replayed(&self, key: &IdempotencyKey) -> Result<bool, AppError> {
        Ok(matches!(self.ctx.store.idempotency_prior(key).await?, Prior::Replay(_)))
    }

    /// Lists documents of a kind in creation order, optionally by state.
    pub(super) async fn list<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        state: Option<&str>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Versioned<T>>, String), AppError> {
        let scope = format!("List:{kind}:{}", state.unwrap_or(""));
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let after = numeric_cursor(page.cursor)?;
        let docs = self.ctx.store.list_documents(kind, state, after, page.size + 1).await?;
        let (docs, next) = finish_page(&self.ctx.page_tokens, &scope, docs, page.size, |d| d.seq.to_string());
        let values = docs.iter().map(|d| decode(d, kind)).collect::<Result<Vec<_>, _>>()?;
        Ok((values, next))
    }
}
