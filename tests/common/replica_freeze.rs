//! A platform's replica freeze, as a ValidatingAdmissionPolicy: every change of a ReplicaSet's
//! size in one namespace is refused by the API server, what tests use to make an operator write
//! fail on demand (the operator must stall visibly, and lose nothing it decided).

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::Fault;

/// A ValidatingAdmissionPolicy that refuses every change of a ReplicaSet's size in `namespace`.
pub async fn freeze_replica_counts(client: &kube::Client, namespace: &str) -> String {
    let name = format!("freeze-{namespace}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": {super::TEST_LABEL: "true"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["UPDATE"], "resources": ["replicasets"]
            }]},
            "validations": [{
                "expression": "object.spec.replicas == oldObject.spec.replicas",
                "message": "replica counts are frozen by the platform team"
            }]
        }
    }))
    .expect("policy");
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": {super::TEST_LABEL: "true"}},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": namespace
            }}}
        }
    }))
    .expect("binding");
    let params = PatchParams::apply("safedeploy-tests").force();
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .patch(&name, &params, &Patch::Apply(&policy))
        .await
        .expect("create the admission policy");
    Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .patch(&name, &params, &Patch::Apply(&binding))
        .await
        .expect("bind the admission policy");
    name
}

pub async fn unfreeze(client: &kube::Client, name: &str) {
    let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
    let _ = Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// Waits until the API server enforces the freeze (policies take effect asynchronously): a
/// dry-run scale of a probe ReplicaSet is refused.
pub async fn wait_until_frozen(ns: &super::TestNamespace) {
    let api: Api<ReplicaSet> = ns.api();
    let mut probe = super::replica_set("probe", 0, Fault::None);
    probe.metadata.namespace = Some(ns.name.clone());
    api.create(&PostParams::default(), &probe)
        .await
        .expect("probe ReplicaSet");
    super::wait_until(Duration::from_secs(30), "the freeze to be enforced", || {
        let api = api.clone();
        async move {
            let scale = json!({"spec": {"replicas": 1}});
            let refused = api
                .patch(
                    "probe",
                    &PatchParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &Patch::Merge(&scale),
                )
                .await
                .is_err();
            Ok(refused.then_some(()))
        }
    })
    .await;
    api.delete("probe", &DeleteParams::default())
        .await
        .expect("delete the probe");
}
