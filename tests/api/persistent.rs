//! Persistent agents, workspace records and learning proposals end to end.

use jhf_warp::pb::v1 as pb;
use jhf_warp::pb::v1::orchestration_service_client::OrchestrationServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{AGENT_TOKEN, OPERATOR_TOKEN, READER_TOKEN, TestApp, reason, spawn_app, with_token};

type Client = OrchestrationServiceClient<Channel>;

async fn client(app: &TestApp) -> Client {
    OrchestrationServiceClient::new(app.channel().await)
}

fn fields(link: &str) -> pb::PersistentAgentFields {
    pb::PersistentAgentFields {
        display_name: "Payments expert".into(),
        domain: "payments".into(),
        description: "Knows the refund ledger.".into(),
        business_link: link.into(),
        owner: "team-payments".into(),
    }
}

fn create(link: &str, request_id: &str) -> pb::CreatePersistentAgentRequest {
    pb::CreatePersistentAgentRequest {
        agent_id: "payments".into(),
        fields: Some(fields(link)),
        request_id: request_id.into(),
        validate_only: false,
    }
}

async fn list_agents(client: &mut Client, lifecycle: pb::AgentLifecycle) -> Vec<pb::PersistentAgent> {
    let request = pb::ListPersistentAgentsRequest { lifecycle: lifecycle.into(), ..Default::default() };
    client.list_persistent_agents(with_token(request, READER_TOKEN)).await.unwrap().into_inner().agents
}

#[tokio::test]
async fn persistent_agents_need_a_business_link_and_keep_their_workspace_record_through_retirement() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    let refused =
        client.create_persistent_agent(with_token(create("", "c-0"), OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(violations[0].field, "agent.business_link");
    let malformed = client
        .create_persistent_agent(with_token(create("https://example.com/team", "c-00"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(list_agents(&mut client, pb::AgentLifecycle::Unspecified).await.is_empty(), "nothing was stored");

    let created = client
        .create_persistent_agent(with_token(create("identity://team/payments", "c-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let agent = created.agent.unwrap();
    assert_eq!((agent.etag.as_str(), agent.created_by.as_str()), ("1", "op"));
    let record = created.workspace.unwrap();
    assert_eq!(record.path, "workspace-payments");
    assert_eq!(record.lifecycle, pb::WorkspaceLifecycle::InUse as i32);
    assert_eq!(record.policy, pb::RetentionPolicy::Keep as i32);
    let replay = client
        .create_persistent_agent(with_token(create("identity://team/payments", "c-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.agent.unwrap(), agent, "a retry returns the first response");
    let duplicate = client
        .create_persistent_agent(with_token(create("identity://team/payments", "c-2"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::FailedPrecondition);

    let update = |etag: &str, request_id: &str| pb::UpdatePersistentAgentRequest {
        agent_id: "payments".into(),
        fields: Some(pb::PersistentAgentFields {
            owner: "team-billing".into(),
            ..fields("identity://team/payments")
        }),
        etag: etag.into(),
        request_id: request_id.into(),
        validate_only: false,
    };
    let stale =
        client.update_persistent_agent(with_token(update("7", "u-0"), OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let updated = client
        .update_persistent_agent(with_token(update("1", "u-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let updated = updated.agent.unwrap();
    assert_eq!((updated.etag.as_str(), updated.owner.as_str()), ("2", "team-billing"));

    let retire = pb::RetirePersistentAgentRequest {
        agent_id: "payments".into(),
        etag: "2".into(),
        reason: "domain moved to the billing team".into(),
        request_id: "r-1".into(),
        validate_only: false,
    };
    let retired =
        client.retire_persistent_agent(with_token(retire, OPERATOR_TOKEN)).await.unwrap().into_inner();
    let retired_agent = retired.agent.unwrap();
    assert_eq!(retired_agent.lifecycle, pb::AgentLifecycle::Retired as i32);
    let record = retired.workspace.unwrap();
    assert_eq!(record.lifecycle, pb::WorkspaceLifecycle::Retained as i32);
    let after =
        client.update_persistent_agent(with_token(update("3", "u-2"), OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(after.code(), Code::FailedPrecondition, "retired agents are read-only");

    let retention = pb::UpdateWorkspaceRetentionRequest {
        agent_id: "payments".into(),
        policy: pb::RetentionPolicy::DeleteAfter.into(),
        retention_days: 30,
        etag: record.etag.clone(),
        request_id: "w-1".into(),
        validate_only: false,
    };
    let kept =
        client.update_workspace_retention(with_token(retention, OPERATOR_TOKEN)).await.unwrap().into_inner();
    let due = kept.workspace.unwrap().due_time.unwrap();
    assert_eq!(due.seconds - retired_agent.retire_time.unwrap().seconds, 30 * 86_400);
    let bad = pb::UpdateWorkspaceRetentionRequest {
        agent_id: "payments".into(),
        policy: pb::RetentionPolicy::Keep.into(),
        retention_days: 5,
        etag: "2".into(),
        request_id: "w-2".into(),
        validate_only: false,
    };
    assert_eq!(
        client.update_workspace_retention(with_token(bad, OPERATOR_TOKEN)).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    assert_eq!(list_agents(&mut client, pb::AgentLifecycle::Retired).await.len(), 1);
    assert!(list_agents(&mut client, pb::AgentLifecycle::Active).await.is_empty());
    let workspaces = client
        .list_workspaces(with_token(pb::ListWorkspacesRequest::default(), READER_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .workspaces;
    assert_eq!(workspaces.len(), 1);
    app.stop().await;
}

fn propose(request_id: &str, change: &str) -> pb::CreateLearningProposalRequest {
    pb::CreateLearningProposalRequest {
        runtime: String::new(),
        agent_id: "lead".into(),
        change: change.into(),
        rationale: "two escalations last week came from this".into(),
        evidence_refs: vec!["session://lead/2026-11-20".into()],
        request_id: request_id.into(),
        validate_only: false,
    }
}

fn decide(id: &str, approve: bool, request_id: &str) -> pb::ReviewLearningProposalRequest {
    pb::ReviewLearningProposalRequest {
        runtime: String::new(),
        id: id.into(),
        approve,
        note: "checked".into(),
        request_id: request_id.into(),
    }
}

#[tokio::test]
async fn learning_proposals_are_reviewed_once_by_someone_else_and_only_produce_a_preview() {
    let app = spawn_app().await;
    let mut client = client(&app).await;
    let by_agent = client
        .create_learning_proposal(with_token(
            propose("p-1", "Check the refund ledger before answering."),
            AGENT_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    assert_eq!((by_agent.author.as_str(), by_agent.state), ("agent", pb::ProposalState::Proposed as i32));
    let empty = pb::CreateLearningProposalRequest { evidence_refs: vec![], ..propose("p-x", "x") };
    assert_eq!(
        client.create_learning_proposal(with_token(empty, AGENT_TOKEN)).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let reader =
        client.create_learning_proposal(with_token(propose("p-r", "x"), READER_TOKEN)).await.unwrap_err();
    assert_eq!(reader.code(), Code::PermissionDenied);

    // The operator proposes one itself and may not approve it.
    let by_operator = client
        .create_learning_proposal(with_token(propose("p-2", "Summarise before delegating."), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    let own = client
        .review_learning_proposal(with_token(decide(&by_operator.id, true, "v-0"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::FailedPrecondition);
    assert_eq!(reason(&own), "REVIEWER_IS_AUTHOR");

    let lead_agents_md = app.runtime_state_dir("trio").join("workspace-lead/AGENTS.md");
    let before = std::fs::read_to_string(&lead_agents_md).unwrap();
    let reviewed = client
        .review_learning_proposal(with_token(decide(&by_agent.id, true, "v-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    let approved = reviewed.proposal.unwrap();
    assert_eq!((approved.state, approved.reviewer.as_str()), (pb::ProposalState::Approved as i32, "op"));
    let preview = reviewed.preview.unwrap();
    assert_eq!(approved.setup_preview_id, preview.id);
    let agents_md = &preview.agents[0].files[0];
    assert_eq!(agents_md.name, "AGENTS.md");
    assert!(
        agents_md.content.contains("## Learned") && agents_md.content.contains("Check the refund ledger")
    );
    assert_eq!(std::fs::read_to_string(&lead_agents_md).unwrap(), before, "approval edits no workspace");

    let again = client
        .review_learning_proposal(with_token(decide(&by_agent.id, false, "v-2"), OPERATOR_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(reason(&again), "PROPOSAL_DECIDED");
    let retry = client
        .review_learning_proposal(with_token(decide(&by_agent.id, true, "v-1"), OPERATOR_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.proposal.unwrap(), approved, "a retry returns the decision");

    // Applying the preview writes the lead's files, except the AGENTS.md a person wrote.
    let apply = pb::ApplySetupRequest {
        runtime: String::new(),
        preview_id: preview.id.clone(),
        etag: String::new(),
        request_id: "apply-learning".into(),
        validate_only: false,
        rollout: true,
    };
    let applied = crate::orchestration::apply_setup(&app, apply).await.unwrap();
    assert!(applied.desired.is_none() && applied.rollout.is_none(), "no topology change");
    let actions: Vec<(String, i32)> =
        applied.files.iter().map(|f| (f.path.rsplit('/').next().unwrap().to_owned(), f.action)).collect();
    assert_eq!(
        actions,
        [
            ("AGENTS.md".to_owned(), pb::FileWriteAction::Conflict as i32),
            ("SOUL.md".to_owned(), pb::FileWriteAction::Created as i32),
            ("IDENTITY.md".to_owned(), pb::FileWriteAction::Created as i32),
        ]
    );
    assert_eq!(std::fs::read_to_string(&lead_agents_md).unwrap(), before);

    let listed = client
        .list_learning_proposals(with_token(
            pb::ListLearningProposalsRequest {
                state: pb::ProposalState::Proposed.into(),
                ..Default::default()
            },
            READER_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [by_operator.id.as_str()]);
    app.stop().await;
}
