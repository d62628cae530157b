//! Integration tests of the `job` analysis provider on the local control plane (the real
//! kube-controller-manager's Job controller; kwok completes Job pods): a Job that completes
//! passes its measurements and the canary is promoted, with exactly one Job per measurement
//! (no second Job from the polls while it runs), owned by the SafeDeployment, one attempt, told
//! which canary it tests; a Job whose pod never runs (a test that hangs) runs out its deadline,
//! which is an error, and with `onError: Fail` the canary is reverted, never promoted.

mod common;
mod operator;

use std::time::Duration;

use common::Fault;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use operator::{apply, apply_promoted, apply_stable, safe_deployment, setup, wait_status};
use safedeploy::analysis::provider::job::{JOB_LABEL, MEASUREMENT_ANNOTATION, RUN_LABEL};
use safedeploy::api::analysis::MetricVerdict;
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::{Value, json};

/// A SafeDeployment `web` at image `app:<version>` whose one canary step is gated by the
/// analysis `smoke`, which runs the job metric `smoke-test` (`job` is its provider).
fn manifest(version: &str, job: Value, extra: Value) -> Value {
    let steps = json!([{"setWeight": 50}, {"analysis": {"template": "smoke"}}, {"setWeight": 100}]);
    let mut manifest = safe_deployment(
        "web",
        2,
        &format!("registry.local/app:{version}"),
        Fault::None,
        steps,
    );
    let mut metric = json!({"name": "smoke-test", "provider": {"job": job}});
    if let (Some(metric), Some(extra)) = (metric.as_object_mut(), extra.as_object()) {
        metric.extend(extra.clone());
    }
    manifest["spec"]["analyses"] =
        json!([{"name": "smoke", "interval": "1s", "count": 2, "metrics": [metric]}]);
    manifest
}

/// Installs this build's CRDs: other builds on the shared cluster may have installed CRDs
/// without `provider.job` meanwhile, and the API server would prune the field on apply.
async fn this_builds_crds(ns: &common::TestNamespace) {
    operator::install_crds(&ns.client).await;
}

async fn analysis_jobs(ns: &common::TestNamespace) -> Vec<Job> {
    let api: Api<Job> = ns.api();
    api.list(&ListParams::default().labels(&format!("{JOB_LABEL}=true")))
        .await
        .expect("list the analysis Jobs")
        .items
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_completing_job_promotes_the_canary_with_one_job_per_measurement() {
    let (ns, _operator) = setup("jobpass").await;
    let job =
        json!({"template": {"spec": {"containers": [{"name": "smoke", "image": "busybox"}]}}});
    this_builds_crds(&ns).await;
    let v1 = apply_stable(&ns, &manifest("v1", job.clone(), json!({})))
        .await
        .stable_revision;
    this_builds_crds(&ns).await;
    let promoted = apply_promoted(&ns, &manifest("v2", job, json!({})), v1.as_deref()).await;
    let canary = promoted.stable_revision.clone().expect("v2 is stable");

    let sd: SafeDeployment = ns.api().get("web").await.expect("the SafeDeployment");
    let uid = sd.metadata.uid.clone().expect("uid");
    let jobs = analysis_jobs(&ns).await;
    // Per run (a run restarted after a provider error gets a new key and new Jobs), one Job
    // per measurement: 1, 2, ... with no number twice, however often the operator looked.
    let mut runs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for job in &jobs {
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let annotations = job.metadata.annotations.clone().unwrap_or_default();
        runs.entry(labels.get(RUN_LABEL).cloned().unwrap_or_default())
            .or_default()
            .push(
                annotations
                    .get(MEASUREMENT_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
            );
    }
    println!(
        "MEASURED analysis Jobs of v2: {} in {} run(s)",
        jobs.len(),
        runs.len()
    );
    for (run, mut numbers) in runs {
        numbers.sort();
        let expected: Vec<String> = (1..=numbers.len()).map(|n| n.to_string()).collect();
        assert_eq!(numbers, expected, "run {run}: one Job per measurement");
    }
    assert!(!jobs.is_empty(), "the analysis ran Jobs");
    for job in &jobs {
        let owner = job
            .metadata
            .owner_references
            .as_ref()
            .and_then(|refs| refs.first())
            .expect("an owner");
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("SafeDeployment", uid.as_str(), Some(true))
        );
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0), "one attempt");
        let pod = spec.template.spec.as_ref().expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let env = pod.containers[0].env.clone().unwrap_or_default();
        let told = env
            .iter()
            .find(|e| e.name == "SAFEDEPLOY_CANARY")
            .and_then(|e| e.value.clone());
        assert_eq!(
            told.as_deref(),
            Some(canary.as_str()),
            "the Job tests the canary the run judges"
        );
    }
    let run = promoted
        .analysis_runs
        .iter()
        .find(|r| r.canary_revision.as_deref() == Some(canary.as_str()));
    if let Some(run) = run {
        assert!(
            run.measurements
                .iter()
                .all(|m| m.verdict == MetricVerdict::Pass),
            "{:#?}",
            run.measurements
        );
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_job_that_never_runs_is_an_error_past_its_deadline_and_fails_the_canary() {
    let (ns, _operator) = setup("jobhang").await;
    let passing =
        json!({"template": {"spec": {"containers": [{"name": "smoke", "image": "busybox"}]}}});
    this_builds_crds(&ns).await;
    let stable = apply_stable(&ns, &manifest("v1", passing, json!({})))
        .await
        .stable_revision;
    // No node has this label: the Job's pod stays Pending, as a test that hangs would, and the
    // Job controller ends it at its deadline.
    let hanging = json!({
        "deadline": "3s",
        "template": {"spec": {
            "nodeSelector": {"safedeploy.dev/no-such-node": "true"},
            "containers": [{"name": "smoke", "image": "busybox"}],
        }},
    });
    let on_error = json!({"onError": "Fail", "consecutiveErrorLimit": 0});
    this_builds_crds(&ns).await;
    apply(&ns, &manifest("v2", hanging, on_error))
        .await
        .expect("apply v2");
    let reverted = wait_status(
        &ns,
        "web",
        Duration::from_secs(90),
        "v2 reverted after its Job ran out of time",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    assert_eq!(reverted.stable_revision, stable, "the stable stays");
    let jobs = analysis_jobs(&ns).await;
    let deadline_exceeded = jobs.iter().any(|job| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.reason.as_deref() == Some("DeadlineExceeded"))
            })
    });
    assert!(
        deadline_exceeded,
        "the Job controller ended the Job at its deadline: {jobs:#?}"
    );
    let errors: Vec<_> = reverted
        .analysis_runs
        .iter()
        .flat_map(|r| r.measurements.iter())
        .filter(|m| m.verdict == MetricVerdict::Error)
        .collect();
    assert!(
        !errors.is_empty(),
        "the deadline is recorded as an error: {reverted:#?}"
    );
    let reason = &reverted.history.last().expect("history").reason;
    println!("MEASURED revert reason: {reason}");
}
