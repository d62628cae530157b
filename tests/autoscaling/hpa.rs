//! A real HorizontalPodAutoscaler (the kube-controller-manager's HPA controller, autoscaling/v2,
//! CPU utilization) targeting a SafeDeployment through its scale subresource. The metrics come
//! from metrics-server scraping kwok's simulated kubelet resource metrics; the test sets the
//! pods' CPU usage with a ClusterResourceUsage for its namespace. Skips, with a message, on a
//! cluster without the resource metrics API (`e2e/cluster.sh up --with-metrics-server`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{Fault, ReadyCapacityWatch, TestNamespace, kubectl_run};
use super::operator::{apply, apply_stable, safe_deployment, setup, wait_status};
use super::{NAME, abort_and_wait_reverted, holding_steps, revision_sizes, wait_sized};
use safedeploy::api::Phase;

/// CPU each pod requests; the HPA's utilization is usage over this.
const CPU_REQUEST: &str = "100m";

/// Whether the API server serves `metrics.k8s.io` (the APIService is Available).
async fn metrics_api_available() -> bool {
    let run = kubectl_run(
        &[
            "get",
            "apiservice",
            "v1beta1.metrics.k8s.io",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
        ],
        None,
    )
    .await;
    run.ok && run.stdout.trim() == "True"
}

/// Sets the simulated CPU usage of every container in the namespace (kwok's
/// ClusterResourceUsage, read by its `/metrics/resource` endpoint that metrics-server scrapes).
async fn set_cpu_usage(ns: &TestNamespace, cpu: &str) {
    let usage = json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterResourceUsage",
        "metadata": {"name": format!("usage-{}", ns.name)},
        "spec": {
            "selector": {"matchNamespaces": [ns.name]},
            "usages": [{"usage": {"cpu": {"value": cpu}, "memory": {"value": "16Mi"}}}]
        }
    });
    let run = kubectl_run(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&usage.to_string()),
    )
    .await;
    assert!(run.ok, "apply the ClusterResourceUsage: {}", run.stderr);
}

/// The SafeDeployment with a CPU request (utilization needs one) on `image`.
fn with_cpu_request(image: &str) -> Value {
    let mut manifest = safe_deployment(NAME, 4, image, Fault::None, holding_steps());
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": CPU_REQUEST}});
    manifest
}

async fn hpa_state(ns: &TestNamespace) -> Value {
    let run = kubectl_run(&["get", "hpa", NAME, "-n", &ns.name, "-o", "json"], None).await;
    serde_json::from_str(&run.stdout).unwrap_or(Value::Null)
}

#[tokio::test]
#[ignore = "needs the local control plane with the resource metrics API (e2e/cluster.sh up --with-metrics-server)"]
async fn a_real_hpa_scales_a_canary_up_in_proportion_and_a_revert_keeps_its_count() {
    if !metrics_api_available().await {
        eprintln!(
            "SKIPPED: no resource metrics API (v1beta1.metrics.k8s.io) on this cluster; \
             start one with `e2e/cluster.sh up --with-metrics-server`"
        );
        return;
    }
    let (ns, _operator) = setup("hpa").await;
    // Low load first: 10 % of the request, below the target, and minReplicas holds 4.
    set_cpu_usage(&ns, "10m").await;
    let stable = apply_stable(&ns, &with_cpu_request("registry.local/app:v1"))
        .await
        .stable_revision
        .expect("a stable revision");
    let hpa = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME, "namespace": ns.name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment", "name": NAME},
            "minReplicas": 4,
            "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
        }
    });
    let run = kubectl_run(&["apply", "-f", "-"], Some(&hpa.to_string())).await;
    assert!(run.ok, "create the HPA: {}", run.stderr);

    apply(&ns, &with_cpu_request("registry.local/app:v2"))
        .await
        .expect("apply v2");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the canary to hold at its pause",
        |s| s.phase == Phase::Paused && s.current_step_index == Some(1),
    )
    .await;
    let canary = status.canary_revision.expect("a canary revision");
    wait_sized(&ns, &canary, 1, "1 canary pod").await;
    wait_sized(&ns, &stable, 3, "3 stable pods").await;

    // The load rises: every pod at 100 % of its request, twice the target -> 8 (maxReplicas).
    let started = Instant::now();
    let watch = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    set_cpu_usage(&ns, "100m").await;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (canary_now, _) = revision_sizes(&ns, &canary).await;
        let (stable_now, _) = revision_sizes(&ns, &stable).await;
        if canary_now == 2 && stable_now == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the HPA did not scale the SafeDeployment to 8 (canary {canary_now}, stable \
             {stable_now}); HPA: {}",
            hpa_state(&ns).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let scaled_after = started.elapsed();
    wait_sized(&ns, &canary, 2, "2 canary pods (25 % of 8)").await;
    wait_sized(&ns, &stable, 6, "6 stable pods").await;
    let (lowest, states) = watch.finish().await;
    assert!(
        lowest >= 4,
        "Ready capacity fell to {lowest} ({states} states)"
    );
    let hpa_now = hpa_state(&ns).await;
    assert_eq!(hpa_now["status"]["desiredReplicas"], 8, "{hpa_now}");
    println!(
        "HPA: load raised -> SafeDeployment at 8 (2 canary + 6 stable) after {:.1} s; lowest \
         Ready capacity {lowest}",
        scaled_after.as_secs_f64()
    );

    // A revert under load keeps the HPA's count.
    abort_and_wait_reverted(&ns).await;
    wait_sized(
        &ns,
        &stable,
        8,
        "the stable at the HPA's 8, not the 4 of the start",
    )
    .await;
    wait_sized(&ns, &canary, 0, "no canary pod").await;
    let _ = kubectl_run(
        &[
            "delete",
            "clusterresourceusage",
            &format!("usage-{}", ns.name),
        ],
        None,
    )
    .await;
}
