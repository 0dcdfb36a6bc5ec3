//! `jhf.warp.v1.OrchestrationService`.

use tonic::{Request, Response, Status};

use super::convert::{task_input, task_profile};
use crate::control::{AppError, Classifier};
use crate::pb::v1::{self as pb, orchestration_service_server::OrchestrationService};

pub struct OrchestrationServiceImpl {
    classifier: Classifier,
}

impl OrchestrationServiceImpl {
    pub fn new(classifier: Classifier) -> Self {
        Self { classifier }
    }
}

#[tonic::async_trait]
impl OrchestrationService for OrchestrationServiceImpl {
    async fn classify_task(
        &self,
        request: Request<pb::ClassifyTaskRequest>,
    ) -> Result<Response<pb::ClassifyTaskResponse>, Status> {
        let task = request.into_inner().task.ok_or_else(|| AppError::invalid("task", "required"))?;
        let profile = self.classifier.classify(&task_input(task))?;
        Ok(Response::new(pb::ClassifyTaskResponse { profile: Some(task_profile(&profile)) }))
    }
}
