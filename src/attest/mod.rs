//! Local-validation attestations: in-toto Statements in DSSE envelopes, their signing, and their
//! verification against a `SafeDeploymentPolicy` (pure, failing closed, one reason per failure).
//!
//! The controller's API:
//! * [`policy::resolve_policy`] — which policy applies to a namespace (pure);
//! * [`verify::Expected::for_spec`] (or [`config::config_digest`] and [`config::image_digests`])
//!   — what the revision needs proven;
//! * [`verify::evaluate`] / [`verify::verify`] — the verdict, with a [`verify::RejectReason`].

pub mod config;
pub mod dsse;
pub mod json;
pub mod keys;
pub mod policy;
pub mod sign;
pub mod statement;
mod time;
pub mod verify;

#[cfg(test)]
mod tests;

pub use config::{UnpinnedImage, config_digest, config_digest_with, image_digests};
pub use policy::resolve_policy;
pub use verify::{Expected, RejectReason, Rejection, Verdict, Verified, evaluate, verify};
