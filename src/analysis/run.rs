//! The state step function of an analysis run. Pure: the controller measures (through
//! `super::provider`), passes the observations and the current time to [`advance`], persists the
//! updated [`AnalysisRunStatus`] and acts on the returned [`RunOutcome`].
//!
//! Semantics, each measurement (interval):
//! - every metric is judged (`super::judge`); then its policies apply:
//!   - a provider error: skipped while the errors in a row stay within
//!     `consecutiveErrorLimit`; beyond it `onError` applies: `Fail` ends the run with phase
//!     `Error` (outcome `Failed`), `Inconclusive` ends it `Inconclusive`, `Ignore` leaves the
//!     metric out of the score;
//!   - no data / NaN: `onNoData` / `onNaN` — `Fail` counts as a failing metric,
//!     `Inconclusive` leaves it unjudged (the run ends inconclusive if it is still so at the last
//!     measurement), `Ignore` leaves it out of the score;
//! - the run fails at once on a `Critical` verdict (a critical threshold or critical
//!   regression), on a failing metric marked `critical`, or on a score below
//!   `scoring.marginalThreshold`;
//! - at the last measurement (`count` reached, or `initialDelay + duration` passed) it passes
//!   only if the score reaches `scoring.passThreshold`, no metric is left unjudged by the
//!   `Inconclusive` policy and **no provider errored in that measurement** (an unreachable
//!   provider never leads to a promotion); a score between marginal and pass is inconclusive.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::analysis::{
    AnalysisPhase, AnalysisRunStatus, AnalysisTemplate, DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    DEFAULT_COUNT, DEFAULT_INTERVAL, Direction, FailurePolicy, MEASUREMENTS_KEPT_PER_METRIC,
    Measurement, MetricSpec, MetricVerdict, Scoring,
};

use super::MetricObservation;
use super::judge::{self, ScoreClass};
use crate::core::duration::parse_duration;

/// What the controller does after a measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Keep the run going; measure again at `next_at` (also in `status.nextMeasurementAt`).
    Continue {
        /// When the next measurement is due.
        next_at: Timestamp,
    },
    /// The analysis passed: the step may advance.
    Passed,
    /// The analysis failed: revert the canary.
    Failed {
        /// Why, for a person.
        reason: String,
    },
    /// The analysis could not decide: hold the rollout and wait for a person.
    Inconclusive {
        /// Why, for a person.
        reason: String,
    },
}

/// How often, and how many times, a template measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between two measurements.
    pub interval: Duration,
    /// Wait before the first measurement.
    pub initial_delay: Duration,
    /// When the run ends.
    pub end: RunEnd,
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// After this many measurements.
    Count(u32),
    /// With the first measurement at or after `initialDelay + duration` from the start.
    Duration(Duration),
}

/// A template that cannot be run (normally caught by the CRD's CEL rules first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("analysis template {template:?} cannot run: {reason}")]
pub struct TemplateError {
    /// Template name.
    pub template: String,
    /// What is wrong.
    pub reason: String,
}

/// Reads the schedule of a template, with the defaults (interval `1m`, count 5).
pub fn schedule(template: &AnalysisTemplate) -> Result<Schedule, TemplateError> {
    let error = |reason: String| TemplateError {
        template: template.name.clone(),
        reason,
    };
    let interval = parse_duration(template.interval.as_deref().unwrap_or(DEFAULT_INTERVAL))
        .map_err(|e| error(format!("interval: {e}")))?;
    if interval.is_zero() {
        return Err(error("interval must be longer than zero".into()));
    }
    let initial_delay = match &template.initial_delay {
        Some(text) => parse_duration(text).map_err(|e| error(format!("initialDelay: {e}")))?,
        None => Duration::ZERO,
    };
    let end = match (template.count, &template.duration) {
        (Some(_), Some(_)) => return Err(error("set either count or duration, not both".into())),
        (Some(count), None) => RunEnd::Count(
            u32::try_from(count)
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| error(format!("count must be at least 1, not {count}")))?,
        ),
        (None, Some(text)) => {
            RunEnd::Duration(parse_duration(text).map_err(|e| error(format!("duration: {e}")))?)
        }
        (None, None) => RunEnd::Count(DEFAULT_COUNT.unsigned_abs()),
    };
    if template.metrics.is_empty() {
        return Err(error("it has no metrics".into()));
    }
    for metric in &template.metrics {
        validate_metric(metric)
            .map_err(|reason| error(format!("metric {:?}: {reason}", metric.name)))?;
    }
    Ok(Schedule {
        interval,
        initial_delay,
        end,
    })
}

/// The rules the CRD's CEL enforces on a metric, checked again so that a template that
/// bypassed admission can never be judged wrongly (for example a baseline query that measures
/// the canary, which would always pass the relative check).
fn validate_metric(metric: &MetricSpec) -> Result<(), String> {
    let provider = &metric.provider;
    let providers = [
        provider.prometheus.is_some(),
        provider.web.is_some(),
        provider.kubernetes.is_some(),
    ];
    if providers.into_iter().filter(|&set| set).count() != 1 {
        return Err("set exactly one of prometheus, web or kubernetes".into());
    }
    if metric.thresholds.is_none() && metric.relative.is_none() && metric.statistical.is_none() {
        return Err("it needs at least one check: thresholds, relative or statistical".into());
    }
    if let Some(t) = &metric.thresholds {
        let ordered = match metric.direction.unwrap_or_default() {
            Direction::LowerIsBetter => t.target <= t.acceptable && t.acceptable < t.critical,
            Direction::HigherIsBetter => t.target >= t.acceptable && t.acceptable > t.critical,
        };
        if !ordered {
            return Err(
                "thresholds must satisfy target <= acceptable < critical (lowerIsBetter) \
                 or target >= acceptable > critical (higherIsBetter)"
                    .into(),
            );
        }
    }
    if metric.relative.is_some() || metric.statistical.is_some() {
        let has_revision = |text: &str| {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            compact.contains("{{revision}}")
        };
        // The kubernetes provider reads the baseline's own pods: its sides always differ.
        let distinct = match (&provider.prometheus, &provider.web) {
            (Some(p), _) => p.baseline_query.is_some() || has_revision(&p.query),
            (_, Some(w)) => has_revision(&w.url) || w.body.as_deref().is_some_and(has_revision),
            _ => provider.kubernetes.is_some(),
        };
        if !distinct {
            return Err(
                "relative and statistical checks compare the canary with the baseline: \
                 put {{revision}} in the query (or the web url or body), or set \
                 prometheus.baselineQuery"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Longest text kept in a measurement's or a run's message (status stays small).
const MAX_MESSAGE_CHARS: usize = 600;

/// Cuts `text` to [`MAX_MESSAGE_CHARS`] characters.
fn bounded(text: String) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// `at + duration`, saturating at the largest timestamp.
fn later(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|t| t.parse::<Timestamp>().ok())
}

/// A new run of `template` for the canary `canary_revision`, gating step `step_index` (none for
/// background analysis). Its first measurement is due after the template's `initialDelay`.
pub fn start(
    template: &AnalysisTemplate,
    canary_revision: Option<&str>,
    step_index: Option<i32>,
    now: Timestamp,
) -> AnalysisRunStatus {
    let mut status = AnalysisRunStatus {
        template: template.name.clone(),
        phase: AnalysisPhase::Running,
        canary_revision: canary_revision.map(str::to_string),
        step_index,
        started_at: Some(now.to_string()),
        ..AnalysisRunStatus::default()
    };
    match schedule(template) {
        Ok(schedule) => {
            status.next_measurement_at = Some(later(now, schedule.initial_delay).to_string());
            status.message = Some("waiting for the first measurement".into());
        }
        Err(error) => {
            finish(&mut status, AnalysisPhase::Error, now, error.to_string());
        }
    }
    status
}

/// When the next measurement of a running run is due; `None` once the run is over. A running
/// run with no (or an unreadable) time is due at once.
pub fn next_measurement_at(status: &AnalysisRunStatus) -> Option<Timestamp> {
    if status.phase.is_terminal() {
        return None;
    }
    Some(parse_time(status.next_measurement_at.as_deref()).unwrap_or(Timestamp::MIN))
}

/// Whether the controller should measure and call [`advance`] now.
pub fn due(status: &AnalysisRunStatus, now: Timestamp) -> bool {
    next_measurement_at(status).is_some_and(|at| at <= now)
}

/// The outcome a finished run ended with; `None` while it runs.
pub fn terminal_outcome(status: &AnalysisRunStatus) -> Option<RunOutcome> {
    let reason = || status.message.clone().unwrap_or_default();
    match status.phase {
        AnalysisPhase::Running => None,
        AnalysisPhase::Successful => Some(RunOutcome::Passed),
        AnalysisPhase::Failed | AnalysisPhase::Error => {
            Some(RunOutcome::Failed { reason: reason() })
        }
        AnalysisPhase::Inconclusive => Some(RunOutcome::Inconclusive { reason: reason() }),
    }
}

/// How many measurements a duration-ended run takes when nothing is late: one per interval,
/// at least one (bounded, so an absurd ratio cannot keep a run going for ever).
fn expected_measurements(duration: Duration, interval: Duration) -> i64 {
    const MOST: u128 = 10_000;
    let interval = interval.as_millis().max(1);
    let expected = duration.as_millis().div_ceil(interval).clamp(1, MOST);
    i64::try_from(expected).unwrap_or(1)
}

/// Whether a run still measuring has shown passing evidence: its latest measurement judged every
/// metric that counts (no provider error, no value missing under a policy that withholds
/// judgement) and scored a pass. `Err` says what is missing. A required analysis without such
/// evidence holds every weight increase and the promotion: a run that measured nothing, or
/// whose provider is down, never lets a canary go on.
pub fn evidence(template: &AnalysisTemplate, status: &AnalysisRunStatus) -> Result<(), String> {
    if status.measurement_count <= 0 {
        return Err("no measurement yet".to_string());
    }
    let latest = status.measurements.iter().map(|m| m.at.as_str()).max();
    let counted: Vec<&MetricSpec> = template.metrics.iter().filter(|m| !m.dry_run).collect();
    if counted.is_empty() {
        return Ok(());
    }
    let mut missing = Vec::new();
    for spec in &counted {
        let measurement = status
            .measurements
            .iter()
            .rev()
            .find(|m| m.metric == spec.name && Some(m.at.as_str()) == latest);
        let Some(measurement) = measurement else {
            missing.push(format!("{}: not measured", spec.name));
            continue;
        };
        let withheld =
            |policy: Option<FailurePolicy>| policy.unwrap_or_default() != FailurePolicy::Ignore;
        match measurement.verdict {
            MetricVerdict::Error => missing.push(format!("{}: provider error", spec.name)),
            MetricVerdict::NoData if withheld(spec.on_no_data) => {
                missing.push(format!("{}: no data", spec.name))
            }
            MetricVerdict::NaN if withheld(spec.on_nan) => {
                missing.push(format!("{}: NaN", spec.name))
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    let scoring = template.scoring.unwrap_or_default();
    match status.score {
        Some(score) if judge::classify_score(score, &scoring) == ScoreClass::Pass => Ok(()),
        Some(score) => Err(format!(
            "score {score:.1} of the latest measurement is below the pass threshold {}",
            scoring.pass_threshold
        )),
        None => Err("no metric of the latest measurement could be scored".to_string()),
    }
}

/// Ends the run; returns the (bounded) message it keeps.
fn finish(
    status: &mut AnalysisRunStatus,
    phase: AnalysisPhase,
    now: Timestamp,
    message: String,
) -> String {
    let message = bounded(message);
    status.phase = phase;
    status.finished_at = Some(now.to_string());
    status.next_measurement_at = None;
    status.message = Some(message.clone());
    message
}

/// What the policies made of one metric in one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Scored with this verdict (Pass, Marginal, Fail or Critical).
    Scored(MetricVerdict),
    /// Not judged now; the run cannot pass if this is still so at its last measurement.
    Unjudged,
    /// Left out of the score.
    Ignored,
}

/// Takes one measurement: judges `observations` (one per metric, matched by name; extra ones are
/// ignored, missing ones count as provider errors), updates `status` (measurements, error
/// counters, score, phase, next time) and says what to do. A finished run is left unchanged and
/// its outcome returned again.
pub fn advance(
    template: &AnalysisTemplate,
    status: &mut AnalysisRunStatus,
    observations: &[MetricObservation],
    now: Timestamp,
) -> RunOutcome {
    if let Some(outcome) = terminal_outcome(status) {
        return outcome;
    }
    if status.template.is_empty() {
        status.template = template.name.clone();
    }
    let started = match parse_time(status.started_at.as_deref()) {
        Some(at) => at,
        None => {
            status.started_at = Some(now.to_string());
            now
        }
    };
    let schedule = match schedule(template) {
        Ok(schedule) => schedule,
        Err(error) => {
            let reason = error.to_string();
            let reason = finish(status, AnalysisPhase::Error, now, reason);
            return RunOutcome::Failed { reason };
        }
    };
    let scoring = template.scoring.unwrap_or_default();
    status.measurement_count = status.measurement_count.saturating_add(1);
    let at = now.to_string();

    let mut scored: Vec<(f64, MetricVerdict)> = Vec::new();
    let mut critical_failures: Vec<String> = Vec::new();
    let mut error_failures: Vec<String> = Vec::new();
    let mut error_inconclusive: Vec<String> = Vec::new();
    let mut errored: Vec<String> = Vec::new();
    let mut unjudged: Vec<String> = Vec::new();

    for spec in &template.metrics {
        let observation = observations.iter().find(|o| o.metric == spec.name);
        let judgement = judge::judge_metric(spec, observation);
        let (effect, note) = apply_policies(spec, judgement.verdict, status);
        let (effect, note) = if spec.dry_run {
            let policy = note.map(|n| format!(" (else {n})")).unwrap_or_default();
            (
                Effect::Ignored,
                Some(format!("dry run: not part of the outcome{policy}")),
            )
        } else {
            (effect, note)
        };
        let name = &spec.name;
        match judgement.verdict {
            _ if spec.dry_run => {}
            MetricVerdict::Error => {
                let error = judgement
                    .error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| judgement.message.clone());
                errored.push(format!("{name}: {error}"));
                match (effect, spec.on_error.unwrap_or_default()) {
                    (Effect::Unjudged, FailurePolicy::Fail) if over_limit(spec, status) => {
                        error_failures.push(format!("{name}: {error}"))
                    }
                    (Effect::Unjudged, FailurePolicy::Inconclusive) if over_limit(spec, status) => {
                        error_inconclusive.push(format!("{name}: {error}"))
                    }
                    _ => {}
                }
            }
            MetricVerdict::NoData | MetricVerdict::NaN if effect == Effect::Unjudged => {
                unjudged.push(format!("{name}: {}", judgement.message));
            }
            _ => {}
        }
        if let Effect::Scored(verdict) = effect {
            scored.push((weight(spec), verdict));
            if verdict == MetricVerdict::Critical {
                critical_failures.push(format!(
                    "{name} reached a critical level ({})",
                    judgement.message
                ));
            } else if spec.critical && verdict == MetricVerdict::Fail {
                critical_failures.push(format!(
                    "critical metric {name} failed ({})",
                    judgement.message
                ));
            }
        }
        let message = match note {
            Some(note) if judgement.message.is_empty() => Some(note),
            Some(note) => Some(format!("{}; {note}", judgement.message)),
            None if judgement.message.is_empty() => None,
            None => Some(judgement.message.clone()),
        };
        status.measurements.push(Measurement {
            metric: name.clone(),
            value: judgement.value.filter(|v| v.is_finite()),
            baseline: judgement.baseline.filter(|v| v.is_finite()),
            threshold: judgement.threshold.clone(),
            verdict: judgement.verdict,
            at: at.clone(),
            message: message.map(bounded),
            outliers_removed: judgement.outliers_removed,
        });
    }
    trim_measurements(status);
    status
        .consecutive_errors
        .retain(|metric, _| template.metrics.iter().any(|m| &m.name == metric));

    let score = judge::score(&scored);
    status.score = score.map(|s| (s * 100.0).round() / 100.0);
    let score_text = score.map_or_else(|| "no score".to_string(), |s| format!("score {s:.1}"));
    let progress = match schedule.end {
        RunEnd::Count(count) => format!("measurement {}/{count}", status.measurement_count),
        RunEnd::Duration(_) => format!("measurement {}", status.measurement_count),
    };

    if !critical_failures.is_empty() {
        let reason = format!("{progress}: {}", critical_failures.join("; "));
        let reason = finish(status, AnalysisPhase::Failed, now, reason);
        return RunOutcome::Failed { reason };
    }
    if !error_failures.is_empty() {
        let reason = format!(
            "{progress}: provider errors beyond consecutiveErrorLimit with onError Fail: {}",
            error_failures.join("; ")
        );
        let reason = finish(status, AnalysisPhase::Error, now, reason);
        return RunOutcome::Failed { reason };
    }
    if let Some(s) = score
        && classify_score(s, &scoring) == ScoreClass::Fail
    {
        let reason = format!(
            "{progress}: score {s:.1} is below the marginal threshold {}",
            scoring.marginal_threshold
        );
        let reason = finish(status, AnalysisPhase::Failed, now, reason);
        return RunOutcome::Failed { reason };
    }
    if !error_inconclusive.is_empty() {
        let reason = format!(
            "{progress}: provider errors beyond consecutiveErrorLimit: {}",
            error_inconclusive.join("; ")
        );
        let reason = finish(status, AnalysisPhase::Inconclusive, now, reason);
        return RunOutcome::Inconclusive { reason };
    }

    let last = match schedule.end {
        RunEnd::Count(count) => status.measurement_count.unsigned_abs() >= count,
        // Time alone does not end a run: after an operator outage (or with a clock ahead) the
        // first measurement may already be past the end, and one sample is no evidence.
        RunEnd::Duration(duration) => {
            now >= later(later(started, schedule.initial_delay), duration)
                && i64::from(status.measurement_count)
                    >= expected_measurements(duration, schedule.interval)
        }
    };
    if !last {
        let next_at = later(now, schedule.interval);
        status.next_measurement_at = Some(next_at.to_string());
        let mut message = format!("{progress}: {score_text}");
        if !errored.is_empty() {
            message.push_str(&format!("; provider errors: {}", errored.join("; ")));
        }
        if !unjudged.is_empty() {
            message.push_str(&format!("; not judged: {}", unjudged.join("; ")));
        }
        status.message = Some(bounded(message));
        return RunOutcome::Continue { next_at };
    }

    let inconclusive = |status: &mut AnalysisRunStatus, reason: String| {
        let reason = finish(status, AnalysisPhase::Inconclusive, now, reason);
        RunOutcome::Inconclusive { reason }
    };
    if !errored.is_empty() {
        return inconclusive(
            status,
            format!(
                "{progress} (last): cannot pass while a provider errors: {}",
                errored.join("; ")
            ),
        );
    }
    if !unjudged.is_empty() {
        return inconclusive(
            status,
            format!(
                "{progress} (last): metrics without a usable value: {}",
                unjudged.join("; ")
            ),
        );
    }
    match score {
        None if template.metrics.iter().all(|m| m.dry_run) => {
            finish(
                status,
                AnalysisPhase::Successful,
                now,
                format!("{progress} (last): every metric is a dry run"),
            );
            RunOutcome::Passed
        }
        None => inconclusive(
            status,
            format!("{progress} (last): no metric could be scored"),
        ),
        Some(s) if classify_score(s, &scoring) == ScoreClass::Pass => {
            finish(
                status,
                AnalysisPhase::Successful,
                now,
                format!(
                    "{progress} (last): score {s:.1} reaches the pass threshold {}",
                    scoring.pass_threshold
                ),
            );
            RunOutcome::Passed
        }
        Some(s) => inconclusive(
            status,
            format!(
                "{progress} (last): score {s:.1} is marginal (pass threshold {}, marginal {})",
                scoring.pass_threshold, scoring.marginal_threshold
            ),
        ),
    }
}

fn classify_score(score: f64, scoring: &Scoring) -> ScoreClass {
    judge::classify_score(score, scoring)
}

fn weight(spec: &MetricSpec) -> f64 {
    f64::from(spec.weight.unwrap_or(1).max(0))
}

fn error_limit(spec: &MetricSpec) -> i32 {
    spec.consecutive_error_limit
        .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
        .max(0)
}

fn over_limit(spec: &MetricSpec, status: &AnalysisRunStatus) -> bool {
    status
        .consecutive_errors
        .get(&spec.name)
        .is_some_and(|&errors| errors > error_limit(spec))
}

/// Applies the metric's policies to its raw verdict and keeps its error counter; returns the
/// effect and a note saying which policy applied.
fn apply_policies(
    spec: &MetricSpec,
    verdict: MetricVerdict,
    status: &mut AnalysisRunStatus,
) -> (Effect, Option<String>) {
    if verdict != MetricVerdict::Error {
        status.consecutive_errors.remove(&spec.name);
    }
    let by_policy = |policy: FailurePolicy, field: &str| match policy {
        FailurePolicy::Fail => (
            Effect::Scored(MetricVerdict::Fail),
            Some(format!("counted as a failure ({field}: Fail)")),
        ),
        FailurePolicy::Inconclusive => (
            Effect::Unjudged,
            Some(format!("not judged ({field}: Inconclusive)")),
        ),
        FailurePolicy::Ignore => (
            Effect::Ignored,
            Some(format!("left out of the score ({field}: Ignore)")),
        ),
    };
    match verdict {
        MetricVerdict::Pass
        | MetricVerdict::Marginal
        | MetricVerdict::Fail
        | MetricVerdict::Critical => (Effect::Scored(verdict), None),
        MetricVerdict::NoData => by_policy(spec.on_no_data.unwrap_or_default(), "onNoData"),
        MetricVerdict::NaN => by_policy(spec.on_nan.unwrap_or_default(), "onNaN"),
        MetricVerdict::Error => {
            let errors = status
                .consecutive_errors
                .entry(spec.name.clone())
                .or_insert(0);
            *errors = errors.saturating_add(1);
            let errors = *errors;
            let limit = error_limit(spec);
            if errors <= limit {
                return (
                    Effect::Unjudged,
                    Some(format!(
                        "provider error {errors} in a row, skipped (consecutiveErrorLimit {limit})"
                    )),
                );
            }
            match spec.on_error.unwrap_or_default() {
                FailurePolicy::Ignore => (
                    Effect::Ignored,
                    Some(format!(
                        "provider error {errors} in a row, left out of the score (onError: Ignore)"
                    )),
                ),
                policy => (
                    Effect::Unjudged,
                    Some(format!(
                        "provider error {errors} in a row, beyond consecutiveErrorLimit {limit} (onError: {policy:?})"
                    )),
                ),
            }
        }
    }
}

/// Keeps the last [`MEASUREMENTS_KEPT_PER_METRIC`] measurements of each metric, in order.
fn trim_measurements(status: &mut AnalysisRunStatus) {
    let mut seen: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    // Newest first: whether each measurement is among the last of its metric.
    let newest_first: Vec<bool> = status
        .measurements
        .iter()
        .rev()
        .map(|measurement| {
            let count = seen.entry(measurement.metric.as_str()).or_insert(0);
            *count = count.saturating_add(1);
            *count <= MEASUREMENTS_KEPT_PER_METRIC
        })
        .collect();
    // `retain` visits each element once, in order: oldest first.
    let mut keep = newest_first.into_iter().rev();
    status.measurements.retain(|_| keep.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ProviderError;
    use crate::analysis::testgen::Rng;
    use crate::api::analysis::{
        MannWhitneySpec, MetricThresholds, PrometheusProvider, Provider, RelativeCheck,
        StatisticalCheck,
    };

    fn t0() -> Timestamp {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        t0().checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap()
    }

    fn metric(name: &str) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            provider: Provider {
                prometheus: Some(PrometheusProvider {
                    address: "http://prometheus:9090".into(),
                    query: format!("{name}{{rev=\"{{{{revision}}}}\"}}"),
                    ..PrometheusProvider::default()
                }),
                web: None,
                kubernetes: None,
            },
            thresholds: Some(MetricThresholds {
                target: 0.1,
                acceptable: 0.2,
                critical: 0.5,
            }),
            ..MetricSpec::default()
        }
    }

    fn template(count: i32, metrics: Vec<MetricSpec>) -> AnalysisTemplate {
        AnalysisTemplate {
            name: "latency".into(),
            interval: Some("10s".into()),
            count: Some(count),
            metrics,
            ..AnalysisTemplate::default()
        }
    }

    fn unreachable(name: &str) -> MetricObservation {
        MetricObservation::failed(
            name,
            ProviderError::Unreachable("connection refused".into()),
        )
    }

    /// Runs one measurement per entry, ten seconds apart, and returns the outcomes.
    fn drive(
        template: &AnalysisTemplate,
        status: &mut AnalysisRunStatus,
        steps: Vec<Vec<MetricObservation>>,
    ) -> Vec<RunOutcome> {
        steps
            .into_iter()
            .enumerate()
            .map(|(i, obs)| advance(template, status, &obs, at(10 * i as i64)))
            .collect()
    }

    #[test]
    fn passes_after_count_measurements() {
        let template = template(3, vec![metric("latency")]);
        let mut status = start(&template, Some("abc123"), Some(2), t0());
        assert_eq!(status.phase, AnalysisPhase::Running);
        assert!(due(&status, t0()));
        let outcomes = drive(
            &template,
            &mut status,
            vec![
                vec![MetricObservation::value("latency", 0.05)],
                vec![MetricObservation::value("latency", 0.15)],
                vec![MetricObservation::value("latency", 0.12)],
            ],
        );
        assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
        assert_eq!(outcomes[1], RunOutcome::Continue { next_at: at(20) });
        assert_eq!(outcomes[2], RunOutcome::Passed);
        assert_eq!(status.phase, AnalysisPhase::Successful);
        assert_eq!(status.measurement_count, 3);
        assert_eq!(status.score, Some(100.0));
        assert_eq!(status.measurements.len(), 3);
        assert_eq!(status.measurements[1].value, Some(0.15));
        assert_eq!(status.measurements[1].verdict, MetricVerdict::Pass);
        assert_eq!(status.canary_revision.as_deref(), Some("abc123"));
        assert_eq!(status.step_index, Some(2));
        assert!(status.finished_at.is_some());
        assert!(!due(&status, at(1000)));
        // A finished run stays finished.
        let before = status.clone();
        let again = advance(
            &template,
            &mut status,
            &[MetricObservation::value("latency", 0.9)],
            at(100),
        );
        assert_eq!(again, RunOutcome::Passed);
        assert_eq!(status, before);
        assert_eq!(terminal_outcome(&status), Some(RunOutcome::Passed));
    }

    #[test]
    fn a_dry_run_metric_is_recorded_but_never_decides() {
        let mut errors = metric("errors");
        errors.dry_run = true;
        errors.critical = true;
        let mixed = template(2, vec![metric("latency"), errors.clone()]);
        let mut status = start(&mixed, None, None, t0());
        // At a critical level, and then unreachable: neither fails nor holds the run.
        let outcomes = drive(
            &mixed,
            &mut status,
            vec![
                vec![
                    MetricObservation::value("latency", 0.05),
                    MetricObservation::value("errors", 0.9),
                ],
                vec![
                    MetricObservation::value("latency", 0.05),
                    unreachable("errors"),
                ],
            ],
        );
        assert_eq!(outcomes[1], RunOutcome::Passed, "{status:#?}");
        assert_eq!(status.score, Some(100.0));
        let recorded: Vec<_> = status
            .measurements
            .iter()
            .filter(|m| m.metric == "errors")
            .collect();
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0].verdict, MetricVerdict::Critical);
        assert_eq!(recorded[0].value, Some(0.9));
        assert_eq!(recorded[1].verdict, MetricVerdict::Error);
        for m in recorded {
            let message = m.message.as_deref().unwrap_or_default();
            assert!(
                message.contains("dry run: not part of the outcome"),
                "{m:?}"
            );
        }
        // Only dry runs: nothing gates, the run passes.
        let only = template(1, vec![errors]);
        let mut status = start(&only, None, None, t0());
        let outcome = advance(
            &only,
            &mut status,
            &[MetricObservation::value("errors", 0.9)],
            t0(),
        );
        assert_eq!(outcome, RunOutcome::Passed);
        // Without dryRun the same value fails at once.
        let mut gating = metric("errors");
        gating.critical = true;
        let real = template(2, vec![gating]);
        let mut status = start(&real, None, None, t0());
        let outcome = advance(
            &real,
            &mut status,
            &[MetricObservation::value("errors", 0.9)],
            t0(),
        );
        assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    }

    #[test]
    fn fails_fast_on_a_critical_level() {
        let template = template(10, vec![metric("latency"), metric("errors")]);
        let mut status = start(&template, None, None, t0());
        let outcome = advance(
            &template,
            &mut status,
            &[
                MetricObservation::value("latency", 0.05),
                MetricObservation::value("errors", 0.7),
            ],
            t0(),
        );
        let RunOutcome::Failed { reason } = outcome else {
            panic!("expected a failure, got {outcome:?}");
        };
        assert!(
            reason.contains("errors reached a critical level"),
            "{reason}"
        );
        assert_eq!(status.phase, AnalysisPhase::Failed);
        assert_eq!(status.measurement_count, 1);
    }

    #[test]
    fn a_failing_critical_metric_fails_the_run_whatever_the_score() {
        let mut errors = metric("errors");
        errors.thresholds = None;
        errors.relative = Some(RelativeCheck {
            max_regression_percent: 10.0,
            ..RelativeCheck::default()
        });
        errors.critical = true;
        let mut latency = metric("latency");
        latency.weight = Some(99);
        let template = template(5, vec![latency, errors]);
        let mut status = start(&template, None, None, t0());
        let outcome = advance(
            &template,
            &mut status,
            &[
                MetricObservation::value("latency", 0.05),
                MetricObservation::compared("errors", 0.02, 0.01),
            ],
            t0(),
        );
        assert!(
            matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("critical metric errors failed")),
            "{outcome:?}"
        );
        assert_eq!(status.score, Some(99.0));

        // The same regression on a non-critical metric only costs its weight.
        let mut template = template;
        template.metrics[1].critical = false;
        let mut status = start(&template, None, None, t0());
        let outcome = advance(
            &template,
            &mut status,
            &[
                MetricObservation::value("latency", 0.05),
                MetricObservation::compared("errors", 0.02, 0.01),
            ],
            t0(),
        );
        assert_eq!(outcome, RunOutcome::Continue { next_at: at(10) });
    }

    #[test]
    fn weighted_scores_against_pass_and_marginal_thresholds() {
        // Two equal metrics, one failing: 50 < marginal 75 fails at once.
        let mut a = metric("a");
        a.thresholds = None;
        a.relative = Some(RelativeCheck {
            max_regression_percent: 10.0,
            ..RelativeCheck::default()
        });
        let b = metric("b");
        let equal = template(3, vec![a.clone(), b.clone()]);
        let failing_a = vec![
            MetricObservation::compared("a", 2.0, 1.0),
            MetricObservation::value("b", 0.05),
        ];
        let mut status = start(&equal, None, None, t0());
        let outcome = advance(&equal, &mut status, &failing_a, t0());
        assert!(
            matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("below the marginal threshold")),
            "{outcome:?}"
        );
        assert_eq!(status.score, Some(50.0));

        // Weight 1 against 9: score 90 is marginal; it holds, and a marginal last score is
        // inconclusive.
        let mut heavy_b = b.clone();
        heavy_b.weight = Some(9);
        let weighted = template(2, vec![a.clone(), heavy_b]);
        let mut status = start(&weighted, None, None, t0());
        let outcomes = drive(
            &weighted,
            &mut status,
            vec![failing_a.clone(), failing_a.clone()],
        );
        assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
        assert!(
            matches!(&outcomes[1], RunOutcome::Inconclusive { reason } if reason.contains("marginal")),
            "{outcomes:?}"
        );
        assert_eq!(status.score, Some(90.0));

        // With a pass threshold of 90 the same run passes.
        let mut lenient = weighted.clone();
        lenient.scoring = Some(Scoring {
            pass_threshold: 90.0,
            marginal_threshold: 50.0,
        });
        let mut status = start(&lenient, None, None, t0());
        let outcomes = drive(&lenient, &mut status, vec![failing_a.clone(), failing_a]);
        assert_eq!(outcomes[1], RunOutcome::Passed);
    }

    #[test]
    fn a_marginal_level_scores_half() {
        let template = template(2, vec![metric("latency"), metric("errors")]);
        let mut status = start(&template, None, None, t0());
        let obs = vec![
            MetricObservation::value("latency", 0.3), // marginal: above acceptable 0.2
            MetricObservation::value("errors", 0.0),
        ];
        let outcomes = drive(&template, &mut status, vec![obs.clone(), obs]);
        assert_eq!(status.score, Some(75.0));
        assert_eq!(status.measurements[0].verdict, MetricVerdict::Marginal);
        assert!(
            matches!(outcomes[1], RunOutcome::Inconclusive { .. }),
            "{outcomes:?}"
        );
    }

    #[test]
    fn provider_down_with_inconclusive_policy_ends_inconclusive_after_the_error_limit() {
        let mut m = metric("latency");
        m.consecutive_error_limit = Some(2);
        m.on_error = Some(FailurePolicy::Inconclusive);
        let template = template(10, vec![m]);
        let mut status = start(&template, None, None, t0());
        let outcomes = drive(
            &template,
            &mut status,
            vec![
                vec![unreachable("latency")],
                vec![unreachable("latency")],
                vec![unreachable("latency")],
            ],
        );
        assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
        assert_eq!(outcomes[1], RunOutcome::Continue { next_at: at(20) });
        assert!(
            matches!(&outcomes[2], RunOutcome::Inconclusive { reason } if reason.contains("connection refused")),
            "{outcomes:?}"
        );
        assert_eq!(status.phase, AnalysisPhase::Inconclusive);
        assert_eq!(status.consecutive_errors.get("latency"), Some(&3));
        assert_eq!(status.measurements[2].verdict, MetricVerdict::Error);
    }

    #[test]
    fn provider_down_with_fail_policy_ends_in_error() {
        let mut m = metric("latency");
        m.consecutive_error_limit = Some(0);
        m.on_error = Some(FailurePolicy::Fail);
        let template = template(10, vec![m]);
        let mut status = start(&template, None, None, t0());
        let outcome = advance(&template, &mut status, &[unreachable("latency")], t0());
        assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
        assert_eq!(status.phase, AnalysisPhase::Error);
    }

    #[test]
    fn never_passes_while_a_provider_is_unreachable() {
        for policy in [
            FailurePolicy::Ignore,
            FailurePolicy::Inconclusive,
            FailurePolicy::Fail,
        ] {
            for limit in [0, 1, 4, 100] {
                let mut down = metric("down");
                down.on_error = Some(policy);
                down.consecutive_error_limit = Some(limit);
                let template = template(4, vec![metric("healthy"), down]);
                let mut status = start(&template, None, None, t0());
                for i in 0..10 {
                    let outcome = advance(
                        &template,
                        &mut status,
                        &[
                            MetricObservation::value("healthy", 0.01),
                            unreachable("down"),
                        ],
                        at(10 * i),
                    );
                    assert_ne!(outcome, RunOutcome::Passed, "{policy:?}, limit {limit}");
                    assert_ne!(status.phase, AnalysisPhase::Successful);
                }
                assert!(status.phase.is_terminal(), "{policy:?}, limit {limit}");
            }
        }
        // A missing observation is no better than an unreachable provider.
        let template = template(1, vec![metric("latency")]);
        let mut status = start(&template, None, None, t0());
        assert!(matches!(
            advance(&template, &mut status, &[], t0()),
            RunOutcome::Inconclusive { .. }
        ));
    }

    #[test]
    fn the_consecutive_error_counter_resets_on_a_good_measurement() {
        let mut m = metric("latency");
        m.consecutive_error_limit = Some(2);
        m.on_error = Some(FailurePolicy::Fail);
        let template = template(6, vec![m]);
        let mut status = start(&template, None, None, t0());
        let good = || vec![MetricObservation::value("latency", 0.05)];
        let bad = || vec![unreachable("latency")];
        let outcomes = drive(
            &template,
            &mut status,
            vec![bad(), bad(), good(), bad(), bad(), good()],
        );
        assert!(
            outcomes[..5]
                .iter()
                .all(|o| matches!(o, RunOutcome::Continue { .. })),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[5], RunOutcome::Passed);
        assert!(status.consecutive_errors.is_empty());
    }

    #[test]
    fn no_data_policies() {
        let no_data = || {
            vec![MetricObservation::failed(
                "latency",
                ProviderError::NoData("empty vector".into()),
            )]
        };
        let good = || vec![MetricObservation::value("latency", 0.05)];

        // Fail: a single failing metric scores 0.
        let mut m = metric("latency");
        m.on_no_data = Some(FailurePolicy::Fail);
        let t = template(3, vec![m]);
        let mut status = start(&t, None, None, t0());
        assert!(matches!(
            advance(&t, &mut status, &no_data(), t0()),
            RunOutcome::Failed { .. }
        ));
        assert_eq!(status.score, Some(0.0));

        // Inconclusive (default): no data mid-run holds; data at the end passes.
        let t = template(3, vec![metric("latency")]);
        let mut status = start(&t, None, None, t0());
        let outcomes = drive(&t, &mut status, vec![no_data(), no_data(), good()]);
        assert_eq!(outcomes[2], RunOutcome::Passed, "{outcomes:?}");
        // ... and no data at the end is inconclusive.
        let mut status = start(&t, None, None, t0());
        let outcomes = drive(&t, &mut status, vec![good(), good(), no_data()]);
        assert!(
            matches!(&outcomes[2], RunOutcome::Inconclusive { reason } if reason.contains("without a usable value")),
            "{outcomes:?}"
        );

        // Ignore: left out of the score; other metrics decide.
        let mut quiet = metric("quiet");
        quiet.on_no_data = Some(FailurePolicy::Ignore);
        let t = template(2, vec![metric("latency"), quiet]);
        let obs = || {
            vec![
                MetricObservation::value("latency", 0.05),
                MetricObservation::failed("quiet", ProviderError::NoData("no series".into())),
            ]
        };
        let mut status = start(&t, None, None, t0());
        let outcomes = drive(&t, &mut status, vec![obs(), obs()]);
        assert_eq!(outcomes[1], RunOutcome::Passed);
        // Ignored alone, nothing is scored: inconclusive, never passed.
        let mut quiet = metric("quiet");
        quiet.on_no_data = Some(FailurePolicy::Ignore);
        let t = template(1, vec![quiet]);
        let mut status = start(&t, None, None, t0());
        let outcome = advance(
            &t,
            &mut status,
            &[MetricObservation::failed(
                "quiet",
                ProviderError::NoData("none".into()),
            )],
            t0(),
        );
        assert!(
            matches!(&outcome, RunOutcome::Inconclusive { reason } if reason.contains("no metric could be scored")),
            "{outcome:?}"
        );
    }

    #[test]
    fn nan_policies() {
        let nan = || vec![MetricObservation::value("latency", f64::NAN)];
        let mut m = metric("latency");
        m.on_nan = Some(FailurePolicy::Fail);
        m.critical = true;
        let t = template(3, vec![m]);
        let mut status = start(&t, None, None, t0());
        let outcome = advance(&t, &mut status, &nan(), t0());
        assert!(
            matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("critical metric latency failed")),
            "{outcome:?}"
        );
        assert_eq!(status.measurements[0].verdict, MetricVerdict::NaN);
        assert_eq!(status.measurements[0].value, None);
        assert!(
            status.measurements[0]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("onNaN: Fail")),
            "{:?}",
            status.measurements[0].message
        );

        let t = template(1, vec![metric("latency")]);
        let mut status = start(&t, None, None, t0());
        assert!(matches!(
            advance(&t, &mut status, &nan(), t0()),
            RunOutcome::Inconclusive { .. }
        ));
    }

    #[test]
    fn a_statistical_regression_fails_the_run() {
        let mut m = metric("p99");
        m.thresholds = None;
        m.statistical = Some(StatisticalCheck {
            mann_whitney: MannWhitneySpec::default(),
        });
        let t = template(3, vec![m]);
        let mut rng = Rng::new(42);
        let mut status = start(&t, None, None, t0());
        let same = MetricObservation::samples(
            "p99",
            rng.latencies(200, 100.0, 0.2),
            rng.latencies(200, 100.0, 0.2),
        );
        assert!(matches!(
            advance(&t, &mut status, &[same], t0()),
            RunOutcome::Continue { .. }
        ));
        let shifted = MetricObservation::samples(
            "p99",
            rng.latencies(200, 110.0, 0.2),
            rng.latencies(200, 100.0, 0.2),
        );
        let outcome = advance(&t, &mut status, &[shifted], at(10));
        assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
        let last = status.measurements.last().unwrap();
        assert_eq!(last.verdict, MetricVerdict::Fail);
        assert!(last.value.unwrap() > last.baseline.unwrap());
    }

    #[test]
    fn duration_based_runs_and_initial_delay() {
        let t = AnalysisTemplate {
            name: "soak".into(),
            interval: Some("1m".into()),
            initial_delay: Some("30s".into()),
            duration: Some("3m".into()),
            metrics: vec![metric("latency")],
            ..AnalysisTemplate::default()
        };
        let mut status = start(&t, None, None, t0());
        assert_eq!(next_measurement_at(&status), Some(at(30)));
        assert!(!due(&status, at(29)));
        assert!(due(&status, at(30)));
        let good = [MetricObservation::value("latency", 0.05)];
        // Measurements at 0:30, 1:30, 2:30 continue; 3:30 (= delay + duration) ends the run.
        for (i, time) in [30, 90, 150].into_iter().enumerate() {
            let outcome = advance(&t, &mut status, &good, at(time));
            assert_eq!(
                outcome,
                RunOutcome::Continue {
                    next_at: at(time + 60)
                },
                "#{i}"
            );
        }
        assert_eq!(advance(&t, &mut status, &good, at(210)), RunOutcome::Passed);
        assert_eq!(status.measurement_count, 4);
    }

    #[test]
    fn measurements_stay_bounded_per_metric() {
        let t = template(30, vec![metric("a"), metric("b")]);
        let mut status = start(&t, None, None, t0());
        for i in 0..25 {
            let value = 0.001 * f64::from(i);
            advance(
                &t,
                &mut status,
                &[
                    MetricObservation::value("a", value),
                    MetricObservation::value("b", value),
                ],
                at(10 * i64::from(i)),
            );
        }
        assert_eq!(status.measurements.len(), 2 * MEASUREMENTS_KEPT_PER_METRIC);
        let a: Vec<_> = status
            .measurements
            .iter()
            .filter(|m| m.metric == "a")
            .collect();
        assert_eq!(a.len(), MEASUREMENTS_KEPT_PER_METRIC);
        assert_eq!(a.last().unwrap().value, Some(0.024));
        assert_eq!(a.first().unwrap().value, Some(0.015));
        // The status survives a JSON round trip (it is persisted in the resource's status).
        let json = serde_json::to_string(&status).unwrap();
        let back: AnalysisRunStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn an_invalid_template_errors_instead_of_passing() {
        let mut t = template(3, vec![metric("latency")]);
        t.interval = Some("ten seconds".into());
        let status = start(&t, None, None, t0());
        assert_eq!(status.phase, AnalysisPhase::Error);
        let mut status = AnalysisRunStatus::default();
        let outcome = advance(
            &t,
            &mut status,
            &[MetricObservation::value("latency", 0.05)],
            t0(),
        );
        assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
        assert_eq!(status.phase, AnalysisPhase::Error);
        let empty = template(3, vec![]);
        assert!(schedule(&empty).is_err());
    }

    #[test]
    fn template_duration_errors_name_the_field_and_zero_is_decided_per_field() {
        let error = |t: &AnalysisTemplate| schedule(t).unwrap_err().reason;
        let mut t = template(3, vec![metric("latency")]);
        t.interval = Some("ten seconds".into());
        assert_eq!(
            error(&t),
            r#"interval: "ten seconds" is not a duration such as 500ms, 30s, 1m30s or 2h"#
        );
        // Zero parses, but an interval of zero would measure in a tight loop.
        t.interval = Some("0s".into());
        assert_eq!(error(&t), "interval must be longer than zero");
        // An initial delay of zero is no delay.
        t.interval = Some("10s".into());
        t.initial_delay = Some("0ms".into());
        assert_eq!(schedule(&t).unwrap().initial_delay, Duration::ZERO);
        t.initial_delay = Some("1d".into());
        assert!(error(&t).starts_with(r#"initialDelay: "1d" is not a duration"#));
    }

    #[test]
    fn templates_that_bypassed_admission_are_refused() {
        // A relative check whose baseline query is the canary's would always pass.
        let mut same_query = metric("latency");
        same_query.provider.prometheus.as_mut().unwrap().query = "latency".into();
        same_query.relative = Some(RelativeCheck {
            max_regression_percent: 10.0,
            ..RelativeCheck::default()
        });
        let mut reversed = metric("latency");
        reversed.thresholds = Some(MetricThresholds {
            target: 0.5,
            acceptable: 0.2,
            critical: 0.1,
        });
        let mut no_check = metric("latency");
        no_check.thresholds = None;
        for bad in [same_query, reversed, no_check] {
            let t = template(1, vec![bad]);
            let err = schedule(&t).unwrap_err();
            assert!(err.reason.contains("metric \"latency\""), "{err}");
            let mut status = start(&t, None, None, t0());
            assert_eq!(status.phase, AnalysisPhase::Error);
            assert!(matches!(
                advance(
                    &t,
                    &mut status,
                    &[MetricObservation::value("latency", 0.0)],
                    t0()
                ),
                RunOutcome::Failed { .. }
            ));
        }
        // Mirrored thresholds are right for a higher-is-better metric.
        let mut success = metric("success");
        success.direction = Some(Direction::HigherIsBetter);
        success.thresholds = Some(MetricThresholds {
            target: 99.9,
            acceptable: 99.0,
            critical: 95.0,
        });
        assert!(schedule(&template(1, vec![success])).is_ok());
    }

    #[test]
    fn messages_stay_bounded() {
        let t = template(2, vec![metric("latency")]);
        let mut status = start(&t, None, None, t0());
        let huge = "x".repeat(20_000);
        advance(
            &t,
            &mut status,
            &[MetricObservation::failed(
                "latency",
                ProviderError::Parse(huge),
            )],
            t0(),
        );
        let m = status.measurements[0].message.as_deref().unwrap();
        assert!(m.chars().count() <= 600, "{}", m.len());
        assert!(status.message.as_deref().unwrap().chars().count() <= 600);
    }

    #[test]
    fn a_status_restored_from_the_api_continues() {
        // The controller may restart between measurements: the persisted status is enough.
        let t = template(2, vec![metric("latency")]);
        let mut status = start(&t, None, None, t0());
        advance(
            &t,
            &mut status,
            &[MetricObservation::value("latency", 0.05)],
            t0(),
        );
        let persisted = serde_json::to_value(&status).unwrap();
        let mut restored: AnalysisRunStatus = serde_json::from_value(persisted).unwrap();
        assert!(!due(&restored, at(9)));
        assert!(due(&restored, at(10)));
        assert_eq!(
            advance(
                &t,
                &mut restored,
                &[MetricObservation::value("latency", 0.05)],
                at(10)
            ),
            RunOutcome::Passed
        );
    }
}
