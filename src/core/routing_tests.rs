//! The route decisions on hostile routes first: missing, wrong rule, foreign backends, the
//! operator's rule deleted or forged, oversized names; then the plain cases.

use serde_json::{Value, json};

use super::*;
use crate::api::routing::{
    HeaderMatch, RouteKind, RouteReference, RuleReference, SetHeaderRoute, SetMirrorRoute,
};

const SD: &str = "web";

fn backends() -> Backends<'static> {
    Backends {
        namespace: "shop",
        stable: "web-stable",
        canary: "web-canary",
        port: 80,
    }
}

fn reference(rule: Option<RuleReference>) -> RouteReference {
    RouteReference {
        name: "web".into(),
        rule,
    }
}

fn by_index(index: i32) -> RouteReference {
    reference(Some(RuleReference {
        name: None,
        index: Some(index),
    }))
}

fn by_name(name: &str) -> RouteReference {
    reference(Some(RuleReference {
        name: Some(name.into()),
        index: None,
    }))
}

/// A user's route: an `/admin` rule to another Service, then the steered `/` rule with a
/// filter, the two operator Services and a foreign mirror backend.
fn rules() -> Vec<Value> {
    vec![
        json!({"name": "admin", "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
               "backendRefs": [{"group": "", "kind": "Service", "name": "admin", "port": 80, "weight": 1}]}),
        json!({"name": "main", "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
               "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-from", "value": "gw"}]}}],
               "backendRefs": [
                   {"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 100},
                   {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 0},
                   {"group": "", "kind": "Service", "name": "legacy", "port": 80, "weight": 7}]}),
    ]
}

fn header_route(name: &str, header: &str, value: &str) -> SetHeaderRoute {
    SetHeaderRoute {
        name: name.into(),
        matches: vec![HeaderMatch {
            header_name: header.into(),
            value: Some(value.into()),
            regex: None,
        }],
    }
}

fn weights(rule: &Value) -> Vec<(String, i64)> {
    rule["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn route_object(rules: Vec<Value>, generation: i64, parents: Value) -> Value {
    json!({"metadata": {"name": "web", "generation": generation},
           "spec": {"rules": rules}, "status": {"parents": parents}})
}

#[test]
fn a_missing_route_is_a_problem_not_a_panic() {
    let seen = observe_route(RouteKind::Http, SD, &by_index(0), None, &backends());
    let problem = seen.problem.clone().unwrap_or_default();
    assert!(problem.contains("does not exist"), "{problem}");
    assert!(!seen.carries(SD, 0, &[], &[]));
}

#[test]
fn a_rule_index_out_of_range_or_an_unknown_rule_name_is_refused_in_words() {
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_index(5),
        &backends(),
        10,
        &[], &[],
    );
    assert_eq!(
        out,
        Err(RouteProblem::IndexOutOfRange { index: 5, count: 2 })
    );
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_name("nope"),
        &backends(),
        10,
        &[], &[],
    );
    assert_eq!(out, Err(RouteProblem::RuleNotFound("nope".into())));
    // An empty route has no rule 0.
    let out = desired_rules(RouteKind::Http, SD, &[], &by_index(0), &backends(), 10, &[], &[]);
    assert!(matches!(out, Err(RouteProblem::IndexOutOfRange { .. })));
}

#[test]
fn only_the_operators_two_weights_change_and_a_foreign_backend_keeps_its_weight() {
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_name("main"),
        &backends(),
        10,
        &[], &[],
    )
    .expect("steerable");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], rules()[0], "the other rule is untouched");
    assert_eq!(
        weights(&out[1]),
        vec![
            ("web-stable".into(), 90),
            ("web-canary".into(), 10),
            ("legacy".into(), 7)
        ]
    );
    // Everything but the weights is as read (the filter, the matches).
    let mut expected = rules()[1].clone();
    expected["backendRefs"][0]["weight"] = json!(90);
    expected["backendRefs"][1]["weight"] = json!(10);
    assert_eq!(out[1], expected);
}

#[test]
fn a_rule_that_does_not_list_both_services_or_lists_one_twice_is_refused() {
    let mut missing = rules();
    missing[1]["backendRefs"] = json!([{"name": "web-stable", "port": 80}]);
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &missing,
        &by_index(1),
        &backends(),
        10,
        &[], &[],
    );
    assert_eq!(
        out,
        Err(RouteProblem::MissingBackend {
            service: "web-canary".into()
        })
    );
    let mut twice = rules();
    twice[1]["backendRefs"] = json!([{"name": "web-stable"}, {"name": "web-canary"}, {"name": "web-canary", "weight": 3}]);
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &twice,
        &by_index(1),
        &backends(),
        10,
        &[], &[],
    );
    assert!(matches!(
        out,
        Err(RouteProblem::DuplicateBackend { count: 2, .. })
    ));
    // A Service of the same name in another namespace, or another kind, is not ours.
    let mut foreign = rules();
    foreign[1]["backendRefs"][1]["namespace"] = json!("elsewhere");
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &foreign,
        &by_index(1),
        &backends(),
        10,
        &[], &[],
    );
    assert!(matches!(out, Err(RouteProblem::MissingBackend { .. })));
}

#[test]
fn a_deleted_header_rule_is_added_back_and_an_unwanted_one_removed() {
    let headers = [header_route("testers", "x-canary", "always")];
    let with = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_name("main"),
        &backends(),
        0,
        &headers, &[],
    )
    .expect("steerable");
    assert_eq!(with.len(), 3);
    let rule = &with[2];
    assert_eq!(rule["name"], json!("sd-web-testers"));
    assert_eq!(
        rule["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-canary", "value": "always"}])
    );
    assert_eq!(
        rule["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/"})
    );
    assert_eq!(rule["filters"], rules()[1]["filters"]);
    assert_eq!(weights(rule), vec![("web-canary".into(), 1)]);
    // Applying the same wish to its own output changes nothing (no write loop).
    let again = desired_rules(
        RouteKind::Http,
        SD,
        &with,
        &by_name("main"),
        &backends(),
        0,
        &headers, &[],
    );
    assert_eq!(again.as_ref(), Ok(&with));
    // Someone deleted it: it comes back.
    let deleted: Vec<Value> = with.iter().take(2).cloned().collect();
    let back = desired_rules(
        RouteKind::Http,
        SD,
        &deleted,
        &by_name("main"),
        &backends(),
        0,
        &headers, &[],
    );
    assert_eq!(back.as_ref(), Ok(&with));
    // The rollout ended: it goes, and the index of the user's rules never counted it.
    let ended = desired_rules(
        RouteKind::Http,
        SD,
        &with,
        &by_index(1),
        &backends(),
        0,
        &[], &[],
    )
    .expect("steerable");
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|r| r["name"] != json!("sd-web-testers")));
}

#[test]
fn a_users_rule_that_borrows_the_operators_prefix_is_not_taken_for_the_operators() {
    let mut forged = rules();
    forged.push(json!({"name": "sd-web-mine", "backendRefs": [{"name": "admin", "port": 80}]}));
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &forged,
        &by_index(1),
        &backends(),
        50,
        &[], &[],
    )
    .expect("steerable");
    assert_eq!(out.len(), 3, "the user's rule stays");
    assert_eq!(out[2], forged[2]);
    // Another SafeDeployment's rules are not this one's either.
    let mut other = rules();
    other.push(json!({"name": "sd-shop-x", "backendRefs": [{"name": "web-canary"}]}));
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &other,
        &by_index(1),
        &backends(),
        50,
        &[], &[],
    )
    .expect("steerable");
    assert_eq!(out.len(), 3);
}

#[test]
fn header_rules_that_would_pass_sixteen_rules_are_refused() {
    let many: Vec<Value> = (0..15)
        .map(|i| json!({"name": format!("r{i}"), "backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]}))
        .collect();
    let headers = [
        header_route("a", "x-a", "1"),
        header_route("b", "x-b", "1"),
    ];
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &many,
        &by_index(0),
        &backends(),
        0,
        &headers, &[],
    );
    assert_eq!(
        out,
        Err(RouteProblem::TooManyRules {
            header_rules: 2,
            total: 17
        })
    );
}

#[test]
fn ten_thousand_character_names_and_weights_out_of_range_never_panic() {
    let long = "x".repeat(10_000);
    let hostile = vec![json!({"name": long, "matches": "not a list", "backendRefs": [
        {"name": long, "weight": i64::MAX}, {"name": "web-stable", "weight": -5},
        {"name": "web-canary", "weight": "heavy"}, 42, null]})];
    let out = desired_rules(
        RouteKind::Http,
        SD,
        &hostile,
        &by_name(&long),
        &backends(),
        1000,
        &[header_route(&long, &long, &long)], &[],
    )
    .expect("the two Services are there");
    assert_eq!(out[0]["backendRefs"][1]["weight"], json!(0), "clamped to 100");
    assert_eq!(out[0]["backendRefs"][2]["weight"], json!(100));
    assert_eq!(out[0]["backendRefs"][0]["weight"], json!(i64::MAX));
    let seen = observe_route(
        RouteKind::Http,
        &long,
        &by_name(&long),
        Some(&route_object(hostile, i64::MAX, json!("not a list"))),
        &backends(),
    );
    // A weight that is not a number reads as the Gateway API default of 1.
    assert_eq!(seen.canary_weight, Some(1));
    assert_eq!(seen.accepted, "Unknown");
}

#[test]
fn gateway_verdicts_about_an_older_generation_do_not_count() {
    let parent = |status: &str, generation: i64| {
        json!({"parentRef": {"name": "gw"}, "conditions": [
            {"type": "Accepted", "status": status, "observedGeneration": generation, "message": "said so"},
            {"type": "ResolvedRefs", "status": "True", "observedGeneration": generation}]})
    };
    let seen = |parents: Value| {
        observe_route(
            RouteKind::Http,
            SD,
            &by_index(1),
            Some(&route_object(rules(), 3, parents)),
            &backends(),
        )
    };
    let current = seen(json!([parent("True", 3)]));
    assert_eq!(
        (current.accepted.as_str(), current.resolved_refs.as_str()),
        ("True", "True")
    );
    assert_eq!(
        (current.stable_weight, current.canary_weight),
        (Some(100), Some(0))
    );
    assert!(current.carries(SD, 0, &[], &[]));
    assert!(!current.carries(SD, 10, &[], &[]));
    let stale = seen(json!([parent("True", 2)]));
    assert_eq!(stale.accepted, "Unknown");
    let refused = seen(json!([parent("True", 3), parent("False", 3)]));
    assert_eq!(refused.accepted, "False");
    assert!(refused.parents_message.contains("said so"));
    assert!(!refused.carries(SD, 0, &[], &[]), "a refused route holds the step");
    assert_eq!(seen(json!([])).accepted, "Unknown");
}

#[test]
fn a_grpc_rule_without_matches_gets_a_header_only_match() {
    let grpc = vec![json!({"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]})];
    let out = desired_rules(
        RouteKind::Grpc,
        SD,
        &grpc,
        &by_index(0),
        &backends(),
        25,
        &[SetHeaderRoute {
            name: "t".into(),
            matches: vec![HeaderMatch {
                header_name: "x-t".into(),
                value: None,
                regex: Some("^a.*".into()),
            }],
        }], &[],
    )
    .expect("steerable");
    assert_eq!(
        out[1]["matches"],
        json!([{"headers": [{"type": "RegularExpression", "name": "x-t", "value": "^a.*"}]}])
    );
    assert_eq!(weights(&out[0]), vec![("web-stable".into(), 75), ("web-canary".into(), 25)]);
}

fn mirror_route(percentage: Option<i32>) -> SetMirrorRoute {
    SetMirrorRoute {
        name: "shadow".into(),
        matches: vec![HeaderMatch {
            header_name: "x-shadow".into(),
            value: Some("yes".into()),
            regex: None,
        }],
        percentage,
    }
}

#[test]
fn a_mirror_rule_is_answered_by_the_stable_copies_to_the_canary_and_goes_at_the_end() {
    let mirrors = [mirror_route(Some(20))];
    let headers = [header_route("testers", "x-canary", "always")];
    let with = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_name("main"),
        &backends(),
        10,
        &headers,
        &mirrors,
    )
    .expect("steerable");
    assert_eq!(with.len(), 4);
    let rule = &with[3];
    assert_eq!(rule["name"], json!("sd-web-shadow.mirror"));
    assert_eq!(weights(rule), vec![("web-stable".into(), 1)], "answered by the stable only");
    assert_eq!(
        rule["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-shadow", "value": "yes"}])
    );
    let filters = rule["filters"].as_array().expect("filters");
    assert_eq!(filters[0], rules()[1]["filters"][0], "the steered rule's filters first");
    assert_eq!(
        filters[1],
        json!({"type": "RequestMirror", "requestMirror": {"percent": 20, "backendRef":
            {"group": "", "kind": "Service", "name": "web-canary", "port": 80}}})
    );
    // Its own output changes nothing, and it is seen as the operator's, not the user's.
    let again = desired_rules(
        RouteKind::Http,
        SD,
        &with,
        &by_name("main"),
        &backends(),
        10,
        &headers,
        &mirrors,
    );
    assert_eq!(again.as_ref(), Ok(&with));
    let live = route_object(with.clone(), 1, json!([]));
    let seen = observe_route(RouteKind::Http, SD, &by_name("main"), Some(&live), &backends());
    assert!(seen.carries(SD, 10, &["testers".into()], &["shadow".into()]));
    assert!(!seen.carries(SD, 10, &["testers".into()], &[]));
    // The rollout ended: both go; a full mirror carries no percent.
    let ended = desired_rules(RouteKind::Http, SD, &with, &by_name("main"), &backends(), 0, &[], &[]);
    assert_eq!(ended.map(|r| r.len()), Ok(2));
    let full = desired_rules(
        RouteKind::Http,
        SD,
        &rules(),
        &by_name("main"),
        &backends(),
        0,
        &[],
        &[mirror_route(None)],
    )
    .expect("steerable");
    assert!(full[2]["filters"][1]["requestMirror"].get("percent").is_none());
}

#[test]
fn a_users_rule_that_mirrors_elsewhere_or_answers_from_elsewhere_is_never_taken_for_the_operators() {
    // Named like the operator's, but mirroring to a Service of the user's: the user's rule.
    let forged = json!({"name": "sd-web-shadow.mirror",
        "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "audit", "port": 80}}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 1}]});
    let mut live = rules();
    live.push(forged.clone());
    let out = desired_rules(RouteKind::Http, SD, &live, &by_name("main"), &backends(), 0, &[], &[])
        .expect("steerable");
    assert_eq!(out.last(), Some(&forged), "kept as the user wrote it");
}

#[test]
fn mirroring_needs_every_gateway_class_to_declare_it() {
    let gateway = |class: Option<&str>, features: Option<Vec<&str>>| GatewayFeatures {
        gateway: "shop/public".into(),
        class: class.map(str::to_string),
        features: features.map(|f| f.into_iter().map(str::to_string).collect()),
    };
    let full = gateway(
        Some("envoy"),
        Some(vec!["HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror"]),
    );
    assert_eq!(mirror_support_problem("web", std::slice::from_ref(&full), true), None);
    let mirror_only = gateway(Some("envoy"), Some(vec!["HTTPRouteRequestMirror"]));
    assert_eq!(mirror_support_problem("web", std::slice::from_ref(&mirror_only), false), None);
    let problem = mirror_support_problem("web", &[mirror_only], true).expect("no percentage");
    assert!(problem.contains("HTTPRouteRequestPercentageMirror"), "{problem}");
    let traefik = gateway(Some("traefik"), Some(vec!["HTTPRouteMethodMatching"]));
    let problem = mirror_support_problem("web", &[full.clone(), traefik], false).expect("one lacks it");
    assert!(
        problem.contains("GatewayClass traefik") && problem.contains("HTTPRouteRequestMirror"),
        "{problem}"
    );
    for unreadable in [gateway(None, None), gateway(Some("gone"), None)] {
        assert!(mirror_support_problem("web", &[unreadable], false).is_some());
    }
    assert!(mirror_support_problem("web", &[], false).is_some(), "no Gateway at all");
    // Both spellings of status.supportedFeatures.
    assert_eq!(
        supported_feature_names(Some(&json!([{"name": "A"}, "B", {"other": 1}]))),
        vec!["A".to_string(), "B".to_string()]
    );
}
