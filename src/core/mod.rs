//! The pure core of the rollout: from (spec, status, observed ReplicaSets and pods, now) to
//! actions and a new status. No I/O here.

pub mod duration;
pub mod health;
pub mod revision;
pub mod rollout;
