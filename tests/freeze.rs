//! Freeze windows and rollout requirements on the local control plane: a rollout waits through a
//! short one-off freeze window and proceeds after it; a bad canary is reverted during a freeze;
//! a SafeDeployment that falls short of its policy's requirements draws an admission warning at
//! `kubectl apply` (a denial where the policy is labelled `Deny`) from the chart's
//! ValidatingAdmissionPolicy, and the operator keeps it from rolling out; a `promote --full`
//! before the policy's minimum bake time is held until the canary has baked.
//!
//! The warning is read from `kubectl apply --dry-run=server`, which prints the API server's
//! `Warning:` headers on stderr as every client-go tool (Argo CD, Flux) surfaces them; kube-rs
//! does not return response warnings to the caller.

mod chart;
mod common;
mod operator;

use std::time::{Duration, Instant};

use common::{Fault, in_seconds};
use operator::{
    apply, apply_stable_web, condition, events_of, policy_with, safe_deployment, setup, wait_status,
};
use safedeploy::api::Phase;
use serde_json::json;

const NEEDS_CLUSTER: &str = "needs the local control plane (e2e/cluster.sh)";

fn steps() -> serde_json::Value {
    json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}])
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_rollout_waits_through_a_one_off_window_and_proceeds_after_it() {
    let _ = NEEDS_CLUSTER;
    let (ns, _operator) = setup("freeze-wait").await;
    let first = apply_stable_web(&ns, 2, &steps()).await;
    // A freeze from now for 20 seconds (long enough that a loaded operator sees v2 inside it).
    let end = in_seconds(20);
    policy_with(
        &ns,
        json!({"requireAttestation": false, "requirePinnedImages": false,
               "freeze": {"windows": [{"name": "deploy-freeze", "reason": "integration test",
                   "once": {"start": in_seconds(-60), "end": end}}]}}),
        "freeze",
    )
    .await;
    let started = Instant::now();
    let manifest = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps());
    apply(&ns, &manifest).await.expect("apply v2");
    let frozen = wait_status(
        &ns,
        "web",
        Duration::from_secs(20),
        "the freeze to hold v2",
        |s| s.phase == Phase::Paused && s.freeze.as_ref().is_some_and(|f| f.active),
    )
    .await;
    assert_eq!(
        condition(&frozen, "Progressing").map(|c| c.1).as_deref(),
        Some("Frozen")
    );
    assert_eq!(
        frozen.canary_revision, None,
        "no canary starts during a freeze"
    );
    assert_eq!(frozen.stable_revision, first.stable_revision);
    assert_eq!(
        frozen
            .freeze
            .as_ref()
            .and_then(|f| f.end.clone())
            .as_deref(),
        Some(end.as_str())
    );
    // While frozen, no ReplicaSet of the new revision has pods.
    let sized: Vec<_> = ns
        .replica_sets()
        .await
        .into_iter()
        .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
        .collect();
    assert_eq!(sized.len(), 1, "only the stable ReplicaSet runs");
    // The event follows the status write.
    common::wait_until(Duration::from_secs(30), "a Frozen event", || async {
        let events = events_of(&ns, "Frozen").await;
        Ok((!events.is_empty()).then_some(()))
    })
    .await;
    // After the window: the canary starts and v2 becomes stable without anyone acting.
    let promoted = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "v2 to roll out after the freeze",
        |s| s.phase == Phase::Healthy && s.stable_revision != first.stable_revision,
    )
    .await;
    println!(
        "v2 promoted {:?} after apply (the window ended 20 s after it was set)",
        started.elapsed()
    );
    // The canary of v2 started only once the window had ended (the operator's clock and the
    // test's are the same machine's).
    let end_at: jiff::Timestamp = end.parse().expect("end");
    let canary_started: jiff::Timestamp = promoted
        .history
        .iter()
        .rev()
        .find(|e| Some(&e.hash) == promoted.stable_revision.as_ref() && e.outcome == "Promoted")
        .map(|e| e.started_at.parse().expect("startedAt"))
        .expect("v2's history entry");
    assert!(
        canary_started >= end_at,
        "the canary started at {canary_started}, before the window ended at {end_at}"
    );
    assert_eq!(promoted.freeze, None, "no freeze ahead");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_bad_canary_is_reverted_during_a_freeze() {
    let (ns, _operator) = setup("freeze-revert").await;
    let hold = json!([{"setWeight": 50}, {"pause": {}}]);
    let first = apply_stable_web(&ns, 2, &hold).await;
    // This build's CRDs now, so that `policy_with` below need not wait for them to be
    // re-established (other tests install other builds' CRDs) while v2's clock runs.
    operator::install_crds(&ns.client).await;
    // v2's canary starts before the freeze, and crashes only once the freeze is in force: its
    // pods get the crash annotation then, which kwok's crash Stage picks up on a Ready pod (a
    // v2 that crashed from the start could be reverted before a loaded operator saw the freeze).
    let manifest = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, hold.clone());
    apply(&ns, &manifest).await.expect("apply v2");
    let canary = wait_status(
        &ns,
        "web",
        Duration::from_secs(20),
        "the canary to start",
        |s| s.canary_revision.is_some(),
    )
    .await
    .canary_revision
    .expect("canary");
    policy_with(
        &ns,
        json!({"requireAttestation": false, "requirePinnedImages": false,
               "freeze": {"windows": [{"name": "all-day",
                   "once": {"start": in_seconds(-60), "end": in_seconds(3600)}}]}}),
        "freeze",
    )
    .await;
    wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "the freeze to be in force",
        |s| s.freeze.as_ref().is_some_and(|f| f.active),
    )
    .await;
    assert!(
        operator::crash_revision_pods(&ns, &canary).await > 0,
        "the canary has no pod"
    );
    let reverted = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "the bad canary to be reverted",
        |s| s.rejected_revisions.contains(&canary),
    )
    .await;
    assert_eq!(reverted.stable_revision, first.stable_revision);
    assert_eq!(reverted.canary_revision, None);
    assert!(
        reverted
            .freeze
            .as_ref()
            .is_some_and(|f| f.active && f.window == "all-day"),
        "reverted while the freeze was in force: {:?}",
        reverted.freeze
    );
    // The event follows the status write (seconds later on a loaded CI machine).
    common::wait_until(
        Duration::from_secs(30),
        "a RolloutReverted event",
        || async {
            let events = events_of(&ns, "RolloutReverted").await;
            Ok((!events.is_empty()).then_some(()))
        },
    )
    .await;
}

/// `kubectl` with `args`, returning (success, stdout, stderr).
fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let run = common::kubectl_blocking(args, stdin);
    (run.ok, run.stdout, run.stderr)
}

/// The chart's requirements admission policy, applied under a release of its own and deleted
/// on drop (its objects are cluster-scoped).
struct RequirementsAdmission {
    manifest: String,
}

impl RequirementsAdmission {
    fn apply(release: &str) -> Self {
        let manifest = chart::render(release, "default", &["requirements-admission.yaml"], &[]);
        let (ok, _, stderr) = kubectl(&["apply", "-f", "-"], Some(&manifest));
        assert!(ok, "apply the admission policy: {stderr}");
        RequirementsAdmission { manifest }
    }
}

impl Drop for RequirementsAdmission {
    fn drop(&mut self) {
        let _ = kubectl(
            &["delete", "--ignore-not-found", "-f", "-"],
            Some(&self.manifest),
        );
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn unmet_requirements_warn_at_apply_deny_where_labelled_and_never_roll_out() {
    let (ns, operator) = setup("requirements").await;
    let release = format!("req-{}", common::random_suffix(5));
    let _admission = RequirementsAdmission::apply(&release);
    let requirements = json!({"minSteps": 2, "maxWeightStep": 50, "minBakeTime": "1m"});
    policy_with(
        &ns,
        json!({"requireAttestation": false, "requirePinnedImages": false, "requirements": requirements}),
        "requirements",
    )
    .await;
    let policy = format!("{}-policy", ns.name);
    // One setWeight step of 50 and no pause: minSteps and minBakeTime fall short; the jumps
    // 0 -> 50 -> 100 are within maxWeightStep.
    let manifest = safe_deployment(
        "web",
        2,
        "registry.local/app:v1",
        Fault::None,
        json!([{"setWeight": 50}]),
    );
    let yaml = serde_json::to_string(&manifest).expect("json");
    let dry_run = |yaml: &str| {
        kubectl(
            &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
            Some(yaml),
        )
    };
    // The binding needs a moment to reach the API server's admission cache.
    let started = Instant::now();
    let stderr = loop {
        let (ok, _, stderr) = dry_run(&yaml);
        assert!(ok, "Warn does not deny: {stderr}");
        if stderr.contains("minSteps") || started.elapsed() > Duration::from_secs(30) {
            break stderr;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("kubectl apply --dry-run=server said: {stderr}");
    assert!(stderr.contains("Warning:"), "{stderr}");
    assert!(
        stderr.contains(&format!("SafeDeploymentPolicy {policy} requires minSteps: at least 2 setWeight steps, the spec has 1")),
        "{stderr}"
    );
    assert!(stderr.contains("minBakeTime"), "{stderr}");
    assert!(
        !stderr.contains("maxWeightStep"),
        "0 -> 50 -> 100 is within 50: {stderr}"
    );
    // A spec that meets them draws no warning.
    let good = safe_deployment(
        "web",
        2,
        "registry.local/app:v1",
        Fault::None,
        json!([{"setWeight": 50}, {"pause": {"duration": "1m"}}, {"setWeight": 100}]),
    );
    let (ok, _, stderr) = dry_run(&serde_json::to_string(&good).expect("json"));
    assert!(ok && !stderr.contains("requires"), "{stderr}");

    // Applied anyway (a warning is not a denial): the operator keeps it from rolling out.
    apply(&ns, &manifest).await.expect("apply");
    let blocked = wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "the requirement to block",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    assert_eq!(
        condition(&blocked, "Ready").map(|c| c.1).as_deref(),
        Some("RequirementNotMet")
    );
    assert!(
        blocked
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("minSteps"),
        "{blocked:?}"
    );
    assert!(
        ns.replica_sets().await.iter().all(|rs| rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
            == 0)
    );
    // The event is published after the status write: wait for it rather than race it.
    common::wait_until(
        Duration::from_secs(20),
        "a RequirementNotMet event naming minSteps",
        || {
            let ns = &ns;
            async move {
                let events = events_of(ns, "RequirementNotMet").await;
                Ok(events
                    .iter()
                    .any(|e| {
                        e.message
                            .as_deref()
                            .unwrap_or_default()
                            .contains("minSteps")
                    })
                    .then_some(()))
            }
        },
    )
    .await;

    // The admin labels the policy Deny: the same apply is now refused, naming the requirement.
    let (ok, _, stderr) = kubectl(
        &[
            "label",
            "safedeploymentpolicy",
            &policy,
            "safedeploy.dev/requirements-admission=Deny",
            "--overwrite",
        ],
        None,
    );
    assert!(ok, "{stderr}");
    let started = Instant::now();
    let stderr = loop {
        let (ok, _, stderr) = dry_run(&yaml);
        if !ok || started.elapsed() > Duration::from_secs(30) {
            assert!(!ok, "still accepted after 30 s: {stderr}");
            break stderr;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("denied: {stderr}");
    assert!(
        stderr.contains("denied request") && stderr.contains("minSteps"),
        "{stderr}"
    );
    drop(operator);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn promote_full_waits_for_the_policy_bake_time() {
    let (ns, _operator) = setup("bake-full").await;
    // The timed pause adds up to the policy's minBakeTime, so the spec meets the requirement;
    // promote --full would skip the pause.
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "60s"}}]);
    let first = apply_stable_web(&ns, 2, &steps).await;
    policy_with(
        &ns,
        json!({"requireAttestation": false, "requirePinnedImages": false,
               "requirements": {"minBakeTime": "1m"}}),
        "requirements",
    )
    .await;
    let manifest = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps);
    apply(&ns, &manifest).await.expect("apply v2");
    wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "the canary's pause",
        |s| s.canary_revision.is_some() && s.current_step_index == Some(1),
    )
    .await;
    operator::annotate(&ns, "web", "safedeploy.dev/promote-full", "t1@dave")
        .await
        .expect("promote --full");
    let held = wait_status(
        &ns,
        "web",
        Duration::from_secs(20),
        "the bake time to hold the promotion",
        |s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("the policy's minBakeTime of 1m holds the promotion"))
        },
    )
    .await;
    assert!(held.canary_revision.is_some(), "promoted: {held:?}");
    assert_eq!(held.stable_revision, first.stable_revision);
    common::wait_until(Duration::from_secs(10), "the Warning event", || async {
        let events = events_of(&ns, "RequirementNotMet").await;
        Ok(events
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.message
                        .as_deref()
                        .is_some_and(|n| n.starts_with("promote held"))
            })
            .then_some(()))
    })
    .await;
    let promoted = wait_status(
        &ns,
        "web",
        Duration::from_secs(120),
        "v2 to promote once baked",
        |s| s.phase == Phase::Healthy && s.stable_revision != first.stable_revision,
    )
    .await;
    let entry = promoted
        .history
        .iter()
        .rev()
        .find(|e| Some(&e.hash) == promoted.stable_revision.as_ref() && e.outcome == "Promoted")
        .expect("v2's history entry");
    let started: jiff::Timestamp = entry.started_at.parse().expect("startedAt");
    let finished: jiff::Timestamp = entry
        .finished_at
        .as_deref()
        .expect("finishedAt")
        .parse()
        .expect("finishedAt");
    let baked = finished.duration_since(started);
    println!(
        "MEASURED v2 promoted {:.1} s after its canary started (promote --full at its pause, minBakeTime 1m)",
        baked.as_secs_f64()
    );
    assert!(
        baked >= jiff::SignedDuration::from_secs(60),
        "promoted after {baked:#}, before the 1m bake time"
    );
}
