//! `SafeDeploymentRecord`: the durable audit trail. One write-once record per finished entry of a
//! rollout's history (a promotion, a revert, a manual action), created by the operator and kept
//! when the 20-entry `status.history` has moved on, Events have expired, or the SafeDeployment is
//! gone (records are not owned by it, so its deletion leaves them). The API server keeps the
//! spec unchangeable (CEL `self == oldSelf`); the chart's governance policy keeps writes and
//! deletions to the operator.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What one finished history entry recorded: who, what, when, why, and the measured values that
/// decided.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "safedeploy.dev",
    version = "v1alpha1",
    kind = "SafeDeploymentRecord",
    namespaced,
    shortname = "sdrecord",
    printcolumn = r#"{"name":"Rollout","type":"string","jsonPath":".spec.safeDeployment"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".spec.revision"}"#,
    printcolumn = r#"{"name":"Outcome","type":"string","jsonPath":".spec.outcome"}"#,
    printcolumn = r#"{"name":"By","type":"string","jsonPath":".spec.actor"}"#,
    printcolumn = r#"{"name":"Finished","type":"date","jsonPath":".spec.finishedAt"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf",
     "message": "a SafeDeploymentRecord is write-once: its spec cannot change (delete it and the audit trail loses it; the governance policy lets only the operator do that)"},
]))]
pub struct SafeDeploymentRecordSpec {
    /// The SafeDeployment it is a record of.
    #[schemars(length(min = 1, max = 253))]
    pub safe_deployment: String,
    /// Revision number.
    #[schemars(range(min = 0))]
    pub revision: i64,
    /// Revision hash.
    #[schemars(length(max = 64))]
    pub hash: String,
    /// Images by `component/container`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 512, "additionalProperties" = {"type": "string", "maxLength": 1024}))]
    pub images: BTreeMap<String, String>,
    /// The history outcome (`Promoted`, `Reverted`, `PromoteRequested`, …).
    #[schemars(length(min = 1, max = 64))]
    pub outcome: String,
    /// Why it ended, as the history said (cut at 4096 bytes).
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub reason: String,
    /// Who asked for it (a manual action); absent for what the operator decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub actor: Option<String>,
    /// When it started (RFC 3339).
    #[schemars(length(max = 64))]
    pub started_at: String,
    /// When it ended (RFC 3339).
    #[schemars(length(max = 64))]
    pub finished_at: String,
    /// The measured values that decided, as status showed them when it ended: each health
    /// signal and each analysis measurement of the revision's runs, with its verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(max = 512)))]
    pub measurements: Vec<String>,
}
