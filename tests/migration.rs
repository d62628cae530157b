//! The migration guide's plain-Deployment path (docs/migration.md), on the real API server: a
//! Deployment serving through its pods' labels, a SafeDeployment of the same template applied
//! next to it, the Deployment scaled to 0 and deleted; then the way back, a Deployment applied
//! again and the SafeDeployment deleted. Through both moves, the Ready pods that the app's
//! Service selects (every ReplicaSet's in the namespace) never fall below the replica count.

mod common;
mod operator;

use std::time::Duration;

use common::{Fault, ReadyCapacityWatch};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use safedeploy::api::SafeDeployment;
use serde_json::json;

const REPLICAS: i32 = 3;

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh up)"]
async fn a_deployment_moves_to_a_safe_deployment_and_back_without_losing_ready_pods() {
    let (ns, _operator) = operator::setup("migrate").await;
    let deployment = common::deployment("web", REPLICAS, Fault::None);
    ns.create_deployment(&deployment).await;
    ns.wait_ready_pods("web", REPLICAS as usize, Duration::from_secs(60))
        .await;
    let deployments: Api<Deployment> = ns.api();

    // In: the SafeDeployment's pods next to the Deployment's, then the Deployment goes.
    let capacity = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    let template = serde_json::to_value(
        deployment
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .expect("template"),
    )
    .expect("template json");
    let mut manifest = operator::safe_deployment(
        "web",
        REPLICAS,
        "unused",
        Fault::None,
        json!([{"setWeight": 50}]),
    );
    manifest["spec"]["template"] = template;
    operator::apply_stable(&ns, &manifest).await;
    ns.wait_ready_pods("web", 2 * REPLICAS as usize, Duration::from_secs(60))
        .await;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale the Deployment to 0");
    common::wait_until(Duration::from_secs(60), "the Deployment at 0 pods", || {
        let ns = &ns;
        async move {
            let pods = ns.pods("web").await?;
            let deployments_pods = pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.contains_key("pod-template-hash"))
                })
                .count();
            Ok((deployments_pods == 0).then_some(()))
        }
    })
    .await;
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete the Deployment");
    let (lowest_in, states_in) = capacity.finish().await;
    println!(
        "MEASURED moving in: lowest Ready pods behind the Service {lowest_in} of {REPLICAS} ({states_in} states)"
    );
    assert!(
        states_in > 3,
        "the watch saw too little: {states_in} states"
    );
    assert!(
        lowest_in >= REPLICAS,
        "Ready pods fell to {lowest_in} while moving in"
    );
    let serving = ns
        .wait_ready_pods("web", REPLICAS as usize, Duration::from_secs(30))
        .await;
    assert!(
        serving.iter().all(|p| p
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("safedeploy.dev/revision"))),
        "a pod not of the SafeDeployment still serves"
    );

    // Out: the Deployment again next to the SafeDeployment's pods, then the SafeDeployment goes.
    let capacity = ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    ns.create_deployment(&common::deployment("web", REPLICAS, Fault::None))
        .await;
    ns.wait_ready_pods("web", 2 * REPLICAS as usize, Duration::from_secs(60))
        .await;
    let sds: Api<SafeDeployment> = ns.api();
    sds.delete("web", &DeleteParams::background())
        .await
        .expect("delete the SafeDeployment");
    common::wait_until(
        Duration::from_secs(60),
        "the SafeDeployment's pods to go",
        || {
            let ns = &ns;
            async move {
                let pods = ns.pods("web").await?;
                let left = pods
                    .iter()
                    .filter(|p| {
                        p.metadata
                            .labels
                            .as_ref()
                            .is_some_and(|l| l.contains_key("safedeploy.dev/revision"))
                    })
                    .count();
                Ok((left == 0).then_some(()))
            }
        },
    )
    .await;
    let (lowest_out, states_out) = capacity.finish().await;
    println!(
        "MEASURED moving out: lowest Ready pods behind the Service {lowest_out} of {REPLICAS} ({states_out} states)"
    );
    assert!(
        states_out > 3,
        "the watch saw too little: {states_out} states"
    );
    assert!(
        lowest_out >= REPLICAS,
        "Ready pods fell to {lowest_out} while moving out"
    );
}
