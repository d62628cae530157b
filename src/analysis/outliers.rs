//! Interquartile-range (Tukey fence) outlier removal, applied to canary and baseline samples
//! separately before they are compared, as Kayenta's judge does. Pure: slices in, slices out.
//!
//! Quartiles are linear interpolations between order statistics: the `p`-th percentile of `n`
//! sorted values sits at position `(n − 1)·p/100` (0-based), which is numpy's default
//! (`numpy.percentile(x, p)`, method `linear`), R's `quantile(type = 7)` and Excel's
//! `PERCENTILE.INC`. A sample is an outlier when it lies below `Q1 − factor·IQR` or above
//! `Q3 + factor·IQR` (IQR = Q3 − Q1); Kayenta uses `factor = 3.0` (Tukey's "far out").
//!
//! Kayenta additionally widens the fences to at least the 1st and 99th percentiles
//! (`reduceSensitivity`), computed with Apache Commons Math's default estimator; with that
//! estimator the 1st and 99th percentiles are the minimum and the maximum whenever there are
//! fewer than 99 samples, so nothing is ever removed from such a sample. That widening is not
//! reproduced here: the factor alone sets the sensitivity.

/// Fewest finite samples for which quartiles mean anything; smaller samples are left whole.
pub const MIN_SAMPLES_FOR_OUTLIERS: usize = 4;

/// The quartiles and fences of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fences {
    /// First quartile (25th percentile).
    pub q1: f64,
    /// Third quartile (75th percentile).
    pub q3: f64,
    /// Values strictly below this are outliers.
    pub lower: f64,
    /// Values strictly above this are outliers.
    pub upper: f64,
}

/// A sample after outlier removal.
#[derive(Debug, Clone, PartialEq)]
pub struct Trimmed {
    /// The samples kept, in their original order (non-finite samples are kept for the judge to
    /// report; they take no part in the quartiles).
    pub kept: Vec<f64>,
    /// How many samples were removed.
    pub removed: usize,
    /// The fences applied; None when the sample was too small to have any.
    pub fences: Option<Fences>,
}

/// The `p`-th percentile (0–100) of `sorted` (ascending, finite), by linear interpolation at
/// position `(n − 1)·p/100`, as `numpy.percentile`'s default. None for an empty slice or a NaN
/// `p`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    if p.is_nan() {
        return None;
    }
    let position = (last as f64) * p.clamp(0.0, 100.0) / 100.0;
    let below = position.floor();
    #[allow(
        clippy::cast_possible_truncation,
        reason = "`below` is a whole number in [0, last] (p is clamped to 0–100 and not NaN), \
                  so the conversion is exact; `get` below checks the index anyway"
    )]
    let low = below as usize;
    let high = low.saturating_add(1).min(last);
    let fraction = position - below;
    let (&at_low, &at_high) = (sorted.get(low)?, sorted.get(high)?);
    let gap = at_high - at_low;
    if gap.is_finite() {
        Some(at_low + fraction * gap)
    } else {
        // The gap overflows (values beyond ±f64::MAX / 2): weigh the ends instead, which
        // cannot overflow (opposite signs) and cannot give 0·∞ = NaN.
        Some(at_low * (1.0 - fraction) + at_high * fraction)
    }
}

/// The Tukey fences of the finite values of `values` at `factor`; None when there are fewer
/// than [`MIN_SAMPLES_FOR_OUTLIERS`] of them.
pub fn fences(values: &[f64], factor: f64) -> Option<Fences> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.len() < MIN_SAMPLES_FOR_OUTLIERS {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let q1 = percentile(&sorted, 25.0)?;
    let q3 = percentile(&sorted, 75.0)?;
    let iqr = q3 - q1;
    // NaN only for a NaN factor or a zero factor times an overflowing IQR (factors outside the
    // CRD's 0.1–100): then no fence, rather than NaN fences that every value would fall outside.
    let reach = match factor * iqr {
        reach if reach.is_nan() => f64::INFINITY,
        reach => reach,
    };
    Some(Fences {
        q1,
        q3,
        lower: q1 - reach,
        upper: q3 + reach,
    })
}

/// Removes the values outside the Tukey fences at `factor`. Samples with fewer than
/// [`MIN_SAMPLES_FOR_OUTLIERS`] finite values are returned whole. A sample whose quartiles
/// coincide (IQR 0) loses every value that differs from them: Tukey's rule, as in Kayenta.
pub fn remove_outliers(values: &[f64], factor: f64) -> Trimmed {
    let Some(fences) = fences(values, factor) else {
        return Trimmed {
            kept: values.to_vec(),
            removed: 0,
            fences: None,
        };
    };
    let kept: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| !v.is_finite() || (*v >= fences.lower && *v <= fences.upper))
        .collect();
    Trimmed {
        // `kept` is a subset of `values`: never saturates.
        removed: values.len().saturating_sub(kept.len()),
        kept,
        fences: Some(fences),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    /// Reference values from numpy 2.4.6, `numpy.percentile(x, [25, 75])` (default method
    /// `linear`), for the data sets below.
    #[test]
    fn quartiles_match_numpys_default_percentile() {
        let cases: [(&[f64], f64, f64); 4] = [
            // n = 4: positions 0.75 and 2.25.
            (&[1.0, 2.0, 3.0, 4.0], 1.75, 3.25),
            // n = 5: positions 1 and 3 fall on samples.
            (&[7.0, 1.0, 5.0, 3.0, 9.0], 3.0, 7.0),
            // n = 10, unsorted, with repeats.
            (
                &[12.0, 15.0, 11.0, 10.0, 14.0, 13.0, 10.0, 16.0, 90.0, 12.5],
                11.25,
                14.75,
            ),
            // n = 7 with negatives.
            (&[-3.0, -1.0, 0.0, 2.0, 2.0, 8.0, 40.0], -0.5, 5.0),
        ];
        for (values, q1, q3) in cases {
            let f = fences(values, 3.0).unwrap();
            assert!(close(f.q1, q1), "{values:?}: q1 {} != {q1}", f.q1);
            assert!(close(f.q3, q3), "{values:?}: q3 {} != {q3}", f.q3);
        }
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile(&sorted, 100.0), Some(5.0));
        assert!(close(percentile(&sorted, 10.0).unwrap(), 1.4));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn far_outliers_are_removed_on_both_sides_and_near_ones_kept() {
        // q1 11.25, q3 14.75, IQR 3.5: fences at 0.75 and 25.25 with factor 3.
        let values = [12.0, 15.0, 11.0, 10.0, 14.0, 13.0, 10.0, 16.0, 90.0, 12.5];
        let t = remove_outliers(&values, 3.0);
        assert_eq!(t.removed, 1);
        assert!(!t.kept.contains(&90.0));
        assert_eq!(t.kept.len(), 9);
        let f = t.fences.unwrap();
        assert!(close(f.lower, 0.75) && close(f.upper, 25.25), "{f:?}");
        // With factor 1.5 the fences are 6 and 20: still only 90 goes.
        assert_eq!(remove_outliers(&values, 1.5).removed, 1);
        // A low outlier too; the order of the kept values is the original one.
        let values = [
            -50.0, 12.0, 15.0, 11.0, 10.0, 14.0, 13.0, 10.0, 16.0, 90.0, 12.5,
        ];
        let t = remove_outliers(&values, 3.0);
        assert_eq!(t.removed, 2);
        assert_eq!(
            t.kept,
            vec![12.0, 15.0, 11.0, 10.0, 14.0, 13.0, 10.0, 16.0, 12.5]
        );
        // A value exactly on a fence stays: q1 1.75, q3 3.25, upper fence 3.25 + 3·1.5 = 7.75.
        let t = remove_outliers(&[1.0, 2.0, 3.0, 7.75], 3.0);
        assert_eq!(t.removed, 0, "{:?}", t.fences);
    }

    #[test]
    fn small_samples_are_left_whole() {
        for values in [&[][..], &[1.0][..], &[1.0, 1e9][..], &[1.0, 2.0, 1e9][..]] {
            let t = remove_outliers(values, 3.0);
            assert_eq!(t.removed, 0);
            assert_eq!(t.kept, values.to_vec());
            assert_eq!(t.fences, None);
        }
        // Non-finite values do not count towards the four, and are kept for the judge.
        let t = remove_outliers(&[f64::NAN, 1.0, 2.0, 1e9], 3.0);
        assert_eq!((t.removed, t.kept.len(), t.fences), (0, 4, None));
        let t = remove_outliers(&[f64::NAN, 1.0, 2.0, 3.0, 4.0, 1e9], 3.0);
        assert_eq!(t.removed, 1);
        assert_eq!(t.kept.len(), 5);
        assert!(t.kept[0].is_nan());
    }

    #[test]
    fn a_constant_sample_loses_only_the_values_that_differ() {
        let t = remove_outliers(&[5.0, 5.0, 5.0, 5.0, 5.0, 6.0], 3.0);
        assert_eq!(t.removed, 1);
        assert_eq!(t.kept, vec![5.0; 5]);
        let t = remove_outliers(&[5.0; 8], 3.0);
        assert_eq!(t.removed, 0);
    }
}
