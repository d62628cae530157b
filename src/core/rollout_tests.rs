//! Table-driven and simulated tests of the rollout decision, including its invariants.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::api::{AnalysisStep, CanaryStrategy, Component, LabelSelectorSpec, PauseStep, Strategy};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    Crash,
    NeverReady,
    /// Ready, but its container restarted once.
    Restarted,
}

struct Sim {
    spec: SafeDeploymentSpec,
    status: SafeDeploymentStatus,
    replica_sets: Vec<ReplicaSetView>,
    /// The fresh baseline's ReplicaSets (revision: the stable hash they run).
    baseline_replica_sets: Vec<ReplicaSetView>,
    /// Fault of the baseline's pods.
    baseline_fault: Fault,
    /// Creation-to-Ready seconds of the baseline's pods.
    baseline_startup: i64,
    faults: BTreeMap<String, Fault>,
    /// Faults of one component of a revision: `(revision, component)`.
    component_faults: BTreeMap<(String, String), Fault>,
    /// Content digests of the referenced configuration (folded into the revision hash).
    config_objects: BTreeMap<String, String>,
    /// Check the lockstep invariant after every single scaling action, in decision order.
    check_lockstep: bool,
    /// Pods created in a tick become Ready only in the next one (by default at once), so a
    /// decision that removes Ready pods before their replacements are Ready shows as lost
    /// capacity.
    startup_lag: bool,
    now: Timestamp,
    attestation: AttestationGate,
    preflight: Result<(), Vec<String>>,
    analyses: BTreeMap<String, AnalysisGate>,
    requests: Requests,
    events: Vec<EventNote>,
    pod_birth: BTreeMap<String, Timestamp>,
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn steps_weights(weights: &[i32]) -> Vec<CanaryStep> {
    weights
        .iter()
        .map(|w| CanaryStep {
            set_weight: Some(*w),
            ..Default::default()
        })
        .collect()
}

fn spec(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> SafeDeploymentSpec {
    SafeDeploymentSpec {
        replicas: Some(replicas),
        selector: LabelSelectorSpec {
            match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        },
        template: Some(template(image)),
        strategy: Strategy {
            canary: CanaryStrategy {
                steps,
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

impl Sim {
    fn new(spec: SafeDeploymentSpec) -> Self {
        Sim {
            spec,
            status: SafeDeploymentStatus::default(),
            replica_sets: Vec::new(),
            baseline_replica_sets: Vec::new(),
            baseline_fault: Fault::None,
            baseline_startup: 0,
            faults: BTreeMap::new(),
            component_faults: BTreeMap::new(),
            config_objects: BTreeMap::new(),
            check_lockstep: false,
            startup_lag: false,
            now: Timestamp::from_second(1_800_000_000).unwrap(),
            attestation: AttestationGate::NotRequired("test policy".into()),
            preflight: Ok(()),
            analyses: BTreeMap::new(),
            requests: Requests::default(),
            events: Vec::new(),
            pod_birth: BTreeMap::new(),
        }
    }

    fn revision(&self) -> Revision {
        Revision::from_spec_with_config(&self.spec, &self.config_objects).unwrap()
    }

    fn fault_of(&self, revision: &str, component: &str) -> Fault {
        self.component_faults
            .get(&(revision.to_string(), component.to_string()))
            .or_else(|| self.faults.get(revision))
            .copied()
            .unwrap_or(Fault::None)
    }

    fn pods(&self) -> Vec<PodView> {
        let mut pods = Vec::new();
        for rs in &self.replica_sets {
            let fault = self.fault_of(&rs.revision, &rs.component);
            for i in 0..rs.replicas {
                let name = format!("{}-{i}", rs.name);
                let created = self.pod_birth.get(&name).copied().unwrap_or(self.now);
                let ready = fault != Fault::NeverReady;
                pods.push(PodView {
                    name,
                    revision: rs.revision.clone(),
                    component: rs.component.clone(),
                    created_at: created,
                    ready: ready && fault != Fault::Crash,
                    ready_at: ready.then_some(created),
                    restarts: i32::from(fault == Fault::Crash || fault == Fault::Restarted),
                    failing_containers: 0,
                    terminating: false,
                });
            }
        }
        pods
    }

    fn baseline_pods(&self) -> Vec<PodView> {
        let mut pods = Vec::new();
        for rs in &self.baseline_replica_sets {
            let fault = self.baseline_fault;
            for i in 0..rs.replicas {
                let ready = fault == Fault::None;
                let created = self
                    .now
                    .checked_sub(jiff::SignedDuration::from_secs(self.baseline_startup))
                    .unwrap();
                pods.push(PodView {
                    name: format!("{}-{i}", rs.name),
                    revision: crate::core::revision::baseline_selector(&rs.revision),
                    component: rs.component.clone(),
                    created_at: created,
                    ready,
                    ready_at: ready.then_some(self.now),
                    restarts: i32::from(fault == Fault::Crash),
                    failing_containers: i32::from(fault == Fault::Crash),
                    terminating: false,
                });
            }
        }
        pods
    }

    fn decide(&self) -> Decision {
        let revision = self.revision();
        let pods = self.pods();
        let baseline_pods = self.baseline_pods();
        decide(&Observation {
            name: "web",
            generation: Some(1),
            spec: &self.spec,
            desired: &revision,
            status: &self.status,
            replica_sets: &self.replica_sets,
            pods: &pods,
            baseline_replica_sets: &self.baseline_replica_sets,
            baseline_pods: &baseline_pods,
            attestation: self.attestation.clone(),
            preflight: self.preflight.clone(),
            analyses: self.analyses.clone(),
            requests: self.requests.clone(),
            now: self.now,
        })
    }

    /// One reconcile, then the "cluster" catches up: ReplicaSets take the new sizes and their
    /// pods become Ready unless faulty.
    fn tick(&mut self) -> Decision {
        let decision = self.decide();
        let sizes_before: BTreeMap<String, i32> = self
            .replica_sets
            .iter()
            .map(|rs| (rs.name.clone(), rs.replicas))
            .collect();
        let revision = self.revision();
        for action in &decision.scale {
            match self
                .replica_sets
                .iter_mut()
                .find(|rs| rs.revision == action.revision && rs.component == action.component)
            {
                Some(rs) => rs.replicas = action.replicas,
                None => {
                    assert_eq!(
                        action.revision, revision.hash,
                        "only the desired revision is created"
                    );
                    self.replica_sets.push(ReplicaSetView {
                        name: Revision::replica_set_name(
                            "web",
                            revision.single,
                            &action.component,
                            &action.revision,
                        ),
                        revision: action.revision.clone(),
                        component: action.component.clone(),
                        replicas: action.replicas,
                        ready: 0,
                    });
                }
            }
            if self.check_lockstep {
                self.assert_lockstep();
            }
        }
        self.replica_sets
            .retain(|rs| !decision.delete.contains(&rs.name));
        for action in &decision.baseline_scale {
            match self
                .baseline_replica_sets
                .iter_mut()
                .find(|rs| rs.revision == action.revision && rs.component == action.component)
            {
                Some(rs) => rs.replicas = action.replicas,
                None => {
                    assert!(
                        self.replica_sets
                            .iter()
                            .any(|rs| rs.revision == action.revision
                                && rs.component == action.component),
                        "a baseline copies an existing stable ReplicaSet"
                    );
                    self.baseline_replica_sets.push(ReplicaSetView {
                        name: Revision::baseline_replica_set_name(
                            "web",
                            revision.single,
                            &action.component,
                            &action.revision,
                        ),
                        revision: action.revision.clone(),
                        component: action.component.clone(),
                        replicas: action.replicas,
                        ready: 0,
                    });
                }
            }
        }
        self.baseline_replica_sets
            .retain(|rs| !decision.baseline_delete.contains(&rs.name));
        let baseline_fault = self.baseline_fault;
        for rs in &mut self.baseline_replica_sets {
            rs.ready = if baseline_fault == Fault::None {
                rs.replicas
            } else {
                0
            };
        }
        let faults: Vec<Fault> = self
            .replica_sets
            .iter()
            .map(|rs| self.fault_of(&rs.revision, &rs.component))
            .collect();
        let lag = self.startup_lag;
        for (rs, fault) in self.replica_sets.iter_mut().zip(faults) {
            let before = sizes_before.get(&rs.name).copied().unwrap_or(0);
            let settled = if lag {
                rs.replicas.min(before.max(rs.ready))
            } else {
                rs.replicas
            };
            rs.ready = if fault == Fault::None { settled } else { 0 };
            for i in 0..rs.replicas {
                self.pod_birth
                    .entry(format!("{}-{i}", rs.name))
                    .or_insert(self.now);
            }
        }
        self.status = decision.status.clone();
        self.events.extend(decision.events.clone());
        self.now = self
            .now
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap();
        decision
    }

    fn ready_of(&self, revision: &str) -> i32 {
        self.replica_sets
            .iter()
            .filter(|rs| rs.revision == revision)
            .map(|rs| rs.ready)
            .sum()
    }

    fn replicas_of(&self, revision: &str) -> i32 {
        self.replica_sets
            .iter()
            .filter(|rs| rs.revision == revision)
            .map(|rs| rs.replicas)
            .sum()
    }

    /// Runs until nothing changes, checking the invariants at every state.
    fn settle(&mut self, max_ticks: usize) {
        for _ in 0..max_ticks {
            let readiness_before: Vec<i32> = self.replica_sets.iter().map(|rs| rs.ready).collect();
            let decision = self.tick();
            self.check_invariants();
            let readiness_after: Vec<i32> = self.replica_sets.iter().map(|rs| rs.ready).collect();
            // Pods turning Ready wake the controller (a watch event), like a scale change.
            if readiness_before == readiness_after
                && decision.scale.is_empty()
                && decision.events.is_empty()
                && decision.requeue_after.is_none()
            {
                return;
            }
        }
    }

    fn check_invariants(&self) {
        let Some(stable) = self.status.stable_revision.clone() else {
            assert!(self.baseline_replica_sets.is_empty());
            return;
        };
        self.check_baseline_invariants(&stable);
        let total: i32 = self.replica_sets.iter().map(|rs| rs.replicas).sum();
        assert!(
            total > 0,
            "never every revision at zero: {:?}",
            self.replica_sets
        );
        let max_unavailable = self.spec.strategy.canary.max_unavailable.unwrap_or(0);
        let stable_healthy =
            self.faults.get(&stable).copied().unwrap_or(Fault::None) == Fault::None;
        // After a cluster tick, healthy ready capacity of every component never drops below
        // the floor, except for the pods of a faulty canary that the stable gave up before the
        // fault showed.
        let canary_faulty = self.status.canary_revision.as_ref().is_some_and(|c| {
            self.faults.get(c).copied().unwrap_or(Fault::None) != Fault::None
                || self.component_faults.keys().any(|(r, _)| r == c)
        });
        if !stable_healthy || canary_faulty {
            return;
        }
        for component in self.revision().components {
            // A component the stable revision does not have has no capacity to keep yet.
            let in_stable = self
                .replica_sets
                .iter()
                .any(|rs| rs.revision == stable && rs.component == component.name);
            if !in_stable {
                continue;
            }
            let n = component.replicas;
            let healthy_ready: i32 = self
                .replica_sets
                .iter()
                .filter(|rs| rs.component == component.name)
                .filter(|rs| self.fault_of(&rs.revision, &rs.component) == Fault::None)
                .map(|rs| rs.ready)
                .sum();
            assert!(
                healthy_ready >= n - max_unavailable,
                "ready capacity of {} {healthy_ready} below {} in {:?}",
                component.name,
                n - max_unavailable,
                self.replica_sets
            );
        }
    }

    /// The fresh baseline: only while a canary runs, only of the current stable revision, at the
    /// canary's size at every step (the last step's size while promoting), never a revision.
    fn check_baseline_invariants(&self, stable: &str) {
        for rs in &self.baseline_replica_sets {
            assert_eq!(rs.revision, stable, "a baseline of an old stable revision");
        }
        assert!(
            self.status
                .revisions
                .iter()
                .all(|r| !r.hash.ends_with("-baseline"))
        );
        assert!(
            self.status
                .history
                .iter()
                .all(|e| !e.hash.ends_with("-baseline"))
        );
        let fresh = self.spec.strategy.canary.baseline == Some(crate::api::BaselineMode::Fresh);
        let Some(canary) = self.status.canary_revision.clone() else {
            assert!(
                self.baseline_replica_sets.is_empty(),
                "a baseline without a canary: {:?}",
                self.baseline_replica_sets
            );
            assert_eq!(self.status.baseline, None);
            return;
        };
        if !fresh {
            assert!(self.baseline_replica_sets.is_empty());
            return;
        }
        let steps = &self.spec.strategy.canary.steps;
        let index = usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0);
        for c in self.revision().components {
            let baseline = self
                .baseline_replica_sets
                .iter()
                .find(|rs| rs.component == c.name)
                .map_or(0, |rs| rs.replicas);
            let expected = if index >= steps.len() {
                canary_replicas(c.replicas, weight_at(steps, steps.len() - 1))
            } else {
                self.replica_sets
                    .iter()
                    .find(|rs| rs.revision == canary && rs.component == c.name)
                    .map_or(0, |rs| rs.replicas)
            };
            assert_eq!(
                baseline, expected,
                "baseline of {} at step {index}: {:?} / {:?}",
                c.name, self.baseline_replica_sets, self.replica_sets
            );
        }
    }

    fn deploy(&mut self, image: &str) {
        self.spec.template = Some(template(image));
    }

    /// The lockstep invariant: once any component runs only revision R (no pod of the revision
    /// it had before), every component's R ReplicaSet has its full size, and — when R is the
    /// revision being switched to, not the stable one — every pod of it was Ready when the switch
    /// was decided. So no component is ever entirely on the new revision while another still
    /// serves the old one as stable.
    fn assert_lockstep(&self) {
        let components = self.revision().components;
        let revisions: std::collections::BTreeSet<&String> =
            self.replica_sets.iter().map(|rs| &rs.revision).collect();
        for r in revisions {
            let switched: Vec<&str> = components
                .iter()
                .filter(|c| {
                    let of_c = || self.replica_sets.iter().filter(|x| x.component == c.name);
                    let on_r = of_c().any(|x| &x.revision == r && x.replicas > 0);
                    let mut others = of_c().filter(|x| &x.revision != r).peekable();
                    on_r && others.peek().is_some() && others.all(|x| x.replicas == 0)
                })
                .map(|c| c.name.as_str())
                .collect();
            if switched.is_empty() {
                continue;
            }
            let stable = self.status.stable_revision.as_ref() == Some(r);
            for c in &components {
                let rs = self
                    .replica_sets
                    .iter()
                    .find(|x| &x.revision == r && x.component == c.name);
                assert!(
                    rs.is_some_and(
                        |x| x.replicas == c.replicas && (stable || x.ready >= c.replicas)
                    ),
                    "lockstep broken: {switched:?} run only {r} but component {} does not run it \
                     fully: {:?}",
                    c.name,
                    self.replica_sets
                );
            }
        }
    }
}

fn established(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(spec(image, replicas, steps));
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
    sim
}

fn condition<'a>(status: &'a SafeDeploymentStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn canary_replicas_follow_the_weight() {
    for (n, weight, expected) in [
        (4, 25, 1),
        (4, 50, 2),
        (4, 0, 0),
        (4, 100, 4),
        (3, 10, 1),
        (10, 33, 4),
        (0, 50, 0),
    ] {
        assert_eq!(
            canary_replicas(n, weight),
            expected,
            "n={n} weight={weight}"
        );
    }
}

#[test]
fn weight_at_keeps_the_last_set_weight() {
    let steps = vec![
        CanaryStep {
            set_weight: Some(20),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep {
                duration: Some("1m".into()),
            }),
            ..Default::default()
        },
        CanaryStep {
            set_weight: Some(60),
            ..Default::default()
        },
    ];
    assert_eq!(weight_at(&steps, 0), 20);
    assert_eq!(weight_at(&steps, 1), 20);
    assert_eq!(weight_at(&steps, 2), 60);
}

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
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    let new = sim.revision().hash;
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
}

#[test]
fn a_crashing_canary_is_reverted_and_not_retried() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    let old = sim.revision().hash;
    sim.deploy("app:v2-bad");
    let bad = sim.revision().hash;
    sim.faults.insert(bad.clone(), Fault::Crash);
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert_eq!(sim.status.stable_revision, Some(old.clone()));
    assert_eq!(sim.replicas_of(&old), 4);
    assert_eq!(sim.replicas_of(&bad), 0);
    assert!(sim.status.rejected_revisions.contains(&bad));
    let entry = sim.status.history.last().unwrap();
    assert_eq!(entry.outcome, "Reverted");
    assert!(
        entry.reason.contains("restarts = 1"),
        "reason names the value: {}",
        entry.reason
    );
    assert!(
        entry.reason.contains("critical 1"),
        "reason names the threshold: {}",
        entry.reason
    );
    assert_eq!(condition(&sim.status, "Degraded").status, "True");
    assert_eq!(condition(&sim.status, "Ready").status, "False");
    // Nothing more happens while the spec still holds the rejected template.
    let again = sim.tick();
    assert!(again.scale.is_empty());
    assert!(again.events.is_empty());
    assert_eq!(sim.replicas_of(&bad), 0);
}

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
fn an_unattested_revision_creates_no_pod() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.attestation = AttestationGate::Rejected {
        reason: "Missing".into(),
        message: "no attestation found".into(),
    };
    let decision = sim.tick();
    assert!(
        decision.scale.iter().all(|a| a.revision != new),
        "{:?}",
        decision.scale
    );
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
    assert!(
        decision
            .scale
            .iter()
            .any(|a| a.revision == new && a.replicas == 2)
    );
}

#[test]
fn a_first_revision_without_attestation_never_starts() {
    let mut sim = Sim::new(spec("app:v1", 3, steps_weights(&[50])));
    sim.attestation = AttestationGate::Rejected {
        reason: "BadSignature".into(),
        message: "signature does not verify".into(),
    };
    let decision = sim.tick();
    assert!(decision.scale.is_empty());
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(sim.status.stable_revision.is_none());
}

#[test]
fn a_pause_without_duration_waits_for_promote_once_per_token() {
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
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
fn a_timed_pause_requeues_for_the_remaining_time() {
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep {
                duration: Some("30s".into()),
            }),
            ..Default::default()
        },
    ];
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
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(
        sim.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("ProgressDeadlineExceeded")
    );
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn failed_analysis_reverts_and_inconclusive_never_promotes() {
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            analysis: Some(AnalysisStep {
                template: "errors".into(),
            }),
            ..Default::default()
        },
    ];
    let mut sim = established("app:v1", 2, steps.clone());
    sim.deploy("app:v2");
    sim.analyses.insert(
        "errors".into(),
        AnalysisGate::Inconclusive("prometheus unreachable".into()),
    );
    for _ in 0..10 {
        let before = sim.status.current_step_index;
        let decision = sim.tick();
        assert_ne!(
            sim.status.phase,
            Phase::Healthy,
            "never promoted while inconclusive"
        );
        if before == Some(1) {
            assert_eq!(decision.active_analyses.len(), 1);
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
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(
        sim.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("error ratio")
    );
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
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            analysis: Some(AnalysisStep {
                template: "errors".into(),
            }),
            ..Default::default()
        },
    ];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    sim.analyses.insert("errors".into(), AnalysisGate::Passed);
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
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
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert_eq!(sim.status.history.last().unwrap().outcome, "Reverted");
    assert!(
        sim.status
            .history
            .last()
            .unwrap()
            .reason
            .starts_with("Aborted")
    );
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

#[test]
fn changing_only_replicas_scales_without_a_rollout() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let hash = sim.revision().hash;
    sim.spec.replicas = Some(5);
    sim.settle(5);
    assert_eq!(sim.replicas_of(&hash), 5);
    assert!(
        sim.events
            .iter()
            .all(|e| e.reason != "RolloutStarted" || e.note.contains("initial"))
    );
}

#[test]
fn stable_capacity_is_kept_while_the_canary_starts() {
    let mut sim = established("app:v1", 4, steps_weights(&[50]));
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    // First reconcile: the canary is created, the stable is not touched yet (no canary is Ready).
    let decision = sim.decide();
    assert!(
        decision.scale.iter().all(|a| a.revision != old),
        "{:?}",
        decision.scale
    );
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted_but_recent_ones_kept() {
    let mut sim = established("app:v1", 1, steps_weights(&[100]));
    sim.spec.revision_history_limit = Some(2);
    for version in 2..=6 {
        sim.deploy(&format!("app:v{version}"));
        sim.settle(20);
        assert_eq!(sim.status.phase, Phase::Healthy);
    }
    // Stable plus two old ones, and possibly the one being deleted this tick.
    assert!(sim.replica_sets.len() <= 4, "{:?}", sim.replica_sets);
    assert!(sim.replica_sets.len() >= 3);
}

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

fn three_components(
    replicas: [i32; 3],
    version: &str,
    steps: Vec<CanaryStep>,
) -> SafeDeploymentSpec {
    let mut spec = spec("unused", 1, steps);
    spec.template = None;
    spec.replicas = None;
    spec.progress_deadline = Some("40s".into());
    spec.components = Some(
        ["gateway", "api", "worker"]
            .iter()
            .zip(replicas)
            .map(|(name, replicas)| Component {
                name: (*name).into(),
                replicas,
                template: template(&format!("{name}:{version}")),
            })
            .collect(),
    );
    spec
}

fn set_version(sim: &mut Sim, version: &str) {
    for component in sim.spec.components.as_mut().unwrap() {
        component.template = template(&format!("{}:{version}", component.name));
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
        vec![
            CanaryStep {
                set_weight: Some(34),
                ..Default::default()
            },
            CanaryStep {
                pause: Some(PauseStep {
                    duration: Some("2s".into()),
                }),
                ..Default::default()
            },
            CanaryStep {
                set_weight: Some(100),
                ..Default::default()
            },
        ],
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
    assert_eq!(
        sim.events
            .iter()
            .filter(|e| e.reason == "RolloutCompleted")
            .count(),
        2
    );
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
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.preflight = Err(vec![
        MISSING_KEY.to_string(),
        r#"Secret "db" not found (component api, container "app", envFrom)"#.to_string(),
    ]);
    let decision = sim.tick();
    assert!(
        decision.scale.iter().all(|a| a.revision != new),
        "{:?}",
        decision.scale
    );
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
    let last = sim.status.history.last().unwrap();
    assert_eq!(last.outcome, "Blocked");
    assert!(
        last.reason.starts_with("MissingReferences: "),
        "{}",
        last.reason
    );
    // Checked again: nothing new is recorded, and still no pod.
    let again = sim.tick();
    assert!(again.events.is_empty());
    assert!(again.scale.is_empty());
    // Once the references resolve, the canary starts.
    sim.preflight = Ok(());
    let decision = sim.tick();
    assert!(
        decision
            .scale
            .iter()
            .any(|a| a.revision == new && a.replicas == 2)
    );
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
    sim.attestation = AttestationGate::Rejected {
        reason: "Missing".into(),
        message: "no attestation found".into(),
    };
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
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    let new = sim.revision().hash;
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
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
        CanaryStep {
            set_weight: Some(100),
            ..Default::default()
        },
    ];
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

fn fresh(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> Sim {
    let mut spec = spec(image, replicas, steps);
    spec.strategy.canary.baseline = Some(crate::api::BaselineMode::Fresh);
    let mut sim = Sim::new(spec);
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty(), "no baseline at rest");
    sim
}

/// Sizes of the baseline after each tick until the rollout settles, with the invariants
/// (capacity counting stable and canary only, baseline at the canary's size) checked at every
/// state.
fn run_with_baseline(sim: &mut Sim, max_ticks: usize) -> Vec<i32> {
    let mut sizes = Vec::new();
    for _ in 0..max_ticks {
        let decision = sim.tick();
        sim.check_invariants();
        sizes.push(sim.baseline_replica_sets.iter().map(|rs| rs.replicas).sum());
        if decision.scale.is_empty()
            && decision.baseline_scale.is_empty()
            && decision.baseline_delete.is_empty()
            && decision.events.is_empty()
            && decision.requeue_after.is_none()
        {
            break;
        }
    }
    sizes
}

#[test]
fn a_fresh_baseline_follows_the_canary_size_and_goes_with_the_promotion() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[25, 50, 75]));
    let stable = sim.revision().hash;
    sim.deploy("app:v2");
    let sizes = run_with_baseline(&mut sim, 40);
    for size in [1, 2, 3] {
        assert!(sizes.contains(&size), "baseline sizes {sizes:?}");
    }
    assert_eq!(sizes.last(), Some(&0));
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_ne!(sim.status.stable_revision.as_deref(), Some(stable.as_str()));
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.baseline, None);
    // Two revisions, and the old stable is kept in history at zero.
    assert_eq!(sim.status.revisions.len(), 2);
    assert_eq!(sim.replicas_of(&stable), 0);
    assert!(sim.replica_sets.iter().any(|rs| rs.revision == stable));
}

#[test]
fn the_baseline_is_created_with_the_canary_and_says_what_it_is() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    let stable = sim.revision().hash;
    sim.spec.strategy.canary.steps.push(CanaryStep {
        pause: Some(PauseStep { duration: None }),
        ..Default::default()
    });
    sim.deploy("app:v2");
    let first = sim.tick();
    // The same decision creates the canary and the baseline.
    assert!(
        first
            .scale
            .iter()
            .any(|a| a.revision != stable && a.replicas == 2)
    );
    assert_eq!(
        first.baseline_scale,
        vec![ScaleAction {
            revision: stable.clone(),
            component: "main".into(),
            replicas: 2
        }]
    );
    sim.settle(10);
    let baseline = sim.status.baseline.clone().expect("baseline status");
    let selector = crate::core::revision::baseline_selector(&stable);
    assert_eq!(baseline.revision, stable);
    assert_eq!(baseline.selector, selector);
    assert_eq!((baseline.replicas, baseline.ready), (2, 2));
    assert!(baseline.message.contains(&selector), "{}", baseline.message);
    // Stable at 4 - 2: the baseline's pods take no part in the stable's size.
    assert_eq!(sim.replicas_of(&stable), 2);
    // The state is in the cluster: deciding again (as after an operator restart) finds the
    // baseline by its view and changes nothing.
    let again = sim.decide();
    assert!(again.baseline_scale.is_empty() && again.baseline_delete.is_empty());
    assert_eq!(again.status, sim.status);
    // A baseline of another stable revision (left by an earlier rollout) is deleted.
    sim.baseline_replica_sets.push(ReplicaSetView {
        name: "web-0123456789-baseline".into(),
        revision: "0123456789".into(),
        component: "main".into(),
        replicas: 1,
        ready: 1,
    });
    let decision = sim.decide();
    assert_eq!(decision.baseline_delete, vec!["web-0123456789-baseline"]);
}

#[test]
fn the_baseline_goes_when_the_canary_is_reverted_or_aborted() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[25, 50]));
    sim.spec.strategy.canary.steps.insert(
        1,
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    );
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.baseline_replica_sets.len(), 1);
    sim.requests.abort = Some("t1".into());
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.baseline_replica_sets.is_empty());

    // A crashing canary: reverted by the health gate, and the baseline goes with it.
    sim.deploy("app:v3");
    let v3 = sim.revision().hash;
    sim.faults.insert(v3, Fault::Crash);
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.baseline, None);

    // A rollback during a canary: the baseline goes too, and is never what is rolled back to.
    sim.deploy("app:v4");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.baseline_replica_sets.len(), 1);
    sim.requests.rollback = Some(("1/r1".into(), 1));
    run_with_baseline(&mut sim, 10);
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.canary_revision, None);
    let v1 = sim.status.revisions.iter().find(|r| r.number == 1).unwrap();
    assert_eq!(sim.status.stable_revision.as_ref(), Some(&v1.hash));
}

#[test]
fn a_crashing_baseline_is_not_blamed_on_the_canary() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(CanaryStep {
        pause: Some(PauseStep { duration: None }),
        ..Default::default()
    });
    sim.baseline_fault = Fault::Crash;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused, "{:?}", sim.status.message);
    let baseline = sim.status.baseline.clone().expect("baseline status");
    assert_eq!(baseline.ready, 0);
    assert!(baseline.restarts > 0);
    assert!(
        baseline.message.contains("not blamed"),
        "{}",
        baseline.message
    );
    let restarts = sim
        .status
        .health
        .iter()
        .find(|m| m.signal == "restarts")
        .unwrap();
    assert_eq!(restarts.value, 0.0, "the canary's restarts only");
    // It promotes as usual, and the baseline goes.
    sim.requests.promote = Some("p1".into());
    run_with_baseline(&mut sim, 20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty());
}

#[test]
fn with_a_stable_baseline_no_baseline_replica_set_is_ever_made() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    sim.deploy("app:v2");
    for _ in 0..40 {
        let decision = sim.tick();
        sim.check_invariants();
        assert!(decision.baseline_scale.is_empty() && decision.baseline_delete.is_empty());
        assert_eq!(decision.status.baseline, None);
    }
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn capacity_and_baseline_invariants_hold_across_many_fresh_rollouts() {
    let cases: [(i32, i32, &[i32]); 5] = [
        (1, 0, &[50, 100]),
        (3, 0, &[10, 34, 100]),
        (4, 1, &[25, 50, 75]),
        (5, 2, &[0, 20, 60, 100]),
        (10, 0, &[5, 50]),
    ];
    for ((replicas, max_unavailable, weights), startup_lag) in cases
        .into_iter()
        .flat_map(|case| [(case, false), (case, true)])
    {
        let mut sim = fresh("app:v1", replicas, steps_weights(weights));
        sim.startup_lag = startup_lag;
        sim.spec.strategy.canary.max_unavailable = Some(max_unavailable);
        for (round, image) in ["app:v2", "app:v3"].into_iter().enumerate() {
            sim.deploy(image);
            if round == 1 {
                // A canary replaced mid-rollout keeps the same stable, so the same baseline.
                run_with_baseline(&mut sim, 2);
                sim.deploy("app:v4");
            }
            run_with_baseline(&mut sim, 60);
            assert_eq!(sim.status.phase, Phase::Healthy, "{replicas} {weights:?}");
            assert!(sim.baseline_replica_sets.is_empty());
        }
    }
}

/// Kayenta's cold-start lesson for the start-up latency gate: with a fresh baseline the canary's
/// start-up is compared with the same-age baseline pods once one is Ready, and with the stable
/// pods before that (and always with `baseline: Stable`).
#[test]
fn start_up_latency_is_compared_with_the_fresh_baseline_once_it_is_ready() {
    let startup_reference = |sim: &Sim| {
        sim.status
            .health
            .iter()
            .find(|m| m.signal == "startupLatencySeconds")
            .and_then(|m| m.baseline)
    };
    let pause = CanaryStep {
        pause: Some(PauseStep { duration: None }),
        ..Default::default()
    };
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause.clone());
    sim.baseline_startup = 20;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(startup_reference(&sim), Some(20.0));

    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause.clone());
    sim.baseline_startup = 20;
    sim.baseline_fault = Fault::NeverReady;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(
        startup_reference(&sim),
        Some(0.0),
        "the stable pods' start-up"
    );

    let mut sim = established("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause);
    sim.baseline_startup = 20;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(startup_reference(&sim), Some(0.0));
}

#[test]
fn coupled_components_each_get_a_fresh_baseline_at_their_canary_size() {
    let mut spec = three_components([1, 2, 5], "v1", steps_weights(&[20, 50, 100]));
    spec.strategy.canary.baseline = Some(crate::api::BaselineMode::Fresh);
    let mut sim = Sim::new(spec);
    sim.check_lockstep = true;
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
    set_version(&mut sim, "v2");
    let mut most = 0;
    for _ in 0..60 {
        let decision = sim.tick();
        sim.check_invariants();
        most = most.max(sim.baseline_replica_sets.len());
        if decision.scale.is_empty()
            && decision.baseline_scale.is_empty()
            && decision.baseline_delete.is_empty()
            && decision.requeue_after.is_none()
        {
            break;
        }
    }
    assert_eq!(most, 3, "one baseline per component");
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty());
}

/// A canary at 50 % with Ready pods, waiting at a manual pause; pods start with a lag.
fn paused_half_way() -> Sim {
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
    let mut sim = established("app:v1", 4, steps);
    sim.startup_lag = true;
    sim.deploy("app:v2");
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Paused);
    let canary = sim.revision().hash;
    assert_eq!(sim.ready_of(&canary), 2);
    sim
}

#[test]
fn a_revert_keeps_ready_capacity_while_the_stable_scales_back_up() {
    let mut aborted = paused_half_way();
    let canary = aborted.revision().hash;
    aborted.requests.abort = Some("a1".into());
    aborted.tick();
    aborted.check_invariants();
    assert_eq!(aborted.status.phase, Phase::Degraded);
    assert_eq!(
        aborted.replicas_of(&canary),
        2,
        "the canary's Ready pods stay until the stable's replacements are Ready"
    );
    aborted.settle(10);
    assert_eq!(aborted.replicas_of(&canary), 0, "and then they go");
    let stable = aborted.status.stable_revision.clone().unwrap();
    assert_eq!(aborted.ready_of(&stable), 4);

    // With room to spare (maxUnavailable covers the canary), the canary goes at once.
    let mut roomy = paused_half_way();
    roomy.spec.strategy.canary.max_unavailable = Some(2);
    roomy.requests.abort = Some("a2".into());
    roomy.tick();
    roomy.check_invariants();
    assert_eq!(roomy.replicas_of(&canary), 0);
}

#[test]
fn a_failed_analysis_or_a_superseded_canary_never_drops_ready_capacity() {
    // Failed background analysis: the canary's pods are Ready, the metric says no.
    let mut failed = paused_half_way();
    failed.analyses.insert(
        "bg".into(),
        AnalysisGate::Failed("error ratio 0.05 >= critical 0.02".into()),
    );
    failed.spec.strategy.canary.background_analysis = Some("bg".into());
    for _ in 0..10 {
        failed.tick();
        failed.check_invariants();
    }
    assert_eq!(failed.status.phase, Phase::Degraded);
    assert_eq!(failed.replicas_of(&failed.revision().hash), 0);

    // A newer revision replaces the half-way canary.
    let mut superseded = paused_half_way();
    let old_canary = superseded.revision().hash;
    superseded.deploy("app:v3");
    superseded.tick();
    superseded.check_invariants();
    superseded.settle(30);
    assert_eq!(superseded.replicas_of(&old_canary), 0);
}

// ----- hostile input and faulty signals (issue 12) ------------------------------------------

fn thresholds(target: f64, acceptable: f64, critical: f64) -> crate::api::Thresholds {
    crate::api::Thresholds {
        target,
        acceptable,
        critical,
    }
}

fn tick_for(sim: &mut Sim, seconds: i64) {
    for _ in 0..seconds {
        sim.tick();
    }
}

#[test]
fn an_absurd_threshold_and_a_slow_canary_never_panic_and_the_deadline_still_reverts() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.spec.progress_deadline = Some("20s".into());
    sim.spec.health = Some(crate::api::HealthGates {
        startup_latency_seconds: Some(thresholds(1.0, 2.0, 1e20)),
        not_ready_pods: Some(thresholds(0.0, 10.0, 100.0)),
        ..Default::default()
    });
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::NeverReady);
    for _ in 0..40 {
        let decision = sim.tick();
        if let Some(requeue) = decision.requeue_after {
            assert!(requeue <= MAX_REQUEUE, "{requeue:?}");
        }
        if sim.status.phase == Phase::Degraded {
            break;
        }
    }
    assert_eq!(
        sim.status.phase,
        Phase::Degraded,
        "{:?}",
        sim.status.message
    );
    assert!(
        sim.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("ProgressDeadlineExceeded")
    );
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

fn pause_steps(pause: &str) -> Vec<CanaryStep> {
    vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep {
                duration: Some(pause.into()),
            }),
            ..Default::default()
        },
        CanaryStep {
            set_weight: Some(100),
            ..Default::default()
        },
    ]
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
    assert_eq!(
        sim.status.phase,
        Phase::Degraded,
        "{:?}",
        sim.status.message
    );
    let reason = &sim.status.history.last().unwrap().reason;
    assert!(reason.contains("after the pause ended"), "{reason}");
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn an_untimed_pause_waits_for_a_person_for_as_long_as_it_takes() {
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
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
    let steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
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
    let steps = vec![
        CanaryStep {
            set_weight: Some(25),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
        CanaryStep {
            analysis: Some(AnalysisStep {
                template: "errors".into(),
            }),
            ..Default::default()
        },
        CanaryStep {
            set_weight: Some(100),
            ..Default::default()
        },
    ];
    let mut sim = established("app:v1", 4, steps);
    sim.deploy("app:v2");
    while sim.status.current_step_index != Some(1) {
        sim.tick();
    }
    tick_for(&mut sim, 3);
    assert_eq!(sim.status.current_step_index, Some(1));
    // Shortened to two steps: index 1 would now be past the end, a promotion past every gate.
    sim.spec.strategy.canary.steps = vec![
        CanaryStep {
            set_weight: Some(25),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
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
    assert_eq!(
        sim.events
            .iter()
            .filter(|e| e.reason == "StepsChanged")
            .count(),
        1,
        "restarted once"
    );
}

#[test]
fn a_rollback_never_goes_around_the_gates() {
    let mut sim = established("app:v1", 2, steps_weights(&[50, 100]));
    sim.deploy("app:v2");
    sim.attestation = AttestationGate::Rejected {
        reason: "Missing".into(),
        message: "no attestation".into(),
    };
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
    sim.attestation = AttestationGate::Rejected {
        reason: "Missing".into(),
        message: "no attestation".into(),
    };
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
    sim.spec.strategy.canary.steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        },
    ];
    sim.deploy("app:v2");
    tick_for(&mut sim, 3);
    let desired = sim.revision().hash;
    assert_eq!(sim.status.canary_revision, Some(desired.clone()));
    sim.attestation = AttestationGate::Rejected {
        reason: "Expired".into(),
        message: "older than maxAge".into(),
    };
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
    sim.attestation = AttestationGate::Rejected {
        reason: "Missing".into(),
        message: "no attestation".into(),
    };
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
    assert_eq!(
        sim.events
            .iter()
            .filter(|e| e.reason == "StableReplicaSetLost")
            .count(),
        1,
        "announced once"
    );
}
