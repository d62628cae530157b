//! The bad input catalogue: invalid SafeDeployments and SafeDeploymentPolicies sent to the real
//! API server (dry run, so nothing is stored) must be rejected with 422 and a message in words;
//! valid specs at the boundaries must be accepted, so every case can fail in both directions.
//!
//! Other tests may install slightly different CRDs on the shared cluster, so each test installs
//! the CRDs of this build right before its assertions, and a case whose rejection does not
//! happen is tried once more after installing them again.
//!
//! The README section "Rejected at admission" lists the same cases; the catalogue of them is
//! `bad_input/cases.rs`.

#[path = "bad_input/cases.rs"]
mod cases;
mod common;
mod operator;

use std::future::Future;

use cases::{
    Case, Mutation, analysis_with, policy_cases, repeat, safe_deployment_cases, valid_policy,
    valid_safe_deployment,
};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, Error};
use safedeploy::api::{SafeDeployment, SafeDeploymentPolicy};
use serde_json::{Value, json};

/// A SafeDeployment or policy API that takes any JSON (invalid input may not fit the Rust
/// types).
fn dynamic_api<K>(client: &Client, namespace: Option<&str>) -> Api<DynamicObject>
where
    K: kube::Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `manifest` as a dry run: Ok when accepted, the API error otherwise.
async fn dry_run_create(api: &Api<DynamicObject>, manifest: &Value) -> Result<(), String> {
    let object: DynamicObject =
        serde_json::from_value(manifest.clone()).map_err(|e| format!("not an object: {e}"))?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some("bad-input-test".into()),
    };
    match api.create(&params, &object).await {
        Ok(_) => Ok(()),
        Err(Error::Api(status)) => Err(format!("{} {}", status.code, status.message)),
        Err(error) => Err(format!("no status: {error}")),
    }
}

/// Whether `outcome` is the rejection the case expects.
fn rejected_as_expected(outcome: &Result<(), String>, expected: &str) -> bool {
    matches!(outcome, Err(message) if message.starts_with("422 ") && message.contains(expected))
}

/// Runs every case against `base` with `submit`; a case that is not rejected as expected is
/// tried once more (after the CRDs are installed again, the first time). Returns the failures.
async fn run_cases<F, Fut>(client: &Client, base: &Value, cases: &[Case], submit: F) -> Vec<String>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut failures = Vec::new();
    let mut reinstalled = false;
    for Case {
        what,
        mutate,
        expected,
    } in cases
    {
        let mut manifest = base.clone();
        mutate(&mut manifest);
        let mut outcome = submit(manifest.clone()).await;
        if !rejected_as_expected(&outcome, expected) {
            // Someone may have installed other CRDs in between: ours again, and once more.
            if !reinstalled {
                operator::install_crds(client).await;
                reinstalled = true;
            }
            outcome = submit(manifest).await;
        }
        match &outcome {
            Err(message) if rejected_as_expected(&outcome, expected) => {
                println!("rejected ({what}): {message}")
            }
            Err(message) => failures.push(format!(
                "{what}: expected 422 with '{expected}', got: {message}"
            )),
            Ok(()) => failures.push(format!("{what}: accepted, expected '{expected}'")),
        }
    }
    failures
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn invalid_safe_deployments_are_rejected_with_readable_messages() {
    let ns = common::TestNamespace::new("badinput").await;
    operator::install_crds(&ns.client).await;
    let api = dynamic_api::<SafeDeployment>(&ns.client, Some(&ns.name));
    let base = valid_safe_deployment("web");
    // The base is valid, so each rejection below is about its one mistake.
    dry_run_create(&api, &base)
        .await
        .unwrap_or_else(|e| panic!("the valid base is rejected: {e}"));
    let cases = safe_deployment_cases();
    let failures = run_cases(&ns.client, &base, &cases, |manifest| {
        let api = api.clone();
        async move { dry_run_create(&api, &manifest).await }
    })
    .await;
    println!(
        "{} of {} invalid SafeDeployments rejected as expected",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn invalid_policies_are_rejected_with_readable_messages() {
    let client = common::client().await;
    operator::install_crds(&client).await;
    let api = dynamic_api::<SafeDeploymentPolicy>(&client, None);
    let base = valid_policy(&format!("bad-input-{}", common::random_suffix(6)));
    dry_run_create(&api, &base)
        .await
        .unwrap_or_else(|e| panic!("the valid base policy is rejected: {e}"));
    let cases = policy_cases();
    let failures = run_cases(&client, &base, &cases, |manifest| {
        let api = api.clone();
        async move { dry_run_create(&api, &manifest).await }
    })
    .await;
    println!(
        "{} of {} invalid policies rejected as expected",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Valid specs at the boundaries: each must be accepted (dry run).
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn specs_at_the_boundaries_are_accepted() {
    let ns = common::TestNamespace::new("badinput-ok").await;
    operator::install_crds(&ns.client).await;
    let sds = dynamic_api::<SafeDeployment>(&ns.client, Some(&ns.name));
    let policies = dynamic_api::<SafeDeploymentPolicy>(&ns.client, None);
    let accepted: Vec<(&str, Mutation)> = vec![
        (
            "name of 63 characters",
            Box::new(|m| m["metadata"]["name"] = json!(repeat('a', 63))),
        ),
        (
            "largest health thresholds",
            Box::new(|m| {
                m["spec"]["health"] = json!({
                    "startupLatencySeconds": {"target": 0, "acceptable": 3600, "critical": 86400},
                    "restarts": {"target": 0, "acceptable": 5, "critical": 1e9},
                })
            }),
        ),
        (
            "longest durations",
            Box::new(|m| {
                analysis_with(m, |a| {
                    a["interval"] = json!("1h");
                    a["initialDelay"] = json!("1h");
                    a["metrics"][0]["provider"]["prometheus"]["timeout"] = json!("60s");
                    a["metrics"][0]["provider"]["prometheus"]["range"] =
                        json!({"window": "24h", "step": "8s"});
                });
                m["spec"]["progressDeadline"] = json!("24h");
                m["spec"]["strategy"]["canary"]["steps"][2] = json!({"pause": {"duration": "24h"}});
            }),
        ),
        (
            "shortest progress deadline with a shorter minReadySeconds",
            Box::new(|m| {
                m["spec"]["progressDeadline"] = json!("10s");
                m["spec"]["minReadySeconds"] = json!(9);
            }),
        ),
        (
            "analysis that ends just before the default deadline",
            Box::new(|m| {
                analysis_with(m, |a| {
                    a["count"] = json!(10);
                    a["interval"] = json!("1m");
                })
            }),
        ),
        (
            "largest counts and lists",
            Box::new(|m| {
                let steps: Vec<Value> = (0..32).map(|i| json!({"setWeight": 1 + i * 3})).collect();
                m["spec"]["strategy"]["canary"]["steps"] = json!(steps);
                m["spec"]["replicas"] = json!(10000);
                m["spec"]["revisionHistoryLimit"] = json!(50);
                let containers: Vec<Value> = (0..32)
                    .map(|i| json!({"name": format!("c{i}"), "image": repeat('i', 512)}))
                    .collect();
                m["spec"]["template"]["spec"]["containers"] = json!(containers);
            }),
        ),
        (
            "prefixed label keys",
            Box::new(|m| {
                m["spec"]["selector"]["matchLabels"] = json!({"app.kubernetes.io/name": "web"});
                m["spec"]["template"]["metadata"]["labels"] =
                    json!({"app.kubernetes.io/name": "web", "tier": ""});
            }),
        ),
        (
            "minimumTraffic at its bounds, {{ revision }} with spaces",
            Box::new(|m| {
                cases::traffic_guard_with(m, "sum(requests{v=\"{{ revision }}\"})", json!(1e12))
            }),
        ),
        (
            "minimumTraffic.jsonPath of a web metric",
            Box::new(|m| {
                cases::web_metric_with(m, |_| {});
                cases::traffic_guard_of_web(
                    m,
                    json!({"jsonPath": "$.data.requests", "minimum": 100}),
                );
            }),
        ),
        (
            "smallest minimumTraffic",
            Box::new(|m| {
                cases::traffic_guard_with(m, "sum(requests{v=\"{{canary}}\"})", json!(1e-9))
            }),
        ),
        (
            "scaled to zero",
            Box::new(|m| m["spec"]["replicas"] = json!(0)),
        ),
        (
            "routed: 1% on one pod, a header and a mirror route",
            Box::new(cases::routed),
        ),
        (
            "routed: every routing field at its bound (a GRPCRoute: no mirror route)",
            Box::new(|m| {
                cases::routed(m);
                if let Some(steps) = m["spec"]["strategy"]["canary"]["steps"].as_array_mut() {
                    steps.retain(|s| s.get("setMirrorRoute").is_none());
                }
                let routing = &mut m["spec"]["strategy"]["canary"]["trafficRouting"];
                routing["stableService"] = json!(repeat('s', 63));
                routing["port"] = json!(65535);
                routing["gatewayAPI"]["grpcRoutes"] =
                    json!([{"name": repeat('g', 253), "rule": {"index": 15}}]);
            }),
        ),
        (
            "blue-green: manual switch, pre- and post-promotion analyses, delay at its bound",
            Box::new(|m| {
                cases::blue_green(m);
                let blue_green = &mut m["spec"]["strategy"]["blueGreen"];
                blue_green["scaleDownDelaySeconds"] = json!(3600);
                blue_green["activeService"] = json!(repeat('a', 63));
            }),
        ),
        (
            "blue-green: automatic switch after 86400 s",
            Box::new(|m| {
                cases::blue_green(m);
                let blue_green = &mut m["spec"]["strategy"]["blueGreen"];
                blue_green["autoPromotionEnabled"] = json!(true);
                blue_green["autoPromotionSeconds"] = json!(86400);
            }),
        ),
        (
            "a job metric with a 1h deadline and only its exit as check",
            Box::new(|m: &mut Value| {
                cases::job_metric_with(m, |metric| {
                    metric["provider"]["job"]["deadline"] = json!("1h");
                    metric["critical"] = json!(true);
                })
            }),
        ),
    ];
    let base = valid_safe_deployment("web");
    let mut failures = Vec::new();
    for (what, mutate) in &accepted {
        let mut manifest = base.clone();
        mutate(&mut manifest);
        match dry_run_create(&sds, &manifest).await {
            Ok(()) => println!("accepted ({what})"),
            Err(message) => failures.push(format!("{what}: rejected: {message}")),
        }
    }
    let mut policy = valid_policy(&format!("bad-input-ok-{}", common::random_suffix(6)));
    policy["spec"]["maxAge"] = json!("8760h");
    policy["spec"]["allowedClockSkew"] = json!("0s");
    policy["spec"]["namespaces"] = json!(["team-a", repeat('n', 63)]);
    policy["spec"]["namespaceSelector"] =
        json!({"matchLabels": {"kubernetes.io/metadata.name": "team-b"}});
    // Freeze windows and requirements at their bounds: 32 windows, a 256-character rule, a
    // three-part zone name, 744h, 72h of break-glass, every requirement at its limit.
    let mut windows: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            json!({"name": format!("w{i}"), "effect": "Allow",
            "once": {"start": "2026-12-24T00:00:00.5+14:00", "end": "2026-12-24T00:00:01-12:00"}})
        })
        .collect();
    let long_rule = format!("FREQ=DAILY{};BYMINUTE=0,1,2", ";INTERVAL=1".repeat(21));
    assert_eq!(long_rule.len(), 256);
    windows.push(json!({"name": repeat('x', 63), "reason": repeat('r', 256),
        "recurring": {"rrule": long_rule, "timeZone": "America/Argentina/Buenos_Aires",
                      "start": "2026-12-24T00:00:00", "duration": "744h"}}));
    windows.push(
        json!({"name": "weekend", "recurring": {"rrule": "FREQ=WEEKLY;BYDAY=FR",
        "timeZone": "Europe/Berlin", "start": "2026-01-02T18:00", "duration": "1m"}}),
    );
    policy["spec"]["freeze"] = json!({"windows": windows, "maxBreakGlass": "72h"});
    policy["spec"]["requirements"] = json!({"minSteps": 100, "maxWeightStep": 1,
        "requireBackgroundAnalysis": true, "requiredMetrics": (0..16).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "minBakeTime": "168h", "requireFreshBaselineIn": ["team-a"]});
    policy["spec"]["audit"] = json!({"recordRetention": "87600h"});
    match dry_run_create(&policies, &policy).await {
        Ok(()) => println!("accepted (policy at the boundaries)"),
        Err(message) => failures.push(format!("policy at the boundaries: rejected: {message}")),
    }
    // The least retention.
    policy["spec"]["audit"] = json!({"recordRetention": "1h"});
    match dry_run_create(&policies, &policy).await {
        Ok(()) => println!("accepted (recordRetention 1h)"),
        Err(message) => failures.push(format!("recordRetention 1h: rejected: {message}")),
    }
    println!(
        "{} of {} boundary specs accepted",
        accepted.len() + 2 - failures.len(),
        accepted.len() + 2
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Applies `manifest` as a dry run over the stored object: Ok when accepted.
async fn dry_run_apply(api: &Api<DynamicObject>, manifest: &Value) -> Result<(), String> {
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    let mut params = PatchParams::apply("bad-input-test").force();
    params.dry_run = true;
    match api.patch(name, &params, &Patch::Apply(manifest)).await {
        Ok(_) => Ok(()),
        Err(Error::Api(status)) => Err(format!("{} {}", status.code, status.message)),
        Err(error) => Err(format!("no status: {error}")),
    }
}

/// Scaling to zero is accepted, but a template change while at zero replicas is rejected: no
/// canary pod could be judged, and the revision would be reverted at the progress deadline.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn template_changes_at_zero_replicas_are_rejected() {
    let ns = common::TestNamespace::new("badinput-zero").await;
    operator::install_crds(&ns.client).await;
    let api = dynamic_api::<SafeDeployment>(&ns.client, Some(&ns.name));
    let mut single = valid_safe_deployment("single");
    single["spec"]["replicas"] = json!(0);
    let mut multi = valid_safe_deployment("multi");
    let template = multi["spec"]["template"].clone();
    if let Some(spec) = multi["spec"].as_object_mut() {
        spec.remove("template");
        spec.remove("replicas");
    }
    multi["spec"]["components"] = json!([
        {"name": "api", "replicas": 0, "template": template},
        {"name": "worker", "replicas": 0, "template": template},
    ]);
    for manifest in [&single, &multi] {
        let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(
            name,
            &PatchParams::apply("bad-input-test").force(),
            &Patch::Apply(manifest),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot store {name} at zero replicas: {e}"));
    }
    let image = "registry.local/app:v2";
    let mut single_changed = single.clone();
    single_changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    let mut single_scaled = single_changed.clone();
    single_scaled["spec"]["replicas"] = json!(2);
    let mut multi_changed = multi.clone();
    multi_changed["spec"]["components"][1]["template"]["spec"]["containers"][0]["image"] =
        json!(image);
    let mut multi_scaled = multi_changed.clone();
    multi_scaled["spec"]["components"][0]["replicas"] = json!(1);
    let mut steps_only = single.clone();
    steps_only["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 100}]);

    let rejected = [
        (
            "template change at replicas 0",
            &single_changed,
            "spec.template cannot change while spec.replicas is 0",
        ),
        (
            "component template change with every component at 0",
            &multi_changed,
            "spec.components templates cannot change while every component has 0 replicas",
        ),
    ];
    let accepted = [
        ("template change together with replicas 2", &single_scaled),
        (
            "component template change with one component scaled up",
            &multi_scaled,
        ),
        ("steps change at replicas 0", &steps_only),
    ];
    let mut failures = Vec::new();
    for (what, manifest, expected) in rejected {
        let mut outcome = dry_run_apply(&api, manifest).await;
        if !rejected_as_expected(&outcome, expected) {
            operator::install_crds(&ns.client).await;
            outcome = dry_run_apply(&api, manifest).await;
        }
        match &outcome {
            Err(message) if rejected_as_expected(&outcome, expected) => {
                println!("rejected ({what}): {message}")
            }
            other => failures.push(format!("{what}: expected '{expected}', got {other:?}")),
        }
    }
    for (what, manifest) in accepted {
        match dry_run_apply(&api, manifest).await {
            Ok(()) => println!("accepted ({what})"),
            Err(message) => failures.push(format!("{what}: rejected: {message}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
