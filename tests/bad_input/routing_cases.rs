//! The invalid traffic routing of SafeDeployments (`strategy.canary.trafficRouting`, the
//! `setCanaryScale`, `setHeaderRoute` and `setMirrorRoute` steps), part of [`super::safe_deployment_cases`]; and
//! the valid routed spec the boundary test accepts.

use serde_json::{Value, json};

use super::{Case, case, repeat};

/// A valid routed canary: one HTTPRoute rule by name, a 1% canary on one pod, a header route, a
/// mirror route.
pub(crate) fn routed(m: &mut Value) {
    m["spec"]["strategy"]["canary"] = json!({
        "trafficRouting": {"gatewayAPI": {"httpRoutes": [{"name": "web", "rule": {"name": "main"}}]}},
        "steps": [
            {"setCanaryScale": {"replicas": 1}},
            {"setHeaderRoute": {"name": "testers", "match": [{"headerName": "x-canary", "value": "always"}]}},
            {"setMirrorRoute": {"name": "shadow", "percentage": 5, "match": [{"headerName": "x-shadow", "regex": "^y"}]}},
            {"setWeight": 1}, {"setWeight": 50}, {"setCanaryScale": {"matchTrafficWeight": true}},
            {"setWeight": 100}]});
}

/// [`routed`], then `change` on the canary strategy.
fn routed_with(m: &mut Value, change: impl Fn(&mut Value)) {
    routed(m);
    change(&mut m["spec"]["strategy"]["canary"]);
}

/// Rejected routing, each with its message.
pub(crate) fn routing_cases() -> Vec<Case> {
    vec![
        case(
            "setCanaryScale without trafficRouting",
            "setCanaryScale, setHeaderRoute and setMirrorRoute steps need strategy.canary.trafficRouting",
            |m| {
                routed(m);
                if let Some(canary) = m["spec"]["strategy"]["canary"].as_object_mut() {
                    canary.remove("trafficRouting");
                }
            },
        ),
        case(
            "step with setWeight and setCanaryScale",
            "each step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
            |m| routed_with(m, |c| c["steps"][0]["setWeight"] = json!(1)),
        ),
        case(
            "setMirrorRoute without trafficRouting",
            "setCanaryScale, setHeaderRoute and setMirrorRoute steps need strategy.canary.trafficRouting",
            |m| {
                routed(m);
                m["spec"]["strategy"]["canary"] = json!({"steps": [
                    {"setMirrorRoute": {"name": "shadow", "match": [{"headerName": "x", "value": "1"}]}}]});
            },
        ),
        case(
            "setMirrorRoute with a GRPCRoute",
            "setMirrorRoute steps mirror HTTPRoutes only",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["gatewayAPI"]["grpcRoutes"] = json!([{"name": "rpc"}]);
                    c["steps"][0] = json!({"setMirrorRoute": {"name": "shadow",
                        "match": [{"headerName": "x", "value": "1"}]}});
                })
            },
        ),
        case(
            "setMirrorRoute percentage 0",
            "should be greater than or equal to 1",
            |m| {
                routed_with(m, |c| {
                    c["steps"][0] = json!({"setMirrorRoute": {"name": "shadow", "percentage": 0,
                        "match": [{"headerName": "x", "value": "1"}]}})
                })
            },
        ),
        case(
            "setMirrorRoute name not a DNS label",
            "a mirror route name must be a lowercase DNS label",
            |m| {
                routed_with(m, |c| {
                    c["steps"][0] = json!({"setMirrorRoute": {"name": "Shadow.Copy"}})
                })
            },
        ),
        case(
            "setCanaryScale with replicas and weight",
            "setCanaryScale sets exactly one of weight, replicas or matchTrafficWeight: true",
            |m| routed_with(m, |c| c["steps"][0]["setCanaryScale"]["weight"] = json!(5)),
        ),
        case(
            "setCanaryScale with matchTrafficWeight false alone",
            "setCanaryScale sets exactly one of weight, replicas or matchTrafficWeight: true",
            |m| {
                routed_with(m, |c| {
                    c["steps"][0]["setCanaryScale"] = json!({"matchTrafficWeight": false})
                })
            },
        ),
        case(
            "setCanaryScale weight 101",
            "should be less than or equal to 100",
            |m| {
                routed_with(m, |c| {
                    c["steps"][0]["setCanaryScale"] = json!({"weight": 101})
                })
            },
        ),
        case(
            "no route at all",
            "trafficRouting.gatewayAPI needs at least one entry in httpRoutes or grpcRoutes",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["gatewayAPI"] = json!({"httpRoutes": []})
                })
            },
        ),
        case("nine routes", "Too many", |m| {
            routed_with(m, |c| {
                let routes: Vec<Value> = (0..9).map(|i| json!({"name": format!("r{i}")})).collect();
                c["trafficRouting"]["gatewayAPI"] = json!({"httpRoutes": routes});
            })
        }),
        case(
            "the same route twice",
            "httpRoutes names must be unique",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["gatewayAPI"] =
                        json!({"httpRoutes": [{"name": "web"}, {"name": "web"}]})
                })
            },
        ),
        case(
            "rule by name and index",
            "a rule reference sets exactly one of name or index",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["gatewayAPI"]["httpRoutes"][0]["rule"] =
                        json!({"name": "main", "index": 0})
                })
            },
        ),
        case("rule index 16", "should be less than or equal to 15", |m| {
            routed_with(m, |c| {
                c["trafficRouting"]["gatewayAPI"]["httpRoutes"][0]["rule"] = json!({"index": 16})
            })
        }),
        case("route name of 10,000 characters", "Too long", |m| {
            routed_with(m, |c| {
                c["trafficRouting"]["gatewayAPI"]["httpRoutes"][0]["name"] =
                    json!(repeat('r', 10_000))
            })
        }),
        case(
            "route name with capitals",
            "a route name must be a lowercase DNS subdomain",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["gatewayAPI"]["httpRoutes"][0]["name"] = json!("Web")
                })
            },
        ),
        case(
            "stable and canary Service the same",
            "trafficRouting.stableService and canaryService must be different Services",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["stableService"] = json!("web");
                    c["trafficRouting"]["canaryService"] = json!("web");
                })
            },
        ),
        case(
            "default canary Service named as the stable one",
            "trafficRouting.stableService and canaryService must be different Services",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["stableService"] = json!("web-canary")
                })
            },
        ),
        case(
            "Service name not a DNS label",
            "trafficRouting.canaryService must be a lowercase DNS label",
            |m| {
                routed_with(m, |c| {
                    c["trafficRouting"]["canaryService"] = json!("web.canary")
                })
            },
        ),
        case("port 0", "should be greater than or equal to 1", |m| {
            routed_with(m, |c| c["trafficRouting"]["port"] = json!(0))
        }),
        case(
            "routing with components",
            "strategy.canary.trafficRouting needs spec.template",
            |m| {
                routed(m);
                let template = m["spec"]["template"].clone();
                m["spec"]["components"] =
                    json!([{"name": "main", "replicas": 2, "template": template}]);
                if let Some(spec) = m["spec"].as_object_mut() {
                    spec.remove("template");
                    spec.remove("replicas");
                }
            },
        ),
        case(
            "header route name with an underscore",
            "a header route name must be a lowercase DNS label",
            |m| {
                routed_with(m, |c| {
                    c["steps"][1]["setHeaderRoute"]["name"] = json!("qa_team")
                })
            },
        ),
        case(
            "header match with value and regex",
            "a header match sets exactly one of value or regex",
            |m| {
                routed_with(m, |c| {
                    c["steps"][1]["setHeaderRoute"]["match"][0]["regex"] = json!(".*")
                })
            },
        ),
        case(
            "header name with a space",
            "headerName must be an HTTP header name",
            |m| {
                routed_with(m, |c| {
                    c["steps"][1]["setHeaderRoute"]["match"][0]["headerName"] = json!("x canary")
                })
            },
        ),
        case("nine header matches", "Too many", |m| {
            routed_with(m, |c| {
                let many: Vec<Value> = (0..9)
                    .map(|i| json!({"headerName": format!("x-{i}"), "value": "1"}))
                    .collect();
                c["steps"][1]["setHeaderRoute"]["match"] = json!(many);
            })
        }),
        case("header value of 4097 characters", "Too long", |m| {
            routed_with(m, |c| {
                c["steps"][1]["setHeaderRoute"]["match"][0]["value"] = json!(repeat('v', 4097))
            })
        }),
    ]
}
