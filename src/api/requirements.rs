//! Rollout requirements beyond trust: the `requirements` field of a `SafeDeploymentPolicy` (a
//! minimum number of steps, a largest weight jump, a required background analysis or metric, a
//! minimum bake time, a fresh baseline in named namespaces).
//!
//! The operator checks them (`core::requirements`, pure) and nothing of a violating revision
//! rolls out; the chart's ValidatingAdmissionPolicy checks the same at `kubectl apply`, as a
//! warning or, on a policy labelled [`super::labels::LABEL_REQUIREMENTS_ADMISSION`]` = Deny`, a
//! denial.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{SpecDuration, duration_rules};
use super::rules::DNS_LABEL_PATTERN;

/// What every SafeDeployment in the selected namespaces must ask of its canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRequirements {
    /// At least this many `setWeight` steps, from 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub min_steps: Option<i32>,

    /// The largest weight increase from one `setWeight` step to the next, from 0 to the first
    /// and from the last to 100 (the promotion) included; from 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_weight_step: Option<i32>,

    /// Whether `strategy.canary.backgroundAnalysis` must be set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_background_analysis: bool,

    /// Metric names that the background analysis or a step's analysis must measure (not as
    /// `dryRun`), such as `error-rate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    pub required_metrics: Vec<String>,

    /// The least time the canary's timed `pause` steps must add up to, from 1m to 168h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("minBakeTime", "10m or 1h", "1m", "168h")))]
    pub min_bake_time: Option<SpecDuration>,

    /// Namespaces whose SafeDeployments must compare with a `Fresh` baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.all(n, n.matches('{DNS_LABEL_PATTERN}'))"), "message": "every requireFreshBaselineIn entry must be a namespace name (a lowercase DNS label)"},
    ]))]
    pub require_fresh_baseline_in: Vec<String>,
}
