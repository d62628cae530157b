//! Kill points (issue 12): the operator is killed right after every write it makes across whole
//! rollouts, and each time a fresh process takes over. State lives in the cluster, so the end
//! must be the same as without kills.
//!
//! How: `SAFEDEPLOY_FAULT_KILL_AFTER_WRITES=N` (src/controller/fault.rs) makes the operator's
//! API client abort the process right after the N-th successful write (POST, PUT, PATCH, DELETE;
//! events included), before the code that sent it sees the answer. The test starts a process,
//! waits for it to die, and starts the next one, until the rollout has settled and a process
//! has lived [`QUIET`] without writing. With N = 1, every write that lands is followed by a kill,
//! so one pass kills at every write point of the rollout: status before its ReplicaSet writes,
//! a ReplicaSet created at zero before its configuration copies, copies before the scale, the
//! fresh baseline before the canary, between two scales, before the old-revision delete, before
//! each event. With N = 2 the process also makes its second write from its own, possibly stale,
//! view. The same rollouts run beside it without kills (a second namespace, a second operator)
//! as the reference, each revision waited on until the SafeDeployment stayed unchanged for
//! [`QUIET`].
//!
//! Scenarios: three revisions (the initial one, then two canaries with a fresh baseline and
//! configuration copies; the third deletes the first beyond the history limit) killed after
//! every write with `maxUnavailable: 0`, and after every second write with `maxUnavailable: 1`;
//! a crash-looping canary reverted while killed after every write, with `maxUnavailable` 0 and 1
//! (with 1 the stable gives a pod up, so the revert scales it back up before the canary down).
//!
//! Checked, against what could go wrong:
//! * the same final status as the reference (timestamps and measured values aside);
//! * each step started once: for each canary revision and step index, every status the watch
//!   saw names one `stepStartedAt`, and the index never goes back;
//! * no step, promotion or revert event twice (events can be lost at a kill: the status was
//!   written, the process died before the event, and the next one has nothing to announce);
//! * ready capacity of the revisions' ReplicaSets (the fresh baseline is not capacity) never
//!   below `replicas - maxUnavailable` in any state a ReplicaSet watch saw;
//! * no leaked object: only the new revision's and the kept old revision's ReplicaSets remain
//!   (no baseline), the pods are the new revision's, and the configuration copies are exactly
//!   those the remaining ReplicaSets mount, each owned by one of them.
//!
//! This file runs the scenarios; `kill_points/observe.rs` holds what a run is judged by.

mod common;
#[path = "kill_points/observe.rs"]
mod observe;
mod operator;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{Fault, ReadyCapacityWatch, TestNamespace};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use observe::{
    StatusWatch, assert_no_leaks, comparable, differences, events_by_action, hash, steps_seen,
};
use operator::{Operator, apply, opted_out_namespace, safe_deployment};
use safedeploy::api::labels::{LABEL_REVISION, LABEL_ROLE};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentStatus};
use safedeploy::controller::fault::{KILL_AFTER_WRITES_ENV, KILL_LINE_PREFIX};
use serde_json::{Value, json};

const NAME: &str = "web";
const REPLICAS: i32 = 4;
/// A process that lives this long on a settled rollout has nothing left to write.
const QUIET: Duration = Duration::from_secs(5);
/// SIGABRT: how the fault hook ends the process (anything else is a crash, not a planned kill).
const SIGABRT: i32 = 6;

/// The operator binary this test was built with, pinned for the whole test: a hard link (or a
/// copy) of `CARGO_BIN_EXE_safedeploy` in the temp directory, removed on drop. Every restart
/// executes the binary anew, and a shared target directory's `debug/safedeploy` can be replaced
/// by another checkout's build in the middle of a test (it was: a whole rollout then ran on a
/// binary without the fault hook). Each process also proves the hook is armed (see
/// [`run_with_kills`]).
struct PinnedBinary(std::path::PathBuf);

impl PinnedBinary {
    fn new(tag: &str) -> Self {
        let source = std::path::Path::new(env!("CARGO_BIN_EXE_safedeploy"));
        let pinned = std::env::temp_dir().join(format!("safedeploy-{tag}"));
        let _ = std::fs::remove_file(&pinned);
        if std::fs::hard_link(source, &pinned).is_err() {
            std::fs::copy(source, &pinned).expect("copy the operator binary");
        }
        Self(pinned)
    }
}

impl Drop for PinnedBinary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The log line a process with the fault hook armed writes at start.
const ARMED: &str = "fault injection armed";

/// The ConfigMap a version reads (a volume and an environment variable), so every revision has
/// configuration copies. Each version has its own, so the spec change is the only change.
async fn put_config(ns: &TestNamespace, version: &str) {
    let name = format!("settings-{version}");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"GREETING": format!("hello-{version}")}});
    ns.api::<ConfigMap>()
        .patch(
            &name,
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("apply the ConfigMap");
}

/// How the rollouts of a test are shaped.
#[derive(Clone, Copy)]
struct Shape {
    max_unavailable: i32,
    /// None keeps the operator's default (5 s).
    min_ready_seconds: Option<i32>,
}

/// Revision `version` of the SafeDeployment: a fresh baseline, configuration from
/// `settings-<version>`, a history of one old revision (so the third revision deletes the
/// first, and its copy goes with it).
fn manifest(version: &str, fault: Fault, shape: Shape) -> Value {
    let steps = json!([
        {"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"setWeight": 100}
    ]);
    let image = format!("registry.local/app:{version}");
    let mut m = safe_deployment(NAME, REPLICAS, &image, fault, steps);
    let config = format!("settings-{version}");
    let spec = &mut m["spec"];
    spec["template"]["spec"]["containers"][0]["env"] = json!([{"name": "GREETING",
        "valueFrom": {"configMapKeyRef": {"name": config, "key": "GREETING"}}}]);
    spec["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "config", "mountPath": "/etc/app"}]);
    spec["template"]["spec"]["volumes"] =
        json!([{"name": "config", "configMap": {"name": config}}]);
    spec["strategy"]["canary"]["baseline"] = json!("Fresh");
    spec["strategy"]["canary"]["maxUnavailable"] = json!(shape.max_unavailable);
    spec["revisionHistoryLimit"] = json!(1);
    match shape.min_ready_seconds {
        Some(seconds) => spec["minReadySeconds"] = json!(seconds),
        None => {
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("minReadySeconds");
            }
        }
    }
    m
}

/// Where a rollout is expected to end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    /// Revision `number` promoted.
    Promoted(i64),
    /// Revision `number` reverted; the previous stable serves.
    Reverted(i64),
}

/// Whether the rollout reached `end` and the ReplicaSets agree: the serving revision at full
/// size and ready, every other at zero, no fresh baseline.
async fn settled(ns: &TestNamespace, end: End) -> kube::Result<bool> {
    let sd = ns.api::<SafeDeployment>().get(NAME).await?;
    let Some(status) = sd.status else {
        return Ok(false);
    };
    let hash_of = |number: i64| {
        status
            .revisions
            .iter()
            .find(|r| r.number == number)
            .map(|r| r.hash.clone())
    };
    // At rest includes the audit trail: every finished entry recorded (its records, then the
    // status mark, are the writes that follow a rollout's last status change).
    let at_rest = status.observed_generation == sd.metadata.generation
        && status.canary_revision.is_none()
        && status.baseline.is_none()
        && safedeploy::core::record::due(&status).is_empty();
    let serving = match end {
        End::Promoted(number) => {
            if status.phase != Phase::Healthy {
                return Ok(false);
            }
            hash_of(number)
        }
        End::Reverted(number) => {
            let Some(rejected) = hash_of(number) else {
                return Ok(false);
            };
            if status.phase != Phase::Degraded || !status.rejected_revisions.contains(&rejected) {
                return Ok(false);
            }
            status.stable_revision.clone()
        }
    };
    let Some(serving) = serving.filter(|s| status.stable_revision.as_ref() == Some(s)) else {
        return Ok(false);
    };
    let sets = ns.api::<ReplicaSet>().list(&ListParams::default()).await?;
    let converged = sets.items.iter().all(|rs| {
        let baseline = rs.labels().contains_key(LABEL_ROLE);
        let want = if rs.labels().get(LABEL_REVISION) == Some(&serving) {
            REPLICAS
        } else {
            0
        };
        let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let ready = rs
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        !baseline && spec == want && ready == want
    });
    Ok(at_rest && converged)
}

/// What the processes of one rollout did.
#[derive(Debug, Default)]
struct Kills {
    /// The kill line of every process that was killed, in order.
    lines: Vec<String>,
}

impl Kills {
    /// The distinct requests killed after (method and path pattern, with a count).
    fn kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for line in &self.lines {
            *kinds.entry(request_kind(line)).or_default() += 1;
        }
        kinds
    }
}

/// `PATCH(merge) replicasets` from a kill line (names and namespaces dropped; the fresh
/// baseline's ReplicaSet is told apart).
fn request_kind(line: &str) -> String {
    let Some((_, request)) = line
        .strip_prefix(KILL_LINE_PREFIX)
        .and_then(|rest| rest.split_once(": "))
    else {
        return line.to_string();
    };
    let mut words = request.split_whitespace();
    let method = words.next().unwrap_or_default();
    let path = words.next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    // .../namespaces/<ns>/<resource>[/<name>[/<subresource>]]
    let resource = segments
        .iter()
        .position(|s| *s == "namespaces")
        .map(|i| {
            let rest = &segments[(i + 2).min(segments.len())..];
            match rest {
                [resource, name] if name.ends_with("-baseline") => format!("{resource} (baseline)"),
                [resource] | [resource, _] => resource.to_string(),
                [resource, _, sub, ..] => format!("{resource}/{sub}"),
                [] => path.to_string(),
            }
        })
        .unwrap_or_else(|| path.to_string());
    format!("{method} {resource}")
}

/// Runs operator processes that kill themselves after `every` writes, one after the other, until
/// the rollout reached `end` and a process lived [`QUIET`] on it without writing. Panics if a
/// process ends any other way than by the planned kill.
async fn run_with_kills(ns: &TestNamespace, binary: &PinnedBinary, every: u64, end: End) -> Kills {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = Kills::default();
    // Processes in a row that died on a settled rollout: a write with nothing left to do.
    let mut at_rest = 0;
    loop {
        let log_path = std::env::temp_dir().join(format!("safedeploy-operator-{}.log", ns.name));
        let offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let offset = usize::try_from(offset).unwrap_or(0);
        let mut process = Operator::start_binary(
            &binary.0,
            &ns.name,
            &[(KILL_AFTER_WRITES_ENV, every.to_string())],
        )
        .await;
        let mut settled_since: Option<Instant> = None;
        let exit = loop {
            assert!(
                Instant::now() < deadline,
                "{end:?} not reached in time after {} kills: {:#?}",
                kills.lines.len(),
                kills.lines
            );
            if let Some(exit) = process.try_exit() {
                break Some(exit);
            }
            if settled(ns, end).await.unwrap_or(false) {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    break None;
                }
            } else {
                settled_since = None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let log = process.log();
        let this_process = log.get(offset..).unwrap_or_default();
        assert!(
            this_process.contains(ARMED),
            "the operator process did not arm the fault hook: {} is not this checkout's build",
            binary.0.display()
        );
        let Some(exit) = exit else {
            process.kill().await;
            return kills;
        };
        let line = this_process
            .lines()
            .find(|l| l.starts_with(KILL_LINE_PREFIX))
            .map(str::to_string);
        let tail: Vec<&str> = this_process.lines().rev().take(30).collect();
        let Some(line) = line.filter(|_| exit.signal() == Some(SIGABRT)) else {
            panic!(
                "the operator ended with {exit:?}, not by the planned kill; its last lines (newest first): {tail:#?}"
            );
        };
        if settled(ns, end).await.unwrap_or(false) {
            at_rest += 1;
            assert!(
                at_rest < 3,
                "the operator keeps writing on a settled rollout: {:#?}",
                kills.lines.iter().rev().take(3).collect::<Vec<_>>()
            );
        } else {
            at_rest = 0;
        }
        kills.lines.push(line);
    }
}

/// Waits, with one operator that is never killed, until the rollout reached `end` and its
/// SafeDeployment has not changed for [`QUIET`] (a status written after the ReplicaSets
/// settled, the rejected-revision message after a revert say, is part of the end).
async fn run_without_kills(ns: &TestNamespace, end: End) {
    let api: Api<SafeDeployment> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since: Option<(String, Instant)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "the reference rollout did not reach {end:?} and stay"
        );
        let version = api
            .get(NAME)
            .await
            .ok()
            .and_then(|sd| sd.resource_version());
        match (version, settled(ns, end).await.unwrap_or(false)) {
            (Some(version), true) => match &quiet_since {
                Some((seen, since)) if *seen == version => {
                    if since.elapsed() >= QUIET {
                        return;
                    }
                }
                _ => quiet_since = Some((version, Instant::now())),
            },
            _ => quiet_since = None,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_of(ns: &TestNamespace) -> SafeDeploymentStatus {
    ns.api::<SafeDeployment>()
        .get(NAME)
        .await
        .expect("get")
        .status
        .expect("status")
}

/// One scenario: the revisions applied one after the other, each with where it must end.
struct Scenario {
    revisions: Vec<(&'static str, Fault, End)>,
    shape: Shape,
}

/// What a run of a scenario leaves to compare.
struct Run {
    statuses: Vec<SafeDeploymentStatus>,
    final_status: SafeDeploymentStatus,
    kills: Vec<Kills>,
    min_ready: i32,
    ready_states: usize,
}

/// Applies the scenario's revisions in `ns`: with kills after every `every` writes, or (None)
/// with one operator that is never killed.
async fn run(
    ns: &TestNamespace,
    binary: &PinnedBinary,
    scenario: &Scenario,
    every: Option<u64>,
) -> Run {
    let statuses = StatusWatch::start(ns).await;
    let reference = match every {
        None => Some(Operator::start_binary(&binary.0, &ns.name, &[]).await),
        Some(_) => None,
    };
    let mut capacity = None;
    let mut kills = Vec::new();
    for (index, (version, fault, end)) in scenario.revisions.iter().enumerate() {
        put_config(ns, version).await;
        apply(ns, &manifest(version, *fault, scenario.shape))
            .await
            .expect("apply");
        match every {
            Some(every) => kills.push(run_with_kills(ns, binary, every, *end).await),
            None => run_without_kills(ns, *end).await,
        }
        if index == 0 {
            // Capacity counts from the first stable revision on.
            capacity = Some(ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await);
        }
    }
    let (min_ready, ready_states) = match capacity {
        Some(watch) => watch.finish().await,
        None => (i32::MAX, 0),
    };
    drop(reference);
    Run {
        statuses: statuses.finish().await,
        final_status: status_of(ns).await,
        kills,
        min_ready,
        ready_states,
    }
}

/// Runs `scenario` with kills after every `every` writes and without, and checks what the module
/// documentation lists. `serving`/`kept` are the revision numbers left at full size and at zero.
async fn kill_points(prefix: &str, scenario: Scenario, every: u64, serving: i64, kept: i64) {
    common::init();
    let started = Instant::now();
    let killed = opted_out_namespace(&format!("{prefix}-kill")).await;
    let reference = opted_out_namespace(&format!("{prefix}-ref")).await;
    let binary = PinnedBinary::new(&killed.name);
    let (with_kills, without) = tokio::join!(
        run(&killed, &binary, &scenario, Some(every)),
        run(&reference, &binary, &scenario, None)
    );
    // What each process was killed after, and the statuses seen, before anything can fail.
    println!("KILL LINES ({prefix}, every {every} writes):");
    for line in with_kills.kills.iter().flat_map(|k| &k.lines) {
        println!("  {line}");
    }
    for (run, statuses) in [
        ("with kills", &with_kills.statuses),
        ("without", &without.statuses),
    ] {
        println!("STATUSES {run} ({prefix}):");
        for s in statuses.iter() {
            println!(
                "  {:?} step {:?} canary {:?}: {}",
                s.phase,
                s.current_step_index,
                s.canary_revision,
                s.message.as_deref().unwrap_or_default()
            );
        }
    }
    // Every rollout was killed several times (its first status write and ReplicaSet writes at
    // the least).
    for (rollout, kills) in with_kills.kills.iter().enumerate() {
        assert!(
            kills.lines.len() >= 3,
            "rollout {} was killed only {} times: {:?}",
            rollout + 1,
            kills.lines.len(),
            kills.lines
        );
    }
    let floor = REPLICAS - scenario.shape.max_unavailable;

    // The same final status.
    let mut differ = Vec::new();
    differences(
        "status",
        &comparable(&with_kills.final_status, &killed.name),
        &comparable(&without.final_status, &reference.name),
        &mut differ,
    );
    assert!(
        differ.is_empty(),
        "final status with kills != without: {differ:#?}"
    );
    // Each revision ended once: one history entry per outcome, rejected at most once.
    let status = &with_kills.final_status;
    let mut outcomes = BTreeSet::new();
    for entry in &status.history {
        assert!(
            outcomes.insert((entry.revision, entry.outcome.clone())),
            "revision {} {} twice in {:#?}",
            entry.revision,
            entry.outcome,
            status.history
        );
    }
    // Each finished entry has its durable record, exactly one, kills or not (the records are
    // made before the status that marks them recorded, under a name the entry determines).
    let records: kube::Api<safedeploy::api::SafeDeploymentRecord> =
        kube::Api::namespaced(killed.client.clone(), &killed.name);
    let mut recorded = BTreeSet::new();
    let settled = common::wait_until(
        Duration::from_secs(30),
        "every finished entry recorded",
        || {
            let records = records.clone();
            async move {
                let items = records.list(&Default::default()).await?.items;
                let finished = status
                    .history
                    .iter()
                    .filter(|e| e.finished_at.is_some())
                    .count();
                Ok((items.len() >= finished).then_some(items))
            }
        },
    )
    .await;
    for record in &settled {
        assert!(
            recorded.insert((
                record.spec.revision,
                record.spec.outcome.clone(),
                record.spec.finished_at.clone()
            )),
            "recorded twice: {:?}",
            record.spec
        );
    }
    for entry in status.history.iter().filter(|e| e.finished_at.is_some()) {
        assert!(
            recorded.contains(&(
                entry.revision,
                entry.outcome.clone(),
                entry.finished_at.clone().unwrap_or_default()
            )),
            "not recorded: {entry:?} in {recorded:?}"
        );
    }
    let rejected: BTreeSet<&String> = status.rejected_revisions.iter().collect();
    assert_eq!(
        rejected.len(),
        status.rejected_revisions.len(),
        "{status:#?}"
    );
    for (_, _, end) in &scenario.revisions {
        let (number, outcome) = match end {
            End::Promoted(n) if *n > 1 => (*n, "Promoted"),
            End::Promoted(_) => continue,
            End::Reverted(n) => (*n, "Reverted"),
        };
        assert!(
            outcomes.contains(&(number, outcome.to_string())),
            "revision {number} not {outcome}: {:#?}",
            status.history
        );
    }
    // Each step started once, and the same steps as without kills.
    let steps = steps_seen(&with_kills.statuses);
    for ((revision, index), starts) in &steps {
        assert_eq!(
            starts.len(),
            1,
            "revision {revision} step {index} started more than once: {starts:?}"
        );
    }
    let reference_steps = steps_seen(&without.statuses);
    assert_eq!(
        steps.keys().collect::<Vec<_>>(),
        reference_steps.keys().collect::<Vec<_>>(),
        "the steps gone through"
    );
    // No event twice; count those lost to kills.
    let mut lost = Vec::new();
    for reason in [
        "StepCompleted",
        "RolloutStarted",
        "RolloutCompleted",
        "RolloutReverted",
    ] {
        let events = events_by_action(&killed, reason).await;
        for (action, count) in &events {
            assert_eq!(*count, 1, "{reason} event {action} recorded {count} times");
        }
        for action in events_by_action(&reference, reason).await.keys() {
            if !events.contains_key(action) {
                lost.push(action.clone());
            }
        }
    }
    // Capacity.
    assert!(
        with_kills.min_ready >= floor && with_kills.ready_states > 0,
        "ready capacity fell to {} (floor {floor}) in {} states",
        with_kills.min_ready,
        with_kills.ready_states
    );
    // No leaked ReplicaSet, pod or copy.
    let leaks = assert_no_leaks(&killed, &hash(status, serving), &hash(status, kept)).await;
    let reference_leaks = assert_no_leaks(
        &reference,
        &hash(&without.final_status, serving),
        &hash(&without.final_status, kept),
    )
    .await;

    let all: Vec<&String> = with_kills.kills.iter().flat_map(|k| &k.lines).collect();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for rollout in &with_kills.kills {
        for (kind, count) in rollout.kinds() {
            *kinds.entry(kind).or_default() += count;
        }
    }
    let per_rollout: Vec<usize> = with_kills.kills.iter().map(|k| k.lines.len()).collect();
    let versions = (with_kills.statuses.len(), without.statuses.len());
    println!(
        "MEASURED kill points ({prefix}, every {every} writes): {} kills ({per_rollout:?} per rollout) in {:.0} s; killed after {kinds:?}; status versions seen {} with kills, {} without; steps {:?}; min ready capacity {} (floor {floor}, {} states; without kills {}); events lost to kills {lost:?}; end: {leaks}; reference end: {reference_leaks}",
        all.len(),
        started.elapsed().as_secs_f64(),
        versions.0,
        versions.1,
        steps.keys().collect::<Vec<_>>(),
        with_kills.min_ready,
        with_kills.ready_states,
        without.min_ready,
    );
}

fn promotions(shape: Shape) -> Scenario {
    Scenario {
        revisions: vec![
            ("v1", Fault::None, End::Promoted(1)),
            ("v2", Fault::None, End::Promoted(2)),
            ("v3", Fault::None, End::Promoted(3)),
        ],
        shape,
    }
}

/// Three revisions (the first is initial, the third deletes the first), killed after every
/// single write.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn killed_after_every_write_three_revisions_end_as_without_kills() {
    let shape = Shape {
        max_unavailable: 0,
        min_ready_seconds: Some(1),
    };
    kill_points("kp1", promotions(shape), 1, 3, 2).await;
}

/// The same with two writes per process (the second one made from the process's own view after
/// its first), and one pod of slack.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn killed_after_every_second_write_with_max_unavailable_one_end_as_without_kills() {
    let shape = Shape {
        max_unavailable: 1,
        min_ready_seconds: Some(1),
    };
    kill_points("kp2", promotions(shape), 2, 3, 2).await;
}

/// A crash-looping canary is reverted while the operator is killed after every write: Degraded,
/// the stable at full size, the revision rejected once, one revert.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn killed_after_every_write_a_crashing_canary_is_reverted_once() {
    let scenario = Scenario {
        revisions: vec![
            ("v1", Fault::None, End::Promoted(1)),
            ("v2", Fault::Crash, End::Reverted(2)),
        ],
        // The default minReadySeconds (5 s): a crashing canary pod never becomes available, so
        // the stable never gives a pod up for it.
        shape: Shape {
            max_unavailable: 0,
            min_ready_seconds: None,
        },
    };
    kill_points("kp-revert", scenario, 1, 1, 2).await;
}

/// The same with one pod of slack: the stable gives a pod up for the canary, so the revert
/// scales the stable back up before the canary down (audit points 6 and 7).
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn killed_after_every_write_a_crashing_canary_with_max_unavailable_one_is_reverted_once() {
    let scenario = Scenario {
        revisions: vec![
            ("v1", Fault::None, End::Promoted(1)),
            ("v2", Fault::Crash, End::Reverted(2)),
        ],
        shape: Shape {
            max_unavailable: 1,
            min_ready_seconds: None,
        },
    };
    kill_points("kp-revert1", scenario, 1, 1, 2).await;
}
