use serde_json::Value;

use crate::helpers::spawn_app;

async fn get_json(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn health_and_ready_answer_200_when_ready() {
    let app = spawn_app().await;
    let (status, body) = get_json(app.http_url("/health")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SERVING")));
    let (status, body) = get_json(app.http_url("/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body["ready"], true);
    let names: Vec<&str> =
        body["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["store", "runtime", "reconcile", "shutdown"]);
    let warnings = body["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("fixture mode")), "{warnings:?}");
    app.stop().await;
}

#[tokio::test]
async fn version_routes_carry_the_crate_version() {
    let app = spawn_app().await;
    for path in ["/version", "/api/v1/version"] {
        let (status, body) = get_json(app.http_url(path)).await;
        assert_eq!(status, 200);
        assert_eq!(body["service"], "jhf-warp");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["proto_package"], "jhf.warp.v1");
        assert!(!body["git_sha"].as_str().unwrap().is_empty());
    }
    app.stop().await;
}

#[tokio::test]
async fn fabric_manifest_names_the_static_port_and_every_method_with_its_class() {
    let app = spawn_app().await;
    let (status, body) = get_json(app.http_url("/fabric-manifest.json")).await;
    assert_eq!(status, 200);
    let policy = &body["runtime_contract"]["port_policy"];
    assert_eq!(policy["name"], "jhf-warp-api");
    assert_eq!(policy["port"], 18086);
    assert_eq!(policy["policy"], "static-required");
    let methods: Vec<(String, String)> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["methods"].as_array().unwrap().iter())
        .map(|m| (m["path"].as_str().unwrap().to_owned(), m["auth_class"].as_str().unwrap().to_owned()))
        .collect();
    let descriptor = jhf_warp::grpc::descriptor::api_methods().unwrap();
    assert_eq!(methods.len(), descriptor.len());
    assert!(
        methods
            .contains(&("/jhf.warp.v1.TopologyService/GetTopology".to_owned(), "AUTH_CLASS_READ".to_owned()))
    );
    assert!(
        methods.contains(&("/jhf.warp.v1.MetaService/GetManifest".to_owned(), "AUTH_CLASS_OPEN".to_owned()))
    );

    let grpc =
        app.meta().await.get_manifest(jhf_warp::pb::v1::GetManifestRequest {}).await.unwrap().into_inner();
    assert_eq!(serde_json::to_value(&grpc).unwrap(), body, "the shim serves the same message as gRPC");
    app.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_shim_route() {
    let app = spawn_app().await;
    let (status, body) = get_json(app.http_url("/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.1.0");
    let described: Vec<&String> = body["paths"].as_object().unwrap().keys().collect();
    assert_eq!(described.len(), jhf_warp::http::ROUTES.len(), "{described:?}");
    for path in jhf_warp::http::ROUTES.iter().copied() {
        assert!(body["paths"][path]["get"].is_object(), "{path} not described");
        let response = reqwest::Client::new()
            .get(app.http_url(path))
            .bearer_auth(crate::helpers::READER_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} described but not served");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_need_a_token_and_then_are_404() {
    let app = spawn_app().await;
    // Default deny: a path nobody listed as open is closed, so a route added later cannot be
    // left open by mistake, and probing for routes without a token tells nothing.
    for path in ["/nope", "/admin", "/jhf.warp.v1.Unknown/Method", "/health/../metrics"] {
        let anonymous = reqwest::get(app.http_url(path)).await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    let response = reqwest::Client::new()
        .get(app.http_url("/nope"))
        .bearer_auth(crate::helpers::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 5, "an unknown route is a google.rpc.Status NOT_FOUND: {body}");
    assert_eq!(body["message"], "route /nope not found");
    assert_eq!(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(body["details"][0]["domain"], "jhf-warp");
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_a_token_and_report_the_control_plane() {
    use jhf_warp::pb::v1 as pb;

    let app = spawn_app().await;
    let anonymous = reqwest::get(app.http_url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["code"], 16, "google.rpc.Status: UNAUTHENTICATED");
    assert_eq!(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(body["details"][0]["reason"], "TOKEN_MISSING");
    let wrong =
        reqwest::Client::new().get(app.http_url("/metrics")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let acquire =
        pb::AcquireLeaseRequest { name: "agent/lead".into(), holder: "lead".into(), duration_seconds: 60 };
    let mut control = app.control().await;
    let token = crate::helpers::agent_token("lead");
    control.acquire_lease(crate::helpers::with_token(acquire, &token)).await.unwrap();
    let response = reqwest::Client::new()
        .get(app.http_url("/metrics"))
        .bearer_auth(crate::helpers::READER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for line in [
        &format!("jhf_warp_build_info{{version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "jhf_warp_ready 1",
        "jhf_warp_component_ready{component=\"store\"} 1",
        "jhf_warp_reconcile_leader{runtime=\"default\"} 0",
        "jhf_warp_reconcile_schedule_paused{runtime=\"default\"} 1",
        "jhf_warp_runtimes{health=\"HEALTHY\"} 1",
        "# TYPE jhf_warp_drift_items gauge",
        // The RPC series of the calls above, from the layer: the lease the agent took, and the
        // refused anonymous scrape.
        "grpc_server_handled_total{grpc_service=\"jhf.warp.v1.ControlService\",grpc_method=\"AcquireLease\",grpc_code=\"OK\"} 1",
        "grpc_server_handling_seconds_count{grpc_service=\"jhf.warp.v1.ControlService\",grpc_method=\"AcquireLease\"} 1",
        "grpc_server_handled_total{grpc_service=\"http\",grpc_method=\"/metrics\",grpc_code=\"Unauthorized\"} 2",
        "jhf_warp_runtime_operations_total{runtime=\"default\",operation=\"observe\",outcome=\"ok\"}",
        "# EOF",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // The agent's lease, besides the replica's own (membership, the runtime it owns, ...).
    let held: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("jhf_warp_leases{held=\"true\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(held >= 2.0, "{text}");
    app.stop().await;
}

#[tokio::test]
async fn the_web_view_is_a_static_page_and_its_data_routes_need_a_token() {
    let app = spawn_app().await;
    let page = reqwest::get(app.http_url("/ui")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>jhf-warp"), "the page");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
    assert!(!html.contains("lead"), "the page itself carries no data");

    for path in ["/v1/topology", "/v1/topology.svg", "/v1/drift/items", "/v1/rollouts", "/v1/runtimes"] {
        let anonymous = reqwest::get(app.http_url(path)).await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    let get = |path: &'static str| {
        let url = app.http_url(path);
        async move {
            reqwest::Client::new().get(url).bearer_auth(crate::helpers::READER_TOKEN).send().await.unwrap()
        }
    };
    let svg = get("/v1/topology.svg?source=observed").await;
    assert_eq!(svg.status(), 200);
    assert!(svg.headers()["content-type"].to_str().unwrap().starts_with("image/svg+xml"));
    let svg = svg.text().await.unwrap();
    for agent in ["lead", "research", "writer"] {
        assert!(svg.contains(&format!("data-agent=\"{agent}\"")), "{agent} drawn: {svg}");
    }
    let bad = get("/v1/topology.svg?source=sideways").await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert_eq!(body["details"][1]["fieldViolations"][0]["field"], "source", "{body}");
    let topology: serde_json::Value = get("/v1/topology").await.json().await.unwrap();
    assert_eq!(topology["topology"]["nodes"].as_array().map(Vec::len), Some(3), "{topology}");
    let drift: serde_json::Value = get("/v1/drift/items").await.json().await.unwrap();
    assert!(drift.is_object(), "{drift}");
    let rollouts: serde_json::Value = get("/v1/rollouts").await.json().await.unwrap();
    assert!(rollouts.is_object(), "{rollouts}");
    let runtimes: serde_json::Value = get("/v1/runtimes").await.json().await.unwrap();
    assert_eq!(runtimes["runtimes"][0]["spec"]["name"], "default", "{runtimes}");
    app.stop().await;
}
