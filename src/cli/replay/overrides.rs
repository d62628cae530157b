//! `--set PATH=VALUE` of `safedeploy replay`: changes to the analyses' thresholds and judge
//! settings, so a user can see what other settings would have done on the same data. Bounded:
//! only the paths listed in `TEMPLATE_FIELDS` and `METRIC_FIELDS` exist, each with the kind
//! of value it takes; anything else is refused with the list of what may be set. The changed
//! template is checked again as the operator checks it (`analysis::run::schedule`).

use serde_json::{Map, Value};

use crate::analysis::run::schedule;
use crate::api::SafeDeploymentSpec;
use crate::api::analysis::Scoring;

/// The kind of value a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A finite number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Bool,
    /// A duration as the API writes it (`30s`, `2m`).
    Duration,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// Template fields that may be set: the path below `analyses.<template>.`.
const TEMPLATE_FIELDS: &[(&str, Kind)] = &[
    ("interval", Kind::Duration),
    ("initialDelay", Kind::Duration),
    ("count", Kind::Integer),
    ("duration", Kind::Duration),
    ("scoring.passThreshold", Kind::Number),
    ("scoring.marginalThreshold", Kind::Number),
];

const POLICIES: &[&str] = &["Fail", "Inconclusive", "Ignore"];

/// Metric fields that may be set: the path below `analyses.<template>.metrics.<metric>.`.
const METRIC_FIELDS: &[(&str, Kind)] = &[
    ("thresholds.target", Kind::Number),
    ("thresholds.acceptable", Kind::Number),
    ("thresholds.critical", Kind::Number),
    (
        "direction",
        Kind::OneOf(&["lowerIsBetter", "higherIsBetter"]),
    ),
    ("relative.maxRegressionPercent", Kind::Number),
    ("relative.criticalRegressionPercent", Kind::Number),
    ("relative.minAbsoluteChange", Kind::Number),
    ("statistical.mannWhitney.confidence", Kind::Number),
    ("statistical.mannWhitney.minEffectPercent", Kind::Number),
    ("statistical.mannWhitney.minSamples", Kind::Integer),
    ("outliers.factor", Kind::Number),
    ("minimumTraffic.minimum", Kind::Number),
    ("onError", Kind::OneOf(POLICIES)),
    ("onNoData", Kind::OneOf(POLICIES)),
    ("onNaN", Kind::OneOf(POLICIES)),
    ("consecutiveErrorLimit", Kind::Integer),
    ("weight", Kind::Integer),
    ("critical", Kind::Bool),
    ("dryRun", Kind::Bool),
];

/// A `--set` that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--set {setting}: {reason}")]
pub struct OverrideError {
    /// The setting as given.
    pub setting: String,
    /// Why it is refused.
    pub reason: String,
}

/// Every path `--set` accepts, for the error message and `--help`.
pub fn settable_paths() -> String {
    let template = TEMPLATE_FIELDS
        .iter()
        .map(|(field, _)| format!("analyses.<template>.{field}"));
    let metric = METRIC_FIELDS
        .iter()
        .map(|(field, _)| format!("analyses.<template>.metrics.<metric>.{field}"));
    template.chain(metric).collect::<Vec<_>>().join(", ")
}

/// Applies each `PATH=VALUE` to `spec`, in order.
pub fn apply(
    spec: &SafeDeploymentSpec,
    settings: &[String],
) -> Result<SafeDeploymentSpec, OverrideError> {
    let mut spec = spec.clone();
    let mut touched = Vec::new();
    for setting in settings {
        let (changed, template) = apply_one(&spec, setting)?;
        spec = changed;
        touched.push((template, setting.as_str()));
    }
    // Checked once all are applied, so that two settings may move thresholds past each other.
    for (index, _) in &touched {
        if let Some(template) = spec.analyses.get(*index)
            && let Err(error) = schedule(template)
        {
            let settings: Vec<&str> = touched
                .iter()
                .filter(|(i, _)| i == index)
                .map(|(_, s)| *s)
                .collect();
            return Err(OverrideError {
                setting: settings.join(" --set "),
                reason: error.to_string(),
            });
        }
    }
    Ok(spec)
}

fn apply_one(
    spec: &SafeDeploymentSpec,
    setting: &str,
) -> Result<(SafeDeploymentSpec, usize), OverrideError> {
    let refuse = |reason: String| OverrideError {
        setting: setting.to_string(),
        reason,
    };
    let (path, text) = setting
        .split_once('=')
        .ok_or_else(|| refuse("not PATH=VALUE".into()))?;
    let rest = path.strip_prefix("analyses.").ok_or_else(|| {
        refuse(format!(
            "unknown path {path:?}; the paths that may be set are {}",
            settable_paths()
        ))
    })?;
    let template_names: Vec<&str> = spec.analyses.iter().map(|t| t.name.as_str()).collect();
    let (template_index, rest) = split_name(rest, &template_names).ok_or_else(|| {
        refuse(format!(
            "no analysis template named in {path:?}; the manifest's templates are {template_names:?}"
        ))
    })?;
    let template = spec
        .analyses
        .get(template_index)
        .ok_or_else(|| refuse("no such template".into()))?;
    let mut template_value = serde_json::to_value(template)
        .map_err(|e| refuse(format!("cannot read the template: {e}")))?;
    let (metric_index, field, kind) = if let Some(metric_rest) = rest.strip_prefix("metrics.") {
        let metric_names: Vec<&str> = template.metrics.iter().map(|m| m.name.as_str()).collect();
        let (metric_index, field) = split_name(metric_rest, &metric_names).ok_or_else(|| {
            refuse(format!(
                "no metric of template {:?} named in {path:?}; its metrics are {metric_names:?}",
                template.name
            ))
        })?;
        let kind = lookup(METRIC_FIELDS, field).ok_or_else(|| {
            refuse(format!(
                "a metric has no settable field {field:?}; the paths that may be set are {}",
                settable_paths()
            ))
        })?;
        (Some(metric_index), field, kind)
    } else {
        let kind = lookup(TEMPLATE_FIELDS, rest).ok_or_else(|| {
            refuse(format!(
                "a template has no settable field {rest:?}; the paths that may be set are {}",
                settable_paths()
            ))
        })?;
        (None, rest, kind)
    };
    let value = parse_value(text, kind).map_err(refuse)?;
    let object = match metric_index {
        Some(index) => template_value
            .get_mut("metrics")
            .and_then(|m| m.get_mut(index)),
        None => Some(&mut template_value),
    }
    .ok_or_else(|| refuse("no such metric".into()))?;
    set_field(object, field, value).map_err(refuse)?;
    let changed = serde_json::from_value(template_value)
        .map_err(|e| refuse(format!("the changed template does not read: {e}")))?;
    let mut spec = spec.clone();
    if let Some(slot) = spec.analyses.get_mut(template_index) {
        *slot = changed;
    }
    Ok((spec, template_index))
}

/// The name among `names` that `text` starts with (followed by a dot), the longest if several
/// do, with what follows the dot.
fn split_name<'t>(text: &'t str, names: &[&str]) -> Option<(usize, &'t str)> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            text.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
                .map(|rest| (i, name.len(), rest))
        })
        .max_by_key(|(_, len, _)| *len)
        .map(|(i, _, rest)| (i, rest))
}

fn lookup(fields: &[(&str, Kind)], field: &str) -> Option<Kind> {
    fields
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, kind)| *kind)
}

fn parse_value(text: &str, kind: Kind) -> Result<Value, String> {
    match kind {
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .and_then(|v| serde_json::Number::from_f64(v).map(Value::Number))
            .ok_or_else(|| format!("{text:?} is not a finite number")),
        Kind::Integer => text
            .parse::<i32>()
            .map(Value::from)
            .map_err(|_| format!("{text:?} is not a whole number")),
        Kind::Bool => text
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| format!("{text:?} is neither true nor false")),
        Kind::Duration => text
            .parse::<crate::api::duration::SpecDuration>()
            .map(|_| Value::String(text.to_string()))
            .map_err(|e| format!("{text:?} is not a duration: {e}")),
        Kind::OneOf(words) => words
            .iter()
            .find(|w| **w == text)
            .map(|w| Value::String((*w).to_string()))
            .ok_or_else(|| format!("{text:?} is none of {words:?}")),
    }
}

/// Sets `field` (dotted) in `object`. The check objects (`thresholds`, `relative`, …) must
/// exist already: a setting changes a check, it does not add one; `scoring` starts from its
/// defaults.
fn set_field(object: &mut Value, field: &str, value: Value) -> Result<(), String> {
    let parts: Vec<&str> = field.split('.').collect();
    let Some((leaf, parents)) = parts.split_last() else {
        return Err("empty path".into());
    };
    let mut at = object;
    for parent in parents {
        let map = at
            .as_object_mut()
            .ok_or_else(|| format!("{parent} is inside something that is not an object"))?;
        if !map.contains_key(*parent) || map.get(*parent).is_some_and(Value::is_null) {
            if *parent == "scoring" {
                let defaults = serde_json::to_value(Scoring::default())
                    .map_err(|e| format!("scoring defaults: {e}"))?;
                map.insert((*parent).to_string(), defaults);
            } else {
                return Err(format!(
                    "the manifest sets no {parent:?} here, so there is nothing to change: add the check to the manifest first"
                ));
            }
        }
        at = map.get_mut(*parent).ok_or_else(|| format!("no {parent}"))?;
    }
    let map: &mut Map<String, Value> = at
        .as_object_mut()
        .ok_or_else(|| format!("{leaf} is inside something that is not an object"))?;
    map.insert((*leaf).to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::analysis::AnalysisTemplate;

    fn spec() -> SafeDeploymentSpec {
        let template: AnalysisTemplate = serde_json::from_value(serde_json::json!({
            "name": "errors", "interval": "2s", "count": 10,
            "metrics": [{
                "name": "error-ratio",
                "provider": {"prometheus": {"address": "http://p:9090", "query": "q{v=\"{{canary}}\"}"}},
                "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02}
            }]
        }))
        .unwrap();
        SafeDeploymentSpec {
            analyses: vec![template],
            ..SafeDeploymentSpec::default()
        }
    }

    #[test]
    fn a_threshold_a_policy_and_the_scoring_can_be_set() {
        let changed = apply(
            &spec(),
            &[
                "analyses.errors.metrics.error-ratio.thresholds.critical=0.5".into(),
                "analyses.errors.metrics.error-ratio.thresholds.acceptable=0.2".into(),
                "analyses.errors.metrics.error-ratio.onNoData=Fail".into(),
                "analyses.errors.scoring.passThreshold=90".into(),
                "analyses.errors.interval=5s".into(),
            ],
        )
        .unwrap();
        let template = &changed.analyses[0];
        let thresholds = template.metrics[0].thresholds.unwrap();
        assert_eq!((thresholds.acceptable, thresholds.critical), (0.2, 0.5));
        assert_eq!(template.scoring.unwrap().pass_threshold, 90.0);
        assert_eq!(template.interval.as_ref().unwrap().to_string(), "5s");
    }

    #[test]
    fn unknown_paths_names_and_values_are_refused_with_what_may_be_set() {
        for (setting, fragment) in [
            ("spec.replicas=3", "unknown path"),
            ("analyses.nope.interval=5s", "no analysis template"),
            (
                "analyses.errors.metrics.nope.thresholds.target=1",
                "no metric",
            ),
            (
                "analyses.errors.metrics.error-ratio.provider.prometheus.address=http://x",
                "no settable field",
            ),
            (
                "analyses.errors.metrics.error-ratio.thresholds.target=NaN",
                "finite",
            ),
            (
                "analyses.errors.metrics.error-ratio.thresholds.target",
                "PATH=VALUE",
            ),
            (
                "analyses.errors.metrics.error-ratio.relative.maxRegressionPercent=5",
                "add the check",
            ),
            (
                "analyses.errors.metrics.error-ratio.onError=Maybe",
                "none of",
            ),
            ("analyses.errors.count=lots", "whole number"),
            // Ordered thresholds are checked as the operator checks them.
            (
                "analyses.errors.metrics.error-ratio.thresholds.critical=0.001",
                "thresholds must satisfy",
            ),
            ("analyses.errors.interval=0s", "longer than zero"),
        ] {
            let error = apply(&spec(), &[setting.to_string()]).unwrap_err();
            assert!(error.to_string().contains(fragment), "{setting}: {error}");
        }
        let error = apply(&spec(), &["spec.replicas=3".into()]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("analyses.<template>.metrics.<metric>.thresholds.acceptable")
        );
    }
}
