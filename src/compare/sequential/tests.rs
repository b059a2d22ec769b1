//! The sequential judge's guarantees checked by simulation (supermartingales under the null,
//! the combined threshold across routes) and its decisions on small runs.

use super::*;

fn pair(b_fail: bool, c_fail: bool, b: u64, c: u64, at: u64) -> PairSample {
    PairSample {
        at_us: at,
        baseline_failed: b_fail,
        candidate_failed: c_fail,
        baseline_us: b,
        candidate_us: c,
    }
}

#[test]
fn e_value_is_the_mixture_likelihood_ratio() {
    let d = Discordance {
        worse: 3,
        better: 1,
        n: 10,
        ..Discordance::default()
    };
    // By hand: mean over q of (2q)³ · 2(1−q).
    let want: f64 = ALTERNATIVES
        .iter()
        .map(|q| (2.0 * q).powi(3) * 2.0 * (1.0 - q))
        .sum::<f64>()
        / 4.0;
    assert!((d.e_value() - want).abs() < 1e-12);
    assert_eq!(Discordance::default().e_value(), 1.0);
}

#[test]
fn the_e_value_is_a_supermartingale_under_the_null() {
    // Exact expectation after n discordant pairs at q = ½ (and below): enumerate all
    // 2^12 sequences; the mean must be ≤ 1 (= 1 at ½).
    for p in [0.5f64, 0.4] {
        let n = 12u32;
        let mut mean = 0.0f64;
        for mask in 0u32..1 << n {
            let w = mask.count_ones() as u64;
            let prob = p.powi(w as i32) * (1.0 - p).powi((n - w as u32) as i32);
            let d = Discordance {
                worse: w,
                better: n as u64 - w,
                n: n as u64,
                ..Discordance::default()
            };
            mean += prob * d.e_value();
        }
        assert!(mean <= 1.0 + 1e-9, "p = {p}: {mean}");
        if p == 0.5 {
            assert!((mean - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn the_betting_capital_is_a_supermartingale_at_the_margin() {
    // Increments −1/0/+1 with mean exactly the margin (and above it): enumerate all 3^8
    // paths; the expected capital K_8(margin) must be ≤ 1. The bets adapt to the path,
    // which is what must not break it.
    let margin = 0.05;
    for (p_worse, p_better) in [(0.3, 0.25), (0.05, 0.0), (0.5, 0.3)] {
        let p_zero = 1.0 - p_worse - p_better;
        let n = 8u32;
        let mut mean = 0.0;
        for code in 0..3u32.pow(n) {
            let mut d = Discordance::default();
            let mut prob = 1.0;
            let mut c = code;
            for _ in 0..n {
                let (w, b, p) = match c % 3 {
                    0 => (false, false, p_zero),
                    1 => (true, false, p_worse),
                    _ => (false, true, p_better),
                };
                c /= 3;
                prob *= p;
                d.add(w, b, margin);
            }
            mean += prob * d.log_capital.exp();
        }
        assert!(mean <= 1.0 + 1e-9, "({p_worse}, {p_better}): {mean}");
    }
}

#[test]
fn the_slot_weights_sum_to_at_most_one() {
    let s = Sequential::new(SequentialOptions::default());
    let sum: f64 = (0..=s.options.max_routes + 1).map(slot_weight).sum();
    assert!((sum - s.e_value()).abs() < 1e-12 && sum < 1.0, "{sum}");
}

#[test]
fn the_run_e_value_is_a_supermartingale_under_the_null() {
    // Two routes, the first pair of each opening its slot, the idle wealth moving with the
    // taken ones: enumerate every path of 7 error-stream outcomes (route, worse/better/
    // neither at p = ¼, ¼, ½ — the null at its edge) and check E[e-value] ≤ its start.
    let o = SequentialOptions {
        warmup_pairs: 1_000,
        ..SequentialOptions::default()
    };
    let start = Sequential::new(o.clone()).e_value();
    let n = 7u32;
    let mut mean = 0.0;
    for code in 0..6u32.pow(n) {
        let mut s = Sequential::new(o.clone());
        let mut prob = 1.0;
        let mut c = code;
        for _ in 0..n {
            let (route, outcome) = (["a", "b"][(c % 2) as usize], (c / 2) % 3);
            c /= 6;
            let (b_fail, c_fail, p) = match outcome {
                0 => (false, false, 0.5),
                1 => (false, true, 0.25),
                _ => (true, false, 0.25),
            };
            prob *= 0.5 * p;
            s.add(route, pair(b_fail, c_fail, 1_000, 1_000, 0));
        }
        mean += prob * s.e_value();
    }
    assert!(mean <= start + 1e-9, "{mean} > {start}");
}

#[test]
fn routes_beyond_the_limit_share_one_slot() {
    let mut s = Sequential::new(SequentialOptions {
        max_routes: 2,
        ..SequentialOptions::default()
    });
    for route in ["a", "b", "c", "d", "a"] {
        s.add(route, pair(false, false, 1000, 1000, 0));
    }
    let names: Vec<String> = s.routes().into_iter().map(|r| r.route).collect();
    assert_eq!(names, ["a", "b", OTHER_ROUTE]);
    assert_eq!(s.routes()[2].pairs, 2);
}

#[test]
fn a_broken_canary_fails_within_a_dozen_pairs() {
    let mut s = Sequential::new(SequentialOptions::default());
    let mut decision = Decision::Continue;
    for i in 0..100 {
        decision = s.add("GET /x", pair(false, true, 10_000, 1_000, i * 1000));
        if decision != Decision::Continue {
            break;
        }
    }
    match decision {
        Decision::Fail {
            stream,
            pairs,
            route,
            ..
        } => {
            assert_eq!(stream, Stream::Errors);
            assert_eq!(s.route_name(route), "GET /x");
            assert!(pairs <= 12, "{pairs}");
        }
        other => panic!("{other:?}"),
    }
    // Sticky.
    assert_eq!(s.add("GET /x", pair(false, false, 1, 1, 0)), decision);
}

#[test]
fn a_route_regressed_among_healthy_ones_is_named() {
    let mut s = Sequential::new(SequentialOptions::default());
    let mut rng = fastrand::Rng::with_seed(3);
    let routes = ["GET /a", "GET /b", "GET /slow"];
    for i in 0..20_000u64 {
        let k = rng.usize(..3);
        let w = 10_000 + rng.u64(..10_000);
        let c = w * (1 << k) + if k == 2 { w } else { rng.u64(..500) };
        let w = w * (1 << k);
        if let Decision::Fail {
            route,
            stream,
            e_value,
            ..
        } = s.add(routes[k], pair(false, false, w + rng.u64(..500), c, i))
        {
            assert_eq!(s.route_name(route), "GET /slow", "{:?}", s.routes());
            assert!(matches!(stream, Stream::Latency(_)), "{stream:?}");
            assert!(e_value >= 100.0);
            return;
        }
    }
    panic!("no fail: {:?}", s.decision());
}

#[test]
fn per_route_thresholds_are_predictable() {
    // The thresholds in force for a pair were read from the route's earlier baseline
    // latencies: a pair's own latencies never set the level it is judged at, and another
    // route's never do.
    let o = SequentialOptions::default();
    let mut s = Sequential::new(o.clone());
    for i in 0..o.warmup_pairs - 1 {
        s.add("fast", pair(false, false, 1_000, 1_000, i));
        s.add("slow", pair(false, false, 100_000, 100_000, i));
    }
    assert!(s.routes[0].thresholds.is_none());
    // The warm-up's last pair is not judged at a level (none set before it)...
    s.add("fast", pair(false, false, 1_000, 500_000, 0));
    assert_eq!(s.stream(0, Stream::Latency(0)).n, 0);
    // ...then the thresholds are the fast route's own, not pooled with the slow one.
    let t = s.routes[0].thresholds.unwrap();
    assert!(t.iter().all(|&v| (990..=1010).contains(&v)), "{t:?}");
    // A pair far above them counts as worse on every level, and does not move them.
    s.add("fast", pair(false, false, 1_000, 500_000, 0));
    assert_eq!(s.stream(0, Stream::Latency(2)).worse, 1);
    assert_eq!(s.routes[0].thresholds.unwrap(), t);
}

#[test]
fn identical_targets_pass_and_a_rare_route_does_not_block_it() {
    let mut s = Sequential::new(SequentialOptions::default());
    let mut rng = fastrand::Rng::with_seed(5);
    let mut decision = Decision::Continue;
    for i in 0..50_000u64 {
        let route = match i {
            7 | 900 | 1500 => "GET /rare",
            _ if i % 2 == 0 => "GET /a",
            _ => "GET /b",
        };
        let w = 10_000 + rng.u64(..10_000);
        decision = s.add(
            route,
            pair(false, false, w + rng.u64(..500), w + rng.u64(..500), i),
        );
        if decision != Decision::Continue {
            break;
        }
    }
    let Decision::Pass { pairs, .. } = decision else {
        panic!("{decision:?}");
    };
    assert!(pairs <= 4_000, "{pairs}");
    let routes = s.routes();
    assert!(routes
        .iter()
        .filter(|r| r.route != "GET /rare")
        .all(|r| r.bounded && r.required));
    let rare = routes.iter().find(|r| r.route == "GET /rare").unwrap();
    assert!(!rare.required && !rare.bounded, "{rare:?}");
}

#[test]
fn the_combined_threshold_holds_across_routes() {
    // A/A over five routes, many runs: the run-wide false FAIL rate stays below alpha.
    let o = SequentialOptions {
        alpha: 0.05,
        max_pairs: 3_000,
        ..SequentialOptions::default()
    };
    let runs = 200;
    let mut fails = 0;
    for run in 0..runs {
        let mut s = Sequential::new(o.clone());
        let mut rng = fastrand::Rng::with_seed(100 + run);
        for i in 0..o.max_pairs {
            let k = rng.usize(..5);
            let w = (1_000 << k) + rng.u64(..1_000 << k);
            let failed = |rng: &mut fastrand::Rng| rng.f64() < 0.01;
            let d = s.add(
                ["a", "b", "c", "d", "e"][k],
                pair(
                    failed(&mut rng),
                    failed(&mut rng),
                    w + rng.u64(..300),
                    w + rng.u64(..300),
                    i,
                ),
            );
            if matches!(d, Decision::Fail { .. }) {
                fails += 1;
            }
            if d != Decision::Continue {
                break;
            }
        }
    }
    assert!(fails as f64 <= 0.05 * runs as f64, "{fails} of {runs}");
}
