//! The routed canary (`trafficRouting`): a share of requests on few pods, the stable at full
//! size, the route weight raised only once the canary's pods are Ready, and a revert that
//! plans weight 0 and no header route (the controller writes that before any scaling).

use super::*;
use crate::core::rollout::ROUTED_DRAIN;
use crate::api::routing::{
    GatewayApiRouting, HeaderMatch, RouteReference, SetCanaryScale, SetHeaderRoute, SetMirrorRoute,
    TrafficRouting,
};

fn routing() -> TrafficRouting {
    TrafficRouting {
        gateway_api: GatewayApiRouting {
            http_routes: vec![RouteReference {
                name: "web".into(),
                rule: None,
            }],
            grpc_routes: Vec::new(),
        },
        ..Default::default()
    }
}

fn header_step() -> CanaryStep {
    CanaryStep {
        set_header_route: Some(SetHeaderRoute {
            name: "testers".into(),
            matches: vec![HeaderMatch {
                header_name: "x-canary".into(),
                value: Some("always".into()),
                regex: None,
            }],
        }),
        ..Default::default()
    }
}

fn scale_step(scale: SetCanaryScale) -> CanaryStep {
    CanaryStep {
        set_canary_scale: Some(scale),
        ..Default::default()
    }
}

fn routed_sim(replicas: i32, steps: Vec<CanaryStep>) -> Sim {
    let mut sim = established("app:v1", replicas, steps);
    sim.spec.strategy.canary.traffic_routing = Some(routing());
    sim
}

#[test]
fn a_one_percent_canary_runs_on_one_pod_and_gets_traffic_only_once_ready() {
    let mut sim = routed_sim(10, vec![weight(1), pause(None), weight(100)]);
    sim.startup_lag = true;
    let (old, new) = sim.deploy_next("app:v2");
    let first = sim.tick();
    let plan = first.traffic.clone().expect("a traffic plan");
    assert_eq!(plan.canary_weight, 0, "no request before a canary pod is Ready");
    assert_eq!((plan.stable_revision.as_str(), plan.canary_revision.as_str()), (old.as_str(), new.as_str()));
    sim.settle(6);
    assert_eq!(sim.replicas_of(&new), 1, "1% of 10 pods is one pod");
    assert_eq!(sim.replicas_of(&old), 10, "the stable keeps all of its pods");
    let at_pause = sim.tick();
    assert_eq!(at_pause.traffic.map(|t| t.canary_weight), Some(1));
    assert_eq!(sim.status.canary_weight, 1);
    assert_eq!(sim.status.phase, Phase::Paused);
}

#[test]
fn set_canary_scale_decouples_pods_from_weight_and_keeps_one_pod_while_reachable() {
    let steps = vec![
        scale_step(SetCanaryScale { replicas: Some(0), ..Default::default() }),
        header_step(),
        weight(5),
        scale_step(SetCanaryScale { weight: Some(50), ..Default::default() }),
        scale_step(SetCanaryScale { replicas: Some(500), ..Default::default() }),
        scale_step(SetCanaryScale { match_traffic_weight: Some(true), ..Default::default() }),
    ];
    // Nothing reaches the canary yet: zero pods are allowed.
    assert_eq!(routed_canary_pods(10, &steps, 0, 0), 0);
    // A header route makes it reachable: one pod at least.
    assert_eq!(routed_canary_pods(10, &steps, 1, 0), 1);
    assert_eq!(routed_canary_pods(10, &steps, 2, 5), 1);
    assert_eq!(routed_canary_pods(10, &steps, 3, 5), 5);
    assert_eq!(routed_canary_pods(10, &steps, 4, 5), 10, "never more than replicas");
    assert_eq!(routed_canary_pods(10, &steps, 5, 5), 1, "ceil(10 x 5%)");
    assert_eq!(routed_canary_pods(0, &steps, 2, 5), 0, "scaled to zero stays zero");
    assert_eq!(routed_canary_pods(i32::MAX, &steps, 5, 100), i32::MAX);
}

#[test]
fn a_revert_plans_weight_zero_and_no_header_route() {
    let mut sim = routed_sim(4, vec![header_step(), weight(50), pause(None), weight(100)]);
    let (old, bad) = sim.deploy_next("app:v2");
    sim.settle(6);
    let paused = sim.tick();
    let plan = paused.traffic.expect("a plan");
    assert_eq!(plan.canary_weight, 50);
    assert_eq!(plan.header_routes.len(), 1);
    sim.faults.insert(bad.clone(), Fault::Crash);
    let mut reverted = None;
    for _ in 0..10 {
        let decision = sim.tick();
        if decision.status.phase == Phase::Degraded {
            reverted = Some(decision);
            break;
        }
    }
    let decision = reverted.expect("reverted");
    let plan = decision.traffic.expect("a plan");
    assert_eq!(plan.canary_weight, 0);
    assert!(plan.header_routes.is_empty());
    assert_eq!(plan.canary_revision, old, "the canary Service selects the stable again");
    // The canary keeps its pods while the Gateway may still send it requests: the route's
    // weight 0 goes first, the pods only after ROUTED_DRAIN (and the decision asks to be woken
    // then).
    assert!(
        !decision.scale.iter().any(|a| a.revision == bad && a.replicas == 0),
        "{:?}",
        decision.scale
    );
    assert!(decision.requeue_after.is_some_and(|r| r <= ROUTED_DRAIN));
    let recorded = decision.status.traffic_routing.clone().expect("status");
    assert_eq!((recorded.canary_weight, recorded.header_routes.len()), (0, 0));
    let drain_ticks = ROUTED_DRAIN.as_secs();
    let mut scaled_down_after = None;
    for second in 1..=drain_ticks + 2 {
        let decision = sim.tick();
        assert_eq!(decision.traffic.map(|p| p.canary_weight), Some(0));
        if decision
            .scale
            .iter()
            .any(|a| a.revision == bad && a.replicas == 0)
        {
            scaled_down_after = Some(second);
            break;
        }
    }
    assert_eq!(
        scaled_down_after,
        Some(drain_ticks),
        "the canary goes once the drain time has passed, not before"
    );
}

/// A routed sim whose route "web" carries each decision's plan after the tick, as the
/// controller writes it.
fn route_writing_sim(replicas: i32, steps: Vec<CanaryStep>) -> Sim {
    let mut sim = routed_sim(replicas, steps);
    sim.writes_routes = true;
    sim.tick();
    sim
}

/// The route's canary weight as the next decision will read it.
fn route_weight(sim: &Sim) -> Option<i32> {
    sim.routes.first().and_then(|r| r.canary_weight)
}

/// Ticks until a decision scales `revision` to 0 pods (at most `ticks`), checking after each
/// that `revision` kept all of its `pods` until then. Returns how long after `since` that
/// decision came, or None.
fn ticks_until_scaled_down(
    sim: &mut Sim,
    revision: &str,
    pods: i32,
    ticks: u64,
    since: &mut Option<Timestamp>,
) -> Option<jiff::SignedDuration> {
    for _ in 0..ticks {
        if since.is_none() && route_weight(sim) == Some(0) {
            *since = Some(sim.now);
        }
        let now = sim.now;
        let decision = sim.tick();
        if decision
            .scale
            .iter()
            .any(|a| a.revision == revision && a.replicas == 0)
        {
            return Some(now.duration_since(since.unwrap_or(now)));
        }
        assert_eq!(sim.replicas_of(revision), pods, "kept until the drain has passed");
    }
    None
}

#[test]
fn a_revert_whose_route_write_fails_keeps_the_canary_pods_until_the_route_shows_weight_zero() {
    let mut sim = route_writing_sim(4, vec![weight(50), pause(None), weight(100)]);
    let (_, bad) = sim.deploy_next("app:v2");
    sim.settle(8);
    assert_eq!(route_weight(&sim), Some(50), "the canary serves half the requests");
    let canary_pods = sim.replicas_of(&bad);
    // Every route write fails from here on (an operator killed after each status write would
    // leave the same state): the Gateway keeps sending half the requests to the canary.
    sim.route_writes_fail = true;
    sim.faults.insert(bad.clone(), Fault::Crash);
    // A crashed pod is still a pod the Gateway sends to: it keeps it, the revert decides
    // weight 0, but the route still says 50 for three drains' time.
    let mut since = None;
    let held_for = ROUTED_DRAIN.as_secs() * 3;
    assert_eq!(
        ticks_until_scaled_down(&mut sim, &bad, canary_pods, held_for, &mut since),
        None,
        "the canary's pods stay while the route still sends to them"
    );
    assert_eq!(sim.status.phase, Phase::Degraded, "reverted meanwhile");
    assert_eq!(sim.status.canary_weight, 0);
    let recorded = sim.status.traffic_routing.clone().expect("status");
    assert_eq!(recorded.drain_started_at, None, "no drain before the route shows weight 0");
    // The route write goes through: the drain counts from the first decision that sees it.
    sim.route_writes_fail = false;
    let after = ticks_until_scaled_down(&mut sim, &bad, canary_pods, 30, &mut since);
    assert_eq!(
        after,
        Some(jiff::SignedDuration::try_from(ROUTED_DRAIN).expect("small")),
        "the drain is counted from the route showing weight 0"
    );
    let started = since.expect("seen").to_string();
    assert_eq!(
        sim.status.traffic_routing.and_then(|t| t.drain_started_at),
        Some(started),
        "status records when the drain started, so a restarted operator holds as long"
    );
}

#[test]
fn a_routed_promotion_keeps_the_old_stable_pods_for_the_drain() {
    // The last step leaves half the requests on the stable: a promotion that scaled it down
    // at once would fail them until the Gateway loads the switch.
    let mut sim = route_writing_sim(4, vec![weight(50)]);
    let (old, new) = sim.deploy_next("app:v2");
    let mut promoted = false;
    for _ in 0..20 {
        let decision = sim.tick();
        assert!(
            !decision.scale.iter().any(|a| a.revision == old && a.replicas < 4),
            "the old stable keeps every pod up to and in the promotion: {:?}",
            decision.scale
        );
        if sim.status.stable_revision.as_deref() == Some(new.as_str()) {
            promoted = true;
            break;
        }
    }
    assert!(promoted, "{:?}", sim.status.message);
    let mut since = None;
    let after = ticks_until_scaled_down(&mut sim, &old, 4, 30, &mut since);
    assert_eq!(
        after,
        Some(jiff::SignedDuration::try_from(ROUTED_DRAIN).expect("small")),
        "the old stable goes a drain after the route shows the switch"
    );
}

#[test]
fn a_route_that_never_shows_the_revert_keeps_the_canary_pods_no_longer_than_the_settle_limit() {
    use crate::core::rollout::ROUTE_SETTLE_LIMIT;
    let mut sim = route_writing_sim(4, vec![weight(50), pause(None), weight(100)]);
    let (_, bad) = sim.deploy_next("app:v2");
    sim.settle(8);
    let canary_pods = sim.replicas_of(&bad);
    sim.route_writes_fail = true;
    sim.requests.abort = Some("a1".into());
    let aborted = sim.now;
    let mut since = None;
    let limit = ROUTE_SETTLE_LIMIT.as_secs();
    assert!(
        ticks_until_scaled_down(&mut sim, &bad, canary_pods, limit + 5, &mut since).is_some(),
        "a route that never shows weight 0 (deleted, refused) does not keep the pods for ever"
    );
    let held = sim.now.duration_since(aborted).as_secs();
    assert!(
        (limit..=limit + 2).contains(&(held as u64)),
        "held {held} s, the settle limit is {limit} s"
    );
}

#[test]
fn without_routing_there_is_no_plan() {
    let mut sim = established("app:v1", 4, vec![weight(50)]);
    sim.deploy_next("app:v2");
    assert!(sim.tick().traffic.is_none());
    assert!(sim.status.traffic_routing.is_none());
}

#[test]
fn a_route_the_gateway_refuses_holds_the_step_and_the_deadline_reverts() {
    use crate::api::routing::RouteKind;
    use crate::core::routing::RouteObservation;
    let mut sim = routed_sim(4, vec![weight(10), weight(50), weight(100)]);
    let (old, new) = sim.deploy_next("app:v2");
    let refused = |canary_weight: i32| RouteObservation {
        kind: RouteKind::Http,
        name: "web".into(),
        canary_weight: Some(canary_weight),
        stable_weight: Some(100 - canary_weight),
        accepted: "False".into(),
        resolved_refs: "True".into(),
        parents_message: "Accepted: listener does not allow this route".into(),
        ..RouteObservation::default()
    };
    sim.routes = vec![refused(10)];
    sim.settle(6);
    assert_eq!(sim.status.current_step_index, Some(0), "the step holds");
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(message.contains("listener does not allow this route"), "{message}");
    assert_eq!(
        sim.status.traffic_routing.as_ref().map(|t| t.routes[0].accepted.clone()),
        Some("False".to_string())
    );
    // Nothing changes: the progress deadline reverts it.
    sim.now = sim.now.checked_add(jiff::SignedDuration::from_mins(11)).unwrap();
    sim.settle(4);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.status.rejected_revisions.contains(&new));
    assert_eq!(sim.replicas_of(&old), 4);
}

fn mirror_step(matches: Vec<HeaderMatch>) -> CanaryStep {
    CanaryStep {
        set_mirror_route: Some(SetMirrorRoute {
            name: "shadow".into(),
            matches,
            percentage: Some(20),
        }),
        ..Default::default()
    }
}

#[test]
fn a_mirror_route_holds_a_canary_pod_is_in_force_until_removed_and_never_outlives_the_rollout() {
    let shadow = vec![HeaderMatch {
        header_name: "x-shadow".into(),
        value: Some("yes".into()),
        regex: None,
    }];
    let steps = vec![
        mirror_step(shadow.clone()),
        pause(None),
        mirror_step(Vec::new()),
        weight(50),
        pause(None),
        weight(100),
    ];
    // Mirrored requests reach the canary at weight 0: it keeps a pod for them, and only then.
    assert_eq!(routed_canary_pods(4, &steps, 0, 0), 1);
    assert_eq!(routed_canary_pods(4, &steps[2..], 0, 0), 0);
    let mut sim = route_writing_sim(4, steps);
    let (old, new) = sim.deploy_next("app:v2");
    sim.settle(6);
    let paused = sim.tick();
    assert_eq!(paused.status.phase, Phase::Paused);
    let plan = paused.traffic.expect("a plan");
    assert_eq!(plan.canary_weight, 0);
    assert_eq!(plan.mirror_routes.len(), 1);
    assert_eq!(plan.mirror_routes[0].matches, shadow);
    assert_eq!(sim.replicas_of(&new), 1);
    let recorded = paused.status.traffic_routing.expect("status");
    assert_eq!(recorded.mirror_routes, vec!["shadow".to_string()]);
    // Restarted mid-pause, the decision keeps what the routes carry.
    let again = sim.tick();
    assert_eq!(again.traffic.map(|p| p.mirror_routes.len()), Some(1));
    // The step without a match removes it, before the weight goes up.
    sim.requests.promote = Some("p1".into());
    sim.settle(6);
    let at_half = sim.tick();
    let plan = at_half.traffic.expect("a plan");
    assert_eq!((plan.canary_weight, plan.mirror_routes.len()), (50, 0));
    sim.requests.promote = Some("p2".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision.as_deref(), Some(new.as_str()));
    let rest = sim.tick();
    let plan = rest.traffic.expect("a plan");
    assert!(plan.mirror_routes.is_empty() && plan.header_routes.is_empty());
    assert_ne!(old, new);
}

#[test]
fn a_revert_plans_no_mirror_route() {
    let shadow = vec![HeaderMatch {
        header_name: "x-shadow".into(),
        value: Some("yes".into()),
        regex: None,
    }];
    let mut sim = route_writing_sim(4, vec![mirror_step(shadow), pause(None), weight(100)]);
    let (_, bad) = sim.deploy_next("app:v2");
    sim.settle(6);
    assert_eq!(sim.tick().traffic.map(|p| p.mirror_routes.len()), Some(1));
    sim.faults.insert(bad, Fault::Crash);
    let reverted = (0..10)
        .map(|_| sim.tick())
        .find(|d| d.status.phase == Phase::Degraded)
        .expect("reverted");
    let plan = reverted.traffic.expect("a plan");
    assert!(plan.mirror_routes.is_empty());
    assert!(!plan.steers());
}
