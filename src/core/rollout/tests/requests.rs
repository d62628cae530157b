//! Manual requests: promote, abort, pause, retry and rollback.

use super::*;

#[test]
fn retry_lets_a_rejected_revision_roll_out_again() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    assert!(sim.status.rejected_revisions.contains(&new));
    sim.faults.remove(&new);
    sim.requests.retry = Some("t1".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(new));
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "RetryRequested")
    );
}

#[test]
fn a_pause_without_duration_waits_for_promote_once_per_token() {
    let steps = vec![weight(50), pause(None), pause(None)];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.status.current_step_index, Some(1));
    // An hour later it still waits: a manual pause does not count against the deadline.
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    sim.tick();
    assert_eq!(sim.status.current_step_index, Some(1));
    sim.requests.promote = Some("p1".into());
    sim.tick();
    assert_eq!(sim.status.current_step_index, Some(2));
    // The same token does not promote twice.
    sim.settle(5);
    assert_eq!(sim.status.current_step_index, Some(2));
    sim.requests.promote = Some("p2".into());
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn abort_reverts_and_a_user_pause_holds_the_step() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    sim.deploy("app:v2");
    sim.requests.paused = true;
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.status.current_step_index, Some(0));
    sim.requests.abort = Some("a1".into());
    sim.tick();
    sim.assert_reverted_because("Aborted");
    assert!(sim.last_history_reason().starts_with("Aborted"));
}

#[test]
fn rollback_scales_a_recorded_revision_back_up() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    let first = sim.revision().hash;
    sim.deploy("app:v2");
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    let second = sim.revision().hash;
    sim.requests.rollback = Some(("r1".into(), 1));
    sim.settle(10);
    assert_eq!(sim.status.stable_revision, Some(first.clone()));
    assert_eq!(sim.replicas_of(&first), 2);
    assert_eq!(sim.replicas_of(&second), 0);
    assert!(sim.status.rejected_revisions.contains(&second));
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "RolledBack" && e.revision == 1)
    );
}

/// The history entries with an actor, as `(outcome, actor)`.
fn actions(sim: &Sim) -> Vec<(String, String)> {
    sim.status
        .history
        .iter()
        .filter_map(|e| Some((e.outcome.clone(), e.actor.clone()?)))
        .collect()
}

#[test]
fn every_manual_action_records_its_requester_and_nothing_else_does() {
    let steps = vec![weight(25), pause(None), weight(50), pause(None)];
    let mut sim = established("app:v1", 4, steps);
    sim.deploy("app:v2");
    sim.requests.paused = true;
    sim.requests.pause_requester = Some("bob".into());
    sim.settle(5);
    sim.requests.paused = false;
    sim.requests.pause_requester = Some("carol@example.com".into());
    sim.settle(5);
    sim.requests.promote = Some("p1@dave".into());
    sim.settle(5);
    sim.requests.abort = Some("a1@erin".into());
    sim.settle(5);
    assert_eq!(sim.status.phase, Phase::Degraded);
    let expected = [
        ("Paused", "bob"),
        ("Resumed", "carol@example.com"),
        ("PromoteRequested", "dave"),
        ("Reverted", "erin"),
    ]
    .map(|(o, a)| (o.to_string(), a.to_string()));
    // The revert closes the canary's entry, which opened before the other actions.
    let mut recorded = actions(&sim);
    recorded.sort_unstable_by_key(|(outcome, _)| expected.iter().position(|(o, _)| o == outcome));
    assert_eq!(recorded, expected);
    // The revert of an abort names the requester in its reason and its Event.
    let reverted = sim
        .status
        .history
        .iter()
        .find(|e| e.outcome == "Reverted")
        .unwrap();
    assert!(
        reverted.reason.contains("aborted by erin"),
        "{}",
        reverted.reason
    );
    let notes: Vec<&str> = sim.events.iter().map(|e| e.note.as_str()).collect();
    for needle in [
        "rollout paused by bob",
        "rollout resumed by carol@example.com",
        "aborted by erin",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(needle)),
            "{needle}: {notes:?}"
        );
    }
    // What the operator decided by itself (the first rollout's promotion) names no one.
    assert!(
        sim.status
            .history
            .iter()
            .filter(|e| e.outcome == "Promoted")
            .all(|e| e.actor.is_none())
    );
}

#[test]
fn retry_and_rollback_record_their_requester_and_an_unnamed_request_records_none() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    sim.faults.remove(&new);
    sim.requests.retry = Some("t1@frank".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(new));
    sim.requests.rollback = Some(("1/r1@grace".into(), 1));
    sim.settle(10);
    let recorded = actions(&sim);
    assert!(
        recorded.contains(&("RetryRequested".into(), "frank".into())),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&("RolledBack".into(), "grace".into())),
        "{recorded:?}"
    );
    // A token without a requester (written before governance, or by hand) is still carried out,
    // and names no one.
    sim.requests.retry = Some("t2".into());
    sim.settle(1);
    let last = sim
        .status
        .history
        .iter()
        .rev()
        .find(|e| e.outcome == "RetryRequested")
        .unwrap();
    assert_eq!(last.actor, None);
    assert!(
        last.reason.contains("requested by a user"),
        "{}",
        last.reason
    );
}

/// The `(outcome, actor)` of the history's pause and resume entries, oldest first.
fn pause_entries(sim: &Sim) -> Vec<(String, Option<String>)> {
    sim.status
        .history
        .iter()
        .filter(|e| e.outcome == "Paused" || e.outcome == "Resumed")
        .map(|e| (e.outcome.clone(), e.actor.clone()))
        .collect()
}

#[test]
fn an_edit_of_spec_paused_is_not_credited_to_an_old_pause_annotation() {
    let steps = vec![weight(25), pause(None), weight(50), pause(None)];
    let mut sim = established("app:v1", 4, steps);
    sim.deploy("app:v2");
    // Bob pauses and resumes with the annotation; `false@bob` stays on the object.
    sim.requests.paused = true;
    sim.requests.pause_requester = Some("bob".into());
    sim.settle(5);
    sim.requests.paused = false;
    sim.settle(5);
    // Someone with the right to edit the spec pauses and resumes through spec.paused.
    sim.spec.paused = true;
    sim.settle(5);
    assert_eq!(sim.status.phase, Phase::Paused);
    sim.spec.paused = false;
    sim.settle(5);
    let some = |o: &str, a: Option<&str>| (o.to_string(), a.map(str::to_string));
    assert_eq!(
        pause_entries(&sim),
        [
            some("Paused", Some("bob")),
            some("Resumed", Some("bob")),
            some("Paused", None),
            some("Resumed", None),
        ],
        "the spec's resume was credited to bob"
    );
    let last = sim.status.history.iter().rev().find(|e| e.outcome == "Resumed").unwrap();
    assert!(
        last.reason.contains("requested by an edit of spec.paused"),
        "{}",
        last.reason
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.note == "rollout resumed by an edit of spec.paused"),
        "{:?}",
        sim.events
    );
    // Carol's resume while spec.paused holds changes nothing; the later spec edit that does
    // resume is not hers either.
    sim.spec.paused = true;
    sim.settle(5);
    sim.requests.pause_requester = Some("carol".into());
    sim.settle(5);
    assert_eq!(sim.status.phase, Phase::Paused, "spec.paused still holds");
    sim.spec.paused = false;
    sim.settle(5);
    let entries = pause_entries(&sim);
    assert_eq!(
        entries.last(),
        Some(&some("Resumed", None)),
        "{entries:?}"
    );
    // A new request that does change the state is still credited to its requester.
    sim.requests.paused = true;
    sim.requests.pause_requester = Some("dave".into());
    sim.settle(5);
    let entries = pause_entries(&sim);
    assert_eq!(entries.last(), Some(&some("Paused", Some("dave"))), "{entries:?}");
}
