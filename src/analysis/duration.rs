//! The duration strings of analysis templates (`interval`, `initialDelay`, `duration`, provider
//! `timeout`, `range.window`, `range.step`): the one parser of the crate,
//! [`crate::core::duration`], re-exported under its old path so that the provider code keeps
//! compiling unchanged (its import can move to `crate::core::duration` and this module go).

pub use crate::core::duration::{InvalidDuration, parse_duration};
