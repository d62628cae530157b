//! Hostile inputs for the statistics, the outlier removal and the judge: empty, single, all
//! equal, huge (±1e308, ±`f64::MAX`), tiny (subnormal), signed zeros, negative, NaN and
//! infinite samples, random lengths 0..200, from the seeded test generator. Every public
//! function must return without panicking, and with a finite value or the documented one.

use super::judge::{self, StatisticalGap};
use super::outliers::{self, MIN_SAMPLES_FOR_OUTLIERS};
use super::stats::{self, StatsError};
use super::testgen::Rng;
use super::{MetricObservation, ProviderError};
use crate::api::analysis::{
    Direction, MannWhitneySpec, MetricSpec, MetricThresholds, MetricVerdict, OutlierSpec,
    OutlierStrategy, RelativeCheck, StatisticalCheck,
};

const SPECIAL: [f64; 14] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e308,
    -1e308,
    f64::MAX,
    -f64::MAX,
    f64::MIN_POSITIVE,
    5e-324,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.1,
];

fn pick(rng: &mut Rng, n: usize) -> usize {
    usize::try_from(rng.next_u64() % n as u64).unwrap()
}

/// One hostile value: mostly ordinary (some negative), sometimes special.
fn value(rng: &mut Rng, special_rate: u64) -> f64 {
    if rng.next_u64() % 100 < special_rate {
        SPECIAL[pick(rng, SPECIAL.len())]
    } else {
        let v = rng.normal() * 100.0;
        if rng.next_u64().is_multiple_of(4) {
            -v.abs()
        } else {
            v
        }
    }
}

/// A hostile sample: random length 0..200 and a random flavour.
fn sample(rng: &mut Rng) -> Vec<f64> {
    let len = pick(rng, 200);
    match rng.next_u64() % 8 {
        // All equal (possibly a special value).
        0 => vec![value(rng, 50); len],
        // Only huge values of both signs: differences and sums overflow.
        1 => (0..len)
            .map(|_| {
                if rng.next_u64().is_multiple_of(2) {
                    1e308
                } else {
                    -f64::MAX
                }
            })
            .collect(),
        // Only finite, many ties (rounded).
        2 => (0..len).map(|_| (rng.normal() * 3.0).round()).collect(),
        // Mostly special.
        3 => (0..len).map(|_| value(rng, 80)).collect(),
        // A few specials among ordinary values.
        _ => (0..len).map(|_| value(rng, 5)).collect(),
    }
}

fn fixed_samples() -> Vec<Vec<f64>> {
    let mut samples = vec![
        vec![],
        vec![1.0],
        vec![f64::NAN],
        vec![f64::INFINITY],
        vec![7.5; 150],
    ];
    samples.extend(SPECIAL.iter().map(|&v| vec![v]));
    samples.extend(SPECIAL.iter().map(|&v| vec![v; 9]));
    samples.push(vec![-1e308, -1e308, 1e308, 1e308, 1e308]);
    samples.push(vec![-f64::MAX, f64::MAX, -f64::MAX, f64::MAX]);
    samples
}

fn all_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite())
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn check_stats(x: &[f64], y: &[f64]) {
    let case = || format!("x={x:?} y={y:?}");
    let expected_error = if x.is_empty() || y.is_empty() {
        Some(StatsError::Empty)
    } else if !all_finite(x) || !all_finite(y) {
        Some(StatsError::NotFinite)
    } else {
        None
    };

    match (stats::mann_whitney_u(x, y), &expected_error) {
        (Err(e), Some(expected)) => assert_eq!(&e, expected, "{}", case()),
        (Ok(r), None) => {
            let pairs = x.len() as f64 * y.len() as f64;
            assert!((0.0..=1.0).contains(&r.p_value), "p {r:?} {}", case());
            assert!((0.0..=pairs).contains(&r.u), "U {r:?} {}", case());
        }
        (result, _) => panic!("mann_whitney_u gave {result:?} for {}", case()),
    }

    match (stats::hodges_lehmann(x, y), &expected_error) {
        (Err(e), Some(expected)) => assert_eq!(&e, expected, "{}", case()),
        (Ok(shift), None) => {
            // Never NaN; within the range of the differences (which may overflow to ±∞).
            let ((x_lo, x_hi), (y_lo, y_hi)) = (min_max(x), min_max(y));
            assert!(!shift.is_nan(), "HL NaN {}", case());
            assert!(
                x_lo - y_hi <= shift && shift <= x_hi - y_lo,
                "HL {shift} {}",
                case()
            );
            let small = |v: &[f64]| v.iter().all(|v| v.abs() <= f64::MAX / 4.0);
            if small(x) && small(y) {
                assert!(shift.is_finite(), "HL {shift} {}", case());
            }
        }
        (result, _) => panic!("hodges_lehmann gave {result:?} for {}", case()),
    }

    for values in [x, y] {
        match stats::median(values) {
            None => assert!(values.is_empty()),
            Some(m) if all_finite(values) => {
                let (lo, hi) = min_max(values);
                assert!(
                    m.is_finite() && lo <= m && m <= hi,
                    "median {m} of {values:?}"
                );
            }
            // Documented for finite values only; any answer but a panic will do.
            Some(_) => {}
        }
        for &z in values {
            let sf = stats::normal_sf(z);
            let erfc = stats::erfc(z);
            if z.is_nan() {
                assert!(sf.is_nan() && erfc.is_nan());
            } else {
                assert!((0.0..=1.0).contains(&sf), "sf({z}) = {sf}");
                assert!((0.0..=2.0).contains(&erfc), "erfc({z}) = {erfc}");
            }
        }
    }
}

fn check_outliers(values: &[f64], rng: &mut Rng) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let random_p = rng.uniform() * 140.0 - 20.0;
    for p in [
        f64::NAN,
        -5.0,
        0.0,
        1.0,
        25.0,
        50.0,
        75.0,
        99.0,
        100.0,
        150.0,
        random_p,
    ] {
        match outliers::percentile(&sorted, p) {
            None => assert!(sorted.is_empty() || p.is_nan(), "p{p} of {sorted:?}"),
            Some(q) => {
                let (lo, hi) = min_max(&sorted);
                assert!(
                    q.is_finite() && lo <= q && q <= hi,
                    "p{p} = {q} of {sorted:?}"
                );
            }
        }
    }

    let finite = sorted.len();
    for factor in [0.0, 0.1, 1.5, 3.0, 100.0, f64::NAN, rng.uniform() * 10.0] {
        let fences = outliers::fences(values, factor);
        match fences {
            None => assert!(finite < MIN_SAMPLES_FOR_OUTLIERS, "{values:?}"),
            Some(f) => {
                assert!(finite >= MIN_SAMPLES_FOR_OUTLIERS);
                assert!(
                    f.q1.is_finite() && f.q3.is_finite() && f.q1 <= f.q3,
                    "{f:?}"
                );
                // Never NaN: a NaN fence would remove every value.
                assert!(f.lower <= f.q1 && f.q3 <= f.upper, "{f:?} at {factor}");
            }
        }
        let trimmed = outliers::remove_outliers(values, factor);
        assert_eq!(trimmed.kept.len() + trimmed.removed, values.len());
        assert_eq!(trimmed.fences, fences);
        // Non-finite values are all kept (for the judge to report), and the median survives.
        let non_finite = |v: &[f64]| v.iter().filter(|v| !v.is_finite()).count();
        assert_eq!(non_finite(&trimmed.kept), non_finite(values));
        if let Some(median) = stats::median(&sorted) {
            assert!(
                trimmed.kept.iter().any(|&v| v.is_finite()),
                "every finite value removed (median {median}) from {values:?} at {factor}"
            );
        }
        if fences.is_none() {
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&trimmed.kept), bits(values));
        }
    }
}

fn spec(direction: Direction, rng: &mut Rng) -> MetricSpec {
    MetricSpec {
        name: "hostile".into(),
        direction: Some(direction),
        thresholds: Some(MetricThresholds {
            target: 1.0,
            acceptable: 2.0,
            critical: 5.0,
        }),
        relative: Some(RelativeCheck {
            max_regression_percent: 10.0,
            critical_regression_percent: Some(50.0),
            min_absolute_change: Some(value(rng, 30).abs()),
        }),
        statistical: Some(StatisticalCheck {
            mann_whitney: MannWhitneySpec {
                confidence: Some(0.98),
                min_effect_percent: Some(5.0),
                min_samples: Some(i32::try_from(pick(rng, 6)).unwrap()),
            },
        }),
        outliers: Some(OutlierSpec {
            strategy: OutlierStrategy::Remove,
            factor: Some(3.0),
        }),
        ..MetricSpec::default()
    }
}

fn check_judge(x: &[f64], y: &[f64], rng: &mut Rng) {
    for direction in [Direction::LowerIsBetter, Direction::HigherIsBetter] {
        let spec = spec(direction, rng);
        let mann_whitney = spec.statistical.unwrap().mann_whitney;
        match judge::judge_mann_whitney(x, y, &mann_whitney, direction) {
            Ok(s) => {
                assert!((0.0..=1.0).contains(&s.p_value), "{s:?}");
                assert!(!s.shift.is_nan(), "{s:?}");
                assert!(s.canary_median.is_finite() && s.baseline_median.is_finite());
                assert!(matches!(
                    s.verdict,
                    MetricVerdict::Pass | MetricVerdict::Fail
                ));
            }
            Err(StatisticalGap::AllNaN | StatisticalGap::TooFewSamples { .. }) => {}
        }

        let canary = x.first().copied().unwrap_or_else(|| value(rng, 50));
        let baseline = y.first().copied().unwrap_or_else(|| value(rng, 50));
        let mut observation = MetricObservation::samples("hostile", x.to_vec(), y.to_vec());
        observation.canary = Some(Ok(canary));
        observation.baseline = Some(Ok(baseline));
        let j = judge::judge_metric(&spec, Some(&observation));
        let case = format!("{canary} vs {baseline}, {x:?} vs {y:?}: {j:?}");
        assert!(!j.message.is_empty(), "{case}");
        // A NaN never passes; neither does a sample set with no finite value.
        if canary.is_nan() || baseline.is_nan() || !x.iter().chain(y).any(|v| v.is_finite()) {
            assert_ne!(j.verdict, MetricVerdict::Pass, "{case}");
        }
        // An infinitely bad canary is critical.
        let worst = match direction {
            Direction::LowerIsBetter => f64::INFINITY,
            Direction::HigherIsBetter => f64::NEG_INFINITY,
        };
        if canary == worst {
            assert_eq!(j.verdict, MetricVerdict::Critical, "{case}");
        }

        // Missing readings are errors or no data, never a pass.
        let failed = MetricObservation::failed("hostile", ProviderError::NoData("empty".into()));
        assert_eq!(
            judge::judge_metric(&spec, Some(&failed)).verdict,
            MetricVerdict::NoData
        );
        assert_eq!(
            judge::judge_metric(&spec, None).verdict,
            MetricVerdict::Error
        );
    }
}

#[test]
fn statistics_outliers_and_judge_survive_hostile_samples() {
    let mut rng = Rng::new(0x5AFE);
    let fixed = fixed_samples();
    for x in &fixed {
        for y in &fixed {
            check_stats(x, y);
        }
        check_outliers(x, &mut rng);
    }
    for x in fixed.iter().step_by(3) {
        for y in fixed.iter().step_by(4) {
            check_judge(x, y, &mut rng);
        }
    }
    for _ in 0..600 {
        let x = sample(&mut rng);
        let y = if rng.next_u64().is_multiple_of(5) {
            x.clone()
        } else {
            sample(&mut rng)
        };
        check_stats(&x, &y);
        check_outliers(&x, &mut rng);
        check_judge(&x, &y, &mut rng);
    }
}

#[test]
fn huge_values_keep_finite_medians_and_quartiles() {
    // (1e308 + 1e308) / 2 overflows; the midpoint does not.
    assert_eq!(stats::median(&[1e308, 1e308]), Some(1e308));
    assert_eq!(stats::median(&[f64::MAX, f64::MAX]), Some(f64::MAX));
    assert_eq!(stats::median(&[-f64::MAX, f64::MAX]), Some(0.0));
    assert_eq!(
        stats::hodges_lehmann(&[1e308, 1e308], &[0.0, 0.0]),
        Ok(1e308)
    );
    // The 25th percentile of five sits on the second value: the gap to the third overflows,
    // and 0·∞ used to make it NaN, so that every value fell outside the fences.
    let sorted = [-1e308, -1e308, 1e308, 1e308, 1e308];
    assert_eq!(outliers::percentile(&sorted, 25.0), Some(-1e308));
    assert_eq!(outliers::percentile(&sorted, 75.0), Some(1e308));
    assert_eq!(
        outliers::percentile(&[-f64::MAX, f64::MAX], 50.0),
        Some(0.0)
    );
    let trimmed = outliers::remove_outliers(&sorted, 3.0);
    assert_eq!((trimmed.removed, trimmed.kept.len()), (0, 5));
    // A NaN factor (impossible through the CRD) removes nothing rather than everything.
    assert_eq!(
        outliers::remove_outliers(&[1.0, 2.0, 3.0, 4.0, 99.0], f64::NAN).removed,
        0
    );
}
