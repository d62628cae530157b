//! The minimum-traffic guard, judged: whether the canary's traffic reading (from the metric's
//! `minimumTraffic.query`) is enough for a measurement of the metric to count as good news. Pure;
//! `super::judge` applies the outcome to the metric's verdict.
//!
//! Fail closed: only a finite, non-negative, believable number at or above the minimum is
//! enough. An empty answer is no traffic; NaN, negative, infinite or implausibly large readings
//! are a broken query, never "enough". A provider error is a provider error (the run's error
//! policy decides), not a verdict about traffic.

use crate::api::traffic::{MAX_MINIMUM_TRAFFIC, MAX_PLAUSIBLE_TRAFFIC, MinimumTraffic};

use super::{ProviderError, ValueReading};

/// What the traffic reading says about a measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum TrafficJudgement {
    /// At least the minimum: the metric's own verdict stands.
    Enough {
        /// The traffic observed.
        observed: f64,
    },
    /// Not enough (or not believable): a passing verdict is withheld.
    TooLittle {
        /// The traffic observed, when the answer was a finite number.
        observed: Option<f64>,
        /// Why, naming the observed traffic and the minimum.
        reason: String,
    },
    /// The traffic could not be measured: a provider error of the metric.
    Error(ProviderError),
}

impl TrafficJudgement {
    /// The traffic observed, when it was a finite number.
    pub fn observed(&self) -> Option<f64> {
        match self {
            TrafficJudgement::Enough { observed } => Some(*observed),
            TrafficJudgement::TooLittle { observed, .. } => *observed,
            TrafficJudgement::Error(_) => None,
        }
    }
}

/// Judges the canary's traffic `reading` against `guard`. `None` (no reading was taken) is a
/// provider error. A `minimum` admission would refuse (not above 0, not finite, above 10^12)
/// is a configuration error rather than a guard that lets everything through.
pub fn judge_traffic(guard: &MinimumTraffic, reading: Option<&ValueReading>) -> TrafficJudgement {
    let minimum = guard.minimum;
    if !(minimum > 0.0 && minimum <= MAX_MINIMUM_TRAFFIC) {
        return TrafficJudgement::Error(ProviderError::Config(format!(
            "minimumTraffic.minimum {minimum} must be above 0 and at most 10^12"
        )));
    }
    let too_little = |observed: Option<f64>, why: String| TrafficJudgement::TooLittle {
        observed,
        reason: format!("{why}, minimumTraffic.minimum is {minimum}: not judged"),
    };
    let value = match reading {
        None => {
            return TrafficJudgement::Error(ProviderError::Parse(
                "the traffic was not measured".into(),
            ));
        }
        Some(Err(ProviderError::NoData(_))) => {
            return too_little(
                None,
                "traffic: the query returned no data (no traffic)".into(),
            );
        }
        Some(Err(error)) => return TrafficJudgement::Error(error.clone()),
        Some(Ok(value)) => *value,
    };
    if value.is_nan() {
        too_little(None, "traffic is NaN".into())
    } else if value.is_infinite() || value > MAX_PLAUSIBLE_TRAFFIC {
        let observed = value.is_finite().then_some(value);
        too_little(
            observed,
            format!("traffic {value} is not believable (above 10^15)"),
        )
    } else if value < 0.0 {
        too_little(Some(value), format!("traffic {value} is negative"))
    } else if value < minimum {
        too_little(Some(value), format!("traffic {value} is below the minimum"))
    } else {
        TrafficJudgement::Enough { observed: value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(minimum: f64) -> MinimumTraffic {
        MinimumTraffic {
            query: Some("sum(increase(requests_total{version=\"{{canary}}\"}[1m]))".into()),
            json_path: None,
            minimum,
        }
    }

    fn judge(minimum: f64, reading: ValueReading) -> TrafficJudgement {
        judge_traffic(&guard(minimum), Some(&reading))
    }

    #[test]
    fn enough_traffic_lets_the_verdict_stand() {
        assert_eq!(
            judge(100.0, Ok(100.0)),
            TrafficJudgement::Enough { observed: 100.0 }
        );
        assert_eq!(
            judge(0.5, Ok(1e12)),
            TrafficJudgement::Enough { observed: 1e12 }
        );
    }

    #[test]
    fn below_the_minimum_names_both_numbers() {
        let judgement = judge(100.0, Ok(3.0));
        let TrafficJudgement::TooLittle { observed, reason } = &judgement else {
            panic!("{judgement:?}");
        };
        assert_eq!(*observed, Some(3.0));
        assert!(reason.contains("traffic 3 "), "{reason}");
        assert!(reason.contains("minimum is 100"), "{reason}");
        // Just below is below.
        assert!(matches!(
            judge(100.0, Ok(99.999)),
            TrafficJudgement::TooLittle { .. }
        ));
    }

    /// Hostile and broken answers: none of them is ever enough, whatever the minimum.
    #[test]
    fn nan_empty_negative_infinite_and_huge_readings_are_never_enough() {
        let hostile: [ValueReading; 8] = [
            Ok(f64::NAN),
            Ok(-f64::NAN),
            Ok(f64::INFINITY),
            Ok(f64::NEG_INFINITY),
            Ok(-1.0),
            Ok(1.0e16),
            Ok(f64::MAX),
            Err(ProviderError::NoData("empty vector".into())),
        ];
        for minimum in [1e-9, 1.0, 100.0, MAX_MINIMUM_TRAFFIC] {
            for reading in &hostile {
                let judgement = judge_traffic(&guard(minimum), Some(reading));
                assert!(
                    matches!(judgement, TrafficJudgement::TooLittle { .. }),
                    "{reading:?} at minimum {minimum}: {judgement:?}"
                );
                // Non-finite values are never shown as the observed traffic.
                assert!(judgement.observed().is_none_or(f64::is_finite));
            }
        }
    }

    #[test]
    fn a_failed_traffic_query_is_a_provider_error() {
        let down = ProviderError::Unreachable("connection refused".into());
        assert_eq!(
            judge(10.0, Err(down.clone())),
            TrafficJudgement::Error(down)
        );
        assert!(matches!(
            judge_traffic(&guard(10.0), None),
            TrafficJudgement::Error(ProviderError::Parse(_))
        ));
    }

    /// A minimum that bypassed admission never turns the guard into a pass-through.
    #[test]
    fn a_minimum_admission_refuses_is_a_configuration_error() {
        for minimum in [0.0, -5.0, f64::NAN, f64::INFINITY, 1e13] {
            assert!(
                matches!(
                    judge(minimum, Ok(1e6)),
                    TrafficJudgement::Error(ProviderError::Config(_))
                ),
                "minimum {minimum}"
            );
        }
    }
}
