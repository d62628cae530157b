//! safedeploy: a Kubernetes operator for attested, health-gated canary rollouts.
//!
//! The crate keeps a pure core (`core`, `analysis::judge`, `attest::verify`) that takes plain data
//! and returns decisions, and a thin I/O layer (`controller`, `analysis::provider`, `plugin`)
//! that talks to the API server and to metric providers.
//!
//! The modules stand on floors, and an import only ever points down (`tests/layering.rs` checks
//! it):
//!
//! | floor | modules |
//! |---|---|
//! | 5 | `main.rs` |
//! | 4 | [`cli`] (with the attest tools, `cli::attest`) |
//! | 3 | [`controller`], [`plugin`], [`emitter`] |
//! | 2 | [`core`], [`analysis`], [`attest`]: wings that do not import each other (the one exception left, `analysis` → `core`, is listed in the test) |
//! | 1 | [`api`]: the custom resources, labels, and the shared readings of a spec |
//! | 0 | [`canonical_json`], [`telemetry`] |

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
