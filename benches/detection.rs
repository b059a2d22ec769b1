//! Detection quality of the judges, simulated in-process with fixed seeds:
//! `cargo bench --bench detection` (`cargo test --benches` runs a quick version).
//!
//! A request's work is log-normal (σ 0.5) around its route's median; each target adds its own
//! log-normal jitter (σ 0.15) and fails 0.1% of the time at random, so even identical versions
//! disagree pair by pair. Requests arrive at 50 per second, for the time column. A scenario's
//! change (slower, tail, errors…) applies to every route.
//!
//! Two tables:
//! - one route with a 20 ms median, the sequential judge at its default options (alpha 0.01):
//!   the scenario definitions the judge was first measured on, kept to compare before/after;
//! - three routes with medians 5, 20 and 80 ms and equal traffic, both judges at the alpha
//!   they run with in `nprt` (that of [`Options::new`], 0.05): A/A false FAIL rates over 1 000
//!   runs of the fixed-horizon judge ([`Comparison::verdict`] after 4 000 pairs) and of the
//!   sequential one, the pairs each route had when the sequential judge said PASS, and the
//!   pairs to FAIL for each broken scenario.

use std::sync::Arc;

use nprt::compare::sequential::{Decision, PairSample, Sequential, SequentialOptions};
use nprt::compare::{Comparison, Options, Outcome as Verdict};
use nprt::observation::Observation;

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

const SCENARIOS: [Scenario; 7] = [
    Scenario::AA,
    Scenario::Broken,
    Scenario::Slower20,
    Scenario::TailOnly,
    Scenario::VarianceOnly,
    Scenario::Bimodal,
    Scenario::SparseErrors,
];

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

/// One pair of a route whose median is `median_ms`.
fn sample(s: Scenario, rng: &mut fastrand::Rng, i: u64, median_ms: f64) -> PairSample {
    let work = median_ms * (0.5 * normal(rng)).exp();
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

/// Routes of the three-route scenarios, with their medians in ms.
const ROUTES: [(&str, f64); 3] = [("GET /fast", 5.0), ("GET /mid", 20.0), ("GET /slow", 80.0)];

/// The i-th pair of a run: its route and sample.
fn next(
    s: Scenario,
    rng: &mut fastrand::Rng,
    i: u64,
    routes: &[(&'static str, f64)],
) -> (usize, PairSample) {
    let k = if routes.len() == 1 {
        0
    } else {
        rng.usize(..routes.len())
    };
    (k, sample(s, rng, i, routes[k].1))
}

struct Outcome {
    fails: usize,
    passes: usize,
    fail_pairs: Vec<u64>,
    fail_seconds: Vec<f64>,
    /// Per route, its pairs when PASS was said.
    pass_route_pairs: Vec<Vec<u64>>,
}

fn run(
    s: Scenario,
    experiments: u64,
    options: &SequentialOptions,
    routes: &[(&'static str, f64)],
) -> Outcome {
    let mut out = Outcome {
        fails: 0,
        passes: 0,
        fail_pairs: Vec::new(),
        fail_seconds: Vec::new(),
        pass_route_pairs: vec![Vec::new(); routes.len()],
    };
    for e in 0..experiments {
        let mut rng = fastrand::Rng::with_seed(1_000 + e);
        let mut judge = Sequential::new(options.clone());
        let mut counts = vec![0u64; routes.len()];
        let mut i = 0;
        let decision = loop {
            let (k, pair) = next(s, &mut rng, i, routes);
            counts[k] += 1;
            let d = judge.add(routes[k].0, pair);
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
            Decision::Pass { .. } => {
                out.passes += 1;
                for (v, c) in out.pass_route_pairs.iter_mut().zip(&counts) {
                    v.push(*c);
                }
            }
            _ => {}
        }
    }
    out
}

/// A/A false FAIL rate of the fixed-horizon judge: `pairs` pairs over the three routes into a
/// [`Comparison`] with default options, then one verdict.
fn fixed_horizon_aa(runs: u64, pairs: u64) -> (usize, Vec<String>) {
    let mut fails = 0;
    let mut why = Vec::new();
    let (baseline, candidate): (Arc<str>, Arc<str>) = ("baseline".into(), "candidate".into());
    let routes: Vec<Arc<str>> = ROUTES.iter().map(|(r, _)| Arc::from(*r)).collect();
    let method: Arc<str> = "GET".into();
    for e in 0..runs {
        let mut rng = fastrand::Rng::with_seed(50_000 + e);
        let mut c = Comparison::new(Options::new("baseline", "candidate")).expect("valid");
        for i in 0..pairs {
            let (k, p) = next(Scenario::AA, &mut rng, i, &ROUTES);
            let id: Arc<str> = i.to_string().into();
            for (target, failed, us) in [
                (&baseline, p.baseline_failed, p.baseline_us),
                (&candidate, p.candidate_failed, p.candidate_us),
            ] {
                c.add(&Observation {
                    id: id.clone(),
                    target: target.clone(),
                    route: routes[k].clone(),
                    method: method.clone(),
                    status: Some(if failed { 503 } else { 200 }),
                    latency_us: us,
                    bytes: 0,
                    error: None,
                    at_ms: None,
                    grpc_status: None,
                });
            }
        }
        let v = c.verdict();
        if v.outcome == Verdict::Fail {
            fails += 1;
            why.extend(
                v.findings
                    .iter()
                    .filter(|f| f.severity == nprt::compare::rules::Severity::Fail)
                    .map(|f| format!("{}: {:?}", f.route, f.metric)),
            );
        }
    }
    (fails, why)
}

fn quantile<T: Copy + PartialOrd>(v: &mut [T], q: f64) -> Option<T> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

fn header() {
    println!(
        "{:<30} {:>11} {:>10} {:>10} {:>13} {:>12}",
        "scenario", "experiments", "fail rate", "pass rate", "median pairs", "median time"
    );
}

fn table(options: &SequentialOptions, routes: &[(&'static str, f64)], aa_runs: u64, runs: u64) {
    for s in SCENARIOS {
        let n = if matches!(s, Scenario::AA) {
            aa_runs
        } else {
            runs
        };
        let mut o = run(s, n, options, routes);
        let pairs = quantile(&mut o.fail_pairs, 0.5).map_or_else(|| "-".into(), |p| p.to_string());
        let secs =
            quantile(&mut o.fail_seconds, 0.5).map_or_else(|| "-".into(), |t| format!("{t:.1} s"));
        println!(
            "{:<30} {:>11} {:>9.1}% {:>9.1}% {:>13} {:>12}",
            s.name(),
            n,
            100.0 * o.fails as f64 / n as f64,
            100.0 * o.passes as f64 / n as f64,
            pairs,
            secs
        );
        if matches!(s, Scenario::AA) {
            for ((name, _), v) in routes.iter().zip(o.pass_route_pairs.iter_mut()) {
                let fmt = |p: Option<u64>| p.map_or_else(|| "-".into(), |p| p.to_string());
                let (median, p90) = (fmt(quantile(v, 0.5)), fmt(quantile(v, 0.9)));
                println!("  pairs of {name:<12} at PASS: median {median:>6}, p90 {p90:>6}");
            }
        }
    }
}

fn main() {
    // `cargo test --benches` runs this too (without `--bench`, which only `cargo bench`
    // passes); keep that quick.
    let quick =
        !std::env::args().any(|a| a == "--bench") || std::env::var_os("NPRT_BENCH_QUICK").is_some();
    let max_pairs = if quick { 2_000 } else { 20_000 };

    let single = SequentialOptions {
        max_pairs,
        ..SequentialOptions::default()
    };
    let (aa_runs, runs) = if quick { (10, 5) } else { (200, 100) };
    println!(
        "one route (median 20 ms); sequential judge, alpha {}, limit {} pairs; requests at {RATE_PER_S}/s",
        single.alpha, single.max_pairs
    );
    header();
    table(&single, &[("GET /", 20.0)], aa_runs, runs);

    let defaults = Options::new("baseline", "candidate");
    let multi = SequentialOptions {
        alpha: defaults.alpha,
        max_pairs,
        ..SequentialOptions::default()
    };
    let (aa_runs, runs) = if quick { (10, 5) } else { (1_000, 100) };
    println!();
    println!(
        "three routes (medians 5, 20, 80 ms, equal traffic); alpha {} as deployed, limit {} pairs",
        multi.alpha, multi.max_pairs
    );
    let (fh_runs, fh_pairs) = if quick { (3, 4_000) } else { (1_000, 4_000) };
    let (fails, why) = fixed_horizon_aa(fh_runs, fh_pairs);
    println!(
        "{:<30} {:>11} {:>9.1}%   (verdict after {fh_pairs} pairs)",
        "fixed-horizon A/A",
        fh_runs,
        100.0 * fails as f64 / fh_runs as f64
    );
    if !why.is_empty() {
        let mut why = why;
        why.sort();
        why.dedup();
        println!("  failing findings: {}", why.join("; "));
    }
    header();
    table(&multi, &ROUTES, aa_runs, runs);
    println!(
        "fail rate of A/A = false alarms; of the others = detection rate. Times at the request rate above."
    );
}
