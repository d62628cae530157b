//! Fixtures of the Gateway API traffic routing tests, shared with any test that drives a real
//! data plane: a user's HTTPRoute applied as a GitOps tool would (server-side apply, its own
//! field manager, force), reading a route's weights back, a routed SafeDeployment, and writing a
//! route's `status.parents` as a Gateway controller would (the shared cluster runs none).

#![allow(dead_code)]

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use safedeploy::controller::routes::route_resource;
use serde_json::{Value, json};

use crate::common::{Fault, TestNamespace};
use crate::operator::safe_deployment;

/// The field manager of the "GitOps tool" that applies the user's route.
pub const GITOPS_MANAGER: &str = "gitops";

/// The HTTPRoute API of a namespace.
pub fn routes(ns: &TestNamespace) -> Api<DynamicObject> {
    let resource: ApiResource = route_resource(safedeploy::api::routing::RouteKind::Http);
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

/// The user's HTTPRoute `name` as kept in Git: Gateway `gateway`, `hostnames`, an `/admin`
/// rule to a Service of its own, and the `main` rule the SafeDeployment `sd` steers, declaring
/// the stable Service at weight 100 and the canary at 0 (what the operator returns them to).
pub fn user_route(name: &str, sd: &str, gateway: &str, hostnames: &[&str]) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": gateway}],
            "hostnames": hostnames,
            "rules": [
                {"name": "admin",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                 "backendRefs": [{"name": "admin", "port": 80}]},
                {"name": "main",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [
                     {"name": format!("{sd}-stable"), "port": 80, "weight": 100},
                     {"name": format!("{sd}-canary"), "port": 80, "weight": 0}]},
            ],
        }
    })
}

/// Applies `route` as the GitOps tool does: server-side apply with force.
pub async fn apply_as_gitops(ns: &TestNamespace, route: &Value) -> DynamicObject {
    let name = route["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    routes(ns)
        .patch(
            &name,
            &PatchParams::apply(GITOPS_MANAGER).force(),
            &Patch::Apply(route),
        )
        .await
        .expect("apply the user's route")
}

/// What applying `route` as the GitOps tool would make of the live route now (server-side dry
/// run): equal to the live spec means a GitOps diff shows nothing.
pub async fn dry_run_as_gitops(ns: &TestNamespace, route: &Value) -> Value {
    let name = route["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut params = PatchParams::apply(GITOPS_MANAGER).force();
    params.dry_run = true;
    let applied = routes(ns)
        .patch(&name, &params, &Patch::Apply(route))
        .await
        .expect("dry-run apply of the user's route");
    serde_json::to_value(applied).expect("json")["spec"].clone()
}

/// The live route as JSON.
pub async fn live_route(ns: &TestNamespace, name: &str) -> Value {
    serde_json::to_value(routes(ns).get(name).await.expect("get the route")).expect("json")
}

/// The rule named `rule` of a route as JSON (Null when absent).
pub fn rule<'a>(route: &'a Value, rule: &str) -> &'a Value {
    route["spec"]["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["name"] == json!(rule)))
        .unwrap_or(&Value::Null)
}

/// Waits (polling every 50 ms, at most 60 s) until the route `name` satisfies `check`, and
/// returns it.
pub async fn wait_route<F: Fn(&Value) -> bool>(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    check: F,
) -> Value {
    let start = std::time::Instant::now();
    loop {
        let route = live_route(ns, name).await;
        if check(&route) {
            return route;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}; route: {route:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `(stable, canary)` weights of the `main` rule of a route named after SafeDeployment `sd`.
pub fn main_weights(route: &Value, sd: &str) -> (i64, i64) {
    let weight = |service: String| {
        rule(route, "main")["backendRefs"]
            .as_array()
            .and_then(|refs| refs.iter().find(|r| r["name"] == json!(service)))
            .and_then(|r| r["weight"].as_i64())
            .unwrap_or(-1)
    };
    (
        weight(format!("{sd}-stable")),
        weight(format!("{sd}-canary")),
    )
}

/// Writes the route's `status.parents` as the Gateway controller `controller` would, for the
/// route's current generation: Accepted and ResolvedRefs both `status` ("True"/"False").
pub async fn act_as_gateway(ns: &TestNamespace, name: &str, gateway: &str, status: &str) {
    let live = live_route(ns, name).await;
    let generation = live["metadata"]["generation"].as_i64().unwrap_or(1);
    let condition = |type_: &str| {
        json!({"type": type_, "status": status, "reason": if status == "True" { type_ } else { "Refused" },
               "message": format!("{type_} {status} by the test's gateway"),
               "observedGeneration": generation,
               "lastTransitionTime": "2026-12-02T12:00:00Z"})
    };
    let patch = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "status": {"parents": [{
            "parentRef": {"name": gateway},
            "controllerName": "example.com/test-gateway",
            "conditions": [condition("Accepted"), condition("ResolvedRefs")],
        }]},
    });
    routes(ns)
        .patch_status(
            name,
            &PatchParams::apply("test-gateway").force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("write the route's status as a Gateway would");
}

/// A SafeDeployment `name` of `replicas` pods of `image`, steering HTTPRoute `route`'s rule
/// `main` through the default Services `<name>-stable` / `<name>-canary` on port 80.
pub fn routed_safe_deployment(
    name: &str,
    replicas: i32,
    image: &str,
    route: &str,
    steps: Value,
) -> Value {
    let mut manifest = safe_deployment(name, replicas, image, Fault::None, steps);
    manifest["spec"]["strategy"]["canary"]["trafficRouting"] =
        json!({"gatewayAPI": {"httpRoutes": [{"name": route, "rule": {"name": "main"}}]}});
    manifest
}
