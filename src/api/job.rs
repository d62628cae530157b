//! The spec of the `job` analysis provider: the Job a measurement runs (a pod template and a
//! deadline) and its admission bounds. How a Job is built, named and judged is in
//! `analysis::provider::job`; the controller creates and reads the Jobs.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{SpecDuration, duration_rules};
use super::rules::label_rules;
use super::safedeployment::pod_spec_schema;

/// Runs a Kubernetes Job per measurement (a smoke or load test against the canary) and judges
/// its exit: a Job that completes passes, a Job that fails is critical, a Job that runs past
/// its deadline is a provider error (the metric's `onError` decides). The Job runs in the
/// SafeDeployment's namespace, owned by it, with `backoffLimit: 0`; its containers get the
/// canary's revision and name in `SAFEDEPLOY_*` environment variables. A job metric sets no
/// thresholds, relative, statistical, outliers or minimumTraffic: the exit is the verdict.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesJobProvider {
    /// The pod template of the Job (core/v1 PodTemplateSpec); its `restartPolicy` is set to
    /// `Never`.
    #[schemars(schema_with = "job_template_schema")]
    pub template: PodTemplateSpec,
    /// How long the Job may run (its `activeDeadlineSeconds`), from 1s to 1h. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("job.deadline", "30s or 10m", "1s", "1h")))]
    pub deadline: Option<SpecDuration>,
}

impl KubernetesJobProvider {
    /// The deadline as a duration; `None` when unset or unreadable (admission refuses an
    /// unreadable one; the default then applies).
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline.as_ref().and_then(|d| d.parse().ok())
    }
}

/// A compact, bounded schema for the Job's pod template: containers with a name and an image
/// are checked here, the rest by the API server when the Job is created (the full generated
/// schema would make the CRD too large).
fn job_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "The Job's pod template (core/v1 PodTemplateSpec).",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {
                    "labels": {
                        "type": "object", "maxProperties": 64,
                        "additionalProperties": {"type": "string", "maxLength": 63},
                        "x-kubernetes-validations": label_rules("job template label"),
                    },
                    "annotations": {
                        "type": "object", "maxProperties": 64,
                        "additionalProperties": {"type": "string", "maxLength": 4096},
                        "x-kubernetes-validations": [
                            {"rule": "self.all(k, k.size() <= 317)", "message": "job template annotation keys must be at most 317 characters"},
                        ],
                    }
                }
            },
            "spec": pod_spec_schema()
        }
    })
}
