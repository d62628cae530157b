//! The pure core of the rollout: from (spec, status, observed ReplicaSets and pods, now) to
//! actions and a new status. No I/O here.
//!
//! Everything here runs on tenants' data inside every reconcile, so a panic here would be one
//! tenant stopping the operator: `lib.rs` declares it
//! [`panic_free`]: its lints keep panicking operations out (tests aside).

pub mod adopt;
pub mod config;
pub mod failure;
pub mod freeze;
pub mod health;
pub mod notify;
pub mod preflight;
pub mod record;
pub mod requirements;
pub mod revision;
pub mod rollout;
pub mod routing;
pub mod shard;
pub mod status_budget;
pub mod workload;
