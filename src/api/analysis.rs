//! Analysis templates (metrics, providers, thresholds, judgement) as they appear in a
//! SafeDeployment spec, and the bounded record of analysis runs kept in its status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A named set of metrics measured at an interval and judged together.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplate {
    /// Name that steps and `backgroundAnalysis` refer to.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// The state of one analysis run, kept in status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Template name.
    pub template: String,
}
