//! Integration tests of coupled components and versioned configuration (issue 6) on the local
//! control plane, with the three-component `shop` of `tests/shop` (gateway, api, worker):
//!
//! * a good revision (new images and new configuration) promotes all three components, their
//!   pods mount immutable content-named copies, and a revision's copies are garbage-collected
//!   with it;
//! * a regression in one component reverts all three and their configuration;
//! * a revision that references a missing ConfigMap key never creates a pod, says which key is
//!   missing, and starts once the key exists;
//! * a rollback to an older revision brings back that revision's configuration;
//! * an edit of the referenced ConfigMap or Secret alone (no spec change) is a new revision,
//!   rolled out in lockstep; an edit that keeps the content starts nothing.
//!
//! Image policy is in `components_images.rs`, the attestation of configuration in
//! `components_attestation.rs`.

mod common;
mod operator;
mod shop;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{TestNamespace, wait_until};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use operator::{annotate, condition, events_of, setup, status_now, wait_promoted, wait_status};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentStatus};
use serde_json::json;
use shop::*;

#[test]
fn the_lockstep_check_flags_a_component_switched_alone() {
    let rs = |component: &str, revision: &str, replicas: i32| {
        (
            format!("{component}-{revision}"),
            RsState {
                component: component.into(),
                revision: revision.into(),
                replicas,
            },
        )
    };
    // A canary: every component on both revisions.
    let canary: BTreeMap<_, _> = [
        rs("gateway", "old", 1),
        rs("gateway", "new", 1),
        rs("api", "old", 1),
        rs("api", "new", 1),
        rs("worker", "old", 1),
        rs("worker", "new", 1),
    ]
    .into();
    assert!(violations(&canary, Some("old"), "old", true).is_empty());
    // The gateway alone switched: flagged.
    let mut alone = canary.clone();
    alone.insert(rs("gateway", "old", 0).0, rs("gateway", "old", 0).1);
    alone.insert(rs("gateway", "new", 2).0, rs("gateway", "new", 2).1);
    assert_eq!(violations(&alone, Some("old"), "old", true).len(), 1);
    // All new ReplicaSets at full size, the old ones going: fine.
    let switching: BTreeMap<_, _> = [
        rs("gateway", "old", 0),
        rs("gateway", "new", 2),
        rs("api", "old", 1),
        rs("api", "new", 2),
        rs("worker", "old", 1),
        rs("worker", "new", 1),
    ]
    .into();
    assert!(violations(&switching, Some("new"), "old", true).is_empty());
    // The status naming a new stable that is not at full size: flagged.
    assert_eq!(violations(&canary, Some("new"), "old", true).len(), 1);
    assert!(violations(&canary, Some("new"), "old", false).is_empty());
}

// ----- the tests ---------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_good_revision_promotes_all_three_components_with_their_configuration() {
    let (ns, _operator) = setup("comp-good").await;
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), Some(1)).await;
    assert_eq!(sizes(&ns, &v1).await, full());
    let (copy_v1, data_v1) = mounted_config(&ns, &v1).await;
    assert_eq!(
        data_v1.get("GREETING").map(String::as_str),
        Some("hello-v1")
    );
    pods_mount(&ns, &v1, &copy_v1).await;
    // The copy is owned by the ReplicaSets that mount it (garbage-collected with them).
    let owners: BTreeSet<String> = ns
        .api::<ConfigMap>()
        .get(&copy_v1)
        .await
        .expect("copy")
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let expected: BTreeSet<String> = COMPONENTS.iter().map(|c| rs_name(c.0, &v1)).collect();
    assert_eq!(owners, expected);
    // The Secret is copied too, and the worker reads the copy.
    let worker = ns
        .api::<ReplicaSet>()
        .get(&rs_name("worker", &v1))
        .await
        .expect("worker");
    let secret_copy = worker
        .spec
        .and_then(|s| s.template?.spec)
        .and_then(|p| p.containers[0].env_from.clone())
        .and_then(|e| e[0].secret_ref.clone())
        .map(|s| s.name)
        .unwrap_or_default();
    assert!(secret_copy.starts_with("db-"), "{secret_copy}");
    let secret = ns.api::<Secret>().get(&secret_copy).await.expect("copy");
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(
        secret
            .data
            .unwrap_or_default()
            .get("PASSWORD")
            .map(|b| b.0.clone()),
        Some(b"s3cret-v1".to_vec())
    );

    // New images and new configuration: one revision.
    let watch = watch_lockstep(&ns, &v1, true).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    deploy(&ns, &Version::new("v2"), steps.clone(), Some(1)).await;
    let status = wait_promoted(&ns, NAME, Some(&v1), "v2 to be promoted").await;
    let observed = watch.finish().await;
    let v2 = status.stable_revision.clone().expect("stable");
    assert!(
        observed.events > 10,
        "the watch saw the rollout: {observed:?}"
    );
    for (component, _) in COMPONENTS {
        assert!(
            observed
                .peak
                .contains_key(&(component.to_string(), v2.clone())),
            "{component} rolled out"
        );
    }
    assert_eq!(sizes(&ns, &v2).await, full());
    assert_eq!(sizes(&ns, &v1).await, vec![0, 0, 0]);
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    pods_mount(&ns, &v2, &copy_v2).await;
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("True".into(), "Passed".into()))
    );
    assert_eq!(
        status.history.last().map(|e| e.outcome.as_str()),
        Some("Promoted")
    );

    // A third revision: with a history limit of 1, revision 1's ReplicaSets are deleted and
    // Kubernetes' garbage collector deletes their copy; revision 2's stays.
    put_config(&ns, &[("GREETING", "hello-v3")]).await;
    deploy(&ns, &Version::new("v3"), steps, Some(1)).await;
    wait_status(
        &ns,
        NAME,
        Duration::from_secs(90),
        "v3 to be promoted",
        |s| {
            s.phase == Phase::Healthy
                && s.stable_revision.as_deref() != Some(v1.as_str())
                && s.stable_revision.as_deref() != Some(v2.as_str())
        },
    )
    .await;
    let config_maps: Api<ConfigMap> = ns.api();
    wait_until(
        Duration::from_secs(60),
        "revision 1's copy to be garbage-collected",
        || {
            let config_maps = config_maps.clone();
            let copy = copy_v1.clone();
            async move { Ok(config_maps.get_opt(&copy).await?.is_none().then_some(())) }
        },
    )
    .await;
    let replica_sets: Api<ReplicaSet> = ns.api();
    for (component, _) in COMPONENTS {
        let gone = replica_sets.get_opt(&rs_name(component, &v1)).await;
        assert!(
            gone.expect("get").is_none(),
            "{component} of revision 1 deleted"
        );
    }
    // The Secret did not change: one copy, shared by the worker of every revision, kept while
    // any of them exists.
    let shared = ns
        .api::<Secret>()
        .get(&secret_copy)
        .await
        .expect("shared copy");
    let owners: BTreeSet<String> = shared
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect();
    assert!(
        owners.contains(&rs_name("worker", &v2)) && owners.len() >= 2,
        "{owners:?}"
    );
    assert!(
        config_maps.get_opt(&copy_v2).await.expect("get").is_some(),
        "revision 2 is kept for rollback, with its configuration"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_regression_in_one_component_reverts_all_three_and_their_configuration() {
    let (ns, _operator) = setup("comp-revert").await;
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "30s"}}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let (copy_v1, _) = mounted_config(&ns, &v1).await;

    let watch = watch_lockstep(&ns, &v1, true).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let bad = Version {
        crash: Some("api"),
        ..Version::new("v2")
    };
    deploy(&ns, &bad, steps, None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the regression to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    // Wait for the cluster to settle at the reverted sizes while still watching.
    let v2 = status
        .history
        .last()
        .map(|e| e.hash.clone())
        .expect("entry");
    wait_sizes(&ns, &v2, vec![0, 0, 0], "every canary at zero").await;
    let observed = watch.finish().await;

    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let entry = status.history.last().expect("history");
    assert_eq!(entry.outcome, "Reverted");
    assert!(status.rejected_revisions.contains(&v2));
    // All three canaries had started (lockstep), and all three were reverted.
    for (component, _) in COMPONENTS {
        assert!(
            observed
                .peak
                .get(&(component.to_string(), v2.clone()))
                .is_some_and(|p| *p > 0),
            "{component}'s canary started: {:?}",
            observed.peak
        );
    }
    assert_eq!(sizes(&ns, &v1).await, full());
    assert_eq!(sizes(&ns, &v2).await, vec![0, 0, 0]);
    // The configuration went back with the code: the running pods mount revision 1's copy,
    // which still holds the old content, although the ConfigMap now says hello-v2.
    let (copy, data) = mounted_config(&ns, &v1).await;
    assert_eq!(copy, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v1"));
    pods_mount(&ns, &v1, &copy_v1).await;
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    let original = original_config(&ns).await;
    assert_eq!(
        original.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    assert_eq!(events_of(&ns, "RolloutReverted").await.len(), 1);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_revision_missing_a_config_map_key_never_creates_a_pod() {
    let (ns, _operator) = setup("comp-preflight").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;

    let watch = watch_lockstep(&ns, &v1, true).await;
    let needs_key = Version {
        api_env: vec![json!({"name": "LOG_LEVEL", "valueFrom":
            {"configMapKeyRef": {"name": "app-config", "key": "LOG_LEVEL"}}})],
        ..Version::new("v2")
    };
    deploy(&ns, &needs_key, steps, None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the revision to be blocked",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let missing = r#"ConfigMap "app-config" has no key "LOG_LEVEL" (component api, container "app", env LOG_LEVEL)"#;
    let message = status.message.clone().unwrap_or_default();
    assert!(message.contains(missing), "status message: {message}");
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("False".into(), "MissingReferences".into()))
    );
    let preflight = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Preflight")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert_eq!(preflight, missing, "exactly what is missing, nothing else");
    assert_eq!(
        condition(&status, "Stalled"),
        Some(("True".into(), "PreflightFailed".into()))
    );
    // Events are recorded just after the status write: give it a moment under load.
    let mut blocked = events_of(&ns, "RolloutBlocked").await;
    for _ in 0..40 {
        if !blocked.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        blocked = events_of(&ns, "RolloutBlocked").await;
    }
    assert_eq!(blocked.len(), 1);
    assert!(
        blocked[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(missing)
    );
    let blocked_revision = status
        .history
        .last()
        .map(|e| e.hash.clone())
        .expect("entry");
    assert_ne!(blocked_revision, v1);

    // Stays blocked (checked again every 10 s): no ReplicaSet, no pod of another revision.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let observed = watch.finish().await;
    assert_eq!(
        observed.revisions,
        BTreeSet::from([v1.clone()]),
        "only the stable revision has ReplicaSets or pods"
    );
    let now = status_now(&ns, NAME).await;
    assert_eq!(now.phase, Phase::Blocked);
    assert_eq!(now.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(
        sizes(&ns, &v1).await,
        full(),
        "the stable revision keeps running"
    );

    // Once the key exists, the next check lets the rollout go (the revision now includes the
    // new content, so it is another revision than the blocked one).
    put_config(&ns, &[("GREETING", "hello-v1"), ("LOG_LEVEL", "debug")]).await;
    let status = wait_promoted(&ns, NAME, Some(&v1), "the fixed revision to be promoted").await;
    let v2 = status.stable_revision.expect("stable");
    assert_ne!(v2, blocked_revision);
    let (_, data) = mounted_config(&ns, &v2).await;
    assert_eq!(data.get("LOG_LEVEL").map(String::as_str), Some("debug"));
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn rolling_back_restores_the_configuration_of_that_revision() {
    let (ns, _operator) = setup("comp-rollback").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let (copy_v1, _) = mounted_config(&ns, &v1).await;
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    deploy(&ns, &Version::new("v2"), steps, None).await;
    let status = wait_promoted(&ns, NAME, Some(&v1), "v2 to be promoted").await;
    let v2 = status.stable_revision.clone().expect("stable");
    let (copy_v2, data_v2) = mounted_config(&ns, &v2).await;
    assert_eq!(
        data_v2.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
    pods_mount(&ns, &v2, &copy_v2).await;
    let number = |status: &SafeDeploymentStatus, hash: &str| {
        status
            .revisions
            .iter()
            .find(|r| r.hash == hash)
            .map(|r| r.number)
            .expect("recorded")
    };
    let first = number(&status, &v1);
    assert_eq!(first, 1);

    // As `safedeploy rollback --to-revision 1` writes it. The old ReplicaSets scale up first,
    // then the current ones down (checked at every step, without the status rule: the status
    // names revision 1 stable before its ReplicaSets are scaled back up).
    let watch = watch_lockstep(&ns, &v2, false).await;
    annotate(
        &ns,
        NAME,
        "safedeploy.dev/rollback",
        &format!("{first}/{}", common::random_suffix(8)),
    )
    .await
    .expect("annotate");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(60),
        "the rollback to revision 1",
        |s| s.stable_revision.as_deref() == Some(v1.as_str()),
    )
    .await;
    wait_sizes(&ns, &v2, vec![0, 0, 0], "revision 2 at zero").await;
    watch.finish().await;
    assert!(
        status
            .history
            .iter()
            .any(|e| e.outcome == "RolledBack" && e.revision == 1)
    );
    assert_eq!(sizes(&ns, &v1).await, full());
    // Revision 1's pods mount revision 1's copy, which holds revision 1's content, while the
    // ConfigMap itself still says hello-v2.
    let (copy, data) = mounted_config(&ns, &v1).await;
    assert_eq!(copy, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v1"));
    pods_mount(&ns, &v1, &copy_v1).await;
    let original = original_config(&ns).await;
    assert_eq!(
        original.get("GREETING").map(String::as_str),
        Some("hello-v2")
    );
}

/// The Secret `db` copy the worker of `revision` reads (`envFrom`), with its decoded content.
async fn worker_secret(ns: &TestNamespace, revision: &str) -> (String, BTreeMap<String, String>) {
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("worker", revision))
        .await
        .expect("worker ReplicaSet");
    let pod = rs.spec.and_then(|s| s.template?.spec).expect("template");
    let copy = pod.containers[0]
        .env_from
        .iter()
        .flatten()
        .find_map(|source| source.secret_ref.as_ref().map(|r| r.name.clone()))
        .expect("envFrom secretRef");
    assert!(
        copy.starts_with("db-") && copy.len() == "db-".len() + 10,
        "a content-named copy, not the original: {copy}"
    );
    let secret = ns
        .api::<Secret>()
        .get(&copy)
        .await
        .expect("the copy exists");
    assert_eq!(secret.immutable, Some(true), "{copy} is immutable");
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    (copy, data)
}

/// The `safedeploy.dev/config-versions` annotation of a ReplicaSet.
async fn recorded_versions(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    let rs = ns.api::<ReplicaSet>().get(name).await.expect("ReplicaSet");
    rs.annotations()
        .get(safedeploy::api::labels::ANNOTATION_CONFIG_VERSIONS)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn editing_referenced_configuration_alone_rolls_out_a_new_revision() {
    let (ns, _operator) = setup("comp-config-edit").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps, None).await;
    let revisions_before = status_now(&ns, NAME).await.revisions.len();
    let (copy_v1, _) = mounted_config(&ns, &v1).await;

    // An edit that leaves the content as it was (a label): the operator reads the ConfigMap
    // again (it records the new resourceVersion on the revision's ReplicaSets) and starts
    // nothing.
    let patch = json!({"metadata": {"labels": {"owner": "team-a"}}});
    let labelled = ns
        .api::<ConfigMap>()
        .patch("app-config", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label app-config");
    let new_version = labelled.resource_version().expect("resourceVersion");
    wait_until(
        Duration::from_secs(30),
        "the new resourceVersion recorded on every ReplicaSet of v1",
        || {
            let ns = &ns;
            let new_version = new_version.clone();
            let v1 = v1.clone();
            async move {
                for (component, _) in COMPONENTS {
                    let versions = recorded_versions(ns, &rs_name(component, &v1)).await;
                    if versions.get("configmap/app-config") != Some(&new_version) {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        },
    )
    .await;
    let status = status_now(&ns, NAME).await;
    assert_eq!(status.phase, Phase::Healthy);
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(status.canary_revision, None);
    assert_eq!(status.revisions.len(), revisions_before, "no new revision");

    // A content edit of the ConfigMap alone (the SafeDeployment is not touched): a new revision
    // goes through the canary steps, in lockstep, and its pods mount the new content.
    let generation = ns
        .api::<SafeDeployment>()
        .get(NAME)
        .await
        .expect("sd")
        .metadata
        .generation;
    let watch = watch_lockstep(&ns, &v1, true).await;
    let edited = std::time::Instant::now();
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let (v2, canary_after) = promoted_from(&ns, &v1, edited, "the ConfigMap edit").await;
    watch.finish().await;
    println!("ConfigMap edit -> canary seen in status after {canary_after:?}");
    assert_ne!(v2, v1);
    let (copy_v2, data) = mounted_config(&ns, &v2).await;
    assert_ne!(copy_v2, copy_v1);
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v2"));
    pods_mount(&ns, &v2, &copy_v2).await;
    let sd = ns.api::<SafeDeployment>().get(NAME).await.expect("sd");
    assert_eq!(
        sd.metadata.generation, generation,
        "the spec was not touched"
    );
    let status = sd.status.expect("status");
    assert_eq!(status.revisions.len(), revisions_before + 1);
    assert_eq!(sizes(&ns, &v1).await, vec![0, 0, 0], "v1 kept at zero");
    // The revision records say which configuration changed (the dashboard's diff): the
    // ConfigMap's content digest differs, the Secret's does not.
    let record = |hash: &str| {
        status
            .revisions
            .iter()
            .find(|r| r.hash == hash)
            .map(|r| r.config.clone())
            .unwrap_or_default()
    };
    let (config_v1, config_v2) = (record(&v1), record(&v2));
    assert!(
        config_v2.contains_key("configmap/app-config"),
        "{config_v2:?}"
    );
    assert_ne!(
        config_v1.get("configmap/app-config"),
        config_v2.get("configmap/app-config"),
        "the edited ConfigMap's digest changed"
    );
    let secrets: Vec<&String> = config_v2
        .keys()
        .filter(|k| k.starts_with("secret/"))
        .collect();
    for key in secrets {
        assert_eq!(
            config_v1.get(key),
            config_v2.get(key),
            "{key} did not change"
        );
    }

    // The same for a Secret.
    let edited = std::time::Instant::now();
    put_secret(&ns, "s3cret-v2").await;
    let (v3, canary_after) = promoted_from(&ns, &v2, edited, "the Secret edit").await;
    println!("Secret edit -> canary seen in status after {canary_after:?}");
    assert_ne!(v3, v2);
    let (_, secret) = worker_secret(&ns, &v3).await;
    assert_eq!(
        secret.get("PASSWORD").map(String::as_str),
        Some("s3cret-v2")
    );
    let (_, old_secret) = worker_secret(&ns, &v2).await;
    assert_eq!(
        old_secret.get("PASSWORD").map(String::as_str),
        Some("s3cret-v1"),
        "the previous revision keeps its copy for a rollback"
    );
}
