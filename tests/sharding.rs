//! Sharding (`--shard`) against the real API server, two operator processes side by side in one
//! namespace:
//! * each serves only the SafeDeployments of its shard, and copies the shard label onto their
//!   ReplicaSets and pods (what its own watches select on);
//! * a SafeDeployment no shard selects gets no status at all, and is reported: a `NotSharded`
//!   Warning Event and the gauge `safedeploy_unsharded_safedeployments` of the process given
//!   `--unsharded-selector`;
//! * hostile: the first shard's process is killed, and a SafeDeployment is moved from it to the
//!   other shard by changing its label. The other shard relabels its ReplicaSets and pods,
//!   takes it over without taking the stable for lost, and rolls its next revision out.

mod common;
mod operator;

use std::time::Duration;

use common::TestNamespace;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use operator::{Operator, apply, apply_stable, events_of, safe_deployment, wait_status};
use safedeploy::api::labels::{LABEL_NAME, LABEL_SHARD};
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::{Value, json};

fn steps() -> Value {
    json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}])
}

/// `name` at 2 replicas of `image`, labelled with `shard` (None: unlabelled).
fn in_shard(name: &str, image: &str, shard: Option<&str>) -> Value {
    let mut manifest = safe_deployment(name, 2, image, common::Fault::None, steps());
    if let Some(shard) = shard {
        manifest["metadata"]["labels"] = json!({LABEL_SHARD: shard});
    }
    manifest
}

/// The shard labels of `name`'s ReplicaSets and pods (sorted, `-` for none).
async fn shard_labels(ns: &TestNamespace, name: &str) -> (Vec<String>, Vec<String>) {
    let by_name = ListParams::default().labels(&format!("{LABEL_NAME}={name}"));
    let label = |labels: &std::collections::BTreeMap<String, String>| {
        labels
            .get(LABEL_SHARD)
            .cloned()
            .unwrap_or_else(|| "-".into())
    };
    let replica_sets: Api<ReplicaSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    let mut rs: Vec<String> = replica_sets
        .list(&by_name)
        .await
        .expect("list ReplicaSets")
        .items
        .iter()
        .map(|r| label(r.labels()))
        .collect();
    let mut pod: Vec<String> = pods
        .list(&by_name)
        .await
        .expect("list pods")
        .items
        .iter()
        .map(|p| label(p.labels()))
        .collect();
    rs.sort();
    pod.sort();
    (rs, pod)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn two_shards_split_the_work_report_what_neither_serves_and_a_moved_rollout_follows_its_label()
 {
    let ns = operator::opted_out_namespace("shard").await;
    let shard_a = Operator::start_with_env(
        &ns.name,
        &[
            ("SAFEDEPLOY_SHARD", "safedeploy.dev/shard=a".to_string()),
            (
                "SAFEDEPLOY_UNSHARDED_SELECTOR",
                "safedeploy.dev/shard notin (a,b)".to_string(),
            ),
        ],
    )
    .await;
    let address_a = shard_a.http_address().await;
    let _shard_b = Operator::start_with_env(
        &ns.name,
        &[("SAFEDEPLOY_SHARD", "safedeploy.dev/shard=b".to_string())],
    )
    .await;

    let web_a = apply_stable(&ns, &in_shard("web-a", "registry.local/app:v1", Some("a"))).await;
    apply_stable(&ns, &in_shard("web-b", "registry.local/app:v1", Some("b"))).await;
    apply(&ns, &in_shard("web-x", "registry.local/app:v1", None))
        .await
        .expect("apply web-x");
    for (name, shard) in [("web-a", "a"), ("web-b", "b")] {
        let (rs, pods) = shard_labels(&ns, name).await;
        assert_eq!(rs, vec![shard.to_string()], "{name}'s ReplicaSet");
        assert_eq!(pods, vec![shard.to_string(); 2], "{name}'s pods");
    }

    // Served by neither: reported by shard a, and left alone.
    common::wait_until(Duration::from_secs(20), "a NotSharded event", || {
        let ns = &ns;
        async move {
            let reported = events_of(ns, "NotSharded")
                .await
                .into_iter()
                .any(|e| e.involved_object.name.as_deref() == Some("web-x"));
            Ok(reported.then_some(()))
        }
    })
    .await;
    let http = common::http();
    let gauge = common::wait_until(Duration::from_secs(20), "the unsharded gauge", || {
        let (http, address) = (http.clone(), address_a.clone());
        async move {
            let text = http
                .get(format!("http://{address}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            Ok(text
                .lines()
                .find(|l| l.starts_with("safedeploy_unsharded_safedeployments "))
                .map(str::to_string))
        }
    })
    .await;
    assert_eq!(gauge, "safedeploy_unsharded_safedeployments 1");
    let sds: Api<SafeDeployment> = ns.api();
    assert_eq!(
        sds.get("web-x").await.expect("web-x").status,
        None,
        "no shard wrote a status"
    );
    assert!(
        shard_labels(&ns, "web-x").await.0.is_empty(),
        "no ReplicaSet for it"
    );

    // Shard a dies; web-a moves to shard b by its label alone.
    shard_a.kill().await;
    apply(&ns, &in_shard("web-a", "registry.local/app:v1", Some("b")))
        .await
        .expect("relabel web-a");
    common::wait_until(
        Duration::from_secs(30),
        "web-a's objects in shard b",
        || {
            let ns = &ns;
            async move {
                let (rs, pods) = shard_labels(ns, "web-a").await;
                Ok((rs == vec!["b".to_string()] && pods == vec!["b".to_string(); 2]).then_some(()))
            }
        },
    )
    .await;
    assert!(
        !events_of(&ns, "ShardMoved").await.is_empty(),
        "the move is an Event"
    );
    apply(&ns, &in_shard("web-a", "registry.local/app:v2", Some("b")))
        .await
        .expect("v2 of web-a");
    let promoted = wait_status(&ns, "web-a", Duration::from_secs(60), "v2 promoted", |s| {
        s.phase == Phase::Healthy && s.stable_revision != web_a.stable_revision
    })
    .await;
    let outcomes: Vec<(i64, String)> = promoted
        .history
        .iter()
        .map(|e| (e.revision, e.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![(1, "Promoted".to_string()), (2, "Promoted".to_string())],
        "the history went along"
    );
    assert!(
        events_of(&ns, "StableReplicaSetLost").await.is_empty(),
        "the stable was never taken for lost"
    );
    let (rs, _) = shard_labels(&ns, "web-a").await;
    assert_eq!(
        rs,
        vec!["b".to_string(); 2],
        "v1's ReplicaSet is kept, in shard b"
    );
}
