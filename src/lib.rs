//! jhf-warp: the orchestration control plane for teams of OpenClaw agents.
//!
//! Layers (arrows point to what a layer may use):
//! `grpc/` + `http/` → `control/` → `domain/` (pure), `store/` (sea-orm), `runtime/` (adapters).
//! See `docs/architecture.md`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
pub mod delivery;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod pb;
pub mod random;
pub mod runtime;
pub mod store;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
