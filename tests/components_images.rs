//! Integration tests of the image rules of coupled components on the local control plane, with
//! the three-component `shop` of `tests/shop`:
//!
//! * a missing image pull Secret (or one without registry credentials) blocks, by name;
//! * an image not pinned by digest blocks unless the namespace's policy allows tags.

mod common;
mod operator;
mod shop;

use std::time::Duration;

use common::TestNamespace;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use operator::{apply, condition, setup, wait_promoted, wait_status};
use safedeploy::api::Phase;
use serde_json::json;
use shop::*;

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_missing_image_pull_secret_blocks_until_it_exists() {
    let (ns, _operator) = setup("comp-pull-secret").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, steps.clone(), None).await;
    let mut v2 = manifest(&Version::new("v2"), steps, None);
    for component in v2["spec"]["components"].as_array_mut().expect("list") {
        component["template"]["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    }
    apply(&ns, &v2).await.expect("apply v2");
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "blocked on the pull secret",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let message = status.message.clone().unwrap_or_default();
    for (component, _) in COMPONENTS {
        let line = format!(
            "image pull Secret \"regcred\" not found (component {component}, imagePullSecrets)"
        );
        assert!(message.contains(&line), "status message: {message}");
    }
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));

    // A Secret of the wrong type is reported as such.
    let opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
                        "stringData": {"user": "ci"}});
    let secrets = ns.api::<Secret>();
    secrets
        .patch(
            "regcred",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&opaque),
        )
        .await
        .expect("apply regcred");
    wait_status(&ns, NAME, Duration::from_secs(30), "the wrong type named", |s| {
        s.message.as_deref().is_some_and(|m| {
            m.contains(r#"image pull Secret "regcred" has type "Opaque", not kubernetes.io/dockerconfigjson"#)
        })
    })
    .await;
    let replica_sets = ns.replica_sets().await;
    assert!(
        replica_sets
            .iter()
            .all(|rs| rs.labels().get(REVISION_LABEL) == Some(&v1)),
        "no ReplicaSet of the blocked revision"
    );

    // The type of a Secret cannot change: replace it with registry credentials.
    secrets
        .delete("regcred", &Default::default())
        .await
        .expect("delete regcred");
    let registry = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": r#"{"auths":{"registry.local":{"auth":"Y2k6cGFzcw=="}}}"#}});
    secrets
        .patch(
            "regcred",
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(&registry),
        )
        .await
        .expect("apply regcred");
    let (v2, _) = promoted_from(
        &ns,
        &v1,
        std::time::Instant::now(),
        "v2 with its pull secret",
    )
    .await;
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("api", &v2))
        .await
        .expect("ReplicaSet");
    let pull = rs
        .spec
        .and_then(|s| s.template?.spec?.image_pull_secrets)
        .unwrap_or_default();
    assert_eq!(pull.len(), 1);
    assert_eq!(
        pull[0].name, "regcred",
        "pull Secrets are referenced, not copied"
    );
}

/// Images must be pinned by digest unless the namespace's policy opts out, even where it does
/// not require attestations: a revision with tags never creates a ReplicaSet and names every
/// unpinned image; the same revision pinned rolls out; an admin's opt-out lets tags through.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn unpinned_images_block_unless_the_policy_allows_tags() {
    let ns = TestNamespace::new("comp-pinned").await;
    operator::install_crds(&ns.client).await;
    // Attestation opted out; `requirePinnedImages` left at its default.
    operator::namespace_policy(&ns.client, &ns.name, json!({"requireAttestation": false})).await;
    let _operator = operator::Operator::start(&ns.name).await;
    put_config(&ns, &[("GREETING", "hello-v1")]).await;
    put_secret(&ns, "s3cret-v1").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    deploy(&ns, &Version::new("v1"), steps.clone(), None).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the tagged revision to be blocked",
        |s| s.phase == Phase::Blocked,
    )
    .await;
    let message = status.message.clone().unwrap_or_default();
    for (component, _) in COMPONENTS {
        let line = format!(
            r#"image "registry.local/{component}:v1" is not pinned by digest (repository@sha256:<64 hex>), which the namespace's policy requires (component {component}, container "app")"#
        );
        assert!(message.contains(&line), "status message: {message}");
    }
    assert_eq!(
        condition(&status, "Preflight").map(|(status, _)| status),
        Some("False".into())
    );
    let replica_sets = ns.api::<ReplicaSet>().list(&ListParams::default()).await;
    assert_eq!(
        replica_sets.expect("list").items.len(),
        0,
        "no ReplicaSet of the blocked revision"
    );

    // Pinned, the same revision rolls out.
    let status = operator::apply_stable(
        &ns,
        &pinned(manifest(&Version::new("v1"), steps.clone(), None), "v1"),
    )
    .await;
    let stable = status.stable_revision.expect("stable");
    let rs = ns
        .api::<ReplicaSet>()
        .get(&rs_name("api", &stable))
        .await
        .expect("ReplicaSet");
    let image = rs
        .spec
        .and_then(|s| s.template?.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    assert!(image.starts_with("registry.local/api@sha256:"), "{image}");

    // An admin cannot turn pinning off while attestations are required (they bind digests)…
    let policies: Api<safedeploy::api::SafeDeploymentPolicy> = Api::all(ns.client.clone());
    let contradictory = json!({
        "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeploymentPolicy",
        "metadata": {"name": format!("{}-contradictory", ns.name)},
        "spec": {"namespaces": [ns.name.clone()], "requirePinnedImages": false,
                 "trustedKeys": [{"name": "k", "algorithm": "ed25519",
                                  "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"}]},
    });
    let rejected = policies
        .patch(
            &format!("{}-contradictory", ns.name),
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(&contradictory),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        rejected.contains("requirePinnedImages: false needs requireAttestation: false"),
        "{rejected}"
    );
    // …but can opt out where they are not: tags then roll out.
    operator::opt_out(&ns).await;
    deploy(&ns, &Version::new("v2"), steps, None).await;
    let promoted = "the tagged v2 promoted after the opt-out";
    wait_promoted(&ns, NAME, Some(&stable), promoted).await;
}
