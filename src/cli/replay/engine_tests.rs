//! The replay engine on made-up measurements: a regression reverts at the measurement that
//! sees it, a healthy canary promotes through steps and pauses, a looser threshold lets it go
//! on, a provider that gives NaN or errors never promotes, a recording replays exactly as the
//! measurements it recorded, and a range too long is refused before any measurement.

use super::*;
use crate::analysis::ProviderError;
use crate::cli::replay::overrides;
use crate::cli::replay::recording::{RecordedSource, Recorder, Recording};

const FROM: &str = "2026-12-02T10:00:00Z";

/// Every metric reads `value(at)`.
struct Curve<F>(F);

impl<F: FnMut(Timestamp) -> Result<f64, ProviderError> + Send> Source for Curve<F> {
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        vars: &'a QueryVars,
        _pods: &'a SidePods,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>> {
        assert_eq!(
            vars.canary, "v2-label",
            "the canary label reaches the queries"
        );
        let reading = (self.0)(at);
        let observations = template
            .metrics
            .iter()
            .map(|m| MetricObservation {
                metric: m.name.clone(),
                canary: Some(reading.clone()),
                ..MetricObservation::default()
            })
            .collect();
        Box::pin(async move { observations })
    }
}

fn from() -> Timestamp {
    FROM.parse().unwrap()
}

fn at(seconds: i64) -> Timestamp {
    from()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap()
}

/// A SafeDeployment of 2 replicas with `steps`, and the error-ratio template `errors` (every
/// 2 s after 5 s, thresholds 0.005 / 0.01 / 0.02), as background analysis if `background`.
fn spec(steps: serde_json::Value, background: bool) -> SafeDeploymentSpec {
    let mut spec = serde_json::json!({
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/app:v2"}]}
        },
        "strategy": {"canary": {"steps": steps}},
        "analyses": [{
            "name": "errors", "interval": "2s", "initialDelay": "5s", "count": 1000,
            "metrics": [{
                "name": "error-ratio",
                "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "ratio{v=\"{{canary}}\"}"}},
                "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
                "onError": "Inconclusive", "consecutiveErrorLimit": 1
            }]
        }]
    });
    if background {
        spec["strategy"]["canary"]["backgroundAnalysis"] = serde_json::json!("errors");
    }
    serde_json::from_value(spec).unwrap()
}

fn input(spec: SafeDeploymentSpec, to_seconds: i64) -> ReplayInput {
    ReplayInput {
        name: "web".into(),
        namespace: "shop".into(),
        spec,
        config_objects: BTreeMap::new(),
        canary_label: Some("v2-label".into()),
        stable_label: Some("v1-label".into()),
        from: from(),
        to: at(to_seconds),
    }
}

fn run<S: Source>(input: &ReplayInput, source: &mut S) -> Timeline {
    futures::executor::block_on(replay(input, source)).unwrap()
}

fn measurements(timeline: &Timeline) -> Vec<(f64, MeasurementEntry)> {
    timeline
        .entries
        .iter()
        .filter_map(|e| match &e.what {
            What::Measurement(m) => Some((e.offset_seconds, m.clone())),
            _ => None,
        })
        .collect()
}

/// Healthy at 0.1 % errors until 12 s, then 5 %.
fn regression(at_time: Timestamp) -> Result<f64, ProviderError> {
    Ok(if at_time < at(12) { 0.001 } else { 0.05 })
}

#[test]
fn a_regression_reverts_at_the_first_measurement_that_sees_it() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let input = input(spec(steps, true), 600);
    let timeline = run(&input, &mut Curve(regression));
    assert_eq!(timeline.outcome.result, "Reverted", "{timeline:#?}");
    assert!(
        timeline.outcome.reason.contains("AnalysisFailed"),
        "{}",
        timeline.outcome.reason
    );
    let taken = measurements(&timeline);
    // Measured at 5, 7, 9, 11 s (healthy), then at 13 s the jump: one interval, no later.
    let times: Vec<f64> = taken.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [5.0, 7.0, 9.0, 11.0, 13.0]);
    assert!(
        taken[..4]
            .iter()
            .all(|(_, m)| m.verdict == MetricVerdict::Pass)
    );
    assert_eq!(timeline.outcome.offset_seconds, 13.0);
    let failing = &timeline.outcome.failing;
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].metric, "error-ratio");
    assert_eq!(failing[0].value, Some(0.05));
    assert_eq!(failing[0].verdict, MetricVerdict::Critical);
    assert!(
        failing[0].threshold.contains("0.02"),
        "{}",
        failing[0].threshold
    );
    // The canary started at `from`, at 50 %.
    let started = timeline.entries.iter().find_map(|e| match &e.what {
        What::Event { weight, .. } if e.offset_seconds == 0.0 => Some(*weight),
        _ => None,
    });
    assert_eq!(started, Some(50), "{:#?}", timeline.entries);
}

#[test]
fn a_looser_threshold_set_on_the_same_data_does_not_revert() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let loose = overrides::apply(
        &spec(steps, true),
        &[
            "analyses.errors.metrics.error-ratio.thresholds.acceptable=0.1".into(),
            "analyses.errors.metrics.error-ratio.thresholds.critical=0.2".into(),
        ],
    )
    .unwrap();
    let timeline = run(&input(loose, 30), &mut Curve(regression));
    assert_eq!(timeline.outcome.result, "RangeEnded", "{timeline:#?}");
    assert!(measurements(&timeline).len() >= 12);
}

#[test]
fn a_healthy_canary_goes_through_its_steps_and_is_promoted() {
    let steps = serde_json::json!([
        {"setWeight": 50},
        {"analysis": {"template": "errors"}},
        {"pause": {"duration": "30s"}},
        {"setWeight": 100}
    ]);
    let mut spec = spec(steps, false);
    spec.analyses[0].count = Some(3);
    let timeline = run(&input(spec, 600), &mut Curve(|_| Ok(0.001)));
    assert_eq!(timeline.outcome.result, "Promoted", "{timeline:#?}");
    // Three measurements at 5, 7, 9 s; the 30 s pause; promoted at 39 s.
    let times: Vec<f64> = measurements(&timeline).iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [5.0, 7.0, 9.0]);
    assert_eq!(timeline.outcome.offset_seconds, 39.0);
    assert!(
        timeline
            .entries
            .iter()
            .any(|e| matches!(&e.what, What::RunEnded { phase, .. } if phase == "Successful"))
    );
}

#[test]
fn an_indefinite_pause_without_analysis_waits_for_a_person() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let timeline = run(&input(spec(steps, false), 600), &mut Curve(|_| Ok(0.001)));
    assert_eq!(timeline.outcome.result, "WaitingForHuman", "{timeline:#?}");
    assert_eq!(timeline.outcome.offset_seconds, 0.0);
}

#[test]
fn nan_or_a_provider_error_never_promotes() {
    let steps = serde_json::json!([{"setWeight": 50}, {"analysis": {"template": "errors"}}, {"setWeight": 100}]);
    for reading in [
        Ok(f64::NAN),
        Ok(f64::INFINITY),
        Err(ProviderError::Unreachable("connection refused".into())),
        Err(ProviderError::NoData("empty vector".into())),
    ] {
        let mut spec = spec(steps.clone(), false);
        spec.analyses[0].count = Some(3);
        let timeline = run(&input(spec, 120), &mut Curve(|_| reading.clone()));
        assert_ne!(
            timeline.outcome.result, "Promoted",
            "{reading:?}: {timeline:#?}"
        );
        assert!(!measurements(&timeline).is_empty(), "{reading:?}");
        if reading.is_err() {
            assert!(
                timeline.outcome.provider_errors > 0
                    || reading.as_ref().is_err_and(ProviderError::is_no_data)
            );
        }
    }
}

#[test]
fn a_recording_replays_as_the_measurements_it_recorded() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let input = input(spec(steps, true), 600);
    let mut recorder = Recorder::new(Curve(regression));
    let live = run(&input, &mut recorder);
    let recording = Recording {
        kind: "ReplayRecording".into(),
        measurements: recorder.measurements,
        ..Recording::default()
    };
    let text = serde_json::to_string(&recording).unwrap();
    let read: Recording = serde_json::from_str(&text).unwrap();
    let mut source = RecordedSource::new(&read).unwrap();
    let replayed = futures::executor::block_on(replay(&input, &mut source)).unwrap();
    assert_eq!(replayed, live);
}

/// Values whose shortest decimal form a fast float parser reads back one ULP off (about one
/// value in ten does): a recording must give back exactly what it recorded, or the offline
/// replay of a live run differs from it.
#[test]
fn a_recording_gives_back_every_value_to_the_last_bit() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let input = input(spec(steps, true), 600);
    let mut state: u64 = 12345;
    let mut awkward = |_at: Timestamp| -> Result<f64, ProviderError> {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok((state >> 11) as f64 / (1u64 << 53) as f64 * 0.004)
    };
    let mut recorder = Recorder::new(Curve(&mut awkward));
    let live = run(&input, &mut recorder);
    assert!(measurements(&live).len() > 100, "{live:#?}");
    let recording = Recording {
        kind: "ReplayRecording".into(),
        measurements: recorder.measurements,
        ..Recording::default()
    };
    let read: Recording =
        serde_json::from_str(&serde_json::to_string(&recording).unwrap()).unwrap();
    assert_eq!(read, recording);
    let mut source = RecordedSource::new(&read).unwrap();
    let replayed = futures::executor::block_on(replay(&input, &mut source)).unwrap();
    assert_eq!(replayed, live);
}

#[test]
fn a_range_of_ten_years_is_refused_before_any_measurement() {
    let steps = serde_json::json!([{"setWeight": 50}, {"pause": {}}]);
    let input = input(spec(steps, true), 10 * 365 * 24 * 3600);
    let mut asked = 0;
    let error = futures::executor::block_on(replay(
        &input,
        &mut Curve(|_| {
            asked += 1;
            Ok(0.0)
        }),
    ))
    .unwrap_err();
    assert!(matches!(error, ReplayError::TooManySteps { .. }), "{error}");
    assert!(error.to_string().contains("at most 10000"), "{error}");
    assert_eq!(asked, 0);
}

#[test]
fn a_recording_is_read_at_the_exact_time_or_within_one_interval_before() {
    let recording: Recording = serde_json::from_value(serde_json::json!({
        "kind": "ReplayRecording", "canaryRevision": "v2-label", "stableRevision": "",
        "from": FROM, "to": FROM,
        "measurements": [
            {"template": "errors", "at": "2026-12-02T10:00:05Z", "metrics": [{"metric": "error-ratio", "canary": {"value": 0.001}}]},
            {"template": "errors", "at": "2026-12-02T10:00:07Z", "metrics": [{"metric": "error-ratio", "canary": {"value": "NaN"}}]},
            {"template": "errors", "at": "2026-12-02T10:00:09Z", "metrics": [{"metric": "error-ratio", "canary": {"error": {"kind": "unreachable", "message": "refused"}}}]}
        ]
    }))
    .unwrap();
    let mut source = RecordedSource::new(&recording).unwrap();
    let template = spec(serde_json::json!([]), true).analyses.remove(0);
    let vars = QueryVars {
        canary: "v2-label".into(),
        stable: String::new(),
        baseline: String::new(),
        namespace: String::new(),
        name: String::new(),
        ..QueryVars::default()
    };
    let mut read = |seconds: i64, millis: i64| {
        let at = at(seconds)
            .checked_add(SignedDuration::from_millis(millis))
            .unwrap();
        futures::executor::block_on(source.measure(&template, &vars, &SidePods::default(), at))
            .remove(0)
            .canary
            .unwrap()
    };
    assert_eq!(read(5, 0), Ok(0.001));
    // 1.9 s after it (the interval is 2 s): still that one.
    assert_eq!(read(5, 1900), Ok(0.001));
    assert!(read(7, 0).unwrap().is_nan());
    assert!(matches!(read(9, 0), Err(ProviderError::Unreachable(_))));
    // Before the first, or an interval or more after the last: nothing recorded.
    assert!(read(4, 0).is_err_and(|e| e.is_no_data()));
    assert!(read(11, 0).is_err_and(|e| e.is_no_data()));
}
