//! Statistics for the canary judge, with no I/O: the two-sided Mann–Whitney U test (exact
//! distribution for small samples without ties, otherwise the normal approximation with tie and
//! continuity corrections, matching `scipy.stats.mannwhitneyu`'s `method="auto"`), the
//! Hodges–Lehmann shift estimate, medians and the normal survival function.

use std::cmp::Ordering;

/// Samples that the statistics cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// One of the samples is empty.
    #[error("a sample is empty")]
    Empty,
    /// A sample holds NaN or an infinity.
    #[error("a sample holds a value that is not a finite number")]
    NotFinite,
}

/// How the p-value of a Mann–Whitney test was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PValueMethod {
    /// From the exact null distribution of U (small samples, no ties).
    Exact,
    /// From the normal approximation with tie and continuity corrections.
    Asymptotic,
}

/// Result of a two-sided Mann–Whitney U test of `x` against `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U statistic of the first sample `x` (as `scipy.stats.mannwhitneyu` reports it).
    pub u: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: PValueMethod,
}

/// Largest size of the larger sample for which the exact distribution is used (it needs
/// `min(n1, n2) * max(n1, n2)` integers).
const EXACT_MAX_LARGER: usize = 10_000;
/// Largest size of the smaller sample for which the exact distribution is used (as SciPy).
const EXACT_MAX_SMALLER: usize = 8;

/// Two-sided Mann–Whitney U (Wilcoxon rank-sum) test of `x` against `y`.
///
/// Like `scipy.stats.mannwhitneyu(x, y, method="auto")`: the exact distribution of U when one
/// sample has at most 8 values and there are no ties, otherwise the normal approximation with
/// the tie correction of the variance and a continuity correction of 1/2.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Result<MannWhitney, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::Empty);
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let n1 = x.len();
    let n2 = y.len();
    let (ranks, tie_sizes) = average_ranks(x.iter().chain(y).copied());
    let r1: f64 = ranks.iter().take(n1).sum();
    let n1f = n1 as f64;
    let n2f = n2 as f64;
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let u = u1.max(u2);
    let ties = tie_sizes.iter().any(|&t| t > 1);
    let smaller = n1.min(n2);
    let larger = n1.max(n2);
    // The exact distribution without ties (U is then a whole number); `None`, never in
    // practice (see `exact_u_sf`), falls back to the normal approximation.
    let exact_sf = (!ties && smaller <= EXACT_MAX_SMALLER && larger <= EXACT_MAX_LARGER)
        .then(|| exact_u_sf(u, smaller, larger))
        .flatten();
    let exact = exact_sf.is_some();
    let p = if let Some(sf) = exact_sf {
        2.0 * sf
    } else {
        let n = n1f + n2f;
        let tie_term: f64 = tie_sizes
            .iter()
            .map(|&t| {
                let t = t as f64;
                t * t * t - t
            })
            .sum();
        let variance = n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
        if variance <= 0.0 {
            // Every value is the same: nothing tells the samples apart.
            1.0
        } else {
            let z = (u - n1f * n2f / 2.0 - 0.5) / variance.sqrt();
            2.0 * normal_sf(z)
        }
    };
    Ok(MannWhitney {
        u: u1,
        p_value: p.clamp(0.0, 1.0),
        method: if exact {
            PValueMethod::Exact
        } else {
            PValueMethod::Asymptotic
        },
    })
}

/// Average ranks (1-based) of the values in the order given, and the sizes of the groups of
/// equal values.
fn average_ranks(values: impl Iterator<Item = f64>) -> (Vec<f64>, Vec<usize>) {
    let mut indexed: Vec<(usize, f64)> = values.enumerate().collect();
    indexed.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut ranks = vec![0.0; indexed.len()];
    let mut ties = Vec::new();
    // Number of values before the current group of equal values.
    let mut start: usize = 0;
    for group in indexed.chunk_by(|a, b| a.1 == b.1) {
        let end = start.saturating_add(group.len());
        // Positions start..end hold ranks start+1..=end; their average (exact in f64: counts
        // are far below 2^53):
        let rank = (start as f64 + 1.0 + end as f64) / 2.0;
        for &(index, _) in group {
            // `index` comes from `enumerate` over the same values, so it is always in range.
            if let Some(slot) = ranks.get_mut(index) {
                *slot = rank;
            }
        }
        ties.push(group.len());
        start = end;
    }
    (ranks, ties)
}

/// P(U ≥ u) under the null hypothesis for samples of sizes `m ≤ n` without ties (`u` is
/// rounded to the whole number it is without ties).
///
/// The number of arrangements giving each U is the coefficient of the Gaussian binomial
/// coefficient `[m+n choose m]_q = Π_{k=1..m} (1 − q^{n+k}) / (1 − q^k)`, computed exactly in
/// integers. `None` if the sizes are too large for that (every coefficient is at most
/// `C(m+n, m)`, which fits an `i128` for the sizes the caller allows, so never in practice).
fn exact_u_sf(u: f64, m: usize, n: usize) -> Option<f64> {
    let u = u.round();
    let degree = m.checked_mul(n)?;
    if u <= 0.0 {
        return Some(1.0);
    }
    if u > degree as f64 {
        return Some(0.0);
    }
    let mut counts = vec![0_i128; degree.checked_add(1)?];
    *counts.first_mut()? = 1;
    for k in 1..=m {
        let shift = n.checked_add(k)?;
        // Times (1 − q^shift): downwards, so counts[j − shift] is still the old coefficient.
        for j in (shift..=degree).rev() {
            let lower = *counts.get(j.checked_sub(shift)?)?;
            let slot = counts.get_mut(j)?;
            *slot = slot.checked_sub(lower)?;
        }
        // Divided by (1 − q^k): upwards, so counts[j − k] is already the new coefficient.
        for j in k..=degree {
            let lower = *counts.get(j.checked_sub(k)?)?;
            let slot = counts.get_mut(j)?;
            *slot = slot.checked_add(lower)?;
        }
    }
    let total = counts
        .iter()
        .try_fold(0_i128, |sum, &c| sum.checked_add(c))?;
    let upper = counts
        .iter()
        .enumerate()
        .filter(|&(j, _)| j as f64 >= u)
        .try_fold(0_i128, |sum, (_, &c)| sum.checked_add(c))?;
    Some(upper as f64 / total as f64)
}

/// Survival function of the standard normal distribution, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function, accurate to about 1e-14 relative: a series for erf below 3
/// (all terms positive, no cancellation) and a continued fraction above.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf(x) = 2/√π · e^{−x²} · Σ_{n≥0} 2^n x^{2n+1} / (1·3·…·(2n+1))
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        let erf = 2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum;
        return 1.0 - erf;
    }
    if x > 27.0 {
        return 0.0;
    }
    // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + (2/2)/(x + (3/2)/(x + …)))), modified Lentz.
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..2000 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = x + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

/// Median of finite values; `None` for an empty slice. The middle two of an even count are
/// averaged without overflow (so the median of values near `f64::MAX` stays finite).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (below, from_mid) = sorted.split_at_checked(sorted.len() / 2)?;
    // Empty only when `values` is.
    let &mid = from_mid.first()?;
    if sorted.len() % 2 == 1 {
        Some(mid)
    } else {
        // `midpoint` is `(a + b) / 2` unless that would overflow.
        Some(below.last()?.midpoint(mid))
    }
}

/// Hodges–Lehmann estimate of the shift of `x` against `y`: the median of all differences
/// `x_i − y_j`. Never NaN; infinite only when the differences themselves overflow (values
/// beyond ±`f64::MAX / 2`).
///
/// Exact, without building the `n·m` differences: each order statistic is found by a binary
/// search over the ordered bit patterns of `f64`, counting the differences at or below a value
/// in linear time (64 passes at most).
pub fn hodges_lehmann(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::Empty);
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite);
    }
    let mut xs = x.to_vec();
    let mut ys = y.to_vec();
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    // At most (2^64)^2 / 4 for real slices: never saturates.
    let total = (xs.len() as u128).saturating_mul(ys.len() as u128);
    let lower = total.div_ceil(2);
    let a = kth_difference(&xs, &ys, lower);
    if total % 2 == 1 {
        Ok(a)
    } else {
        let b = kth_difference(&xs, &ys, lower.saturating_add(1));
        // `midpoint` is `(a + b) / 2` unless that would overflow.
        Ok(a.midpoint(b))
    }
}

/// The `k`-th smallest (1-based) of the differences `x_i − y_j`, both slices sorted and finite.
fn kth_difference(x: &[f64], y: &[f64], k: u128) -> f64 {
    let (Some(&x_first), Some(&x_last), Some(&y_first), Some(&y_last)) =
        (x.first(), x.last(), y.first(), y.last())
    else {
        return f64::NAN;
    };
    let mut lo = order_key(x_first - y_last);
    let mut hi = order_key(x_last - y_first);
    while lo < hi {
        // Rounds down, as lo + (hi − lo) / 2, so lo ≤ mid < hi and mid + 1 cannot overflow.
        let mid = lo.midpoint(hi);
        if count_at_most(x, y, from_order_key(mid)) >= k {
            hi = mid;
        } else {
            lo = mid.saturating_add(1);
        }
    }
    from_order_key(lo)
}

/// Number of pairs with `x_i − y_j ≤ d` (both slices sorted ascending).
fn count_at_most(x: &[f64], y: &[f64], d: f64) -> u128 {
    let mut count: u128 = 0;
    // The y_j from the first one that qualifies on.
    let mut qualifying = y;
    for &xi in x {
        // x_i − y_j decreases with j and increases with i, so the first j that qualifies
        // never moves back.
        while let Some((&yj, rest)) = qualifying.split_first() {
            if (xi - yj).partial_cmp(&d) != Some(Ordering::Greater) {
                break;
            }
            qualifying = rest;
        }
        // At most len(x)·len(y): never saturates.
        count = count.saturating_add(qualifying.len() as u128);
    }
    count
}

/// Maps an `f64` to a `u64` that sorts in the same order (for non-NaN values).
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Inverse of [`order_key`].
fn from_order_key(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key & !(1 << 63))
    } else {
        f64::from_bits(!key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testgen::Rng;

    fn close(actual: f64, expected: f64, relative: f64) -> bool {
        (actual - expected).abs() <= relative * expected.abs().max(f64::MIN_POSITIVE)
    }

    // Reference values below were produced with SciPy 1.17.1 (NumPy 2.4.6) on Python 3.11:
    //   scipy.stats.mannwhitneyu(x, y)                      -> U (of x), two-sided p ("auto")
    //   scipy.stats.mannwhitneyu(x, y, method="asymptotic") -> p
    //   numpy.median(numpy.subtract.outer(x, y))             -> Hodges–Lehmann shift
    //   scipy.stats.norm.sf(z)                               -> normal survival function
    // The first data set is the textbook example of R. Shier, "Statistics: 2.3 The Mann-Whitney
    // U Test" (Mathematics Learning Support Centre, 2004), also quoted in SciPy's documentation:
    // U_M = 17, U_F = 3, exact two-sided p = 0.111.
    struct Reference {
        name: &'static str,
        x: &'static [f64],
        y: &'static [f64],
        u: f64,
        p: f64,
        method: PValueMethod,
        hodges_lehmann: f64,
    }

    const REFERENCES: &[Reference] = &[
        Reference {
            name: "shier (textbook, exact)",
            x: &[19.0, 22.0, 16.0, 29.0, 24.0],
            y: &[20.0, 11.0, 17.0, 12.0],
            u: 17.0,
            p: 0.1111111111111111,
            method: PValueMethod::Exact,
            hodges_lehmann: 7.0,
        },
        Reference {
            name: "5 vs 12, exact",
            x: &[3.1, 4.7, 5.2, 6.9, 8.4],
            y: &[1.2, 1.9, 2.5, 2.8, 3.3, 3.9, 4.1, 4.4, 5.0, 5.6, 6.1, 7.3],
            u: 44.0,
            p: 0.15998707175177765,
            method: PValueMethod::Exact,
            hodges_lehmann: 1.6500000000000004,
        },
        Reference {
            name: "12 vs 10 with ties, asymptotic",
            x: &[1.1, 2.2, 2.2, 3.3, 4.4, 4.4, 4.4, 5.5, 6.6, 7.7, 8.8, 9.9],
            y: &[0.5, 1.1, 2.2, 2.2, 3.0, 3.3, 3.3, 4.0, 5.0, 5.5],
            u: 87.0,
            p: 0.078865133751706,
            method: PValueMethod::Asymptotic,
            hodges_lehmann: 1.7000000000000002,
        },
        Reference {
            name: "30 vs 30 latencies shifted by 10, asymptotic",
            x: &[
                112.0, 118.0, 121.0, 125.0, 109.0, 131.0, 127.0, 119.0, 140.0, 122.0, 115.0, 128.0,
                133.0, 117.0, 124.0, 126.0, 138.0, 120.0, 129.0, 135.0, 116.0, 123.0, 130.0, 141.0,
                119.0, 127.0, 125.0, 134.0, 121.0, 136.0,
            ],
            y: &[
                101.0, 108.0, 111.0, 115.0, 99.0, 121.0, 117.0, 109.0, 130.0, 112.0, 105.0, 118.0,
                123.0, 107.0, 114.0, 116.0, 128.0, 110.0, 119.0, 125.0, 106.0, 113.0, 120.0, 131.0,
                109.0, 117.0, 115.0, 124.0, 111.0, 126.0,
            ],
            u: 721.0,
            p: 6.30250638434206e-05,
            method: PValueMethod::Asymptotic,
            hodges_lehmann: 10.0,
        },
        Reference {
            name: "25 vs 20 same values, many ties",
            x: &[
                5.0, 3.0, 8.0, 1.0, 9.0, 2.0, 7.0, 4.0, 6.0, 10.0, 5.0, 3.0, 8.0, 1.0, 9.0, 2.0,
                7.0, 4.0, 6.0, 10.0, 5.0, 5.0, 5.0, 5.0, 5.0,
            ],
            y: &[
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
                7.0, 8.0, 9.0, 10.0,
            ],
            u: 245.0,
            p: 0.9175616376520901,
            method: PValueMethod::Asymptotic,
            hodges_lehmann: 0.0,
        },
    ];

    #[test]
    fn mann_whitney_matches_scipy_references() {
        for r in REFERENCES {
            let result = mann_whitney_u(r.x, r.y).unwrap();
            assert_eq!(result.u, r.u, "{}: U", r.name);
            assert_eq!(result.method, r.method, "{}: method", r.name);
            assert!(
                close(result.p_value, r.p, 1e-9),
                "{}: p {} != scipy {}",
                r.name,
                result.p_value,
                r.p
            );
            let hl = hodges_lehmann(r.x, r.y).unwrap();
            assert!(
                close(hl, r.hodges_lehmann, 1e-12) || hl == r.hodges_lehmann,
                "{}: HL {hl} != numpy {}",
                r.name,
                r.hodges_lehmann
            );
        }
    }

    #[test]
    fn generated_data_sets_match_scipy_references() {
        // Data defined by formulas that Python evaluates to the same IEEE doubles; references
        // from SciPy 1.17.1 / NumPy 2.4.6:
        //   x = [3.2, 4.1, 5.9, 6.3, 7.7, 8.05, 9.4, 10.6]; y = [1.0 + 0.25*j for j in range(40)]
        //   mannwhitneyu(x, y) -> U 193.0, p 0.3756426709858937 (exact: n1 = 8, no ties)
        let x = [3.2, 4.1, 5.9, 6.3, 7.7, 8.05, 9.4, 10.6];
        let y: Vec<f64> = (0..40).map(|j| 1.0 + 0.25 * f64::from(j)).collect();
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.method, PValueMethod::Exact);
        assert_eq!(r.u, 193.0);
        assert!(close(r.p_value, 0.3756426709858937, 1e-9), "{}", r.p_value);

        //   x = [((i*7919) % 1000)/10 + 5 for i in range(200)]
        //   y = [((j*104729) % 997)/10 for j in range(180)]
        //   mannwhitneyu(x, y) -> U 20047.0, p 0.0555934071173571 (asymptotic, with ties)
        //   numpy.median(numpy.subtract.outer(x, y)) -> 5.800000000000001
        let x: Vec<f64> = (0..200_u32)
            .map(|i| f64::from((i * 7919) % 1000) / 10.0 + 5.0)
            .collect();
        let y: Vec<f64> = (0..180_u32)
            .map(|j| f64::from((j * 104_729) % 997) / 10.0)
            .collect();
        let r = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(r.method, PValueMethod::Asymptotic);
        assert_eq!(r.u, 20047.0);
        assert!(close(r.p_value, 0.0555934071173571, 1e-9), "{}", r.p_value);
        assert_eq!(hodges_lehmann(&x, &y).unwrap(), 5.800000000000001);
    }

    #[test]
    fn textbook_example_asymptotic_p_matches_scipy() {
        // SciPy 1.17.1: mannwhitneyu(males, females, method="asymptotic").pvalue
        let r = &REFERENCES[0];
        let n1 = r.x.len() as f64;
        let n2 = r.y.len() as f64;
        let u = (r.u).max(n1 * n2 - r.u);
        let z = (u - n1 * n2 / 2.0 - 0.5) / (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
        assert!(close(2.0 * normal_sf(z), 0.11134688653314041, 1e-12));
    }

    #[test]
    fn normal_sf_matches_scipy() {
        // scipy.stats.norm.sf(z), SciPy 1.17.1.
        let references = [
            (0.0, 0.5),
            (0.5, 0.3085375387259869),
            (1.0, 0.15865525393145707),
            (1.959963984540054, 0.025),
            (3.0, 0.0013498980316300933),
            (4.5, 3.3976731247300535e-06),
            (6.0, 9.865876450376946e-10),
            (8.0, 6.22096057427174e-16),
            (-1.5, 0.9331927987311419),
        ];
        for (z, expected) in references {
            let actual = normal_sf(z);
            assert!(
                close(actual, expected, 1e-12),
                "sf({z}) = {actual}, scipy {expected}"
            );
        }
        assert_eq!(normal_sf(40.0), 0.0);
        assert_eq!(normal_sf(-40.0), 1.0);
    }

    /// All ways to pick which `m` of `m + n` ranks belong to the first sample, by brute force.
    fn brute_force_u_counts(m: usize, n: usize) -> Vec<u64> {
        let mut counts = vec![0_u64; m * n + 1];
        let total = m + n;
        for mask in 0_u32..(1 << total) {
            if mask.count_ones() as usize != m {
                continue;
            }
            // U of the first sample = number of (first, second) pairs with first above second.
            let mut u = 0;
            let mut seconds_below = 0;
            for rank in 0..total {
                if mask & (1 << rank) != 0 {
                    u += seconds_below;
                } else {
                    seconds_below += 1;
                }
            }
            counts[u] += 1;
        }
        counts
    }

    #[test]
    fn exact_distribution_matches_brute_force_enumeration() {
        for (m, n) in [(1, 1), (2, 3), (3, 3), (4, 5), (5, 7), (6, 6), (3, 10)] {
            let counts = brute_force_u_counts(m, n);
            let total: u64 = counts.iter().sum();
            for u in 0..=m * n + 1 {
                let expected = counts.iter().skip(u).sum::<u64>() as f64 / total as f64;
                let actual = exact_u_sf(u as f64, m, n).unwrap();
                assert!(
                    (actual - expected).abs() < 1e-15,
                    "P(U >= {u}) for {m}x{n}: {actual} != {expected}"
                );
            }
        }
    }

    #[test]
    fn exact_and_normal_approximation_agree_for_moderate_samples() {
        let mut rng = Rng::new(7);
        let x: Vec<f64> = (0..8).map(|_| rng.normal() + 0.8).collect();
        let y: Vec<f64> = (0..60).map(|_| rng.normal()).collect();
        let exact = mann_whitney_u(&x, &y).unwrap();
        assert_eq!(exact.method, PValueMethod::Exact);
        let n1 = 8.0;
        let n2 = 60.0;
        let u = exact.u.max(n1 * n2 - exact.u);
        let z = (u - n1 * n2 / 2.0 - 0.5) / (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
        let approx = 2.0 * normal_sf(z);
        assert!(
            (exact.p_value - approx).abs() < 0.01,
            "exact {} vs normal {approx}",
            exact.p_value
        );
    }

    #[test]
    fn the_test_is_symmetric_and_u_statistics_add_up() {
        let mut rng = Rng::new(11);
        let x: Vec<f64> = (0..40).map(|_| (rng.normal() * 3.0).round()).collect();
        let y: Vec<f64> = (0..55)
            .map(|_| (rng.normal() * 3.0 + 0.5).round())
            .collect();
        let xy = mann_whitney_u(&x, &y).unwrap();
        let yx = mann_whitney_u(&y, &x).unwrap();
        assert_eq!(xy.u + yx.u, 40.0 * 55.0);
        assert!((xy.p_value - yx.p_value).abs() < 1e-15);
    }

    #[test]
    fn identical_values_give_p_one_and_bad_input_is_refused() {
        let same = [3.0; 12];
        let result = mann_whitney_u(&same, &same).unwrap();
        assert_eq!(result.p_value, 1.0);
        assert_eq!(mann_whitney_u(&[], &[1.0]), Err(StatsError::Empty));
        assert_eq!(
            mann_whitney_u(&[1.0, f64::NAN], &[1.0]),
            Err(StatsError::NotFinite)
        );
        assert_eq!(hodges_lehmann(&[1.0], &[]), Err(StatsError::Empty));
    }

    #[test]
    fn p_values_are_calibrated_under_the_null_hypothesis() {
        // Under H0 about 5% of tests fall below 0.05.
        let mut rng = Rng::new(2024);
        let runs = 400;
        let mut below = 0;
        for _ in 0..runs {
            let x = rng.latencies(50, 100.0, 0.3);
            let y = rng.latencies(50, 100.0, 0.3);
            if mann_whitney_u(&x, &y).unwrap().p_value < 0.05 {
                below += 1;
            }
        }
        assert!((8..=36).contains(&below), "{below} of {runs} below 0.05");
    }

    #[test]
    fn hodges_lehmann_matches_brute_force_median_of_differences() {
        let mut rng = Rng::new(99);
        for (n, m) in [(1, 1), (1, 2), (3, 4), (17, 23), (64, 50)] {
            let x: Vec<f64> = (0..n)
                .map(|_| (rng.normal() * 10.0).round() / 4.0)
                .collect();
            let y: Vec<f64> = (0..m)
                .map(|_| (rng.normal() * 10.0 - 3.0).round() / 4.0)
                .collect();
            let mut diffs: Vec<f64> = x
                .iter()
                .flat_map(|a| y.iter().map(move |b| a - b))
                .collect();
            let expected = median(&diffs).unwrap();
            diffs.clear();
            assert_eq!(hodges_lehmann(&x, &y).unwrap(), expected, "{n}x{m}");
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
