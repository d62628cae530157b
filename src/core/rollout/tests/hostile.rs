//! Hostile input and faulty signals (issue 12): absurd thresholds, held pauses, background
//! analysis without evidence, recorded failures, oversized tokens and statuses, edited steps,
//! rollbacks around the gates, forged and lost stable revisions.

use super::*;

fn thresholds(target: f64, acceptable: f64, critical: f64) -> crate::api::Thresholds {
    crate::api::Thresholds {
        target,
        acceptable,
        critical,
    }
}

/// A canary whose pods never become Ready, over a stable v1 of 2 replicas, with the progress
/// deadline `deadline` and health gates that never judge it; returns the canary's hash.
fn never_ready_canary(deadline: &str) -> (Sim, String) {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.spec.progress_deadline = Some(deadline.into());
    sim.spec.health = Some(crate::api::HealthGates {
        startup_latency_seconds: Some(thresholds(1.0, 2.0, 1e20)),
        not_ready_pods: Some(thresholds(0.0, 10.0, 100.0)),
        ..Default::default()
    });
    let (_, new) = sim.deploy_next("app:v2");
    sim.faults.insert(new.clone(), Fault::NeverReady);
    (sim, new)
}

/// A crashing v2 canary over a stable v1 of 2 replicas, settled: reverted and rejected.
/// Returns the hashes of v1 and v2.
fn reverted_canary() -> (Sim, String, String) {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    let (old, new) = sim.deploy_next("app:v2");
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    (sim, old, new)
}

fn tick_for(sim: &mut Sim, seconds: i64) {
    for _ in 0..seconds {
        sim.tick();
    }
}

#[test]
fn an_absurd_threshold_and_a_slow_canary_never_panic_and_the_deadline_still_reverts() {
    let (mut sim, new) = never_ready_canary("20s");
    for _ in 0..40 {
        let decision = sim.tick();
        if let Some(requeue) = decision.requeue_after {
            assert!(requeue <= MAX_REQUEUE, "{requeue:?}");
        }
        if sim.status.phase == Phase::Degraded {
            break;
        }
    }
    sim.assert_reverted_because("ProgressDeadlineExceeded");
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn seconds_of_any_size_become_a_bounded_duration() {
    assert_eq!(seconds_to_duration(f64::NAN), Duration::ZERO);
    assert_eq!(seconds_to_duration(-5.0), Duration::ZERO);
    assert_eq!(seconds_to_duration(1e20), MAX_REQUEUE);
    assert_eq!(seconds_to_duration(f64::INFINITY), MAX_REQUEUE);
    assert_eq!(seconds_to_duration(1.5), Duration::from_millis(1500));
    assert_eq!(canary_replicas(i32::MAX, 100), i32::MAX);
    assert_eq!(canary_replicas(-3, 50), 0);
}

fn pause_steps(duration: &str) -> Vec<CanaryStep> {
    vec![weight(50), pause(Some(duration)), weight(100)]
}

#[test]
fn a_timed_pause_held_by_marginal_health_reverts_one_deadline_after_the_pause_ends() {
    let mut sim = established("app:v1", 2, pause_steps("30s"));
    sim.spec.progress_deadline = Some("20s".into());
    sim.spec.health = Some(crate::api::HealthGates {
        restarts: Some(thresholds(0.0, 0.5, 100.0)),
        ..Default::default()
    });
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    while sim.status.current_step_index != Some(1) {
        sim.tick();
    }
    // Marginal from the start of the pause: restarts 1 is above acceptable, below critical.
    sim.faults.insert(new.clone(), Fault::Restarted);
    tick_for(&mut sim, 45);
    assert_eq!(
        sim.status.phase,
        Phase::Paused,
        "still inside pause + deadline"
    );
    assert_eq!(sim.status.current_step_index, Some(1));
    tick_for(&mut sim, 10);
    sim.assert_reverted_because("after the pause ended");
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn an_untimed_pause_waits_for_a_person_for_as_long_as_it_takes() {
    let steps = vec![weight(50), pause(None)];
    let mut sim = established("app:v1", 2, steps);
    sim.spec.progress_deadline = Some("20s".into());
    sim.deploy("app:v2");
    tick_for(&mut sim, 120);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.status.current_step_index, Some(1));
}

fn with_background(gate: Option<AnalysisGate>) -> Sim {
    let mut sim = established("app:v1", 4, pause_steps("5s"));
    sim.spec.strategy.canary.background_analysis = Some("bg".into());
    sim.spec.progress_deadline = Some("60s".into());
    if let Some(gate) = gate {
        sim.analyses.insert("bg".into(), gate);
    }
    sim.deploy("app:v2");
    sim
}

#[test]
fn a_background_analysis_without_passing_evidence_holds_every_step_and_the_promotion() {
    for gate in [
        None,
        Some(AnalysisGate::Pending("no measurement yet".into())),
        Some(AnalysisGate::Pending("errors: provider error".into())),
        Some(AnalysisGate::Inconclusive("prometheus unreachable".into())),
    ] {
        let mut sim = with_background(gate.clone());
        for _ in 0..50 {
            let decision = sim.tick();
            assert_eq!(sim.status.current_step_index, Some(0), "{gate:?}");
            assert!(sim.status.canary_weight <= 50, "{gate:?}");
            assert!(
                decision.events.iter().all(|e| e.reason != "StepCompleted"),
                "{gate:?}"
            );
        }
        assert_eq!(sim.status.phase, Phase::Inconclusive, "{gate:?}");
        let message = sim.status.message.clone().unwrap_or_default();
        assert!(message.contains("background analysis bg"), "{message}");
        // The progress deadline bounds the wait: no promotion, a revert.
        tick_for(&mut sim, 15);
        assert_eq!(sim.status.phase, Phase::Degraded, "{gate:?}");
        assert_ne!(sim.status.stable_revision, Some(sim.revision().hash));
    }
}

#[test]
fn a_background_analysis_with_passing_evidence_lets_the_rollout_go_on() {
    let mut sim = with_background(Some(AnalysisGate::Pending("no measurement yet".into())));
    tick_for(&mut sim, 5);
    assert_eq!(sim.status.current_step_index, Some(0));
    sim.analyses.insert("bg".into(), AnalysisGate::Running);
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_secs(6))
        .unwrap();
    sim.settle(40);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
}

#[test]
fn a_background_analysis_that_loses_its_evidence_mid_rollout_holds_the_promotion() {
    let mut sim = with_background(Some(AnalysisGate::Running));
    while sim.status.current_step_index != Some(2) {
        sim.tick();
        sim.now = sim
            .now
            .checked_add(jiff::SignedDuration::from_secs(2))
            .unwrap();
    }
    sim.analyses.insert(
        "bg".into(),
        AnalysisGate::Pending("errors: provider error".into()),
    );
    tick_for(&mut sim, 30);
    assert_ne!(sim.status.phase, Phase::Healthy);
    assert_ne!(sim.status.stable_revision, Some(sim.revision().hash));
    // A person may take responsibility: promote-full goes past it, and is recorded.
    sim.requests.promote_full = Some("t1".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "PromoteFullRequested")
    );
}

#[test]
fn a_failure_the_controller_recorded_stays_until_it_clears_it() {
    let mut sim = established("app:v1", 2, steps_weights(&[100]));
    crate::core::failure::record_failure(
        &mut sim.status,
        crate::core::failure::FailureKind::ApiError,
        "create ReplicaSet web-x: refused",
        Some(1),
        sim.now,
    );
    let decision = sim.decide();
    let stalled = condition(&decision.status, "Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ReconcileFailed")
    );
    assert_eq!(
        decision.status, sim.status,
        "nothing new to write while it fails"
    );
    let mut cleared = decision.status.clone();
    assert!(crate::core::failure::clear_failure(&mut cleared, sim.now));
    sim.status = cleared;
    let decision = sim.decide();
    assert_eq!(condition(&decision.status, "Stalled").status, "False");
}

#[test]
fn an_oversized_request_token_is_remembered_by_digest_and_acted_on_once() {
    let steps = vec![weight(50), pause(None), pause(None)];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    while sim.status.current_step_index != Some(1) {
        sim.tick();
    }
    sim.requests.promote = Some("x".repeat(200_000));
    tick_for(&mut sim, 10);
    assert_eq!(
        sim.status.current_step_index,
        Some(2),
        "promoted past one pause only"
    );
    let kept = sim.status.handled_requests.get("promote").unwrap();
    assert!(kept.starts_with("sha256:") && kept.len() < 80, "{kept}");
}

#[test]
fn every_decision_fits_the_status_budget() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.status.rejected_revisions = (0..50_000).map(|n| format!("r{n}")).collect();
    sim.status.message = Some("m".repeat(1 << 20));
    let decision = sim.decide();
    let size = crate::core::status_budget::size_of(&decision.status);
    assert!(size <= crate::core::status_budget::STATUS_BUDGET, "{size}");
}

#[test]
fn steps_edited_mid_rollout_restart_the_canary_instead_of_skipping_gates() {
    let steps = vec![weight(25), pause(None), analysis("errors"), weight(100)];
    let mut sim = established("app:v1", 4, steps);
    sim.deploy("app:v2");
    while sim.status.current_step_index != Some(1) {
        sim.tick();
    }
    tick_for(&mut sim, 3);
    assert_eq!(sim.status.current_step_index, Some(1));
    // Shortened to two steps: index 1 would now be past the end, a promotion past every gate.
    sim.spec.strategy.canary.steps = vec![weight(25), pause(None)];
    let decision = sim.tick();
    assert!(decision.events.iter().any(|e| e.reason == "StepsChanged"));
    assert_eq!(sim.status.current_step_index, Some(0));
    assert_ne!(sim.status.stable_revision, Some(sim.revision().hash));
    tick_for(&mut sim, 20);
    assert_eq!(
        sim.status.current_step_index,
        Some(1),
        "waits at the new pause"
    );
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.events_with("StepsChanged"), 1, "restarted once");
}

#[test]
fn a_rollback_never_goes_around_the_gates() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.deploy("app:v2");
    sim.reject_attestation(RejectReason::Missing, "no attestation");
    tick_for(&mut sim, 3);
    assert_eq!(sim.status.phase, Phase::Blocked);
    let desired = sim.revision().hash;
    let number = sim
        .status
        .revisions
        .iter()
        .find(|r| r.hash == desired)
        .unwrap()
        .number;
    // "Roll back" to the blocked revision itself: refused, nothing of it runs.
    sim.requests.rollback = Some(("t1".into(), number));
    tick_for(&mut sim, 3);
    assert_ne!(sim.status.stable_revision, Some(desired.clone()));
    assert_eq!(sim.replicas_of(&desired), 0);
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == "RollbackFailed" && e.note.contains("refused"))
    );
}

#[test]
fn a_forged_stable_revision_that_never_ran_must_pass_the_gates() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.deploy("app:v2");
    sim.reject_attestation(RejectReason::Missing, "no attestation");
    tick_for(&mut sim, 2);
    assert_eq!(sim.status.phase, Phase::Blocked);
    // Someone with status write access names the unattested revision stable.
    let forged = sim.revision().hash;
    sim.status.stable_revision = Some(forged.clone());
    tick_for(&mut sim, 5);
    assert_eq!(
        sim.replicas_of(&forged),
        0,
        "never scaled on the word of status"
    );
    assert_eq!(sim.status.phase, Phase::Blocked);
    // With a valid attestation it is created (a stable whose ReplicaSets were deleted).
    sim.attestation = AttestationGate::Verified("signed".into());
    sim.settle(10);
    assert_eq!(sim.replicas_of(&forged), 2);
}

#[test]
fn a_canary_stopped_by_its_gates_leaves_no_rollout_in_progress_in_the_history() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.spec.strategy.canary.steps = vec![weight(50), pause(None)];
    sim.deploy("app:v2");
    tick_for(&mut sim, 3);
    let desired = sim.revision().hash;
    assert_eq!(sim.status.canary_revision, Some(desired.clone()));
    sim.reject_attestation(RejectReason::Expired, "older than maxAge");
    tick_for(&mut sim, 3);
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(
        !sim.status
            .history
            .iter()
            .any(|e| e.hash == desired && e.outcome == "InProgress"),
        "{:?}",
        sim.status.history
    );
    assert!(sim.status.history.iter().any(|e| e.outcome == "Abandoned"));
    assert_eq!(sim.replicas_of(&desired), 0);
}

#[test]
fn a_deleted_stable_replica_set_is_reported_not_papered_over() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    let stable = sim.revision().hash;
    sim.deploy("app:v2");
    sim.reject_attestation(RejectReason::Missing, "no attestation");
    tick_for(&mut sim, 2);
    assert_eq!(sim.status.phase, Phase::Blocked);
    // Someone deletes the stable ReplicaSet: 0 pods, and nothing can recreate its template.
    sim.replica_sets.retain(|rs| rs.revision != stable);
    tick_for(&mut sim, 3);
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(message.contains("cannot be recreated"), "{message}");
    let stalled = condition(&sim.status, "Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "StableReplicaSetLost")
    );
    assert_eq!(sim.events_with("StableReplicaSetLost"), 1, "announced once");
}

#[test]
fn a_recorded_failure_stays_over_a_stalled_of_the_decision_so_status_does_not_flap() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new, Fault::Crash);
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Degraded);
    crate::core::failure::record_failure(
        &mut sim.status,
        crate::core::failure::FailureKind::ApiError,
        "scale ReplicaSet web-x to 2: frozen",
        Some(1),
        sim.now,
    );
    let decision = sim.decide();
    assert_eq!(
        condition(&decision.status, "Stalled").reason,
        "ReconcileFailed"
    );
    assert_eq!(
        decision.status, sim.status,
        "nothing new to write while it fails"
    );
}

/// Audit finding 17: a status lost after a revert (restored without status, overwritten by
/// hand) must not roll the rejected revision out again as a fresh "initial" one at 100%.
#[test]
fn a_lost_status_never_rolls_a_rejected_revision_out_again() {
    let (mut sim, old, new) = reverted_canary();
    assert!(sim.status.rejected_revisions.contains(&new));
    let marked: Vec<bool> = sim
        .replica_sets
        .iter()
        .map(|rs| rs.rejected == (rs.revision == new))
        .collect();
    assert!(marked.iter().all(|ok| *ok), "{:?}", sim.replica_sets);

    // The status is gone; the crash is gone too, so only the record can keep it out.
    sim.faults.remove(&new);
    sim.status = SafeDeploymentStatus::default();
    sim.settle(20);
    assert_eq!(sim.replicas_of(&new), 0, "{:?}", sim.replica_sets);
    assert_eq!(sim.status.stable_revision, Some(old.clone()));
    assert_eq!(sim.ready_of(&old), 2);
    assert!(sim.status.rejected_revisions.contains(&new));
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == EventReason::StatusRecovered),
        "the recovery is recorded"
    );

    // A retry is still the way back, and it clears the mark with the list entry.
    sim.requests.retry = Some("after-the-loss".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(new.clone()));
    assert!(sim.replica_sets.iter().all(|rs| !rs.rejected));
}

/// With no stable revision in status but an old revision serving, the desired revision goes
/// through the canary steps from that revision instead of replacing it at once.
#[test]
fn a_lost_status_mid_canary_recovers_the_stable_and_the_canary_starts_over() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 100]));
    let (old, new) = sim.deploy_next("app:v2");
    sim.tick();
    sim.tick();
    assert_eq!(sim.status.canary_revision, Some(new.clone()));
    sim.status = SafeDeploymentStatus::default();
    let decision = sim.tick();
    assert_eq!(sim.status.stable_revision, Some(old.clone()));
    assert!(
        decision
            .scale
            .iter()
            .all(|a| a.revision != old || a.replicas > 0),
        "the recovered stable is never scaled to zero at once: {:?}",
        decision.scale
    );
    assert!(sim.ready_of(&old) >= 3, "{:?}", sim.replica_sets);
    sim.settle(30);
    assert_eq!(sim.status.stable_revision, Some(new));
    assert_eq!(sim.status.phase, Phase::Healthy);
}

/// No serving revision and the desired one rejected: nothing starts, and status says why.
#[test]
fn a_rejected_revision_with_nothing_else_serving_stays_down_and_says_so() {
    let (mut sim, _, new) = reverted_canary();
    sim.faults.remove(&new);
    // The status and the stable revision's ReplicaSet are both gone.
    sim.replica_sets.retain(|rs| rs.revision == new);
    sim.status = SafeDeploymentStatus::default();
    sim.settle(10);
    assert_eq!(sim.replicas_of(&new), 0);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(
        sim.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("was rejected")),
        "{:?}",
        sim.status.message
    );
}

#[test]
fn durations_stored_before_the_schema_bound_them_still_read_and_fall_back_as_before() {
    // An object written before the schema bounded its durations reads (the text is kept, one
    // bad object never stops a list); an unparsable pause then waits for a person, an
    // unparsable progress deadline is the default 10m.
    let mut sim = established("app:v1", 2, vec![weight(50), pause(Some("20s"))]);
    let mut spec = serde_json::to_value(&sim.spec).unwrap();
    spec["progressDeadline"] = "ten minutes".into();
    spec["strategy"]["canary"]["steps"][1]["pause"]["duration"] = "1d".into();
    sim.spec = serde_json::from_value(spec).unwrap();
    assert_eq!(
        sim.spec.progress_deadline.as_ref().map(|d| d.as_str()),
        Some("ten minutes")
    );
    sim.deploy("app:v2");
    tick_for(&mut sim, 120);
    assert_eq!(sim.status.phase, Phase::Paused, "{:?}", sim.status.message);
    assert_eq!(sim.status.current_step_index, Some(1));

    // Gates that never judge the canary, so only the deadline can revert it.
    let (mut sim, _) = never_ready_canary("ten minutes");
    tick_for(&mut sim, 120);
    assert_ne!(sim.status.phase, Phase::Degraded, "not a 0s deadline");
    tick_for(&mut sim, 600);
    sim.assert_reverted_because("ProgressDeadlineExceeded");
}

/// A SafeDeployment created with `replicas: 0` (scaled down before its first pod): its revision
/// is stable at once, with a ReplicaSet at zero, instead of "starting" for ever.
#[test]
fn a_first_revision_at_zero_replicas_is_stable_at_once() {
    let mut sim = Sim::new(spec("app:v1", 0, steps_weights(&[50])));
    sim.settle(5);
    assert_eq!(sim.status.phase, Phase::Healthy, "{:?}", sim.status.message);
    let hash = sim.revision().hash;
    assert_eq!(sim.status.stable_revision, Some(hash.clone()));
    assert_eq!(sim.replicas_of(&hash), 0);
    assert!(sim.replica_sets.iter().any(|rs| rs.revision == hash));
}

/// A verdict kept at rest is read back as the gate that wrote it, for every gate.
#[test]
fn every_gate_survives_its_recorded_verdict() {
    let mut gates = vec![
        AttestationGate::Verified("signed by ci".into()),
        AttestationGate::NotRequired("no policy".into()),
    ];
    gates.extend(
        RejectReason::ALL
            .iter()
            .map(|reason| AttestationGate::Rejected {
                reason: *reason,
                message: format!("because {reason}"),
            }),
    );
    for gate in gates {
        let verdict = gate.verdict("abc");
        assert_eq!(AttestationGate::from_verdict(&verdict), Some(gate));
    }
}

/// A status someone else wrote (an unknown reason, or `verified` with a rejection's reason) is
/// not read back as any gate: the controller verifies the attestation again instead.
#[test]
fn a_verdict_this_operator_never_writes_is_not_trusted() {
    let forged = |verified: bool, reason: &str| AttestationVerdict {
        revision: "abc".into(),
        verified,
        reason: reason.into(),
        message: String::new(),
    };
    for (verified, reason) in [
        (true, "Missing"),
        (true, "LooksFine"),
        (true, ""),
        (false, "Verified"),
        (false, "NotRequired"),
        (false, "missing"),
        (false, ""),
    ] {
        assert_eq!(
            AttestationGate::from_verdict(&forged(verified, reason)),
            None,
            "{verified} {reason}"
        );
    }
}
