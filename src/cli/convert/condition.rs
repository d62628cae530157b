//! Argo Rollouts' `successCondition` / `failureCondition` (expr expressions over `result`) read
//! as safedeploy's thresholds. Only the comparison of one value with a number has a meaning
//! that thresholds hold exactly (`result[0] < 0.01`, `result >= 0.99`); anything else is
//! refused with the expression named, never guessed.

use crate::api::analysis::{Direction, MetricThresholds};

/// A comparison `result OP number`, with `result` on the left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The operator.
    pub op: Op,
    /// The number.
    pub bound: f64,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Op {
    fn flipped(self) -> Op {
        match self {
            Op::Less => Op::Greater,
            Op::LessOrEqual => Op::GreaterOrEqual,
            Op::Greater => Op::Less,
            Op::GreaterOrEqual => Op::LessOrEqual,
        }
    }

    fn lower_is_better(self) -> bool {
        matches!(self, Op::Less | Op::LessOrEqual)
    }
}

/// Reads `result OP n`, `result[0] OP n`, or `n OP result[0]` (flipped).
pub fn parse(expression: &str) -> Result<Comparison, String> {
    let text = expression.trim();
    let refuse = || {
        format!(
            "{text:?} is not a comparison of the result with a number (like `result[0] < 0.01`); \
             write the metric's thresholds by hand"
        )
    };
    let (position, op, len) = ["<=", ">=", "<", ">"]
        .iter()
        .filter_map(|symbol| text.find(symbol).map(|at| (at, *symbol)))
        .min_by_key(|(at, symbol)| (*at, std::cmp::Reverse(symbol.len())))
        .map(|(at, symbol)| {
            let op = match symbol {
                "<=" => Op::LessOrEqual,
                ">=" => Op::GreaterOrEqual,
                "<" => Op::Less,
                _ => Op::Greater,
            };
            (at, op, symbol.len())
        })
        .ok_or_else(refuse)?;
    let left = text[..position].trim();
    let right = text[position + len..].trim();
    let is_result = |side: &str| matches!(side, "result" | "result[0]" | "asFloat(result)");
    let number = |side: &str| side.parse::<f64>().ok().filter(|n| n.is_finite());
    if is_result(left) {
        let bound = number(right).ok_or_else(refuse)?;
        Ok(Comparison { op, bound })
    } else if is_result(right) {
        let bound = number(left).ok_or_else(refuse)?;
        Ok(Comparison {
            op: op.flipped(),
            bound,
        })
    } else {
        Err(refuse())
    }
}

/// The direction and thresholds that pass exactly what `success` passes and fail at once what
/// `failure` (or, without it, `success`) fails, as Argo Rollouts does with its default
/// `failureLimit: 0`. Between the two, a value fails its measurement but not the run at once.
pub fn thresholds(
    success: Option<&str>,
    failure: Option<&str>,
) -> Result<(Direction, MetricThresholds), String> {
    let success = success.map(parse).transpose()?;
    let failure = failure.map(parse).transpose()?;
    let lower_is_better = match (success, failure) {
        (Some(s), _) => s.op.lower_is_better(),
        // A failure condition `result > x` means lower is better.
        (None, Some(f)) => !f.op.lower_is_better(),
        (None, None) => {
            return Err("the metric has neither successCondition nor failureCondition".into());
        }
    };
    if let (Some(s), Some(f)) = (success, failure)
        && f.op.lower_is_better() == lower_is_better
    {
        return Err(format!(
            "successCondition and failureCondition point the same way ({:?} and {:?})",
            s.op, f.op
        ));
    }
    // The worst passing value, in the metric's direction.
    let acceptable = success.map(|s| match s.op {
        Op::LessOrEqual | Op::GreaterOrEqual => s.bound,
        Op::Less => s.bound.next_down(),
        Op::Greater => s.bound.next_up(),
    });
    // The first value that fails at once.
    let critical = failure.map(|f| match f.op {
        Op::GreaterOrEqual | Op::LessOrEqual => f.bound,
        Op::Greater => f.bound.next_up(),
        Op::Less => f.bound.next_down(),
    });
    let step_worse = |x: f64| {
        if lower_is_better {
            x.next_up()
        } else {
            x.next_down()
        }
    };
    let step_better = |x: f64| {
        if lower_is_better {
            x.next_down()
        } else {
            x.next_up()
        }
    };
    let (acceptable, critical) = match (acceptable, critical) {
        (Some(a), Some(c)) => (a, c),
        (Some(a), None) => (a, step_worse(a)),
        (None, Some(c)) => (step_better(c), c),
        (None, None) => unreachable_pair(),
    };
    let ordered = if lower_is_better {
        acceptable < critical
    } else {
        acceptable > critical
    };
    if !ordered {
        return Err(format!(
            "the failureCondition fails values that the successCondition passes (acceptable \
             {acceptable}, critical {critical})"
        ));
    }
    let direction = if lower_is_better {
        Direction::LowerIsBetter
    } else {
        Direction::HigherIsBetter
    };
    Ok((
        direction,
        MetricThresholds {
            target: acceptable,
            acceptable,
            critical,
        },
    ))
}

/// Both conditions absent was refused above; kept total without a panic.
fn unreachable_pair() -> (f64, f64) {
    (0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_success_bound_fails_the_bound_itself_at_once() {
        let (direction, t) = thresholds(Some("result[0] < 0.01"), None).unwrap();
        assert_eq!(direction, Direction::LowerIsBetter);
        assert!(t.acceptable < 0.01 && t.critical == 0.01, "{t:?}");
        let (_, t) = thresholds(Some("result <= 0.01"), None).unwrap();
        assert!(t.acceptable == 0.01 && t.critical > 0.01, "{t:?}");
    }

    #[test]
    fn a_failure_condition_sets_the_critical_level_and_leaves_a_band_between() {
        let (direction, t) =
            thresholds(Some("result[0] >= 0.95"), Some("result[0] < 0.9")).unwrap();
        assert_eq!(direction, Direction::HigherIsBetter);
        assert_eq!(t.acceptable, 0.95);
        assert!(t.critical < 0.9 && t.critical > 0.8999, "{t:?}");
    }

    #[test]
    fn a_number_on_the_left_is_read_the_other_way_round() {
        assert_eq!(
            parse("0.5 > result[0]").unwrap(),
            Comparison {
                op: Op::Less,
                bound: 0.5
            }
        );
    }

    #[test]
    fn anything_but_one_comparison_is_refused_with_the_expression() {
        for text in [
            "len(result) > 0 && result[0] < 1",
            "result[0] < x",
            "isNaN(result[0])",
            "result[0] < 1e400",
        ] {
            let error = thresholds(Some(text), None).unwrap_err();
            assert!(error.contains("not a comparison"), "{text}: {error}");
        }
        assert!(thresholds(None, None).is_err());
        let error = thresholds(Some("result < 1"), Some("result > 0.5")).unwrap_err();
        assert!(error.contains("fails values"), "{error}");
    }
}
