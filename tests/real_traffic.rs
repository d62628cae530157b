//! The real-pod tier's data plane: requests sent from the host through a Service (kube-proxy's
//! iptables rules on the real node) while a rollout runs.
//!
//! * During a replica-ratio canary, the canary's share of the requests is its share of the Ready
//!   pods, within a binomial tolerance: kube-proxy picks an endpoint per new connection, each
//!   with the same probability, so the canary's count over n requests is binomial(n, k/replicas).
//! * While a bad canary is reverted, no request fails, provided the pods wait (a preStop sleep)
//!   until kube-proxy has taken them out of the Service before they stop listening; without it,
//!   the requests that reach a pod between its SIGTERM and the rule update are refused.
//!
//! Every test skips, with a message, on a cluster without a Ready real node.

mod common;
mod operator;
mod real;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestNamespace;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use operator::{apply, apply_stable, setup, wait_status};
use real::{
    Tier, real_tier_available, scraped_analysis_web, scraped_template, wait_reverted_on, web,
    with_pre_stop,
};
use safedeploy::api::Phase;
use safedeploy::api::labels::LABEL_REVISION;
use serde_json::json;

/// Requests per measured share: at p = 1/4 the standard deviation of the share is 0.0068.
const SHARE_REQUESTS: usize = 4000;
/// Standard deviations of the acceptance interval: a correct share falls outside it once in
/// about 150 000 runs (two-sided normal tail at 4.5 σ), while a share off by one pod of four
/// (1/3 or 1/5 instead of 1/4) is more than 7 σ away.
const SHARE_SIGMAS: f64 = 4.5;

/// Half-width of the `sigmas` interval around `p` for the share of `n` independent requests
/// that each land on the canary with probability `p` (binomial).
fn binomial_half_width(p: f64, n: usize, sigmas: f64) -> f64 {
    sigmas * (p * (1.0 - p) / n as f64).sqrt()
}

#[test]
fn the_share_tolerance_tells_neighbouring_replica_ratios_apart() {
    let quarter = binomial_half_width(0.25, SHARE_REQUESTS, SHARE_SIGMAS);
    assert!((quarter - 0.0308).abs() < 0.0005, "{quarter}");
    for wrong in [1.0 / 3.0, 1.0 / 5.0] {
        assert!(
            (wrong - 0.25_f64).abs() > 1.5 * quarter,
            "{wrong} vs 1/4 ± {quarter}"
        );
    }
    let half = binomial_half_width(0.5, SHARE_REQUESTS, SHARE_SIGMAS);
    for wrong in [2.0 / 3.0, 2.0 / 5.0, 3.0 / 4.0] {
        assert!(
            (wrong - 0.5_f64).abs() > 2.0 * half,
            "{wrong} vs 1/2 ± {half}"
        );
    }
}

/// How one request through the Service ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Status 200 with this answer: the version (revision) of the pod that served it.
    Served(String),
    /// An HTTP error status, and the body.
    HttpError(u16, String),
    /// No HTTP answer (refused, reset, timed out), and why.
    Transport(String),
}

impl Outcome {
    fn failed(&self) -> bool {
        !matches!(self, Outcome::Served(_))
    }
}

/// A client that opens a new connection for every request: kube-proxy's iptables rules choose
/// an endpoint per connection, so a kept-alive connection would send every request to one pod.
fn fresh_connections() -> reqwest::Client {
    common::init();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(next) = source {
        parts.push(next.to_string());
        source = next.source();
    }
    parts.join(": ")
}

async fn send_one(client: &reqwest::Client, url: &str) -> Outcome {
    let response = match client.get(url).header("connection", "close").send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Transport(error_chain(&error)),
    };
    let status = response.status();
    match response.text().await {
        Ok(body) if status.is_success() => Outcome::Served(body.trim().to_owned()),
        Ok(body) => Outcome::HttpError(status.as_u16(), body.trim().to_owned()),
        Err(error) => Outcome::Transport(error_chain(&error)),
    }
}

/// `n` requests to `url`, `concurrency` at a time, each on a new connection: the outcomes counted.
async fn send_many(url: &str, n: usize, concurrency: usize) -> BTreeMap<Outcome, usize> {
    let client = fresh_connections();
    futures::stream::iter(0..n)
        .map(|_| send_one(&client, url))
        .buffer_unordered(concurrency)
        .fold(BTreeMap::new(), |mut counts, outcome| async move {
            *counts.entry(outcome).or_insert(0) += 1;
            counts
        })
        .await
}

/// Creates the Service `web` (port 80 to the pods' 8080, selecting `app: web`, both revisions):
/// its cluster IP.
async fn create_service(ns: &TestNamespace) -> String {
    let services: Api<Service> = ns.api();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service");
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP")
}

/// The endpoints kube-proxy's iptables rules send the Service `web` of `namespace` to now: the
/// addresses in the comments of its `KUBE-SVC-*` chain's jumps (`"<ns>/web -> <ip>:<port>"`), read
/// with `iptables-save` (the real tier runs as root, like the node).
async fn kube_proxy_endpoints(namespace: &str) -> common::Result<BTreeSet<String>> {
    let output = tokio::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!("iptables-save: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let marker = format!("--comment \"{namespace}/web -> ");
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("-A KUBE-SVC-"))
        .filter_map(|line| line.split_once(&marker))
        .filter_map(|(_, rest)| rest.split_once(':').map(|(ip, _)| ip.to_owned()))
        .collect())
}

/// The pods of `web` by revision, and their addresses, if the rollout is at rest: no pod
/// terminating or unready, and the Service's endpoints exactly these pods' addresses, all ready.
async fn at_rest(ns: &TestNamespace) -> common::Result<Option<(PodsByRevision, BTreeSet<String>)>> {
    let pods = ns.pods("web").await?;
    let mut by_revision: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut addresses = BTreeSet::new();
    for pod in &pods {
        if pod.metadata.deletion_timestamp.is_some() || !common::is_ready(pod) {
            return Ok(None);
        }
        let revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(LABEL_REVISION).cloned())
            .unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        by_revision.entry(revision).or_default().insert(name);
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        addresses.insert(ip.ok_or("a Ready pod without an IP")?);
    }
    let slices: Api<EndpointSlice> = ns.api();
    let slices = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await?;
    let mut endpoints = BTreeSet::new();
    for endpoint in slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
    {
        let ready = endpoint.conditions.as_ref().and_then(|c| c.ready);
        if ready != Some(true) {
            return Ok(None);
        }
        endpoints.extend(endpoint.addresses.iter().cloned());
    }
    Ok((endpoints == addresses).then_some((by_revision, addresses)))
}

/// Pod names by revision.
type PodsByRevision = BTreeMap<String, BTreeSet<String>>;

/// Waits until the rollout is at rest ([`at_rest`]) with `expected` Ready pods per revision and
/// kube-proxy's rules send the Service to exactly these pods: the pods' names by revision.
async fn wait_at_rest(ns: &TestNamespace, expected: &[(&str, usize)]) -> PodsByRevision {
    let what = format!("the Service's endpoints to be Ready pods {expected:?}");
    common::wait_until(Duration::from_secs(90), &what, || async move {
        let Some((pods, addresses)) = at_rest(ns).await? else {
            return Ok(None);
        };
        let counts: Vec<(&str, usize)> = pods.iter().map(|(r, p)| (r.as_str(), p.len())).collect();
        let mut wanted: Vec<(&str, usize)> = expected.to_vec();
        wanted.retain(|(_, n)| *n > 0);
        wanted.sort();
        let proxied = kube_proxy_endpoints(&ns.name).await?;
        Ok((counts == wanted && proxied == addresses).then_some(pods))
    })
    .await
}

/// During a replica-ratio canary of 4 pods, at 1 canary pod (weight 25) and at 2 (weight 50),
/// the canary serves its replica share of 4000 requests through the Service, within 4.5 σ of
/// the binomial, and no request fails.
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_the_canarys_share_of_requests_through_a_service_follows_its_replica_weight() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let (ns, _operator) = setup("real-share").await;
    let steps = json!([
        {"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}
    ]);
    let v1 = apply_stable(&ns, &web(Tier::Real, 4, "v1", false, &steps))
        .await
        .stable_revision
        .expect("stable revision");
    let url = format!("http://{}/", create_service(&ns).await);
    apply(&ns, &web(Tier::Real, 4, "v2", false, &steps))
        .await
        .expect("apply v2");
    for (pause_step, weight, canary_pods) in [(1, 25, 1_usize), (3, 50, 2)] {
        let status = wait_status(
            &ns,
            "web",
            Duration::from_secs(90),
            &format!("the pause at weight {weight}"),
            |s| s.phase == Phase::Paused && s.current_step_index == Some(pause_step),
        )
        .await;
        assert_eq!(status.canary_weight, weight);
        let canary = status.canary_revision.clone().expect("a canary revision");
        let expected = [
            (canary.as_str(), canary_pods),
            (v1.as_str(), 4 - canary_pods),
        ];
        let pods = wait_at_rest(&ns, &expected).await;
        let outcomes = send_many(&url, SHARE_REQUESTS, 8).await;
        assert_eq!(
            at_rest(&ns)
                .await
                .expect("read the pods")
                .map(|(pods, _)| pods),
            Some(pods),
            "the pods changed while the requests were sent: the measurement is void"
        );
        let served = |version: &str| {
            outcomes
                .get(&Outcome::Served(version.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let (by_canary, by_stable) = (served("v2"), served("v1"));
        assert_eq!(
            by_canary + by_stable,
            SHARE_REQUESTS,
            "every request served by v1 or v2: {outcomes:?}"
        );
        let expected_share = canary_pods as f64 / 4.0;
        let share = by_canary as f64 / SHARE_REQUESTS as f64;
        let tolerance = binomial_half_width(expected_share, SHARE_REQUESTS, SHARE_SIGMAS);
        let sigma = binomial_half_width(expected_share, SHARE_REQUESTS, 1.0);
        println!(
            "MEASURED canary share through the Service at weight {weight} ({canary_pods} of 4 pods): \
             {by_canary} of {SHARE_REQUESTS} = {share:.4} (expected {expected_share}, {:+.2} σ, \
             tolerance ±{tolerance:.4})",
            (share - expected_share) / sigma
        );
        assert!(
            (share - expected_share).abs() <= tolerance,
            "the canary's share {share:.4} is more than {SHARE_SIGMAS} σ from {expected_share}"
        );
        operator::annotate(
            &ns,
            "web",
            "safedeploy.dev/promote",
            &format!("share-{weight}"),
        )
        .await
        .expect("promote");
    }
}

/// What the requests through the Service saw while a bad canary was reverted.
#[derive(Debug)]
struct RevertTraffic {
    outcomes: BTreeMap<Outcome, usize>,
    /// Requests the canary served, and the stable.
    by_canary: usize,
    by_stable: usize,
    /// Each failed request: when it was sent (since the bad revision was applied) and how.
    failures: Vec<(Duration, Outcome)>,
    /// From the apply to the revert decision.
    apply_to_revert: Duration,
}

impl RevertTraffic {
    fn summary(&self) -> String {
        let failed = self.failures.len();
        let before_revert = self
            .failures
            .iter()
            .filter(|(sent, _)| *sent < self.apply_to_revert)
            .count();
        format!(
            "{} requests, {} served by the canary, {} by the stable, {failed} failed ({before_revert} \
             sent before the revert decision, {} after); reverted {:.1} s after the apply",
            self.by_canary + self.by_stable + failed,
            self.by_canary,
            self.by_stable,
            failed - before_revert,
            self.apply_to_revert.as_secs_f64()
        )
    }
}

/// 4 real pods of v1 behind a Service; a v2 whose requests take 400 ms is reverted at weight 50
/// by a Prometheus analysis of the latency its own pods report, while 4 clients send requests
/// through the Service (each on a new connection) from before the apply until the canary's
/// pods are gone and kube-proxy has synced.
async fn revert_under_traffic(prometheus: &str, pre_stop: Option<u32>) -> RevertTraffic {
    let (ns, _operator) = setup("real-revert").await;
    let latency = "sum(rate(safedeploy_demo_request_duration_seconds_sum{version=\"{{canary}}\"}[4s])) / \
                   sum(rate(safedeploy_demo_request_duration_seconds_count{version=\"{{canary}}\"}[4s]))";
    let manifest = scraped_analysis_web(
        4,
        with_pre_stop(scraped_template("web", &[]), pre_stop),
        ("latency", "mean-latency"),
        (prometheus, latency),
        json!({"target": 0.1, "acceptable": 0.15, "critical": 0.2}),
        "6s",
    );
    let v1 = apply_stable(&ns, &manifest)
        .await
        .stable_revision
        .expect("stable revision");
    let url = format!("http://{}/", create_service(&ns).await);
    wait_at_rest(&ns, &[(v1.as_str(), 4)]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let seen: Arc<Mutex<Vec<(Duration, Outcome)>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
            tokio::spawn(async move {
                let client = fresh_connections();
                while !stop.load(Ordering::SeqCst) {
                    let sent = started.elapsed();
                    let outcome = send_one(&client, &url).await;
                    seen.lock().expect("lock").push((sent, outcome));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    let mut bad = manifest.clone();
    bad["spec"]["template"] = with_pre_stop(
        scraped_template("web", &[("SAFEDEPLOY_EMITTER_LATENCY_MS", "400")]),
        pre_stop,
    );
    apply(&ns, &bad).await.expect("apply the slow v2");
    let applied = Instant::now();
    let entry =
        wait_reverted_on(&ns, &v1, "mean-latency", "the slow revision to be reverted").await;
    let apply_to_revert = applied.elapsed();
    // Until the canary's pods are gone, the stable's are all Ready and kube-proxy has synced.
    wait_at_rest(&ns, &[(v1.as_str(), 4)]).await;
    common::wait_until(
        Duration::from_secs(60),
        "the canary's pods to be gone",
        || {
            let ns = &ns;
            async move { Ok(ns.pods("web").await?.len().eq(&4).then_some(())) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("a client task");
    }
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    let canary = entry.hash.clone();
    let mut outcomes = BTreeMap::new();
    for (_, outcome) in &seen {
        *outcomes.entry(outcome.clone()).or_insert(0) += 1;
    }
    let count = |version: &str| {
        outcomes
            .get(&Outcome::Served(version.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    let applied_after = applied.duration_since(started);
    RevertTraffic {
        by_canary: count(&canary),
        by_stable: count(&v1),
        failures: seen
            .into_iter()
            .filter(|(_, outcome)| outcome.failed())
            .map(|(at, outcome)| (at.saturating_sub(applied_after), outcome))
            .collect(),
        outcomes,
        apply_to_revert,
    }
}

/// While a slow canary (2 of 4 pods) is reverted on its measured latency, no request sent
/// through the Service fails: the stable scales back up before the canary's pods go, kube-proxy
/// drops a deleted pod's endpoint, and the pods' preStop sleep (3 s) keeps them serving until
/// it has. The canary served some of the requests, so its pods were in the Service.
#[tokio::test]
#[ignore = "needs the local control plane with a real node and Prometheus (e2e/cluster.sh up --real-nodes --with-prometheus)"]
async fn real_no_request_through_the_service_fails_while_a_bad_canary_is_reverted() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let Some(prometheus) = real::prometheus_scraping_real_pods() else {
        return;
    };
    let traffic = revert_under_traffic(&prometheus, Some(3)).await;
    println!(
        "MEASURED requests through the Service during a revert, preStop sleep 3 s: {}",
        traffic.summary()
    );
    assert!(
        traffic.by_canary > 0,
        "the canary served nothing: {traffic:?}"
    );
    assert!(traffic.failures.is_empty(), "{traffic:#?}");
}

/// The same rollout without a preStop sleep: the demo application stops listening at SIGTERM,
/// which the kubelet sends as soon as it sees a pod's deletion, while kube-proxy's rules still
/// send new connections to the pod until its next sync. Requests then fail, refused (the pod is
/// not listening) or timed out (its network namespace is gone), both when the stable gives up
/// pods to the canary and when the canary's pods go at the revert. The failures are printed,
/// not counted against the operator: the pods' termination is the application's to make safe.
#[tokio::test]
#[ignore = "needs the local control plane with a real node and Prometheus (e2e/cluster.sh up --real-nodes --with-prometheus)"]
async fn real_requests_during_a_revert_without_a_pre_stop_sleep() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let Some(prometheus) = real::prometheus_scraping_real_pods() else {
        return;
    };
    let traffic = revert_under_traffic(&prometheus, None).await;
    println!(
        "MEASURED requests through the Service during a revert, no preStop: {}",
        traffic.summary()
    );
    for (sent, outcome) in &traffic.failures {
        println!("  sent {sent:.2?} after the apply, failed: {outcome:?}");
    }
    assert!(
        traffic.by_canary > 0,
        "the canary served nothing: {traffic:?}"
    );
    let failed_by_canary_itself = traffic
        .outcomes
        .keys()
        .any(|outcome| matches!(outcome, Outcome::HttpError(..)));
    assert!(
        !failed_by_canary_itself,
        "no pod answered an HTTP error: {traffic:#?}"
    );
}
