//! `spec.workloadRef`: a SafeDeployment that adopts a running Deployment instead of carrying a
//! template, and the marks the operator leaves on an adopted Deployment (a label that its watch
//! selects on, the replica count it had, the finalizer that hands it back on deletion).
//! What adoption decides lives in `core::adopt`; the writes in `controller::adoption`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label on an adopted Deployment: the name of the SafeDeployment that adopted it (same
/// namespace). The operator watches Deployments by this label only.
pub const LABEL_ADOPTED_BY: &str = "safedeploy.dev/adopted-by";
/// Annotation on an adopted Deployment: its `spec.replicas` before the operator scaled it, which
/// the operator scales it back to when the SafeDeployment is deleted.
pub const ANNOTATION_ORIGINAL_REPLICAS: &str = "safedeploy.dev/original-replicas";
/// Finalizer on a SafeDeployment that adopted a Deployment: deleting the SafeDeployment first
/// scales the Deployment back up and waits until its pods are available, so its own pods (the
/// garbage collector removes them with the SafeDeployment) go only once the Deployment serves.
pub const ADOPTION_FINALIZER: &str = "safedeploy.dev/adoption";

/// A running workload the SafeDeployment takes over: its pod template is the SafeDeployment's
/// (each change of it is a new revision, rolled out in canary steps), and the operator scales it
/// down as its own pods take over.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `apps/v1` (the default, and the only one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == 'apps/v1'", "message": "workloadRef.apiVersion must be apps/v1"},
    ]))]
    pub api_version: Option<String>,
    /// `Deployment` (the only kind that can be adopted).
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == 'Deployment'", "message": "workloadRef.kind must be Deployment: only a Deployment can be adopted"},
    ]))]
    pub kind: String,
    /// The Deployment's name, in the SafeDeployment's namespace. It cannot change: delete the
    /// SafeDeployment (which hands the Deployment back) and create another.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')", "message": "workloadRef.name must be a lowercase DNS subdomain"},
        {"rule": "self == oldSelf", "message": "workloadRef.name cannot change: delete the SafeDeployment (the Deployment is scaled back up) and create another"},
    ]))]
    pub name: String,
    /// When the Deployment's own pods go: `Never` (it keeps its replicas; scale it yourself),
    /// `OnSuccess` (scaled to zero once the first revision is available in full) or
    /// `Progressively` (the default: scaled down by one pod for every pod of the SafeDeployment
    /// that is available, so the two together never serve fewer pods than before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScaleDown>,
}

impl WorkloadRef {
    /// `scaleDown`, defaulted.
    pub fn scale_down(&self) -> ScaleDown {
        self.scale_down.unwrap_or_default()
    }
}

/// When an adopted Deployment is scaled down.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ScaleDown {
    /// Never: the Deployment keeps its replicas.
    Never,
    /// To zero once the SafeDeployment's first revision is stable and available in full.
    OnSuccess,
    /// Pod by pod as the SafeDeployment's pods become available.
    #[default]
    Progressively,
}

impl ScaleDown {
    /// The spelling in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleDown::Never => "Never",
            ScaleDown::OnSuccess => "OnSuccess",
            ScaleDown::Progressively => "Progressively",
        }
    }
}
