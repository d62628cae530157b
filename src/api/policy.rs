//! The cluster-scoped `SafeDeploymentPolicy`: what an admin requires of attestations in the
//! namespaces it selects (trusted keys, predicate, age, checks, metric bounds, size limits).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Trust policy for local-validation attestations.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "safedeploy.dev",
    version = "v1alpha1",
    kind = "SafeDeploymentPolicy",
    shortname = "sdp"
)]
#[serde(rename_all = "camelCase")]
pub struct SafeDeploymentPolicySpec {
    /// Namespaces this policy applies to, by name.
    #[serde(default)]
    pub namespaces: Vec<String>,
}
