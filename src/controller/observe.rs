//! Turns Kubernetes objects into the plain views the core decides on (pods, ReplicaSets, manual
//! requests), and trims cached objects to what those views need.

use kube::ResourceExt;

use super::cached::{CachedReplicaSet, OwnedReplicaSet, WatchedPod};
use crate::api::health::{FAILING_REASONS, PodView};
use crate::api::labels::{
    ANNOTATION_PAUSED, LABEL_COMPONENT, LABEL_REVISION, LABEL_ROLE, REQUEST_ABORT, REQUEST_PROMOTE,
    REQUEST_PROMOTE_FULL, REQUEST_RETRY, REQUEST_ROLLBACK, ROLE_BASELINE, request_payload,
    requester,
};
use crate::core::rollout::{ReplicaSetView, Requests};

/// Reads the manual requests from a SafeDeployment's annotations.
pub fn requests(annotations: &std::collections::BTreeMap<String, String>) -> Requests {
    let token = |key: &str| annotations.get(key).filter(|v| !v.is_empty()).cloned();
    let rollback = annotations.get(REQUEST_ROLLBACK).and_then(|value| {
        let (number, token) = value.split_once('/')?;
        Some((value.clone(), number.trim().parse::<i64>().ok()?)).filter(|_| !token.is_empty())
    });
    Requests {
        promote: token(REQUEST_PROMOTE),
        promote_full: token(REQUEST_PROMOTE_FULL),
        abort: token(REQUEST_ABORT),
        retry: token(REQUEST_RETRY),
        rollback,
        paused: annotations
            .get(ANNOTATION_PAUSED)
            .is_some_and(|v| request_payload(v) == "true"),
        pause_requester: annotations
            .get(ANNOTATION_PAUSED)
            .and_then(|v| requester(v)),
        pause_annotation: annotations.get(ANNOTATION_PAUSED).cloned(),
    }
}

/// Whether these labels mark a fresh baseline ReplicaSet or pod (not a revision's).
pub fn is_baseline(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(LABEL_ROLE).map(String::as_str) == Some(ROLE_BASELINE)
}

/// The view of an owned revision ReplicaSet, or None when it lacks the operator's labels or is a
/// fresh baseline (see [`baseline_replica_set_view`]).
pub fn replica_set_view(rs: &OwnedReplicaSet) -> Option<ReplicaSetView> {
    if rs.baseline {
        return None;
    }
    view(rs, rs.revision.as_ref()?)
}

/// The view of an owned fresh baseline ReplicaSet, its `revision` being the stable revision
/// whose template it runs; None for anything else.
pub fn baseline_replica_set_view(rs: &OwnedReplicaSet) -> Option<ReplicaSetView> {
    if !rs.baseline {
        return None;
    }
    view(rs, rs.baseline_of.as_ref()?)
}

fn view(rs: &OwnedReplicaSet, revision: &str) -> Option<ReplicaSetView> {
    Some(ReplicaSetView {
        name: rs.name.clone(),
        revision: revision.to_string(),
        component: rs.component.clone()?,
        replicas: rs.replicas,
        // Available (Ready for minReadySeconds), not merely Ready: only those count as capacity.
        ready: rs.available_replicas,
        rejected: rs.rejected,
    })
}

/// The view of a pod, or None when it lacks the operator's labels or a creation time.
pub fn pod_view(pod: &WatchedPod) -> Option<PodView> {
    let labels = pod.labels();
    let status = pod.status.as_ref();
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let ready_at = ready_condition
        .filter(|_| ready)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten();
    let init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten();
    let mut restarts = 0;
    let mut failing = 0;
    for container in containers.chain(init) {
        restarts += container.restart_count;
        let waiting = container
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref());
        let last_terminated = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.reason.as_deref());
        // A container that has exited with an error and not been started again yet is a
        // restart already: the kubelet writes this state first and raises restartCount only
        // when it starts the container again, up to a back-off later (a loaded node adds
        // seconds; the soak promoted bad canaries inside that gap). Counted now, the value does
        // not change when the restart lands.
        let terminated = container.state.as_ref().and_then(|s| s.terminated.as_ref());
        if terminated.is_some_and(|t| t.exit_code != 0) {
            restarts += 1;
        }
        let is_failing =
            |reason: Option<&str>| reason.is_some_and(|r| FAILING_REASONS.contains(&r));
        if is_failing(waiting)
            || last_terminated == Some("OOMKilled")
            || terminated.and_then(|t| t.reason.as_deref()) == Some("OOMKilled")
        {
            failing += 1;
        }
    }
    Some(PodView {
        name: pod.name_any(),
        revision: labels.get(LABEL_REVISION)?.clone(),
        component: labels.get(LABEL_COMPONENT)?.clone(),
        created_at: pod.metadata.creation_timestamp.as_ref()?.0,
        ready,
        ready_at,
        restarts,
        failing_containers: failing,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// Drops `managedFields` from a watched ReplicaSet (its pod template is never deserialized, see
/// [`CachedReplicaSet`]; the cache keeps an [`OwnedReplicaSet`] of it).
pub fn trim_replica_set(rs: &mut CachedReplicaSet) {
    rs.metadata.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::labels::LABEL_BASELINE_OF;
    use std::collections::BTreeMap;

    #[test]
    fn requests_are_read_from_annotations() {
        let annotations = BTreeMap::from([
            (REQUEST_PROMOTE.to_string(), "t1".to_string()),
            (REQUEST_ROLLBACK.to_string(), "3/t2".to_string()),
            (ANNOTATION_PAUSED.to_string(), "true".to_string()),
            (REQUEST_ABORT.to_string(), String::new()),
        ]);
        let requests = requests(&annotations);
        assert_eq!(requests.promote.as_deref(), Some("t1"));
        assert_eq!(requests.rollback, Some(("3/t2".to_string(), 3)));
        assert!(requests.paused);
        assert_eq!(requests.abort, None);
    }

    #[test]
    fn requests_name_their_requester() {
        let annotations = BTreeMap::from([
            (REQUEST_ROLLBACK.to_string(), "3/t2@alice".to_string()),
            (
                ANNOTATION_PAUSED.to_string(),
                "true@bob@example.com".to_string(),
            ),
        ]);
        let read = requests(&annotations);
        assert_eq!(read.rollback, Some(("3/t2@alice".to_string(), 3)));
        assert!(read.paused);
        assert_eq!(read.pause_requester.as_deref(), Some("bob@example.com"));
        let resumed = BTreeMap::from([(ANNOTATION_PAUSED.to_string(), "false@carol".to_string())]);
        let read = requests(&resumed);
        assert!(!read.paused);
        assert_eq!(read.pause_requester.as_deref(), Some("carol"));
        // The raw value, which the decision compares with the one it last saw.
        assert_eq!(read.pause_annotation.as_deref(), Some("false@carol"));
        assert_eq!(requests(&BTreeMap::new()).pause_annotation, None);
    }

    #[test]
    fn malformed_rollback_requests_are_ignored() {
        for value in ["three/t", "3", "3/"] {
            let annotations = BTreeMap::from([(REQUEST_ROLLBACK.to_string(), value.to_string())]);
            assert_eq!(requests(&annotations).rollback, None, "{value}");
        }
    }

    #[test]
    fn baseline_replica_sets_are_told_apart_from_revisions() {
        let rs = |labels: serde_json::Value| -> OwnedReplicaSet {
            OwnedReplicaSet::of(
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "web-abc-baseline", "labels": labels},
                    "spec": {"replicas": 2, "selector": {}},
                    "status": {"replicas": 2, "availableReplicas": 1}
                }))
                .unwrap(),
            )
        };
        let baseline = rs(serde_json::json!({
            LABEL_REVISION: "abc-baseline", LABEL_COMPONENT: "main",
            LABEL_ROLE: ROLE_BASELINE, LABEL_BASELINE_OF: "abc"
        }));
        assert_eq!(replica_set_view(&baseline), None);
        let view = baseline_replica_set_view(&baseline).unwrap();
        assert_eq!(
            (view.revision.as_str(), view.replicas, view.ready),
            ("abc", 2, 1)
        );
        let revision = rs(serde_json::json!({LABEL_REVISION: "abc", LABEL_COMPONENT: "main"}));
        assert_eq!(baseline_replica_set_view(&revision), None);
        assert_eq!(replica_set_view(&revision).unwrap().revision, "abc");
    }

    #[test]
    fn pod_view_counts_restarts_and_failing_states() {
        let pod: WatchedPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z",
                          "labels": {LABEL_REVISION: "abc", LABEL_COMPONENT: "main"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                "containerStatuses": [
                    {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                    {"name": "b", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
                     "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
                ]
            }
        }))
        .unwrap();
        let view = pod_view(&pod).unwrap();
        assert_eq!(view.restarts, 3);
        assert_eq!(view.failing_containers, 2);
        assert!(!view.ready);
        assert_eq!(view.revision, "abc");
    }

    #[test]
    fn a_container_that_exited_with_an_error_counts_as_restarted_before_the_kubelet_restarts_it() {
        // The state a kubelet writes the moment a process exits 1, before it starts it again
        // (restartCount not raised yet); kwok's crash stage writes the same (tests/real_pods.rs).
        let exited = |restart_count: i32, exit_code: i32, reason: &str| -> WatchedPod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z",
                              "labels": {LABEL_REVISION: "abc", LABEL_COMPONENT: "main"}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:05Z"}],
                    "containerStatuses": [
                        {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": restart_count,
                         "state": {"terminated": {"exitCode": exit_code, "reason": reason}}}
                    ]
                }
            }))
            .unwrap()
        };
        let crashed = pod_view(&exited(0, 1, "Error")).unwrap();
        assert_eq!((crashed.restarts, crashed.failing_containers), (1, 0));
        // In a back-off after earlier restarts: the coming restart is counted, once.
        assert_eq!(pod_view(&exited(2, 1, "Error")).unwrap().restarts, 3);
        let killed = pod_view(&exited(0, 137, "OOMKilled")).unwrap();
        assert_eq!((killed.restarts, killed.failing_containers), (1, 1));
        // A clean exit is not a crash (a completed init container looks like this).
        assert_eq!(pod_view(&exited(0, 0, "Completed")).unwrap().restarts, 0);
    }
}
