//! The data plane, measured: requests sent through a real Gateway API implementation (Traefik v3,
//! `e2e/lib/traefik.sh up`) to the EndpointSlices of real Services, counted by the revision of
//! the pod that answered (tests/common/traffic.rs, docs/data-plane.md). The routes and Services
//! are written by the tests themselves; an operator-managed route is measured the same way.
//!
//! Every test skips, with a message, when the data plane is not up. Each prints `MEASURED` lines.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::traffic::{
    DataPlane, HTTP_FAULT_ANNOTATION, PodBackends, REVISION_LABEL, SHARE_Z, Tally, apply_route,
    assert_share, backend_ref, binomial_tolerance, http_route, route_parent_status, send,
    wait_route_accepted,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const STABLE: &str = "rev-stable";
const CANARY: &str = "rev-canary";
const STABLE_SERVICE: &str = "web-stable";
const CANARY_SERVICE: &str = "web-canary";
const SERVICE_PORT: u16 = 80;
/// Requests per measured split. With it, each split's 4σ tolerance is narrow enough that a
/// router off by 1 point at 1%, 3 points at 10% or 5 points at 50% fails (docs/data-plane.md).
const SPLIT_REQUESTS: u64 = 6000;
const CONCURRENCY: u64 = 16;

/// A namespace with a stable (3 pods) and a canary (1 pod) revision of `web`, one Service per
/// revision selecting it by its revision label, and the listener that answers as those pods.
struct Fixture {
    data_plane: DataPlane,
    namespace: TestNamespace,
    backends: PodBackends,
}

impl Fixture {
    /// `None` (the test skips) when the data plane is not up.
    async fn new(prefix: &str, canary_errors: bool) -> Option<Self> {
        let data_plane = DataPlane::available().await?;
        let namespace = TestNamespace::new(prefix).await;
        let backends = PodBackends::start(namespace.client.clone(), &namespace.name)
            .await
            .expect("start the backend listener");
        let fixture = Self {
            data_plane,
            namespace,
            backends,
        };
        fixture.revision(STABLE, 3, false).await;
        fixture.revision(CANARY, 1, canary_errors).await;
        fixture.service(STABLE_SERVICE, STABLE).await;
        fixture.service(CANARY_SERVICE, CANARY).await;
        fixture
            .namespace
            .wait_ready_pods("web", 4, Duration::from_secs(60))
            .await;
        fixture.backends.wait_known(4).await;
        fixture.pods_answer_directly().await;
        Some(fixture)
    }

    /// Dials every pod IP directly (no proxy): each must answer with its own revision, which
    /// holds only when the AnyIP routes of `traefik.sh up` make the pod CIDRs local. Returns the
    /// pod IPs.
    async fn pods_answer_directly(&self) -> Vec<String> {
        let pods = self
            .namespace
            .api::<Pod>()
            .list(&ListParams::default().labels("app=web"))
            .await
            .expect("list pods");
        let mut ips = Vec::new();
        for pod in &pods.items {
            let ip = pod
                .status
                .as_ref()
                .and_then(|status| status.pod_ip.clone())
                .expect("a Ready pod has an IP");
            let revision = &pod.labels()[REVISION_LABEL];
            let answer = self
                .backends
                .ask_directly(&ip)
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "pod IP {ip} does not answer ({error}): are the kwok pod CIDRs local \
                     (AnyIP routes of `e2e/lib/traefik.sh up`, which needs root)?"
                    )
                });
            let expected = if pod.annotations().contains_key(HTTP_FAULT_ANNOTATION) {
                500
            } else {
                200
            };
            assert_eq!(answer, (expected, revision.clone()), "pod {ip}");
            ips.push(ip);
        }
        ips
    }

    async fn revision(&self, revision: &str, replicas: i32, errors: bool) {
        let annotations = if errors {
            json!({ HTTP_FAULT_ANNOTATION: "error" })
        } else {
            json!({})
        };
        let replica_set: ReplicaSet = serde_json::from_value(json!({
            "metadata": { "name": format!("web-{revision}") },
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": "web", REVISION_LABEL: revision } },
                "template": {
                    "metadata": {
                        "labels": { "app": "web", REVISION_LABEL: revision },
                        "annotations": annotations
                    },
                    "spec": {
                        "containers": [{ "name": "app", "image": "registry.invalid/safedeploy/demo:1" }],
                        "terminationGracePeriodSeconds": 0
                    }
                }
            }
        }))
        .expect("replicaset manifest");
        self.namespace.create_replica_set(&replica_set).await;
    }

    async fn service(&self, name: &str, revision: &str) {
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "selector": { "app": "web", REVISION_LABEL: revision },
                "ports": [{ "name": "http", "port": SERVICE_PORT, "targetPort": self.backends.port() }]
            }
        }))
        .expect("service manifest");
        self.namespace
            .api::<Service>()
            .create(&PostParams::default(), &service)
            .await
            .unwrap_or_else(|error| panic!("cannot create Service {name}: {error}"));
    }

    fn host(&self, route: &str) -> String {
        format!("{route}.{}.dataplane.test", self.namespace.name)
    }

    /// Applies route `name` splitting `canary_weight` of 100 to the canary.
    async fn split_route(&self, name: &str, canary_weight: u32) {
        let route = http_route(
            &self.data_plane,
            name,
            &self.host(name),
            vec![json!({ "backendRefs": [
                backend_ref(STABLE_SERVICE, SERVICE_PORT, 100 - canary_weight),
                backend_ref(CANARY_SERVICE, SERVICE_PORT, canary_weight),
            ]})],
        );
        apply_route(self.namespace.client.clone(), &self.namespace.name, &route)
            .await
            .expect("apply the route");
    }

    /// Waits until Traefik accepted route `name` and serves its host (404 before).
    async fn wait_live(&self, name: &str) {
        let client = self.namespace.client.clone();
        wait_route_accepted(client, &self.namespace.name, name).await;
        let host = self.host(name);
        common::wait_until(
            Duration::from_secs(30),
            &format!("Traefik to serve {host}"),
            || {
                let (url, host) = (self.data_plane.url.clone(), host.clone());
                async move { Ok((send(&url, &host, &[], 1, 1).await.failures == 0).then_some(())) }
            },
        )
        .await;
    }

    async fn send(&self, route: &str, headers: &[(&str, &str)], count: u64) -> Tally {
        send(
            &self.data_plane.url,
            &self.host(route),
            headers,
            count,
            CONCURRENCY,
        )
        .await
    }
}

/// The harness itself: AnyIP delivers a connection to any pod IP to the listener, which answers
/// as that pod; an IP of no pod of the namespace is answered 502 and counted; a route naming a
/// missing Service is refused by Traefik in its status (so Accepted/ResolvedRefs are real).
#[tokio::test]
#[ignore = "needs the data plane (e2e/lib/traefik.sh up)"]
async fn backends_answer_as_the_pod_whose_ip_was_dialled() {
    let Some(fixture) = Fixture::new("dp-pods", false).await else {
        return;
    };
    // Fixture::new has dialled every pod IP; dial them again, then an IP of no pod.
    let pod_ips = fixture.pods_answer_directly().await;
    assert_eq!(pod_ips.len(), 4);
    let subnet = pod_ips[0].rsplit_once('.').expect("IPv4").0;
    let unused_ip = format!("{subnet}.254");
    let (status, _) = fixture
        .backends
        .ask_directly(&unused_ip)
        .await
        .expect("the AnyIP route covers the whole pod CIDR");
    assert_eq!(status, 502, "{unused_ip} is no pod of this namespace");
    assert_eq!(fixture.backends.unknown_answers(), 1);

    let broken = http_route(
        &fixture.data_plane,
        "broken",
        &fixture.host("broken"),
        vec![json!({ "backendRefs": [backend_ref("no-such-service", SERVICE_PORT, 1)] })],
    );
    let (client, namespace) = (fixture.namespace.client.clone(), &fixture.namespace.name);
    apply_route(client.clone(), namespace, &broken)
        .await
        .expect("apply the broken route");
    let resolved = common::wait_until(
        Duration::from_secs(30),
        "Traefik to report ResolvedRefs of the broken route",
        || {
            let client = client.clone();
            async move {
                let conditions = route_parent_status(client, namespace, "broken").await?;
                Ok(conditions.get("ResolvedRefs").cloned())
            }
        },
    )
    .await;
    assert_eq!(resolved, ("False".to_owned(), "BackendNotFound".to_owned()));
    // Traefik keeps the missing backend in the round robin: its share is answered 500 (404 only
    // until the route is loaded).
    let host = fixture.host("broken");
    let url = fixture.data_plane.url.clone();
    common::wait_until(
        Duration::from_secs(30),
        "Traefik to load the broken route",
        || {
            let (url, host) = (url.clone(), host.clone());
            async move {
                let tally = send(&url, &host, &[], 1, 1).await;
                Ok(tally
                    .failure_samples
                    .iter()
                    .any(|what| what.starts_with("HTTP 500"))
                    .then_some(()))
            }
        },
    )
    .await;
    let broken_tally = send(&url, &host, &[], 20, 4).await;
    let all_500 = broken_tally
        .failure_samples
        .iter()
        .all(|what| what.starts_with("HTTP 500"));
    assert!(broken_tally.failures == 20 && all_500, "{broken_tally:?}");
    println!(
        "MEASURED harness: {} pods answered as themselves through AnyIP, {unused_ip} (no pod) \
         502; a missing backend is ResolvedRefs=False/BackendNotFound and {} of 20 requests to \
         it failed with HTTP 500",
        pod_ips.len(),
        broken_tally.failures
    );
}

/// 1%, 10% and 50% of the requests reach the canary, measured through Traefik, within a binomial
/// tolerance; the routes' `status.parents` are written by Traefik (Accepted, ResolvedRefs).
#[tokio::test]
#[ignore = "needs the data plane (e2e/lib/traefik.sh up)"]
async fn weighted_splits_reach_the_canary_in_proportion() {
    let Some(fixture) = Fixture::new("dp-split", false).await else {
        return;
    };
    let splits = [("split-1", 1), ("split-10", 10), ("split-50", 50)];
    for (route, weight) in splits {
        fixture.split_route(route, weight).await;
    }
    for (route, _) in splits {
        fixture.wait_live(route).await;
    }
    for (route, weight) in splits {
        let started = Instant::now();
        let tally = fixture.send(route, &[], SPLIT_REQUESTS).await;
        let rate = tally.total() as f64 / started.elapsed().as_secs_f64();
        assert_share(
            &format!("split {weight}% ({rate:.0} requests/s)"),
            &tally,
            CANARY,
            f64::from(weight) / 100.0,
        );
        assert_eq!(
            tally.count(STABLE) + tally.count(CANARY),
            tally.total(),
            "only the two revisions answer: {tally:?}"
        );
    }
    assert_eq!(fixture.backends.unknown_answers(), 0);
}

/// A header match sends exactly the marked requests to the canary: `x-canary: always` reaches
/// only the canary, other values and unmarked requests only the stable revision.
#[tokio::test]
#[ignore = "needs the data plane (e2e/lib/traefik.sh up)"]
async fn header_routing_sends_only_marked_requests_to_the_canary() {
    let Some(fixture) = Fixture::new("dp-header", false).await else {
        return;
    };
    let route = http_route(
        &fixture.data_plane,
        "header",
        &fixture.host("header"),
        vec![
            json!({
                "matches": [{ "headers": [{ "type": "Exact", "name": "x-canary", "value": "always" }] }],
                "backendRefs": [backend_ref(CANARY_SERVICE, SERVICE_PORT, 1)]
            }),
            json!({ "backendRefs": [backend_ref(STABLE_SERVICE, SERVICE_PORT, 1)] }),
        ],
    );
    let (client, namespace) = (fixture.namespace.client.clone(), &fixture.namespace.name);
    apply_route(client, namespace, &route)
        .await
        .expect("apply the route");
    fixture.wait_live("header").await;
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("x-canary", "always")], CANARY),
        (&[("x-canary", "never")], STABLE),
        (&[], STABLE),
    ];
    for (headers, only) in cases {
        let tally = fixture.send("header", headers, 1000).await;
        println!(
            "MEASURED header routing {headers:?}: {:?}, failures {}",
            tally.by_revision, tally.failures
        );
        assert_eq!(tally.failures, 0, "{:?}", tally.failure_samples);
        assert_eq!(
            tally.count(only),
            1000,
            "{headers:?} must reach {only} only: {tally:?}"
        );
    }
}

/// The revert order under continuous load: the canary's weight goes to 0 first, its share drops
/// to 0, then its pods go; not one request fails on the way.
#[tokio::test]
#[ignore = "needs the data plane (e2e/lib/traefik.sh up)"]
async fn weight_flip_to_zero_under_load_fails_no_request() {
    let Some(fixture) = Fixture::new("dp-flip", false).await else {
        return;
    };
    fixture.split_route("flip", 50).await;
    fixture.wait_live("flip").await;
    let load = common::traffic::Load::start(&fixture.data_plane.url, &fixture.host("flip"), 4);
    common::wait_until(Duration::from_secs(30), "both revisions to answer", || {
        let tally = load.tally();
        async move { Ok((tally.count(CANARY) >= 100 && tally.count(STABLE) >= 100).then_some(())) }
    })
    .await;

    let flipped_at = Instant::now();
    fixture.split_route("flip", 0).await;
    // Traefik's API says when the new weight is loaded (skipped without its URL).
    let loaded_after = match fixture.data_plane.api_url {
        Some(_) => {
            let namespace = &fixture.namespace.name;
            let canary_backend = format!("{CANARY_SERVICE}-http-{SERVICE_PORT}");
            (fixture.data_plane)
                .wait_loaded_weight(namespace, "flip", &canary_backend, 0)
                .await;
            Some(flipped_at.elapsed())
        }
        None => None,
    };
    // Drained: 2000 answers in a row without the canary (at a 50% share, 2000 misses by chance
    // have probability 2^-2000).
    common::wait_until(
        Duration::from_secs(60),
        "the canary's share to reach 0",
        || {
            let (_, since) = load.last_answer_from(CANARY);
            async move { Ok((since >= 2000).then_some(())) }
        },
    )
    .await;
    let (last_canary, _) = load.last_answer_from(CANARY);
    let drained_after = last_canary.map(|at| at.saturating_duration_since(flipped_at));

    // Then the canary's pods go, still under load.
    let scaled_at = load.tally().total();
    fixture
        .namespace
        .api::<ReplicaSet>()
        .patch(
            &format!("web-{CANARY}"),
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
        )
        .await
        .expect("scale the canary down");
    common::wait_until(Duration::from_secs(30), "the canary pod to be gone", || {
        let pods = fixture.namespace.api::<Pod>();
        async move {
            let canary = pods
                .list(&ListParams::default().labels(&format!("{REVISION_LABEL}={CANARY}")))
                .await?;
            Ok(canary.items.is_empty().then_some(()))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, since) = load.last_answer_from(CANARY);
    let tally = load.stop().await;
    println!(
        "MEASURED weight flip 50% -> 0 under load: {} requests, {} failed, canary answered {} \
         in total, weight 0 loaded by Traefik {loaded_after:?} and last canary answer {:?} after \
         the route write, {} requests after the scale-down started, {since} requests since the \
         last canary answer",
        tally.total(),
        tally.failures,
        tally.count(CANARY),
        drained_after,
        tally.total() - scaled_at,
    );
    assert_eq!(
        tally.failures, 0,
        "requests failed during the flip: {:?}",
        tally.failure_samples
    );
    assert!(since >= 2000, "the canary answered again after draining");
    assert_eq!(fixture.backends.unknown_answers(), 0);
}

/// The harness counts failures, so the zero-failure assertions above can fail: with an error
/// canary at 50%, half the requests fail, all of them answered by the canary.
#[tokio::test]
#[ignore = "needs the data plane (e2e/lib/traefik.sh up)"]
async fn failures_of_an_error_canary_are_counted() {
    let Some(fixture) = Fixture::new("dp-errors", true).await else {
        return;
    };
    fixture.split_route("errors", 50).await;
    wait_route_accepted(
        fixture.namespace.client.clone(),
        &fixture.namespace.name,
        "errors",
    )
    .await;
    // Live when the stable side answers (the canary side fails by design).
    common::wait_until(
        Duration::from_secs(30),
        "Traefik to serve the route",
        || async { Ok((fixture.send("errors", &[], 10).await.count(STABLE) > 0).then_some(())) },
    )
    .await;
    let n = 2000;
    let tally = fixture.send("errors", &[], n).await;
    let tolerance = binomial_tolerance(n, 0.5, SHARE_Z);
    println!(
        "MEASURED error canary at 50%: {} of {n} failed (expected {} ± {tolerance:.1}), by \
         revision {:?}",
        tally.failures,
        n / 2,
        tally.failures_by_revision
    );
    assert!(
        (tally.failures as f64 - n as f64 / 2.0).abs() <= tolerance,
        "{tally:?}"
    );
    assert_eq!(
        tally.failures_by_revision.get(CANARY).copied(),
        Some(tally.failures),
        "every failure comes from the canary: {tally:?}"
    );
    assert_eq!(tally.count(CANARY), 0);
}
