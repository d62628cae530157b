//! The timeline a replay prints: what the operator would have done, in order (its events, each
//! measurement with value, thresholds and verdict, each analysis run's end), and the outcome.
//! Plain data, serialized as the `--output json` form.

use serde::Serialize;

use crate::api::Phase;
use crate::api::analysis::MetricVerdict;

/// The timeline of a replay: what the operator would have done, in order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// The SafeDeployment's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The revision label queried as the canary.
    pub canary_revision: String,
    /// The revision label queried as the stable.
    pub stable_revision: String,
    /// Start of the range (the canary starts here).
    pub from: String,
    /// End of the range.
    pub to: String,
    /// What was simulated rather than replayed.
    pub assumptions: Vec<String>,
    /// Everything that happened, in order.
    pub entries: Vec<Entry>,
    /// How it ended.
    pub outcome: Outcome,
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When (RFC 3339).
    pub at: String,
    /// Seconds after `from`.
    pub offset_seconds: f64,
    /// What.
    #[serde(flatten)]
    pub what: What,
}

/// What happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum What {
    /// The rollout's own event (the operator records it as a Kubernetes Event).
    #[serde(rename_all = "camelCase")]
    Event {
        /// The event reason (`CanaryStarted`, `StepCompleted`, `Reverted`, …).
        reason: String,
        /// Whether it is a Warning.
        warning: bool,
        /// The operator's note.
        note: String,
        /// The canary step index (1-based) and weight after the decision.
        step: Option<i32>,
        /// The canary's weight after the decision.
        weight: i32,
    },
    /// One metric measured.
    #[serde(rename_all = "camelCase")]
    Measurement(MeasurementEntry),
    /// An analysis run ended.
    #[serde(rename_all = "camelCase")]
    RunEnded {
        /// Template.
        template: String,
        /// `Successful`, `Failed`, `Error` or `Inconclusive`.
        phase: String,
        /// Why.
        message: String,
    },
}

/// One measurement of one metric.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementEntry {
    /// Template.
    pub template: String,
    /// The step the run gates (1-based); none for the background analysis.
    pub step: Option<i32>,
    /// The measurement's number in its run (1-based).
    pub number: i32,
    /// Metric.
    pub metric: String,
    /// The canary's value (finite values only).
    pub value: Option<f64>,
    /// The baseline's value, when compared.
    pub baseline: Option<f64>,
    /// The thresholds it was judged against, as status shows them.
    pub threshold: String,
    /// The verdict.
    pub verdict: MetricVerdict,
    /// The run's score after this measurement.
    pub score: Option<f64>,
    /// The judge's and the policies' message.
    pub message: Option<String>,
}

/// How a replay ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// `Promoted`, `Reverted`, `WaitingForHuman`, `Blocked` or `RangeEnded`.
    pub result: String,
    /// When (RFC 3339).
    pub at: String,
    /// Seconds after `from`.
    pub offset_seconds: f64,
    /// Why, in the operator's words.
    pub reason: String,
    /// The rollout's phase at the end.
    pub phase: Phase,
    /// Measurements taken, all templates together.
    pub measurements: usize,
    /// The measurements that did not pass in the last measured instant before a revert (the
    /// metric, value and thresholds that caused it); empty otherwise.
    pub failing: Vec<MeasurementEntry>,
    /// Measurements in which a provider could not give a value.
    pub provider_errors: usize,
}
