//! safedeploy: a Kubernetes operator for attested, health-gated canary rollouts.
//!
//! The crate keeps a pure core (`core`, `analysis::judge`, `attest::verify`) that takes plain data
//! and returns decisions, and a thin I/O layer (`controller`, `analysis::provider`, `plugin`)
//! that talks to the API server and to metric providers.

pub mod analysis;
pub mod api;
pub mod attest;
pub mod canonical_json;
pub mod cli;
pub mod controller;
pub mod core;
pub mod emitter;
pub mod plugin;
pub mod telemetry;
