//! The OpenAPI 3.1 description of the HTTP shim (not of the gRPC API, which reflection and
//! the `.proto` files describe).

use serde_json::{Value, json};

/// Returns the OpenAPI document of the shim routes.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "jhf-warp HTTP shim",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Probe and discovery routes of jhf-warp. Bodies are the proto3 JSON (proto field names) of jhf.warp.v1 messages. The full API is gRPC on the same port (server reflection enabled).",
            "license": { "name": "AGPL-3.0-only" }
        },
        "paths": paths(),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    })
}

/// A JSON reference to one of the document's schemas.
fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON response described by one of the document's schemas.
fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": component(schema) } } })
}

/// The shim's routes.
fn paths() -> Value {
    let runtime = json!({ "name": "runtime", "in": "query", "description": "The runtime (default: the only one).", "schema": { "type": "string" } });
    json!({
        "/health": { "get": {
            "summary": "Liveness: 200 while the process answers.",
            "responses": { "200": ok("alive", "LivenessStatus") }
        }},
        "/ready": { "get": {
            "summary": "Readiness: 200 when store and runtime are ready and shutdown has not begun, else 503.",
            "responses": { "200": ok("ready", "GetReadinessResponse"), "503": ok("not ready", "GetReadinessResponse") }
        }},
        "/version": { "get": {
            "summary": "Version of the running build.",
            "responses": { "200": ok("version", "GetVersionResponse") }
        }},
        "/api/v1/version": { "get": {
            "summary": "Version of the running build (versioned path).",
            "responses": { "200": ok("version", "GetVersionResponse") }
        }},
        "/fabric-manifest.json": { "get": {
            "summary": "Fabric manifest: services, methods, auth classes and port policy.",
            "responses": { "200": ok("manifest", "GetManifestResponse") }
        }},
        "/metrics": { "get": {
            "summary": "Metrics (OpenMetrics 1.0 text): the store's gauges gathered at scrape time, then RPC, runtime and rollout series. Needs a bearer token of any role (READ); 401/403 otherwise.",
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "metrics", "content": { "application/openmetrics-text": {} } },
                "401": { "description": "no or invalid token" },
                "503": { "description": "the store cannot be read" }
            }
        }},
        "/ui": { "get": {
            "summary": "Read-only web view (one self-contained page): the team picture, drift items, recent rollouts. The page holds no data; it reads the /v1 routes with a READ token the person pastes (kept in session storage, sent as a header).",
            "responses": { "200": { "description": "HTML page", "content": { "text/html": {} } } }
        }},
        "/v1/topology": { "get": {
            "summary": "The latest stored observation (GetTopology, READ_MODE_STORED) of ?runtime= (default: the only runtime). READ.",
            "security": [{ "bearer": [] }],
            "parameters": [runtime],
            "responses": { "200": ok("observed topology", "GetTopologyResponse") }
        }},
        "/v1/topology.svg": { "get": {
            "summary": "The team as SVG: ?source=observed|desired|overlay (default overlay; drift marked: missing dashed red, unexpected orange, widened trust). READ.",
            "security": [{ "bearer": [] }],
            "parameters": [{ "name": "source", "in": "query", "schema": { "type": "string", "enum": ["observed", "desired", "overlay"] } }, runtime],
            "responses": { "200": { "description": "SVG", "content": { "image/svg+xml": {} } }, "400": { "description": "unknown source (google.rpc.Status)" } }
        }},
        "/v1/drift/items": { "get": {
            "summary": "Drift items (ListDriftItems; ?filter=…&page_token=…&runtime=…). READ.",
            "security": [{ "bearer": [] }],
            "parameters": [runtime],
            "responses": { "200": ok("drift items", "ListDriftItemsResponse") }
        }},
        "/v1/rollouts": { "get": {
            "summary": "The 20 most recent rollouts with their steps (ListRollouts) of ?runtime=. READ.",
            "security": [{ "bearer": [] }],
            "parameters": [runtime],
            "responses": { "200": ok("rollouts", "ListRolloutsResponse") }
        }},
        "/v1/runtimes": { "get": {
            "summary": "The fleet's runtimes with owner, health, drift and active rollout (ListRuntimes; ?selector=env=prod&page_token=…). READ.",
            "security": [{ "bearer": [] }],
            "parameters": [{ "name": "selector", "in": "query", "schema": { "type": "string" } }],
            "responses": { "200": ok("runtimes", "ListRuntimesResponse") }
        }},
        "/openapi.json": { "get": {
            "summary": "This document.",
            "responses": { "200": { "description": "OpenAPI 3.1 document", "content": { "application/json": {} } } }
        }}
    })
}

/// The response bodies' schemas.
fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let boolean = json!({ "type": "boolean" });
    json!({
            "LivenessStatus": { "type": "object", "properties": { "status": string } },
            "ComponentReadiness": { "type": "object", "properties": { "name": string, "ready": boolean, "detail": string } },
            "GetReadinessResponse": { "type": "object", "properties": {
                "ready": boolean,
                "components": { "type": "array", "items": component("ComponentReadiness") },
                "warnings": { "type": "array", "items": string }
            }},
            "GetVersionResponse": { "type": "object", "properties": {
                "service": string, "version": string, "git_sha": string, "proto_package": string
            }},
            "ManifestMethod": { "type": "object", "properties": {
                "name": string, "path": string,
                "auth_class": { "type": "string", "enum": ["AUTH_CLASS_OPEN", "AUTH_CLASS_READ", "AUTH_CLASS_OPERATE", "AUTH_CLASS_CONTROL_AGENT"] },
                "server_streaming": boolean
            }},
            "ManifestService": { "type": "object", "properties": {
                "name": string, "methods": { "type": "array", "items": component("ManifestMethod") }
            }},
            "GetManifestResponse": { "type": "object", "properties": {
                "service_name": string, "version": string, "proto_package": string,
                "services": { "type": "array", "items": component("ManifestService") },
                "runtime_contract": { "type": "object", "properties": { "port_policy": { "type": "object", "properties": {
                    "name": string, "port": { "type": "integer" }, "policy": string
                }}}}
            }},
            // The /v1 bodies are the proto3 JSON of these jhf.warp.v1 messages; the .proto
            // files (and reflection) give their full shape.
            "GetTopologyResponse": { "type": "object", "description": "jhf.warp.v1.GetTopologyResponse (see proto/jhf/warp/v1/topology.proto)" },
            "ListDriftItemsResponse": { "type": "object", "description": "jhf.warp.v1.ListDriftItemsResponse (see proto/jhf/warp/v1/drift.proto)" },
            "ListRolloutsResponse": { "type": "object", "description": "jhf.warp.v1.ListRolloutsResponse (see proto/jhf/warp/v1/drift.proto)" },
            "ListRuntimesResponse": { "type": "object", "description": "jhf.warp.v1.ListRuntimesResponse (see proto/jhf/warp/v1/control.proto)" }
    })
}
