//! Integration tests of the `job` analysis provider on the local control plane (the real
//! kube-controller-manager's Job controller; kwok completes Job pods): a Job that completes
//! passes its measurements and the canary is promoted, with exactly one Job per measurement
//! (no second Job from the polls while it runs), owned by the SafeDeployment, one attempt, told
//! which canary it tests; a Job whose pod never runs (a test that hangs) runs out its deadline,
//! which is an error, and with `onError: Fail` the canary is reverted, never promoted; an operator
//! killed while its Job runs judges that same Job when it comes back, and a Job's end wakes the
//! SafeDeployment through the Job watch.

mod common;
mod operator;

use std::time::{Duration, Instant};

use common::Fault;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use operator::{
    apply, apply_promoted, apply_stable, safe_deployment, setup, status_now, wait_promoted,
    wait_status,
};
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

/// A job metric whose pod waits behind a scheduling gate until the test lifts it: a smoke
/// test that takes as long as the test says.
fn gated_job() -> Value {
    json!({"template": {"spec": {
        "schedulingGates": [{"name": GATE}],
        "containers": [{"name": "smoke", "image": "busybox"}],
    }}})
}

const GATE: &str = "safedeploy.dev/test-gate";

/// The analysis Job of measurement `number`, once it exists.
async fn wait_job(ns: &common::TestNamespace, number: u32) -> Job {
    common::wait_until(
        Duration::from_secs(60),
        &format!("the Job of measurement {number}"),
        || async {
            Ok(analysis_jobs(ns).await.into_iter().find(|job| {
                job.annotations().get(MEASUREMENT_ANNOTATION) == Some(&number.to_string())
            }))
        },
    )
    .await
}

/// Lifts the scheduling gate of the Job's pod (once the Job controller made it), so kwok runs
/// and completes it.
async fn ungate(ns: &common::TestNamespace, job: &Job) {
    let pods: Api<Pod> = ns.api();
    let selector = format!("job-name={}", job.name_any());
    let pod = common::wait_until(Duration::from_secs(30), "the Job's pod", || async {
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .next())
    })
    .await;
    // A merge patch's null removes the field; the API server lets gates be removed, not added.
    let lift = json!({"spec": {"schedulingGates": null}});
    pods.patch(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&lift),
    )
    .await
    .expect("lift the pod's scheduling gate");
}

/// Waits until the Job succeeded; when the test saw that.
async fn wait_succeeded(ns: &common::TestNamespace, job: &Job) -> Instant {
    let jobs: Api<Job> = ns.api();
    common::wait_until(Duration::from_secs(60), "the Job to succeed", || async {
        let job = jobs.get(&job.name_any()).await?;
        let succeeded = job.status.and_then(|s| s.succeeded).unwrap_or(0) > 0;
        Ok(succeeded.then(Instant::now))
    })
    .await
}

/// The operator is killed while the first measurement's Job runs, and the Job finishes while
/// no operator runs. The restarted operator finds that same Job (not a second one), judges it a
/// pass, and the rollout goes on. The second measurement's Job then ends while the operator
/// runs: only the Job watch can wake the SafeDeployment (Job pods carry no label the operator
/// watches, and nothing else changes), so the verdict arriving well before the 60 s fallback
/// shows that the watch, not a poll, noticed it.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn an_operator_killed_while_its_job_runs_judges_that_same_job_when_back() {
    let (ns, operator) = setup("jobkill").await;
    let passing =
        json!({"template": {"spec": {"containers": [{"name": "smoke", "image": "busybox"}]}}});
    this_builds_crds(&ns).await;
    let v1 = apply_stable(&ns, &manifest("v1", passing, json!({})))
        .await
        .stable_revision;
    this_builds_crds(&ns).await;
    apply(&ns, &manifest("v2", gated_job(), json!({})))
        .await
        .expect("apply v2");
    let first = wait_job(&ns, 1).await;
    // Killed as soon as the Job exists: a run's Job is made only once the run's start (which
    // names the Job) is in status, so the restarted operator finds the same run and Job.
    operator.kill().await;
    ungate(&ns, &first).await;
    wait_succeeded(&ns, &first).await;

    let _operator = operator::Operator::start(&ns.name).await;
    let second = wait_job(&ns, 2).await;
    let status = status_now(&ns, "web").await;
    let run = status
        .analysis_runs
        .iter()
        .find(|r| r.measurement_count >= 1)
        .expect("the run recorded the first measurement");
    assert!(
        run.measurements
            .iter()
            .all(|m| m.verdict == MetricVerdict::Pass),
        "the Job that finished while no operator ran is judged a pass: {:#?}",
        run.measurements
    );
    // Let the reconcile that made the second Job settle, so that only an event wakes it now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ungate(&ns, &second).await;
    let succeeded = wait_succeeded(&ns, &second).await;
    wait_status(
        &ns,
        "web",
        Duration::from_secs(120),
        "the second measurement",
        |s| s.analysis_runs.iter().any(|r| r.measurement_count >= 2),
    )
    .await;
    let noticed = succeeded.elapsed();
    println!("MEASURED a Job's end to its verdict in status: {noticed:?} (fallback 60 s)");
    assert!(
        noticed < Duration::from_secs(30),
        "the Job watch woke the SafeDeployment ({noticed:?}; the fallback is 60 s)"
    );
    let promoted = wait_promoted(&ns, "web", v1.as_deref(), "v2 promoted").await;
    assert_ne!(promoted.stable_revision, v1);

    let jobs = analysis_jobs(&ns).await;
    let uids: Vec<_> = jobs
        .iter()
        .filter(|j| {
            j.annotations()
                .get(MEASUREMENT_ANNOTATION)
                .map(String::as_str)
                == Some("1")
        })
        .filter_map(|j| j.uid())
        .collect();
    assert_eq!(
        uids,
        vec![first.uid().expect("uid")],
        "the restarted operator judged the Job it made before the kill, and made no second one"
    );
}

/// Hostile: the operator is killed right after every write it makes from the canary's start on
/// (a fresh process each time), until a process stays quiet: the analysis step's Job runs (gated)
/// and nothing is left to write. A run's Job is named after the run's start, so the start is
/// written before the Job is made; were it the other way round, every process would start the
/// run again and make one more Job for the same measurement.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn killed_after_every_write_the_operator_makes_one_job_per_measurement() {
    let (ns, operator) = setup("jobkills").await;
    let passing =
        json!({"template": {"spec": {"containers": [{"name": "smoke", "image": "busybox"}]}}});
    this_builds_crds(&ns).await;
    apply_stable(&ns, &manifest("v1", passing, json!({}))).await;
    let before: Vec<String> = analysis_jobs(&ns)
        .await
        .iter()
        .map(|j| j.name_any())
        .collect();
    operator.kill().await;
    this_builds_crds(&ns).await;
    apply(&ns, &manifest("v2", gated_job(), json!({})))
        .await
        .expect("apply v2");
    let kills = operator::kill_after_every_write(&ns.name, 60).await;
    let first_measurement: Vec<String> = analysis_jobs(&ns)
        .await
        .into_iter()
        .filter(|j| !before.contains(&j.name_any()))
        .filter(|j| {
            j.annotations()
                .get(MEASUREMENT_ANNOTATION)
                .map(String::as_str)
                == Some("1")
        })
        .map(|j| j.name_any())
        .collect();
    println!("MEASURED kills from the canary's start to the running Job: {kills}");
    assert!(
        kills >= 3,
        "the canary's start, its scale and the Job are writes: {kills}"
    );
    assert_eq!(first_measurement.len(), 1, "{first_measurement:?}");
}
