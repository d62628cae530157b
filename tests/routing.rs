//! Gateway API traffic routing against the real API server (with the Gateway API v1.6 standard
//! CRDs; no Gateway controller runs, so the test writes a route's `status.parents` itself):
//! * a GitOps tool's server-side re-apply of the user's route mid-rollout (another field
//!   manager, force, a hostname and a filter changed): the operator's weights and header rule
//!   come back, the user's fields stay as applied, the field ownership is what
//!   docs/traffic-routing.md says, and after the promotion a GitOps dry run shows no drift;
//! * a revert writes the canary weight 0 before any ReplicaSet is scaled down (ordered by
//!   resourceVersion, the gap measured), also when the operator is killed after every write
//!   (the header rule is removed and the weights restored all the same).

mod common;
mod gateway;
mod operator;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestNamespace;
use futures::StreamExt;
use gateway::{
    GITOPS_MANAGER, act_as_gateway, apply_as_gitops, dry_run_as_gitops, live_route, main_weights,
    routed_safe_deployment, rule, user_route, wait_route,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt, watcher};
use operator::{Operator, annotate, apply, apply_stable, wait_status};
use safedeploy::api::Phase;
use safedeploy::api::labels::{LABEL_NAME, LABEL_REVISION};
use safedeploy::core::rollout::ROUTED_DRAIN;
use serde_json::{Value, json};

const NAME: &str = "web";
const ROUTE: &str = "web";
const GATEWAY: &str = "shop-gw";

fn steps() -> Value {
    json!([
        {"setCanaryScale": {"replicas": 1}},
        {"setHeaderRoute": {"name": "testers", "match": [{"headerName": "x-canary", "value": "always"}]}},
        {"setWeight": 1},
        {"pause": {}},
        {"setWeight": 100}
    ])
}

async fn selector_revision(ns: &TestNamespace, service: &str) -> Option<String> {
    let svc: Service = ns.api().get(service).await.ok()?;
    svc.spec?.selector?.get(LABEL_REVISION).cloned()
}

/// The fields each manager owns of the route's spec, as `managedFields` says (`f:` keys under
/// `f:spec`).
fn spec_fields_by_manager(route: &Value) -> BTreeMap<String, Vec<String>> {
    let mut owned = BTreeMap::new();
    for entry in route["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let manager = entry["manager"].as_str().unwrap_or_default().to_string();
        let fields: Vec<String> = entry["fieldsV1"]["f:spec"]
            .as_object()
            .map(|spec| spec.keys().cloned().collect())
            .unwrap_or_default();
        if !fields.is_empty() {
            owned.entry(manager).or_insert_with(Vec::new).extend(fields);
        }
    }
    owned
}

fn header_rule(route: &Value) -> &Value {
    rule(route, "sd-web-testers")
}

#[tokio::test]
#[ignore]
async fn a_gitops_reapply_mid_rollout_keeps_the_users_fields_and_the_operators_weights() {
    let (ns, _operator) = operator::setup("routing-gitops").await;
    apply_as_gitops(&ns, &user_route(ROUTE, NAME, GATEWAY, &["shop.example"])).await;
    let v1 = routed_safe_deployment(NAME, 4, "registry.local/app:v1", ROUTE, steps());
    let stable = apply_stable(&ns, &v1).await;
    let stable_hash = stable.stable_revision.clone().expect("stable");
    assert_eq!(
        selector_revision(&ns, "web-stable").await,
        Some(stable_hash.clone())
    );
    assert_eq!(
        selector_revision(&ns, "web-canary").await,
        Some(stable_hash.clone())
    );

    let v2 = routed_safe_deployment(NAME, 4, "registry.local/app:v2", ROUTE, steps());
    apply(&ns, &v2).await.expect("apply v2");
    let paused = wait_status(&ns, NAME, Duration::from_secs(60), "the pause at 1%", |s| {
        s.current_step_index == Some(3) && s.phase == Phase::Paused
    })
    .await;
    let canary_hash = paused.canary_revision.clone().expect("canary");
    let routing = paused.traffic_routing.clone().expect("routing status");
    assert_eq!(routing.canary_weight, 1);
    assert_eq!(routing.header_routes, vec!["testers".to_string()]);
    let route = live_route(&ns, ROUTE).await;
    assert_eq!(main_weights(&route, NAME), (99, 1), "1% to the canary");
    assert_eq!(
        header_rule(&route)["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-canary", "value": "always"}])
    );
    assert_eq!(
        selector_revision(&ns, "web-canary").await,
        Some(canary_hash.clone())
    );
    // A 1% canary on one pod; the stable keeps all four.
    let sizes: BTreeMap<String, i32> = ns
        .replica_sets()
        .await
        .iter()
        .map(|rs| {
            (
                rs.labels().get(LABEL_REVISION).cloned().unwrap_or_default(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(sizes.get(&canary_hash), Some(&1), "{sizes:?}");
    assert_eq!(sizes.get(&stable_hash), Some(&4), "{sizes:?}");

    // Field ownership, as the docs claim: rules (atomic) are the operator's while it steers,
    // hostnames and parentRefs stay the GitOps tool's.
    let owned = spec_fields_by_manager(&route);
    println!("MEASURED spec field owners mid-rollout: {owned:?}");
    assert_eq!(owned.get("safedeploy"), Some(&vec!["f:rules".to_string()]));
    let gitops = owned.get(GITOPS_MANAGER).cloned().unwrap_or_default();
    assert!(
        gitops.contains(&"f:hostnames".to_string()) && gitops.contains(&"f:parentRefs".to_string())
    );
    assert!(!gitops.contains(&"f:rules".to_string()), "{owned:?}");

    // The GitOps tool syncs mid-rollout: a hostname more, a filter on the steered rule.
    let mut from_git = user_route(ROUTE, NAME, GATEWAY, &["shop.example", "www.shop.example"]);
    from_git["spec"]["rules"][1]["filters"] = json!([{"type": "RequestHeaderModifier",
        "requestHeaderModifier": {"add": [{"name": "x-from", "value": "git"}]}}]);
    let synced = Instant::now();
    let reapplied = serde_json::to_value(apply_as_gitops(&ns, &from_git).await).expect("json");
    assert_eq!(
        main_weights(&reapplied, NAME),
        (100, 0),
        "git's weights landed first"
    );
    let route = wait_route(
        &ns,
        ROUTE,
        "the operator's weights and header rule to be back",
        |r| main_weights(r, NAME) == (99, 1) && !header_rule(r).is_null(),
    )
    .await;
    println!(
        "MEASURED a GitOps re-apply corrected by the operator within {} ms (polled every 50 ms)",
        synced.elapsed().as_millis()
    );
    assert_eq!(
        route["spec"]["hostnames"],
        json!(["shop.example", "www.shop.example"])
    );
    assert_eq!(
        rule(&route, "main")["filters"],
        from_git["spec"]["rules"][1]["filters"]
    );
    assert_eq!(
        header_rule(&route)["filters"],
        from_git["spec"]["rules"][1]["filters"],
        "the header rule carries the steered rule's filters"
    );
    assert_eq!(
        rule(&route, "admin")["backendRefs"][0]["name"],
        json!("admin")
    );
    assert_eq!(route["spec"]["parentRefs"][0]["name"], json!(GATEWAY));

    // A Gateway accepts it: status shows the weight set and the verdict.
    act_as_gateway(&ns, ROUTE, GATEWAY, "True").await;
    let seen = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the Gateway's verdict",
        |s| {
            s.traffic_routing
                .as_ref()
                .and_then(|t| t.routes.first())
                .is_some_and(|r| r.accepted == "True" && r.canary_weight == Some(1))
        },
    )
    .await;
    let shown = &seen.traffic_routing.expect("routing").routes[0];
    assert_eq!(
        (shown.stable_weight, shown.resolved_refs.as_str()),
        (Some(99), "True")
    );

    annotate(&ns, NAME, "safedeploy.dev/promote", "t1")
        .await
        .expect("promote");
    let promoted = operator::wait_promoted(&ns, NAME, Some(&stable_hash), "v2 promoted").await;
    assert_eq!(
        promoted.stable_revision.as_deref(),
        Some(canary_hash.as_str())
    );
    let route = wait_route(
        &ns,
        ROUTE,
        "the weights back at 100/0 without the header rule",
        |r| main_weights(r, NAME) == (100, 0) && header_rule(r).is_null(),
    )
    .await;
    // The Services are written right after the route, in the same reconcile.
    for service in ["web-stable", "web-canary"] {
        let selected = common::wait_until(
            Duration::from_secs(20),
            &format!("{service} to select the promoted revision"),
            || {
                let (ns, canary_hash) = (&ns, canary_hash.clone());
                async move {
                    let selected = selector_revision(ns, service).await;
                    Ok((selected.as_deref() == Some(canary_hash.as_str())).then_some(selected))
                }
            },
        )
        .await;
        assert_eq!(selected, Some(canary_hash.clone()));
    }
    // After the rollout the route is what Git says: a GitOps dry run changes nothing.
    assert_eq!(
        dry_run_as_gitops(&ns, &from_git).await,
        route["spec"],
        "no drift after the rollout"
    );
}

/// What a watch saw: the resourceVersion and time of the first write that set the route's
/// canary weight to 0 after it was above, and of the first scale-down of the canary.
#[derive(Default, Debug)]
struct Order {
    route_zero: Option<(u64, Instant)>,
    first_scale_down: Option<(u64, Instant)>,
}

fn version(object: &impl ResourceExt) -> u64 {
    object
        .resource_version()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Watches the route and the canary's ReplicaSet and records [`Order`].
fn watch_order(ns: &TestNamespace, canary: String) -> Arc<Mutex<Order>> {
    let order = Arc::new(Mutex::new(Order::default()));
    let routes = gateway::routes(ns);
    let seen = order.clone();
    tokio::spawn(async move {
        let mut stream = watcher(routes, watcher::Config::default())
            .applied_objects()
            .boxed();
        let mut above = false;
        while let Some(Ok(route)) = stream.next().await {
            let json = serde_json::to_value(&route).unwrap_or_default();
            let canary_weight = main_weights(&json, NAME).1;
            if canary_weight > 0 {
                above = true;
            } else if above && canary_weight == 0 {
                let mut order = seen.lock().unwrap();
                order
                    .route_zero
                    .get_or_insert((version(&route), Instant::now()));
            }
        }
    });
    let replica_sets: kube::Api<ReplicaSet> = ns.api();
    let seen = order.clone();
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(&format!("{LABEL_REVISION}={canary}"));
        let mut stream = watcher(replica_sets, config).applied_objects().boxed();
        let mut last: Option<i32> = None;
        while let Some(Ok(rs)) = stream.next().await {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            if last.is_some_and(|before| replicas < before) {
                let mut order = seen.lock().unwrap();
                order
                    .first_scale_down
                    .get_or_insert((version(&rs), Instant::now()));
            }
            last = Some(replicas);
        }
    });
    order
}

/// Checks the order a watch saw: the route's weight 0 committed (resourceVersion) before the
/// canary's first scale-down, which comes only after the drain time (the canary keeps its pods
/// while the Gateway may still send it requests); returns the gap as the watches saw it.
async fn assert_route_first(order: &Mutex<Order>) -> Duration {
    let start = Instant::now();
    while order.lock().unwrap().first_scale_down.is_none()
        && start.elapsed() < ROUTED_DRAIN + Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = order.lock().unwrap();
    let (route_version, route_at) = order.route_zero.expect("the route's weight went to 0");
    let (scale_version, scale_at) = order.first_scale_down.expect("the canary was scaled down");
    assert!(
        route_version < scale_version,
        "the route write ({route_version}) must come before the first scale-down ({scale_version})"
    );
    let gap = scale_at.saturating_duration_since(route_at);
    assert!(
        gap >= ROUTED_DRAIN - Duration::from_secs(1),
        "the canary was scaled down {gap:?} after its weight 0, before the drain time"
    );
    gap
}

fn revert_steps() -> Value {
    json!([
        {"setHeaderRoute": {"name": "testers", "match": [{"headerName": "cookie", "regex": "(^|; )canary=always(;|$)"}]}},
        {"setWeight": 50},
        {"pause": {}},
        {"setWeight": 100}
    ])
}

async fn at_pause(ns: &TestNamespace) -> String {
    let status = wait_status(ns, NAME, Duration::from_secs(60), "the pause at 50%", |s| {
        s.current_step_index == Some(2) && s.phase == Phase::Paused
    })
    .await;
    wait_route(ns, ROUTE, "50% and the header rule", |r| {
        main_weights(r, NAME) == (50, 50) && !header_rule(r).is_null()
    })
    .await;
    status.canary_revision.expect("a canary")
}

async fn wait_reverted(ns: &TestNamespace, canary: &str) {
    wait_status(ns, NAME, Duration::from_secs(90), "the revert", |s| {
        s.phase == Phase::Degraded && s.rejected_revisions.iter().any(|r| r == canary)
    })
    .await;
    wait_route(
        ns,
        ROUTE,
        "the weights restored and the header rule gone",
        |r| main_weights(r, NAME) == (100, 0) && header_rule(r).is_null(),
    )
    .await;
}

#[tokio::test]
#[ignore]
async fn a_revert_writes_weight_zero_before_any_scale_down_even_when_killed_between() {
    let ns = operator::opted_out_namespace("routing-revert").await;
    let operator = Operator::start(&ns.name).await;
    apply_as_gitops(&ns, &user_route(ROUTE, NAME, GATEWAY, &["shop.example"])).await;
    let image = |v: &str| format!("registry.local/app:{v}");
    apply_stable(
        &ns,
        &routed_safe_deployment(NAME, 4, &image("v1"), ROUTE, revert_steps()),
    )
    .await;

    // An abort with a running operator: the gap between the two writes.
    apply(
        &ns,
        &routed_safe_deployment(NAME, 4, &image("v2"), ROUTE, revert_steps()),
    )
    .await
    .expect("v2");
    let canary = at_pause(&ns).await;
    let order = watch_order(&ns, canary.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    annotate(&ns, NAME, "safedeploy.dev/abort", "a1")
        .await
        .expect("abort");
    wait_reverted(&ns, &canary).await;
    let gap = assert_route_first(&order).await;
    println!(
        "MEASURED route weight 0 -> first canary scale-down: {:.1} ms (as two watches saw them)",
        gap.as_secs_f64() * 1000.0
    );

    // The same with the operator killed right after every write it makes from the abort on.
    apply(
        &ns,
        &routed_safe_deployment(NAME, 4, &image("v3"), ROUTE, revert_steps()),
    )
    .await
    .expect("v3");
    let canary = at_pause(&ns).await;
    operator.kill().await;
    let order = watch_order(&ns, canary.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    annotate(&ns, NAME, "safedeploy.dev/abort", "a2")
        .await
        .expect("abort");
    let kills = operator::kill_after_every_write(&ns.name, usize::MAX).await;
    println!("MEASURED kills during the routed revert: {kills}");
    assert!(
        kills >= 3,
        "the revert is at least status, route and scale writes: {kills}"
    );
    // A quiet process means the revert's writes are done up to the drain; an operator that
    // is not killed finishes it (the drain time comes from status, so it holds across kills).
    let _operator = Operator::start(&ns.name).await;
    wait_reverted(&ns, &canary).await;
    assert_route_first(&order).await;
    let canary_rs = ns
        .replica_sets()
        .await
        .into_iter()
        .find(|rs| rs.labels().get(LABEL_REVISION) == Some(&canary))
        .expect("the canary's ReplicaSet");
    assert_eq!(canary_rs.spec.as_ref().and_then(|s| s.replicas), Some(0));
    assert_eq!(
        canary_rs.labels().get(LABEL_NAME).map(String::as_str),
        Some(NAME)
    );
}

#[tokio::test]
#[ignore]
async fn a_service_of_someone_else_is_never_taken_over() {
    let (ns, _operator) = operator::setup("routing-taken").await;
    let foreign = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-stable"},
        "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80}]}});
    let services: kube::Api<Service> = ns.api();
    services
        .patch(
            "web-stable",
            &kube::api::PatchParams::apply("someone").force(),
            &kube::api::Patch::Apply(&foreign),
        )
        .await
        .expect("someone's Service");
    apply_as_gitops(&ns, &user_route(ROUTE, NAME, GATEWAY, &["shop.example"])).await;
    apply(
        &ns,
        &routed_safe_deployment(NAME, 2, "registry.local/app:v1", ROUTE, steps()),
    )
    .await
    .expect("apply");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the refusal in status",
        |s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Stalled"
                    && c.status == "True"
                    && c.message
                        .contains("Service web-stable exists and is not owned")
            })
        },
    )
    .await;
    let svc = services.get("web-stable").await.expect("still there");
    assert_eq!(
        svc.spec
            .and_then(|s| s.selector)
            .and_then(|s| s.get("app").cloned()),
        Some("payments".to_string()),
        "{status:?}"
    );
}

/// Hostile: the SafeDeployment is deleted mid-rollout (1% and a header rule on the route). The
/// routes finalizer (on only while the route carries something of the operator's) holds the
/// deletion until the route is back to what the user applied: the
/// weights at rest, no rule of the operator's (which would point at a Service that goes with
/// the SafeDeployment), and a GitOps dry run of the user's manifest changes nothing.
#[tokio::test]
#[ignore]
async fn deleting_the_safedeployment_mid_rollout_leaves_the_route_as_the_user_wrote_it() {
    let (ns, _operator) = operator::setup("routing-delete").await;
    let from_git = user_route(ROUTE, NAME, GATEWAY, &["shop.example"]);
    apply_as_gitops(&ns, &from_git).await;
    let as_applied = live_route(&ns, ROUTE).await["spec"].clone();
    apply_stable(
        &ns,
        &routed_safe_deployment(NAME, 4, "registry.local/app:v1", ROUTE, steps()),
    )
    .await;
    let sds: kube::Api<safedeploy::api::SafeDeployment> = ns.api();
    let finalizers = |sd: safedeploy::api::SafeDeployment| sd.finalizers().to_vec();
    // At rest the route is the user's: nothing to undo, no finalizer.
    assert!(finalizers(sds.get(NAME).await.expect("sd")).is_empty());
    apply(
        &ns,
        &routed_safe_deployment(NAME, 4, "registry.local/app:v2", ROUTE, steps()),
    )
    .await
    .expect("v2");
    wait_route(&ns, ROUTE, "1% and the header rule", |r| {
        main_weights(r, NAME) == (99, 1) && !header_rule(r).is_null()
    })
    .await;
    assert_eq!(
        finalizers(sds.get(NAME).await.expect("sd")),
        vec!["safedeploy.dev/routes".to_string()],
        "the finalizer is on while the route carries the operator's weight and rule"
    );

    let deleted_at = Instant::now();
    sds.delete(NAME, &Default::default()).await.expect("delete");
    let start = Instant::now();
    while sds.get_opt(NAME).await.expect("get").is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the SafeDeployment never went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "MEASURED deletion to the SafeDeployment gone (routes released): {:.2} s",
        deleted_at.elapsed().as_secs_f64()
    );
    let route = live_route(&ns, ROUTE).await;
    assert_eq!(main_weights(&route, NAME), (100, 0));
    assert!(header_rule(&route).is_null(), "{route:#}");
    assert_eq!(
        route["spec"], as_applied,
        "the route is as the user applied it"
    );
    assert_eq!(
        dry_run_as_gitops(&ns, &from_git).await,
        route["spec"],
        "a GitOps diff shows nothing"
    );
}
