//! Detection quality of the sequential judge, simulated in-process with fixed seeds:
//! `cargo bench --bench detection`.
//!
//! Each experiment feeds paired requests one at a time into a fresh
//! [`nprt::compare::sequential::Sequential`] until it decides (or the pair limit). A request's
//! work is log-normal (median 20 ms, σ 0.5); each target adds its own log-normal jitter
//! (σ 0.15) and fails 0.1% of the time at random, so even identical versions disagree pair by
//! pair. Requests arrive at 50 per second, for the time column.

use nprt::compare::sequential::{Decision, PairSample, Sequential, SequentialOptions};

const RATE_PER_S: f64 = 50.0;

#[derive(Clone, Copy)]
enum Scenario {
    AA,
    Broken,
    Slower20,
    TailOnly,
    VarianceOnly,
    Bimodal,
    SparseErrors,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::AA => "A/A (identical)",
            Scenario::Broken => "broken canary (all 5xx)",
            Scenario::Slower20 => "all latencies ×1.2",
            Scenario::TailOnly => "tail only (2% +50 ms)",
            Scenario::VarianceOnly => "variance only (same median)",
            Scenario::Bimodal => "bimodal (10% +100 ms)",
            Scenario::SparseErrors => "sparse errors (0.5% 5xx)",
        }
    }
}

/// Standard normal by Box–Muller.
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn sample(s: Scenario, rng: &mut fastrand::Rng, i: u64) -> PairSample {
    let work = 20.0 * (0.5 * normal(rng)).exp();
    let base = work * (0.15 * normal(rng)).exp();
    let mut cand = match s {
        // Same median, three times the jitter.
        Scenario::VarianceOnly => work * (0.45 * normal(rng)).exp(),
        _ => work * (0.15 * normal(rng)).exp(),
    };
    let baseline_failed = rng.f64() < 0.001;
    let mut candidate_failed = rng.f64() < 0.001;
    match s {
        Scenario::Broken => {
            candidate_failed = true;
            cand = 1.0;
        }
        Scenario::Slower20 => cand *= 1.2,
        Scenario::TailOnly if rng.f64() < 0.02 => cand += 50.0,
        Scenario::Bimodal if rng.f64() < 0.10 => cand += 100.0,
        Scenario::SparseErrors if rng.f64() < 0.005 => candidate_failed = true,
        _ => {}
    }
    PairSample {
        at_us: (i as f64 / RATE_PER_S * 1e6) as u64,
        baseline_failed,
        candidate_failed,
        baseline_us: (base * 1000.0) as u64,
        candidate_us: (cand * 1000.0) as u64,
    }
}

struct Outcome {
    fails: usize,
    passes: usize,
    inconclusive: usize,
    fail_pairs: Vec<u64>,
    fail_seconds: Vec<f64>,
}

fn run(s: Scenario, experiments: u64, options: &SequentialOptions) -> Outcome {
    let mut out = Outcome {
        fails: 0,
        passes: 0,
        inconclusive: 0,
        fail_pairs: Vec::new(),
        fail_seconds: Vec::new(),
    };
    for e in 0..experiments {
        let mut rng = fastrand::Rng::with_seed(1_000 + e);
        let mut judge = Sequential::new(options.clone());
        let mut i = 0;
        let decision = loop {
            let d = judge.add(sample(s, &mut rng, i));
            i += 1;
            if d != Decision::Continue {
                break d;
            }
        };
        match decision {
            Decision::Fail {
                pairs, elapsed_us, ..
            } => {
                out.fails += 1;
                out.fail_pairs.push(pairs);
                out.fail_seconds.push(elapsed_us as f64 / 1e6);
            }
            Decision::Pass { .. } => out.passes += 1,
            _ => out.inconclusive += 1,
        }
    }
    out
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[v.len() / 2])
}

fn main() {
    // `cargo test --benches` runs this too; keep that quick.
    let quick =
        std::env::args().any(|a| a == "--test") || std::env::var_os("NPRT_BENCH_QUICK").is_some();
    let options = SequentialOptions {
        max_pairs: if quick { 2_000 } else { 20_000 },
        ..SequentialOptions::default()
    };
    let (aa_runs, runs) = if quick { (10, 5) } else { (200, 100) };
    println!(
        "sequential judge, alpha {}, limit {} pairs; requests at {RATE_PER_S}/s",
        options.alpha, options.max_pairs
    );
    println!(
        "{:<30} {:>11} {:>10} {:>10} {:>13} {:>12}",
        "scenario", "experiments", "fail rate", "pass rate", "median pairs", "median time"
    );
    for s in [
        Scenario::AA,
        Scenario::Broken,
        Scenario::Slower20,
        Scenario::TailOnly,
        Scenario::VarianceOnly,
        Scenario::Bimodal,
        Scenario::SparseErrors,
    ] {
        let n = if matches!(s, Scenario::AA) {
            aa_runs
        } else {
            runs
        };
        let mut o = run(s, n, &options);
        let pairs = median(&mut o.fail_pairs).map_or_else(|| "-".into(), |p| p.to_string());
        let secs = median(&mut o.fail_seconds).map_or_else(|| "-".into(), |t| format!("{t:.1} s"));
        println!(
            "{:<30} {:>11} {:>9.1}% {:>9.1}% {:>13} {:>12}",
            s.name(),
            n,
            100.0 * o.fails as f64 / n as f64,
            100.0 * o.passes as f64 / n as f64,
            pairs,
            secs
        );
        let _ = o.inconclusive;
    }
    println!("fail rate of A/A = false alarms; of the others = detection rate. Times at the request rate above.");
}
