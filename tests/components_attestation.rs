//! Integration tests of the attestation binding of coupled components' configuration: the
//! contents of the ConfigMaps and Secrets the `shop` of `tests/shop` reads are part of what a
//! pipeline signs, so an edit nobody attested blocks as drift; and the digest a pipeline binds
//! with `safedeploy config-digest` is the one the operator computes.

mod common;
mod operator;
mod pipeline;
mod shop;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestNamespace;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use operator::{apply, condition, wait_promoted, wait_status};
use pipeline::Pipeline;
use safedeploy::api::Phase;
use serde_json::json;
use shop::*;

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_attestation_binds_the_configuration_contents() {
    let ns = TestNamespace::new("comp-attest").await;
    operator::install_crds(&ns.client).await;
    let pipeline = Pipeline::new(&ns.name);
    operator::namespace_policy(&ns.client, &ns.name, pipeline.trust_policy()).await;
    let _operator = operator::Operator::start(&ns.name).await;

    // Pinned images (the policy requires them) and an attestation per version.
    let attested = |tag: &str| {
        let mut manifest = pinned(
            manifest(&Version::new(tag), json!([{"setWeight": 50}]), None),
            tag,
        );
        manifest["spec"]["attestation"] = json!({"configMapRef": {"name": format!("att-{tag}")}});
        manifest
    };
    let config = |greeting: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"},
               "data": {"GREETING": greeting}})
    };
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                        "stringData": {"PASSWORD": "s3cret-v1"}});

    put_config(&ns, &[("GREETING", "hello-v1")]).await;
    put_secret(&ns, "s3cret-v1").await;
    let v1 = attested("v1");
    pipeline
        .sign_with_config(&ns, "att-v1", &v1, &[config("hello-v1"), secret.clone()])
        .await;
    let status = operator::apply_stable(&ns, &v1).await;
    assert_eq!(
        condition(&status, "Attested"),
        Some(("True".into(), "Verified".into()))
    );
    let stable = status.stable_revision.expect("stable");

    // The ConfigMap edited alone is a new revision whose configuration nobody attested: blocked
    // as drift, the stable revision keeps running.
    put_config(&ns, &[("GREETING", "hello-v2")]).await;
    let status = wait_status(
        &ns,
        NAME,
        Duration::from_secs(30),
        "the unattested edit blocked",
        |s| {
            s.phase == Phase::Blocked
                && condition(s, "Attested") == Some(("False".into(), "ConfigDrift".into()))
        },
    )
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(status.canary_revision, None);

    // v2 is signed with the configuration the pipeline validated (hello-v1), but the cluster's
    // ConfigMap says hello-v2: configuration drift, and no pod of v2.
    let v2 = attested("v2");
    pipeline
        .sign_with_config(&ns, "att-v2", &v2, &[config("hello-v1"), secret.clone()])
        .await;
    apply(&ns, &v2).await.expect("apply v2");
    let status = wait_status(&ns, NAME, Duration::from_secs(30), "ConfigDrift", |s| {
        s.phase == Phase::Blocked
            && condition(s, "Attested") == Some(("False".into(), "ConfigDrift".into()))
    })
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    assert_eq!(
        condition(&status, "Preflight"),
        Some(("True".into(), "Passed".into()))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replica_sets = ns.replica_sets().await;
    for rs in replica_sets {
        let revision = rs.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        assert_eq!(revision, stable, "no ReplicaSet of the drifted revision");
    }

    // Signed with what the cluster holds, it rolls out.
    pipeline
        .sign_with_config(&ns, "att-v2", &v2, &[config("hello-v2"), secret])
        .await;
    let status = wait_promoted(&ns, NAME, Some(&stable), "signed v2 promoted").await;
    let (_, data) = mounted_config(&ns, &status.stable_revision.expect("stable")).await;
    assert_eq!(data.get("GREETING").map(String::as_str), Some("hello-v2"));
}

/// No cluster needed: what a pipeline binds with `safedeploy config-digest --config-object`
/// (from manifests, the Secret with `stringData`) is what the operator computes from the
/// objects as the API server stores them (the Secret's `data` in bytes).
#[test]
fn the_pipeline_binds_the_same_configuration_as_the_operator() {
    use safedeploy::core::config::{config_map_digest, secret_digest};
    let dir = tempfile::tempdir().expect("tempdir");
    let sd = manifest(&Version::new("v1"), json!([{"setWeight": 100}]), None);
    let sd_path = dir.path().join("sd.yaml");
    std::fs::write(&sd_path, serde_yaml::to_string(&sd).expect("yaml")).expect("write");
    let objects = dir.path().join("config.yaml");
    std::fs::write(
        &objects,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {GREETING: hello}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {PASSWORD: pw}\n",
    )
    .expect("write");
    let run = |extra: &[&std::path::Path]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_safedeploy"));
        command.args(["config-digest", "--manifest"]).arg(&sd_path);
        for path in extra {
            command.arg("--config-object").arg(path);
        }
        command.output().expect("run safedeploy")
    };
    let out = run(&[&objects]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_pipeline = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let stored_cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app-config",
        "resourceVersion": "5"}, "data": {"GREETING": "hello"}}))
    .expect("cm");
    let stored_secret: Secret = serde_json::from_value(json!({"metadata": {"name": "db"},
        "type": "Opaque", "data": {"PASSWORD": "cHc="}}))
    .expect("secret");
    let spec: safedeploy::api::SafeDeploymentSpec =
        serde_json::from_value(sd["spec"].clone()).expect("spec");
    let operator = safedeploy::attest::config_digest_with(
        &spec,
        &BTreeMap::from([
            (
                "configmap/app-config".to_string(),
                config_map_digest(&stored_cm),
            ),
            ("secret/db".to_string(), secret_digest(&stored_secret)),
        ]),
    )
    .expect("digest");
    assert_eq!(from_pipeline, operator);

    // Without the objects the digest differs (and the tool says which are missing).
    let bare = run(&[]);
    assert!(bare.status.success());
    assert_ne!(String::from_utf8_lossy(&bare.stdout).trim(), operator);
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("configmap/app-config, secret/db"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    // An object the templates do not reference is refused.
    let stray = dir.path().join("stray.yaml");
    std::fs::write(
        &stray,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
    )
    .expect("write");
    let refused = run(&[&stray]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("configmap/other is not referenced"));
}
