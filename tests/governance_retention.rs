//! Record retention on the real API server, under the chart's RBAC and governance policies:
//!
//! - the operator deletes the `SafeDeploymentRecord`s older than the `audit.recordRetention` of
//!   the policy governing their namespace, also those of a SafeDeployment that was deleted, and
//!   keeps the younger ones;
//! - nobody else can delete (or edit) a record: not a namespace editor holding every verb on
//!   records (the governance policy denies it), not the chart's promoter or admin roles (RBAC);
//! - in a namespace no policy governs, no record is ever deleted, however old.
//!
//! The operator's retention sweep runs every second here (`--record-sweep-interval-seconds`)
//! and reads its clock ahead (`SAFEDEPLOY_FAULT_CLOCK_AHEAD`), so records made a moment ago are
//! "hours old" without waiting hours. Needs the local control plane and helm (see tests/chart).

mod chart;
mod common;
#[path = "governance/fixture.rs"]
#[allow(dead_code)]
mod fixture;
mod operator;

use std::time::Duration;

use fixture::{ADMIN, EDITOR, Governed, PROMOTER, READER};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use operator::{Operator, apply_stable_web, install_crds, namespace_policy, policy_with};
use safedeploy::api::{SafeDeploymentPolicy, SafeDeploymentRecord, SafeDeploymentRecordSpec};
use serde_json::{Value, json};

/// Environment of an operator whose sweep runs every second with its clock `ahead`.
fn sweeping(ahead: &str) -> [(&'static str, String); 2] {
    [
        ("SAFEDEPLOY_RECORD_SWEEP_INTERVAL_SECONDS", "1".to_string()),
        ("SAFEDEPLOY_FAULT_CLOCK_AHEAD", ahead.to_string()),
    ]
}

/// The `(namespaces, examined, deleted)` of every retention sweep the operator logged.
fn sweeps(log: &str) -> Vec<(u64, u64, u64)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|l| l["fields"]["message"] == "record retention sweep")
        .map(|l| {
            let field = |name: &str| l["fields"][name].as_u64().unwrap_or(u64::MAX);
            (field("namespaces"), field("examined"), field("deleted"))
        })
        .collect()
}

/// Waits until the operator (logging to `log_path`) has logged `count` sweeps `matching`;
/// returns those.
async fn wait_sweeps(
    log_path: &std::path::Path,
    count: usize,
    matching: impl Fn(&(u64, u64, u64)) -> bool,
) -> Vec<(u64, u64, u64)> {
    common::wait_until(Duration::from_secs(60), "retention sweeps", || {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        let seen: Vec<_> = sweeps(&log).into_iter().filter(|s| matching(s)).collect();
        async move { Ok((seen.len() >= count).then_some(seen)) }
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn records_outlive_their_rollout_until_the_policy_retention_and_only_the_operator_deletes_them()
 {
    let mut gov = Governed::new("gov-keep").await;
    let opted_out = json!({"requireAttestation": false, "requirePinnedImages": false});
    let keep = |retention: &str| {
        let mut spec = opted_out.clone();
        spec["audit"] = json!({"recordRetention": retention});
        spec
    };
    policy_with(&gov.ns, keep("3h"), "audit").await;
    let env = sweeping("2h");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _operator = gov.start_operator_with_env(&env);
    let log_path = std::env::temp_dir().join(format!("safedeploy-operator-{}.log", gov.ns.name));

    // A rollout leaves records; its SafeDeployment goes, its records stay.
    apply_stable_web(&gov.ns, 1, &json!([{"setWeight": 50}])).await;
    let records: Api<SafeDeploymentRecord> = gov.ns.api();
    let made = common::wait_until(Duration::from_secs(30), "the rollout's records", || {
        let records = records.clone();
        async move {
            let items = records.list(&Default::default()).await?.items;
            Ok((!items.is_empty()).then_some(items))
        }
    })
    .await;
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
    let name = made[0].name_any();

    // Nobody but the operator deletes or edits a record.
    let policy = gov.policy("operator-writes");
    let attempts: [(&str, Vec<&str>, &str); 6] = [
        (
            EDITOR,
            vec!["delete", "safedeploymentrecord", &name],
            "deleted only by the safedeploy operator",
        ),
        (
            EDITOR,
            vec!["delete", "safedeploymentrecords", "--all"],
            "deleted only by the safedeploy operator",
        ),
        (
            EDITOR,
            vec![
                "patch",
                "safedeploymentrecord",
                &name,
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"tampered":"yes"}}}"#,
            ],
            "written and deleted only by the safedeploy operator",
        ),
        (
            PROMOTER,
            vec!["delete", "safedeploymentrecord", &name],
            "cannot delete resource \"safedeploymentrecords\"",
        ),
        (
            ADMIN,
            vec!["delete", "safedeploymentrecord", &name],
            "cannot delete resource \"safedeploymentrecords\"",
        ),
        (
            READER,
            vec!["delete", "safedeploymentrecord", &name],
            "cannot delete resource \"safedeploymentrecords\"",
        ),
    ];
    let mut denied = 0;
    for (user, args, expected) in &attempts {
        let refused = gov
            .kubectl_as(user, args, None)
            .await
            .expect_err("a person deleted or edited a record");
        assert!(refused.contains(expected), "{user} {args:?}: {refused}");
        if *user == EDITOR {
            assert!(refused.contains(&policy), "{refused}");
        }
        denied += 1;
    }
    println!(
        "MEASURED record bypass paths: {denied} of {} denied",
        attempts.len()
    );

    // Younger than the retention (made a moment ago; 2h by the sweep's clock, kept 3h): kept,
    // sweep after sweep.
    let count = made.len() as u64;
    // Another build's CRDs (without `audit`), installed by other tests on the shared cluster,
    // prune the field from the policy: apply it again until the operator sweeps this namespace.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let seen = sweeps(&log)
            .into_iter()
            .filter(|&(namespaces, examined, _)| namespaces == 1 && examined == count)
            .count();
        if seen >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no three sweeps of this namespace: {:?}",
            sweeps(&log)
        );
        ensure_retention(&gov.ns, keep("3h")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        sweeps(&log).iter().all(|&(_, _, deleted)| deleted == 0),
        "a record younger than the retention was deleted: {:?}",
        sweeps(&log)
    );
    let now: Vec<String> = records
        .list(&Default::default())
        .await
        .expect("list records")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(now.len(), made.len(), "{now:?}");

    // The admin shortens the retention to 1h: the operator deletes them (through the same
    // governance policy and the chart's RBAC).
    policy_with(&gov.ns, keep("1h"), "audit").await;
    let started = std::time::Instant::now();
    let (namespace, short) = (&gov.ns, keep("1h"));
    common::wait_until(
        Duration::from_secs(60),
        "the records past the retention to go",
        || {
            let records = records.clone();
            let short = short.clone();
            async move {
                // Other tests may install another branch's CRDs (without `audit`) meanwhile.
                ensure_retention(namespace, short).await;
                Ok(records
                    .list(&Default::default())
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            }
        },
    )
    .await;
    println!(
        "MEASURED {} records past the retention deleted {:?} after the policy changed (sweep every 1s)",
        made.len(),
        started.elapsed()
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("record past its retention deleted"),
        "the operator logs each deletion"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_record_in_a_namespace_no_policy_governs_is_never_deleted() {
    let ns = common::TestNamespace::new("keep-nopolicy").await;
    install_crds(&ns.client).await;
    // A policy with the least retention exists, for another namespace: the sweep does look.
    let elsewhere = format!("{}-elsewhere", ns.name);
    // Another build's CRDs on the shared cluster may refuse `audit` for a moment; the test
    // holds without that policy too (it only makes the sweep look further).
    for _ in 0..5 {
        install_crds(&ns.client).await;
        let applied = std::panic::AssertUnwindSafe(namespace_policy(
            &ns.client,
            &elsewhere,
            json!({"requireAttestation": false, "audit": {"recordRetention": "1h"}}),
        ));
        if futures::FutureExt::catch_unwind(applied).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _cleanup = PolicyCleanup(format!("{elsewhere}-policy"));
    let records: Api<SafeDeploymentRecord> = ns.api();
    let record = SafeDeploymentRecord::new(
        "gone-r1-000000000000",
        SafeDeploymentRecordSpec {
            safe_deployment: "gone".into(),
            revision: 1,
            hash: "abc".into(),
            outcome: "Promoted".into(),
            started_at: "2016-12-02T10:00:00Z".into(),
            finished_at: "2016-12-02T10:01:00Z".into(),
            ..Default::default()
        },
    );
    records
        .create(&PostParams::default(), &record)
        .await
        .expect("create the record");
    // Ten years ahead by the sweep's clock.
    let env = sweeping("87600h");
    let operator = Operator::start_with_env(&ns.name, &env).await;
    let seen = wait_sweeps(&operator.log_path, 3, |_| true).await;
    // The policy elsewhere was in the cache for some of them (it may take a moment to arrive).
    assert!(
        seen.iter()
            .all(|&(namespaces, _, deleted)| namespaces == 0 && deleted == 0),
        "{seen:?}"
    );
    assert!(
        records.get("gone-r1-000000000000").await.is_ok(),
        "a record without a governing policy was deleted"
    );
}

/// Applies the namespace's policy `spec` again when its `audit` is gone (pruned while another
/// build's CRDs were installed).
async fn ensure_retention(ns: &common::TestNamespace, spec: Value) {
    let policies: Api<SafeDeploymentPolicy> = Api::all(ns.client.clone());
    let present = policies
        .get(&format!("{}-policy", ns.name))
        .await
        .is_ok_and(|p| p.spec.audit.is_some());
    if !present {
        policy_with(ns, spec, "audit").await;
    }
}

/// Deletes a cluster-scoped test policy when dropped.
struct PolicyCleanup(String);

impl Drop for PolicyCleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .arg(format!("safedeploymentpolicy/{}", self.0))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
