//! The OpenAPI 3.1 description of the HTTP shim (not of the gRPC API, which reflection and
//! the `.proto` files describe).

use serde_json::{Value, json};

/// Returns the OpenAPI document of the shim routes.
pub fn document() -> Value {
    let component = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let ok = |description: &str, schema: &str| json!({ "description": description, "content": { "application/json": { "schema": component(schema) } } });
    let string = json!({ "type": "string" });
    let boolean = json!({ "type": "boolean" });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "jhf-warp HTTP shim",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Probe and discovery routes of jhf-warp. Bodies are the proto3 JSON (proto field names) of jhf.warp.v1 messages. The full API is gRPC on the same port (server reflection enabled).",
            "license": { "name": "AGPL-3.0-only" }
        },
        "paths": {
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
                "summary": "Prometheus metrics (text exposition 0.0.4), gathered at scrape time. Needs a bearer token of any role (READ); 401/403 otherwise.",
                "security": [{ "bearer": [] }],
                "responses": {
                    "200": { "description": "metrics", "content": { "text/plain": {} } },
                    "401": { "description": "no or invalid token" },
                    "503": { "description": "the store cannot be read" }
                }
            }},
            "/openapi.json": { "get": {
                "summary": "This document.",
                "responses": { "200": { "description": "OpenAPI 3.1 document", "content": { "application/json": {} } } }
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
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
            }}
        }}
    })
}
