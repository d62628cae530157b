//! Coupled components and configuration: lockstep, preflight, configuration-only revisions.

use super::*;

#[test]
fn a_regression_in_one_component_reverts_every_component() {
    let mut spec = spec("unused", 1, steps_weights(&[50]));
    spec.template = None;
    spec.replicas = None;
    spec.components = Some(vec![
        Component {
            name: "gateway".into(),
            replicas: 2,
            template: template("gw:v1"),
        },
        Component {
            name: "api".into(),
            replicas: 2,
            template: template("api:v1"),
        },
    ]);
    let mut sim = Sim::new(spec);
    sim.settle(10);
    let old = sim.revision().hash;
    let components = sim.spec.components.as_mut().unwrap();
    components[0].template = template("gw:v2");
    components[1].template = template("api:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    for rs in &sim.replica_sets {
        let expected = if rs.revision == old { 2 } else { 0 };
        assert_eq!(rs.replicas, expected, "{rs:?}");
    }
}

/// The sizes of every component's ReplicaSet of `revision`, in spec order.
fn sizes(sim: &Sim, revision: &str) -> Vec<i32> {
    sim.spec
        .components
        .iter()
        .flatten()
        .map(|c| {
            sim.replica_sets
                .iter()
                .find(|rs| rs.revision == revision && rs.component == c.name)
                .map_or(0, |rs| rs.replicas)
        })
        .collect()
}

#[test]
fn lockstep_holds_at_every_state_of_many_three_component_rollouts() {
    let step_sets: Vec<Vec<CanaryStep>> = vec![
        steps_weights(&[25, 50, 100]),
        steps_weights(&[50]),
        steps_weights(&[100]),
        vec![weight(34), pause(Some("2s")), weight(100)],
    ];
    let sizes_sets = [[1, 1, 1], [1, 4, 2], [3, 2, 5], [2, 2, 2]];
    let faults = [None, Some(Fault::Crash), Some(Fault::NeverReady)];
    let mut scenarios = 0;
    for steps in &step_sets {
        for replicas in sizes_sets {
            for max_unavailable in [0, 1] {
                for fault in faults {
                    let faulty: Vec<Option<usize>> = match fault {
                        None => vec![None],
                        Some(_) => vec![Some(0), Some(1), Some(2)],
                    };
                    for (faulty, startup_lag) in
                        faulty.into_iter().flat_map(|f| [(f, false), (f, true)])
                    {
                        scenarios += 1;
                        let mut spec = three_components(replicas, "v1", steps.clone());
                        spec.strategy.canary.max_unavailable = Some(max_unavailable);
                        let mut sim = Sim::new(spec);
                        sim.check_lockstep = true;
                        sim.startup_lag = startup_lag;
                        sim.config_objects =
                            BTreeMap::from([("configmap/app".into(), "sha256:01".into())]);
                        sim.settle(10);
                        let old = sim.revision().hash;
                        assert_eq!(sim.status.stable_revision.as_ref(), Some(&old));
                        set_version(&mut sim, "v2");
                        // The configuration changes with the code: one revision.
                        sim.config_objects =
                            BTreeMap::from([("configmap/app".into(), "sha256:02".into())]);
                        let new = sim.revision().hash;
                        let case = format!(
                            "steps {steps:?}, replicas {replicas:?}, maxUnavailable {max_unavailable}, fault {fault:?} in {faulty:?}, start-up lag {startup_lag}"
                        );
                        if let (Some(fault), Some(i)) = (fault, faulty) {
                            let name = ["gateway", "api", "worker"][i];
                            sim.component_faults
                                .insert((new.clone(), name.to_string()), fault);
                        }
                        sim.settle(200);
                        let full = replicas.to_vec();
                        if faulty.is_none() {
                            assert_eq!(sim.status.phase, Phase::Healthy, "{case}");
                            assert_eq!(sim.status.stable_revision.as_ref(), Some(&new), "{case}");
                            assert_eq!(sizes(&sim, &new), full, "{case}");
                            assert_eq!(sizes(&sim, &old), vec![0, 0, 0], "{case}");
                        } else {
                            assert_eq!(sim.status.phase, Phase::Degraded, "{case}");
                            assert_eq!(sim.status.stable_revision.as_ref(), Some(&old), "{case}");
                            assert!(sim.status.rejected_revisions.contains(&new), "{case}");
                            assert_eq!(sizes(&sim, &old), full, "{case}: every component reverted");
                            assert_eq!(sizes(&sim, &new), vec![0, 0, 0], "{case}");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(scenarios, 4 * 4 * 2 * 7 * 2);
}

#[test]
fn every_component_keeps_a_stable_pod_until_all_switch_together() {
    // A one-replica gateway would be entirely on the new revision at the first 25% step
    // (ceil(1 * 25%) = 1) while the api still mostly runs the old one; it keeps its stable pod.
    let mut sim = Sim::new(three_components([1, 4, 2], "v1", steps_weights(&[25])));
    sim.settle(10);
    let old = sim.revision().hash;
    set_version(&mut sim, "v2");
    let new = sim.revision().hash;
    sim.tick();
    sim.tick();
    assert_eq!(sim.status.canary_revision.as_ref(), Some(&new));
    assert_eq!(sizes(&sim, &new), vec![1, 1, 1]);
    assert_eq!(sizes(&sim, &old), vec![1, 3, 1]);
    sim.check_lockstep = true;
    sim.settle(20);
    assert_eq!(sim.status.stable_revision.as_ref(), Some(&new));
    assert_eq!(sizes(&sim, &old), vec![0, 0, 0]);
    // The switch was one decision: the event of promotion comes with every stable at zero.
    assert_eq!(sim.events_with("RolloutCompleted"), 2);
}

#[test]
fn scale_ups_come_before_scale_downs_in_a_decision() {
    let mut spec = three_components([2, 2, 2], "v1", steps_weights(&[50, 100]));
    // The stable gives up a pod in the same decision that creates the canary.
    spec.strategy.canary.max_unavailable = Some(1);
    let mut sim = Sim::new(spec);
    sim.settle(10);
    set_version(&mut sim, "v2");
    let mut mixed = 0;
    for _ in 0..30 {
        let before = sim.replica_sets.clone();
        let decision = sim.tick();
        let up: Vec<bool> = decision
            .scale
            .iter()
            .map(|a| {
                let current = before
                    .iter()
                    .find(|rs| rs.revision == a.revision && rs.component == a.component)
                    .map_or(0, |rs| rs.replicas);
                a.replicas > current
            })
            .collect();
        assert!(
            up.windows(2).all(|w| w[0] || !w[1]),
            "a scale-up after a scale-down: {:?}",
            decision.scale
        );
        mixed += usize::from(up.contains(&true) && up.contains(&false));
    }
    assert!(mixed > 0, "no decision both scaled up and down");
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn a_configuration_only_change_is_a_revision_and_reverts_with_the_code() {
    let mut sim = Sim::new(three_components([2, 2, 2], "v1", steps_weights(&[50])));
    sim.config_objects = BTreeMap::from([("configmap/app".into(), "sha256:01".into())]);
    sim.settle(10);
    let old = sim.revision().hash;
    sim.config_objects = BTreeMap::from([("configmap/app".into(), "sha256:02".into())]);
    let new = sim.revision().hash;
    assert_ne!(
        new, old,
        "same templates, other configuration: another revision"
    );
    sim.component_faults
        .insert((new.clone(), "worker".into()), Fault::Crash);
    sim.check_lockstep = true;
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert_eq!(sim.status.stable_revision.as_ref(), Some(&old));
    assert_eq!(sizes(&sim, &old), vec![2, 2, 2]);
    assert_eq!(sizes(&sim, &new), vec![0, 0, 0]);
}

#[test]
fn adding_a_component_creates_replica_sets_of_the_new_revision_only() {
    let mut spec = three_components([1, 1, 1], "v1", steps_weights(&[50]));
    spec.components.as_mut().unwrap().pop();
    let mut sim = Sim::new(spec);
    sim.settle(10);
    let old = sim.revision().hash;
    sim.spec.components.as_mut().unwrap().push(Component {
        name: "worker".into(),
        replicas: 2,
        template: template("worker:v1"),
    });
    let new = sim.revision().hash;
    // `tick` asserts that only the desired revision's ReplicaSets are ever created.
    sim.settle(20);
    assert_eq!(sim.status.stable_revision.as_ref(), Some(&new));
    assert_eq!(sizes(&sim, &new), vec![1, 1, 2]);
    assert_eq!(sizes(&sim, &old), vec![0, 0, 0]);
}

const MISSING_KEY: &str = r#"ConfigMap "app-config" has no key "LOG_LEVEL" (component api, container "app", env LOG_LEVEL)"#;

#[test]
fn a_revision_failing_preflight_creates_no_pod_and_names_what_is_missing() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let (old, new) = sim.deploy_next("app:v2");
    sim.preflight = Err(vec![
        MISSING_KEY.to_string(),
        r#"Secret "db" not found (component api, container "app", envFrom)"#.to_string(),
    ]);
    let decision = sim.tick();
    decision.assert_leaves_alone(&new);
    assert_eq!(decision.requeue_after, Some(PREFLIGHT_RECHECK));
    assert_eq!(sim.replicas_of(&old), 3);
    assert_eq!(sim.status.phase, Phase::Blocked);
    let message = sim.status.message.clone().unwrap();
    assert!(message.contains(MISSING_KEY), "{message}");
    assert!(message.contains(r#"Secret "db" not found"#), "{message}");
    let preflight = condition(&sim.status, "Preflight");
    assert_eq!(
        (preflight.status.as_str(), preflight.reason.as_str()),
        ("False", "MissingReferences")
    );
    assert!(preflight.message.contains(MISSING_KEY));
    assert_eq!(condition(&sim.status, "Attested").status, "True");
    assert_eq!(condition(&sim.status, "Ready").reason, "PreflightFailed");
    assert_eq!(condition(&sim.status, "Stalled").status, "True");
    assert_eq!(decision.events.len(), 1);
    assert_eq!(decision.events[0].reason, "RolloutBlocked");
    assert!(decision.events[0].note.contains(MISSING_KEY));
    let last = sim.last_history();
    assert_eq!(last.outcome, "Blocked");
    assert!(last.reason.starts_with("MissingReferences: "), "{last:?}");
    // Checked again: nothing new is recorded, and still no pod.
    let again = sim.tick();
    assert!(again.events.is_empty());
    assert!(again.scale.is_empty());
    // Once the references resolve, the canary starts.
    sim.preflight = Ok(());
    let decision = sim.tick();
    assert!(decision.scales(&new, 2));
    assert_eq!(condition(&sim.status, "Preflight").status, "True");
}

#[test]
fn a_first_revision_failing_preflight_never_starts() {
    let mut sim = Sim::new(spec("app:v1", 3, steps_weights(&[50])));
    sim.preflight = Err(vec![MISSING_KEY.to_string()]);
    let decision = sim.tick();
    assert!(decision.scale.is_empty());
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(sim.status.stable_revision.is_none());
    assert!(sim.status.message.clone().unwrap().contains(MISSING_KEY));
}

#[test]
fn preflight_and_attestation_failures_are_both_reported() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    sim.deploy("app:v2");
    sim.preflight = Err(vec![MISSING_KEY.to_string()]);
    sim.reject_attestation(RejectReason::Missing, "no attestation found");
    let decision = sim.tick();
    let message = sim.status.message.clone().unwrap();
    assert!(message.contains("not attested (Missing)"), "{message}");
    assert!(message.contains(MISSING_KEY), "{message}");
    assert_eq!(condition(&sim.status, "Ready").reason, "AttestationFailed");
    assert_eq!(condition(&sim.status, "Preflight").status, "False");
    assert_eq!(decision.events.len(), 1);
    assert!(decision.events[0].note.contains("attestation Missing"));
    assert!(decision.events[0].note.contains(MISSING_KEY));
}

#[test]
fn a_canary_whose_references_disappear_is_stopped() {
    let mut sim = established("app:v1", 4, steps_weights(&[50, 100]));
    let (old, new) = sim.deploy_next("app:v2");
    sim.tick();
    sim.tick();
    assert!(sim.replicas_of(&new) > 0);
    sim.preflight = Err(vec![MISSING_KEY.to_string()]);
    sim.tick();
    sim.tick();
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert_eq!(sim.replicas_of(&new), 0);
    assert_eq!(sim.replicas_of(&old), 4);
    assert_eq!(sim.status.canary_revision, None);
}

#[test]
fn manual_actions_are_recorded_in_the_history_once() {
    let steps = vec![weight(50), pause(None), weight(100)];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    sim.settle(10);
    sim.requests.paused = true;
    sim.settle(5);
    sim.requests.paused = false;
    sim.settle(5);
    sim.requests.promote = Some("p1".into());
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    let outcomes: Vec<&str> = sim
        .status
        .history
        .iter()
        .map(|e| e.outcome.as_str())
        .collect();
    for action in ["Paused", "Resumed", "PromoteRequested"] {
        assert_eq!(
            outcomes.iter().filter(|o| **o == action).count(),
            1,
            "{action} in {outcomes:?}"
        );
    }
    assert!(
        sim.status.history.iter().all(|e| e.finished_at.is_some()),
        "{:?}",
        sim.status.history
    );
}
