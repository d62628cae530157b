//! Reading a pod's status as the tests need it: conditions, phase, crashes and restarts, and
//! start-up latency as the operator measures it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// The status of the pod's condition `type_`, if present.
pub fn condition_status(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    condition_status(pod, "Ready").as_deref() == Some("True")
}

/// The pod's phase (empty if unknown).
pub fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Whether the pod's first container has crashed: it exited with an error (and is not started
/// again yet) or has been restarted. The crash reaches the API server with the exit, before the
/// kubelet's restart raises `restartCount`.
pub fn crashed(pod: &Pod) -> bool {
    let exited_with_error = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|state| state.terminated.as_ref())
        .is_some_and(|t| t.exit_code != 0);
    exited_with_error || restart_count(pod) > 0
}

/// The restart count of the pod's first container.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .map_or(0, |c| c.restart_count)
}

/// The reason the pod's first container is waiting, if it is.
pub fn waiting_reason(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

/// Start-up latency as the operator measures it: creationTimestamp to the Ready condition's
/// lastTransitionTime (None unless Ready).
pub fn ready_latency(pod: &Pod) -> Option<Duration> {
    if !is_ready(pod) {
        return None;
    }
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()?
        .0;
    Duration::try_from(ready.duration_since(created)).ok()
}
