//! Blue-green (`strategy.blueGreen`) through the canary's decision path: the preview selects
//! green at full size before the switch, the active Service moves only once green is fully
//! Ready, blue keeps its full size until the post-promotion analyses passed and then for the
//! scale-down delay, and a post-promotion failure switches back in the first decision that
//! sees it.

use super::*;
use crate::api::bluegreen::BlueGreenStrategy;

fn blue_green_sim(replicas: i32, strategy: BlueGreenStrategy) -> Sim {
    let mut sim = established("app:v1", replicas, vec![weight(100)]);
    sim.spec.strategy.canary = CanaryStrategy::default();
    sim.spec.strategy.blue_green = Some(strategy);
    sim.settle(4);
    sim
}

fn with_analyses() -> BlueGreenStrategy {
    BlueGreenStrategy {
        pre_promotion_analysis: vec!["smoke".into()],
        post_promotion_analysis: vec!["errors".into()],
        scale_down_delay_seconds: Some(20),
        ..Default::default()
    }
}

/// `(active, preview)` revisions the decision asks the Services to select.
fn services(decision: &Decision) -> (String, String) {
    let plan = decision.traffic.clone().expect("blue-green always plans the Services");
    (plan.stable_revision, plan.canary_revision)
}

#[test]
fn at_rest_both_services_select_the_stable_revision() {
    let mut sim = blue_green_sim(3, with_analyses());
    let stable = sim.status.stable_revision.clone().unwrap_or_default();
    let decision = sim.tick();
    assert_eq!(services(&decision), (stable.clone(), stable));
}

#[test]
fn preview_sees_green_at_full_size_before_the_switch_and_blue_keeps_its_capacity() {
    let mut sim = blue_green_sim(4, with_analyses());
    let (blue, green) = sim.deploy_next("app:v2");
    sim.startup_lag = true;
    let first = sim.tick();
    assert_eq!(services(&first), (blue.clone(), green.clone()), "preview first");
    sim.settle(8);
    assert_eq!(sim.replicas_of(&green), 4, "green runs at full size behind the preview");
    assert_eq!(sim.ready_of(&blue), 4, "blue keeps every pod");
    // Waiting for the pre-promotion analysis: nothing switched.
    assert_eq!(sim.status.current_step_index, Some(1));
    assert_eq!(services(&sim.tick()), (blue.clone(), green.clone()));
    sim.analyses.insert("smoke".into(), AnalysisGate::Passed);
    sim.settle(6);
    let decision = sim.tick();
    assert_eq!(services(&decision), (green.clone(), green.clone()), "switched");
    assert_eq!(sim.ready_of(&blue), 4, "blue stays up for a switch back");
    assert_eq!(sim.status.canary_revision.as_deref(), Some(green.as_str()));
}

#[test]
fn a_post_promotion_failure_switches_back_at_once_and_records_the_revert() {
    let mut sim = blue_green_sim(4, with_analyses());
    let (blue, green) = sim.deploy_next("app:v2");
    sim.analyses.insert("smoke".into(), AnalysisGate::Passed);
    sim.settle(10);
    assert_eq!(services(&sim.tick()).0, green, "switched");
    sim.analyses.insert("errors".into(), AnalysisGate::Failed("5xx at 9%".into()));
    let reverted = sim.tick();
    assert_eq!(
        services(&reverted),
        (blue.clone(), blue.clone()),
        "the first decision that sees the failure points the active Service back at blue"
    );
    assert_eq!(reverted.status.phase, Phase::Degraded);
    assert!(
        !reverted.scale.iter().any(|a| a.revision == blue && a.replicas < 4),
        "blue is never scaled down: {:?}",
        reverted.scale
    );
    sim.assert_reverted_because("analysis errors failed");
    assert!(sim.status.rejected_revisions.contains(&green));
}

#[test]
fn a_pre_promotion_failure_never_switches() {
    let mut sim = blue_green_sim(2, with_analyses());
    let (blue, _green) = sim.deploy_next("app:v2");
    sim.settle(6);
    sim.analyses.insert("smoke".into(), AnalysisGate::Failed("smoke test failed".into()));
    let decision = sim.tick();
    assert_eq!(services(&decision), (blue.clone(), blue));
    assert_eq!(sim.status.phase, Phase::Degraded);
}

#[test]
fn a_manual_switch_waits_for_promote_and_records_the_actor() {
    let strategy = BlueGreenStrategy {
        auto_promotion_enabled: Some(false),
        ..Default::default()
    };
    let mut sim = blue_green_sim(2, strategy);
    let (blue, green) = sim.deploy_next("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Paused);
    sim.now = sim.now.checked_add(jiff::SignedDuration::from_hours(2)).unwrap();
    assert_eq!(services(&sim.tick()).0, blue, "an untimed pause waits for a person");
    sim.requests.promote = Some("p1@dave".into());
    sim.settle(4);
    assert_eq!(sim.status.stable_revision.as_deref(), Some(green.as_str()));
    assert_eq!(services(&sim.tick()).0, green);
    let promoted_by_dave = sim
        .status
        .history
        .iter()
        .any(|e| e.outcome == "PromoteRequested" && e.actor.as_deref() == Some("dave"));
    assert!(promoted_by_dave, "{:?}", sim.status.history);
}

#[test]
fn auto_promotion_seconds_switches_after_its_time() {
    let strategy = BlueGreenStrategy {
        auto_promotion_seconds: Some(60),
        ..Default::default()
    };
    let mut sim = blue_green_sim(2, strategy);
    let (blue, green) = sim.deploy_next("app:v2");
    sim.settle(10);
    assert_eq!(services(&sim.tick()).0, blue);
    sim.now = sim.now.checked_add(jiff::SignedDuration::from_secs(61)).unwrap();
    sim.settle(6);
    assert_eq!(services(&sim.tick()).0, green);
}

#[test]
fn blue_is_scaled_down_only_after_the_scale_down_delay() {
    let strategy = BlueGreenStrategy {
        scale_down_delay_seconds: Some(20),
        ..Default::default()
    };
    let mut sim = blue_green_sim(3, strategy);
    let (blue, green) = sim.deploy_next("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.stable_revision.as_deref(), Some(green.as_str()));
    let promoted_at: Timestamp = sim
        .last_history()
        .finished_at
        .as_deref()
        .and_then(|t| t.parse().ok())
        .expect("the promotion's time");
    let mut gone_after = None;
    for _ in 0..40 {
        // Each tick is one second later.
        let now = sim.now;
        sim.tick();
        if sim.replicas_of(&blue) == 0 {
            gone_after = Some(now.duration_since(promoted_at).as_secs());
            break;
        }
        assert_eq!(sim.ready_of(&blue), 3, "blue keeps its pods during the delay");
    }
    assert_eq!(gone_after, Some(20), "blue goes once the delay has passed, not before");
}

#[test]
fn a_stored_blue_green_spec_without_template_names_cannot_panic() {
    // Hostile: every optional field at its extreme, as an object stored before the schema
    // bounded it might carry.
    let strategy = BlueGreenStrategy {
        auto_promotion_seconds: Some(i32::MIN),
        scale_down_delay_seconds: Some(i32::MIN),
        max_unavailable: Some(i32::MAX),
        pre_promotion_analysis: vec![String::new()],
        ..Default::default()
    };
    let mut sim = blue_green_sim(2, strategy);
    sim.deploy_next("app:v2");
    sim.settle(10);
}
