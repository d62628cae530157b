//! The scale subresource on the real API server: `kubectl scale safedeployment/web` in the middle
//! of a canary and in the middle of a revert, with the Ready capacity sampled through each
//! (a watch on the ReplicaSets); a GitOps apply that leaves `spec.replicas` out keeps the scaled
//! count; and, on a cluster with the resource metrics API (`e2e/cluster.sh up
//! --with-metrics-server`), a real HorizontalPodAutoscaler of the kube-controller-manager scaling
//! a SafeDeployment up during a canary (`tests/autoscaling/hpa.rs`).

mod common;
mod operator;

#[path = "autoscaling/hpa.rs"]
mod hpa;

use std::time::Duration;

use common::{Fault, ReadyCapacityWatch, TestNamespace, kubectl_run};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use operator::{annotate, apply, apply_stable, safe_deployment, setup, wait_status};
use safedeploy::api::labels::{LABEL_REVISION, REQUEST_ABORT};
use safedeploy::api::{Phase, SafeDeploymentStatus};
use serde_json::{Value, json};

pub(crate) const NAME: &str = "web";

/// A first step at 25 %, then a pause until promoted: the canary holds there.
pub(crate) fn holding_steps() -> Value {
    json!([{"setWeight": 25}, {"pause": {}}])
}

/// `(replicas, ready)` of each revision's ReplicaSet, by revision hash.
pub(crate) async fn revision_sizes(ns: &TestNamespace, revision: &str) -> (i32, i32) {
    let replica_sets: Vec<ReplicaSet> = ns.replica_sets().await;
    replica_sets
        .iter()
        .filter(|rs| rs.labels().get(LABEL_REVISION).map(String::as_str) == Some(revision))
        .filter(|rs| !rs.labels().contains_key("safedeploy.dev/role"))
        .fold((0, 0), |(replicas, ready), rs| {
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let status = rs
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            (replicas + spec, ready + status)
        })
}

/// Asks for an abort and waits until the canary is reverted.
pub(crate) async fn abort_and_wait_reverted(ns: &TestNamespace) {
    annotate(ns, NAME, REQUEST_ABORT, "a1")
        .await
        .expect("request the abort");
    wait_status(
        ns,
        NAME,
        Duration::from_secs(30),
        "the abort to revert the canary",
        |s| s.phase == Phase::Degraded,
    )
    .await;
}

/// Waits until `revision` runs exactly `replicas` pods, all Ready.
pub(crate) async fn wait_sized(ns: &TestNamespace, revision: &str, replicas: i32, what: &str) {
    common::wait_until(Duration::from_secs(60), what, || async move {
        let (sized, ready) = revision_sizes(ns, revision).await;
        Ok((sized == replicas && ready == replicas).then_some(()))
    })
    .await;
}

/// `kubectl scale safedeployment/<NAME> --replicas <n>`: the scale subresource.
async fn kubectl_scale(ns: &TestNamespace, replicas: i32) {
    let count = format!("--replicas={replicas}");
    let target = format!("safedeployment/{NAME}");
    let run = kubectl_run(&["scale", "-n", &ns.name, &target, &count], None).await;
    assert!(run.ok, "kubectl scale failed: {}", run.stderr);
}

/// The scale subresource as the API server serves it (what an HPA reads).
async fn scale_of(ns: &TestNamespace) -> Value {
    let path = format!(
        "/apis/safedeploy.dev/v1alpha1/namespaces/{}/safedeployments/{NAME}/scale",
        ns.name
    );
    let run = kubectl_run(&["get", "--raw", &path], None).await;
    assert!(run.ok, "GET {path}: {}", run.stderr);
    serde_json::from_str(&run.stdout).expect("a Scale object")
}

/// A stable v1 at 4 replicas and a canary of v2 holding at 25 % (1 canary pod, 3 stable).
/// `stable_fault` is the stable template's (slow start-up makes a revert take a while).
async fn holding_canary(ns: &TestNamespace, stable_fault: Fault) -> (String, String) {
    let v1 = safe_deployment(
        NAME,
        4,
        "registry.local/app:v1",
        stable_fault,
        holding_steps(),
    );
    let stable = apply_stable(ns, &v1)
        .await
        .stable_revision
        .expect("a stable revision");
    let mut v2 = safe_deployment(
        NAME,
        4,
        "registry.local/app:v2",
        Fault::None,
        holding_steps(),
    );
    // Never an empty annotations map: the API server takes an applied `{}` there for null.
    v2["spec"]["template"]["metadata"]["annotations"]["example.com/release"] = json!("v2");
    apply(ns, &v2).await.expect("apply v2");
    let status = wait_status(
        ns,
        NAME,
        Duration::from_secs(60),
        "the canary to hold at its pause",
        |s| s.phase == Phase::Paused && s.current_step_index == Some(1),
    )
    .await;
    let canary = status.canary_revision.expect("a canary revision");
    wait_sized(ns, &canary, 1, "1 canary pod").await;
    wait_sized(ns, &stable, 3, "3 stable pods").await;
    (stable, canary)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh up)"]
async fn kubectl_scale_mid_canary_resizes_both_revisions_in_proportion() {
    let (ns, _operator) = setup("scale-canary").await;
    let (stable, canary) = holding_canary(&ns, Fault::None).await;

    // The scale subresource serves the spec's count, the pods and the selector an HPA reads.
    let scale = scale_of(&ns).await;
    assert_eq!(scale["spec"]["replicas"], 4, "{scale}");
    assert_eq!(scale["status"]["replicas"], 4, "{scale}");
    assert_eq!(
        scale["status"]["selector"],
        format!("app={NAME},safedeploy.dev/name={NAME},safedeploy.dev/role notin (baseline)"),
        "{scale}"
    );

    let watch = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    kubectl_scale(&ns, 8).await;
    wait_sized(&ns, &canary, 2, "2 canary pods (25 % of 8)").await;
    wait_sized(&ns, &stable, 6, "6 stable pods").await;
    let (lowest_up, states_up) = watch.finish().await;
    assert!(
        lowest_up >= 4,
        "Ready capacity fell to {lowest_up} while scaling 4 -> 8 ({states_up} states)"
    );

    let watch = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    kubectl_scale(&ns, 4).await;
    wait_sized(&ns, &canary, 1, "1 canary pod (25 % of 4)").await;
    wait_sized(&ns, &stable, 3, "3 stable pods").await;
    let (lowest_down, states_down) = watch.finish().await;
    assert!(
        lowest_down >= 4,
        "Ready capacity fell to {lowest_down} while scaling 8 -> 4 ({states_down} states)"
    );
    println!(
        "lowest Ready capacity: {lowest_up} scaling 4 -> 8 ({states_up} states), \
         {lowest_down} scaling 8 -> 4 ({states_down} states)"
    );

    // The rollout held where it was: same canary, same step, no revert.
    let status: SafeDeploymentStatus = wait_status(
        &ns,
        NAME,
        Duration::from_secs(10),
        "the status to show 4 pods",
        |s| s.replicas == Some(4),
    )
    .await;
    assert_eq!(status.phase, Phase::Paused);
    assert_eq!(status.current_step_index, Some(1));
    assert_eq!(status.canary_revision.as_deref(), Some(canary.as_str()));
    assert!(status.rejected_revisions.is_empty());
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh up)"]
async fn kubectl_scale_mid_revert_keeps_the_new_count() {
    let (ns, _operator) = setup("scale-revert").await;
    // Stable pods take 4 s to become Ready: the revert's scale-up of the stable takes that long,
    // and the canary's Ready pods are held meanwhile.
    let (stable, canary) = holding_canary(&ns, Fault::ReadyAfterSeconds(4)).await;

    let watch = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    abort_and_wait_reverted(&ns).await;
    // The revert is under way (the stable's new pods start for 4 s): the load rises.
    kubectl_scale(&ns, 9).await;
    wait_sized(&ns, &stable, 9, "the stable at the new count of 9").await;
    wait_sized(&ns, &canary, 0, "no canary pod").await;
    let (lowest, states) = watch.finish().await;
    assert!(
        lowest >= 4,
        "Ready capacity fell to {lowest} through the revert ({states} states)"
    );
    println!("lowest Ready capacity through the revert and 4 -> 9: {lowest} ({states} states)");

    // GitOps: a re-apply of the manifest without spec.replicas (the field handed to the
    // autoscaler) keeps the scaled count.
    let mut manifest = safe_deployment(
        NAME,
        4,
        "registry.local/app:v1",
        Fault::ReadyAfterSeconds(4),
        holding_steps(),
    );
    if let Some(spec) = manifest["spec"].as_object_mut() {
        spec.remove("replicas");
    }
    apply(&ns, &manifest)
        .await
        .expect("a re-apply without spec.replicas");
    let api: kube::Api<safedeploy::api::SafeDeployment> = ns.api();
    let live = api.get(NAME).await.expect("the SafeDeployment");
    assert_eq!(
        live.spec.replicas,
        Some(9),
        "the GitOps apply took the count back"
    );
    wait_sized(&ns, &stable, 9, "the stable still at 9").await;
}
