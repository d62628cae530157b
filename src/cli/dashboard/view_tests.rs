//! The dashboard's view model, built from SafeDeployments in the shapes the operator writes.

use super::*;
use crate::api::analysis::{AnalysisPhase, AnalysisRunStatus, Measurement};
use crate::api::{RevisionRecord, SafeDeploymentSpec};

fn images(image: &str) -> StatusMap {
    StatusMap::from_iter([("app".to_string(), image.to_string())])
}

fn entry(
    revision: i64,
    hash: &str,
    outcome: &str,
    started: &str,
    finished: Option<&str>,
) -> HistoryEntry {
    HistoryEntry {
        revision,
        hash: hash.into(),
        images: images(&format!("app:v{revision}")),
        outcome: outcome.into(),
        reason: format!("{outcome} because"),
        started_at: started.into(),
        finished_at: finished.map(str::to_string),
        actor: None,
        steps: Vec::new(),
    }
}

/// A rollout of v2 over v1 with four steps that reverted at the last pause, as the operator
/// leaves it: history, revisions, an analysis run with measurements, an attestation verdict.
fn reverted() -> SafeDeployment {
    let spec: SafeDeploymentSpec = serde_json::from_value(serde_json::json!({
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:v2"}]}},
        "strategy": {"canary": {"steps": [
            {"setWeight": 25}, {"analysis": {"template": "pods"}}, {"setWeight": 50}, {"pause": {}}
        ]}},
        "analyses": [{"name": "pods", "metrics": [
            {"name": "errors", "provider": {"kubernetes": {"signal": "restarts"}},
             "thresholds": {"target": 0.01, "acceptable": 0.02, "critical": 0.05}},
            {"name": "success", "provider": {"kubernetes": {"signal": "restarts"}},
             "direction": "higherIsBetter",
             "thresholds": {"target": 99.0, "acceptable": 98.0, "critical": 95.0}}
        ]}]
    }))
    .unwrap();
    let mut sd = SafeDeployment::new("web", spec);
    sd.metadata.namespace = Some("shop".into());
    let mut manual = entry(
        2,
        "bbb",
        "PromoteRequested",
        "2026-12-02T10:00:20Z",
        Some("2026-12-02T10:00:20Z"),
    );
    manual.actor = Some("alice@example.com".into());
    sd.status = Some(SafeDeploymentStatus {
        phase: Phase::Degraded,
        message: Some("reverted: restarts = 1".into()),
        stable_revision: Some("aaa".into()),
        canary_revision: None,
        canary_weight: 0,
        rejected_revisions: vec!["bbb".into()],
        revisions: vec![
            RevisionRecord {
                number: 2,
                hash: "bbb".into(),
                images: images("app:v2"),
                config: StatusMap::from_iter([
                    ("configmap/web-config".into(), "sha256:22".into()),
                    ("secret/web-tls".into(), "sha256:33".into()),
                ]),
            },
            RevisionRecord {
                number: 1,
                hash: "aaa".into(),
                images: images("app:v1"),
                config: StatusMap::from_iter([
                    ("configmap/web-config".into(), "sha256:11".into()),
                    ("configmap/old-flags".into(), "sha256:44".into()),
                ]),
            },
        ],
        history: vec![
            entry(
                1,
                "aaa",
                "Promoted",
                "2026-12-02T09:00:00Z",
                Some("2026-12-02T09:00:01Z"),
            ),
            manual,
            entry(
                2,
                "bbb",
                "Reverted",
                "2026-12-02T10:00:00Z",
                Some("2026-12-02T10:00:30Z"),
            ),
        ],
        analysis_runs: vec![AnalysisRunStatus {
            template: "pods".into(),
            phase: AnalysisPhase::Successful,
            canary_revision: Some("bbb".into()),
            step_index: Some(1),
            started_at: Some("2026-12-02T10:00:05Z".into()),
            finished_at: Some("2026-12-02T10:00:08Z".into()),
            measurements: vec![
                Measurement {
                    metric: "errors".into(),
                    value: Some(0.01),
                    baseline: Some(0.009),
                    threshold: "target 0.01".into(),
                    verdict: MetricVerdict::Pass,
                    at: "2026-12-02T10:00:06Z".into(),
                    ..Default::default()
                },
                Measurement {
                    metric: "errors".into(),
                    value: Some(f64::NAN),
                    baseline: None,
                    threshold: "target 0.01".into(),
                    verdict: MetricVerdict::NaN,
                    at: "2026-12-02T10:00:07Z".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        attestation: Some(AttestationVerdict {
            revision: "bbb".into(),
            verified: true,
            reason: "Verified".into(),
            message: "signed by ci".into(),
        }),
        ..Default::default()
    });
    sd
}

fn events() -> Vec<EventNote> {
    let note = |at: &str, reason: &str, message: &str, kind: &str| EventNote {
        at: at.into(),
        reason: reason.into(),
        message: message.into(),
        kind: kind.into(),
        count: 1,
    };
    vec![
        note(
            "2026-12-02T10:00:04Z",
            "StepCompleted",
            "step 1/4 (setWeight 25) completed at weight 25",
            "Normal",
        ),
        note(
            "2026-12-02T10:00:08Z",
            "StepCompleted",
            "step 2/4 (analysis pods) completed at weight 25",
            "Normal",
        ),
        note(
            "2026-12-02T10:00:10Z",
            "StepCompleted",
            "step 3/4 (setWeight 50) completed at weight 50",
            "Normal",
        ),
        note(
            "2026-12-02T10:00:30Z",
            "RolloutReverted",
            "restarts = 1 (Critical)",
            "Warning",
        ),
    ]
}

#[test]
fn the_list_row_says_phase_weight_stable_and_canary() {
    let mut sd = reverted();
    let row = summary(&sd);
    assert_eq!((row.namespace.as_str(), row.name.as_str()), ("shop", "web"));
    assert_eq!(row.phase, Phase::Degraded);
    assert_eq!(row.stable.as_deref(), Some("aaa"));
    assert_eq!(row.canary, None);
    // Before the operator wrote any status: Pending, weight 0, nothing else.
    sd.status = None;
    let row = summary(&sd);
    assert_eq!(
        (row.phase, row.weight, row.stable.clone()),
        (Phase::Pending, 0, None)
    );
    let json = serde_json::to_value(&row).unwrap();
    assert!(
        json.get("weight").is_some() && json.get("stable").is_some(),
        "{json}"
    );
}

#[test]
fn the_timeline_is_in_time_order_with_each_step_the_revert_and_who_acted() {
    let view = rollout(&reverted(), &events(), true);
    let times: Vec<&str> = view.timeline.iter().map(|e| e.at.as_str()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    let titles: Vec<&str> = view.timeline.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles.iter().filter(|t| **t == "StepCompleted").count(),
        3,
        "{titles:?}"
    );
    let revert = view
        .timeline
        .iter()
        .find(|e| e.title == "Reverted revision 2 (bbb)")
        .expect("the revert");
    assert_eq!(
        (revert.tone, revert.detail.as_str()),
        (Tone::Bad, "Reverted because")
    );
    // A manual action is one moment, with its actor; not a "rollout started" as well.
    let manual: Vec<&TimelineEntry> = view
        .timeline
        .iter()
        .filter(|e| e.at == "2026-12-02T10:00:20Z")
        .collect();
    assert_eq!(manual.len(), 1, "{manual:#?}");
    assert_eq!(manual[0].actor.as_deref(), Some("alice@example.com"));
    assert!(
        titles.contains(&"analysis pods (step 2) Successful"),
        "{titles:?}"
    );
    let attested = view
        .timeline
        .iter()
        .find(|e| e.source == "attestation")
        .expect("attestation");
    assert_eq!(
        (attested.title.as_str(), attested.at.as_str()),
        ("attestation of bbb verified", "2026-12-02T10:00:00Z"),
        "at the start of the rollout of the revision it verified"
    );
}

#[test]
fn each_metric_is_plotted_with_its_bands_and_a_non_finite_value_is_a_gap() {
    let view = rollout(&reverted(), &[], false);
    assert_eq!(
        view.metrics.len(),
        2,
        "every metric of the template, measured or not"
    );
    let errors = &view.metrics[0];
    assert_eq!((errors.metric.as_str(), errors.step), ("errors", Some(2)));
    let bands = errors.bands.expect("bands");
    assert_eq!(
        (bands.target, bands.acceptable, bands.critical),
        (0.01, 0.02, 0.05)
    );
    assert!(!bands.higher_is_better);
    assert_eq!(errors.points.len(), 2);
    assert_eq!(errors.points[0].baseline, Some(0.009));
    // NaN is not JSON: the point has no value, and its verdict says why.
    assert_eq!(
        (errors.points[1].canary, errors.points[1].verdict),
        (None, MetricVerdict::NaN)
    );
    assert!(serde_json::to_string(&view).is_ok());
    let success = &view.metrics[1];
    assert!(success.bands.expect("bands").higher_is_better);
    assert!(success.points.is_empty());
}

#[test]
fn the_weight_curve_climbs_through_the_steps_and_falls_at_the_revert() {
    let view = rollout(&reverted(), &events(), true);
    let weights: Vec<(&str, i32)> = view
        .weights
        .iter()
        .map(|w| (w.at.as_str(), w.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("2026-12-02T10:00:00Z", 0),
            ("2026-12-02T10:00:04Z", 25),
            ("2026-12-02T10:00:08Z", 25),
            ("2026-12-02T10:00:10Z", 50),
            ("2026-12-02T10:00:30Z", 0),
        ]
    );
    assert_eq!(
        completed_weight("step 1/4 (setWeight 25) completed at weight 25"),
        Some(25)
    );
    assert_eq!(completed_weight("at weight banana"), None);
    // Before any rollout: no curve.
    let mut fresh = reverted();
    fresh.status = Some(SafeDeploymentStatus::default());
    assert!(rollout(&fresh, &events(), true).weights.is_empty());
}

#[test]
fn revisions_are_newest_first_with_their_image_changes_and_outcomes() {
    let view = rollout(&reverted(), &[], true);
    let numbers: Vec<i64> = view.revisions.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [2, 1]);
    let v2 = &view.revisions[0];
    assert_eq!(
        (v2.role, v2.previous_hash.as_deref()),
        ("rejected", Some("aaa"))
    );
    assert_eq!(
        v2.changes,
        [ImageChange {
            container: "app".into(),
            from: Some("app:v1".into()),
            to: Some("app:v2".into())
        }]
    );
    assert_eq!(v2.outcomes, ["PromoteRequested", "Reverted"]);
    // Which configuration changed: edited, dropped and newly referenced objects, by digest.
    let config: Vec<(&str, Option<&str>, Option<&str>)> = v2
        .config_changes
        .iter()
        .map(|c| (c.object.as_str(), c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(
        config,
        [
            ("configmap/old-flags", Some("sha256:44"), None),
            ("configmap/web-config", Some("sha256:11"), Some("sha256:22")),
            ("secret/web-tls", None, Some("sha256:33")),
        ]
    );
    let v1 = &view.revisions[1];
    assert_eq!((v1.role, v1.changes.len()), ("stable", 0));
    assert!(v1.config_changes.is_empty(), "nothing before the first");
}

#[test]
fn actions_need_the_right_to_patch_and_a_state_they_apply_to() {
    let sd = reverted();
    let status = sd.status.clone().unwrap();
    // Reverted: nothing to promote or abort; a retry and a rollback apply.
    assert_eq!(
        actions(&status, true),
        Actions {
            promote: false,
            abort: false,
            retry: true,
            rollback: true
        }
    );
    // Without the right to patch, no action at all, whatever the state.
    let mut paused = status.clone();
    paused.phase = Phase::Paused;
    paused.canary_revision = Some("bbb".into());
    assert_eq!(actions(&paused, false), Actions::default());
    let offered = actions(&paused, true);
    assert!(offered.promote && offered.abort);
    assert!(!rollout(&sd, &[], false).may_act);
}

#[test]
fn the_steps_show_how_far_the_rollout_got() {
    let mut sd = reverted();
    let after_revert: Vec<&str> = rollout(&sd, &[], true)
        .steps
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(
        after_revert, ["pending"; 4],
        "a reverted rollout has no step under way"
    );
    if let Some(status) = sd.status.as_mut() {
        status.canary_revision = Some("bbb".into());
        status.phase = Phase::Progressing;
        status.current_step_index = Some(2);
    }
    let view = rollout(&sd, &[], true);
    let states: Vec<(&str, &str)> = view
        .steps
        .iter()
        .map(|s| (s.text.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("setWeight 25", "done"),
            ("analysis pods", "done"),
            ("setWeight 50", "current"),
            ("pause until promoted", "pending"),
        ]
    );
}

#[test]
fn a_revision_let_through_without_attestation_is_never_shown_as_verified() {
    let mut sd = reverted();
    if let Some(status) = sd.status.as_mut() {
        status.attestation = Some(AttestationVerdict {
            revision: "bbb".into(),
            verified: true,
            reason: "NotRequired".into(),
            message: "the policy does not require an attestation".into(),
        });
    }
    let view = rollout(&sd, &events(), true);
    let attested = view
        .timeline
        .iter()
        .find(|e| e.source == "attestation")
        .expect("attestation");
    assert_eq!(
        (attested.title.as_str(), attested.tone),
        ("attestation of bbb not required", Tone::Info)
    );
}

#[test]
fn the_weight_curve_comes_from_the_history_once_the_events_expired() {
    let mut sd = reverted();
    let status = sd.status.as_mut().unwrap();
    let reverted_entry = status
        .history
        .iter_mut()
        .rev()
        .find(|e| e.outcome == "Reverted")
        .unwrap();
    reverted_entry.steps = vec![
        crate::api::StepMark {
            step: 0,
            weight: 25,
            at: "2026-12-02T10:00:05Z".into(),
        },
        crate::api::StepMark {
            step: 2,
            weight: 50,
            at: "2026-12-02T10:00:12Z".into(),
        },
    ];
    // No Events at all (expired): the steps still draw the curve.
    let view = rollout(&sd, &[], false);
    let curve: Vec<(String, i32)> = view
        .weights
        .iter()
        .map(|p| (p.at.clone(), p.weight))
        .collect();
    assert!(
        curve.contains(&("2026-12-02T10:00:05Z".into(), 25))
            && curve.contains(&("2026-12-02T10:00:12Z".into(), 50)),
        "{curve:?}"
    );
    assert!(
        curve.windows(2).all(|w| w[0].0 <= w[1].0),
        "in time order: {curve:?}"
    );
}
