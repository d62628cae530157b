//! The operator's Gateway API routing, measured through a real data plane (Traefik v3,
//! `e2e/cluster.sh up --with-traefik`): a routed SafeDeployment runs its canary on one pod at a
//! 10% weight while the stable keeps its four, the requests that reach the canary are counted
//! through the proxy, a header-routed tester reaches only the canary, and an abort drops the
//! canary's share to 0 under continuous load with no failed request, before the canary's pods
//! go; and a mirror step on this Gateway, which cannot mirror, is blocked with no request
//! failed. Skips, with a message, when the data plane is not up.

mod common;
mod gateway;
mod operator;

use std::time::{Duration, Instant};

use common::traffic::{DataPlane, PodBackends, assert_share, send};
use gateway::{apply_as_gitops, routed_safe_deployment};
use k8s_openapi::api::apps::v1::ReplicaSet;
use operator::{annotate, apply, apply_stable, wait_status};
use safedeploy::api::Phase;
use safedeploy::api::labels::REQUEST_ABORT;
use serde_json::{Value, json};

const NAME: &str = "web";
const ROUTE: &str = "web";
const REQUESTS: u64 = 4000;
const CONCURRENCY: u64 = 16;

fn steps() -> Value {
    json!([
        {"setCanaryScale": {"replicas": 1}},
        {"setHeaderRoute": {"name": "testers", "match": [{"headerName": "x-canary", "value": "always"}]}},
        {"setWeight": 10},
        {"pause": {}},
        {"setWeight": 100}
    ])
}

/// The user's route as kept in Git: the data plane's Gateway, one host, and the rule `main`
/// declaring the stable Service at 100 and the canary at 0.
fn user_route(data_plane: &DataPlane, host: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE},
        "spec": {
            "parentRefs": [data_plane.parent_ref()],
            "hostnames": [host],
            "rules": [{
                "name": "main",
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": format!("{NAME}-stable"), "port": 80, "weight": 100},
                    {"name": format!("{NAME}-canary"), "port": 80, "weight": 0}],
            }],
        }
    })
}

/// A routed SafeDeployment whose Services send to the port the pod listener answers on.
fn manifest(image: &str, pod_port: u16) -> Value {
    let mut manifest = routed_safe_deployment(NAME, 4, image, ROUTE, steps());
    manifest["spec"]["strategy"]["canary"]["trafficRouting"]["targetPort"] = json!(pod_port);
    manifest
}

#[tokio::test]
#[ignore = "needs the data plane (e2e/cluster.sh up --with-traefik)"]
async fn an_operator_routed_canary_gets_its_weight_through_the_proxy_and_an_abort_fails_no_request()
{
    let Some(data_plane) = DataPlane::available().await else {
        return;
    };
    let (ns, _operator) = operator::setup("routed-dp").await;
    let backends = PodBackends::start(ns.client.clone(), &ns.name)
        .await
        .expect("start the pod listener");
    let host = format!("web.{}.dataplane.test", ns.name);
    apply_as_gitops(&ns, &user_route(&data_plane, &host)).await;
    let stable = apply_stable(&ns, &manifest("registry.local/app:v1", backends.port()))
        .await
        .stable_revision
        .expect("stable revision");

    apply(&ns, &manifest("registry.local/app:v2", backends.port()))
        .await
        .expect("apply v2");
    let paused = wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "the pause at 10%",
        |s| s.current_step_index == Some(3) && s.phase == Phase::Paused,
    )
    .await;
    let canary = paused.canary_revision.clone().expect("canary revision");
    // Traefik reported the route Accepted: the operator shows it in status.
    let routed = paused.traffic_routing.clone().expect("routing status");
    println!("MEASURED routing status at the pause: {routed:?}");
    assert_eq!(routed.canary_weight, 10);
    // One canary pod next to four stable pods.
    backends.wait_known(5).await;
    data_plane
        .wait_loaded_weight(&ns.name, ROUTE, "web-canary-http-80", 10)
        .await;

    let tally = send(&data_plane.url, &host, &[], REQUESTS, CONCURRENCY).await;
    println!(
        "MEASURED operator-set 10% on 1 canary pod of 5: canary answered {}/{} = {:.3}, failures {}",
        tally.count(&canary),
        tally.total(),
        tally.share(&canary),
        tally.failures
    );
    assert_eq!(tally.failures, 0, "{:?}", tally.failure_samples);
    assert_share("operator-set 10%", &tally, &canary, 0.10);
    let testers = send(
        &data_plane.url,
        &host,
        &[("x-canary", "always")],
        500,
        CONCURRENCY,
    )
    .await;
    println!(
        "MEASURED header route x-canary: always: canary answered {}/{}",
        testers.count(&canary),
        testers.total()
    );
    assert_eq!(testers.count(&canary), 500, "{testers:?}");

    // Abort under load: the canary's share goes to 0 before its pod is scaled down, and no
    // request fails on the way.
    let load = common::traffic::Load::start(&data_plane.url, &host, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let aborted_at = Instant::now();
    annotate(&ns, NAME, REQUEST_ABORT, "1")
        .await
        .expect("request the abort");
    let reverted = wait_status(&ns, NAME, Duration::from_secs(60), "the abort", |s| {
        s.canary_revision.is_none() && s.stable_revision.as_deref() == Some(stable.as_str())
    })
    .await;
    let replica_sets: kube::Api<ReplicaSet> = ns.api();
    common::wait_until(
        Duration::from_secs(60),
        "the canary's ReplicaSet at 0",
        || {
            let replica_sets = replica_sets.clone();
            let name = format!("{NAME}-{canary}");
            async move {
                let rs = replica_sets.get(&name).await?;
                let replicas = rs.spec.and_then(|s| s.replicas).unwrap_or(0);
                let ready = rs.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                Ok((replicas == 0 && ready == 0).then_some(()))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (last_canary, since) = load.last_answer_from(&canary);
    let tally = load.stop().await;
    println!(
        "MEASURED abort under load: {} requests, {} failed; the canary's last answer {:?} after the abort, {since} requests since; history {:?}",
        tally.total(),
        tally.failures,
        last_canary.map(|at| at.saturating_duration_since(aborted_at)),
        reverted.history.last().map(|e| (&e.outcome, &e.reason))
    );
    assert_eq!(tally.failures, 0, "{:?}", tally.failure_samples);
    assert!(since > 0, "requests were answered after the canary's last");
    assert_eq!(backends.unknown_answers(), 0);
}

/// Hostile: a mirror step on a Gateway that cannot mirror. Traefik v3.6's Gateway provider
/// does not implement the `RequestMirror` filter and answers every request of a rule that has
/// one with a 500 (shown here on a probe route of the test's own); its GatewayClass does not
/// declare `HTTPRouteRequestMirror`. The operator reads that, blocks the revision before
/// anything is scaled, and never writes the rule: the requests that would have been mirrored
/// are all answered by the stable revision.
#[tokio::test]
#[ignore = "needs the data plane (e2e/cluster.sh up --with-traefik)"]
async fn a_mirror_step_on_a_gateway_that_cannot_mirror_is_blocked_and_fails_no_request() {
    let Some(data_plane) = DataPlane::available().await else {
        return;
    };
    let (ns, _operator) = operator::setup("mirror-dp").await;
    let backends = PodBackends::start(ns.client.clone(), &ns.name)
        .await
        .expect("start the pod listener");
    let host = format!("web.{}.dataplane.test", ns.name);
    apply_as_gitops(&ns, &user_route(&data_plane, &host)).await;
    let mirror_steps = json!([
        {"setMirrorRoute": {"name": "shadow", "match": [{"headerName": "x-shadow", "value": "yes"}]}},
        {"pause": {}},
        {"setWeight": 100}
    ]);
    let with_mirror = |image: &str| {
        let mut manifest = manifest(image, backends.port());
        manifest["spec"]["strategy"]["canary"]["steps"] = mirror_steps.clone();
        manifest
    };
    let stable = apply_stable(&ns, &with_mirror("registry.local/app:v1"))
        .await
        .stable_revision
        .expect("stable revision");

    // What the rule would do on this Gateway: a probe route with a RequestMirror filter.
    let probe_host = format!("probe.{}.dataplane.test", ns.name);
    let probe = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "probe"},
        "spec": {"parentRefs": [data_plane.parent_ref()], "hostnames": [probe_host],
                 "rules": [{"filters": [{"type": "RequestMirror", "requestMirror":
                                {"backendRef": {"name": format!("{NAME}-canary"), "port": 80}}}],
                            "backendRefs": [{"name": format!("{NAME}-stable"), "port": 80}]}]}
    });
    apply_as_gitops(&ns, &probe).await;
    common::traffic::wait_route_accepted(ns.client.clone(), &ns.name, "probe").await;
    let mut probed = send(&data_plane.url, &probe_host, &[], 50, 4).await;
    for _ in 0..50 {
        let all_500 = probed
            .failure_samples
            .iter()
            .all(|s| s.contains("HTTP 500"));
        if probed.failures == probed.total() && all_500 {
            break;
        }
        // Until Traefik has loaded the probe route, its host is unknown (404).
        tokio::time::sleep(Duration::from_millis(200)).await;
        probed = send(&data_plane.url, &probe_host, &[], 50, 4).await;
    }
    println!(
        "MEASURED a RequestMirror rule on Traefik: {} of {} requests failed ({:?})",
        probed.failures,
        probed.total(),
        probed.failure_samples.first()
    );
    assert_eq!(probed.failures, 50, "{probed:?}");
    assert!(
        probed.failure_samples.iter().all(|s| s.contains("500")),
        "{probed:?}"
    );

    apply(&ns, &with_mirror("registry.local/app:v2"))
        .await
        .expect("apply v2");
    let blocked = wait_status(&ns, NAME, Duration::from_secs(30), "v2 Blocked", |s| {
        s.phase == Phase::Blocked
    })
    .await;
    let message = blocked.message.unwrap_or_default();
    println!("MEASURED the block's message: {message}");
    assert!(
        message.contains("HTTPRouteRequestMirror") && message.contains("GatewayClass"),
        "{message}"
    );
    let shadowed = send(
        &data_plane.url,
        &host,
        &[("x-shadow", "yes")],
        300,
        CONCURRENCY,
    )
    .await;
    println!(
        "MEASURED requests that a mirror rule would have matched: {} of {} answered by the stable, {} failed",
        shadowed.count(&stable),
        shadowed.total(),
        shadowed.failures
    );
    assert_eq!(shadowed.failures, 0, "{:?}", shadowed.failure_samples);
    assert_eq!(shadowed.count(&stable), 300);
    let route = gateway::live_route(&ns, ROUTE).await;
    assert!(
        gateway::rule(&route, "sd-web-shadow.mirror").is_null(),
        "{route:#}"
    );
}
