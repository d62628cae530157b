//! Every label, annotation and request name of the operator's API in one place: the keys it sets
//! on the objects it owns (ReplicaSets, pods, configuration copies) and the annotations a user
//! (or `kubectl safedeploy`) sets on a SafeDeployment to ask for something. They are part of the
//! API as much as the CRD fields are: dashboards, queries and scripts select on them.

/// Label on every object the operator owns: the SafeDeployment's name.
pub const LABEL_NAME: &str = "safedeploy.dev/name";
/// Label naming the shard a SafeDeployment belongs to (`--shard` selects on it); the operator
/// copies it onto the ReplicaSets it creates and their pods, so each shard's watches see only
/// their own share.
pub const LABEL_SHARD: &str = "safedeploy.dev/shard";
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

/// Separates a request annotation's value from its requester: `<token>@<username>` (rollback:
/// `<number>/<token>@<username>`, pause: `true@<username>` or `false@<username>`). The requester
/// is everything after the first `@`, so usernames that hold an `@` (e-mail addresses) keep it.
/// With the chart's governance policies installed, the API server admits the value only when that
/// username is the writer's own, so it cannot be forged; without them it is what the writer
/// claims.
pub const REQUESTER_SEPARATOR: char = '@';

/// The longest requester the operator records; a longer one is cut (on a character boundary).
pub const MAX_REQUESTER_LENGTH: usize = 256;

/// A request annotation's value for `payload` asked for by `username`.
pub fn with_requester(payload: &str, username: &str) -> String {
    format!("{payload}{REQUESTER_SEPARATOR}{username}")
}

/// The request itself: the value without its requester.
pub fn request_payload(value: &str) -> &str {
    value
        .split_once(REQUESTER_SEPARATOR)
        .map_or(value, |(payload, _)| payload)
}

/// The requester a request annotation's value names, if any, at most
/// [`MAX_REQUESTER_LENGTH`] bytes long.
pub fn requester(value: &str) -> Option<String> {
    let (_, name) = value.split_once(REQUESTER_SEPARATOR)?;
    if name.is_empty() {
        return None;
    }
    let mut end = name.len().min(MAX_REQUESTER_LENGTH);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).map(str::to_string)
}

/// Annotation asking to let the rollout move during a freeze until a time:
/// `<expires, RFC 3339>@<username>` (see [`with_requester`]). With the chart's governance
/// policies, admission checks that the username is the writer's own and that the writer holds
/// the RBAC verb `create` on `safedeployments/break-glass`. The reason is in
/// [`REQUEST_BREAK_GLASS_REASON`]; the operator refuses an override without one.
pub const REQUEST_BREAK_GLASS: &str = "safedeploy.dev/break-glass";
/// Annotation with the free-text reason of a break-glass request (required; at most
/// `core::freeze::MAX_BREAK_GLASS_REASON_LENGTH` bytes).
pub const REQUEST_BREAK_GLASS_REASON: &str = "safedeploy.dev/break-glass-reason";
/// Label on a SafeDeploymentPolicy: `Deny` makes the chart's admission policy deny a
/// SafeDeployment that violates the policy's `requirements`; otherwise it warns.
pub const LABEL_REQUIREMENTS_ADMISSION: &str = "safedeploy.dev/requirements-admission";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_is_everything_after_the_first_separator() {
        assert_eq!(requester("123@alice").as_deref(), Some("alice"));
        assert_eq!(
            requester("3/123@alice@example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(request_payload("3/123@alice@example.com"), "3/123");
        assert_eq!(request_payload("true"), "true");
        assert_eq!(requester("123"), None);
        assert_eq!(requester("123@"), None);
        assert_eq!(with_requester("true", "bob"), "true@bob");
    }

    #[test]
    fn a_huge_requester_is_cut_on_a_character_boundary() {
        let long = format!("t@{}", "é".repeat(MAX_REQUESTER_LENGTH));
        let cut = requester(&long).unwrap_or_default();
        assert!(cut.len() <= MAX_REQUESTER_LENGTH);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
