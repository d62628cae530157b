//! Leader election against the real API server (`src/controller/leader.rs`): two electors in one
//! process share a Lease; the first acquires and the second waits; when the first stops (dropped
//! as if killed, or released gracefully, or cut off from the API server) the second takes over,
//! and the two are never leader at the same time; a release clears only this replica's own
//! holding and counts as a transition. The measured take-over times are printed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use safedeploy::controller::leader::{LeaderCheck, LeaderError, LeaderState, Leadership, elect};
use tokio::net::{TcpListener, TcpStream};

const LEASE: &str = "safedeploy-leader-test";

/// Samples two leadership checks every 2 ms until stopped; fails if both were ever true at once.
struct Overlap {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Overlap {
    fn watch(a: LeaderCheck, b: LeaderCheck) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = 0u64;
            while !flag.load(Ordering::SeqCst) {
                assert!(
                    !(a.is_leader() && b.is_leader()),
                    "both replicas were leader at once"
                );
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        });
        Overlap { stop, task }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.task.await.expect("overlap sampler");
        assert!(samples > 100, "only {samples} samples");
    }
}

async fn wait_leader(leadership: &Leadership, within: Duration) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(within, leadership.acquired())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not become leader within {within:?}",
                leadership.identity()
            )
        })
        .expect("acquired");
    start.elapsed()
}

/// Joins the election for the test's Lease in `ns` as `identity`; the election must start.
async fn elect_in(
    ns: &common::TestNamespace,
    identity: &str,
    lease_duration: Duration,
) -> Leadership {
    elect(ns.client.clone(), &ns.name, LEASE, identity, lease_duration)
        .await
        .unwrap_or_else(|e| panic!("elect {identity}: {e:?}"))
}

async fn holder(client: &Client, namespace: &str) -> (Option<String>, i32) {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get(LEASE)
        .await
        .expect("the Lease exists");
    let spec = lease.spec.unwrap_or_default();
    (spec.holder_identity, spec.lease_transitions.unwrap_or(0))
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_second_replica_waits_and_takes_over_a_killed_leader_within_the_lease_duration() {
    let ns = common::TestNamespace::new("leader-kill").await;
    let duration = Duration::from_secs(3);
    let a = elect_in(&ns, "replica-a", duration).await;
    wait_leader(&a, Duration::from_secs(5)).await;
    assert!(a.is_leader());
    let b = elect_in(&ns, "replica-b", duration).await;
    let overlap = Overlap::watch(a.check(), b.check());

    // Two whole lease durations: a keeps renewing, b keeps waiting.
    tokio::time::sleep(duration * 2).await;
    assert!(a.is_leader(), "the leader kept its lease");
    assert!(!b.is_leader(), "the standby waited");
    assert_eq!(b.state(), LeaderState::Candidate);
    assert_eq!(
        holder(&ns.client, &ns.name).await.0.as_deref(),
        Some("replica-a")
    );

    // "Kill" a: it stops renewing and does not release.
    let a_check = a.check();
    drop(a);
    assert!(
        !a_check.is_leader(),
        "a dropped elector stops acting at once"
    );
    let takeover = wait_leader(&b, duration * 2).await;
    println!(
        "MEASURED take-over after the leader was killed: {} ms (lease duration {} ms)",
        takeover.as_millis(),
        duration.as_millis()
    );
    // a's last renewal completed at most one retry period (plus a request) before the kill, and
    // b must see that renewal's resourceVersion unchanged for a whole lease duration.
    let timing = b.timing();
    assert!(
        takeover >= duration - timing.retry_period - Duration::from_millis(200),
        "b waited out the lease ({takeover:?})"
    );
    assert!(
        takeover <= duration + timing.retry_period * 2 + Duration::from_millis(500),
        "b took over within the lease duration plus a poll: {takeover:?}"
    );
    let (holder_now, transitions) = holder(&ns.client, &ns.name).await;
    assert_eq!(holder_now.as_deref(), Some("replica-b"));
    assert_eq!(transitions, 1, "one change of holder");
    overlap.finish().await;
    b.release().await.expect("release b");
    assert_eq!(holder(&ns.client, &ns.name).await.0, None, "released");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_released_lease_is_taken_over_within_one_poll() {
    let ns = common::TestNamespace::new("leader-release").await;
    let duration = Duration::from_secs(4);
    let a = elect_in(&ns, "replica-a", duration).await;
    wait_leader(&a, Duration::from_secs(5)).await;
    let b = elect_in(&ns, "replica-b", duration).await;
    let overlap = Overlap::watch(a.check(), b.check());
    let mut became = Box::pin(b.became_leader());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.is_leader());

    assert_eq!(
        holder(&ns.client, &ns.name).await,
        (Some("replica-a".into()), 0)
    );
    let released = Instant::now();
    a.release().await.expect("release a");
    // Right after the release the holder is empty, unless b was already faster.
    let (just_after, _) = holder(&ns.client, &ns.name).await;
    assert!(
        just_after.is_none() || just_after.as_deref() == Some("replica-b"),
        "{just_after:?}"
    );
    futures::StreamExt::next(&mut became)
        .await
        .expect("the stream fires when b becomes leader");
    let takeover = released.elapsed();
    println!(
        "MEASURED take-over after a graceful release: {} ms (lease duration {} ms)",
        takeover.as_millis(),
        duration.as_millis()
    );
    assert!(b.is_leader());
    assert!(
        takeover < duration / 2,
        "a released lease is taken without waiting for it to expire: {takeover:?}"
    );
    // The graceful hand-over counts as a change of holder.
    assert_eq!(
        holder(&ns.client, &ns.name).await,
        (Some("replica-b".into()), 1)
    );
    overlap.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_release_never_clears_another_holder() {
    use kube::api::PostParams;
    let ns = common::TestNamespace::new("leader-intruder").await;
    // A long lease: a renews every second, so the release below almost always starts from the
    // Lease a wrote last (and, if a renewal comes first, a notices the intruder and stops).
    let a = elect_in(&ns, "replica-a", Duration::from_secs(8)).await;
    wait_leader(&a, Duration::from_secs(5)).await;
    // Someone else writes the Lease behind a's back (an operator's hand, a split-brain bug).
    let leases: Api<Lease> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut lease = leases.get(LEASE).await.expect("lease");
    lease.spec.get_or_insert_default().holder_identity = Some("intruder".into());
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("overwrite the holder");
    // a's release carries the resourceVersion of its own last write: it must not clear the
    // intruder (a blind write would).
    a.release().await.expect("release a");
    assert_eq!(
        holder(&ns.client, &ns.name).await.0.as_deref(),
        Some("intruder")
    );
}

/// A TCP forwarder to the API server that can be cut: then it drops every connection and leaves
/// new ones hanging, as a network partition would.
struct Partition {
    cut: Arc<AtomicBool>,
    port: u16,
}

impl Partition {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Hold the connection open, say nothing.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = async {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        } => {}
                    }
                });
            }
        });
        Partition { cut, port }
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_leader_cut_off_from_the_api_server_demotes_itself_before_anyone_takes_over() {
    let ns = common::TestNamespace::new("leader-cut").await;
    let duration = Duration::from_secs(3);
    // Replica a reaches the API server through a forwarder that the test cuts.
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    let authority = config
        .cluster_url
        .authority()
        .expect("server address")
        .to_string();
    let partition = Partition::start(authority).await;
    config.cluster_url = format!("https://127.0.0.1:{}", partition.port)
        .parse()
        .expect("url");
    config.read_timeout = Some(Duration::from_secs(30));
    let cut_client = Client::try_from(config).expect("client");
    let a = elect(cut_client, &ns.name, LEASE, "replica-a", duration)
        .await
        .expect("elect a");
    wait_leader(&a, Duration::from_secs(5)).await;
    let b = elect_in(&ns, "replica-b", duration).await;
    let overlap = Overlap::watch(a.check(), b.check());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.is_leader() && !b.is_leader());

    let cut = Instant::now();
    partition.cut.store(true, Ordering::SeqCst);
    // a demotes itself by its renew deadline after its last renewal (at most one retry period
    // before the cut) ...
    let a_check = a.check();
    let deadline = a.timing().renew_deadline + Duration::from_millis(200);
    while a_check.is_leader() {
        assert!(
            cut.elapsed() < deadline,
            "a was still leader {:?} after the cut",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let demoted = cut.elapsed();
    let lost = tokio::time::timeout(Duration::from_secs(5), a.lost())
        .await
        .expect("lost() resolves");
    assert!(matches!(lost, LeaderError::Lost { .. }), "{lost}");
    assert!(lost.to_string().contains(LEASE), "{lost}");
    // ... and b takes over only after the whole lease duration.
    wait_leader(&b, duration * 2).await;
    let took_over = cut.elapsed();
    println!(
        "MEASURED partitioned leader: demoted itself {} ms after the cut, the standby took \
         over {} ms after the cut (gap {} ms; lease {} ms, renew deadline {} ms)",
        demoted.as_millis(),
        took_over.as_millis(),
        (took_over - demoted).as_millis(),
        duration.as_millis(),
        a.timing().renew_deadline.as_millis()
    );
    assert!(
        took_over > demoted + Duration::from_millis(500),
        "a safety gap between the old leader stopping and the new one starting"
    );
    assert!(matches!(a.state(), LeaderState::Lost(_)), "{:?}", a.state());
    assert!(
        matches!(a.acquired().await, Err(LeaderError::Lost { .. })),
        "leadership is one-shot"
    );
    overlap.finish().await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_replica_without_lease_permissions_fails_with_a_clear_error() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::PostParams;
    let ns = common::TestNamespace::new("leader-rbac").await;
    let accounts: Api<ServiceAccount> = ns.api();
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "no-leases"}})).expect("sa");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create the ServiceAccount");
    let token = common_token(&ns, "no-leases").await;
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = Client::try_from(config).expect("client");
    let error = elect(client, &ns.name, LEASE, "replica-a", Duration::from_secs(3))
        .await
        .expect_err("forbidden");
    let message = error.to_string();
    assert!(message.contains("forbidden"), "{message}");
    assert!(
        message.contains(&format!("Lease {}/{LEASE}", ns.name)),
        "{message}"
    );
}

/// A short-lived token of a ServiceAccount (the TokenRequest API, as `kubectl create token`).
async fn common_token(ns: &common::TestNamespace, account: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use kube::api::PostParams;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = ns.api();
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 600}
    }))
    .expect("token request");
    let response: TokenRequest = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await
        .expect("token");
    response.status.and_then(|s| s.token).expect("token")
}
