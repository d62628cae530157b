//! Break-glass on the real API server, under the chart's governance policies: the override of a
//! freeze window is a request like promote (`safedeploy.dev/break-glass: <expires>@<username>`
//! with a `safedeploy.dev/break-glass-reason`), so
//!
//! - a break-glass naming someone else is denied by the requests policy, even for a person
//!   who holds the verb;
//! - a person without the RBAC verb `create` on `safedeployments/break-glass` (the chart's
//!   promoter) is denied, and the plugin shows the API server's message naming the verb and the
//!   `-admin` ClusterRole;
//! - an override without a reason is denied at the write; one beyond the policy's
//!   `maxBreakGlass` is admitted, and the operator refuses it and says why in status;
//! - the admin's `kubectl safedeploy break-glass` lifts the freeze, and the history entry and the
//!   Event name who and why.
//!
//! Needs the local control plane (`eval "$(e2e/cluster.sh env)"`) and helm (see tests/chart).

mod chart;
mod common;
#[path = "governance/fixture.rs"]
#[allow(dead_code)]
mod fixture;
mod operator;

use std::time::Duration;

use common::Fault;
use common::in_seconds;
use fixture::{ADMIN, Governed, PROMOTER};
use operator::{apply, apply_stable_web, events_of, policy_with, safe_deployment, wait_status};
use safedeploy::api::Phase;
use serde_json::json;

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn break_glass_needs_its_verb_its_own_name_and_a_reason_and_records_who_and_why() {
    let mut gov = Governed::new("gov-glass").await;
    let _operator = gov.start_operator();
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}]);
    let first = apply_stable_web(&gov.ns, 2, &steps).await;
    policy_with(
        &gov.ns,
        json!({"requireAttestation": false, "requirePinnedImages": false,
               "freeze": {"windows": [{"name": "year-end", "reason": "integration test",
                   "once": {"start": in_seconds(-60), "end": in_seconds(900)}}]}}),
        "freeze",
    )
    .await;
    apply(
        &gov.ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
    )
    .await
    .expect("apply v2");
    wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(30),
        "the freeze to hold v2",
        |s| s.phase == Phase::Paused && s.freeze.as_ref().is_some_and(|f| f.active),
    )
    .await;
    let requests = gov.policy("requests");
    let expires = in_seconds(1800);

    // Forged: the promoter writes an override in the admin's name.
    let forged = format!("safedeploy.dev/break-glass={expires}@{ADMIN}");
    let refused = gov
        .kubectl_as(
            PROMOTER,
            &[
                "annotate",
                "safedeployment",
                "web",
                "--overwrite",
                &forged,
                "safedeploy.dev/break-glass-reason=hotfix",
            ],
            None,
        )
        .await
        .expect_err("bob broke the glass in dave's name");
    assert!(
        refused.contains(&format!(
            "{requests}: the safedeploy.dev/break-glass annotation must name its requester: its value must end in @{PROMOTER}"
        )),
        "{refused}"
    );

    // Without the verb: the promoter's plugin shows the API server's denial.
    let (ok, _, stderr) = gov
        .plugin_as(
            PROMOTER,
            &["break-glass", "web", "--reason", "hotfix", "--for", "30m"],
        )
        .await;
    assert!(!ok, "bob broke the glass without the verb");
    for needle in [
        "the API server refused break-glass of SafeDeployment",
        &format!("{requests}: {PROMOTER} may not break-glass SafeDeployment"),
        "create on the resource safedeployments/break-glass",
        &format!("the ClusterRole {} has it", gov.policy("admin")),
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
    println!("MEASURED the plugin's denial: {}", stderr.trim());

    // The admin's own override without a reason is denied at the write.
    let no_reason = format!("safedeploy.dev/break-glass={expires}@{ADMIN}");
    let refused = gov
        .kubectl_as(
            ADMIN,
            &[
                "annotate",
                "safedeployment",
                "web",
                "--overwrite",
                &no_reason,
            ],
            None,
        )
        .await
        .expect_err("an override without a reason was admitted");
    assert!(
        refused.contains(&format!(
            "{requests}: the break-glass override of {ADMIN} on SafeDeployment {}/web needs a reason",
            gov.ns.name
        )) && refused.contains("safedeploy.dev/break-glass-reason"),
        "{refused}"
    );
    // Beyond the policy's maxBreakGlass (4h by default) it is admitted, and the operator refuses
    // it and says why where its writer looks.
    let too_long = format!(
        "safedeploy.dev/break-glass={}@{ADMIN}",
        in_seconds(5 * 3600)
    );
    gov.kubectl_as(
        ADMIN,
        &[
            "annotate",
            "safedeployment",
            "web",
            "--overwrite",
            &too_long,
            "safedeploy.dev/break-glass-reason=hotfix",
        ],
        None,
    )
    .await
    .expect("dave's own override is admitted");
    let still = wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(30),
        "the operator to refuse the override beyond maxBreakGlass",
        |s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("break-glass refused"))
        },
    )
    .await;
    let message = still.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("the break-glass request of {ADMIN} lasts until"))
            && message.contains("maxBreakGlass"),
        "{message}"
    );
    assert_eq!(still.canary_revision, None, "still frozen");
    assert_eq!(still.stable_revision, first.stable_revision);

    // The admin's plugin, with a reason: the freeze lifts and v2 rolls out.
    let reason = "CVE-2026-1234 hotfix";
    let (ok, stdout, stderr) = gov
        .plugin_as(
            ADMIN,
            &["break-glass", "web", "--reason", reason, "--for", "30m"],
        )
        .await;
    assert!(ok, "break-glass by dave: {stdout}{stderr}");
    let rolled = wait_status(
        &gov.ns,
        "web",
        Duration::from_secs(60),
        "v2 to roll out under the override",
        |s| s.phase == Phase::Healthy && s.stable_revision != first.stable_revision,
    )
    .await;
    let overridden = rolled
        .history
        .iter()
        .find(|e| e.outcome == "FreezeOverridden")
        .expect("the override is in the history");
    assert_eq!(overridden.actor.as_deref(), Some(ADMIN), "{overridden:?}");
    assert!(
        overridden
            .reason
            .contains(&format!("break-glass by {ADMIN}"))
            && overridden.reason.contains(reason)
            && overridden.reason.contains("year-end"),
        "{overridden:?}"
    );
    assert_eq!(
        rolled
            .history
            .iter()
            .filter(|e| e.outcome == "FreezeOverridden")
            .count(),
        1,
        "recorded once: {:?}",
        rolled.history
    );
    let freeze = rolled.freeze.clone().expect("the window is still there");
    assert!(
        !freeze.active
            && freeze
                .break_glass
                .as_deref()
                .is_some_and(|b| b.starts_with(&format!("{ADMIN}: {reason}"))),
        "{freeze:?}"
    );
    common::wait_until(
        Duration::from_secs(10),
        "a FreezeOverridden event naming who and why",
        || async {
            let events = events_of(&gov.ns, "FreezeOverridden").await;
            Ok(events
                .iter()
                .any(|e| {
                    e.message
                        .as_deref()
                        .is_some_and(|m| m.contains(ADMIN) && m.contains(reason))
                })
                .then_some(()))
        },
    )
    .await;
}
