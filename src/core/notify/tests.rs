//! What gets announced, with which keys, in which payloads.

use serde_json::json;

use super::payload::{body, cloud_event, signature, slack, verify, webhook};
use super::*;
use crate::api::analysis::{AnalysisPhase, AnalysisRunStatus, Measurement};
use crate::api::freeze::FreezeStatus;
use crate::api::notifications::SinkKind;
use crate::api::{CanaryStep, PauseStep};

const NOW: &str = "2026-12-02T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn subject() -> Subject {
    Subject {
        namespace: "shop".into(),
        name: "web".into(),
        uid: "0b5e-uid".into(),
    }
}

fn entry(revision: i64, outcome: &str, started: &str, finished: Option<&str>, reason: &str) -> HistoryEntry {
    HistoryEntry {
        revision,
        hash: format!("hash{revision}"),
        outcome: outcome.into(),
        reason: reason.into(),
        started_at: started.into(),
        finished_at: finished.map(str::to_string),
        ..HistoryEntry::default()
    }
}

fn reverted_status() -> SafeDeploymentStatus {
    SafeDeploymentStatus {
        history: vec![
            entry(1, "Promoted", "2026-12-02T11:50:00Z", Some("2026-12-02T11:50:05Z"), "initial"),
            entry(
                2,
                "Reverted",
                "2026-12-02T11:55:00Z",
                Some("2026-12-02T11:58:00Z"),
                "AnalysisFailed: analysis errors failed",
            ),
        ],
        analysis_runs: vec![AnalysisRunStatus {
            template: "errors".into(),
            phase: AnalysisPhase::Failed,
            canary_revision: Some("hash2".into()),
            measurements: vec![
                Measurement {
                    metric: "error-rate".into(),
                    value: Some(0.01),
                    threshold: "<= 0.05".into(),
                    verdict: MetricVerdict::Pass,
                    at: "2026-12-02T11:56:00Z".into(),
                    ..Measurement::default()
                },
                Measurement {
                    metric: "error-rate".into(),
                    value: Some(0.31),
                    baseline: Some(0.002),
                    threshold: "<= 0.05 (critical 0.2)".into(),
                    verdict: MetricVerdict::Critical,
                    at: "2026-12-02T11:57:59Z".into(),
                    ..Measurement::default()
                },
            ],
            ..AnalysisRunStatus::default()
        }],
        ..SafeDeploymentStatus::default()
    }
}

fn events(notes: &[Notification]) -> Vec<NotificationEvent> {
    notes.iter().map(|n| n.event).collect()
}

#[test]
fn a_revert_names_the_metric_its_value_thresholds_and_links_to_the_dashboard() {
    let notes = derive(
        &subject(),
        &SafeDeploymentSpec::default(),
        &reverted_status(),
        Some("https://deploy.example.com/ui/"),
        now(),
    );
    let revert = notes
        .iter()
        .find(|n| n.event == NotificationEvent::Reverted)
        .expect("a revert notification");
    assert_eq!(revert.key, "0b5e-uid/2/2026-12-02T11:55:00Z/Reverted");
    assert_eq!(revert.evidence.len(), 1, "only the failing measurement");
    let evidence = &revert.evidence[0];
    assert_eq!(evidence.name, "errors/error-rate");
    assert_eq!(evidence.value, Some(0.31));
    assert_eq!(evidence.baseline, Some(0.002));
    assert!(revert.summary.contains("0.31"), "{}", revert.summary);
    assert!(revert.summary.contains("<= 0.05 (critical 0.2)"), "{}", revert.summary);
    assert_eq!(
        revert.dashboard.as_deref(),
        Some("https://deploy.example.com/ui/shop/web")
    );
    for kind in [SinkKind::Webhook, SinkKind::Slack, SinkKind::CloudEvents] {
        let text = String::from_utf8(body(kind, revert).bytes).unwrap();
        assert!(text.contains("0.31"), "{kind:?}: {text}");
        assert!(text.contains("https://deploy.example.com/ui/shop/web"), "{kind:?}: {text}");
    }
}

#[test]
fn the_same_occurrence_keeps_its_key_as_the_status_moves_on() {
    let before = derive(&subject(), &SafeDeploymentSpec::default(), &reverted_status(), None, now());
    let mut later = reverted_status();
    later.history.push(entry(3, "InProgress", "2026-12-02T11:59:00Z", None, "template changed"));
    later.analysis_runs.clear();
    let after = derive(&subject(), &SafeDeploymentSpec::default(), &later, None, now());
    for note in &before {
        assert!(
            after.iter().any(|n| n.key == note.key),
            "{} lost its key",
            note.key
        );
    }
    // Every key is unique.
    let mut keys: Vec<&str> = after.iter().map(|n| n.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), after.len());
    // Another object of the same name is another subject.
    let other = Subject { uid: "other-uid".into(), ..subject() };
    let again = derive(&other, &SafeDeploymentSpec::default(), &later, None, now());
    assert!(again.iter().all(|n| !after.iter().any(|m| m.key == n.key)));
}

#[test]
fn history_older_than_the_horizon_is_not_announced() {
    let status = SafeDeploymentStatus {
        history: vec![entry(1, "Reverted", "2026-11-01T00:00:00Z", Some("2026-11-01T00:10:00Z"), "x")],
        ..SafeDeploymentStatus::default()
    };
    assert!(derive(&subject(), &SafeDeploymentSpec::default(), &status, None, now()).is_empty());
    // A garbage timestamp announces nothing rather than everything.
    let status = SafeDeploymentStatus {
        history: vec![entry(1, "Promoted", "yesterday", Some("today"), "x")],
        ..SafeDeploymentStatus::default()
    };
    assert!(derive(&subject(), &SafeDeploymentSpec::default(), &status, None, now()).is_empty());
}

fn canary_spec(untimed_pause_at: usize) -> SafeDeploymentSpec {
    let mut spec = SafeDeploymentSpec::default();
    spec.strategy.canary.steps = (0..4)
        .map(|i| CanaryStep {
            pause: Some(PauseStep {
                duration: (i != untimed_pause_at).then(|| "1s".into()),
            }),
            ..CanaryStep::default()
        })
        .collect();
    spec
}

fn in_progress(step: i32, phase: Phase) -> SafeDeploymentStatus {
    SafeDeploymentStatus {
        phase,
        canary_revision: Some("hash2".into()),
        current_step_index: Some(step),
        step_started_at: Some("2026-12-02T11:59:00Z".into()),
        history: vec![entry(2, "InProgress", "2026-12-02T11:55:00Z", None, "template changed")],
        ..SafeDeploymentStatus::default()
    }
}

#[test]
fn completed_steps_and_a_wait_for_a_person_are_announced_once_each() {
    let notes = derive(&subject(), &canary_spec(2), &in_progress(2, Phase::Paused), None, now());
    assert_eq!(
        events(&notes),
        vec![
            NotificationEvent::RolloutStarted,
            NotificationEvent::StepCompleted,
            NotificationEvent::StepCompleted,
            NotificationEvent::Paused
        ]
    );
    assert_eq!(notes[1].key, "0b5e-uid/2/2026-12-02T11:55:00Z/StepCompleted/1");
    assert_eq!(notes[3].step, Some(3));
    // A timed pause waits for no one.
    let notes = derive(&subject(), &canary_spec(3), &in_progress(2, Phase::Paused), None, now());
    assert!(!events(&notes).contains(&NotificationEvent::Paused));
}

#[test]
fn a_freeze_is_announced_with_its_window_and_not_as_a_pause() {
    let mut status = in_progress(2, Phase::Paused);
    status.freeze = Some(FreezeStatus {
        active: true,
        window: "black-friday".into(),
        reason: Some("peak traffic".into()),
        start: Some("2026-12-02T11:00:00Z".into()),
        end: Some("2026-12-03T00:00:00Z".into()),
        ..FreezeStatus::default()
    });
    let notes = derive(&subject(), &canary_spec(2), &status, None, now());
    let frozen: Vec<_> = notes.iter().filter(|n| n.event == NotificationEvent::Frozen).collect();
    assert_eq!(frozen.len(), 1);
    assert_eq!(frozen[0].key, "0b5e-uid/frozen/black-friday/2026-12-02T11:00:00Z");
    assert_eq!(frozen[0].reason.as_deref(), Some("peak traffic"));
    assert!(!events(&notes).contains(&NotificationEvent::Paused));
}

#[test]
fn a_blocked_revision_says_why() {
    let status = SafeDeploymentStatus {
        history: vec![entry(2, "Blocked", "2026-12-02T11:59:00Z", None, "attestation: BadSignature")],
        ..SafeDeploymentStatus::default()
    };
    let notes = derive(&subject(), &SafeDeploymentSpec::default(), &status, None, now());
    assert_eq!(events(&notes), vec![NotificationEvent::Blocked]);
    assert!(notes[0].summary.contains("BadSignature"));
}

#[test]
fn the_signature_verifies_and_any_change_breaks_it() {
    let body = br#"{"id":"k"}"#;
    let header = signature(b"s3cret", 1_764_676_800, body);
    assert!(header.starts_with("t=1764676800,v1="));
    assert_eq!(verify(b"s3cret", &header, body), Some(1_764_676_800));
    assert_eq!(verify(b"other", &header, body), None, "another key");
    assert_eq!(verify(b"s3cret", &header, br#"{"id":"K"}"#), None, "another body");
    let replayed = header.replace("t=1764676800", "t=1764676801");
    assert_eq!(verify(b"s3cret", &replayed, body), None, "another timestamp");
    assert_eq!(verify(b"s3cret", "v1=zz", body), None);
}

#[test]
fn a_hostile_reason_cannot_ping_a_slack_channel_or_break_the_json() {
    let mut status = reverted_status();
    status.history[1].reason = "<!channel> \"}]} & <https://evil|click>".into();
    let notes = derive(&subject(), &SafeDeploymentSpec::default(), &status, None, now());
    let revert = notes.iter().find(|n| n.event == NotificationEvent::Reverted).unwrap();
    let message = slack(revert);
    let text = message["text"].as_str().unwrap();
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    let parsed: serde_json::Value =
        serde_json::from_slice(&body(SinkKind::Webhook, revert).bytes).unwrap();
    assert_eq!(parsed["reason"], json!(status.history[1].reason));
}

#[test]
fn the_cloud_event_is_cloudevents_1_0_structured() {
    let notes = derive(&subject(), &SafeDeploymentSpec::default(), &reverted_status(), None, now());
    let revert = notes.iter().find(|n| n.event == NotificationEvent::Reverted).unwrap();
    let event = cloud_event(revert);
    for attribute in ["specversion", "id", "source", "type"] {
        assert!(event[attribute].is_string(), "required attribute {attribute}");
    }
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.safedeploy.rollout.reverted");
    assert_eq!(event["id"], json!(revert.key));
    assert_eq!(event["data"], webhook(revert));
    assert_eq!(body(SinkKind::CloudEvents, revert).content_type, "application/cloudevents+json");
}
