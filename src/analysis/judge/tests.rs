//! Unit tests of the judge: absolute thresholds, the relative check, Mann–Whitney U with
//! outlier removal, the combined metric judgement and the score.

use super::*;
use crate::analysis::testgen::{Rng, prometheus_metric};
use crate::api::analysis::{OutlierSpec, StatisticalCheck};

const LOWER: Direction = Direction::LowerIsBetter;
const HIGHER: Direction = Direction::HigherIsBetter;

fn latency_thresholds() -> MetricThresholds {
    MetricThresholds {
        target: 0.1,
        acceptable: 0.2,
        critical: 0.5,
    }
}

#[test]
fn absolute_thresholds_lower_is_better() {
    let t = latency_thresholds();
    assert_eq!(judge_absolute(0.05, &t, LOWER), ThresholdVerdict::Target);
    assert_eq!(judge_absolute(0.1, &t, LOWER), ThresholdVerdict::Target);
    assert_eq!(
        judge_absolute(0.15, &t, LOWER),
        ThresholdVerdict::Acceptable
    );
    assert_eq!(judge_absolute(0.2, &t, LOWER), ThresholdVerdict::Acceptable);
    assert_eq!(judge_absolute(0.21, &t, LOWER), ThresholdVerdict::Marginal);
    assert_eq!(judge_absolute(0.5, &t, LOWER), ThresholdVerdict::Critical);
    assert_eq!(
        judge_absolute(f64::INFINITY, &t, LOWER),
        ThresholdVerdict::Critical
    );
}

#[test]
fn absolute_thresholds_higher_is_better() {
    // Success rate: target 99.9, acceptable 99, critical 95.
    let t = MetricThresholds {
        target: 99.9,
        acceptable: 99.0,
        critical: 95.0,
    };
    assert_eq!(judge_absolute(100.0, &t, HIGHER), ThresholdVerdict::Target);
    assert_eq!(judge_absolute(99.9, &t, HIGHER), ThresholdVerdict::Target);
    assert_eq!(
        judge_absolute(99.5, &t, HIGHER),
        ThresholdVerdict::Acceptable
    );
    assert_eq!(
        judge_absolute(99.0, &t, HIGHER),
        ThresholdVerdict::Acceptable
    );
    assert_eq!(judge_absolute(97.0, &t, HIGHER), ThresholdVerdict::Marginal);
    assert_eq!(judge_absolute(95.0, &t, HIGHER), ThresholdVerdict::Critical);
    assert_eq!(judge_absolute(10.0, &t, HIGHER), ThresholdVerdict::Critical);
}

fn relative(max: f64, critical: Option<f64>, min_abs: Option<f64>) -> RelativeCheck {
    RelativeCheck {
        max_regression_percent: max,
        critical_regression_percent: critical,
        min_absolute_change: min_abs,
    }
}

/// Asserts the relative verdict of each `(canary, baseline, expected)` case under `check`.
fn assert_relative_verdicts(
    check: &RelativeCheck,
    direction: Direction,
    cases: &[(f64, f64, MetricVerdict)],
) {
    for &(canary, baseline, expected) in cases {
        assert_eq!(
            judge_relative(canary, baseline, check, direction).verdict,
            expected,
            "canary {canary} against baseline {baseline}"
        );
    }
}

#[test]
fn relative_check_both_directions() {
    let check = relative(10.0, Some(50.0), None);
    let r = judge_relative(105.0, 100.0, &check, LOWER);
    assert!((r.regression_percent - 5.0).abs() < 1e-12);
    assert_eq!(r.verdict, MetricVerdict::Pass);
    assert_relative_verdicts(
        &check,
        LOWER,
        &[
            (110.0, 100.0, MetricVerdict::Pass),
            (115.0, 100.0, MetricVerdict::Fail),
            (150.0, 100.0, MetricVerdict::Critical),
            // Better than baseline is never a regression.
            (50.0, 100.0, MetricVerdict::Pass),
        ],
    );

    // Higher is better: a success rate falling from 99 to 95 is a 4.04% regression.
    let check = relative(2.0, None, None);
    let r = judge_relative(95.0, 99.0, &check, HIGHER);
    assert!((r.regression_percent - 4.0404040404).abs() < 1e-6);
    assert_eq!(r.verdict, MetricVerdict::Fail);
    assert_relative_verdicts(
        &check,
        HIGHER,
        &[
            (99.5, 99.0, MetricVerdict::Pass),
            (98.5, 99.0, MetricVerdict::Pass),
        ],
    );
}

#[test]
fn relative_check_with_a_zero_baseline() {
    let check = relative(10.0, None, None);
    assert_relative_verdicts(&check, LOWER, &[(0.0, 0.0, MetricVerdict::Pass)]);
    let r = judge_relative(0.001, 0.0, &check, LOWER);
    assert!(r.regression_percent.is_infinite());
    assert_eq!(r.verdict, MetricVerdict::Fail);
    // An absolute tolerance absorbs tiny error rates next to a zero baseline.
    let tolerant = relative(10.0, None, Some(0.01));
    assert_relative_verdicts(
        &tolerant,
        LOWER,
        &[
            (0.001, 0.0, MetricVerdict::Pass),
            (0.02, 0.0, MetricVerdict::Fail),
        ],
    );
}

fn mann_whitney(confidence: f64, min_effect: f64, min_samples: i32) -> MannWhitneySpec {
    MannWhitneySpec {
        confidence: Some(confidence),
        min_effect_percent: Some(min_effect),
        min_samples: Some(min_samples),
    }
}

#[test]
fn equal_latency_distributions_pass() {
    let spec = mann_whitney(0.98, 5.0, 20);
    let mut failures = 0;
    for seed in 0..50 {
        let mut rng = Rng::new(seed);
        let baseline = rng.latencies(200, 100.0, 0.2);
        let canary = rng.latencies(200, 100.0, 0.2);
        let j = judge_mann_whitney(&canary, &baseline, &spec, LOWER).unwrap();
        if j.verdict != MetricVerdict::Pass {
            failures += 1;
        }
    }
    assert!(failures <= 1, "{failures} of 50 equal runs failed");
}

#[test]
fn a_ten_percent_latency_shift_over_200_samples_is_detected() {
    let spec = mann_whitney(0.98, 5.0, 20);
    for seed in 0..20 {
        let mut rng = Rng::new(1000 + seed);
        let baseline = rng.latencies(200, 100.0, 0.2);
        let canary = rng.latencies(200, 110.0, 0.2);
        let j = judge_mann_whitney(&canary, &baseline, &spec, LOWER).unwrap();
        assert_eq!(j.verdict, MetricVerdict::Fail, "seed {seed}: {j:?}");
        assert!(j.p_value < 0.02, "seed {seed}: {j:?}");
        assert!(
            (5.0..16.0).contains(&j.effect_percent),
            "seed {seed}: effect {}",
            j.effect_percent
        );
        assert_eq!(j.samples, (200, 200));
        // The same shift is an improvement for a higher-is-better metric.
        let better = judge_mann_whitney(&canary, &baseline, &spec, HIGHER).unwrap();
        assert_eq!(better.verdict, MetricVerdict::Pass);
    }
}

#[test]
fn a_significant_but_small_shift_passes_below_the_minimum_effect() {
    let mut rng = Rng::new(5);
    let baseline = rng.latencies(5000, 100.0, 0.2);
    let canary = rng.latencies(5000, 102.0, 0.2);
    let strict =
        judge_mann_whitney(&canary, &baseline, &mann_whitney(0.98, 0.0, 20), LOWER).unwrap();
    assert_eq!(strict.verdict, MetricVerdict::Fail, "{strict:?}");
    let j = judge_mann_whitney(&canary, &baseline, &mann_whitney(0.98, 5.0, 20), LOWER).unwrap();
    assert!(j.p_value < 0.02, "{j:?}");
    assert_eq!(j.verdict, MetricVerdict::Pass, "{j:?}");
}

#[test]
fn a_success_rate_drop_is_detected_when_higher_is_better() {
    let mut rng = Rng::new(77);
    let baseline: Vec<f64> = (0..100).map(|_| 99.0 + 0.3 * rng.normal()).collect();
    let canary: Vec<f64> = (0..100).map(|_| 93.0 + 0.3 * rng.normal()).collect();
    let j = judge_mann_whitney(&canary, &baseline, &mann_whitney(0.95, 5.0, 20), HIGHER).unwrap();
    assert_eq!(j.verdict, MetricVerdict::Fail, "{j:?}");
    assert!(j.effect_percent > 5.0);
}

#[test]
fn too_few_samples_and_nan_samples() {
    let spec = mann_whitney(0.98, 5.0, 20);
    let few = vec![1.0; 19];
    let enough = vec![1.0; 20];
    assert_eq!(
        judge_mann_whitney(&few, &enough, &spec, LOWER),
        Err(StatisticalGap::TooFewSamples {
            canary: 19,
            baseline: 20,
            min: 20
        })
    );
    assert_eq!(
        judge_mann_whitney(&[f64::NAN; 30], &enough, &spec, LOWER),
        Err(StatisticalGap::AllNaN)
    );
    // NaN samples are dropped; the rest still counts.
    let mut with_nan = vec![1.0; 20];
    with_nan.push(f64::NAN);
    let j = judge_mann_whitney(&with_nan, &enough, &spec, LOWER).unwrap();
    assert_eq!(j.samples, (20, 20));
    assert_eq!(j.verdict, MetricVerdict::Pass);
}

/// One GC pause in the canary's samples: with every sample kept it pushes the
/// Hodges–Lehmann shift over the 5% minimum effect and the canary fails; with Kayenta's
/// outlier removal the pause is dropped and the canary passes, and the measurement says so.
#[test]
fn a_single_huge_outlier_no_longer_flips_the_verdict() {
    let baseline: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i)).collect();
    let mut canary: Vec<f64> = (0..30).map(|i| 105.51 + f64::from(i)).collect();
    let mut spec = metric("latency");
    spec.statistical = Some(StatisticalCheck {
        mann_whitney: mann_whitney(0.98, 5.0, 20),
    });
    // Without the pause: a 4.8% shift, below the minimum effect.
    let clean = judge_metric(
        &spec,
        Some(&MetricObservation::samples(
            "latency",
            canary.clone(),
            baseline.clone(),
        )),
    );
    assert_eq!(clean.verdict, MetricVerdict::Pass, "{clean:?}");
    canary.push(1e6);
    let observation = MetricObservation::samples("latency", canary, baseline);
    let kept = judge_metric(&spec, Some(&observation));
    assert_eq!(kept.verdict, MetricVerdict::Fail, "{kept:?}");
    assert_eq!(kept.outliers_removed, None);

    spec.outliers = Some(OutlierSpec {
        strategy: OutlierStrategy::Keep,
        factor: None,
    });
    assert_eq!(judge_metric(&spec, Some(&observation)), kept);

    spec.outliers = Some(OutlierSpec {
        strategy: OutlierStrategy::Remove,
        factor: None,
    });
    let removed = judge_metric(&spec, Some(&observation));
    assert_eq!(removed.verdict, MetricVerdict::Pass, "{removed:?}");
    assert_eq!(
        removed.outliers_removed,
        Some(OutliersRemoved {
            canary: 1,
            canary_samples: 31,
            baseline: 0,
            baseline_samples: 30
        })
    );
    assert!(
        removed
            .message
            .contains("outliers removed (IQR × 3): canary 1 of 31, baseline 0 of 30"),
        "{}",
        removed.message
    );
    assert!(removed.message.contains("n=30/30"), "{}", removed.message);
    assert!(
        removed.threshold.contains("Q1/Q3 ± 3·IQR removed"),
        "{}",
        removed.threshold
    );
}

/// Each side is trimmed with its own fences: spikes in the baseline are removed without
/// touching the canary, and a side too small for quartiles is left whole.
#[test]
fn outliers_are_removed_from_each_side_separately() {
    let baseline: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i)).collect();
    let canary: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i) * 1.02).collect();
    let mut spec = metric("latency");
    spec.statistical = Some(StatisticalCheck {
        mann_whitney: mann_whitney(0.98, 5.0, 20),
    });
    spec.outliers = Some(OutlierSpec {
        strategy: OutlierStrategy::Remove,
        factor: Some(1.5),
    });
    let mut spiky = baseline.clone();
    spiky.extend([5000.0, 9000.0]);
    let j = judge_metric(
        &spec,
        Some(&MetricObservation::samples("latency", canary, spiky)),
    );
    let r = j.outliers_removed.unwrap();
    assert_eq!((r.canary, r.baseline, r.baseline_samples), (0, 2, 32));
    assert!(j.message.contains("n=30/30"), "{}", j.message);
    // Too few samples on a side: nothing removed there, and the judge reports the gap.
    let j = judge_metric(
        &spec,
        Some(&MetricObservation::samples(
            "latency",
            vec![1.0, 2.0, 1e9],
            baseline,
        )),
    );
    assert_eq!(j.outliers_removed.unwrap().canary, 0);
    assert_eq!(j.verdict, MetricVerdict::NoData, "{j:?}");
}

fn metric(name: &str) -> MetricSpec {
    prometheus_metric(name, "q{rev=\"{{revision}}\"}".into())
}

#[test]
fn judge_metric_combines_checks_worst_first() {
    let mut spec = metric("latency");
    spec.thresholds = Some(latency_thresholds());
    spec.relative = Some(relative(10.0, None, None));

    let good = MetricObservation::compared("latency", 0.15, 0.14);
    let j = judge_metric(&spec, Some(&good));
    assert_eq!(j.verdict, MetricVerdict::Pass, "{j:?}");
    assert_eq!((j.value, j.baseline), (Some(0.15), Some(0.14)));
    assert!(j.threshold.contains("acceptable 0.2"), "{}", j.threshold);
    assert!(j.threshold.contains("10% worse"), "{}", j.threshold);

    // Acceptable on its own, but 50% worse than the baseline.
    let regressed = MetricObservation::compared("latency", 0.15, 0.10);
    assert_eq!(
        judge_metric(&spec, Some(&regressed)).verdict,
        MetricVerdict::Fail
    );

    // A critical level wins even when the baseline could not be read.
    let mut critical = MetricObservation::value("latency", 0.9);
    critical.baseline = Some(Err(ProviderError::Unreachable("refused".into())));
    assert_eq!(
        judge_metric(&spec, Some(&critical)).verdict,
        MetricVerdict::Critical
    );

    // Without a critical finding, the missing baseline is an error.
    let mut partial = MetricObservation::value("latency", 0.15);
    partial.baseline = Some(Err(ProviderError::Unreachable("refused".into())));
    let j = judge_metric(&spec, Some(&partial));
    assert_eq!(j.verdict, MetricVerdict::Error);
    assert_eq!(j.error, Some(ProviderError::Unreachable("refused".into())));

    // A reading that was never taken counts as an error too.
    let j = judge_metric(&spec, Some(&MetricObservation::value("latency", 0.15)));
    assert_eq!(j.verdict, MetricVerdict::Error);
    assert_eq!(judge_metric(&spec, None).verdict, MetricVerdict::Error);
}

#[test]
fn judge_metric_reports_no_data_and_nan() {
    let mut spec = metric("errors");
    spec.thresholds = Some(latency_thresholds());
    let no_data = MetricObservation::failed("errors", ProviderError::NoData("empty vector".into()));
    assert_eq!(
        judge_metric(&spec, Some(&no_data)).verdict,
        MetricVerdict::NoData
    );
    let nan = MetricObservation::value("errors", f64::NAN);
    let j = judge_metric(&spec, Some(&nan));
    assert_eq!(j.verdict, MetricVerdict::NaN);
    assert_eq!(j.value, None);
}

#[test]
fn judge_metric_statistical_reports_medians() {
    let mut spec = metric("p99");
    spec.statistical = Some(StatisticalCheck {
        mann_whitney: mann_whitney(0.98, 5.0, 20),
    });
    let mut rng = Rng::new(3);
    let obs = MetricObservation::samples(
        "p99",
        rng.latencies(200, 110.0, 0.2),
        rng.latencies(200, 100.0, 0.2),
    );
    let j = judge_metric(&spec, Some(&obs));
    assert_eq!(j.verdict, MetricVerdict::Fail, "{j:?}");
    let (value, baseline) = (j.value.unwrap(), j.baseline.unwrap());
    assert!(value > baseline, "{value} vs {baseline}");
    assert!(j.message.contains("Mann–Whitney"), "{}", j.message);
}

#[test]
fn weighted_scores() {
    use MetricVerdict::*;
    assert_eq!(score(&[(1.0, Pass), (1.0, Pass)]), Some(100.0));
    assert_eq!(score(&[(1.0, Pass), (1.0, Fail)]), Some(50.0));
    assert_eq!(score(&[(3.0, Pass), (1.0, Fail)]), Some(75.0));
    assert_eq!(score(&[(1.0, Pass), (1.0, Marginal)]), Some(75.0));
    assert_eq!(score(&[(1.0, Critical)]), Some(0.0));
    // Unscored verdicts and zero weights are left out.
    assert_eq!(
        score(&[(1.0, Pass), (5.0, NoData), (5.0, Error)]),
        Some(100.0)
    );
    assert_eq!(score(&[(0.0, Fail), (1.0, Pass)]), Some(100.0));
    assert_eq!(score(&[(1.0, NaN)]), None);
    assert_eq!(score(&[]), None);
}

#[test]
fn score_classes() {
    let scoring = Scoring {
        pass_threshold: 95.0,
        marginal_threshold: 75.0,
    };
    assert_eq!(classify_score(100.0, &scoring), ScoreClass::Pass);
    assert_eq!(classify_score(95.0, &scoring), ScoreClass::Pass);
    assert_eq!(classify_score(94.9, &scoring), ScoreClass::Marginal);
    assert_eq!(classify_score(75.0, &scoring), ScoreClass::Marginal);
    assert_eq!(classify_score(74.9, &scoring), ScoreClass::Fail);
}
