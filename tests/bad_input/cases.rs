//! The catalogue of the bad input test: valid SafeDeployments and policies, and the cases that
//! each change one into an invalid one, with the words its rejection must contain. The README
//! section "Rejected at admission" lists the same cases.

use serde_json::{Value, json};

#[path = "bluegreen_cases.rs"]
mod bluegreen_cases;
#[path = "freeze_cases.rs"]
mod freeze_cases;
#[path = "notification_cases.rs"]
mod notification_cases;
#[path = "routing_cases.rs"]
mod routing_cases;
pub(crate) use bluegreen_cases::blue_green;
pub(crate) use routing_cases::routed;

/// Changes a valid manifest into an invalid (or boundary) one.
pub(crate) type Mutation = Box<dyn Fn(&mut Value)>;

/// One case: what it is, how the valid manifest is changed, and the words the rejection must
/// contain.
pub(crate) struct Case {
    pub(crate) what: &'static str,
    pub(crate) mutate: Mutation,
    pub(crate) expected: &'static str,
}

pub(crate) fn case(
    what: &'static str,
    expected: &'static str,
    mutate: impl Fn(&mut Value) + 'static,
) -> Case {
    Case {
        what,
        mutate: Box::new(mutate),
        expected,
    }
}

/// A valid single-template SafeDeployment using the fields the cases change.
pub(crate) fn valid_safe_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/app:v1"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}},
        }
    })
}

/// A valid analysis template named `errors` (3 measurements 30 s apart).
pub(crate) fn valid_analysis() -> Value {
    json!({
        "name": "errors",
        "interval": "30s",
        "count": 3,
        "metrics": [{
            "name": "error-rate",
            "provider": {"prometheus": {
                "address": "http://prometheus.monitoring:9090",
                "query": "sum(rate(errors{revision=\"{{revision}}\"}[1m]))",
            }},
            "thresholds": {"target": 0, "acceptable": 0.01, "critical": 0.1},
        }],
    })
}

/// Puts `analysis` into `spec.analyses` and an analysis step using it after the first step.
pub(crate) fn with_analysis(m: &mut Value, analysis: Value) {
    let name = analysis["name"].clone();
    m["spec"]["analyses"] = json!([analysis]);
    m["spec"]["strategy"]["canary"]["steps"] =
        json!([{"setWeight": 50}, {"analysis": {"template": name}}, {"setWeight": 100}]);
}

/// [`with_analysis`] of [`valid_analysis`] changed by `change`.
pub(crate) fn analysis_with(m: &mut Value, change: impl Fn(&mut Value)) {
    let mut analysis = valid_analysis();
    change(&mut analysis);
    with_analysis(m, analysis);
}

/// The first metric of the analysis, changed by `change`.
pub(crate) fn metric_with(m: &mut Value, change: impl Fn(&mut Value)) {
    analysis_with(m, |a| change(&mut a["metrics"][0]));
}

/// A web provider metric, changed by `change`.
pub(crate) fn web_metric_with(m: &mut Value, change: impl Fn(&mut Value)) {
    metric_with(m, |metric| {
        metric["provider"] = json!({"web": {
            "url": "http://slo.example/api?rev={{revision}}",
            "jsonPath": "$.value",
        }});
        change(&mut metric["provider"]["web"]);
    });
}

/// A job provider metric (no checks of its own), its provider changed by `change`.
pub(crate) fn job_metric_with(m: &mut Value, change: impl Fn(&mut Value)) {
    metric_with(m, |metric| {
        *metric = json!({"name": "smoke", "provider": {"job": {
            "template": {"spec": {"containers": [{"name": "smoke", "image": "busybox"}]}},
        }}});
        change(metric);
    });
}

/// The first metric guarded by `minimumTraffic: {query, minimum}`.
pub(crate) fn traffic_guard_with(m: &mut Value, query: &str, minimum: Value) {
    let query = query.to_string();
    metric_with(m, move |metric| {
        metric["minimumTraffic"] = json!({"query": query.clone(), "minimum": minimum.clone()});
    });
}

/// Sets `minimumTraffic` of the first metric (after [`web_metric_with`]).
pub(crate) fn traffic_guard_of_web(m: &mut Value, guard: Value) {
    m["spec"]["analyses"][0]["metrics"][0]["minimumTraffic"] = guard;
}

/// A Prometheus range query, changed by `change`.
pub(crate) fn range_with(m: &mut Value, window: &str, step: &str) {
    let (window, step) = (window.to_string(), step.to_string());
    metric_with(m, move |metric| {
        metric["provider"]["prometheus"]["range"] = json!({"window": window, "step": step});
    });
}

/// A valid SafeDeploymentPolicy (cluster-scoped).
pub(crate) fn valid_policy(name: &str) -> Value {
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeploymentPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaces": ["team-a"],
            "requireAttestation": false,
            "requirePinnedImages": false,
        }
    })
}

/// A string of `n` times `c`.
pub(crate) fn repeat(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// The invalid SafeDeployments.
pub(crate) fn safe_deployment_cases() -> Vec<Case> {
    let mut cases = vec![
        // Names.
        case(
            "name of 64 characters",
            "metadata.name must be at most 63 characters",
            |m| m["metadata"]["name"] = json!(repeat('a', 64)),
        ),
        case(
            "name of 253 characters",
            "metadata.name must be at most 63 characters",
            |m| m["metadata"]["name"] = json!(repeat('a', 253)),
        ),
        // Health thresholds.
        case(
            "start-up latency critical 1e20 (crashed the operator)",
            "health.startupLatencySeconds.critical must be at least 0 and at most 86400",
            |m| {
                m["spec"]["health"] = json!({"startupLatencySeconds":
                    {"target": 10, "acceptable": 30, "critical": 1e20}})
            },
        ),
        case(
            "start-up latency acceptable above a day",
            "health.startupLatencySeconds.acceptable must be at least 0 and at most 86400",
            |m| {
                m["spec"]["health"] = json!({"startupLatencySeconds":
                    {"target": 10, "acceptable": 90000, "critical": 100000}})
            },
        ),
        case(
            "restarts critical above 1e9",
            "health.restarts.critical must be at least 0 and at most 1000000000",
            |m| {
                m["spec"]["health"] =
                    json!({"restarts": {"target": 0, "acceptable": 0, "critical": 1e10}})
            },
        ),
        case(
            "negative not-ready target",
            "health.notReadyPods.target must be at least 0",
            |m| {
                m["spec"]["health"] =
                    json!({"notReadyPods": {"target": -1, "acceptable": 0, "critical": 1}})
            },
        ),
        case(
            "failing containers critical above 1e9",
            "health.failingContainers.critical must be at least 0 and at most 1000000000",
            |m| {
                m["spec"]["health"] =
                    json!({"failingContainers": {"target": 0, "acceptable": 0, "critical": 2e9}})
            },
        ),
        // Counts.
        case(
            "replicas above 10000",
            "spec.replicas: Invalid value",
            |m| m["spec"]["replicas"] = json!(10001),
        ),
        case(
            "component replicas above 10000",
            "should be less than or equal to 10000",
            |m| {
                let template = m["spec"]["template"].clone();
                m["spec"].as_object_mut().map(|s| s.remove("template"));
                m["spec"].as_object_mut().map(|s| s.remove("replicas"));
                m["spec"]["components"] =
                    json!([{"name": "api", "replicas": 10001, "template": template}]);
            },
        ),
        case(
            "spec.replicas next to spec.components (what kubectl scale would write)",
            "spec.replicas is for spec.template",
            |m| {
                let template = m["spec"]["template"].clone();
                m["spec"].as_object_mut().map(|s| s.remove("template"));
                m["spec"]["components"] =
                    json!([{"name": "api", "replicas": 2, "template": template}]);
            },
        ),
        case(
            "revisionHistoryLimit above 50",
            "should be less than or equal to 50",
            |m| m["spec"]["revisionHistoryLimit"] = json!(51),
        ),
        case(
            "revisionHistoryLimit 0",
            "should be greater than or equal to 1",
            |m| m["spec"]["revisionHistoryLimit"] = json!(0),
        ),
        case(
            "minReadySeconds above an hour",
            "should be less than or equal to 3600",
            |m| m["spec"]["minReadySeconds"] = json!(3601),
        ),
        case(
            "maxUnavailable above 10000",
            "should be less than or equal to 10000",
            |m| m["spec"]["strategy"]["canary"]["maxUnavailable"] = json!(10001),
        ),
        case("33 steps", "must have at most 32 items", |m| {
            let steps: Vec<Value> = (0..33).map(|i| json!({"setWeight": 1 + i})).collect();
            m["spec"]["strategy"]["canary"]["steps"] = json!(steps);
        }),
        case("17 analyses", "must have at most 16 items", |m| {
            let analyses: Vec<Value> = (0..17)
                .map(|i| {
                    let mut a = valid_analysis();
                    a["name"] = json!(format!("a{i}"));
                    a
                })
                .collect();
            m["spec"]["analyses"] = json!(analyses);
        }),
        case("17 metrics", "must have at most 16 items", |m| {
            analysis_with(m, |a| {
                let metrics: Vec<Value> = (0..17)
                    .map(|i| {
                        let mut metric = a["metrics"][0].clone();
                        metric["name"] = json!(format!("m{i}"));
                        metric
                    })
                    .collect();
                a["metrics"] = json!(metrics);
            })
        }),
        case("count 1001", "should be less than or equal to 1000", |m| {
            analysis_with(m, |a| a["count"] = json!(1001))
        }),
        case("count 0", "should be greater than or equal to 1", |m| {
            analysis_with(m, |a| a["count"] = json!(0))
        }),
        case(
            "consecutiveErrorLimit 101",
            "should be less than or equal to 100",
            |m| metric_with(m, |metric| metric["consecutiveErrorLimit"] = json!(101)),
        ),
        // The minimum-traffic guard.
        case(
            "minimumTraffic.minimum 0",
            "minimumTraffic.minimum must be above 0 and at most 10^12",
            |m| traffic_guard_with(m, "sum(requests{v=\"{{canary}}\"})", json!(0)),
        ),
        case(
            "minimumTraffic.minimum 1e13",
            "minimumTraffic.minimum must be above 0 and at most 10^12",
            |m| traffic_guard_with(m, "sum(requests{v=\"{{canary}}\"})", json!(1e13)),
        ),
        case(
            "minimumTraffic.minimum negative",
            "minimumTraffic.minimum must be above 0 and at most 10^12",
            |m| traffic_guard_with(m, "sum(requests{v=\"{{canary}}\"})", json!(-5)),
        ),
        case(
            "minimumTraffic.query of the whole service",
            "minimumTraffic.query must select the canary with {{canary}}",
            |m| traffic_guard_with(m, "sum(requests)", json!(100)),
        ),
        case(
            "minimumTraffic.query of 8193 characters",
            "minimumTraffic.query: Too long",
            |m| {
                let query = format!("{{{{canary}}}}{}", repeat('x', 8183));
                traffic_guard_with(m, &query, json!(100))
            },
        ),
        case(
            "minimumTraffic.jsonPath on a prometheus metric",
            "minimumTraffic.query needs a prometheus provider, minimumTraffic.jsonPath a web provider",
            |m| {
                metric_with(m, |metric| {
                    metric["minimumTraffic"] = json!({"jsonPath": "$.requests", "minimum": 100})
                })
            },
        ),
        case(
            "minimumTraffic.query on a web metric",
            "minimumTraffic.query needs a prometheus provider",
            |m| {
                web_metric_with(m, |_| {});
                traffic_guard_of_web(
                    m,
                    json!({"query": "sum(requests{v=\"{{canary}}\"})", "minimum": 100}),
                );
            },
        ),
        case(
            "minimumTraffic.jsonPath on a web metric of the whole service",
            "a web provider whose url or body selects the canary",
            |m| {
                web_metric_with(m, |web| web["url"] = json!("http://slo.example/api"));
                traffic_guard_of_web(m, json!({"jsonPath": "$.requests", "minimum": 100}));
            },
        ),
        case(
            "minimumTraffic with both query and jsonPath",
            "set exactly one of minimumTraffic.query (for a prometheus metric) or minimumTraffic.jsonPath",
            |m| {
                metric_with(
                    m,
                    |metric| metric["minimumTraffic"] = json!({"query": "sum(r{v=\"{{canary}}\"})", "jsonPath": "$.r", "minimum": 100}),
                )
            },
        ),
        case(
            "minimumTraffic.jsonPath not starting with $",
            "minimumTraffic.jsonPath must start with $",
            |m| {
                web_metric_with(m, |_| {});
                traffic_guard_of_web(m, json!({"jsonPath": "data.requests", "minimum": 100}));
            },
        ),
        case("33 containers", "must have at most 32 items", |m| {
            let containers: Vec<Value> = (0..33)
                .map(|i| json!({"name": format!("c{i}"), "image": "registry.local/app:v1"}))
                .collect();
            m["spec"]["template"]["spec"]["containers"] = json!(containers);
        }),
        case("17 init containers", "must have at most 16 items", |m| {
            let containers: Vec<Value> = (0..17)
                .map(|i| json!({"name": format!("i{i}"), "image": "registry.local/init:v1"}))
                .collect();
            m["spec"]["template"]["spec"]["initContainers"] = json!(containers);
        }),
        case(
            "image of 513 characters",
            "spec.template.spec.containers[0].image: Too long",
            |m| {
                m["spec"]["template"]["spec"]["containers"][0]["image"] =
                    json!(format!("registry.local/{}", repeat('a', 498)))
            },
        ),
        case(
            "container name not a DNS label",
            "a container name must be a lowercase DNS label",
            |m| m["spec"]["template"]["spec"]["containers"][0]["name"] = json!("App_1"),
        ),
        case(
            "template annotations over 256 KiB",
            "template annotations must total at most 256 KiB",
            |m| {
                m["spec"]["template"]["metadata"]["annotations"] =
                    json!({"a": repeat('x', 140_000), "b": repeat('y', 140_000)})
            },
        ),
        // Steps.
        case(
            "no step with a positive setWeight",
            "at least one step needs a setWeight above 0",
            |m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"setWeight": 0}, {"pause": {"duration": "1m"}}])
            },
        ),
        // Durations.
        case(
            "progressDeadline 0s",
            "progressDeadline must be at least 10s and at most 24h",
            |m| m["spec"]["progressDeadline"] = json!("0s"),
        ),
        case(
            "progressDeadline 25h",
            "progressDeadline must be at least 10s and at most 24h",
            |m| m["spec"]["progressDeadline"] = json!("25h"),
        ),
        case(
            "progressDeadline that overflows",
            "progressDeadline must be a duration such as 90s, 10m or 1h30m",
            |m| m["spec"]["progressDeadline"] = json!("99999999999999999h"),
        ),
        case(
            "pause 0s",
            "pause.duration must be at least 1s and at most 24h",
            |m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"setWeight": 50}, {"pause": {"duration": "0s"}}])
            },
        ),
        case(
            "pause 48h",
            "pause.duration must be at least 1s and at most 24h",
            |m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"setWeight": 50}, {"pause": {"duration": "48h"}}])
            },
        ),
        case(
            "interval 0s",
            "interval must be at least 1s and at most 1h",
            |m| analysis_with(m, |a| a["interval"] = json!("0s")),
        ),
        case(
            "interval 500ms",
            "interval must be at least 1s and at most 1h",
            |m| analysis_with(m, |a| a["interval"] = json!("500ms")),
        ),
        case(
            "interval 2h",
            "interval must be at least 1s and at most 1h",
            |m| analysis_with(m, |a| a["interval"] = json!("2h")),
        ),
        case(
            "initialDelay 2h",
            "initialDelay must be at least 0s and at most 1h",
            |m| analysis_with(m, |a| a["initialDelay"] = json!("2h")),
        ),
        case(
            "analysis duration 0s",
            "duration must be at least 1s and at most 24h",
            |m| {
                analysis_with(m, |a| {
                    a.as_object_mut().map(|a| a.remove("count"));
                    a["duration"] = json!("0s");
                })
            },
        ),
        case(
            "Prometheus timeout 0s",
            "timeout must be at least 1s and at most 60s",
            |m| {
                metric_with(m, |metric| {
                    metric["provider"]["prometheus"]["timeout"] = json!("0s")
                })
            },
        ),
        case(
            "job metric with thresholds of its own",
            "a job metric is judged by the Job's exit",
            |m| {
                job_metric_with(m, |metric| {
                    metric["thresholds"] = json!({"target": 0, "acceptable": 0, "critical": 1})
                })
            },
        ),
        case(
            "job metric with a second provider",
            "exactly one of prometheus, web, kubernetes or job",
            |m| {
                job_metric_with(m, |metric| {
                    metric["provider"]["kubernetes"] = json!({"signal": "restarts"})
                })
            },
        ),
        case(
            "job deadline 2h",
            "job.deadline must be at least 1s and at most 1h",
            |m| {
                job_metric_with(m, |metric| {
                    metric["provider"]["job"]["deadline"] = json!("2h")
                })
            },
        ),
        case(
            "job template without containers",
            "should have at least 1 items",
            |m| {
                job_metric_with(m, |metric| {
                    metric["provider"]["job"]["template"]["spec"]["containers"] = json!([])
                })
            },
        ),
        case(
            "job template with 33 containers",
            "must have at most 32 items",
            |m| {
                job_metric_with(m, |metric| {
                    let containers: Vec<Value> = (0..33)
                        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
                        .collect();
                    metric["provider"]["job"]["template"]["spec"]["containers"] = json!(containers)
                })
            },
        ),
        case(
            "web timeout 5m",
            "timeout must be at least 1s and at most 60s",
            |m| web_metric_with(m, |web| web["timeout"] = json!("5m")),
        ),
        case(
            "range window 25h",
            "range.window must be at least 1s and at most 24h",
            |m| range_with(m, "25h", "1m"),
        ),
        case(
            "range step 0s",
            "range.step must be at least 1s and at most 1h",
            |m| range_with(m, "10m", "0s"),
        ),
        case(
            "range step longer than window",
            "range.step must not be longer than range.window",
            |m| range_with(m, "1m", "5m"),
        ),
        case(
            "range of more than 11000 samples",
            "range.window / range.step must be at most 11000 samples",
            |m| range_with(m, "24h", "1s"),
        ),
        // Durations against the progress deadline.
        case(
            "minReadySeconds at the default progress deadline",
            "spec.minReadySeconds must be shorter than spec.progressDeadline",
            |m| m["spec"]["minReadySeconds"] = json!(600),
        ),
        case(
            "minReadySeconds above progressDeadline",
            "spec.minReadySeconds must be shorter than spec.progressDeadline",
            |m| {
                m["spec"]["minReadySeconds"] = json!(90);
                m["spec"]["progressDeadline"] = json!("1m");
            },
        ),
        case(
            "analysis step longer than the progress deadline (count x interval)",
            "an analysis step must be able to finish before spec.progressDeadline",
            |m| {
                analysis_with(m, |a| {
                    a["count"] = json!(20);
                    a["interval"] = json!("1m");
                })
            },
        ),
        case(
            "analysis step longer than the progress deadline (initialDelay + duration)",
            "an analysis step must be able to finish before spec.progressDeadline",
            |m| {
                analysis_with(m, |a| {
                    a.as_object_mut().map(|a| a.remove("count"));
                    a["initialDelay"] = json!("5m");
                    a["duration"] = json!("25m");
                });
                m["spec"]["progressDeadline"] = json!("30m");
            },
        ),
        // Analyses.
        case(
            "duplicate analysis names",
            "spec.analyses names must be unique",
            |m| {
                with_analysis(m, valid_analysis());
                m["spec"]["analyses"] = json!([valid_analysis(), valid_analysis()]);
            },
        ),
        case(
            "background analysis also used by a step",
            "the backgroundAnalysis template cannot also be a step's analysis",
            |m| {
                with_analysis(m, valid_analysis());
                m["spec"]["strategy"]["canary"]["backgroundAnalysis"] = json!("errors");
            },
        ),
        case(
            "passThreshold 0",
            "scoring.passThreshold must be above 0",
            |m| {
                analysis_with(m, |a| {
                    a["scoring"] = json!({"passThreshold": 0, "marginalThreshold": 0})
                })
            },
        ),
        case(
            "metric threshold beyond 1e15",
            "thresholds.critical in body should be less than or equal to",
            |m| {
                metric_with(m, |metric| {
                    metric["thresholds"] = json!({"target": 0, "acceptable": 1, "critical": 1e16})
                })
            },
        ),
        case(
            "relative regression percent beyond 100000",
            "maxRegressionPercent in body should be less than or equal to 100000",
            |m| {
                metric_with(m, |metric| {
                    metric["relative"] = json!({"maxRegressionPercent": 1e6})
                })
            },
        ),
        case(
            "unknown kubernetes component",
            "provider.kubernetes.component must name an entry of spec.components",
            |m| {
                metric_with(m, |metric| {
                    metric["provider"] =
                        json!({"kubernetes": {"signal": "restarts", "component": "worker"}})
                })
            },
        ),
        case(
            "web header name with a space",
            "a header name must be an HTTP token",
            |m| {
                web_metric_with(m, |web| {
                    web["headers"] = json!([{"name": "X Token", "value": "v"}])
                })
            },
        ),
        // Labels.
        case(
            "selector key with a space",
            "selector.matchLabels keys must be label keys",
            |m| {
                m["spec"]["selector"]["matchLabels"] = json!({"bad key": "web"});
                m["spec"]["template"]["metadata"]["labels"] = json!({"bad key": "web"});
            },
        ),
        case(
            "selector key name of 64 characters",
            "selector.matchLabels keys must be label keys",
            |m| {
                let key = format!("example.com/{}", repeat('k', 64));
                m["spec"]["selector"]["matchLabels"] = json!({key.clone(): "web"});
                m["spec"]["template"]["metadata"]["labels"] = json!({key: "web"});
            },
        ),
        case(
            "selector value not a label value",
            "selector.matchLabels values must be label values",
            |m| {
                m["spec"]["selector"]["matchLabels"] = json!({"app": "-web-"});
                m["spec"]["template"]["metadata"]["labels"] = json!({"app": "-web-"});
            },
        ),
        case(
            "selector on a label the operator sets",
            "selector.matchLabels must not use the safedeploy.dev/ keys",
            |m| {
                m["spec"]["selector"]["matchLabels"] = json!({"safedeploy.dev/name": "web"});
                m["spec"]["template"]["metadata"]["labels"] = json!({"safedeploy.dev/name": "web"});
            },
        ),
        case(
            "template label key not a label key",
            "template label keys must be label keys",
            |m| m["spec"]["template"]["metadata"]["labels"]["Bad/Key/x"] = json!("v"),
        ),
        // References.
        case(
            "attestation key with a slash",
            "a ConfigMap or Secret key consists of",
            |m| {
                m["spec"]["attestation"] =
                    json!({"configMapRef": {"name": "attestation", "key": "a/b"}})
            },
        ),
        case(
            "attestation ConfigMap name not a DNS name",
            "a ConfigMap or Secret name must be a lowercase DNS subdomain",
            |m| m["spec"]["attestation"] = json!({"secretRef": {"name": "Bad_Name"}}),
        ),
    ];
    cases.extend(routing_cases::routing_cases());
    cases.extend(bluegreen_cases::blue_green_cases());
    cases
}

/// The invalid SafeDeploymentPolicies.
pub(crate) fn policy_cases() -> Vec<Case> {
    let mut cases = vec![
        case(
            "maxAge 0s",
            "maxAge must be at least 1m and at most 8760h",
            |p| p["spec"]["maxAge"] = json!("0s"),
        ),
        case(
            "maxAge above a year",
            "maxAge must be at least 1m and at most 8760h",
            |p| p["spec"]["maxAge"] = json!("10000h"),
        ),
        case(
            "maxAge that overflows",
            "maxAge must be a duration such as",
            |p| p["spec"]["maxAge"] = json!("99999999999999999h"),
        ),
        case(
            "allowedClockSkew 2h",
            "allowedClockSkew must be at least 0s and at most 1h",
            |p| p["spec"]["allowedClockSkew"] = json!("2h"),
        ),
        case(
            "namespace with capitals",
            "every namespaces entry must be a namespace name",
            |p| p["spec"]["namespaces"] = json!(["Team_A"]),
        ),
        case(
            "namespace with a dot",
            "every namespaces entry must be a namespace name",
            |p| p["spec"]["namespaces"] = json!(["team.a"]),
        ),
        case(
            "namespaceSelector with a bad key",
            "namespaceSelector.matchLabels keys must be label keys",
            |p| p["spec"]["namespaceSelector"] = json!({"matchLabels": {"a b": "x"}}),
        ),
        case(
            "33 requiredEnvironment entries",
            "must have at most 32 items",
            |p| {
                let entries: serde_json::Map<String, Value> =
                    (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
                p["spec"]["requiredEnvironment"] = Value::Object(entries);
            },
        ),
        case(
            "metric bound beyond 1e15",
            "max in body should be less than or equal to",
            |p| p["spec"]["metricBounds"] = json!([{"metric": "errorRate", "max": 1e16}]),
        ),
        case(
            "required check name of 257 characters",
            "spec.requiredChecks[0].name: Too long",
            |p| p["spec"]["requiredChecks"] = json!([{"name": repeat('c', 257)}]),
        ),
    ];
    cases.extend(freeze_cases::freeze_policy_cases());
    cases.extend(notification_cases::notification_policy_cases());
    cases
}
