//! The real-pod tier of adoption (`spec.workloadRef`): a Deployment of real pods (a real kubelet,
//! readiness probes, kube-proxy) adopted and handed back, with the Ready pods sampled and requests
//! sent through a Service all along, none of which may fail. Skips, with a message, on a cluster
//! without a Ready real node; the kwok tier is tests/adoption.rs.

mod common;
mod operator;
mod real;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use operator::{apply, setup, wait_status};
use real::{RealFault, assert_real_pods, real_template, real_tier_available, with_pre_stop};
use safedeploy::analysis::provider::full_error;
use safedeploy::api::Phase;
use serde_json::json;

/// The phases of the request loop, by index.
/// "handing back" runs from the Deployment at zero to the SafeDeployment gone.
const PHASES: [&str; 3] = ["adopting", "handing back", "handed back"];
const ADOPTING: usize = 0;
const HANDING_BACK: usize = 1;
const HANDED_BACK: usize = 2;

/// Adopting a Deployment of real pods and handing it back: the kubelet's readiness probes decide
/// when each side's pods count, and requests through a Service (kube-proxy's rules) are sent all
/// along; with pods that wait 3 s on deletion, none may fail. The kwok tier's
/// `tests/adoption.rs` runs the same moves with simulated pods.
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_adopting_a_deployment_and_handing_it_back_keeps_its_pods_serving() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let (ns, _operator) = setup("real-adopt").await;
    let deployments: Api<Deployment> = ns.api();
    let deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            // Each pod keeps serving 3 s after its deletion, while kube-proxy drops its
            // endpoint: what an application behind a Service needs (docs/real-pods.md), so
            // that a failed request can only be the operator's doing.
            "template": with_pre_stop(real_template("web", "v1", RealFault::StartDelay(2)), Some(3)),
        }
    }))
    .expect("a Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    ns.wait_ready_pods("web", 2, Duration::from_secs(90)).await;
    let services: Api<Service> = ns.api();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service");
    let cluster_ip = services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service")
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    let url = format!("http://{cluster_ip}/");
    // Answered by the app: until kube-proxy has the Service's rules, whatever else holds the
    // address (an earlier test's Service, the test bed's listeners) may answer, with a 404.
    common::wait_until(Duration::from_secs(30), "the Service to answer", || {
        let url = url.clone();
        async move {
            let answer = common::http().get(url).send().await?.error_for_status()?;
            Ok(Some(answer.text().await?))
        }
    })
    .await;
    let sampler = common::capacity::CapacitySampler::start(ns.api(), "web");
    // The phase the requests are in (an index of `PHASES`); past the last, stop.
    let phase = Arc::new(AtomicUsize::new(ADOPTING));
    let requests = {
        let (phase, url) = (phase.clone(), url.clone());
        tokio::spawn(async move {
            let (mut answered, mut failed) = ([0u32; PHASES.len()], Vec::new());
            loop {
                let now = phase.load(Ordering::SeqCst);
                if now >= PHASES.len() {
                    break;
                }
                let answer = common::http()
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status);
                match answer {
                    Ok(_) => answered[now] += 1,
                    // The causes say which: refused (a pod gone before its endpoint), or timed
                    // out.
                    Err(error) => failed.push((PHASES[now], full_error(&error))),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (answered, failed)
        })
    };

    let started = Instant::now();
    let adopting = json!({
        "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "workloadRef": {"kind": "Deployment", "name": "web"},
            "minReadySeconds": 1,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"setWeight": 100}]}},
        }
    });
    apply(&ns, &adopting).await.expect("the SafeDeployment");
    wait_status(&ns, "web", Duration::from_secs(120), "the adoption", |s| {
        s.phase == Phase::Healthy
    })
    .await;
    common::wait_until(Duration::from_secs(120), "the Deployment at zero", || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await?;
            let replicas = d.spec.and_then(|s| s.replicas);
            let running = d.status.and_then(|s| s.replicas).unwrap_or(0);
            Ok((replicas == Some(0) && running == 0).then_some(()))
        }
    })
    .await;
    let adopted_in = started.elapsed();
    phase.store(HANDING_BACK, Ordering::SeqCst);
    assert_real_pods(&ns).await;

    let released = Instant::now();
    ns.api::<safedeploy::api::SafeDeployment>()
        .delete("web", &kube::api::DeleteParams::background())
        .await
        .expect("delete the SafeDeployment");
    common::wait_until(Duration::from_secs(120), "the SafeDeployment gone", || {
        let api = ns.api::<safedeploy::api::SafeDeployment>();
        async move { Ok(api.get_opt("web").await?.is_none().then_some(())) }
    })
    .await;
    let released_in = released.elapsed();
    phase.store(HANDED_BACK, Ordering::SeqCst);
    ns.wait_ready_pods("web", 2, Duration::from_secs(60)).await;
    // The SafeDeployment's pods terminate after it is gone; give the Service's endpoints time
    // to follow before the request count closes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    phase.store(PHASES.len(), Ordering::SeqCst);
    let (answered, failed) = requests.await.expect("the request loop");
    let (least, samples) = sampler.finish().await;
    println!(
        "MEASURED real tier adoption: Deployment at zero {adopted_in:?} after apply, handed back in {released_in:?}; least Ready {least} of 2 over {samples} samples; requests through the Service answered {answered:?} ({PHASES:?}), {} failed {:?}",
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>()
    );
    assert!(least >= 2, "capacity fell to {least} Ready pods of 2");
    assert!(
        failed.is_empty(),
        "{} requests through the Service failed: {failed:?}",
        failed.len()
    );
    // The loop ran, and the Service answered, from the start to the end (how many answers
    // depends on the machine's pace, so no count is asserted).
    for index in [ADOPTING, HANDED_BACK] {
        assert!(
            answered[index] > 0,
            "no request through the Service was answered while {} ({answered:?})",
            PHASES[index]
        );
    }
}
