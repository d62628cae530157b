//! Adopting a running Deployment (`spec.workloadRef`) on the local control plane: the
//! Deployment's pods serve until the SafeDeployment's are available, a change of the
//! Deployment's template rolls out as a canary, deleting the SafeDeployment hands the
//! Deployment back before its own pods go, and an operator killed in the middle of either
//! resumes from what the cluster shows. Capacity (Ready pods of the app, terminating ones not
//! counted) is sampled all along and must never fall below the Deployment's replica count.
//! Hostile input: a Deployment whose pods the selector does not match, one adopted already,
//! and specs the CRD rules reject.

mod common;
mod operator;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use operator::{Operator, apply, events_of, opted_out_namespace, wait_status};
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::{Value, json};

const ADOPTED_BY: &str = "safedeploy.dev/adopted-by";
const ORIGINAL: &str = "safedeploy.dev/original-replicas";

/// A SafeDeployment `name` adopting the Deployment `deployment` (pods `app=<deployment>`).
fn adopting(name: &str, deployment: &str, scale_down: &str) -> Value {
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": deployment}},
            "workloadRef": {"kind": "Deployment", "name": deployment, "scaleDown": scale_down},
            "minReadySeconds": 1,
            "strategy": {"canary": {"steps": [
                {"setWeight": 34}, {"pause": {"duration": "1s"}}, {"setWeight": 100}
            ]}},
        }
    })
}

async fn deployment_now(api: &Api<Deployment>, name: &str) -> Deployment {
    api.get(name).await.expect("get the Deployment")
}

fn spec_replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

fn available(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Waits until the Deployment satisfies `check`.
async fn wait_deployment<F>(api: &Api<Deployment>, name: &str, what: &str, check: F) -> Deployment
where
    F: Fn(&Deployment) -> bool,
{
    common::wait_until(Duration::from_secs(90), what, || {
        let api = api.clone();
        let check = &check;
        async move { Ok(api.get(name).await.ok().filter(|d| check(d))) }
    })
    .await
}

/// Waits until `name` is `Stalled`, and returns that condition's message.
async fn stalled_message(ns: &common::TestNamespace, name: &str) -> String {
    let stalled =
        |c: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| c.type_ == "Stalled";
    let status = wait_status(ns, name, Duration::from_secs(30), "Stalled", |s| {
        s.conditions
            .iter()
            .any(|c| stalled(&c) && c.status == "True")
    })
    .await;
    status
        .conditions
        .iter()
        .find(stalled)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// The SafeDeployment's own ReplicaSets.
async fn owned_replica_sets(ns: &common::TestNamespace, name: &str) -> Vec<ReplicaSet> {
    ns.api::<ReplicaSet>()
        .list(&ListParams::default().labels(&format!("safedeploy.dev/name={name}")))
        .await
        .expect("list ReplicaSets")
        .items
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn adopting_a_deployment_keeps_its_capacity_canaries_its_changes_and_hands_it_back() {
    let ns = opted_out_namespace("adopt").await;
    let deployments: Api<Deployment> = ns.api();
    ns.create_deployment(&common::deployment("web", 3, common::Fault::None))
        .await;
    ns.wait_ready_pods("web", 3, Duration::from_secs(60)).await;
    let sampler = common::capacity::CapacitySampler::start(ns.api(), "web");

    // Adoption, with the operator killed right after it marked the Deployment.
    let started = Instant::now();
    let operator = Operator::start(&ns.name).await;
    apply(&ns, &adopting("web", "web", "Progressively"))
        .await
        .expect("the SafeDeployment is admitted");
    let marked = wait_deployment(&deployments, "web", "the adoption marks", |d| {
        d.labels().get(ADOPTED_BY).map(String::as_str) == Some("web")
    })
    .await;
    assert_eq!(
        marked.annotations().get(ORIGINAL).map(String::as_str),
        Some("3")
    );
    operator.kill().await;
    let operator = Operator::start(&ns.name).await;
    let status = wait_status(
        &ns,
        "web",
        Duration::from_secs(90),
        "the adopted template to be stable",
        |s| s.phase == Phase::Healthy,
    )
    .await;
    let first = status.stable_revision.clone().expect("a stable revision");
    let scaled_down = wait_deployment(&deployments, "web", "the Deployment at zero", |d| {
        spec_replicas(d) == Some(0) && available(d) == 0
    })
    .await;
    let adopted_in = started.elapsed();
    assert_eq!(
        scaled_down.annotations().get(ORIGINAL).map(String::as_str),
        Some("3"),
        "the original count stays recorded"
    );
    let ours = owned_replica_sets(&ns, "web").await;
    assert_eq!(ours.len(), 1, "one revision: the Deployment's template");
    assert_eq!(ours[0].spec.as_ref().and_then(|s| s.replicas), Some(3));
    let sd: SafeDeployment = ns.api().get("web").await.expect("the SafeDeployment");
    assert!(
        sd.finalizers()
            .iter()
            .any(|f| f == "safedeploy.dev/adoption")
    );
    // (No DeploymentAdopted check here: the kill may have come between the marks and their
    // Event, which is best effort; the refusal test checks it.)
    assert!(!events_of(&ns, "DeploymentScaled").await.is_empty());

    // A GitOps sync that writes the Deployment's replicas back (its own field manager, forced)
    // is scaled down again: the watch on the adopted Deployment sees it.
    deployments
        .patch(
            "web",
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"}, "spec": {"replicas": 3},
            })),
        )
        .await
        .expect("a GitOps sync of the replicas");
    wait_deployment(&deployments, "web", "the Deployment at zero again", |d| {
        spec_replicas(d) == Some(0)
    })
    .await;

    // A change of the Deployment's template is the next revision, rolled out in steps.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"metadata": {"annotations": {"version": "v2"}}}}}),
            ),
        )
        .await
        .expect("edit the Deployment's template");
    let promoted = wait_status(
        &ns,
        "web",
        Duration::from_secs(90),
        "the Deployment's new template to be promoted",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref().is_some_and(|r| r != first),
    )
    .await;
    let last = promoted.history.last().expect("history");
    assert_eq!((last.revision, last.outcome.as_str()), (2, "Promoted"));
    assert!(
        !events_of(&ns, "StepCompleted").await.is_empty(),
        "the change went through the canary steps"
    );
    assert_eq!(
        spec_replicas(&deployment_now(&deployments, "web").await),
        Some(0),
        "the Deployment stays scaled down through the canary"
    );

    // Migrating back out: delete the SafeDeployment, with the operator killed once the
    // Deployment is scaled back and before it serves.
    let released = Instant::now();
    ns.api::<SafeDeployment>()
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete the SafeDeployment");
    wait_deployment(&deployments, "web", "the Deployment scaled back", |d| {
        spec_replicas(d) == Some(3)
    })
    .await;
    operator.kill().await;
    assert!(
        ns.api::<SafeDeployment>()
            .get_opt("web")
            .await
            .expect("get")
            .is_some(),
        "the finalizer holds the SafeDeployment (and its pods) until the Deployment serves"
    );
    let _operator = Operator::start(&ns.name).await;
    common::wait_until(
        Duration::from_secs(90),
        "the SafeDeployment to be gone",
        || {
            let api = ns.api::<SafeDeployment>();
            async move { Ok(api.get_opt("web").await?.is_none().then_some(())) }
        },
    )
    .await;
    let back = deployment_now(&deployments, "web").await;
    assert_eq!(spec_replicas(&back), Some(3));
    assert!(
        available(&back) >= 3,
        "the Deployment serves before the SafeDeployment goes"
    );
    assert!(back.labels().get(ADOPTED_BY).is_none());
    assert!(back.annotations().get(ORIGINAL).is_none());
    let release_took = released.elapsed();
    common::wait_until(Duration::from_secs(60), "the garbage collector", || {
        let ns = &ns;
        async move { Ok(owned_replica_sets(ns, "web").await.is_empty().then_some(())) }
    })
    .await;
    ns.wait_ready_pods("web", 3, Duration::from_secs(30)).await;
    let (least, samples) = sampler.finish().await;
    println!(
        "MEASURED adoption: Deployment at zero {adopted_in:?} after the operator started; release {release_took:?}; {samples} capacity samples, least Ready {least} of 3"
    );
    assert!(samples >= 20, "the sampler ran ({samples} samples)");
    assert!(
        least >= 3,
        "capacity fell to {least} Ready pods of 3 during adoption, a canary or release"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_deployment_that_cannot_be_adopted_is_refused_with_its_reason_and_left_untouched() {
    let ns = opted_out_namespace("adopt-refused").await;
    let deployments: Api<Deployment> = ns.api();
    ns.create_deployment(&common::deployment("api", 2, common::Fault::None))
        .await;
    let _operator = Operator::start(&ns.name).await;

    // The selector does not match the Deployment's pods.
    let mut mismatched = adopting("wrong", "api", "Progressively");
    mismatched["spec"]["selector"]["matchLabels"] = json!({"app": "web"});
    apply(&ns, &mismatched).await.expect("admitted");
    let message = stalled_message(&ns, "wrong").await;
    assert!(message.contains("app=web"), "{message}");
    let untouched = deployment_now(&deployments, "api").await;
    assert!(untouched.labels().get(ADOPTED_BY).is_none());
    assert_eq!(spec_replicas(&untouched), Some(2));

    // A missing Deployment: Stalled, nothing created.
    apply(&ns, &adopting("ghost", "nowhere", "Progressively"))
        .await
        .expect("admitted");
    let message = stalled_message(&ns, "ghost").await;
    assert!(
        message.contains("nowhere") && message.contains("not found"),
        "{message}"
    );
    assert!(owned_replica_sets(&ns, "ghost").await.is_empty());

    // One owner per Deployment: the second SafeDeployment is refused.
    apply(&ns, &adopting("first", "api", "Never"))
        .await
        .expect("admitted");
    wait_deployment(&deployments, "api", "adopted by first", |d| {
        d.labels().get(ADOPTED_BY).map(String::as_str) == Some("first")
    })
    .await;
    common::wait_until(
        Duration::from_secs(10),
        "the DeploymentAdopted Event",
        || {
            let ns = &ns;
            async move { Ok((!events_of(ns, "DeploymentAdopted").await.is_empty()).then_some(())) }
        },
    )
    .await;
    apply(&ns, &adopting("second", "api", "Progressively"))
        .await
        .expect("admitted");
    let message = stalled_message(&ns, "second").await;
    assert!(
        message.contains("adopted by SafeDeployment first"),
        "{message}"
    );
    // scaleDown: Never leaves the replica count alone, also once `first` is at rest.
    wait_status(
        &ns,
        "first",
        Duration::from_secs(60),
        "first at rest",
        |s| s.phase == Phase::Healthy,
    )
    .await;
    assert_eq!(
        spec_replicas(&deployment_now(&deployments, "api").await),
        Some(2)
    );
    assert!(owned_replica_sets(&ns, "second").await.is_empty());
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_api_server_rejects_a_workload_ref_that_cannot_work_with_a_clear_message() {
    let ns = opted_out_namespace("adopt-cel").await;
    let rejected = |manifest: Value| {
        let ns = &ns;
        async move {
            match apply(ns, &manifest).await {
                Ok(_) => panic!("admitted: {manifest}"),
                Err(error) => error.to_string(),
            }
        }
    };
    let mut stateful = adopting("a", "web", "Progressively");
    stateful["spec"]["workloadRef"]["kind"] = json!("StatefulSet");
    assert!(
        rejected(stateful)
            .await
            .contains("only a Deployment can be adopted")
    );
    let mut both = adopting("b", "web", "Progressively");
    both["spec"]["template"] =
        operator::pod_template("web", "registry.local/app:v1", common::Fault::None);
    both["spec"]["replicas"] = json!(1);
    assert!(
        rejected(both)
            .await
            .contains("set exactly one of spec.template")
    );
    let mut sloppy = adopting("c", "web", "sometimes");
    sloppy["spec"]["workloadRef"]["scaleDown"] = json!("sometimes");
    assert!(rejected(sloppy).await.contains("scaleDown"));
    // The reference cannot be moved to another Deployment, nor removed.
    apply(&ns, &adopting("d", "web", "Progressively"))
        .await
        .expect("admitted");
    let mut moved = adopting("d", "web", "Progressively");
    moved["spec"]["workloadRef"]["name"] = json!("other");
    assert!(
        rejected(moved)
            .await
            .contains("workloadRef.name cannot change")
    );
    let mut dropped = adopting("d", "web", "Progressively");
    dropped["spec"]
        .as_object_mut()
        .map(|spec| spec.remove("workloadRef"));
    dropped["spec"]["replicas"] = json!(1);
    dropped["spec"]["template"] =
        operator::pod_template("web", "registry.local/app:v1", common::Fault::None);
    assert!(
        rejected(dropped)
            .await
            .contains("cannot be added to or removed")
    );
}
