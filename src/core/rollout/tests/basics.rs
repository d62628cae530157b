//! The rollout's basic paths: steps, pauses, reverts, attestation and analysis gates, history.

use super::*;

#[test]
fn the_first_revision_scales_straight_to_full_and_becomes_stable() {
    let sim = established("app:v1", 4, steps_weights(&[25, 50]));
    assert_eq!(sim.ready_of(&sim.revision().hash), 4);
    assert_eq!(condition(&sim.status, "Ready").status, "True");
    assert_eq!(sim.status.history.last().unwrap().outcome, "Promoted");
}

#[test]
fn a_good_revision_passes_every_step_and_becomes_stable() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    let (old, new) = sim.deploy_next("app:v2");
    let mut weights_seen = Vec::new();
    for _ in 0..30 {
        sim.tick();
        sim.check_invariants();
        weights_seen.push(sim.status.canary_weight);
        if sim.status.phase == Phase::Healthy {
            break;
        }
    }
    assert_eq!(sim.status.stable_revision, Some(new.clone()));
    assert_eq!(sim.replicas_of(&new), 4);
    assert_eq!(sim.replicas_of(&old), 0);
    for weight in [25, 50, 75] {
        assert!(
            weights_seen.contains(&weight),
            "weight {weight} never reached: {weights_seen:?}"
        );
    }
    let reasons: Vec<&str> = sim.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "StepCompleted").count(), 3);
    assert!(reasons.contains(&"RolloutCompleted"));
    assert_eq!(sim.status.history.last().unwrap().outcome, "Promoted");
    assert_eq!(sim.status.revisions.len(), 2);
    // The history keeps each completed step with its weight, in order, in time (the durable
    // weight curve; the Events expire).
    let entry = sim.status.history.last().unwrap();
    let marks: Vec<(i32, i32)> = entry.steps.iter().map(|m| (m.step, m.weight)).collect();
    assert_eq!(marks, [(0, 25), (1, 50), (2, 75)]);
    assert!(
        entry
            .steps
            .windows(2)
            .all(|w| w[0].at <= w[1].at && w[0].at >= entry.started_at)
    );
}

#[test]
fn a_crashing_canary_is_reverted_and_not_retried() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    let (old, bad) = sim.deploy_next("app:v2-bad");
    sim.faults.insert(bad.clone(), Fault::Crash);
    sim.settle(10);
    // The reason names the value and the threshold.
    sim.assert_reverted_because("restarts = 1");
    sim.assert_reverted_because("critical 1");
    assert_eq!(sim.status.stable_revision, Some(old.clone()));
    assert_eq!(sim.replicas_of(&old), 4);
    assert_eq!(sim.replicas_of(&bad), 0);
    assert!(sim.status.rejected_revisions.contains(&bad));
    assert_eq!(condition(&sim.status, "Degraded").status, "True");
    assert_eq!(condition(&sim.status, "Ready").status, "False");
    // Nothing more happens while the spec still holds the rejected template.
    let again = sim.tick();
    assert!(again.scale.is_empty());
    assert!(again.events.is_empty());
    assert_eq!(sim.replicas_of(&bad), 0);
}

#[test]
fn an_unattested_revision_creates_no_pod() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let (old, new) = sim.deploy_next("app:v2");
    sim.reject_attestation(RejectReason::Missing, "no attestation found");
    let decision = sim.tick();
    decision.assert_leaves_alone(&new);
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert_eq!(sim.replicas_of(&old), 3);
    let attested = condition(&sim.status, "Attested");
    assert_eq!(
        (attested.status.as_str(), attested.reason.as_str()),
        ("False", "Missing")
    );
    assert_eq!(condition(&sim.status, "Stalled").status, "True");
    assert_eq!(decision.events.len(), 1);
    // Writing the same verdict again records nothing new.
    assert!(sim.tick().events.is_empty());
    // Once attested, the canary starts.
    sim.attestation = AttestationGate::Verified("signed by ci".into());
    let decision = sim.tick();
    assert!(decision.scales(&new, 2));
}

#[test]
fn a_first_revision_without_attestation_never_starts() {
    let mut sim = Sim::new(spec("app:v1", 3, steps_weights(&[50])));
    sim.reject_attestation(RejectReason::BadSignature, "signature does not verify");
    let decision = sim.tick();
    assert!(decision.scale.is_empty());
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(sim.status.stable_revision.is_none());
}

#[test]
fn a_timed_pause_requeues_for_the_remaining_time() {
    let steps = vec![weight(50), pause(Some("30s"))];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    while sim.status.current_step_index != Some(1) {
        sim.tick();
    }
    let decision = sim.decide();
    let requeue = decision.requeue_after.unwrap();
    assert!(
        requeue <= Duration::from_secs(30) && requeue >= Duration::from_secs(28),
        "{requeue:?}"
    );
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_secs(30))
        .unwrap();
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn a_canary_that_never_gets_ready_fails_at_the_progress_deadline() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    sim.spec.progress_deadline = Some("20s".into());
    // Lenient start-up gates, so only the deadline can end it.
    sim.spec.health = Some(crate::api::HealthGates {
        startup_latency_seconds: Some(crate::api::Thresholds {
            target: 100.0,
            acceptable: 200.0,
            critical: 300.0,
        }),
        ..Default::default()
    });
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::NeverReady);
    for _ in 0..30 {
        sim.tick();
    }
    sim.assert_reverted_because("ProgressDeadlineExceeded");
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn failed_analysis_reverts_and_inconclusive_never_promotes() {
    let steps = vec![weight(50), analysis("errors")];
    let mut sim = established("app:v1", 2, steps.clone());
    sim.deploy("app:v2");
    sim.analyses.insert(
        "errors".into(),
        AnalysisGate::Inconclusive("prometheus unreachable".into()),
    );
    for _ in 0..10 {
        let before = sim.status.current_step_index;
        sim.tick();
        assert_ne!(
            sim.status.phase,
            Phase::Healthy,
            "never promoted while inconclusive"
        );
        if before == Some(1) {
            // The analysis step stays current, so its analysis stays the active one
            // (`analysis::plan::active`).
            assert_eq!(sim.status.current_step_index, Some(1));
        }
    }
    assert_eq!(sim.status.phase, Phase::Inconclusive);
    sim.analyses.insert(
        "errors".into(),
        AnalysisGate::Failed("error ratio 0.05 >= critical 0.01".into()),
    );
    // The run's measurements (recorded by the controller) explain the revert afterwards.
    let run = crate::api::analysis::AnalysisRunStatus {
        template: "errors".into(),
        phase: crate::api::analysis::AnalysisPhase::Failed,
        canary_revision: sim.status.canary_revision.clone(),
        step_index: Some(1),
        ..Default::default()
    };
    sim.status.analysis_runs = vec![run.clone()];
    sim.tick();
    sim.assert_reverted_because("error ratio");
    assert_eq!(sim.status.canary_revision, None);
    assert_eq!(sim.status.analysis_runs, vec![run], "kept after the revert");
    // The next canary starts with no runs of the reverted one.
    sim.analyses.clear();
    sim.deploy("app:v3");
    sim.tick();
    assert!(sim.status.canary_revision.is_some());
    assert!(sim.status.analysis_runs.is_empty());
}

#[test]
fn passed_analysis_lets_the_rollout_go_on() {
    let steps = vec![weight(50), analysis("errors")];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    sim.analyses.insert("errors".into(), AnalysisGate::Passed);
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
}

#[test]
fn reconcile_is_idempotent_at_rest() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let first = sim.decide();
    assert!(first.scale.is_empty() && first.events.is_empty() && first.delete.is_empty());
    assert_eq!(first.status, sim.status);
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_mins(5))
        .unwrap();
    assert_eq!(
        sim.decide().status,
        sim.status,
        "time alone changes nothing at rest"
    );
}
