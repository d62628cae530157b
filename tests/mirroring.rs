//! `setMirrorRoute` against the real API server (Gateway API standard CRDs; no Gateway
//! controller runs, so the test writes the GatewayClass's `status.supportedFeatures` itself):
//! * hostile first: a GatewayClass that does not declare `HTTPRouteRequestMirror` blocks the
//!   revision before anything is scaled, and no mirror rule is ever written (a Gateway that
//!   does not implement the filter fails every request of the rule: Traefik answers 500);
//! * once the class declares it, the blocked revision rolls out by itself: the route carries
//!   the operator's mirror rule (answered by the stable Service, copied to the canary at the
//!   step's percentage) while the step is in force, with the routes finalizer on;
//! * the operator is killed while the mirror rule is in force, and the SafeDeployment is
//!   deleted: the restarted operator removes the rule before the object goes.

mod common;
mod gateway;
mod operator;

use std::time::{Duration, Instant};

use common::TestNamespace;
use gateway::{
    apply_as_gitops, live_route, main_weights, routed_safe_deployment, rule, user_route, wait_route,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use operator::{Operator, apply, apply_stable, wait_status};
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::{Value, json};

const NAME: &str = "web";
const ROUTE: &str = "web";
const GATEWAY: &str = "shop-gw";
const MIRROR_RULE: &str = "sd-web-shadow.mirror";

fn steps() -> Value {
    json!([
        {"setMirrorRoute": {"name": "shadow", "percentage": 20,
                            "match": [{"headerName": "x-shadow", "value": "yes"}]}},
        {"pause": {}},
        {"setWeight": 100}
    ])
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A GatewayClass of the test's own (cluster-scoped, named after the namespace) and the
/// Gateway `shop-gw` of that class in `ns`; returns the class's name.
async fn gateway_of_own_class(ns: &TestNamespace) -> String {
    let class = format!("mirror-{}", ns.name);
    let classes: Api<DynamicObject> = Api::all_with(
        ns.client.clone(),
        &resource("GatewayClass", "gatewayclasses"),
    );
    let object = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": class, "labels": {common::TEST_LABEL: "true"}},
        "spec": {"controllerName": "example.com/test-gateway"}});
    classes
        .patch(
            &class,
            &PatchParams::apply("test-gateway").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("GatewayClass");
    let gateways: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &resource("Gateway", "gateways"),
    );
    let gateway = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": GATEWAY},
        "spec": {"gatewayClassName": class,
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
    gateways
        .patch(
            GATEWAY,
            &PatchParams::apply("test-gateway").force(),
            &Patch::Apply(&gateway),
        )
        .await
        .expect("Gateway");
    class
}

/// Writes the class's `status.supportedFeatures` as its controller would.
async fn declare_features(ns: &TestNamespace, class: &str, features: &[&str]) {
    let classes: Api<DynamicObject> = Api::all_with(
        ns.client.clone(),
        &resource("GatewayClass", "gatewayclasses"),
    );
    let names: Vec<Value> = features.iter().map(|f| json!({"name": f})).collect();
    let status = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": class},
        "status": {"supportedFeatures": names}});
    classes
        .patch_status(
            class,
            &PatchParams::apply("test-gateway").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("write the class's supported features");
}

async fn delete_class(ns: &TestNamespace, class: &str) {
    let classes: Api<DynamicObject> = Api::all_with(
        ns.client.clone(),
        &resource("GatewayClass", "gatewayclasses"),
    );
    let _ = classes.delete(class, &Default::default()).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_mirror_route_is_written_only_where_the_gateway_class_declares_it_and_never_outlives_the_rollout()
 {
    let ns = operator::opted_out_namespace("mirror").await;
    let operator = Operator::start(&ns.name).await;
    let class = gateway_of_own_class(&ns).await;
    // A class like Traefik v3.6's: much of the extended HTTPRoute support, no mirroring.
    declare_features(&ns, &class, &["HTTPRoute", "HTTPRouteMethodMatching"]).await;
    apply_as_gitops(&ns, &user_route(ROUTE, NAME, GATEWAY, &["shop.example"])).await;
    let first = apply_stable(
        &ns,
        &routed_safe_deployment(NAME, 2, "registry.local/app:v1", ROUTE, steps()),
    )
    .await;

    apply(
        &ns,
        &routed_safe_deployment(NAME, 2, "registry.local/app:v2", ROUTE, steps()),
    )
    .await
    .expect("apply v2");
    let blocked = wait_status(&ns, NAME, Duration::from_secs(30), "v2 Blocked", |s| {
        s.phase == Phase::Blocked
    })
    .await;
    let message = blocked.message.clone().unwrap_or_default();
    println!("MEASURED the block's message: {message}");
    assert!(
        message.contains(&format!("GatewayClass {class}"))
            && message.contains("HTTPRouteRequestMirror")
            && message.contains("HTTPRouteRequestPercentageMirror"),
        "{message}"
    );
    let replica_sets: Api<ReplicaSet> = ns.api();
    let owned = replica_sets.list(&Default::default()).await.expect("list");
    assert_eq!(owned.items.len(), 1, "nothing of v2 was created");
    assert!(rule(&live_route(&ns, ROUTE).await, MIRROR_RULE).is_null());

    // The class now declares mirroring: the preflight's recheck lets v2 go, and its first step
    // puts the mirror rule on the route.
    declare_features(
        &ns,
        &class,
        &[
            "HTTPRoute",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestPercentageMirror",
        ],
    )
    .await;
    let unblocked_at = Instant::now();
    let route = wait_route(&ns, ROUTE, "the mirror rule", |r| {
        !rule(r, MIRROR_RULE).is_null()
    })
    .await;
    println!(
        "MEASURED class declared mirroring to the mirror rule on the route: {:.1} s (the preflight recheck is 10 s)",
        unblocked_at.elapsed().as_secs_f64()
    );
    let mirror = rule(&route, MIRROR_RULE);
    assert_eq!(
        mirror["filters"],
        json!([{"type": "RequestMirror", "requestMirror": {"percent": 20, "backendRef":
            {"group": "", "kind": "Service", "name": "web-canary", "port": 80}}}])
    );
    assert_eq!(
        mirror["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 1}]),
        "answered by the stable only"
    );
    assert_eq!(
        mirror["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-shadow", "value": "yes"}])
    );
    assert_eq!(
        main_weights(&route, NAME),
        (100, 0),
        "no weight on the canary yet"
    );
    let paused = wait_status(&ns, NAME, Duration::from_secs(60), "the pause", |s| {
        s.phase == Phase::Paused
    })
    .await;
    let routing = paused.traffic_routing.clone().expect("routing status");
    assert_eq!(routing.mirror_routes, vec!["shadow".to_string()]);
    assert_ne!(paused.canary_revision, first.stable_revision);
    let sds: Api<SafeDeployment> = ns.api();
    assert_eq!(
        sds.get(NAME).await.expect("sd").finalizers(),
        &["safedeploy.dev/routes".to_string()],
        "the routes finalizer is on while the mirror rule is"
    );

    // Killed with the mirror rule in force, then deleted: the next operator takes the rule off
    // before the SafeDeployment goes.
    operator.kill().await;
    let uid = sds.get(NAME).await.expect("sd").meta().uid.clone();
    sds.delete(NAME, &Default::default()).await.expect("delete");
    assert!(
        !rule(&live_route(&ns, ROUTE).await, MIRROR_RULE).is_null(),
        "no operator runs: the rule is still there"
    );
    let _operator = Operator::start(&ns.name).await;
    common::wait_until(Duration::from_secs(30), "the SafeDeployment gone", || {
        let sds = sds.clone();
        let uid = uid.clone();
        async move {
            let gone = sds
                .get_opt(NAME)
                .await?
                .is_none_or(|sd| sd.meta().uid != uid);
            Ok(gone.then_some(()))
        }
    })
    .await;
    let route = live_route(&ns, ROUTE).await;
    assert!(rule(&route, MIRROR_RULE).is_null(), "{route:#}");
    assert_eq!(main_weights(&route, NAME), (100, 0));
    delete_class(&ns, &class).await;
}
