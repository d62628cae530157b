//! Blue-green as canary steps. `strategy.blueGreen` is read as a routed canary with no route:
//! the steps below, the active Service in the stable Service's place and the preview Service
//! in the canary's. So attestation, preflight, health gates, analyses, freeze and bake
//! governance, coupled components, promote/abort requests, crash recovery and the history are
//! the canary's, decided by the same code; only two things differ, both here:
//!
//! - the active Service selects the new revision once the "switch" step (`setWeight: 100`) has
//!   been reached with the new revision fully Ready, and the old one otherwise (a revert plans
//!   weight 0, so the switch back is in the first decision that reverts, before any scaling);
//! - the old revision keeps its pods `scaleDownDelaySeconds` after the rollout finished
//!   (instead of the routed canary's fixed drain).
//!
//! The steps: `setCanaryScale: {weight: 100}` (the new revision at full size behind the preview
//! Service; the stable keeps its full size, as a routed stable does until the promotion), one
//! `analysis` per pre-promotion template, a `pause` (untimed for a manual switch, timed for
//! `autoPromotionSeconds`, none for an immediate switch), `setWeight: 100` (the switch, which
//! completes only once every pod of the new revision is Ready), one `analysis` per
//! post-promotion template. The promotion after the last step is the canary's: the old revision
//! stays at full size until the post-promotion analyses passed.

use std::borrow::Cow;

use crate::api::bluegreen::BlueGreenStrategy;
use crate::api::routing::{GatewayApiRouting, SetCanaryScale, TrafficRouting};
use crate::api::{AnalysisStep, CanaryStep, CanaryStrategy, PauseStep, SafeDeploymentSpec};

/// The canary steps and routing a blue-green strategy stands for (see the module doc).
pub fn as_canary(blue_green: &BlueGreenStrategy, name: &str) -> CanaryStrategy {
    let mut steps = vec![CanaryStep {
        set_canary_scale: Some(SetCanaryScale {
            weight: Some(100),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let analysis = |template: &String| CanaryStep {
        analysis: Some(AnalysisStep {
            template: template.clone(),
        }),
        ..Default::default()
    };
    steps.extend(blue_green.pre_promotion_analysis.iter().map(analysis));
    if blue_green.auto_promotion_enabled == Some(false) {
        steps.push(CanaryStep {
            pause: Some(PauseStep { duration: None }),
            ..Default::default()
        });
    } else if let Some(seconds) = blue_green.auto_promotion_seconds {
        steps.push(CanaryStep {
            pause: Some(PauseStep {
                duration: Some(format!("{}s", seconds.max(1)).into()),
            }),
            ..Default::default()
        });
    }
    steps.push(CanaryStep {
        set_weight: Some(100),
        ..Default::default()
    });
    steps.extend(blue_green.post_promotion_analysis.iter().map(analysis));
    CanaryStrategy {
        steps,
        max_unavailable: blue_green.max_unavailable,
        background_analysis: None,
        baseline: None,
        traffic_routing: Some(TrafficRouting {
            gateway_api: GatewayApiRouting::default(),
            stable_service: Some(blue_green.active_service_name(name)),
            canary_service: Some(blue_green.preview_service_name(name)),
            port: blue_green.port,
            target_port: blue_green.target_port,
        }),
    }
}

/// The spec as the decision and the controller read it: a blue-green spec with its canary
/// strategy filled in by [`as_canary`] (borrowed unchanged otherwise, or when already filled).
pub fn effective_spec<'a>(spec: &'a SafeDeploymentSpec, name: &str) -> Cow<'a, SafeDeploymentSpec> {
    match &spec.strategy.blue_green {
        Some(blue_green) if spec.strategy.canary.is_unset() => {
            let mut filled = spec.clone();
            filled.strategy.canary = as_canary(blue_green, name);
            Cow::Owned(filled)
        }
        _ => Cow::Borrowed(spec),
    }
}

/// Which revision the active Service selects: the new one once the routes' weight (here: the
/// switch) is 100, the stable one before and after a revert.
pub fn active_revision<'a>(stable: &'a str, canary: &'a str, switched_weight: i32) -> &'a str {
    if switched_weight >= 100 { canary } else { stable }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy() -> BlueGreenStrategy {
        BlueGreenStrategy {
            pre_promotion_analysis: vec!["smoke".into()],
            post_promotion_analysis: vec!["errors".into()],
            ..Default::default()
        }
    }

    fn kinds(canary: &CanaryStrategy) -> Vec<String> {
        canary
            .steps
            .iter()
            .map(|s| {
                if let Some(scale) = &s.set_canary_scale {
                    format!("scale{}", scale.weight.unwrap_or(-1))
                } else if let Some(w) = s.set_weight {
                    format!("switch{w}")
                } else if let Some(a) = &s.analysis {
                    format!("analysis:{}", a.template)
                } else if let Some(p) = &s.pause {
                    format!("pause:{}", p.duration.as_ref().map(|d| d.as_str()).unwrap_or("manual"))
                } else {
                    "?".into()
                }
            })
            .collect()
    }

    #[test]
    fn automatic_switch_right_after_the_pre_promotion_analysis() {
        let canary = as_canary(&strategy(), "web");
        assert_eq!(
            kinds(&canary),
            ["scale100", "analysis:smoke", "switch100", "analysis:errors"]
        );
        let routing = canary.traffic_routing.expect("routing");
        assert_eq!(routing.stable_service.as_deref(), Some("web-active"));
        assert_eq!(routing.canary_service.as_deref(), Some("web-preview"));
        assert!(routing.routes().next().is_none(), "blue-green steers no route");
    }

    #[test]
    fn manual_switch_is_an_untimed_pause_and_auto_seconds_a_timed_one() {
        let manual = BlueGreenStrategy {
            auto_promotion_enabled: Some(false),
            ..strategy()
        };
        assert_eq!(
            kinds(&as_canary(&manual, "web")),
            ["scale100", "analysis:smoke", "pause:manual", "switch100", "analysis:errors"]
        );
        let timed = BlueGreenStrategy {
            auto_promotion_seconds: Some(90),
            pre_promotion_analysis: Vec::new(),
            post_promotion_analysis: Vec::new(),
            ..strategy()
        };
        assert_eq!(kinds(&as_canary(&timed, "web")), ["scale100", "pause:90s", "switch100"]);
    }

    #[test]
    fn the_active_service_moves_only_at_the_full_switch() {
        assert_eq!(active_revision("blue", "green", 0), "blue");
        assert_eq!(active_revision("blue", "green", 99), "blue");
        assert_eq!(active_revision("blue", "green", 100), "green");
    }

    #[test]
    fn a_canary_spec_is_left_as_it_is() {
        let spec = SafeDeploymentSpec::default();
        assert!(matches!(effective_spec(&spec, "web"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_scale_down_delay_is_bounded_whatever_is_stored() {
        let huge = BlueGreenStrategy {
            scale_down_delay_seconds: Some(i32::MAX),
            ..Default::default()
        };
        assert_eq!(huge.scale_down_delay().as_secs(), 3600);
        let negative = BlueGreenStrategy {
            scale_down_delay_seconds: Some(-5),
            ..Default::default()
        };
        assert_eq!(negative.scale_down_delay().as_secs(), 0);
        assert_eq!(BlueGreenStrategy::default().scale_down_delay().as_secs(), 30);
    }
}
