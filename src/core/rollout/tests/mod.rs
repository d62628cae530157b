//! Table-driven and simulated tests of the rollout decision, including its invariants.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use super::*;
use crate::api::{
    AnalysisStep, CanaryStep, CanaryStrategy, Component, LabelSelectorSpec, PauseStep, Strategy,
};

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
    freeze: crate::core::freeze::FreezeGate,
    requirements: Vec<crate::core::requirements::Violation>,
    min_bake_time: Option<crate::api::duration::SpecDuration>,
    events: Vec<EventNote>,
    pod_birth: BTreeMap<String, Timestamp>,
    /// The steered routes as observed (routed tests only).
    routes: Vec<crate::core::routing::RouteObservation>,
    /// Routed tests: after each tick the route "web" carries the decision's traffic plan, as
    /// the controller writes it after the status (so the next decision sees it).
    writes_routes: bool,
    /// With `writes_routes`: the route writes fail (an operator killed after each status
    /// write, an API server that refuses the route): the route keeps what it carried.
    route_writes_fail: bool,
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        }),
        ..crate::core::revision::tests::template(image)
    }
}

/// A `setWeight` step.
fn weight(weight: i32) -> CanaryStep {
    CanaryStep {
        set_weight: Some(weight),
        ..Default::default()
    }
}

/// A pause step: timed, or until promoted (`None`).
fn pause(duration: Option<&str>) -> CanaryStep {
    CanaryStep {
        pause: Some(PauseStep {
            duration: duration.map(Into::into),
        }),
        ..Default::default()
    }
}

/// An analysis step of `template`.
fn analysis(template: &str) -> CanaryStep {
    CanaryStep {
        analysis: Some(AnalysisStep {
            template: template.to_string(),
        }),
        ..Default::default()
    }
}

fn steps_weights(weights: &[i32]) -> Vec<CanaryStep> {
    weights.iter().map(|w| weight(*w)).collect()
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
            blue_green: None,
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
            freeze: Default::default(),
            requirements: Vec::new(),
            min_bake_time: None,
            events: Vec::new(),
            pod_birth: BTreeMap::new(),
            routes: Vec::new(),
            writes_routes: false,
            route_writes_fail: false,
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
            requests: self.requests_with_pause_annotation(),
            freeze: self.freeze.clone(),
            requirements: self.requirements.clone(),
            routes: &self.routes,
            min_bake_time: self.min_bake_time.clone(),
            now: self.now,
        })
    }

    /// The requests, with the pause annotation a client would have written for `paused` and
    /// `pause_requester` (`true@bob`, `false@carol`; `true` without a requester; absent when
    /// neither is set), unless a test set it itself.
    fn requests_with_pause_annotation(&self) -> Requests {
        let mut requests = self.requests.clone();
        if requests.pause_annotation.is_none() {
            let state = requests.paused.to_string();
            requests.pause_annotation = match &requests.pause_requester {
                Some(user) => Some(format!("{state}@{user}")),
                None => requests.paused.then_some(state),
            };
        }
        requests
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
                    self.replica_sets.push(created_view(
                        Revision::replica_set_name(
                            "web",
                            revision.single,
                            &action.component,
                            &action.revision,
                        ),
                        action,
                    ));
                }
            }
            if self.check_lockstep {
                self.assert_lockstep();
            }
        }
        self.replica_sets
            .retain(|rs| !decision.delete.contains(&rs.name));
        for (name, rejected) in &decision.mark_rejected {
            let rs = self.replica_sets.iter_mut().find(|rs| &rs.name == name);
            rs.expect("a mark is set on an existing ReplicaSet")
                .rejected = *rejected;
        }
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
                    self.baseline_replica_sets.push(created_view(
                        Revision::baseline_replica_set_name(
                            "web",
                            revision.single,
                            &action.component,
                            &action.revision,
                        ),
                        action,
                    ));
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
        if let Some(plan) = decision.traffic.as_ref().filter(|_| self.writes_routes)
            && !self.route_writes_fail
        {
            self.routes = vec![crate::core::routing::RouteObservation {
                name: "web".into(),
                canary_weight: Some(plan.canary_weight),
                stable_weight: Some(100 - plan.canary_weight),
                owned_rules: plan
                    .header_routes
                    .iter()
                    .map(|h| crate::core::routing::header_rule_name("web", &h.name))
                    .chain(
                        plan.mirror_routes
                            .iter()
                            .map(|m| crate::core::routing::mirror_rule_name("web", &m.name)),
                    )
                    .collect(),
                accepted: "True".into(),
                resolved_refs: "True".into(),
                ..Default::default()
            }];
        }
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
        // A lost `\` line continuation in a format string shows up as a run of spaces.
        let texts = self
            .status
            .message
            .iter()
            .chain(self.status.conditions.iter().map(|c| &c.message))
            .chain(self.status.baseline.iter().map(|b| &b.message))
            .chain(self.status.history.iter().map(|h| &h.reason));
        for text in texts {
            assert!(
                !text.contains("  "),
                "a run of spaces in status text: {text:?}"
            );
        }
        let Some(stable) = self.status.stable_revision.clone() else {
            assert!(self.baseline_replica_sets.is_empty());
            return;
        };
        self.check_baseline_invariants(&stable);
        let total: i32 = self.replica_sets.iter().map(|rs| rs.replicas).sum();
        let wanted: i32 = self.revision().components.iter().map(|c| c.replicas).sum();
        assert!(
            total > 0 || wanted == 0,
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

/// The view of a ReplicaSet `name` the operator has just created for `action`: none ready yet.
fn created_view(name: String, action: &ScaleAction) -> ReplicaSetView {
    ReplicaSetView {
        name,
        revision: action.revision.clone(),
        component: action.component.clone(),
        replicas: action.replicas,
        ready: 0,
        rejected: false,
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

mod autoscale;
mod baseline;
mod bake;
mod bluegreen;
mod basics;
mod components;
mod freeze;
mod helpers;
mod hostile;
mod requests;
mod scaling;
mod traffic;
