//! Integration tests of the attestation gate on the local control plane: without an attestation
//! a SafeDeployment stays on its stable revision (`Attested=False`, Missing); a valid one starts
//! the canary; a changed image digest (DigestMismatch), an expired attestation (Expired) and an
//! uncovered template change (ConfigDrift) block it, with no pod of the new revision created.
//! Envelopes are made by the real pipeline tool, `safedeploy attest`.

mod common;
mod operator;
mod pipeline;

use std::time::Duration;

use common::{Fault, TestNamespace};
use operator::{
    Operator, apply, apply_stable, condition, install_crds, namespace_policy, safe_deployment,
    wait_status,
};
use pipeline::Pipeline;
use safedeploy::api::{Phase, SafeDeploymentStatus};
use serde_json::{Value, json};

fn digest_of(text: &str) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex::encode(sum.as_ref())
}

/// A SafeDeployment whose image is pinned by a digest derived from `version`, whose attestation
/// is the ConfigMap `att-<version>`.
fn manifest(version: &str, env_value: &str) -> Value {
    let image = format!("registry.local/web@sha256:{}", digest_of(version));
    let mut manifest = safe_deployment(
        "web",
        2,
        &image,
        Fault::None,
        json!([{"setWeight": 50}, {"setWeight": 100}]),
    );
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": env_value}]);
    manifest["spec"]["attestation"] = json!({"configMapRef": {"name": format!("att-{version}")}});
    manifest
}

async fn setup(prefix: &str) -> (TestNamespace, Operator, Pipeline) {
    let ns = TestNamespace::new(prefix).await;
    install_crds(&ns.client).await;
    let pipeline = Pipeline::new(&ns.name);
    namespace_policy(&ns.client, &ns.name, pipeline.trust_policy()).await;
    let operator = Operator::start(&ns.name).await;
    (ns, operator, pipeline)
}

/// Establishes a signed v1 as stable.
async fn stable_v1(ns: &TestNamespace, pipeline: &Pipeline) -> String {
    let v1 = manifest("v1", "a");
    pipeline.sign(ns, "att-v1", &v1, &[]).await;
    apply_stable(ns, &v1)
        .await
        .stable_revision
        .unwrap_or_default()
}

async fn blocked_with(ns: &TestNamespace, reason: &str) -> SafeDeploymentStatus {
    wait_status(
        ns,
        "web",
        Duration::from_secs(30),
        &format!("Attested=False {reason}"),
        |s| {
            s.phase == Phase::Blocked
                && condition(s, "Attested") == Some(("False".into(), reason.into()))
        },
    )
    .await
}

/// Only the stable revision's ReplicaSet has pods.
async fn only_stable_runs(ns: &TestNamespace, stable: &str) {
    // Give the operator time to (wrongly) act.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replica_sets = ns.replica_sets().await;
    for rs in replica_sets {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let replicas = rs.spec.and_then(|s| s.replicas).unwrap_or(0);
        if name.ends_with(stable) {
            assert_eq!(replicas, 2, "the stable revision is untouched");
        } else {
            assert_eq!(replicas, 0, "no pod of a blocked revision: {name}");
        }
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn no_attestation_blocks_and_a_valid_one_starts_the_canary() {
    let (ns, _operator, pipeline) = setup("attmissing").await;
    let stable = stable_v1(&ns, &pipeline).await;
    let v2 = manifest("v2", "a");
    apply(&ns, &v2).await.expect("apply unsigned v2");
    let status = blocked_with(&ns, "Missing").await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    only_stable_runs(&ns, &stable).await;
    // The pipeline signs v2 afterwards: the ConfigMap watch picks it up and the canary starts.
    pipeline.sign(&ns, "att-v2", &v2, &[]).await;
    let done = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "v2 promoted once attested",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() != Some(stable.as_str()),
    )
    .await;
    assert_eq!(
        condition(&done, "Attested").map(|c| c.1),
        Some("Verified".into())
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_changed_image_digest_is_a_digest_mismatch() {
    let (ns, _operator, pipeline) = setup("attdigest").await;
    let stable = stable_v1(&ns, &pipeline).await;
    // v2 is signed, but the spec applied carries another digest under the same attestation.
    let signed = manifest("v2", "a");
    pipeline.sign(&ns, "att-v2", &signed, &[]).await;
    let mut tampered = manifest("v2-tampered", "a");
    tampered["spec"]["attestation"] = json!({"configMapRef": {"name": "att-v2"}});
    apply(&ns, &tampered).await.expect("apply");
    let status = blocked_with(&ns, "DigestMismatch").await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable.as_str()));
    only_stable_runs(&ns, &stable).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn an_expired_attestation_is_rejected() {
    let (ns, _operator, pipeline) = setup("attexpired").await;
    let stable = stable_v1(&ns, &pipeline).await;
    let v2 = manifest("v2", "a");
    pipeline
        .sign(&ns, "att-v2", &v2, &["--expires-in", "1s"])
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    apply(&ns, &v2).await.expect("apply");
    blocked_with(&ns, "Expired").await;
    only_stable_runs(&ns, &stable).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn an_uncovered_template_change_is_config_drift() {
    let (ns, _operator, pipeline) = setup("attdrift").await;
    let stable = stable_v1(&ns, &pipeline).await;
    let v2 = manifest("v2", "a");
    pipeline.sign(&ns, "att-v2", &v2, &[]).await;
    // Same images, but the environment differs from what was validated.
    let drifted = manifest("v2", "b");
    apply(&ns, &drifted).await.expect("apply");
    let status = blocked_with(&ns, "ConfigDrift").await;
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Attested")
        .map(|c| c.message.clone());
    println!("ConfigDrift message: {message:?}");
    only_stable_runs(&ns, &stable).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_signature_by_an_untrusted_key_is_rejected() {
    let (ns, _operator, pipeline) = setup("attuntrusted").await;
    let stable = stable_v1(&ns, &pipeline).await;
    let other = Pipeline::new(&format!("{}-other", ns.name));
    let v2 = manifest("v2", "a");
    other.sign(&ns, "att-v2", &v2, &[]).await;
    apply(&ns, &v2).await.expect("apply");
    let status = wait_status(&ns, "web", Duration::from_secs(30), "a signature rejection", |s| {
        s.phase == Phase::Blocked
            && matches!(condition(s, "Attested"), Some((ref st, ref r)) if st == "False" && (r == "UntrustedKey" || r == "BadSignature"))
    })
    .await;
    println!(
        "untrusted key verdict: {:?}",
        condition(&status, "Attested")
    );
    only_stable_runs(&ns, &stable).await;
}
