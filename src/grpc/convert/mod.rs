//! Wire ↔ domain conversions, one file per service: `From<&Domain> for pb::Message` for
//! answers, `TryFrom<pb::Message>` (or `*_from_pb` with the field name, for enums) for
//! requests. Handlers hold only handlers.

mod control;
mod drift;
mod orchestration;
mod topology;

use chrono::{DateTime, Utc};

use crate::control::AppError;
use crate::domain::{Severity, TrustLevel};
use crate::pb::v1 as pb;

pub use control::{delivery_state_from_pb, lease_at, reconcile_mode_from_pb, trust_from_pb};
pub use drift::{plan_created, plan_kind_from_pb};
pub use orchestration::{
    lifecycle_from_pb, proposal_state_from_pb, retention_from_pb, risk_from_pb, setup_pass_from_pb,
    workspace_record,
};

/// Answers that say which runtime they are about: the domain value does not know its runtime's
/// name, the handler does.
pub trait InRuntime {
    fn in_runtime(self, runtime: &str) -> Self;
}

macro_rules! in_runtime {
    ($($message:ty),* $(,)?) => {
        $(impl InRuntime for $message {
            fn in_runtime(mut self, runtime: &str) -> Self {
                runtime.clone_into(&mut self.runtime);
                self
            }
        })*
    };
}

in_runtime!(
    pb::Delegation,
    pb::WatchdogObservation,
    pb::SchedulerRun,
    pb::Schedule,
    pb::PreviewDispatchResponse,
    pb::ObservationInfo,
    pb::DesiredTopologyRevision,
    pb::GetTopologyResponse,
    pb::GetInventoryResponse,
    pb::DiffTopologyResponse,
    pb::GetAgentCatalogResponse,
    pb::WatchTopologyResponse,
    pb::PatchPlan,
    pb::Rollout,
    pb::DriftItem,
    pb::GetDriftSummaryResponse,
    pb::WatchDriftResponse,
    pb::SetupPreview,
);

/// Converts a UTC time to a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn some_text(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// Saturates a count into a proto `int32`.
fn count(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl From<Severity> for pb::Severity {
    fn from(value: Severity) -> Self {
        match value {
            Severity::Info => Self::Info,
            Severity::Warning => Self::Warning,
            Severity::Error => Self::Error,
            Severity::Critical => Self::Critical,
        }
    }
}

impl From<TrustLevel> for pb::TrustLevel {
    fn from(value: TrustLevel) -> Self {
        match value {
            TrustLevel::Restricted => Self::Restricted,
            TrustLevel::Standard => Self::Standard,
            TrustLevel::Elevated => Self::Elevated,
        }
    }
}

/// An unknown enum number in a request.
fn unknown(field: &str, what: &str) -> AppError {
    AppError::invalid(field.to_owned(), format!("unknown {what}"))
}
