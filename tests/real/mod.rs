//! Shared by the real-pod tier's test binaries (tests/real_pods.rs, tests/real_traffic.rs,
//! tests/real_adoption.rs): the demo application's pod template on the real node (with a preStop
//! sleep or not), a SafeDeployment of it on either tier, and the check that a cluster has a Ready
//! real node with the demo image.
//!
//! Each test binary uses a subset of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use safedeploy::api::{HistoryEntry, Phase};
use serde_json::{Value, json};

use crate::common::{Fault, TestNamespace};
use crate::operator::safe_deployment;

/// The demo application's image, built and imported by `e2e/image.sh --import`.
pub const DEMO_IMAGE: &str = "registry.local/safedeploy-demo:v1";
/// The label and taint of real nodes (e2e/lib/real-node.sh).
pub const TIER_LABEL: &str = "safedeploy.dev/tier";
pub const REAL_NODE_TAINT: &str = "safedeploy.dev/real-node";

/// Which kind of node a scenario's pods run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// kwok's fake nodes: pod life cycles from annotations (e2e/lib/pod-stages.yaml).
    Kwok,
    /// A real kubelet, containerd and runc: the demo application's process.
    Real,
}

/// Whether the cluster has a Ready real node with the demo image. `false` (and a message) when
/// there is no real node; a panic when there is one without the image (a broken setup).
pub async fn real_tier_available(client: &kube::Client) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let real = nodes
        .list(&ListParams::default().labels(&format!("{TIER_LABEL}=real")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let ready: Vec<&Node> = real
        .iter()
        .filter(|node| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    let Some(node) = ready.first() else {
        eprintln!(
            "SKIPPED: the cluster has no Ready real node (labelled {TIER_LABEL}=real); \
             start one with `e2e/cluster.sh up --real-nodes` and `e2e/image.sh --import`"
        );
        return false;
    };
    let has_image = node
        .status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .is_some_and(|images| {
            images
                .iter()
                .any(|i| i.names.iter().flatten().any(|n| n == DEMO_IMAGE))
        });
    assert!(
        has_image,
        "the real node has no {DEMO_IMAGE}: run `eval \"$(e2e/cluster.sh env)\" && e2e/image.sh --import`"
    );
    true
}

/// What a revision of the demo application does wrong, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealFault {
    /// Serves and is Ready at once.
    None,
    /// The process exits 1 this many seconds after each start.
    CrashAfter(u32),
    /// `/readyz` fails for this many seconds after the start.
    StartDelay(u32),
}

/// The pod template of the demo application on the real node, as revision `version`.
pub fn real_template(app: &str, version: &str, fault: RealFault) -> Value {
    let mut env = vec![json!({"name": "SAFEDEPLOY_EMITTER_VERSIONS", "value": version})];
    let (name, seconds) = match fault {
        RealFault::None => ("", 0),
        RealFault::CrashAfter(seconds) => ("SAFEDEPLOY_EMITTER_CRASH_AFTER_SECONDS", seconds),
        RealFault::StartDelay(seconds) => ("SAFEDEPLOY_EMITTER_START_DELAY_SECONDS", seconds),
    };
    if !name.is_empty() {
        env.push(json!({"name": name, "value": seconds.to_string()}));
    }
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeSelector": {TIER_LABEL: "real"},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "app",
                "image": DEMO_IMAGE,
                "imagePullPolicy": "Never",
                "env": env,
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 1
                },
                "securityContext": {
                    "runAsNonRoot": true,
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

/// A pod template of the demo application whose process keeps serving `pre_stop` seconds after
/// its deletion (a preStop sleep, run by the kubelet before SIGTERM), if any.
pub fn with_pre_stop(mut template: Value, pre_stop: Option<u32>) -> Value {
    if let Some(seconds) = pre_stop {
        template["spec"]["containers"][0]["lifecycle"] =
            json!({"preStop": {"sleep": {"seconds": seconds}}});
        template["spec"]["terminationGracePeriodSeconds"] = json!(seconds + 5);
    }
    template
}

/// A SafeDeployment `web` of `replicas` on `tier`, as revision `version`, crashing or not.
pub fn web(tier: Tier, replicas: i32, version: &str, crashing: bool, steps: &Value) -> Value {
    match tier {
        Tier::Kwok => {
            let fault = if crashing { Fault::Crash } else { Fault::None };
            safe_deployment(
                "web",
                replicas,
                &format!("registry.local/app:{version}"),
                fault,
                steps.clone(),
            )
        }
        Tier::Real => {
            let mut manifest =
                safe_deployment("web", replicas, DEMO_IMAGE, Fault::None, steps.clone());
            manifest["spec"]["template"] = real_template(
                "web",
                version,
                if crashing {
                    RealFault::CrashAfter(3)
                } else {
                    RealFault::None
                },
            );
            manifest
        }
    }
}

/// The namespace's pods ran on the real node: all scheduled there, and every container the
/// kubelet has reported is a containerd one (a pod created a moment ago may have none yet).
pub async fn assert_real_pods(ns: &TestNamespace) {
    let pods = ns.pods("web").await.expect("list pods");
    let mut containers = 0;
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let on_real_node = node.as_deref().is_none_or(|n| !n.starts_with("node-"));
        assert!(on_real_node, "{name} ran on kwok's {node:?}");
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for id in statuses.iter().filter_map(|c| c.container_id.as_deref()) {
            assert!(id.starts_with("containerd://"), "{name}: container {id:?}");
            containers += 1;
        }
    }
    assert!(containers > 0, "no container reported by the kubelet");
}

/// The demo application's template for a revision whose metrics Prometheus scrapes from its
/// pods (found through Kubernetes service discovery by the pod annotations): the emitter's
/// version label, and its answer to `GET /`, is the pod's revision label (an analysis queries
/// `version="{{canary}}"`); `env` adds faults (`SAFEDEPLOY_EMITTER_ERROR_RATIO`, `_LATENCY_MS`).
pub fn scraped_template(app: &str, env: &[(&str, &str)]) -> Value {
    let mut template = real_template(app, "unused", RealFault::None);
    template["metadata"]["annotations"] =
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "8080"});
    let mut vars = vec![
        json!({"name": "SAFEDEPLOY_EMITTER_VERSIONS", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.labels['{}']", safedeploy::api::labels::LABEL_REVISION)
        }}}),
        json!({"name": "SAFEDEPLOY_EMITTER_RPS", "value": "200"}),
    ];
    vars.extend(
        env.iter()
            .map(|(name, value)| json!({"name": name, "value": value})),
    );
    template["spec"]["containers"][0]["env"] = Value::Array(vars);
    template
}

/// The Prometheus that scrapes the real node's pods (`e2e/cluster.sh up --real-nodes
/// --with-prometheus` with Prometheus built from its module), or `None` and a SKIPPED message:
/// with no Prometheus, or with Debian's (`SAFEDEPLOY_REAL_PODS_PROMETHEUS=debian`, as in CI),
/// which has no Kubernetes service discovery and never sees the pods' own metrics.
pub fn prometheus_scraping_real_pods() -> Option<String> {
    let Ok(prometheus) = std::env::var(crate::common::PROMETHEUS_URL_ENV) else {
        eprintln!("SKIPPED: no Prometheus (e2e/cluster.sh up --real-nodes --with-prometheus)");
        return None;
    };
    if std::env::var("SAFEDEPLOY_REAL_PODS_SCRAPED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: this Prometheus does not scrape the real pods (Debian's has no Kubernetes \
             service discovery; e2e/cluster.sh up --real-nodes --with-prometheus builds one that does)"
        );
        return None;
    }
    Some(prometheus)
}

/// A SafeDeployment of `replicas` real pods of `template` (v1), in two steps (50%, then a pause
/// for a person), whose background analysis `analysis` judges one metric, `metric`, of the pods'
/// own scraped metrics by `query` on `prometheus`, lower being better: every 2 s after
/// `initial_delay`, an unreadable answer counted Inconclusive from the first one.
pub fn scraped_analysis_web(
    replicas: i32,
    template: Value,
    (analysis, metric): (&str, &str),
    (prometheus, query): (&str, &str),
    thresholds: Value,
    initial_delay: &str,
) -> Value {
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let mut manifest = web(Tier::Real, replicas, "v1", false, &steps);
    manifest["spec"]["template"] = template;
    manifest["spec"]["analyses"] = json!([{
        "name": analysis, "interval": "2s", "count": 1000, "initialDelay": initial_delay,
        "metrics": [{
            "name": metric,
            "provider": {"prometheus": {"address": prometheus, "query": query, "timeout": "1s"}},
            "direction": "lowerIsBetter",
            "thresholds": thresholds,
            "onError": "Inconclusive",
            "consecutiveErrorLimit": 1
        }]
    }]);
    manifest["spec"]["strategy"]["canary"]["backgroundAnalysis"] = json!(analysis);
    manifest
}

/// Waits (90 s) until the SafeDeployment `web` is reverted to `stable`, and checks that its last
/// history entry is a revert naming `metric`; that entry.
pub async fn wait_reverted_on(
    ns: &TestNamespace,
    stable: &str,
    metric: &str,
    what: &str,
) -> HistoryEntry {
    let status =
        crate::operator::wait_status(ns, "web", std::time::Duration::from_secs(90), what, |s| {
            s.phase == Phase::Degraded
        })
        .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable));
    let entry = status.history.last().cloned().expect("a history entry");
    assert_eq!(entry.outcome, "Reverted", "{entry:?}");
    assert!(entry.reason.contains(metric), "{}", entry.reason);
    entry
}
