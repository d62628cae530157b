//! The policy's rollout requirements checked against a SafeDeployment's spec (pure): a minimum
//! number of steps, a largest weight jump, a required background analysis or metric, a minimum
//! bake time, a fresh baseline in named namespaces. Each violation names its requirement, as
//! status, events and the chart's admission policy show it.

use std::fmt;
use std::time::Duration;

use crate::api::requirements::RolloutRequirements;
use crate::api::{BaselineMode, SafeDeploymentSpec};

/// One requirement a spec falls short of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The requirement's field name in the policy (`minSteps`, `maxWeightStep`, …).
    pub requirement: &'static str,
    /// What is required and what the spec has.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.requirement, self.message)
    }
}

/// Every requirement of `requirements` that `spec` (in `namespace`) falls short of, in the
/// order of the policy's fields.
pub fn check(
    requirements: &RolloutRequirements,
    spec: &SafeDeploymentSpec,
    namespace: &str,
) -> Vec<Violation> {
    let canary = &spec.strategy.canary;
    let weights: Vec<i32> = canary.steps.iter().filter_map(|s| s.set_weight).collect();
    let mut violations = Vec::new();
    if let Some(min) = requirements.min_steps {
        let count = i32::try_from(weights.len()).unwrap_or(i32::MAX);
        if count < min {
            violations.push(Violation {
                requirement: "minSteps",
                message: format!(
                    "at least {min} setWeight steps are required, the spec has {count}"
                ),
            });
        }
    }
    if let Some(max) = requirements.max_weight_step {
        let mut previous = 0;
        for weight in weights.iter().copied().chain(std::iter::once(100)) {
            let jump = weight.saturating_sub(previous);
            if jump > max {
                let to = if weight == 100 && weights.last() != Some(&100) {
                    "100 (the promotion)".to_string()
                } else {
                    weight.to_string()
                };
                violations.push(Violation {
                    requirement: "maxWeightStep",
                    message: format!(
                        "the weight may rise by at most {max} per step, the spec goes from {previous} to {to}"
                    ),
                });
                break;
            }
            previous = weight;
        }
    }
    if requirements.require_background_analysis && canary.background_analysis.is_none() {
        violations.push(Violation {
            requirement: "requireBackgroundAnalysis",
            message: "strategy.canary.backgroundAnalysis must name an analysis".into(),
        });
    }
    let used: Vec<&str> = canary
        .background_analysis
        .iter()
        .map(String::as_str)
        .chain(
            canary
                .steps
                .iter()
                .filter_map(|s| s.analysis.as_ref())
                .map(|a| a.template.as_str()),
        )
        .collect();
    for metric in &requirements.required_metrics {
        let measured = spec
            .analyses
            .iter()
            .filter(|a| used.contains(&a.name.as_str()))
            .flat_map(|a| a.metrics.iter())
            .any(|m| &m.name == metric && !m.dry_run);
        if !measured {
            violations.push(Violation {
                requirement: "requiredMetrics",
                message: format!(
                    "metric {metric} must be measured (not dryRun) by the background analysis or a step's analysis"
                ),
            });
        }
    }
    if let Some(min) = &requirements.min_bake_time {
        // A bound that does not parse requires what admission would (its own rule reports it).
        let min_time = min.parse().unwrap_or(Duration::MAX);
        let baked: Duration = canary
            .steps
            .iter()
            .filter_map(|s| s.pause.as_ref()?.duration.as_ref()?.parse().ok())
            .fold(Duration::ZERO, Duration::saturating_add);
        if baked < min_time {
            violations.push(Violation {
                requirement: "minBakeTime",
                message: format!(
                    "the timed pause steps must add up to at least {min}, the spec's add up to {}s",
                    baked.as_secs()
                ),
            });
        }
    }
    if requirements
        .require_fresh_baseline_in
        .iter()
        .any(|n| n == namespace)
        && canary.baseline != Some(BaselineMode::Fresh)
    {
        violations.push(Violation {
            requirement: "requireFreshBaselineIn",
            message: format!(
                "SafeDeployments in namespace {namespace} must set strategy.canary.baseline: Fresh"
            ),
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::analysis::AnalysisTemplate;
    use crate::api::{AnalysisStep, CanaryStep, PauseStep};

    fn spec(steps: serde_json::Value, extra: serde_json::Value) -> SafeDeploymentSpec {
        let mut canary = serde_json::json!({"steps": steps});
        if let (Some(c), Some(e)) = (canary.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        serde_json::from_value(serde_json::json!({
            "replicas": 4,
            "selector": {"matchLabels": {"app": "a"}},
            "strategy": {"canary": canary}
        }))
        .unwrap()
    }

    fn names(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.requirement).collect()
    }

    #[test]
    fn steps_and_weight_jumps_including_the_promotion() {
        let requirements = RolloutRequirements {
            min_steps: Some(3),
            max_weight_step: Some(30),
            ..RolloutRequirements::default()
        };
        let two = spec(
            serde_json::json!([{"setWeight": 20}, {"setWeight": 50}]),
            serde_json::json!({}),
        );
        let violations = check(&requirements, &two, "ns");
        assert_eq!(names(&violations), ["minSteps", "maxWeightStep"]);
        assert!(
            violations[1]
                .message
                .contains("from 50 to 100 (the promotion)"),
            "{}",
            violations[1]
        );
        let first_jump = spec(
            serde_json::json!([{"setWeight": 40}, {"setWeight": 60}, {"setWeight": 80}]),
            serde_json::json!({}),
        );
        assert!(
            check(&requirements, &first_jump, "ns")[0]
                .message
                .contains("from 0 to 40")
        );
        let fine = spec(
            serde_json::json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"setWeight": 75}]),
            serde_json::json!({}),
        );
        assert_eq!(check(&requirements, &fine, "ns"), []);
    }

    #[test]
    fn analyses_metrics_bake_time_and_fresh_baseline() {
        let requirements = RolloutRequirements {
            require_background_analysis: true,
            required_metrics: vec!["error-rate".into()],
            min_bake_time: Some("10m".into()),
            require_fresh_baseline_in: vec!["payments".into()],
            ..RolloutRequirements::default()
        };
        let bare = spec(
            serde_json::json!([{"setWeight": 50}, {"pause": {"duration": "5m"}}, {"pause": {}}]),
            serde_json::json!({}),
        );
        assert_eq!(
            names(&check(&requirements, &bare, "payments")),
            [
                "requireBackgroundAnalysis",
                "requiredMetrics",
                "minBakeTime",
                "requireFreshBaselineIn"
            ]
        );
        // Another namespace needs no fresh baseline.
        assert!(!names(&check(&requirements, &bare, "web")).contains(&"requireFreshBaselineIn"));
        // A dry-run metric of the right name, or one in an unused template, does not count.
        let mut with_metric = bare.clone();
        let template = |name: &str, dry_run: bool| -> AnalysisTemplate {
            serde_json::from_value(serde_json::json!({
                "name": name,
                "metrics": [{"name": "error-rate", "dryRun": dry_run,
                             "provider": {"kubernetes": {"signal": "restarts"}},
                             "thresholds": {"target": 0, "acceptable": 1, "critical": 3}}]
            }))
            .unwrap()
        };
        with_metric.analyses = vec![template("bg", true), template("unused", false)];
        with_metric.strategy.canary.background_analysis = Some("bg".into());
        assert!(names(&check(&requirements, &with_metric, "web")).contains(&"requiredMetrics"));
        with_metric.analyses = vec![template("bg", false)];
        with_metric.strategy.canary.steps.push(CanaryStep {
            pause: Some(PauseStep {
                duration: Some("5m".into()),
            }),
            ..CanaryStep::default()
        });
        with_metric.strategy.canary.baseline = Some(BaselineMode::Fresh);
        assert_eq!(check(&requirements, &with_metric, "payments"), []);
        // A step's analysis counts as well as the background one.
        let mut by_step = with_metric.clone();
        by_step.strategy.canary.background_analysis = None;
        by_step.strategy.canary.steps.push(CanaryStep {
            analysis: Some(AnalysisStep {
                template: "bg".into(),
            }),
            ..CanaryStep::default()
        });
        assert_eq!(
            names(&check(&requirements, &by_step, "payments")),
            ["requireBackgroundAnalysis"]
        );
    }
}
