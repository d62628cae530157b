//! The converter on an Argo Rollouts canary as its users write it (tests/fixtures/argo), and
//! on each kind of field that must be refused rather than guessed.

use serde_json::{Value, json};

use super::*;

fn fixture() -> Vec<Value> {
    let text = include_str!("../../../tests/fixtures/argo/rollout.yaml");
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn converted() -> Converted {
    let mut all = convert(&fixture()).unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[test]
fn the_steps_map_one_to_one_in_order() {
    let c = converted();
    let steps = &c.manifest["spec"]["strategy"]["canary"]["steps"];
    assert_eq!(
        steps,
        &json!([
            {"setHeaderRoute": {"name": "testers", "match": [{"headerName": "x-canary", "value": "always"}]}},
            {"setCanaryScale": {"replicas": 1}},
            {"setWeight": 5},
            {"pause": {"duration": "2m"}},
            {"analysis": {"template": "latency"}},
            {"setWeight": 50},
            {"pause": {"duration": "30s"}},
            {"setWeight": 100},
        ])
    );
}

#[test]
fn the_spec_keeps_the_template_and_reads_as_a_safe_deployment() {
    let c = converted();
    let spec = &c.manifest["spec"];
    assert_eq!(c.manifest["kind"], "SafeDeployment");
    assert_eq!(c.manifest["metadata"]["labels"]["team"], "storefront");
    assert_eq!(spec["replicas"], 4);
    assert_eq!(spec["progressDeadline"], "600s");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["image"],
        fixture()[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    let typed: crate::api::SafeDeploymentSpec = serde_json::from_value(spec.clone()).unwrap();
    assert_eq!(typed.analyses.len(), 2);
    let canary = &spec["strategy"]["canary"];
    assert_eq!(canary["backgroundAnalysis"], "error-rate");
    assert_eq!(
        canary["trafficRouting"]["gatewayAPI"]["httpRoutes"],
        json!([{"name": "web"}])
    );
    assert_eq!(canary["trafficRouting"]["canaryService"], "web-canary");
}

#[test]
fn conditions_become_thresholds_and_arguments_are_filled_in() {
    let c = converted();
    let analyses = c.manifest["spec"]["analyses"].as_array().unwrap();
    let errors = analyses.iter().find(|a| a["name"] == "error-rate").unwrap();
    assert_eq!(errors["interval"], "1m");
    assert_eq!(errors["count"], 10);
    let metric = &errors["metrics"][0];
    assert_eq!(metric["direction"], "lowerIsBetter");
    assert!(metric["thresholds"]["acceptable"].as_f64().unwrap() < 0.01);
    assert_eq!(metric["thresholds"]["critical"], 0.05);
    let query = metric["provider"]["prometheus"]["query"].as_str().unwrap();
    assert!(query.contains(r#"service="web""#), "{query}");
    assert!(
        query.contains(r#"rollouts_pod_template_hash="{{canary}}""#),
        "{query}"
    );
    assert!(!query.contains("args."), "{query}");
    let latency = analyses.iter().find(|a| a["name"] == "latency").unwrap();
    let web = &latency["metrics"][0]["provider"]["web"];
    assert_eq!(web["timeout"], "5s");
    assert_eq!(
        web["jsonPath"], "$.data.p99",
        "Kubernetes JSONPath braces are dropped"
    );
    assert_eq!(latency["metrics"][0]["thresholds"]["acceptable"], 0.3);
}

#[test]
fn every_change_of_meaning_is_noted() {
    let notes = converted().notes.join("\n");
    for expected in [
        "maxSurge",
        "failureLimit 1",
        "safedeploy.dev/revision",
        "namespace was left out",
        "never takes over a Service",
        "safedeploy attest",
    ] {
        assert!(
            notes.contains(expected),
            "no note about {expected}:\n{notes}"
        );
    }
}

/// A change to the fixture's documents.
type Edit = Box<dyn FnOnce(&mut Vec<Value>)>;

fn refused(edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut documents = fixture();
    edit(&mut documents);
    convert(&documents).unwrap_err().join("\n")
}

#[test]
fn what_has_no_equivalent_is_refused_with_the_field_named() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "spec.workloadRef.kind \"StatefulSet\"",
            Box::new(|d| {
                let spec = d[0]["spec"].as_object_mut().expect("spec");
                spec.remove("template");
                spec.insert(
                    "workloadRef".into(),
                    json!({"kind": "StatefulSet", "name": "web"}),
                );
            }),
        ),
        (
            "spec.workloadRef and spec.template",
            Box::new(|d| {
                d[0]["spec"]["workloadRef"] = json!({"kind": "Deployment", "name": "web"})
            }),
        ),
        (
            "blueGreen",
            Box::new(|d| d[0]["spec"]["strategy"] = json!({"blueGreen": {"activeService": "web"}})),
        ),
        (
            "steps[2].experiment",
            Box::new(|d| {
                d[0]["spec"]["strategy"]["canary"]["steps"][2] = json!({"experiment": {}})
            }),
        ),
        (
            "nginx",
            Box::new(|d| {
                d[0]["spec"]["strategy"]["canary"]["trafficRouting"] =
                    json!({"nginx": {"stableIngress": "web"}})
            }),
        ),
        (
            "matchExpressions",
            Box::new(|d| d[0]["spec"]["selector"] = json!({"matchExpressions": []})),
        ),
        (
            "provider [\"datadog\"]",
            Box::new(|d| {
                d[2]["spec"]["metrics"][0]["provider"] = json!({"datadog": {"query": "x"}})
            }),
        ),
        (
            "not a comparison",
            Box::new(|d| d[2]["spec"]["metrics"][0]["successCondition"] = json!("len(result) > 0")),
        ),
        (
            "exactly one template",
            Box::new(|d| {
                d[0]["spec"]["strategy"]["canary"]["steps"][4]["analysis"]["templates"] =
                    json!([{"templateName": "a"}, {"templateName": "b"}])
            }),
        ),
        (
            "is not in the input",
            Box::new(|d| {
                d.truncate(2);
            }),
        ),
        (
            "maxUnavailable",
            Box::new(|d| d[0]["spec"]["strategy"]["canary"]["maxUnavailable"] = json!("25%")),
        ),
        (
            "takes its value from a field",
            Box::new(|d| {
                d[1]["spec"]["args"][0]["valueFrom"] =
                    json!({"fieldRef": {"fieldPath": "metadata.name"}})
            }),
        ),
    ];
    for (expected, edit) in cases {
        let error = refused(edit);
        assert!(
            error.contains(expected),
            "expected {expected:?} in:\n{error}"
        );
        assert!(
            error.starts_with("Rollout web: ") || error.contains("Rollout web: "),
            "{error}"
        );
    }
    assert!(convert(&[json!({"kind": "Deployment"})]).unwrap_err()[0].contains("no Rollout"));
}

#[test]
fn a_prefix_match_becomes_an_anchored_escaped_regex() {
    let mut documents = fixture();
    documents[0]["spec"]["strategy"]["canary"]["steps"][0]["setHeaderRoute"]["match"][0]["headerValue"] =
        json!({"prefix": "qa.team+"});
    let c = convert(&documents).unwrap().remove(0);
    assert_eq!(
        c.manifest["spec"]["strategy"]["canary"]["steps"][0]["setHeaderRoute"]["match"][0]["regex"],
        r"^qa\.team\+.*"
    );
}

#[test]
fn a_rollout_that_references_a_deployment_adopts_it_with_argos_scale_down() {
    for (argo, ours) in [
        (None, "Never"),
        (Some("never"), "Never"),
        (Some("onsuccess"), "OnSuccess"),
        (Some("progressively"), "Progressively"),
    ] {
        let mut documents = fixture();
        let spec = documents[0]["spec"].as_object_mut().expect("spec");
        spec.remove("template");
        let mut reference = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
        if let Some(scale_down) = argo {
            reference["scaleDown"] = json!(scale_down);
        }
        spec.insert("workloadRef".into(), reference);
        let converted = convert(&documents).expect("converts");
        let sd = &converted[0].manifest;
        assert_eq!(sd["spec"]["workloadRef"]["name"], "web");
        assert_eq!(sd["spec"]["workloadRef"]["scaleDown"], ours, "{argo:?}");
        assert!(sd["spec"].get("template").is_none());
    }
}

#[test]
fn a_mirror_route_of_one_header_match_converts_and_method_or_path_matches_are_refused() {
    let mut documents = fixture();
    documents[0]["spec"]["strategy"]["canary"]["steps"][0] = json!({"setMirrorRoute": {
        "name": "shadow", "percentage": 35,
        "match": [{"headers": {"x-shadow": {"exact": "yes"}, "agent": {"prefix": "qa."}}}]}});
    let c = convert(&documents).expect("converts");
    assert_eq!(
        c[0].manifest["spec"]["strategy"]["canary"]["steps"][0],
        json!({"setMirrorRoute": {"name": "shadow", "percentage": 35, "match": [
            {"headerName": "agent", "regex": r"^qa\..*"},
            {"headerName": "x-shadow", "value": "yes"},
        ]}})
    );
    for refused in [
        json!([{"method": {"exact": "GET"}, "headers": {"x": {"exact": "1"}}}]),
        json!([{"path": {"prefix": "/api"}}]),
        json!([{"headers": {"x": {"exact": "1"}}}, {"headers": {"y": {"exact": "2"}}}]),
        json!([{}]),
    ] {
        let mut documents = fixture();
        documents[0]["spec"]["strategy"]["canary"]["steps"][0] =
            json!({"setMirrorRoute": {"name": "shadow", "match": refused}});
        let errors = convert(&documents).expect_err("refused");
        assert!(
            errors.iter().any(|e| e.contains("setMirrorRoute")),
            "{refused}: {errors:?}"
        );
    }
}
