//! Every label, annotation and request name of the operator's API in one place: the keys it sets
//! on the objects it owns (ReplicaSets, pods, configuration copies) and the annotations a user
//! (or `kubectl safedeploy`) sets on a SafeDeployment to ask for something. They are part of the
//! API as much as the CRD fields are: dashboards, queries and scripts select on them.

/// Label on every object the operator owns: the SafeDeployment's name.
pub const LABEL_NAME: &str = "safedeploy.dev/name";
/// Label with the revision hash, on ReplicaSets and their pods.
pub const LABEL_REVISION: &str = "safedeploy.dev/revision";
/// Label with the component name, on ReplicaSets and their pods.
pub const LABEL_COMPONENT: &str = "safedeploy.dev/component";
/// Label marking the fresh baseline's ReplicaSets and pods: its value is [`ROLE_BASELINE`].
/// Revision ReplicaSets do not carry it.
pub const LABEL_ROLE: &str = "safedeploy.dev/role";
/// Value of [`LABEL_ROLE`] on the fresh baseline.
pub const ROLE_BASELINE: &str = "baseline";
/// Label with the hash of the stable revision a baseline ReplicaSet runs the template of.
pub const LABEL_BASELINE_OF: &str = "safedeploy.dev/baseline-of";
/// On a ReplicaSet whose revision was rejected (reverted): the rejection lives in the cluster, not
/// only in status, so a lost or recreated status never rolls that revision out again. The value
/// is informational ("true").
pub const ANNOTATION_REJECTED: &str = "safedeploy.dev/rejected";
/// Annotation with the revision number, on ReplicaSets.
pub const ANNOTATION_REVISION_NUMBER: &str = "safedeploy.dev/revision-number";

/// Label `"true"` on every configuration copy the operator makes.
pub const LABEL_CONFIG_COPY: &str = "safedeploy.dev/config-copy";
/// Label (when the name fits a label value) and annotation with the original object's name.
pub const LABEL_ORIGINAL: &str = "safedeploy.dev/original";
/// ReplicaSet annotation: the configuration digests of its revision, as canonical JSON
/// `{"configmap/NAME":"sha256:…",…}`. With the spec it reproduces the revision hash, so an
/// unchanged SafeDeployment at rest needs no read of its ConfigMaps and Secrets.
pub const ANNOTATION_CONFIG_OBJECTS: &str = "safedeploy.dev/config-objects";
/// ReplicaSet annotation: the `resourceVersion` of every referenced object that existed when
/// its digests were last read, as canonical JSON `{"configmap/NAME":"12345",…}`. While the
/// metadata caches show the same versions, the digests still hold and nothing is read; any
/// edit (or a deletion, or a referenced object appearing) makes the operator read again.
pub const ANNOTATION_CONFIG_VERSIONS: &str = "safedeploy.dev/config-versions";

/// Annotation asking to promote past the current step; its value is a unique token.
pub const REQUEST_PROMOTE: &str = "safedeploy.dev/promote";
/// Annotation asking to promote past every remaining step.
pub const REQUEST_PROMOTE_FULL: &str = "safedeploy.dev/promote-full";
/// Annotation asking to abort (revert) the canary.
pub const REQUEST_ABORT: &str = "safedeploy.dev/abort";
/// Annotation asking to retry a rejected revision.
pub const REQUEST_RETRY: &str = "safedeploy.dev/retry";
/// Annotation asking to roll back: `<revision number>/<token>`.
pub const REQUEST_ROLLBACK: &str = "safedeploy.dev/rollback";
/// Annotation that pauses the rollout while `"true"`.
pub const ANNOTATION_PAUSED: &str = "safedeploy.dev/paused";

/// Annotation asking to let the rollout move during a freeze: JSON
/// `{"user": "...", "reason": "...", "expires": "<RFC 3339>"}` ([`super::freeze::BreakGlass`]).
/// Admission checks that `user` is the requester and holds the break-glass verb.
pub const REQUEST_BREAK_GLASS: &str = "safedeploy.dev/break-glass";
/// Label on a SafeDeploymentPolicy: `Deny` makes the chart's admission policy deny a
/// SafeDeployment that violates the policy's `requirements`; otherwise it warns.
pub const LABEL_REQUIREMENTS_ADMISSION: &str = "safedeploy.dev/requirements-admission";
