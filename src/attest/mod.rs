//! Local-validation attestations: in-toto Statements in DSSE envelopes, their signing, and their
//! verification against a `SafeDeploymentPolicy` (pure, failing closed, one reason per failure).

pub mod cli;
