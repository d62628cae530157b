//! High availability on the local control plane: two operator replicas with leader election; the
//! leader is killed mid-rollout, the follower takes over within the lease duration, the rollout
//! completes, and no step is repeated. A leader sent SIGTERM releases the Lease, so the standby
//! takes over at once instead of after a whole lease duration. A leader that stops being leader
//! in the middle of a reconcile (it is told to shut down, or frozen with SIGSTOP while another
//! replica takes over) makes no write afterwards. The measured hand-over times are printed.

mod common;
mod operator;

use std::time::{Duration, Instant};

use common::Fault;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::Api;
use operator::{
    apply, apply_stable, apply_stable_web, controller_command, events, opted_out_namespace,
    safe_deployment, wait_status,
};
use safedeploy::api::Phase;
use serde_json::json;
use tokio::process::Child;

const LEASE_SECONDS: u64 = 4;

fn replica(namespace: &str, instance: &str) -> Child {
    replica_with_lease(namespace, instance, LEASE_SECONDS)
}

/// The binary under test: `SAFEDEPLOY_TEST_BIN` if set (a copy taken right after the build, for a
/// target directory that other trees may rebuild meanwhile), else cargo's.
fn binary() -> String {
    std::env::var("SAFEDEPLOY_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_safedeploy").into())
}

fn log_path(namespace: &str, instance: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("safedeploy-ha-{namespace}-{instance}.log"))
}

fn log_of(namespace: &str, instance: &str) -> String {
    std::fs::read_to_string(log_path(namespace, instance)).unwrap_or_default()
}

fn replica_with_lease(namespace: &str, instance: &str, lease_seconds: u64) -> Child {
    let log = std::fs::File::create(log_path(namespace, instance)).expect("log");
    controller_command(std::path::Path::new(&binary()), namespace, log)
        .arg("--leader-elect")
        .args([
            "--lease-namespace",
            namespace,
            "--lease-duration-seconds",
            &lease_seconds.to_string(),
        ])
        .args(["--instance", instance])
        .spawn()
        .expect("start a replica")
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("safedeploy-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_follower_takes_over_a_killed_leader_without_repeating_a_step() {
    let ns = opted_out_namespace("ha").await;
    let mut first = replica(&ns.name, "replica-a");
    // The first replica takes the lease before the second starts.
    let leases: Api<Lease> = ns.api();
    common::wait_until(Duration::from_secs(30), "a leader", || {
        let leases = leases.clone();
        async move { Ok(holder(&leases).await) }
    })
    .await;
    let mut second = replica(&ns.name, "replica-b");

    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "6s"}}, {"setWeight": 100}]);
    apply_stable_web(&ns, 2, &steps).await;
    apply(
        &ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
    )
    .await
    .expect("v2");
    wait_status(&ns, "web", Duration::from_secs(60), "the pause step", |s| {
        s.current_step_index == Some(1)
    })
    .await;

    // Events are recorded after the status write, so wait for step 1's before the kill (a
    // process killed between the two loses that event; the status and history never are).
    common::wait_until(Duration::from_secs(10), "the step 1 event", || async {
        let step_1 = |e: &Event| {
            e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("step 1/3"))
        };
        Ok(events(&ns).await?.iter().any(step_1).then_some(()))
    })
    .await;
    let leader = holder(&leases).await.expect("holder");
    let killed_at = Instant::now();
    if leader.starts_with("replica-a") {
        first.kill().await.expect("kill a");
    } else {
        second.kill().await.expect("kill b");
    }
    let new_leader = common::wait_until(Duration::from_secs(30), "a new leader", || {
        let leases = leases.clone();
        let leader = leader.clone();
        async move { Ok(holder(&leases).await.filter(|h| *h != leader)) }
    })
    .await;
    let takeover = killed_at.elapsed();
    println!(
        "MEASURED take-over after killing the leader {leader}: {takeover:?} (lease {LEASE_SECONDS} s) by {new_leader}"
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 1),
        "took over after {takeover:?}"
    );

    let done = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "the rollout to complete",
        |s| {
            s.phase == Phase::Healthy
                && s.history
                    .last()
                    .is_some_and(|e| e.revision == 2 && e.outcome == "Promoted")
        },
    )
    .await;
    assert_eq!(
        done.history
            .iter()
            .filter(|e| e.outcome == "Promoted")
            .count(),
        2
    );
    operator::assert_each_step_completed_once(&ns, 3).await;
    drop(first);
    drop(second);
}

/// Sends `signal` (such as `-TERM`) to a child process.
fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the process is running");
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

async fn lease(leases: &Api<Lease>) -> Lease {
    leases
        .get("safedeploy-controller")
        .await
        .expect("the Lease exists")
}

/// Waits until the process exits, and returns its exit code.
async fn exit_code(child: &mut Child, within: Duration) -> Option<i32> {
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the process did not exit within {within:?}"))
        .expect("wait")
        .code()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_terminated_leader_releases_the_lease_and_the_standby_acts_at_once() {
    // The production default: without a release the standby would wait about 15 s.
    const LEASE: u64 = 15;
    let ns = opted_out_namespace("ha-term").await;
    let leases: Api<Lease> = ns.api();
    let mut first = replica_with_lease(&ns.name, "replica-a", LEASE);
    let leader = common::wait_until(Duration::from_secs(30), "a leader", || {
        let leases = leases.clone();
        async move { Ok(holder(&leases).await) }
    })
    .await;
    assert!(leader.starts_with("replica-a-"), "{leader}");
    let mut second = replica_with_lease(&ns.name, "replica-b", LEASE);
    let steps = json!([{"setWeight": 100}]);
    apply_stable_web(&ns, 1, &steps).await;
    // The standby has joined the election (it logs that once its Lease read succeeded).
    common::wait_until(Duration::from_secs(30), "the standby to join", || {
        let log = log_of(&ns.name, "replica-b");
        async move { Ok(log.contains("joined the leader election").then_some(())) }
    })
    .await;
    let before = lease(&leases).await.spec.unwrap_or_default();
    assert_eq!(before.holder_identity.as_deref(), Some(leader.as_str()));
    let transitions_before = before.lease_transitions.unwrap_or(0);

    // SIGTERM the leader, and right away ask for work: only a leader does it.
    let terminated = Instant::now();
    signal(&first, "-TERM");
    let v2 = apply(
        &ns,
        &safe_deployment("web", 1, "registry.local/app:v2", Fault::None, steps),
    )
    .await
    .expect("v2");
    let generation = v2.metadata.generation;
    let api: Api<safedeploy::api::SafeDeployment> = ns.api();
    let mut took_over = None;
    let acted = loop {
        if took_over.is_none()
            && let Some(h) = holder(&leases).await
            && h != leader
        {
            took_over = Some((terminated.elapsed(), h));
        }
        let observed = api
            .get("web")
            .await
            .ok()
            .and_then(|sd| sd.status)
            .and_then(|s| s.observed_generation);
        if observed == generation {
            break terminated.elapsed();
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(LEASE * 2),
            "nobody acted on v2 within {:?}",
            terminated.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (took_over, new_leader) = match took_over {
        Some(seen) => seen,
        None => (acted, holder(&leases).await.expect("a holder")),
    };
    println!(
        "MEASURED graceful hand-over: SIGTERM to the standby holding the Lease {} ms, to its \
         first write (status of v2) {} ms (lease {LEASE} s)",
        took_over.as_millis(),
        acted.as_millis()
    );
    assert!(new_leader.starts_with("replica-b-"), "{new_leader}");
    assert!(
        took_over < Duration::from_secs(5),
        "the standby took over only after {took_over:?}: the Lease was not released"
    );
    assert!(
        acted < Duration::from_secs(6),
        "the standby acted only after {acted:?}"
    );
    // The old leader shut down cleanly after releasing the Lease.
    assert_eq!(
        exit_code(&mut first, Duration::from_secs(10)).await,
        Some(0)
    );
    let log = log_of(&ns.name, "replica-a");
    assert!(log.contains("released the Lease"), "{log}");
    let after = lease(&leases).await.spec.unwrap_or_default();
    assert_eq!(
        after.lease_transitions.unwrap_or(0),
        transitions_before + 1,
        "one change of holder: {after:?}"
    );
    assert_eq!(after.lease_duration_seconds, Some(LEASE as i32));
    second.kill().await.expect("kill b");
}

/// An HTTP endpoint for a `web` metric that holds every request until the test opens it.
struct HeldEndpoint {
    addr: std::net::SocketAddr,
    open: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl HeldEndpoint {
    async fn start() -> Self {
        use axum::routing::get;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let open = Arc::new(tokio::sync::watch::channel(true).0);
        let requests = Arc::new(AtomicU64::new(0));
        let (gate, count) = (open.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/slo",
            get(move || {
                let (gate, count) = (gate.clone(), count.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.subscribe().wait_for(|open| *open).await;
                    axum::Json(json!({"data": {"successRate": 99.95}}))
                }
            }),
        );
        let addr = common::serve(app).await;
        HeldEndpoint {
            addr,
            open,
            requests,
        }
    }

    fn hold(&self) {
        self.open.send_replace(false);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A SafeDeployment whose canary waits for one analysis run against this endpoint.
    fn manifest(&self, image: &str) -> serde_json::Value {
        let steps =
            json!([{"setWeight": 50}, {"analysis": {"template": "slo"}}, {"setWeight": 100}]);
        let mut manifest = safe_deployment("web", 1, image, Fault::None, steps);
        manifest["spec"]["analyses"] = json!([{
            "name": "slo", "interval": "1s", "count": 3,
            "metrics": [{
                "name": "success-rate",
                "provider": {"web": {
                    "url": format!("http://{}/slo?rev={{{{canary}}}}", self.addr),
                    "jsonPath": "$.data.successRate",
                    "timeout": "60s"
                }},
                "direction": "higherIsBetter",
                "thresholds": {"target": 99.9, "acceptable": 99.5, "critical": 98.0}
            }]
        }]);
        manifest
    }
}

/// What the operator writes in a namespace, to compare before and after: the SafeDeployment's
/// status, each ReplicaSet's spec (`generation`) and annotations, and the operator's events.
async fn writes_snapshot(ns: &common::TestNamespace) -> serde_json::Value {
    let sd = ns
        .api::<safedeploy::api::SafeDeployment>()
        .get("web")
        .await
        .expect("get web");
    let replica_sets: Vec<_> = ns
        .replica_sets()
        .await
        .into_iter()
        .map(|rs| {
            json!([
                rs.metadata.name,
                rs.metadata.generation,
                rs.metadata.annotations,
                rs.spec.and_then(|s| s.replicas)
            ])
        })
        .collect();
    let recorded: Vec<_> = events(ns)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.reporting_component.as_deref() == Some("safedeploy"))
        .map(|e| json!([e.metadata.name, e.count, e.message]))
        .collect();
    json!({"status": sd.status, "replicaSets": replica_sets, "events": recorded})
}

/// Starts a replica, makes v1 stable, applies v2 and waits until the leader's reconcile is
/// blocked in the analysis provider call (the endpoint holds it).
async fn leader_blocked_in_a_provider_call(
    prefix: &str,
    lease_seconds: u64,
) -> (common::TestNamespace, Child, HeldEndpoint) {
    let ns = opted_out_namespace(prefix).await;
    let leases: Api<Lease> = ns.api();
    let operator = replica_with_lease(&ns.name, "replica-a", lease_seconds);
    common::wait_until(Duration::from_secs(30), "a leader", || {
        let leases = leases.clone();
        async move { Ok(holder(&leases).await) }
    })
    .await;
    let endpoint = HeldEndpoint::start().await;
    apply_stable(&ns, &endpoint.manifest("registry.local/app:v1")).await;
    endpoint.hold();
    let seen = endpoint.requests();
    apply(&ns, &endpoint.manifest("registry.local/app:v2"))
        .await
        .expect("v2");
    common::wait_until(
        Duration::from_secs(60),
        "the analysis request to be held",
        || {
            let requests = endpoint.requests();
            async move { Ok((requests > seen).then_some(())) }
        },
    )
    .await;
    // The reconcile is now waiting for the endpoint; one reconcile per object at a time, so no
    // other write of this rollout is in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (ns, operator, endpoint)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_leader_told_to_stop_mid_reconcile_makes_no_further_write() {
    let (ns, mut operator, endpoint) = leader_blocked_in_a_provider_call("ha-stop", 4).await;
    // SIGTERM: the replica stands down at once and waits for the running reconcile.
    signal(&operator, "-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes_snapshot(&ns).await;
    // The held measurement arrives: the reconcile would now record it (a status write), but it
    // is no longer the leader's to make.
    endpoint.release();
    let code = exit_code(&mut operator, Duration::from_secs(15)).await;
    let after = writes_snapshot(&ns).await;
    assert_eq!(before, after, "a write after standing down");
    let log = log_of(&ns.name, "replica-a");
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("reconcile stopped before a write"),
        "the reconcile did not reach its write: {log}"
    );
    assert!(log.contains("running reconciles ended"), "{log}");
    assert!(log.contains("released the Lease"), "{log}");
    let leases: Api<Lease> = ns.api();
    assert_eq!(holder(&leases).await, None, "released");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_frozen_leader_resumed_after_a_take_over_makes_no_write() {
    const LEASE: u64 = 4;
    let (ns, mut operator, endpoint) = leader_blocked_in_a_provider_call("ha-freeze", LEASE).await;
    let leases: Api<Lease> = ns.api();
    let old = holder(&leases).await.expect("holder");
    // Freeze the leader mid-reconcile (after its reconcile began, before its writes) ...
    signal(&operator, "-STOP");
    let frozen = Instant::now();
    let before = writes_snapshot(&ns).await;
    // ... another replica (this test, which writes nothing else) takes the Lease over once it
    // has expired ...
    let thief = safedeploy::controller::leader::elect(
        ns.client.clone(),
        &ns.name,
        "safedeploy-controller",
        "thief",
        Duration::from_secs(LEASE),
    )
    .await
    .expect("elect");
    tokio::time::timeout(Duration::from_secs(LEASE * 3), thief.acquired())
        .await
        .expect("the thief acquires the expired Lease")
        .expect("acquired");
    println!(
        "MEASURED frozen leader {old}: the Lease was taken over {} ms after the freeze (lease {LEASE} s)",
        frozen.elapsed().as_millis()
    );
    // ... then the held measurement arrives and the leader resumes: its reconcile goes on
    // towards its writes, while its renew deadline has long passed.
    endpoint.release();
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(&operator, "-CONT");
    let code = exit_code(&mut operator, Duration::from_secs(15)).await;
    let log = log_of(&ns.name, "replica-a");
    assert_eq!(code, Some(1), "fail-stop on the lost Lease: {log}");
    assert!(log.contains("lost leadership"), "{log}");
    let after = writes_snapshot(&ns).await;
    assert_eq!(before, after, "the resumed old leader wrote");
    println!(
        "the resumed leader's reconcile {}",
        if log.contains("reconcile stopped before a write") {
            "reached a write and was refused"
        } else {
            "did not reach a write before the process exited"
        }
    );
    assert!(thief.is_leader());
    assert_eq!(holder(&leases).await.as_deref(), Some("thief"));
    thief.release().await.expect("release");
}
