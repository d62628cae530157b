//! Pause and resume attribution on the real API server: a resume made by editing `spec.paused`
//! is not credited to whoever last wrote the pause annotation (`false@bob` stays on the object
//! after bob's own resume). Needs the local control plane and helm (see tests/chart).

mod chart;
mod common;
#[path = "governance/fixture.rs"]
#[allow(dead_code)]
mod fixture;
mod operator;

use std::time::Duration;

use common::Fault;
use fixture::{EDITOR, Governed, PROMOTER};
use operator::{apply, apply_stable_web, safe_deployment, wait_status};
use safedeploy::api::{Phase, SafeDeploymentStatus};
use serde_json::json;

/// The `(outcome, actor)` of the history's pause and resume entries, oldest first.
fn pause_entries(status: &SafeDeploymentStatus) -> Vec<(String, Option<String>)> {
    status
        .history
        .iter()
        .filter(|e| e.outcome == "Paused" || e.outcome == "Resumed")
        .map(|e| (e.outcome.clone(), e.actor.clone()))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_resume_by_spec_edit_is_not_credited_to_the_last_pause_requester() {
    let mut gov = Governed::new("gov-pause").await;
    let _operator = gov.start_operator();
    let steps = json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]);
    apply_stable_web(&gov.ns, 2, &steps).await;
    let manifest = safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps);
    apply(&gov.ns, &manifest).await.expect("apply v2");
    wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(60),
        "the canary's pause",
        |s| s.phase == Phase::Paused && s.current_step_index == Some(1),
    )
    .await;
    // Bob pauses and resumes through the plugin: `safedeploy.dev/paused: false@bob` stays.
    let count = |n: usize| move |s: &SafeDeploymentStatus| pause_entries(s).len() >= n;
    for (verb, n) in [("pause", 1), ("resume", 2)] {
        let (ok, stdout, stderr) = gov.plugin_as(PROMOTER, &[verb, "web"]).await;
        assert!(ok, "{verb} by bob: {stdout}{stderr}");
        wait_status(&gov.ns, "web", Duration::from_secs(30), verb, count(n)).await;
    }
    // Alice edits spec.paused: true, then false.
    for (paused, n) in [(true, 3), (false, 4)] {
        let patch = json!({"spec": {"paused": paused}}).to_string();
        gov.kubectl_as(
            EDITOR,
            &[
                "patch",
                "safedeployment",
                "web",
                "--type=merge",
                "-p",
                &patch,
            ],
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("alice sets spec.paused {paused}: {e}"));
        wait_status(
            &gov.ns,
            "web",
            Duration::from_secs(30),
            "spec.paused",
            count(n),
        )
        .await;
    }
    let status = operator::status_now(&gov.ns, "web").await;
    let entries = pause_entries(&status);
    let bob = Some(PROMOTER.to_string());
    assert_eq!(
        entries,
        [
            ("Paused".to_string(), bob.clone()),
            ("Resumed".to_string(), bob),
            ("Paused".to_string(), None),
            ("Resumed".to_string(), None),
        ],
        "the spec edit's resume was credited to bob"
    );
    let resumed = status
        .history
        .iter()
        .rev()
        .find(|e| e.outcome == "Resumed")
        .expect("resumed");
    assert!(
        resumed.reason.contains("an edit of spec.paused"),
        "{}",
        resumed.reason
    );
}
