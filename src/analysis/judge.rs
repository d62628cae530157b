//! The pure canary judge: judges one metric's observation against its absolute thresholds, its
//! allowed regression against the baseline and a Mann–Whitney U test, and scores a set of
//! metric verdicts. No I/O, no clock; the run state machine (`super::run`) applies the no-data,
//! NaN and error policies on top.

use crate::api::analysis::{
    DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT_PERCENT, DEFAULT_MIN_SAMPLES, DEFAULT_OUTLIER_FACTOR,
    Direction, MannWhitneySpec, MetricSpec, MetricThresholds, MetricVerdict, OutlierStrategy,
    OutliersRemoved, RelativeCheck, Scoring,
};

use super::outliers;
use super::stats::{self, PValueMethod};
use super::traffic::{TrafficJudgement, judge_traffic};
use super::{MetricObservation, ProviderError};

/// Level of a value against absolute thresholds, as for the Kubernetes health signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdVerdict {
    /// At or better than `target`.
    Target,
    /// Worse than target, at or better than `acceptable`: may advance.
    Acceptable,
    /// Worse than `acceptable`, better than `critical`: holds.
    Marginal,
    /// At or beyond `critical`: fails at once.
    Critical,
}

/// Judges `value` against `thresholds` read in `direction`. NaN is never better than a level,
/// so it is judged `Marginal`; callers handle NaN before (see [`judge_metric`]).
pub fn judge_absolute(
    value: f64,
    thresholds: &MetricThresholds,
    direction: Direction,
) -> ThresholdVerdict {
    // `at_or_better(v, level)`: v is as good as the level or better.
    let at_or_better = |level: f64| match direction {
        Direction::LowerIsBetter => value <= level,
        Direction::HigherIsBetter => value >= level,
    };
    let at_or_worse = |level: f64| match direction {
        Direction::LowerIsBetter => value >= level,
        Direction::HigherIsBetter => value <= level,
    };
    if at_or_worse(thresholds.critical) {
        ThresholdVerdict::Critical
    } else if at_or_better(thresholds.target) {
        ThresholdVerdict::Target
    } else if at_or_better(thresholds.acceptable) {
        ThresholdVerdict::Acceptable
    } else {
        ThresholdVerdict::Marginal
    }
}

/// Outcome of the relative check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeJudgement {
    /// How much worse the canary is than the baseline, in percent of the baseline's value
    /// (negative: better). Infinite when the baseline is zero and the canary is worse.
    pub regression_percent: f64,
    /// `Pass`, `Fail` or `Critical`.
    pub verdict: MetricVerdict,
}

/// Compares the canary's value with the baseline's: a regression above `maxRegressionPercent`
/// fails, one at or above `criticalRegressionPercent` is critical; differences within
/// `minAbsoluteChange` always pass. Both values must be numbers (not NaN).
pub fn judge_relative(
    canary: f64,
    baseline: f64,
    check: &RelativeCheck,
    direction: Direction,
) -> RelativeJudgement {
    let worse_by = match direction {
        Direction::LowerIsBetter => canary - baseline,
        Direction::HigherIsBetter => baseline - canary,
    };
    let regression_percent = if worse_by == 0.0 {
        0.0
    } else if baseline == 0.0 {
        f64::INFINITY.copysign(worse_by)
    } else {
        worse_by / baseline.abs() * 100.0
    };
    let tolerated = worse_by.abs() <= check.min_absolute_change.unwrap_or(0.0);
    let verdict = if tolerated || regression_percent <= check.max_regression_percent {
        MetricVerdict::Pass
    } else if check
        .critical_regression_percent
        .is_some_and(|critical| regression_percent >= critical)
    {
        MetricVerdict::Critical
    } else {
        MetricVerdict::Fail
    };
    RelativeJudgement {
        regression_percent,
        verdict,
    }
}

/// Outcome of the statistical check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatisticalJudgement {
    /// U statistic of the canary sample.
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: PValueMethod,
    /// Hodges–Lehmann shift, canary minus baseline.
    pub shift: f64,
    /// The shift in the bad direction, in percent of the baseline median (negative: better).
    pub effect_percent: f64,
    /// Median of the canary samples.
    pub canary_median: f64,
    /// Median of the baseline samples.
    pub baseline_median: f64,
    /// Samples used on each side (canary, baseline).
    pub samples: (usize, usize),
    /// `Pass` or `Fail`.
    pub verdict: MetricVerdict,
}

/// Why the statistical check could not judge.
#[derive(Debug, Clone, PartialEq)]
pub enum StatisticalGap {
    /// Fewer finite samples than `minSamples` on a side.
    TooFewSamples {
        /// Finite canary samples.
        canary: usize,
        /// Finite baseline samples.
        baseline: usize,
        /// The minimum.
        min: usize,
    },
    /// A side had samples, and all were NaN.
    AllNaN,
}

/// Mann–Whitney judgement of canary samples against baseline samples, as Kayenta's judge: the
/// canary fails when the two-sided test rejects equality at the configured confidence, the
/// Hodges–Lehmann shift points in the bad direction, and it is at least `minEffectPercent` of
/// the baseline median. Non-finite samples are dropped first.
pub fn judge_mann_whitney(
    canary: &[f64],
    baseline: &[f64],
    spec: &MannWhitneySpec,
    direction: Direction,
) -> Result<StatisticalJudgement, StatisticalGap> {
    let finite =
        |values: &[f64]| -> Vec<f64> { values.iter().copied().filter(|v| v.is_finite()).collect() };
    let c = finite(canary);
    let b = finite(baseline);
    let all_nan = |raw: &[f64], kept: &[f64]| !raw.is_empty() && kept.is_empty();
    if all_nan(canary, &c) || all_nan(baseline, &b) {
        return Err(StatisticalGap::AllNaN);
    }
    let min = usize::try_from(spec.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES))
        .unwrap_or(0)
        .max(1);
    if c.len() < min || b.len() < min {
        return Err(StatisticalGap::TooFewSamples {
            canary: c.len(),
            baseline: b.len(),
            min,
        });
    }
    // Non-empty and finite on both sides, so the statistics cannot fail; map defensively.
    let gap = |_| StatisticalGap::TooFewSamples {
        canary: c.len(),
        baseline: b.len(),
        min,
    };
    let test = stats::mann_whitney_u(&c, &b).map_err(gap)?;
    let shift = stats::hodges_lehmann(&c, &b).map_err(gap)?;
    let canary_median = stats::median(&c).unwrap_or(f64::NAN);
    let baseline_median = stats::median(&b).unwrap_or(f64::NAN);
    let bad_shift = match direction {
        Direction::LowerIsBetter => shift,
        Direction::HigherIsBetter => -shift,
    };
    let effect_percent = if bad_shift == 0.0 {
        0.0
    } else if baseline_median == 0.0 {
        f64::INFINITY.copysign(bad_shift)
    } else {
        bad_shift / baseline_median.abs() * 100.0
    };
    let alpha = 1.0 - spec.confidence.unwrap_or(DEFAULT_CONFIDENCE);
    let min_effect = spec
        .min_effect_percent
        .unwrap_or(DEFAULT_MIN_EFFECT_PERCENT);
    let regressed = test.p_value < alpha && bad_shift > 0.0 && effect_percent >= min_effect;
    Ok(StatisticalJudgement {
        u: test.u,
        p_value: test.p_value,
        method: test.method,
        shift,
        effect_percent,
        canary_median,
        baseline_median,
        samples: (c.len(), b.len()),
        verdict: if regressed {
            MetricVerdict::Fail
        } else {
            MetricVerdict::Pass
        },
    })
}

/// The judgement of one metric at one measurement, before the run's policies.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricJudgement {
    /// The combined verdict: the worst of the checks, in the order Critical, Fail, Error,
    /// InsufficientTraffic, NoData, NaN, Marginal, Pass (a definite regression wins over a
    /// missing reading).
    pub verdict: MetricVerdict,
    /// The canary's value (the median of its samples for a statistical-only metric).
    pub value: Option<f64>,
    /// The baseline's value (or median).
    pub baseline: Option<f64>,
    /// What the metric was judged against, in words.
    pub threshold: String,
    /// What each check found, in words.
    pub message: String,
    /// The provider error, when the verdict is `Error`.
    pub error: Option<ProviderError>,
    /// Samples removed as outliers, when the metric removes them and samples were compared.
    pub outliers_removed: Option<OutliersRemoved>,
    /// The canary's traffic, with `minimumTraffic`, when it was a finite number.
    pub traffic: Option<f64>,
}

/// The canary's and the baseline's samples after the metric's outlier treatment, and what was
/// removed (None when the metric keeps every sample).
fn treat_outliers(
    spec: &MetricSpec,
    canary: &[f64],
    baseline: &[f64],
) -> (Vec<f64>, Vec<f64>, Option<OutliersRemoved>) {
    let Some(o) = spec
        .outliers
        .filter(|o| o.strategy == OutlierStrategy::Remove)
    else {
        return (canary.to_vec(), baseline.to_vec(), None);
    };
    let factor = o.factor.unwrap_or(DEFAULT_OUTLIER_FACTOR);
    let c = outliers::remove_outliers(canary, factor);
    let b = outliers::remove_outliers(baseline, factor);
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let removed = OutliersRemoved {
        canary: count(c.removed),
        canary_samples: count(canary.len()),
        baseline: count(b.removed),
        baseline_samples: count(baseline.len()),
    };
    (c.kept, b.kept, Some(removed))
}

/// Severity order used to combine the checks of a metric (higher wins).
fn severity(verdict: MetricVerdict) -> u8 {
    match verdict {
        MetricVerdict::Pass => 0,
        MetricVerdict::Marginal => 1,
        MetricVerdict::NaN => 2,
        MetricVerdict::NoData => 3,
        // Above NaN and no data (too little traffic explains them), below a provider error (so
        // errors stay counted for `onError`) and below Fail and Critical (the guard withholds
        // only good news).
        MetricVerdict::InsufficientTraffic => 4,
        MetricVerdict::Error => 5,
        MetricVerdict::Fail => 6,
        MetricVerdict::Critical => 7,
    }
}

/// Accumulates the verdicts of the checks of one metric.
struct Checks {
    verdict: MetricVerdict,
    notes: Vec<String>,
    error: Option<ProviderError>,
}

impl Checks {
    fn add(&mut self, verdict: MetricVerdict, note: String) {
        if severity(verdict) > severity(self.verdict) {
            self.verdict = verdict;
        }
        self.notes.push(note);
    }

    /// Adds a reading that could not be used.
    fn add_missing(&mut self, what: &str, error: &ProviderError) {
        let verdict = if error.is_no_data() {
            MetricVerdict::NoData
        } else {
            MetricVerdict::Error
        };
        if verdict == MetricVerdict::Error && self.error.is_none() {
            self.error = Some(error.clone());
        }
        self.add(verdict, format!("{what}: {error}"));
    }
}

fn not_measured(what: &str) -> ProviderError {
    ProviderError::Parse(format!("the {what} was not measured"))
}

/// Takes a needed value reading out of an observation.
fn value_of(reading: Option<&super::ValueReading>, what: &str) -> Result<f64, ProviderError> {
    match reading {
        Some(Ok(value)) => Ok(*value),
        Some(Err(error)) => Err(error.clone()),
        None => Err(not_measured(what)),
    }
}

/// Takes a needed samples reading out of an observation.
fn samples_of<'a>(
    reading: Option<&'a super::SamplesReading>,
    what: &str,
) -> Result<&'a [f64], ProviderError> {
    match reading {
        Some(Ok(values)) => Ok(values),
        Some(Err(error)) => Err(error.clone()),
        None => Err(not_measured(what)),
    }
}

/// Describes what a metric is judged against, such as
/// `lowerIsBetter: target 0.1, acceptable 0.2, critical 0.5; at most +10% vs baseline`.
pub fn describe_checks(spec: &MetricSpec) -> String {
    let direction = spec.direction.unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(t) = &spec.thresholds {
        let dir = match direction {
            Direction::LowerIsBetter => "lowerIsBetter",
            Direction::HigherIsBetter => "higherIsBetter",
        };
        parts.push(format!(
            "{dir}: target {}, acceptable {}, critical {}",
            t.target, t.acceptable, t.critical
        ));
    }
    if let Some(r) = &spec.relative {
        let mut text = format!("at most {}% worse than baseline", r.max_regression_percent);
        if let Some(critical) = r.critical_regression_percent {
            text.push_str(&format!(" (critical {critical}%)"));
        }
        parts.push(text);
    }
    if let Some(s) = &spec.statistical {
        let mw = &s.mann_whitney;
        parts.push(format!(
            "Mann–Whitney at {}% confidence, effect at least {}% of baseline median, {}+ samples",
            mw.confidence.unwrap_or(DEFAULT_CONFIDENCE) * 100.0,
            mw.min_effect_percent.unwrap_or(DEFAULT_MIN_EFFECT_PERCENT),
            mw.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES)
        ));
    }
    if let Some(o) = spec
        .outliers
        .filter(|o| o.strategy == OutlierStrategy::Remove)
    {
        parts.push(format!(
            "samples beyond Q1/Q3 ± {}·IQR removed",
            o.factor.unwrap_or(DEFAULT_OUTLIER_FACTOR)
        ));
    }
    if let Some(guard) = &spec.minimum_traffic {
        parts.push(format!("canary traffic at least {}", guard.minimum));
    }
    parts.join("; ")
}

/// Judges one metric's observation with every check the metric configures. `None` (the
/// controller brought no observation for this metric) counts as a provider error.
pub fn judge_metric(spec: &MetricSpec, observation: Option<&MetricObservation>) -> MetricJudgement {
    let direction = spec.direction.unwrap_or_default();
    let empty = MetricObservation::default();
    let obs = observation.unwrap_or(&empty);
    let mut checks = Checks {
        verdict: MetricVerdict::Pass,
        notes: Vec::new(),
        error: None,
    };
    let mut value = None;
    let mut baseline = None;
    let mut outliers_removed = None;
    let mut traffic = None;

    if observation.is_none() {
        checks.add_missing(
            "metric",
            &ProviderError::Parse("no observation was taken".into()),
        );
    } else {
        if let Some(thresholds) = &spec.thresholds {
            match value_of(obs.canary.as_ref(), "canary value") {
                Ok(v) if v.is_nan() => checks.add(MetricVerdict::NaN, "canary value is NaN".into()),
                Ok(v) => {
                    value = Some(v);
                    let level = judge_absolute(v, thresholds, direction);
                    let verdict = match level {
                        ThresholdVerdict::Target | ThresholdVerdict::Acceptable => {
                            MetricVerdict::Pass
                        }
                        ThresholdVerdict::Marginal => MetricVerdict::Marginal,
                        ThresholdVerdict::Critical => MetricVerdict::Critical,
                    };
                    checks.add(verdict, format!("value {v}: {level:?}"));
                }
                Err(error) => checks.add_missing("canary value", &error),
            }
        }
        if let Some(relative) = &spec.relative {
            let c = value_of(obs.canary.as_ref(), "canary value");
            let b = value_of(obs.baseline.as_ref(), "baseline value");
            match (c, b) {
                (Ok(c), Ok(b)) => {
                    value = Some(c);
                    baseline = Some(b);
                    if c.is_nan() || b.is_nan() {
                        checks.add(MetricVerdict::NaN, "canary or baseline value is NaN".into());
                    } else {
                        let r = judge_relative(c, b, relative, direction);
                        checks.add(
                            r.verdict,
                            format!(
                                "{:+.2}% vs baseline {b}: {:?}",
                                r.regression_percent, r.verdict
                            ),
                        );
                    }
                }
                (Err(error), _) => checks.add_missing("canary value", &error),
                (_, Err(error)) => checks.add_missing("baseline value", &error),
            }
        }
        if let Some(statistical) = &spec.statistical {
            let c = samples_of(obs.canary_samples.as_ref(), "canary samples");
            let b = samples_of(obs.baseline_samples.as_ref(), "baseline samples");
            match (c, b) {
                (Ok(c), Ok(b)) => {
                    let (c, b, removed) = treat_outliers(spec, c, b);
                    if let Some(r) = removed {
                        outliers_removed = Some(r);
                        checks.notes.push(format!(
                            "outliers removed (IQR × {}): canary {} of {}, baseline {} of {}",
                            spec.outliers
                                .and_then(|o| o.factor)
                                .unwrap_or(DEFAULT_OUTLIER_FACTOR),
                            r.canary,
                            r.canary_samples,
                            r.baseline,
                            r.baseline_samples
                        ));
                    }
                    match judge_mann_whitney(&c, &b, &statistical.mann_whitney, direction) {
                        Ok(s) => {
                            value = value.or(Some(s.canary_median));
                            baseline = baseline.or(Some(s.baseline_median));
                            checks.add(
                                s.verdict,
                                format!(
                                    "Mann–Whitney U={} p={:.4} ({:?}), shift {:+} ({:+.2}% of baseline median {}), n={}/{}: {:?}",
                                    s.u,
                                    s.p_value,
                                    s.method,
                                    s.shift,
                                    s.effect_percent,
                                    s.baseline_median,
                                    s.samples.0,
                                    s.samples.1,
                                    s.verdict
                                ),
                            );
                        }
                        Err(StatisticalGap::AllNaN) => {
                            checks.add(MetricVerdict::NaN, "samples are all NaN".into())
                        }
                        Err(StatisticalGap::TooFewSamples {
                            canary,
                            baseline,
                            min,
                        }) => checks.add(
                            MetricVerdict::NoData,
                            format!(
                                "too few samples: canary {canary}, baseline {baseline}, need {min}"
                            ),
                        ),
                    }
                }
                (Err(error), _) => checks.add_missing("canary samples", &error),
                (_, Err(error)) => checks.add_missing("baseline samples", &error),
            }
        }
        if spec.thresholds.is_none() && spec.relative.is_none() && spec.statistical.is_none() {
            checks.add(
                MetricVerdict::Error,
                "the metric has no check (thresholds, relative or statistical)".into(),
            );
            checks.error = Some(ProviderError::Config(
                "the metric has no check (thresholds, relative or statistical)".into(),
            ));
        }
        if let Some(guard) = &spec.minimum_traffic {
            let judgement = judge_traffic(guard, obs.traffic.as_ref());
            traffic = judgement.observed();
            match judgement {
                TrafficJudgement::Enough { observed } => checks
                    .notes
                    .push(format!("traffic {observed} (minimum {})", guard.minimum)),
                TrafficJudgement::TooLittle { reason, .. } => {
                    checks.add(MetricVerdict::InsufficientTraffic, reason)
                }
                TrafficJudgement::Error(error) => checks.add_missing("traffic", &error),
            }
        }
    }

    MetricJudgement {
        verdict: checks.verdict,
        value,
        baseline,
        threshold: describe_checks(spec),
        message: checks.notes.join("; "),
        error: if checks.verdict == MetricVerdict::Error {
            checks.error
        } else {
            None
        },
        outliers_removed,
        traffic,
    }
}

/// Credit a scored verdict earns: Pass 1, Marginal ½, Fail and Critical 0; `None` for verdicts
/// that are not scored (no data, NaN, errors, too little traffic).
pub fn credit(verdict: MetricVerdict) -> Option<f64> {
    match verdict {
        MetricVerdict::Pass => Some(1.0),
        MetricVerdict::Marginal => Some(0.5),
        MetricVerdict::Fail | MetricVerdict::Critical => Some(0.0),
        MetricVerdict::NoData
        | MetricVerdict::NaN
        | MetricVerdict::Error
        | MetricVerdict::InsufficientTraffic => None,
    }
}

/// Weighted score, 0 to 100, of `(weight, verdict)` pairs; unscored verdicts and zero weights
/// are left out. `None` when nothing is left to score.
pub fn score(items: &[(f64, MetricVerdict)]) -> Option<f64> {
    let mut earned = 0.0;
    let mut total = 0.0;
    for &(weight, verdict) in items {
        if weight <= 0.0 {
            continue;
        }
        if let Some(c) = credit(verdict) {
            earned += weight * c;
            total += weight;
        }
    }
    (total > 0.0).then(|| earned / total * 100.0)
}

/// Class of a score against the pass and marginal thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreClass {
    /// At or above the pass threshold.
    Pass,
    /// At or above the marginal threshold, below pass.
    Marginal,
    /// Below the marginal threshold.
    Fail,
}

/// Classifies a score: `≥ pass` passes, `≥ marginal` is marginal, otherwise it fails.
pub fn classify_score(score: f64, scoring: &Scoring) -> ScoreClass {
    // A score of 0 means every scored metric failed: it fails whatever the thresholds say (a
    // `passThreshold: 0` must not turn a run of failures into a pass), and so does NaN.
    if score.is_nan() || score <= 0.0 {
        ScoreClass::Fail
    } else if score >= scoring.pass_threshold {
        ScoreClass::Pass
    } else if score >= scoring.marginal_threshold {
        ScoreClass::Marginal
    } else {
        ScoreClass::Fail
    }
}

#[cfg(test)]
mod tests;
