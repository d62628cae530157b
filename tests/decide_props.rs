//! Property test of the pure rollout decision (issue 12, "hostile specs"): arbitrary specs
//! (within and beyond what admission allows: thresholds up to 1e30, absurd durations, zero and
//! huge replica counts), arbitrary, even forged, statuses, observations and gate outcomes are fed
//! to `decide`. It must never panic, and every decision keeps the invariants below. No cluster.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use safedeploy::api::gates::AnalysisGate;
use safedeploy::api::health::PodView;
use safedeploy::api::rejection::RejectReason;
use safedeploy::api::{
    AnalysisStep, BaselineMode, CanaryStep, CanaryStrategy, HealthGates, LabelSelectorSpec,
    PauseStep, RevisionRecord, SafeDeploymentSpec, SafeDeploymentStatus,
    Strategy as RolloutStrategy, Thresholds,
};
use safedeploy::core::freeze::{FreezeGate, FreezeState, Span};
use safedeploy::core::revision::Revision;
use safedeploy::core::rollout::{
    AttestationGate, MAX_REQUEUE, Observation, ReplicaSetView, Requests, decide,
};
use safedeploy::core::status_budget::{STATUS_BUDGET, size_of};

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

fn any_threshold() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0..100.0f64,
        Just(0.0),
        Just(1e20),
        Just(1e30),
        Just(f64::MAX)
    ]
}

fn any_thresholds() -> impl Strategy<Value = Option<Thresholds>> {
    proptest::option::of(
        (any_threshold(), any_threshold(), any_threshold()).prop_map(|(a, b, c)| {
            let mut v = [a, b, c];
            v.sort_by(f64::total_cmp);
            Thresholds {
                target: v[0],
                acceptable: v[1],
                critical: v[2],
            }
        }),
    )
}

fn any_duration() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        (0u32..120).prop_map(|s| format!("{s}s")),
        Just("99999h".to_string()),
        Just("99999999999999999h".to_string()),
        Just("garbage".to_string()),
    ])
}

fn any_step() -> impl Strategy<Value = CanaryStep> {
    prop_oneof![
        (0i32..=100).prop_map(|w| CanaryStep {
            set_weight: Some(w),
            ..Default::default()
        }),
        any_duration().prop_map(|duration| CanaryStep {
            pause: Some(PauseStep {
                duration: duration.map(Into::into),
            }),
            ..Default::default()
        }),
        Just(CanaryStep {
            analysis: Some(AnalysisStep {
                template: "step".into(),
            }),
            ..Default::default()
        }),
    ]
}

fn any_spec() -> impl Strategy<Value = SafeDeploymentSpec> {
    (
        prop_oneof![0i32..12, Just(10_000), Just(i32::MAX)],
        proptest::collection::vec(any_step(), 0..8),
        proptest::option::of(prop_oneof![0i32..4, Just(i32::MAX), Just(-3)]),
        any::<bool>(),
        any::<bool>(),
        (any_thresholds(), any_thresholds(), any_thresholds()),
        any_duration(),
        proptest::option::of(prop_oneof![0i32..5, Just(i32::MAX), Just(-1)]),
        prop_oneof![Just("app:v1"), Just("app:v2"), Just("app:v3")],
    )
        .prop_map(
            |(
                replicas,
                steps,
                max_unavailable,
                background,
                fresh,
                health,
                deadline,
                history,
                image,
            )| {
                SafeDeploymentSpec {
                    replicas: Some(replicas),
                    selector: LabelSelectorSpec {
                        match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                    },
                    template: Some(template(image)),
                    strategy: RolloutStrategy {
                        canary: CanaryStrategy {
                            steps,
                            max_unavailable,
                            background_analysis: background.then(|| "bg".to_string()),
                            baseline: fresh.then_some(BaselineMode::Fresh),
                            traffic_routing: None,
                        },
                        blue_green: None,
                    },
                    health: Some(HealthGates {
                        restarts: health.0,
                        not_ready_pods: health.1,
                        startup_latency_seconds: health.2,
                        ..Default::default()
                    }),
                    progress_deadline: deadline.map(Into::into),
                    revision_history_limit: history,
                    ..Default::default()
                }
            },
        )
}

/// Revision hashes the observation may mention: the desired one, an older one, a stranger.
#[derive(Debug, Clone)]
struct Hashes {
    desired: String,
    old: String,
}

fn pick(hashes: &Hashes, which: u8) -> String {
    match which % 3 {
        0 => hashes.desired.clone(),
        1 => hashes.old.clone(),
        _ => "forged0000".to_string(),
    }
}

/// Tokens of promote, promote-full, abort, retry; a rollback number; paused.
type RequestTokens = (
    Option<u8>,
    Option<u8>,
    Option<u8>,
    Option<u8>,
    Option<i64>,
    bool,
);

#[derive(Debug, Clone)]
struct World {
    stable: Option<u8>,
    canary: Option<u8>,
    step_index: Option<i32>,
    step_age_seconds: i64,
    rejected: Vec<u8>,
    revision_numbers: Vec<i64>,
    replica_sets: Vec<(u8, i32, i32)>,
    pods: Vec<(u8, bool, i64, i32)>,
    baseline: Vec<(i32, i32)>,
    gates: Vec<(bool, u8)>,
    attestation: u8,
    preflight_fails: bool,
    requests: RequestTokens,
    now_offset: i64,
    /// A freeze window holds the rollout (no break-glass).
    frozen: bool,
}

fn any_world() -> impl Strategy<Value = World> {
    (
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(prop_oneof![-5i32..20, Just(i32::MAX), Just(i32::MIN)]),
            prop_oneof![0i64..4000, Just(-100), Just(i64::MAX / 4)],
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(prop_oneof![0i64..5, Just(i64::MAX)], 0..4),
        ),
        (
            proptest::collection::vec((any::<u8>(), -2i32..15, -2i32..15), 0..5),
            proptest::collection::vec((any::<u8>(), any::<bool>(), 0i64..5000, 0i32..3), 0..12),
            proptest::collection::vec((0i32..6, 0i32..6), 0..2),
            proptest::collection::vec((any::<bool>(), any::<u8>()), 0..3),
            any::<u8>(),
            any::<bool>(),
        ),
        (
            (
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<u8>()),
                proptest::option::of(prop_oneof![0i64..5, Just(i64::MAX)]),
                any::<bool>(),
            ),
            prop_oneof![0i64..100_000, Just(-1_000_000)],
            any::<bool>(),
        ),
    )
        .prop_map(|(a, b, c)| World {
            stable: a.0,
            canary: a.1,
            step_index: a.2,
            step_age_seconds: a.3,
            rejected: a.4,
            revision_numbers: a.5,
            replica_sets: b.0,
            pods: b.1,
            baseline: b.2,
            gates: b.3,
            attestation: b.4,
            preflight_fails: b.5,
            requests: c.0,
            now_offset: c.1,
            frozen: c.2,
        })
}

fn gate(kind: u8) -> AnalysisGate {
    match kind % 5 {
        0 => AnalysisGate::Running,
        1 => AnalysisGate::Passed,
        2 => AnalysisGate::Pending("no measurement".into()),
        3 => AnalysisGate::Inconclusive("provider down".into()),
        _ => AnalysisGate::Failed("error ratio".into()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decide_never_panics_and_keeps_its_invariants(spec in any_spec(), world in any_world()) {
        let desired = Revision::from_spec(&spec).expect("a template");
        let old_spec = SafeDeploymentSpec { template: Some(template("app:v0")), ..spec.clone() };
        let hashes = Hashes {
            desired: desired.hash.clone(),
            old: Revision::from_spec(&old_spec).expect("a template").hash,
        };
        let now = Timestamp::from_second(1_800_000_000 + world.now_offset).expect("time");
        let started = now
            .checked_sub(jiff::SignedDuration::from_secs(world.step_age_seconds.min(1_000_000_000)))
            .unwrap_or(now);
        let status = SafeDeploymentStatus {
            stable_revision: world.stable.map(|w| pick(&hashes, w)),
            canary_revision: world.canary.map(|w| pick(&hashes, w)),
            current_step_index: world.step_index,
            step_started_at: Some(started.to_string()),
            rejected_revisions: world.rejected.iter().map(|w| pick(&hashes, *w)).collect(),
            revisions: world
                .revision_numbers
                .iter()
                .enumerate()
                .map(|(i, number)| RevisionRecord {
                    number: *number,
                    hash: pick(&hashes, u8::try_from(i).unwrap_or(0)),
                    images: Default::default(),
                    config: Default::default(),
                })
                .collect(),
            ..Default::default()
        };
        let replica_sets: Vec<ReplicaSetView> = world
            .replica_sets
            .iter()
            .map(|(w, replicas, ready)| {
                let revision = pick(&hashes, *w);
                ReplicaSetView {
                    name: format!("web-{revision}"),
                    revision,
                    component: "main".into(),
                    replicas: *replicas,
                    ready: *ready,
                    rejected: false,
                }
            })
            .collect();
        let pods: Vec<PodView> = world
            .pods
            .iter()
            .enumerate()
            .map(|(i, (w, ready, age, restarts))| {
                let created = now.checked_sub(jiff::SignedDuration::from_secs(*age)).unwrap_or(now);
                PodView {
                    name: format!("pod-{i}"),
                    revision: pick(&hashes, *w),
                    component: "main".into(),
                    created_at: created,
                    ready: *ready,
                    ready_at: ready.then_some(created),
                    restarts: *restarts,
                    failing_containers: 0,
                    terminating: false,
                }
            })
            .collect();
        let baseline_replica_sets: Vec<ReplicaSetView> = world
            .baseline
            .iter()
            .map(|(replicas, ready)| ReplicaSetView {
                name: format!("web-{}-baseline", hashes.old),
                revision: hashes.old.clone(),
                component: "main".into(),
                replicas: *replicas,
                ready: *ready,
                rejected: false,
            })
            .collect();
        let mut analyses = BTreeMap::new();
        for (background, kind) in &world.gates {
            let name = if *background { "bg" } else { "step" };
            analyses.insert(name.to_string(), gate(*kind));
        }
        let attestation = match world.attestation % 3 {
            0 => AttestationGate::NotRequired("policy".into()),
            1 => AttestationGate::Verified("ok".into()),
            _ => AttestationGate::Rejected { reason: RejectReason::Missing, message: "none".into() },
        };
        let token = |t: Option<u8>| t.map(|t| format!("token-{t}"));
        let requests = Requests {
            promote: token(world.requests.0),
            promote_full: token(world.requests.1),
            abort: token(world.requests.2),
            retry: token(world.requests.3),
            rollback: world.requests.4.map(|n| ("rb".to_string(), n)),
            paused: world.requests.5,
            pause_requester: None,
            pause_annotation: world.requests.5.then(|| "true".to_string()),
        };
        let preflight = if world.preflight_fails {
            Err(vec!["configmap/app is missing".to_string()])
        } else {
            Ok(())
        };
        let observation = Observation {
            name: "web",
            generation: Some(3),
            spec: &spec,
            desired: &desired,
            status: &status,
            replica_sets: &replica_sets,
            pods: &pods,
            baseline_replica_sets: &baseline_replica_sets,
            baseline_pods: &[],
            attestation: attestation.clone(),
            preflight: preflight.clone(),
            analyses,
            requests,
            freeze: if world.frozen {
                FreezeGate {
                    state: FreezeState::Frozen(Span {
                        window: "w".into(),
                        reason: None,
                        start: None,
                        end: now.checked_add(jiff::SignedDuration::from_mins(5)).ok(),
                    }),
                    break_glass: Default::default(),
                }
            } else {
                FreezeGate::default()
            },
            requirements: Vec::new(),
            routes: &[],
            min_bake_time: None,
            now,
        };
        let decision = decide(&observation);

        let replicas = spec.replicas.unwrap_or(1).max(0);
        for action in decision.scale.iter().chain(&decision.baseline_scale) {
            prop_assert!(action.replicas >= 0, "{action:?}");
            prop_assert!(action.replicas <= replicas.max(
                replica_sets.iter().map(|rs| rs.replicas).max().unwrap_or(0)
            ), "{action:?}");
        }
        if let Some(wait) = decision.requeue_after {
            prop_assert!(wait <= MAX_REQUEUE, "{wait:?}");
        }
        prop_assert!(size_of(&decision.status) <= STATUS_BUDGET);
        // What the decision keeps running is never deleted.
        for name in &decision.delete {
            let rs = replica_sets.iter().find(|rs| &rs.name == name);
            prop_assert!(rs.is_some_and(|rs| rs.replicas == 0), "deletes only idle ReplicaSets");
            let revision = rs.map(|rs| rs.revision.clone()).unwrap_or_default();
            prop_assert!(Some(&revision) != decision.status.stable_revision.as_ref());
            prop_assert!(revision != hashes.desired);
        }
        // A revision the gates refuse is never scaled up while another one is stable.
        let gates_refuse = matches!(attestation, AttestationGate::Rejected { .. }) || preflight.is_err();
        let has_stable = status.stable_revision.is_some();
        if gates_refuse && has_stable && status.stable_revision.as_deref() != Some(hashes.desired.as_str()) {
            let observed = |r: &str| replica_sets.iter().filter(|rs| rs.revision == r).map(|rs| rs.replicas).max().unwrap_or(0);
            for action in &decision.scale {
                if action.revision == hashes.desired {
                    prop_assert!(action.replicas <= observed(&hashes.desired).max(0), "blocked revision scaled up: {action:?}");
                }
            }
        }
        // A freeze lets no new canary start, no step complete and nothing be promoted (a
        // rollback, which is never frozen, aside); whatever it holds, it may still revert.
        if world.frozen && status.stable_revision.is_some() {
            let desired = hashes.desired.as_str();
            let rollback = decision.status.history.iter().any(|e| e.outcome == "RolledBack");
            let was_canary = status.canary_revision.as_deref() == Some(desired);
            prop_assert!(
                was_canary || decision.status.canary_revision.as_deref() != Some(desired),
                "a canary started while frozen"
            );
            prop_assert!(
                rollback
                    || status.stable_revision.as_deref() == Some(desired)
                    || decision.status.stable_revision.as_deref() != Some(desired),
                "promoted while frozen"
            );
            if was_canary && decision.status.canary_revision.as_deref() == Some(desired) {
                prop_assert!(
                    decision.status.current_step_index.unwrap_or(0).max(0)
                        <= status.current_step_index.unwrap_or(0).max(0),
                    "a step completed while frozen: {:?} -> {:?}",
                    status.current_step_index,
                    decision.status.current_step_index
                );
            }
        }
        // A promotion only happens with the background analysis passing, or a person's promote-full.
        let promoted = decision.status.stable_revision.as_deref() == Some(hashes.desired.as_str())
            && status.stable_revision.as_deref() != Some(hashes.desired.as_str())
            && status.stable_revision.is_some();
        if promoted && spec.strategy.canary.background_analysis.is_some() && world.requests.1.is_none() {
            let rollback = decision.status.history.iter().any(|e| e.outcome == "RolledBack");
            let bg = observation.analyses.get("bg");
            prop_assert!(
                rollback || matches!(bg, Some(AnalysisGate::Running | AnalysisGate::Passed)),
                "promoted with background {bg:?}"
            );
        }
    }
}
