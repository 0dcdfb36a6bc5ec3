//! Delegation use cases: grant, revoke (with cascade), read with effective standing, and
//! backfill from the runtime's SPAWN relations.

use super::Ctx;
use super::paging::{finish_page, page_request};
use super::{AppError, AuditContext, ObservationService};
use crate::domain::TrustLevel;
use crate::domain::delegation::{
    Delegation, DelegationSource, DelegationState, SPAWN_RIGHT, Standing, backfill_missing, chain,
    check_grant, revocation_cascade, standings,
};
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::openclaw::is_valid_agent_id;
use crate::domain::topology::EdgeKind;
use crate::store::{DelegationChange, DelegationOutcome};

const LIST_SCOPE: &str = "ListDelegations";

/// A grant with its effective standing and ancestry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationView {
    pub grant: Delegation,
    pub standing: Standing,
    pub chain: Vec<String>,
}

/// A grant request after transport decoding.
pub struct GrantRequest {
    pub grantor: String,
    pub delegate: String,
    pub rights: Vec<String>,
    pub trust: Option<TrustLevel>,
    pub parent_id: Option<String>,
    pub idempotency: IdempotencyKey,
    pub validate_only: bool,
}

/// Delegation use cases.
#[derive(Clone)]
pub struct DelegationService {
    ctx: Ctx,
    observations: ObservationService,
}

fn view(all: &[Delegation], grant: &Delegation) -> DelegationView {
    let standing = standings(all).remove(&grant.id).unwrap_or(Standing::Invalid("unknown grant".to_owned()));
    DelegationView { grant: grant.clone(), standing, chain: chain(all, &grant.id) }
}

fn refused(reason: String) -> AppError {
    AppError::FailedPrecondition {
        reason: "DELEGATION_REFUSED",
        subject: "delegation".to_owned(),
        description: reason,
    }
}

fn new_id(now: chrono::DateTime<chrono::Utc>, salt: usize, random: &str) -> String {
    super::ids::time_sorted_id_with("dg", now, &format!("{salt:04x}"), random)
}

fn check_agent(field: &'static str, id: &str) -> Result<(), AppError> {
    if is_valid_agent_id(id) && id == id.to_ascii_lowercase() {
        Ok(())
    } else {
        Err(AppError::invalid(field, "must be a lower-case OpenClaw agent id"))
    }
}

fn normalise_rights(rights: &[String]) -> Result<Vec<String>, AppError> {
    let valid =
        |r: &String| !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if rights.is_empty() || rights.len() > 16 || !rights.iter().all(valid) {
        return Err(AppError::invalid("rights", "1..16 rights of [a-z_]{1,32}"));
    }
    let mut rights = rights.to_vec();
    rights.sort();
    rights.dedup();
    Ok(rights)
}

impl DelegationService {
    /// Creates the service.
    pub fn new(ctx: &Ctx, observations: ObservationService) -> Self {
        Self { ctx: ctx.clone(), observations }
    }

    async fn replayed(&self, ids: &[String]) -> Result<Vec<DelegationView>, AppError> {
        let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
        Ok(ids.iter().filter_map(|id| all.iter().find(|g| &g.id == id)).map(|g| view(&all, g)).collect())
    }

    /// Grants a delegation.
    pub async fn grant(
        &self,
        request: GrantRequest,
        caller: &AuditContext,
    ) -> Result<DelegationView, AppError> {
        check_agent("grantor_agent_id", &request.grantor)?;
        check_agent("delegate_agent_id", &request.delegate)?;
        let rights = normalise_rights(&request.rights)?;
        let trust = request.trust.unwrap_or(TrustLevel::Restricted);
        let now = self.ctx.clock.now();
        let grant = Delegation {
            id: if request.validate_only {
                String::new()
            } else {
                new_id(now, 0, &super::ids::random_hex(4)?)
            },
            parent_id: request.parent_id.clone(),
            grantor: request.grantor.clone(),
            delegate: request.delegate.clone(),
            rights: rights.clone(),
            trust,
            source: DelegationSource::Manual,
            state: DelegationState::Active,
            created_at: now,
            revoked_at: None,
            reason: None,
        };
        let check = |all: &[Delegation]| {
            check_grant(
                all,
                request.parent_id.as_deref(),
                &request.grantor,
                &request.delegate,
                &rights,
                trust,
            )
            .map_err(|e| e.to_string())
        };
        if request.validate_only {
            let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
            check(&all).map_err(refused)?;
            return Ok(DelegationView { standing: Standing::Active, chain: Vec::new(), grant });
        }
        let audit = caller.event_in(
            self.ctx.runtime_name(),
            format!("delegation/{}", grant.id),
            format!(
                "granted [{}] from {} to {} at {}",
                rights.join(", "),
                grant.grantor,
                grant.delegate,
                trust.as_str()
            ),
        );
        let outcome = self
            .ctx
            .store
            .change_delegations(self.ctx.runtime_name(), &request.idempotency, now, |all| {
                check(all)?;
                Ok(DelegationChange {
                    inserts: vec![grant.clone()],
                    updates: Vec::new(),
                    audit: Some(audit),
                    events: Vec::new(),
                })
            })
            .await?;
        let views = self.settle(outcome).await?;
        views.into_iter().next().ok_or_else(|| AppError::NotFound { resource: "delegation".to_owned() })
    }

    /// Turns a mutation outcome into the affected grants as they stand now.
    async fn settle(
        &self,
        outcome: DelegationOutcome<Vec<Delegation>>,
    ) -> Result<Vec<DelegationView>, AppError> {
        match outcome {
            DelegationOutcome::Done(affected) => {
                let ids: Vec<String> = affected.iter().map(|d| d.id.clone()).collect();
                self.replayed(&ids).await
            }
            DelegationOutcome::Replayed(ids) => self.replayed(&ids).await,
            DelegationOutcome::RequestIdReused => Err(AppError::request_id_reused()),
            DelegationOutcome::Refused(reason) => Err(refused(reason)),
        }
    }

    /// Every grant as stored.
    pub async fn all(&self) -> Result<Vec<Delegation>, AppError> {
        Ok(self.ctx.store.delegations(self.ctx.runtime_name()).await?)
    }

    /// Revokes a grant and every grant derived from it; the audit event lists the whole cascade
    /// and the desired edges that fall with it.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        falling_edges: &[crate::domain::topology::TopologyEdge],
        idempotency: &IdempotencyKey,
        validate_only: bool,
        caller: &AuditContext,
    ) -> Result<Vec<DelegationView>, AppError> {
        if reason.len() > 512 {
            return Err(AppError::invalid("reason", "at most 512 bytes"));
        }
        let now = self.ctx.clock.now();
        let reason =
            if reason.is_empty() { format!("revoked by {}", caller.actor) } else { reason.to_owned() };
        let revoke = |all: &[Delegation]| -> Result<Vec<Delegation>, String> {
            if !all.iter().any(|g| g.id == id) {
                return Err(format!("delegation {id} does not exist"));
            }
            Ok(revocation_cascade(all, id)
                .into_iter()
                .filter_map(|target| all.iter().find(|g| g.id == target))
                .filter(|g| g.state == DelegationState::Active)
                .map(|g| {
                    let mut revoked = g.clone();
                    revoked.state = DelegationState::Revoked;
                    revoked.revoked_at = Some(now);
                    revoked.reason = Some(if g.id == id {
                        reason.clone()
                    } else {
                        format!("derived from revoked grant {id}")
                    });
                    revoked
                })
                .collect())
        };
        let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
        if !all.iter().any(|g| g.id == id) {
            return Err(AppError::NotFound { resource: format!("delegation {id}") });
        }
        if validate_only {
            let mut after = all.clone();
            for revoked in revoke(&all).map_err(refused)? {
                if let Some(slot) = after.iter_mut().find(|g| g.id == revoked.id) {
                    *slot = revoked;
                }
            }
            return Ok(revocation_cascade(&after, id)
                .iter()
                .filter_map(|target| after.iter().find(|g| &g.id == target))
                .map(|g| view(&after, g))
                .collect());
        }
        let outcome =
            self.ctx
                .store
                .change_delegations(self.ctx.runtime_name(), idempotency, now, |all| {
                    let updates = revoke(all)?;
                    let cascade: Vec<&str> = updates.iter().map(|g| g.id.as_str()).collect();
                    let edges: Vec<String> = falling_edges
                        .iter()
                        .map(|e| format!("{}->{}:{}", e.from, e.to, e.kind.as_str()))
                        .collect();
                    let audit = caller.event_in(self.ctx.runtime_name(),
                    format!("delegation/{id}"),
                    format!(
                        "revoked {id} and {} derived grant(s) [{}]; desired edges that fall: [{}]: {reason}",
                        updates.len().saturating_sub(1),
                        cascade.join(", "),
                        edges.join(", ")
                    ),
                );
                    // Nothing newly revoked (already revoked): nothing to tell.
                    let events = if updates.is_empty() {
                        Vec::new()
                    } else {
                        vec![crate::domain::outbound::delegation_revoked(
                            self.ctx.runtime_name(),
                            id,
                            &cascade,
                            &reason,
                            &caller.actor,
                            &edges,
                        )]
                    };
                    Ok(DelegationChange { inserts: Vec::new(), updates, audit: Some(audit), events })
                })
                .await?;
        let mut affected = self.settle(outcome).await?;
        if affected.is_empty() {
            // Already revoked: report the cascade as it stands.
            let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
            affected = revocation_cascade(&all, id)
                .iter()
                .filter_map(|target| all.iter().find(|g| &g.id == target))
                .map(|g| view(&all, g))
                .collect();
        }
        Ok(affected)
    }

    /// Lists grants oldest first, optionally only those an agent takes part in.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        agent: &str,
    ) -> Result<(Vec<DelegationView>, String), AppError> {
        let scope = format!("{LIST_SCOPE}:{agent}");
        let page = page_request(&self.ctx.page_tokens, &scope, page_size, page_token)?;
        let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
        let rows: Vec<DelegationView> = all
            .iter()
            .filter(|g| agent.is_empty() || g.grantor == agent || g.delegate == agent)
            .filter(|g| page.cursor.as_deref().is_none_or(|after| g.id.as_str() > after))
            .take(page.size as usize + 1)
            .map(|g| view(&all, g))
            .collect();
        Ok(finish_page(&self.ctx.page_tokens, &scope, rows, page.size, |v| v.grant.id.clone()))
    }

    /// Returns one grant's standing and ancestry.
    pub async fn get(&self, id: &str) -> Result<DelegationView, AppError> {
        let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
        let grant = all
            .iter()
            .find(|g| g.id == id)
            .ok_or_else(|| AppError::NotFound { resource: format!("delegation {id}") })?;
        Ok(view(&all, grant))
    }

    /// Records BACKFILL grants for SPAWN relations of the latest observation without one.
    pub async fn backfill(
        &self,
        idempotency: &IdempotencyKey,
        validate_only: bool,
        caller: &AuditContext,
    ) -> Result<Vec<DelegationView>, AppError> {
        let observation = match self.observations.latest_stored_opt() {
            Some(observation) => observation,
            None => std::sync::Arc::new(self.observations.observe_now().await?),
        };
        let edges: Vec<(String, String)> =
            observation.topology.edges_of(EdgeKind::Spawn).map(|e| (e.from.clone(), e.to.clone())).collect();
        let now = self.ctx.clock.now();
        let random = super::ids::random_hex(4)?;
        let build = |missing: Vec<(String, String)>| -> Vec<Delegation> {
            missing
                .into_iter()
                .enumerate()
                .map(|(index, (grantor, delegate))| Delegation {
                    id: new_id(now, index, &random),
                    parent_id: None,
                    grantor,
                    delegate,
                    rights: vec![SPAWN_RIGHT.to_owned()],
                    trust: TrustLevel::Restricted,
                    source: DelegationSource::Backfill,
                    state: DelegationState::Active,
                    created_at: now,
                    revoked_at: None,
                    reason: None,
                })
                .collect()
        };
        if validate_only {
            let all = self.ctx.store.delegations(self.ctx.runtime_name()).await?;
            let planned = build(backfill_missing(&all, &edges));
            return Ok(planned
                .iter()
                .map(|g| DelegationView {
                    grant: g.clone(),
                    standing: Standing::Active,
                    chain: vec![g.id.clone()],
                })
                .collect());
        }
        let outcome = self
            .ctx
            .store
            .change_delegations(self.ctx.runtime_name(), idempotency, now, |all| {
                let inserts = build(backfill_missing(all, &edges));
                let audit = (!inserts.is_empty()).then(|| {
                    caller.event_in(
                        self.ctx.runtime_name(),
                        "delegations/backfill",
                        format!("backfilled {} grant(s) from SPAWN relations", inserts.len()),
                    )
                });
                Ok(DelegationChange { inserts, updates: Vec::new(), audit, events: Vec::new() })
            })
            .await?;
        self.settle(outcome).await
    }
}
