//! Governance on the real API server: the chart's ValidatingAdmissionPolicies (rendered by
//! `helm template charts/safedeploy --set governance.enabled=true`) in a governed namespace.
//!
//! - Every bypass path a namespace editor has (a Deployment, a bare ReplicaSet or Pod, forged
//!   owner references, editing, scaling, orphaning or deleting the operator's ReplicaSets or its
//!   configuration copies, swapping a running pod's image, writing status, forging or
//!   self-granting a request) is
//!   tried by an impersonated user with the RBAC to do it, and each must be denied by the policy
//!   that names itself and says what to do instead; the operator's own rollout, a Job's pod and
//!   an exempt workload still run.
//! - Requests need their RBAC verb: the plugin run as a person without it fails with the API
//!   server's message; run as people with it, the history, the Events and `safedeploy history`
//!   name who asked.
//!
//! Needs the local control plane (`eval "$(e2e/cluster.sh env)"`) and helm (see tests/chart).

mod chart;
mod common;
#[path = "governance/fixture.rs"]
mod fixture;
mod operator;

use std::time::Duration;

use common::Fault;
use fixture::{ADMIN, EDITOR, EXEMPT, Governed, PROMOTER, READER, bare_pod};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use operator::{apply, apply_stable, apply_stable_web, events_of, safe_deployment, wait_status};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentRecord};
use serde_json::json;

/// One way around safedeploy: who tries it, the kubectl arguments (and stdin), the policy that
/// must deny it and a phrase its message must hold (what to do instead).
struct Bypass {
    what: &'static str,
    args: Vec<String>,
    stdin: Option<String>,
    policy: &'static str,
    instead: &'static str,
}

fn bypass(
    what: &'static str,
    args: &[&str],
    policy: &'static str,
    instead: &'static str,
) -> Bypass {
    Bypass {
        what,
        args: args.iter().map(|a| a.to_string()).collect(),
        stdin: None,
        policy,
        instead,
    }
}

fn bypass_with(
    what: &'static str,
    manifest: serde_json::Value,
    policy: &'static str,
    instead: &'static str,
) -> Bypass {
    Bypass {
        what,
        args: ["create", "-f", "-"].map(String::from).to_vec(),
        stdin: Some(manifest.to_string()),
        policy,
        instead,
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn every_bypass_path_is_denied_with_a_message_naming_the_policy_and_the_way_instead() {
    let mut gov = Governed::new("gov-bypass").await;
    let _operator = gov.start_operator();
    // The operator's own path goes through: its ReplicaSet, the controllers' pods, its status.
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    // web mounts a ConfigMap, so the operator makes an immutable copy of it.
    fixture::kubectl_ok(
        &[
            "create",
            "configmap",
            "web-config",
            "--from-literal=GREETING=hello",
            "-n",
            &gov.ns.name,
        ],
        None,
    )
    .await;
    let mut manifest = safe_deployment(
        "web",
        2,
        "registry.local/app:v1",
        Fault::None,
        steps.clone(),
    );
    manifest["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "config", "configMap": {"name": "web-config"}}]);
    apply_stable(&gov.ns, &manifest).await;
    let config_maps: kube::Api<ConfigMap> = gov.ns.api();
    let copy = config_maps
        .list(&kube::api::ListParams::default().labels("safedeploy.dev/config-copy=true"))
        .await
        .expect("list")
        .items
        .into_iter()
        .next()
        .expect("the configuration copy")
        .name_any();
    let sds: kube::Api<SafeDeployment> = gov.ns.api();
    let web = sds.get("web").await.expect("web");
    let replica_sets: kube::Api<ReplicaSet> = gov.ns.api();
    let operator_rs = replica_sets
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .next()
        .expect("the operator's ReplicaSet");
    let rs_name = operator_rs.name_any();
    let rs_uid = operator_rs.uid().expect("uid");
    let pods = gov
        .ns
        .wait_ready_pods("web", 2, Duration::from_secs(30))
        .await;
    let pod_name = pods[0].name_any();

    let forged_rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "forged", "ownerReferences": [{
            "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment", "name": "web",
            "uid": web.uid().expect("uid"), "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "forged"}},
                 "template": {"metadata": {"labels": {"app": "forged"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.local/app:unattested"}]}}},
    });
    let mut bare_rs = forged_rs.clone();
    bare_rs["metadata"] = json!({"name": "bare"});
    let mut forged_pod = bare_pod("forged-pod");
    forged_pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid, "controller": true}]);
    let mut sd_with_request = safe_deployment(
        "web2",
        1,
        "registry.local/app:v1",
        Fault::None,
        steps.clone(),
    );
    sd_with_request["metadata"]["annotations"] =
        json!({"safedeploy.dev/promote-full": format!("1@{EDITOR}")});
    let forged_copy = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config-forged", "labels": {"safedeploy.dev/config-copy": "true", "safedeploy.dev/name": "web"}},
        "data": {"GREETING": "forged"},
    });
    let copy_ref = format!("configmap/{copy}");
    let rs = format!("replicaset/{rs_name}");
    let pod = format!("pod/{pod_name}");
    let image = r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.local/app:unattested"}]"#;
    let pod_image = r#"[{"op":"replace","path":"/spec/containers/0/image","value":"registry.local/app:unattested"}]"#;
    let orphan = r#"[{"op":"remove","path":"/metadata/ownerReferences"}]"#;
    let annotate = |pair: String| -> Vec<String> {
        [
            "annotate",
            "safedeployment",
            "web",
            "--overwrite",
            pair.as_str(),
        ]
        .map(String::from)
        .to_vec()
    };
    let mut paths = vec![
        bypass(
            "create a Deployment",
            &[
                "create",
                "deployment",
                "shadow",
                "--image=registry.local/app:unattested",
            ],
            "owned-workloads",
            "Declare a SafeDeployment",
        ),
        bypass_with(
            "create a ReplicaSet nobody owns",
            bare_rs,
            "owned-workloads",
            "Declare a SafeDeployment",
        ),
        bypass_with(
            "create a ReplicaSet with a forged SafeDeployment owner",
            forged_rs,
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass_with(
            "create a bare Pod",
            bare_pod("bare-pod"),
            "owned-pods",
            "Declare a SafeDeployment",
        ),
        bypass_with(
            "create a Pod with a forged owner (the operator's ReplicaSet)",
            forged_pod,
            "owned-pods",
            "Declare a SafeDeployment",
        ),
        bypass(
            "swap the image of the operator's ReplicaSet",
            &["patch", &rs, "--type=json", "-p", image],
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "resize the operator's ReplicaSet",
            &[
                "patch",
                &rs,
                "--type=merge",
                "-p",
                r#"{"spec":{"replicas":5}}"#,
            ],
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "scale the operator's ReplicaSet (scale subresource)",
            &["scale", &rs, "--replicas=5"],
            "operator-writes",
            "spec.replicas instead",
        ),
        bypass(
            "orphan the operator's ReplicaSet (remove its owner reference)",
            &["patch", &rs, "--type=json", "-p", orphan],
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "label the operator's ReplicaSet",
            &["label", &rs, "hijacked=true"],
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "delete the operator's ReplicaSet",
            &["delete", &rs, "--wait=false"],
            "operator-writes",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "swap the image of a running pod",
            &["patch", &pod, "--type=json", "-p", pod_image],
            "owned-pods",
            "Change the SafeDeployment instead",
        ),
        bypass(
            "write the SafeDeployment's status",
            &[
                "patch",
                "safedeployment",
                "web",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"stableRevision":"forged","history":[]}}"#,
            ],
            "operator-writes",
            "kubectl safedeploy promote|abort|retry|rollback|pause|resume instead",
        ),
        bypass(
            "delete the configuration copy a revision's pods mount",
            &["delete", &copy_ref, "--wait=false"],
            "config-copies",
            "Change the original ConfigMap or Secret instead",
        ),
        bypass(
            "take the copy label off a configuration copy",
            &["label", &copy_ref, "safedeploy.dev/config-copy-"],
            "config-copies",
            "Change the original ConfigMap or Secret instead",
        ),
        bypass_with(
            "create a ConfigMap posing as a configuration copy",
            forged_copy,
            "config-copies",
            "Change the original ConfigMap or Secret instead",
        ),
        bypass_with(
            "create a SafeDeploymentRecord (forge the audit trail)",
            json!({
                "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeploymentRecord",
                "metadata": {"name": "web-r9-forged"},
                "spec": {"safeDeployment": "web", "revision": 9, "hash": "forged", "outcome": "Promoted",
                         "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:00Z"},
            }),
            "operator-writes",
            "kubectl safedeploy history instead",
        ),
        bypass_with(
            "create a SafeDeployment carrying a promote --full request",
            sd_with_request,
            "requests",
            "grants it with the RBAC verb create",
        ),
    ];
    // Requests: forged requester, no requester, own name without the verb, for every action.
    let mut requests = vec![
        (
            "promote naming someone else (forged requester)",
            format!("safedeploy.dev/promote=1@{PROMOTER}"),
            "must name its requester",
        ),
        (
            "promote naming no requester",
            "safedeploy.dev/promote=2".to_string(),
            "must name its requester",
        ),
        (
            "promote without the verb",
            format!("safedeploy.dev/promote=3@{EDITOR}"),
            "grants it with the RBAC verb create on the resource safedeployments/promote",
        ),
        (
            "promote --full without the verb",
            format!("safedeploy.dev/promote-full=4@{EDITOR}"),
            "safedeployments/promote-full",
        ),
        (
            "abort without the verb",
            format!("safedeploy.dev/abort=5@{EDITOR}"),
            "safedeployments/abort",
        ),
        (
            "retry without the verb",
            format!("safedeploy.dev/retry=6@{EDITOR}"),
            "safedeployments/retry",
        ),
        (
            "rollback without the verb",
            format!("safedeploy.dev/rollback=1/7@{EDITOR}"),
            "safedeployments/rollback",
        ),
        (
            "pause without the verb",
            format!("safedeploy.dev/paused=true@{EDITOR}"),
            "safedeployments/pause",
        ),
        (
            "pause naming no requester",
            "safedeploy.dev/paused=true".to_string(),
            "must name its requester",
        ),
    ];
    for (what, pair, instead) in requests.drain(..) {
        paths.push(Bypass {
            what,
            args: annotate(pair),
            stdin: None,
            policy: "requests",
            instead,
        });
    }

    let mut denied = 0;
    let mut failures = Vec::new();
    for path in &paths {
        let args: Vec<&str> = path.args.iter().map(String::as_str).collect();
        let result = gov.kubectl_as(EDITOR, &args, path.stdin.as_deref()).await;
        let policy = gov.policy(path.policy);
        match result {
            Err(message) if message.contains(&format!("ValidatingAdmissionPolicy '{policy}'")) => {
                denied += 1;
                if !message.contains(path.instead) || !message.contains(&format!("{policy}:")) {
                    failures.push(format!(
                        "{}: denied, but the message lacks {:?}: {message}",
                        path.what, path.instead
                    ));
                }
                println!("DENIED {}: {}", path.what, message.trim());
            }
            other => failures.push(format!("{}: not denied by {policy}: {other:?}", path.what)),
        }
    }
    println!(
        "MEASURED bypass paths: {} tried, {denied} denied by the policies",
        paths.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(denied, paths.len());

    // Nothing changed behind the attempts.
    let after = replica_sets
        .get(&rs_name)
        .await
        .expect("the ReplicaSet is still there");
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(
        after
            .owner_references()
            .iter()
            .any(|o| o.kind == "SafeDeployment")
    );
    assert!(!after.labels().contains_key("hijacked"));
    let status = sds
        .get("web")
        .await
        .expect("web")
        .status
        .unwrap_or_default();
    assert_eq!(status.phase, Phase::Healthy);
    assert_ne!(status.stable_revision.as_deref(), Some("forged"));
    assert_eq!(
        replica_sets
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let kept = config_maps
        .get(&copy)
        .await
        .expect("the copy is still there");
    assert!(kept.labels().contains_key("safedeploy.dev/config-copy"));

    // What stays allowed: a Job's pod (governance.podOwnerKinds), an exempt workload and its
    // pods (governance.exemptWorkloads), made by the cluster's controllers.
    gov.kubectl_as(
        EDITOR,
        &[
            "create",
            "job",
            "migrate",
            "--image=registry.local/migrate:1",
        ],
        None,
    )
    .await
    .expect("a Job may be created");
    gov.kubectl_as(
        EDITOR,
        &[
            "create",
            "deployment",
            EXEMPT,
            "--image=registry.local/legacy:1",
        ],
        None,
    )
    .await
    .expect("the exempt Deployment may be created");
    let pods: kube::Api<Pod> = gov.ns.api();
    common::wait_until(
        Duration::from_secs(30),
        "the Job's and the exempt Deployment's pods",
        || {
            let pods = pods.clone();
            async move {
                let names: Vec<String> = pods
                    .list(&Default::default())
                    .await?
                    .items
                    .iter()
                    .map(|p| p.name_any())
                    .collect();
                let job = names.iter().any(|n| n.starts_with("migrate-"));
                let legacy = names.iter().any(|n| n.starts_with(&format!("{EXEMPT}-")));
                Ok((job && legacy).then_some(()))
            }
        },
    )
    .await;
    // The operator was never refused.
    let log = std::fs::read_to_string(
        std::env::temp_dir().join(format!("safedeploy-operator-{}.log", gov.ns.name)),
    )
    .unwrap_or_default();
    assert!(
        !log.contains("denied request"),
        "the operator was denied:\n{log}"
    );
}

/// The newest history entry with `outcome`.
fn entry<'a>(
    status: &'a safedeploy::api::SafeDeploymentStatus,
    outcome: &str,
) -> Option<&'a safedeploy::api::HistoryEntry> {
    status.history.iter().rev().find(|e| e.outcome == outcome)
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn requests_need_their_verb_and_history_events_and_the_plugin_name_the_requester() {
    let mut gov = Governed::new("gov-actor").await;
    let _operator = gov.start_operator();
    let steps = json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]);
    apply_stable_web(&gov.ns, 2, &steps).await;
    apply(
        &gov.ns,
        &safe_deployment(
            "web",
            2,
            "registry.local/app:v2",
            Fault::None,
            steps.clone(),
        ),
    )
    .await
    .expect("apply v2");
    wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(60),
        "the canary to wait at its pause",
        |s| s.phase == Phase::Paused && s.current_step_index == Some(1),
    )
    .await;

    // Other tests on the shared cluster apply their own build's CRDs; this build's (with
    // `status.history[].actor`) must be the ones served while the actions are recorded.
    operator::install_crds(&gov.ns.client).await;
    // Without the verb: the plugin fails with the API server's message, and nothing happens.
    let (ok, _, stderr) = gov.plugin_as(READER, &["promote", "web"]).await;
    assert!(!ok, "carol promoted without the verb");
    let requests = gov.policy("requests");
    for needle in [
        "the API server refused promote of SafeDeployment",
        &format!("{requests}: {READER} may not promote SafeDeployment"),
        "create on the resource safedeployments/promote",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    println!("MEASURED the plugin's denial: {}", stderr.trim());
    // The promoter holds the verb, yet may not press the button in someone else's name.
    let forged = format!("safedeploy.dev/promote=1@{ADMIN}");
    let refused = gov
        .kubectl_as(
            PROMOTER,
            &["annotate", "safedeployment", "web", "--overwrite", &forged],
            None,
        )
        .await
        .expect_err("bob promoted in dave's name");
    assert!(refused.contains(&format!("{requests}: the safedeploy.dev/promote annotation must name its requester: its value must end in @{PROMOTER}")), "{refused}");
    // The promoter may pause, resume and promote one step, not skip every step.
    let (ok, _, stderr) = gov.plugin_as(PROMOTER, &["promote", "web", "--full"]).await;
    assert!(!ok && stderr.contains("may not promote-full"), "{stderr}");
    for verb in ["pause", "resume", "promote"] {
        let (ok, stdout, stderr) = gov.plugin_as(PROMOTER, &[verb, "web"]).await;
        assert!(ok, "{verb} by bob: {stdout}{stderr}");
        if verb != "promote" {
            let outcome = if verb == "pause" { "Paused" } else { "Resumed" };
            wait_status(&gov.ns, "web", Duration::from_secs(30), outcome, |s| {
                entry(s, outcome).is_some()
            })
            .await;
        }
    }
    let promoted = wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(60),
        "the promotion",
        |s| {
            s.phase == Phase::Healthy
                && s.canary_revision.is_none()
                && entry(s, "PromoteRequested").is_some()
        },
    )
    .await;
    for outcome in ["Paused", "Resumed", "PromoteRequested"] {
        let recorded = entry(&promoted, outcome).expect("recorded");
        assert_eq!(
            recorded.actor.as_deref(),
            Some(PROMOTER),
            "{outcome}: {recorded:?}"
        );
        assert!(
            recorded
                .reason
                .contains(&format!("requested by {PROMOTER}")),
            "{recorded:?}"
        );
    }
    // The operator's own verdict names no one.
    assert!(entry(&promoted, "Promoted").is_some_and(|e| e.actor.is_none()));

    // The admin aborts a canary and retries it.
    apply(
        &gov.ns,
        &safe_deployment("web", 2, "registry.local/app:v3", Fault::None, steps),
    )
    .await
    .expect("apply v3");
    wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(60),
        "the v3 canary",
        |s| s.phase == Phase::Paused,
    )
    .await;
    let (ok, _, stderr) = gov.plugin_as(ADMIN, &["abort", "web"]).await;
    assert!(ok, "abort by dave: {stderr}");
    let aborted = wait_status(&gov.ns, "web", Duration::from_secs(30), "the abort", |s| {
        entry(s, "Reverted").is_some()
    })
    .await;
    let reverted = entry(&aborted, "Reverted").expect("reverted");
    assert_eq!(reverted.actor.as_deref(), Some(ADMIN), "{reverted:?}");
    assert!(
        reverted.reason.contains(&format!("aborted by {ADMIN}")),
        "{reverted:?}"
    );
    let (ok, _, stderr) = gov.plugin_as(ADMIN, &["retry", "web"]).await;
    assert!(ok, "retry by dave: {stderr}");
    let retried = wait_status(&gov.ns, "web", Duration::from_secs(30), "the retry", |s| {
        entry(s, "RetryRequested").is_some()
    })
    .await;
    assert_eq!(
        entry(&retried, "RetryRequested").and_then(|e| e.actor.as_deref()),
        Some(ADMIN)
    );

    // Events and the plugin's output name them too.
    let paused = events_of(&gov.ns, "Paused").await;
    assert!(
        paused.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("paused by {PROMOTER}")))),
        "{paused:?}"
    );
    let reverted = events_of(&gov.ns, "RolloutReverted").await;
    assert!(
        reverted.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!("aborted by {ADMIN}")))),
        "{reverted:?}"
    );
    let (ok, history, _) = gov.plugin_as(READER, &["history", "web"]).await;
    assert!(ok);
    println!("{history}");
    let line = |outcome: &str| first_line_with(&history, outcome);
    assert!(line("PromoteRequested").contains(PROMOTER), "{history}");
    assert!(line("RetryRequested").contains(ADMIN), "{history}");
    let (ok, status, _) = gov.plugin_as(READER, &["status", "web"]).await;
    assert!(
        ok && status.contains(&format!("Last action: RetryRequested by {ADMIN}")),
        "{status}"
    );

    // The durable records: one per finished entry, write-once, outliving the SafeDeployment.
    let records: kube::Api<SafeDeploymentRecord> = gov.ns.api();
    let recorded = common::wait_until(
        Duration::from_secs(30),
        "the records of the actions",
        || {
            let records = records.clone();
            async move {
                let items = records.list(&Default::default()).await?.items;
                let has = |outcome: &str, actor: &str| {
                    items.iter().any(|r| {
                        r.spec.outcome == outcome && r.spec.actor.as_deref() == Some(actor)
                    })
                };
                let all = has("Paused", PROMOTER)
                    && has("PromoteRequested", PROMOTER)
                    && has("Reverted", ADMIN)
                    && has("RetryRequested", ADMIN);
                Ok(all.then_some(items))
            }
        },
    )
    .await;
    let promoted = recorded
        .iter()
        .find(|r| r.spec.outcome == "Promoted" && r.spec.revision == 2)
        .expect("the promotion of revision 2 is recorded");
    assert_eq!(promoted.spec.actor, None);
    assert!(
        promoted
            .spec
            .measurements
            .iter()
            .any(|m| m.starts_with("health ")),
        "the values that decided: {:?}",
        promoted.spec.measurements
    );
    // Write-once, even for the cluster admin (the CRD's rule, not only the policy).
    let name = promoted.name_any();
    let edit = fixture::kubectl(
        &[
            "patch",
            "safedeploymentrecord",
            &name,
            "-n",
            &gov.ns.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"outcome":"Reverted"}}"#,
        ],
        None,
    )
    .await
    .expect_err("a record was edited");
    assert!(
        edit.contains("a SafeDeploymentRecord is write-once"),
        "{edit}"
    );
    // Each entry is recorded once.
    let mut names: Vec<String> = recorded.iter().map(ResourceExt::name_any).collect();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count);
    let paused_records = recorded
        .iter()
        .filter(|r| r.spec.outcome == "Paused")
        .count();
    assert_eq!(paused_records, 1, "one pause, one record");
    // The SafeDeployment goes; its records and `safedeploy history` stay.
    fixture::kubectl_ok(
        &[
            "delete",
            "safedeployment",
            "web",
            "-n",
            &gov.ns.name,
            "--wait=true",
        ],
        None,
    )
    .await;
    let (ok, history, stderr) = gov.plugin_as(READER, &["history", "web"]).await;
    assert!(ok, "{stderr}");
    assert!(history.contains("Durable records"), "{history}");
    let line = |outcome: &str| first_line_with(&history, outcome);
    assert!(line("PromoteRequested").contains(PROMOTER), "{history}");
    assert!(
        records.get(&name).await.is_ok(),
        "the record went with the SafeDeployment"
    );
}

/// The first line of `text` that contains `needle` (empty if none).
fn first_line_with(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_default()
        .to_string()
}
