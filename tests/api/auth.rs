//! Auth classes come from the descriptor and are enforced on every method.

use jhf_warp::domain::access::AuthClass;
use jhf_warp::grpc::descriptor::api_methods;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_types::StatusExt;

use crate::helpers::{AGENT_TOKEN, OPERATOR_TOKEN, READER_TOKEN, TestApp, spawn_app};

/// Every request message of the API accepts an empty body (proto3 defaults).
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

/// Calls `path` with an empty request and an optional token. Streaming methods are opened
/// (their status arrives with the response headers) and dropped.
async fn call_method(
    app: &TestApp,
    path: &str,
    streaming: bool,
    token: Option<&str>,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(Empty {});
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<Empty, Empty>::default();
    let path = PathAndQuery::from_maybe_shared(path.to_owned().into_bytes()).unwrap();
    if streaming {
        grpc.server_streaming(request, path, codec).await.map(|_| ())
    } else {
        grpc.unary(request, path, codec).await.map(|_| ())
    }
}

async fn call(app: &TestApp, path: &str, token: Option<&str>) -> Result<(), tonic::Status> {
    call_method(app, path, false, token).await
}

/// Passes when the auth layer let the call through (the handler may still refuse the empty
/// request for its own reasons, e.g. NOT_FOUND or INVALID_ARGUMENT).
fn assert_admitted(path: &str, result: Result<(), tonic::Status>) {
    if let Err(status) = result {
        assert!(
            !matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied),
            "{path} refused an authorised caller: {status:?}"
        );
    }
}

#[test]
fn every_method_in_the_descriptor_declares_an_auth_class() {
    let methods = api_methods().unwrap();
    assert!(methods.len() >= 6);
    for method in methods {
        assert!(method.auth_class.is_some(), "{} has no auth_class", method.path);
    }
}

#[tokio::test]
async fn methods_refuse_or_allow_callers_by_their_class() {
    let app = spawn_app().await;
    for method in api_methods().unwrap() {
        let path = method.path.as_str();
        let streaming = method.server_streaming;
        match method.auth_class.unwrap() {
            AuthClass::Open => assert_admitted(path, call_method(&app, path, streaming, None).await),
            AuthClass::Read => {
                let missing = call_method(&app, path, streaming, None).await.unwrap_err();
                assert_eq!(missing.code(), Code::Unauthenticated, "{path}");
                let info = missing.get_error_details().error_info().cloned().expect("ErrorInfo attached");
                assert_eq!((info.domain.as_str(), info.reason.as_str()), ("jhf-warp", "TOKEN_MISSING"));
                let wrong = call_method(&app, path, streaming, Some("not-a-token")).await.unwrap_err();
                assert_eq!(wrong.code(), Code::Unauthenticated, "{path}");
                for token in [READER_TOKEN, AGENT_TOKEN, OPERATOR_TOKEN] {
                    assert_admitted(path, call_method(&app, path, streaming, Some(token)).await);
                }
            }
            AuthClass::Operate => {
                let missing = call_method(&app, path, streaming, None).await.unwrap_err();
                assert_eq!(missing.code(), Code::Unauthenticated, "{path}");
                for token in [READER_TOKEN, AGENT_TOKEN] {
                    let refused = call_method(&app, path, streaming, Some(token)).await.unwrap_err();
                    assert_eq!(refused.code(), Code::PermissionDenied, "{path}");
                }
                assert_admitted(path, call_method(&app, path, streaming, Some(OPERATOR_TOKEN)).await);
            }
            AuthClass::ControlAgent => {
                let missing = call_method(&app, path, streaming, None).await.unwrap_err();
                assert_eq!(missing.code(), Code::Unauthenticated, "{path}");
                let reader = call_method(&app, path, streaming, Some(READER_TOKEN)).await.unwrap_err();
                assert_eq!(reader.code(), Code::PermissionDenied, "{path}");
                assert_admitted(path, call_method(&app, path, streaming, Some(AGENT_TOKEN)).await);
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_api_methods_fail_closed() {
    let app = spawn_app().await;
    let path = "/jhf.warp.v1.TopologyService/DeleteEverything";
    let missing = call(&app, path, None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let reader = call(&app, path, Some(READER_TOKEN)).await.unwrap_err();
    assert_eq!(reader.code(), Code::PermissionDenied);
    let info = reader.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "ROLE_NOT_PERMITTED");
    let operator = call(&app, path, Some(OPERATOR_TOKEN)).await.unwrap_err();
    assert_eq!(operator.code(), Code::Unimplemented);
    app.stop().await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_other_schemes_are_refused() {
    let app = spawn_app().await;
    let mut client = app.topology().await;
    let mut request = tonic::Request::new(jhf_warp::pb::v1::GetTopologyRequest::default());
    request.metadata_mut().insert("authorization", format!("bearer {READER_TOKEN}").parse().unwrap());
    client.get_topology(request).await.unwrap();
    let mut request = tonic::Request::new(jhf_warp::pb::v1::GetTopologyRequest::default());
    request.metadata_mut().insert("authorization", format!("Basic {READER_TOKEN}").parse().unwrap());
    assert_eq!(client.get_topology(request).await.unwrap_err().code(), Code::Unauthenticated);
    app.stop().await;
}
