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
//!   - too little canary traffic (`minimumTraffic`): always unjudged, whatever the policies (a
//!     run cannot pass on a measurement the guard withheld);
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
use crate::api::duration::SpecDuration;
use crate::api::traffic::MAX_MINIMUM_TRAFFIC;

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
    let interval = SpecDuration::parse_or(template.interval.as_ref(), DEFAULT_INTERVAL)
        .map_err(|e| error(format!("interval: {e}")))?;
    if interval.is_zero() {
        return Err(error("interval must be longer than zero".into()));
    }
    let initial_delay = match &template.initial_delay {
        Some(delay) => delay
            .parse()
            .map_err(|e| error(format!("initialDelay: {e}")))?,
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
        (None, Some(duration)) => RunEnd::Duration(
            duration
                .parse()
                .map_err(|e| error(format!("duration: {e}")))?,
        ),
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
        provider.job.is_some(),
    ];
    if providers.into_iter().filter(|&set| set).count() != 1 {
        return Err("set exactly one of prometheus, web, kubernetes or job".into());
    }
    if provider.job.is_some() && metric.thresholds.is_none() {
        // The Job's exit is its check: the controller judges it with `job::judged`.
        return Ok(());
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
    let compact = |text: &str| -> String { text.chars().filter(|c| !c.is_whitespace()).collect() };
    if let Some(guard) = &metric.minimum_traffic {
        let selects_canary = |text: &str| {
            let text = compact(text);
            text.contains("{{canary}}") || text.contains("{{revision}}")
        };
        match (
            &guard.query,
            &guard.json_path,
            &provider.prometheus,
            &provider.web,
        ) {
            (Some(query), None, Some(_), _) if !selects_canary(query) => {
                return Err(
                    "minimumTraffic.query must select the canary with {{canary}} \
                            (or {{revision}})"
                        .into(),
                );
            }
            (Some(_), None, Some(_), _) => {}
            (None, Some(_), _, Some(w))
                if !selects_canary(&w.url) && !w.body.as_deref().is_some_and(selects_canary) =>
            {
                return Err(
                    "minimumTraffic.jsonPath needs a web url or body that selects \
                            the canary ({{canary}} or {{revision}})"
                        .into(),
                );
            }
            (None, Some(_), _, Some(_)) => {}
            _ => {
                return Err("minimumTraffic.query needs a prometheus provider, \
                            minimumTraffic.jsonPath a web provider"
                    .into());
            }
        }
        if !(guard.minimum > 0.0 && guard.minimum <= MAX_MINIMUM_TRAFFIC) {
            return Err("minimumTraffic.minimum must be above 0 and at most 10^12".into());
        }
    }
    if metric.relative.is_some() || metric.statistical.is_some() {
        let has_revision = |text: &str| compact(text).contains("{{revision}}");
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
/// When the measurement after the one taken at `now` is due: one interval after the one just
/// taken was *scheduled*, so a late wake-up does not push every later measurement back (the
/// instants stay on the run's grid, which `safedeploy replay` evaluates at too); after a wait
/// longer than an interval (an outage), one interval from now: no burst of catch-up
/// measurements.
fn next_due(scheduled: Option<Timestamp>, now: Timestamp, interval: Duration) -> Timestamp {
    match scheduled.map(|at| later(at, interval)) {
        Some(next) if next > now => next,
        _ => later(now, interval),
    }
}

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
            MetricVerdict::InsufficientTraffic => missing.push(format!(
                "{}: too little canary traffic ({} of at least {})",
                spec.name,
                measurement
                    .traffic
                    .map_or_else(|| "no number".to_string(), |t| t.to_string()),
                spec.minimum_traffic.as_ref().map_or(0.0, |g| g.minimum)
            )),
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
        Err(error) => return conclude(status, AnalysisPhase::Error, now, error.to_string()),
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
    let mut thin_traffic: Vec<String> = Vec::new();

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
            MetricVerdict::InsufficientTraffic => {
                thin_traffic.push(format!("{name}: {}", judgement.message));
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
            traffic: judgement.traffic,
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

    let ended_early = if !critical_failures.is_empty() {
        Some((
            AnalysisPhase::Failed,
            format!("{progress}: {}", critical_failures.join("; ")),
        ))
    } else if !error_failures.is_empty() {
        Some((
            AnalysisPhase::Error,
            format!(
                "{progress}: provider errors beyond consecutiveErrorLimit with onError Fail: {}",
                error_failures.join("; ")
            ),
        ))
    } else if let Some(s) = score
        && classify_score(s, &scoring) == ScoreClass::Fail
    {
        Some((
            AnalysisPhase::Failed,
            format!(
                "{progress}: score {s:.1} is below the marginal threshold {}",
                scoring.marginal_threshold
            ),
        ))
    } else if !error_inconclusive.is_empty() {
        Some((
            AnalysisPhase::Inconclusive,
            format!(
                "{progress}: provider errors beyond consecutiveErrorLimit: {}",
                error_inconclusive.join("; ")
            ),
        ))
    } else {
        None
    };
    if let Some((phase, reason)) = ended_early {
        return conclude(status, phase, now, reason);
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
        let scheduled = parse_time(status.next_measurement_at.as_deref());
        let next_at = next_due(scheduled, now, schedule.interval);
        status.next_measurement_at = Some(next_at.to_string());
        let mut message = format!("{progress}: {score_text}");
        if !errored.is_empty() {
            message.push_str(&format!("; provider errors: {}", errored.join("; ")));
        }
        if !unjudged.is_empty() {
            message.push_str(&format!("; not judged: {}", unjudged.join("; ")));
        }
        if !thin_traffic.is_empty() {
            message.push_str(&format!(
                "; too little traffic: {}",
                thin_traffic.join("; ")
            ));
        }
        status.message = Some(bounded(message));
        return RunOutcome::Continue { next_at };
    }

    let (phase, reason) = if !errored.is_empty() {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "{progress} (last): cannot pass while a provider errors: {}",
                errored.join("; ")
            ),
        )
    } else if !thin_traffic.is_empty() {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "{progress} (last): too little canary traffic to judge: {}",
                thin_traffic.join("; ")
            ),
        )
    } else if !unjudged.is_empty() {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "{progress} (last): metrics without a usable value: {}",
                unjudged.join("; ")
            ),
        )
    } else {
        match score {
            None if template.metrics.iter().all(|m| m.dry_run) => (
                AnalysisPhase::Successful,
                format!("{progress} (last): every metric is a dry run"),
            ),
            None => (
                AnalysisPhase::Inconclusive,
                format!("{progress} (last): no metric could be scored"),
            ),
            Some(s) if classify_score(s, &scoring) == ScoreClass::Pass => (
                AnalysisPhase::Successful,
                format!(
                    "{progress} (last): score {s:.1} reaches the pass threshold {}",
                    scoring.pass_threshold
                ),
            ),
            Some(s) => (
                AnalysisPhase::Inconclusive,
                format!(
                    "{progress} (last): score {s:.1} is marginal (pass threshold {}, marginal {})",
                    scoring.pass_threshold, scoring.marginal_threshold
                ),
            ),
        }
    };
    conclude(status, phase, now, reason)
}

/// Ends the run in `phase` with `reason` (kept bounded) and returns its outcome: `Successful`
/// passes, `Inconclusive` is inconclusive, `Failed` and `Error` fail.
fn conclude(
    status: &mut AnalysisRunStatus,
    phase: AnalysisPhase,
    now: Timestamp,
    reason: String,
) -> RunOutcome {
    let reason = finish(status, phase, now, reason);
    match phase {
        AnalysisPhase::Successful => RunOutcome::Passed,
        AnalysisPhase::Inconclusive => RunOutcome::Inconclusive { reason },
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Running => {
            RunOutcome::Failed { reason }
        }
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
        MetricVerdict::InsufficientTraffic => (
            Effect::Unjudged,
            Some("not judged: too little canary traffic (minimumTraffic)".into()),
        ),
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
#[path = "run_tests.rs"]
mod tests;
