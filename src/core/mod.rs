//! The pure core of the rollout: from (spec, status, observed ReplicaSets and pods, now) to
//! actions and a new status. No I/O here.

pub mod config;
pub mod duration;
pub mod health;
pub mod preflight;
pub mod revision;
pub mod rollout;
