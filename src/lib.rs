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

/// Declares modules that run on tenants' data inside every reconcile, where a panic would be
/// one tenant's object stopping the operator: outside tests, clippy denies the operations that
/// can panic (indexing, `unwrap`/`expect`, `panic!`, overflowing arithmetic, truncating casts).
/// The one list of those lints, for every module that needs it.
#[macro_export]
macro_rules! panic_free {
    ($($module:item)*) => {
        $(
            #[cfg_attr(
                not(test),
                deny(
                    clippy::indexing_slicing,
                    clippy::unwrap_used,
                    clippy::expect_used,
                    clippy::panic,
                    clippy::arithmetic_side_effects,
                    clippy::cast_possible_truncation
                )
            )]
            $module
        )*
    };
}

panic_free! {
    pub mod analysis;
    pub mod core;
}
pub mod api;
pub mod attest;
pub mod canonical_json;
pub mod cli;
pub mod controller;
pub mod emitter;
pub mod plugin;
pub mod telemetry;
