//! The blue-green strategy (`strategy.blueGreen`): the new revision ("green") runs at full size
//! behind a preview Service while the active Service keeps selecting the stable revision
//! ("blue"); after the optional pre-promotion analyses and a manual or automatic switch the
//! active Service's selector moves to green, the optional post-promotion analyses judge it (a
//! failure switches the selector back at once: blue is still at full size), and blue is scaled
//! down `scaleDownDelaySeconds` after the rollout finished. The decision path is the canary's
//! (`core::rollout::bluegreen` reads this strategy as canary steps), so attestation, preflight,
//! health gates, freeze and bake governance and coupled components apply unchanged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::DNS_LABEL_PATTERN;

/// The suffix of the default active Service name (`<name>-active`).
pub const ACTIVE_SUFFIX: &str = "-active";
/// The suffix of the default preview Service name (`<name>-preview`).
pub const PREVIEW_SUFFIX: &str = "-preview";
/// How long the old revision keeps its pods after a rollout finished, by default (Argo
/// Rollouts' `scaleDownDelaySeconds` default).
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// The longest `scaleDownDelaySeconds` (one hour: the old revision holds a full set of pods).
pub const MAX_SCALE_DOWN_DELAY_SECONDS: i32 = 3600;
/// The most analyses before (and after) the switch.
pub const MAX_PROMOTION_ANALYSES: usize = 8;

/// A blue-green rollout. Needs `spec.template` (the Services select the pods of one
/// component).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.autoPromotionSeconds) || !has(self.autoPromotionEnabled) || self.autoPromotionEnabled",
     "message": "autoPromotionSeconds switches automatically: it cannot be combined with autoPromotionEnabled: false (a manual switch)"},
    {"rule": "!has(self.prePromotionAnalysis) || !has(self.postPromotionAnalysis) || self.prePromotionAnalysis.all(t, !(t in self.postPromotionAnalysis))",
     "message": "a template cannot be both a pre- and a post-promotion analysis (their results would share one gate): declare a copy under another name"},
]))]
pub struct BlueGreenStrategy {
    /// Name of the Service (created and owned by the operator) that serves production: it
    /// selects the stable revision, and the new one from the switch on. Default
    /// `<name>-active`. Point your Ingress, Gateway or clients at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = service_name_rules("activeService")))]
    pub active_service: Option<String>,
    /// Name of the Service (created and owned by the operator) that selects the new revision
    /// before the switch (the stable one when no rollout runs). Default `<name>-preview`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = service_name_rules("previewService")))]
    pub preview_service: Option<String>,
    /// The port both Services expose (1 to 65535). Default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The container port the Services send to (1 to 65535). Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
    /// Analysis templates (entries of `spec.analyses`) run, one after the other, on the new
    /// revision at full size behind the preview Service, before the switch. A failure reverts:
    /// the active Service never selected the new revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "template_list_schema")]
    pub pre_promotion_analysis: Vec<String>,
    /// Whether the switch happens without a person (default true). `false`: the rollout
    /// pauses before the switch until a user promotes it (`kubectl safedeploy promote`, the
    /// actor is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Switch automatically this many seconds (1 to 86400) after the new revision is ready and
    /// the pre-promotion analyses passed; a promote switches earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub auto_promotion_seconds: Option<i32>,
    /// Analysis templates run, one after the other, after the switch. A failure switches the
    /// active Service back to the old revision at once (it keeps its full size until these
    /// passed) and records the revert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "template_list_schema")]
    pub post_promotion_analysis: Vec<String>,
    /// How long (0 to 3600 seconds, default 30) the revision the active Service stopped
    /// selecting keeps its pods after the rollout finished (promoted or reverted), so clients
    /// and proxies that still hold its endpoints are served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many pods below the desired count the workload may have while scaling (0 to
    /// 10000, default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_unavailable: Option<i32>,
}

impl BlueGreenStrategy {
    /// The active Service's name for the SafeDeployment `name`.
    pub fn active_service_name(&self, name: &str) -> String {
        self.active_service
            .clone()
            .unwrap_or_else(|| format!("{name}{ACTIVE_SUFFIX}"))
    }

    /// The preview Service's name for the SafeDeployment `name`.
    pub fn preview_service_name(&self, name: &str) -> String {
        self.preview_service
            .clone()
            .unwrap_or_else(|| format!("{name}{PREVIEW_SUFFIX}"))
    }

    /// The scale-down delay of the old revision, in seconds (bounded, whatever is stored).
    pub fn scale_down_delay(&self) -> std::time::Duration {
        let seconds = self
            .scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS)
            .clamp(0, MAX_SCALE_DOWN_DELAY_SECONDS);
        std::time::Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }
}

/// The rules of a Service name field: a DNS label (Service names are).
fn service_name_rules(field: &str) -> serde_json::Value {
    serde_json::json!([
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"),
         "message": format!("blueGreen.{field} must be a lowercase DNS label (a-z, 0-9 and '-'), as Service names are")},
    ])
}

/// A list of analysis template names: at most 8, each named once (a set), each 1 to 63
/// characters (the bounds keep the CEL rules that read it within the cost budget).
fn template_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": MAX_PROMOTION_ANALYSES,
        "x-kubernetes-list-type": "set",
        "items": {"type": "string", "minLength": 1, "maxLength": 63},
    })
}
