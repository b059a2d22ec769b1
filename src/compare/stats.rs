//! The statistics the judge uses, as pure functions of counts and samples: exact tests on
//! status counts (McNemar on paired exchanges, Fisher when unpaired), the Wilcoxon signed-rank
//! test with the Hodges–Lehmann shift and its interval on paired latency differences, a
//! one-sided two-sample Kolmogorov–Smirnov test on two latency histograms with a tolerance, a
//! paired bootstrap of quantile deltas, and Holm / Benjamini–Hochberg adjustment.
//!
//! Every test is one-sided in the *harmful* direction (candidate fails more, or is slower):
//! an improvement is never a finding. References for each method are in the function docs;
//! the unit tests check them against published values or exact enumeration.
//!
//! Latency differences are integers (µs), so rank statistics and Walsh averages are exact.

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Hypergeometric};
use statrs::function::erf;

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erf::erfc(z / std::f64::consts::SQRT_2)
}

/// The z with P(Z > z) = `p`, for 0 < p < 1.
pub fn normal_quantile_upper(p: f64) -> f64 {
    // P(Z > z) = p  ⇔  erfc(z/√2) = 2p  ⇔  z = √2 · erfc⁻¹(2p).
    std::f64::consts::SQRT_2 * erf::erfc_inv(2.0 * p)
}

/// One-sided exact binomial test with success probability ½: P(X ≥ k), X ~ Bin(n, ½).
/// This is the exact McNemar test on the discordant pairs (R: `binom.test(k, n, 0.5,
/// alternative = "greater")`), summed exactly in log space for any n.
pub fn binomial_half_upper(k: u64, n: u64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    // Terms shrink geometrically once i > n/2; stop when they no longer change the sum.
    let mut sum = 0.0;
    for i in k..=n {
        let term = (statrs::function::factorial::ln_binomial(n, i) + ln_half_n).exp();
        sum += term;
        if i > n / 2 && term < sum * 1e-17 {
            break;
        }
    }
    sum.min(1.0)
}

/// The exact McNemar test on paired outcomes, harmful direction only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Pairs where the baseline succeeded and the candidate failed.
    pub worse: u64,
    /// Pairs where the baseline failed and the candidate succeeded.
    pub better: u64,
    /// All pairs, concordant ones included.
    pub pairs: u64,
    /// Paired difference of failure rates, `(worse - better) / pairs`.
    pub effect: f64,
    /// Wald 1-α interval of `effect` (paired-proportions variance).
    pub interval: (f64, f64),
    /// One-sided exact p-value: P(X ≥ worse), X ~ Bin(worse + better, ½).
    pub p_value: f64,
}

/// McNemar's test, exact form (McNemar 1947; the exact binomial version as in R's
/// `exact2x2::mcnemar.exact` / `binom.test` on the discordant counts).
pub fn mcnemar(worse: u64, better: u64, pairs: u64, alpha: f64) -> McNemar {
    let n = pairs.max(1) as f64;
    let (w, b) = (worse as f64, better as f64);
    let effect = (w - b) / n;
    // Var of the paired difference of proportions: ((b + c) - (b - c)²/n) / n².
    let var = ((w + b) - (w - b).powi(2) / n).max(0.0) / (n * n);
    let z = normal_quantile_upper(alpha / 2.0);
    McNemar {
        worse,
        better,
        pairs,
        effect,
        interval: (effect - z * var.sqrt(), effect + z * var.sqrt()),
        p_value: binomial_half_upper(worse, worse + better),
    }
}

/// One-sided Fisher exact test that the candidate's failure proportion is greater than the
/// baseline's, for unpaired counts (R: `fisher.test(matrix(c(cf, cn - cf, bf, bn - bf), 2),
/// alternative = "greater")`): P(X ≥ cf) with X hypergeometric.
pub fn fisher_greater(
    candidate_fail: u64,
    candidate_n: u64,
    baseline_fail: u64,
    baseline_n: u64,
) -> f64 {
    let population = candidate_n + baseline_n;
    let successes = candidate_fail + baseline_fail;
    if candidate_fail == 0 || population == 0 {
        return 1.0;
    }
    match Hypergeometric::new(population, successes, candidate_n) {
        // sf(x) = P(X > x), so P(X ≥ cf) = sf(cf - 1).
        Ok(h) => h.sf(candidate_fail - 1).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// The Wilcoxon signed-rank test of `diffs - shift` against 0, one-sided "greater".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignedRank {
    /// Non-zero differences used.
    pub n: usize,
    /// Sum of the ranks of positive differences (R's `V`).
    pub v: f64,
    /// One-sided p-value: exact for n < 50 without ties (as R does), else the normal
    /// approximation with tie correction and continuity correction.
    pub p_value: f64,
    pub exact: bool,
}

/// Wilcoxon (1945) signed-rank test, "greater": are `diffs` (candidate − baseline) shifted
/// above `shift`? Zeros are dropped and ties get mid-ranks, as in R's `wilcox.test`.
pub fn signed_rank(diffs: &[i64], shift: i64) -> SignedRank {
    signed_rank_with(diffs, shift, true)
}

fn signed_rank_with(diffs: &[i64], shift: i64, allow_exact: bool) -> SignedRank {
    let mut abs: Vec<(i64, bool)> = diffs
        .iter()
        .map(|&d| d.saturating_sub(shift))
        .filter(|&d| d != 0)
        .map(|d| (d.saturating_abs(), d > 0))
        .collect();
    let n = abs.len();
    if n == 0 {
        return SignedRank {
            n,
            v: 0.0,
            p_value: 1.0,
            exact: false,
        };
    }
    abs.sort_unstable_by_key(|&(a, _)| a);
    let mut v = 0.0;
    let mut tie_term = 0.0;
    let mut ties = false;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && abs[j + 1].0 == abs[i].0 {
            j += 1;
        }
        // Ranks i+1..=j+1 share their mean.
        let rank = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        if t > 1.0 {
            ties = true;
            tie_term += t * t * t - t;
        }
        v += rank * abs[i..=j].iter().filter(|(_, pos)| *pos).count() as f64;
        i = j + 1;
    }
    if allow_exact && n < 50 && !ties {
        let p = signed_rank_exact_upper(n, v.round() as u64);
        return SignedRank {
            n,
            v,
            p_value: p,
            exact: true,
        };
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    let p = if var <= 0.0 {
        if v > mean {
            0.0
        } else {
            1.0
        }
    } else {
        normal_sf((v - mean - 0.5) / var.sqrt())
    };
    SignedRank {
        n,
        v,
        p_value: p,
        exact: false,
    }
}

/// P(V ≥ v) under H0 for n untied non-zero differences: each rank is positive with
/// probability ½, so the distribution of V is counted by a subset-sum recursion.
fn signed_rank_exact_upper(n: usize, v: u64) -> f64 {
    let max = n * (n + 1) / 2;
    // counts[s] = number of subsets of {1..k} with sum s; f64 holds 2^50 exactly enough.
    let mut counts = vec![0.0f64; max + 1];
    counts[0] = 1.0;
    for k in 1..=n {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    let total = 2f64.powi(n as i32);
    let from = (v as usize).min(max + 1);
    counts[from..].iter().sum::<f64>() / total
}

/// The Hodges–Lehmann shift of paired differences and its distribution-free interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HodgesLehmann {
    /// Median of the Walsh averages (dᵢ + dⱼ)/2, i ≤ j, in the unit of the input.
    pub estimate: f64,
    /// 1-α interval: Walsh averages of order k and N+1-k, with k from the normal
    /// approximation of the signed-rank distribution (Hollander & Wolfe, §3.3).
    pub interval: (f64, f64),
}

/// Hodges & Lehmann (1963) estimate and Tukey's interval from the Walsh averages, found by
/// bisection on integer sums with an O(n) pair count, so n = 10 000 needs no 50 M averages.
pub fn hodges_lehmann(diffs: &[i64], alpha: f64) -> Option<HodgesLehmann> {
    if diffs.is_empty() {
        return None;
    }
    let mut x = diffs.to_vec();
    x.sort_unstable();
    let n = x.len() as u64;
    let total = n * (n + 1) / 2;
    // The median of N values: the mean of orders ⌊(N+1)/2⌋ and ⌈(N+1)/2⌉.
    let lo_med = walsh_sum_of_order(&x, total.div_ceil(2));
    let hi_med = walsh_sum_of_order(&x, total / 2 + 1);
    let estimate = (lo_med + hi_med) as f64 / 4.0;
    let nf = n as f64;
    let sd = (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
    let z = normal_quantile_upper(alpha / 2.0);
    let k = ((total as f64 / 2.0 - z * sd).floor() as u64).clamp(1, total);
    let lower = walsh_sum_of_order(&x, k) as f64 / 2.0;
    let upper = walsh_sum_of_order(&x, total + 1 - k) as f64 / 2.0;
    Some(HodgesLehmann {
        estimate,
        interval: (lower, upper),
    })
}

/// The k-th smallest (1-based) of the sums xᵢ + xⱼ, i ≤ j, over sorted `x`.
fn walsh_sum_of_order(x: &[i64], k: u64) -> i128 {
    let n = x.len();
    let count_le = |t: i128| -> u64 {
        // For each i, the j ≥ i with x[i] + x[j] ≤ t form a prefix of x[i..]; its end moves
        // left as i grows.
        let mut count = 0u64;
        let mut j = n;
        for i in 0..n {
            while j > 0 && x[i] as i128 + x[j - 1] as i128 > t {
                j -= 1;
            }
            if j <= i {
                break;
            }
            count += (j - i) as u64;
        }
        count
    };
    let mut lo = 2 * x[0] as i128 - 1; // count_le(lo) = 0 < k
    let mut hi = 2 * x[n - 1] as i128; // count_le(hi) = N ≥ k
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if count_le(mid) >= k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// One-sided two-sample Kolmogorov–Smirnov statistic with a tolerance: the largest share of
/// probability by which the candidate is slower than the baseline *beyond the allowance*,
/// D⁺ = maxₓ (F_b(x) − F_c(allow(x))), where `allow` maps a baseline latency to the latency
/// the candidate may have there. With `allow(x) = x` this is Smirnov's D⁺.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Smirnov {
    pub d: f64,
    /// Where D⁺ is reached (a baseline latency, same unit as the input values).
    pub at: u64,
    /// Smirnov's (1939) limit P(D⁺ ≥ d) ≈ exp(−2 d² nm/(n+m)); conservative for the ties of
    /// a histogram and for positively correlated (paired) samples.
    pub p_value: f64,
}

/// `baseline` and `candidate` are (value, count) pairs in ascending value order, e.g. the
/// recorded buckets of two HdrHistograms.
pub fn smirnov_greater(
    baseline: &[(u64, u64)],
    candidate: &[(u64, u64)],
    allow: impl Fn(u64) -> u64,
) -> Option<Smirnov> {
    let n: u64 = baseline.iter().map(|&(_, c)| c).sum();
    let m: u64 = candidate.iter().map(|&(_, c)| c).sum();
    if n == 0 || m == 0 {
        return None;
    }
    let mut best = Smirnov {
        d: 0.0,
        at: 0,
        p_value: 1.0,
    };
    let mut fb = 0u64;
    let mut fc = 0u64;
    let mut j = 0;
    for &(x, count) in baseline {
        fb += count;
        let limit = allow(x);
        while j < candidate.len() && candidate[j].0 <= limit {
            fc += candidate[j].1;
            j += 1;
        }
        let d = fb as f64 / n as f64 - fc as f64 / m as f64;
        if d > best.d {
            best.d = d;
            best.at = x;
        }
    }
    let ne = (n as f64 * m as f64) / (n + m) as f64;
    best.p_value = if best.d > 0.0 {
        (-2.0 * best.d * best.d * ne).exp().min(1.0)
    } else {
        1.0
    };
    Some(best)
}

/// A quantile delta with a paired percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantileDelta {
    pub baseline: f64,
    pub candidate: f64,
    /// candidate − baseline quantile of the sample.
    pub delta: f64,
    pub interval: (f64, f64),
    /// One-sided p-value of "delta ≤ 0" from the bootstrap standard error, normal
    /// approximation: P(Z > delta / se). Unlike counting resamples, it is not floored at
    /// 1/(B+1), so it survives a multiplicity adjustment over many routes.
    pub p_value: f64,
}

/// Quantile `q` of the two sides of paired samples `(baseline, candidate)`, and a percentile
/// bootstrap (Efron & Tibshirani 1993, ch. 13) resampling whole exchanges, so the pairing is
/// kept. Deterministic: `seed` fixes the resamples, and the pairs are sorted first so that the
/// order they arrived in does not matter.
pub fn quantile_delta_bootstrap(
    pairs: &[(u64, u64)],
    q: f64,
    resamples: usize,
    alpha: f64,
    seed: u64,
) -> Option<QuantileDelta> {
    if pairs.is_empty() {
        return None;
    }
    let mut sorted = pairs.to_vec();
    sorted.sort_unstable();
    let quantile = |values: &mut Vec<u64>| -> f64 {
        let idx = quantile_index(values.len(), q);
        *values.select_nth_unstable(idx).1 as f64
    };
    let (mut b, mut c): (Vec<u64>, Vec<u64>) = sorted.iter().copied().unzip();
    let qb = quantile(&mut b);
    let qc = quantile(&mut c);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut deltas = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        b.clear();
        c.clear();
        for _ in 0..sorted.len() {
            let (x, y) = sorted[rng.usize(..sorted.len())];
            b.push(x);
            c.push(y);
        }
        deltas.push(quantile(&mut c) - quantile(&mut b));
    }
    deltas.sort_unstable_by(f64::total_cmp);
    let at = |p: f64| deltas[quantile_index(deltas.len(), p)];
    let mean = deltas.iter().sum::<f64>() / deltas.len().max(1) as f64;
    let var =
        deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (deltas.len().max(2) - 1) as f64;
    let delta = qc - qb;
    let p_value = if var > 0.0 {
        normal_sf(delta / var.sqrt())
    } else if delta > 0.0 {
        0.0
    } else {
        1.0
    };
    Some(QuantileDelta {
        baseline: qb,
        candidate: qc,
        delta: qc - qb,
        interval: if deltas.is_empty() {
            (qc - qb, qc - qb)
        } else {
            (at(alpha / 2.0), at(1.0 - alpha / 2.0))
        },
        p_value,
    })
}

/// The index of quantile `q` in `len` sorted values (nearest rank: ⌈q·len⌉-th value).
fn quantile_index(len: usize, q: f64) -> usize {
    ((q * len as f64).ceil() as usize).clamp(1, len.max(1)) - 1
}

/// How p-values are adjusted across all routes × metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm (1979): controls the chance of any false finding (family-wise error).
    #[default]
    Holm,
    /// Benjamini & Hochberg (1995): controls the expected share of false findings.
    Bh,
    /// No adjustment.
    None,
}

/// Adjusted p-values in the input order (R: `p.adjust(p, "holm" | "BH" | "none")`).
pub fn adjust(p: &[f64], method: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    match method {
        Correction::None => out.copy_from_slice(p),
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                out[i] = running;
            }
        }
        Correction::Bh => {
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p[i]).min(1.0));
                out[i] = running;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn binomial_tail_matches_exact_counts() {
        // binom.test(8, 10, alternative = "greater"): (45 + 10 + 1) / 1024 = 0.0546875.
        assert!(close(binomial_half_upper(8, 10), 56.0 / 1024.0, 1e-12));
        // binom.test(10, 10, alternative = "greater"): 1 / 1024.
        assert!(close(binomial_half_upper(10, 10), 1.0 / 1024.0, 1e-12));
        assert_eq!(binomial_half_upper(0, 5), 1.0);
        // Large n: symmetric, so P(X ≥ 501) of Bin(1000, ½) = (1 − P(X = 500)) / 2.
        let p500 = (statrs::function::factorial::ln_binomial(1000, 500)
            - 1000.0 * std::f64::consts::LN_2)
            .exp();
        assert!(close(
            binomial_half_upper(501, 1000),
            (1.0 - p500) / 2.0,
            1e-12
        ));
    }

    #[test]
    fn mcnemar_on_discordant_pairs() {
        // 12 discordant pairs, 10 of them against the candidate: binom.test(10, 12, 0.5,
        // "greater") = (66 + 12 + 1) / 4096 = 0.019287109375.
        let m = mcnemar(10, 2, 100, 0.05);
        assert!(close(m.p_value, 79.0 / 4096.0, 1e-12), "{}", m.p_value);
        assert!(close(m.effect, 0.08, 1e-12));
        assert!(m.interval.0 < 0.08 && m.interval.1 > 0.08);
        // Improvements are never significant.
        assert!(mcnemar(2, 10, 100, 0.05).p_value > 0.99);
    }

    #[test]
    fn fisher_tea_tasting() {
        // Fisher's lady tasting tea (R `?fisher.test`, TeaTasting, alternative = "greater"):
        // p = 17/70 = 0.2428571.
        assert!(close(fisher_greater(3, 4, 1, 4), 17.0 / 70.0, 1e-9));
        // All 10 candidate requests fail, none of 10 baseline ones: 1 / C(20, 10).
        assert!(close(fisher_greater(10, 10, 0, 10), 1.0 / 184_756.0, 1e-12));
        assert_eq!(fisher_greater(0, 10, 5, 10), 1.0);
    }

    #[test]
    fn signed_rank_matches_r_depression_example() {
        // R `?wilcox.test`, Hollander & Wolfe (1973) p. 29 depression scores, first (x) and
        // second (y) visit: wilcox.test(x, y, paired = TRUE, alternative = "greater")
        // gives V = 40, p-value = 0.01953 (= 10/512, exact).
        // In thousandths, so the differences are exact integers.
        let x = [1830i64, 500, 1620, 2480, 1680, 1880, 1550, 3060, 1300];
        let y = [878i64, 647, 598, 2050, 1060, 1290, 1060, 3140, 1290];
        let d: Vec<i64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
        let r = signed_rank(&d, 0);
        assert!(r.exact);
        assert_eq!(r.v, 40.0);
        assert!(close(r.p_value, 10.0 / 512.0, 1e-12), "{}", r.p_value);
    }

    #[test]
    fn signed_rank_exact_distribution_by_enumeration() {
        // P(V ≥ v) for n = 10 by enumerating all 1024 sign patterns.
        let n = 10usize;
        for v in [30u64, 40, 45, 50, 55] {
            let hits = (0u32..1 << n)
                .filter(|mask| {
                    let s: usize = (0..n).filter(|i| mask >> i & 1 == 1).map(|i| i + 1).sum();
                    s as u64 >= v
                })
                .count();
            assert!(close(
                signed_rank_exact_upper(n, v),
                hits as f64 / 1024.0,
                1e-15
            ));
        }
    }

    #[test]
    fn signed_rank_normal_approximation_agrees_with_exact() {
        // n = 45 without ties: the normal approximation (continuity-corrected) is within a
        // few thousandths of the exact tail.
        let d: Vec<i64> = (1..=45).map(|i| if i % 3 == 0 { -i } else { i }).collect();
        let exact = signed_rank_with(&d, 0, true);
        let approx = signed_rank_with(&d, 0, false);
        assert!(exact.exact && !approx.exact);
        assert!(
            close(exact.p_value, approx.p_value, 0.003),
            "{} vs {}",
            exact.p_value,
            approx.p_value
        );
        // A shift moves the null: against +100 every difference is negative.
        assert!(signed_rank(&d, 100).p_value > 0.999);
    }

    fn walsh_brute(d: &[i64]) -> Vec<f64> {
        let mut w = Vec::new();
        for i in 0..d.len() {
            for j in i..d.len() {
                w.push((d[i] + d[j]) as f64 / 2.0);
            }
        }
        w.sort_by(f64::total_cmp);
        w
    }

    #[test]
    fn hodges_lehmann_equals_brute_force_walsh_averages() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [1usize, 2, 5, 30, 101] {
            let d: Vec<i64> = (0..n).map(|_| rng.i64(-500..2_000)).collect();
            let w = walsh_brute(&d);
            let total = w.len();
            let median = if total % 2 == 1 {
                w[total / 2]
            } else {
                (w[total / 2 - 1] + w[total / 2]) / 2.0
            };
            let hl = hodges_lehmann(&d, 0.05).unwrap();
            assert_eq!(hl.estimate, median, "n = {n}");
            let nf = n as f64;
            let sd = (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
            let k = ((total as f64 / 2.0 - 1.959964 * sd).floor() as usize).clamp(1, total);
            assert_eq!(hl.interval, (w[k - 1], w[total - k]), "n = {n}");
        }
    }

    #[test]
    fn smirnov_statistic_by_hand() {
        // Baseline 1,2,3,4 ; candidate 3,4,5,6: F_b − F_c peaks at x = 2 (0.5 − 0) and
        // stays 0.5 at x = 3, 4.
        let b = [(1, 1), (2, 1), (3, 1), (4, 1)];
        let c = [(3, 1), (4, 1), (5, 1), (6, 1)];
        let s = smirnov_greater(&b, &c, |x| x).unwrap();
        assert!(close(s.d, 0.5, 1e-12));
        assert_eq!(s.at, 2);
        // exp(−2 · 0.25 · 16/8) = e⁻¹.
        assert!(close(s.p_value, (-1.0f64).exp(), 1e-12));
        // An allowance of +2 absorbs the whole shift.
        assert_eq!(smirnov_greater(&b, &c, |x| x + 2).unwrap().d, 0.0);
        // A faster candidate is not a finding.
        assert_eq!(smirnov_greater(&c, &b, |x| x).unwrap().d, 0.0);
    }

    #[test]
    fn bootstrap_quantile_delta_is_deterministic_and_covers_a_shift() {
        let pairs: Vec<(u64, u64)> = (0..2_000u64)
            .map(|i| {
                let base = 1_000 + (i * 7919) % 1_000;
                (base, base + 300)
            })
            .collect();
        let a = quantile_delta_bootstrap(&pairs, 0.99, 200, 0.05, 1).unwrap();
        let mut reversed = pairs.clone();
        reversed.reverse();
        let b = quantile_delta_bootstrap(&reversed, 0.99, 200, 0.05, 1).unwrap();
        assert_eq!(a, b, "order of arrival must not matter");
        assert_eq!(a.delta, 300.0);
        assert!(a.interval.0 <= 300.0 && a.interval.1 >= 300.0, "{a:?}");
        assert!(a.p_value < 0.01);
        let same: Vec<(u64, u64)> = pairs.iter().map(|&(x, _)| (x, x)).collect();
        assert_eq!(
            quantile_delta_bootstrap(&same, 0.99, 200, 0.05, 1)
                .unwrap()
                .p_value,
            1.0
        );
    }

    #[test]
    fn p_adjust_matches_r() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
        //    p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH")   = 0.02 0.04 0.04 0.02
        let p = [0.01, 0.04, 0.03, 0.005];
        let holm = adjust(&p, Correction::Holm);
        for (got, want) in holm.iter().zip([0.03, 0.06, 0.06, 0.02]) {
            assert!(close(*got, want, 1e-12), "{holm:?}");
        }
        let bh = adjust(&p, Correction::Bh);
        for (got, want) in bh.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!(close(*got, want, 1e-12), "{bh:?}");
        }
        assert_eq!(adjust(&p, Correction::None), p);
        assert!(adjust(&[], Correction::Holm).is_empty());
    }

    #[test]
    fn normal_helpers() {
        assert!(close(normal_sf(1.959963984540054), 0.025, 1e-9));
        assert!(close(normal_quantile_upper(0.025), 1.959963984540054, 1e-9));
    }
}
