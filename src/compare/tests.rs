//! Whole-comparison tests on synthetic, deterministic observations.

use super::*;
use crate::observation::Observation;
use crate::Exit;

const BASE: &str = "stable";
const CAND: &str = "canary";

/// `n` observations of `target` on `route`; latencies spread evenly over 0.5×..1.5× `ms`, a
/// fixed permutation so that no randomness is involved.
fn feed(
    c: &mut Comparison,
    target: &str,
    route: &str,
    n: u64,
    ms: f64,
    status: impl Fn(u64) -> Option<u16>,
) {
    for i in 0..n {
        let spread = 0.5 + ((i * 37) % 100) as f64 / 100.0;
        let status = status(i);
        c.add(&Observation {
            id: format!("{route}#{i}").into(),
            target: target.into(),
            route: route.into(),
            method: route.split(' ').next().unwrap_or("GET").into(),
            status,
            latency_us: (ms * spread * 1000.0) as u64,
            bytes: 100,
            error: status.is_none().then(|| "connection reset".into()),
            at_ms: None,
            grpc_status: None,
        });
    }
}

fn ok(_: u64) -> Option<u16> {
    Some(200)
}

fn comparison() -> Comparison {
    Comparison::new(Options::new(BASE, CAND)).unwrap()
}

fn fails(v: &Verdict) -> Vec<(&str, Metric)> {
    v.findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .map(|f| (f.route.as_str(), f.metric))
        .collect()
}

/// Two routes, both targets alike.
pub(crate) fn same_distributions() -> Comparison {
    let mut c = comparison();
    for target in [BASE, CAND] {
        feed(&mut c, target, "GET /users/:id", 200, 10.0, ok);
        feed(&mut c, target, "POST /orders", 100, 40.0, ok);
    }
    c
}

/// Like [`same_distributions`], but the candidate is 5× slower on one route.
pub(crate) fn p99_regression() -> Comparison {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /users/:id", 200, 10.0, ok);
    feed(&mut c, CAND, "GET /users/:id", 200, 10.0, ok);
    feed(&mut c, BASE, "GET /search", 200, 10.0, ok);
    feed(&mut c, CAND, "GET /search", 200, 50.0, ok);
    c
}

/// Like [`same_distributions`], but the candidate answers half of one route with 503.
pub(crate) fn error_regression() -> Comparison {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /users/:id", 200, 10.0, ok);
    feed(&mut c, CAND, "GET /users/:id", 200, 10.0, |i| {
        Some(if i % 2 == 0 { 503 } else { 200 })
    });
    c
}

#[test]
fn same_distributions_pass() {
    let v = same_distributions().verdict();
    assert_eq!(v.outcome, Outcome::Pass);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    assert_eq!(v.exit(), Exit::Pass);
    assert_eq!(v.overall.candidate.requests, 300);
    assert_eq!(v.routes.len(), 2);
    assert!(v.routes.iter().all(|r| r.judged));
}

#[test]
fn p99_regression_on_one_route_fails_that_route_only() {
    let v = p99_regression().verdict();
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.exit(), Exit::Regression);
    let route_fails: Vec<_> = fails(&v)
        .into_iter()
        .filter(|(r, _)| *r != OVERALL_ROUTE)
        .collect();
    // Tail, location and distribution all see the 5× slower route.
    assert_eq!(
        route_fails,
        [
            ("GET /search", Metric::P99Latency),
            ("GET /search", Metric::LatencyShift),
            ("GET /search", Metric::LatencyDistribution),
        ]
    );
    let users = v
        .routes
        .iter()
        .find(|r| r.route == "GET /users/:id")
        .unwrap();
    assert!(users.findings.is_empty());
    let search = v.routes.iter().find(|r| r.route == "GET /search").unwrap();
    assert_eq!(search.findings.len(), 3);
    assert!(
        search.findings[0].message.starts_with("p99 latency 74."),
        "{}",
        search.findings[0].message
    );
}

#[test]
fn more_5xx_fails() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 200, 10.0, ok);
    // 10% 503s on the candidate.
    feed(&mut c, CAND, "GET /a", 200, 10.0, |i| {
        Some(if i % 10 == 0 { 503 } else { 200 })
    });
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(
        fails(&v),
        [
            ("GET /a", Metric::FailureRate),
            (OVERALL_ROUTE, Metric::FailureRate)
        ]
    );
    let f = &v.findings[0];
    assert_eq!(
        (f.baseline, f.candidate, f.threshold),
        (0.0, 10.0, Some(1.0))
    );
    // 503 is new, but rule (a) speaks for it; no informational duplicate.
    assert!(v.findings.iter().all(|f| f.metric != Metric::NewStatus));
}

#[test]
fn small_p99_increase_within_thresholds_passes() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 200, 10.0, ok);
    feed(&mut c, CAND, "GET /a", 200, 11.0, ok);
    // +100% on a fast route, but under the 5 ms absolute allowance.
    feed(&mut c, BASE, "GET /fast", 200, 1.0, ok);
    feed(&mut c, CAND, "GET /fast", 200, 2.0, ok);
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.findings);
    assert!(v.findings.is_empty());
}

#[test]
fn too_few_requests_is_inconclusive() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 19, 10.0, ok);
    feed(&mut c, CAND, "GET /a", 19, 100.0, ok);
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert_eq!(v.exit(), Exit::Inconclusive);
    // A 10× slower candidate, but too little data for a finding: notes only.
    assert!(v.findings.is_empty());
    assert!(!v.routes[0].judged);
    assert_eq!(v.notes.len(), 2, "{:?}", v.notes);
    assert!(v.notes[1].starts_with("overall: too few requests"));
}

#[test]
fn a_thin_route_gets_a_note_and_the_rest_is_judged() {
    let mut c = same_distributions();
    feed(&mut c, BASE, "GET /rare", 3, 1.0, ok);
    feed(&mut c, CAND, "GET /rare", 3, 1.0, |_| Some(500));
    let v = c.verdict();
    // 3 of 303 candidate requests failing overall stays within the 1 point margin.
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.findings);
    assert_eq!(
        v.notes,
        ["GET /rare: too few requests to judge (baseline 3, candidate 3, need 20 each)"]
    );
}

#[test]
fn errors_without_response_count_as_failures() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 100, 10.0, ok);
    // 10 of 100 unanswered: exact McNemar p = 2⁻¹⁰, significant after Holm over 8 checks
    // (5 of 100 would be p = 1/32, which is not).
    feed(&mut c, CAND, "GET /a", 100, 10.0, |i| {
        (i % 10 != 0).then_some(200)
    });
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(fails(&v)[0], ("GET /a", Metric::FailureRate));
    let cand = &v.routes[0].candidate;
    assert_eq!((cand.requests, cand.errors, cand.failures), (100, 10, 10));
    assert_eq!(cand.status.get("200"), Some(&90));
    let paired = &v.routes[0].paired;
    assert_eq!((paired.pairs, paired.worse, paired.better), (100, 10, 0));
    assert_eq!(
        paired.status_matrix,
        [
            MatrixCell {
                baseline: Some(200),
                candidate: None,
                count: 10
            },
            MatrixCell {
                baseline: Some(200),
                candidate: Some(200),
                count: 90
            },
        ]
    );
    let check = v.findings[0].check.as_ref().unwrap();
    assert_eq!(check.test, "mcnemar_exact");
    assert_eq!(check.p_value, Some(1.0 / 1024.0));
}

#[test]
fn routes_beyond_max_routes_fold_into_other() {
    let mut c = Comparison::new(Options {
        max_routes: 3,
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    for target in [BASE, CAND] {
        for route in ["GET /a", "GET /b", "GET /c", "GET /d", "GET /e"] {
            feed(&mut c, target, route, 20, 5.0, ok);
        }
    }
    let v = c.verdict();
    let names: Vec<_> = v.routes.iter().map(|r| r.route.as_str()).collect();
    assert_eq!(names, ["GET /a", "GET /b", "GET /c", OTHER_ROUTE]);
    assert_eq!(v.routes[3].baseline.requests, 40);
    assert_eq!(v.overall.baseline.requests, 100);
    assert!(v.notes[0].contains("first 3"), "{:?}", v.notes);
}

#[test]
fn merge_equals_one_accumulator() {
    let opts = Options {
        include_histograms: true,
        ..Options::new(BASE, CAND)
    };
    let all = {
        let mut c = Comparison::new(opts.clone()).unwrap();
        c.merge(&p99_regression()).unwrap();
        c
    };
    // The same observations split over two "machines" by parity of their index.
    let mut observations = Vec::new();
    for (target, route, ms) in [
        (BASE, "GET /users/:id", 10.0),
        (CAND, "GET /users/:id", 10.0),
        (BASE, "GET /search", 10.0),
        (CAND, "GET /search", 50.0),
    ] {
        let mut c = comparison();
        feed(&mut c, target, route, 200, ms, ok);
        observations.push(c);
    }
    let mut even = Comparison::new(opts.clone()).unwrap();
    let mut odd = Comparison::new(opts).unwrap();
    for (i, part) in observations.iter().enumerate() {
        if i % 2 == 0 {
            even.merge(part).unwrap();
        } else {
            odd.merge(part).unwrap();
        }
    }
    even.merge(&odd).unwrap();
    let (merged, single) = (even.verdict(), all.verdict());
    assert_eq!(merged, single);
    assert!(single.overall.candidate.histogram.is_some());
    // And the encoded histograms decode to the accumulated ones.
    let decoded = codec::decode(single.overall.candidate.histogram.as_ref().unwrap()).unwrap();
    assert_eq!(&decoded, all.overall.candidate.latency());
}

#[test]
fn merge_finely_interleaved_observations() {
    // Observation by observation, alternating machines, against one accumulator.
    let mut single = comparison();
    let mut parts = [comparison(), comparison()];
    for i in 0..400u64 {
        let target = if i % 3 == 0 { BASE } else { CAND };
        let obs = Observation {
            id: i.to_string().into(),
            target: target.into(),
            route: format!("GET /r{}", i % 7).into(),
            method: "GET".into(),
            status: (i % 13 != 0).then_some(if i % 11 == 0 { 502 } else { 200 }),
            latency_us: (i * 7919) % 90_000,
            bytes: 0,
            error: (i % 13 == 0).then(|| "timeout".into()),
            at_ms: None,
            grpc_status: None,
        };
        single.add(&obs);
        parts[(i % 2) as usize].add(&obs);
    }
    let [mut a, b] = parts;
    a.merge(&b).unwrap();
    assert_eq!(a.verdict(), single.verdict());
}

#[test]
fn merge_refuses_other_targets() {
    let mut a = comparison();
    let b = Comparison::new(Options::new(BASE, "canary-2")).unwrap();
    assert!(a.merge(&b).is_err());
}

#[test]
fn other_targets_are_ignored_and_counted() {
    let mut c = same_distributions();
    feed(&mut c, "noise", "GET /users/:id", 5, 1000.0, |_| None);
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(v.ignored, 5);
    assert_eq!(v.notes, ["ignored 5 observations of other targets (noise)"]);
}

#[test]
fn new_status_codes_are_informational() {
    let mut c = same_distributions();
    feed(&mut c, CAND, "GET /users/:id", 1, 10.0, |_| Some(404));
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass);
    assert_eq!(
        v.findings.len(),
        1,
        "overall must not repeat it: {:?}",
        v.findings
    );
    assert_eq!(v.findings[0].metric, Metric::NewStatus);
    assert_eq!(v.findings[0].route, "GET /users/:id");
}

#[test]
fn options_are_validated() {
    assert_eq!(
        Comparison::new(Options::new("a", "a")).unwrap_err(),
        OptionsError::SameTarget("a".into())
    );
    let bad = Options {
        p99_relative: f64::NAN,
        ..Options::new("a", "b")
    };
    assert!(matches!(
        bad.validate(),
        Err(OptionsError::Threshold { .. })
    ));
    let none = Options {
        max_routes: 0,
        ..Options::new("a", "b")
    };
    assert_eq!(none.validate(), Err(OptionsError::NoRoutes));
    // Found by fuzzing the judge file: a reservoir of 10^18 was accepted.
    let huge = Options {
        reservoir: 1_000_000_000_000_000_000,
        ..Options::new("a", "b")
    };
    assert!(matches!(
        huge.validate(),
        Err(OptionsError::TooLarge {
            name: "reservoir",
            ..
        })
    ));
    let text = "bootstrap_resamples = 1000000000000\n";
    let parsed = crate::compare::judge_file::parse(text, Options::new("a", "b")).unwrap();
    assert!(Comparison::new(parsed).is_err(), "the judge refuses it");
}

#[test]
fn five_of_a_hundred_unanswered_is_over_the_margin_but_not_significant() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 100, 10.0, ok);
    feed(&mut c, CAND, "GET /a", 100, 10.0, |i| {
        (i % 20 != 0).then_some(200)
    });
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.findings);
    let f = &v.findings[0];
    assert_eq!(
        (f.metric, f.severity),
        (Metric::FailureRate, Severity::Info)
    );
    assert!(f.message.ends_with("not significant"), "{}", f.message);
    let check = f.check.as_ref().unwrap();
    assert_eq!(check.p_value, Some(1.0 / 32.0));
    assert_eq!(check.outcome, CheckOutcome::NotSignificant);
}

#[test]
fn unpaired_observations_use_fishers_test() {
    let mut c = comparison();
    // Separate windows: no id in common.
    for i in 0..200u64 {
        for (target, failed) in [(BASE, false), (CAND, i % 5 == 0)] {
            c.add(&Observation {
                id: format!("{target}-{i}").into(),
                target: target.into(),
                route: "GET /a".into(),
                method: "GET".into(),
                status: Some(if failed { 503 } else { 200 }),
                latency_us: 10_000,
                bytes: 0,
                error: None,
                at_ms: None,
                grpc_status: None,
            });
        }
    }
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Fail);
    let route = &v.routes[0];
    assert_eq!(route.paired.pairs, 0);
    assert_eq!(
        (
            route.paired.unpaired_baseline,
            route.paired.unpaired_candidate
        ),
        (200, 200)
    );
    let rate = &route.checks[0];
    assert_eq!(
        (rate.metric, rate.test.as_str()),
        (Metric::FailureRate, "fisher_exact")
    );
    assert_eq!(rate.outcome, CheckOutcome::Fail);
    // Without pairs there is no paired shift test.
    assert!(route
        .checks
        .iter()
        .all(|c| c.metric != Metric::LatencyShift));
    assert!(
        v.notes.iter().any(|n| n.contains("no partner")),
        "{:?}",
        v.notes
    );
}

#[test]
fn pending_halves_are_bounded_and_counted() {
    let mut c = Comparison::new(Options {
        max_pending: 10,
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    // All baseline observations first: only the last 10 can still find their partner.
    feed(&mut c, BASE, "GET /a", 50, 10.0, ok);
    feed(&mut c, CAND, "GET /a", 50, 10.0, ok);
    let p = c.verdict().overall.paired;
    assert_eq!(p.pairs + p.unpaired_baseline, 50);
    assert_eq!(p.pairs + p.unpaired_candidate, 50);
    assert!(p.pairs <= 10, "{p:?}");
}

#[test]
fn a_spread_only_regression_is_seen_by_the_distribution_check() {
    // Same median, the candidate's spread 3× wider: the paired shift is ~0, the upper tail
    // is far beyond the allowance.
    let mut c = comparison();
    for i in 0..2_000u64 {
        let u = ((i * 7919) % 2_000) as f64 / 2_000.0; // 0..1, a fixed permutation
        let base = 50.0 + (u - 0.5) * 20.0; // 40..60 ms
        let cand = 50.0 + (u - 0.5) * 60.0; // 20..80 ms
        for (target, ms) in [(BASE, base), (CAND, cand)] {
            c.add(&Observation {
                id: i.to_string().into(),
                target: target.into(),
                route: "GET /a".into(),
                method: "GET".into(),
                status: Some(200),
                latency_us: (ms * 1000.0) as u64,
                bytes: 0,
                error: None,
                at_ms: None,
                grpc_status: None,
            });
        }
    }
    let v = c.verdict();
    let check = |m| v.routes[0].checks.iter().find(|c| c.metric == m).unwrap();
    assert_eq!(check(Metric::LatencyShift).outcome, CheckOutcome::Pass);
    assert_eq!(
        check(Metric::LatencyDistribution).outcome,
        CheckOutcome::Fail
    );
    assert_eq!(check(Metric::P99Latency).outcome, CheckOutcome::Fail);
}

#[test]
fn an_improvement_is_never_a_finding() {
    let mut c = comparison();
    feed(&mut c, BASE, "GET /a", 200, 50.0, |i| {
        Some(if i % 4 == 0 { 500 } else { 200 })
    });
    feed(&mut c, CAND, "GET /a", 200, 10.0, ok);
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass);
    assert!(v.findings.is_empty(), "{:?}", v.findings);
}

#[test]
fn route_patterns_glob_on_the_key_or_the_path() {
    let r = |p: &str| RouteOverride {
        pattern: p.into(),
        ..RouteOverride::default()
    };
    assert!(r("GET /api/*").matches("GET /api/items/:id"));
    assert!(!r("GET /api/*").matches("POST /api/items"));
    assert!(r("/api/*/:id").matches("DELETE /api/items/:id"));
    assert!(r("*").matches("GET /"));
    assert!(r("GET /healthz").matches("GET /healthz"));
    assert!(!r("GET /healthz").matches("GET /healthz/deep"));
    assert!(!r("a*a").matches("a"));
    assert!(r("*items*").matches("GET /api/items/:id"));
}

#[test]
fn route_overrides_loosen_one_route() {
    let mut c = Comparison::new(Options {
        routes: vec![RouteOverride {
            pattern: "GET /search".into(),
            p99_absolute_ms: Some(100.0),
            shift_absolute_ms: Some(100.0),
            distribution_share: Some(1.0),
            ..RouteOverride::default()
        }],
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    c.merge(&p99_regression()).unwrap();
    let v = c.verdict();
    assert!(
        fails(&v).iter().all(|(r, _)| *r != "GET /search"),
        "{:?}",
        fails(&v)
    );
    // Overall keeps the general limits.
    assert!(fails(&v).iter().any(|(r, _)| *r == OVERALL_ROUTE));
}

#[test]
fn warm_up_leaves_out_the_first_observations_and_their_partners() {
    let mut c = Comparison::new(Options {
        warmup: 10,
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    // The first 10 exchanges are very slow on the candidate only (a cold cache).
    for i in 0..100u64 {
        for target in [BASE, CAND] {
            let slow = target == CAND && i < 10;
            c.add(&Observation {
                id: i.to_string().into(),
                target: target.into(),
                route: "GET /a".into(),
                method: "GET".into(),
                status: Some(200),
                latency_us: if slow { 900_000 } else { 10_000 + i },
                bytes: 0,
                error: None,
                at_ms: None,
                grpc_status: None,
            });
        }
    }
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.findings);
    assert_eq!(v.overall.baseline.requests, 90);
    assert_eq!(v.overall.paired.pairs, 90);
    assert!(
        v.notes[0].starts_with("left out 20 warm-up"),
        "{:?}",
        v.notes
    );
}

#[test]
fn a_difference_the_two_stables_share_is_discounted() {
    // The baseline runs on a fast node: both the canary and the second stable are 3 ms slower.
    let build = |noise: Option<&str>| {
        let mut c = Comparison::new(Options {
            noise: noise.map(str::to_owned),
            ..Options::new(BASE, CAND)
        })
        .unwrap();
        feed(&mut c, BASE, "GET /a", 400, 10.0, ok);
        for target in [CAND, "stable-2"] {
            for i in 0..400u64 {
                let spread = 0.5 + ((i * 37) % 100) as f64 / 100.0;
                c.add(&Observation {
                    id: format!("GET /a#{i}").into(),
                    target: target.into(),
                    route: "GET /a".into(),
                    method: "GET".into(),
                    status: Some(200),
                    latency_us: ((10.0 * spread + 3.0) * 1000.0) as u64,
                    bytes: 0,
                    error: None,
                    at_ms: None,
                    grpc_status: None,
                });
            }
        }
        c.verdict()
    };
    let alone = build(None);
    assert_eq!(alone.outcome, Outcome::Fail, "{:?}", alone.findings);
    let with_noise = build(Some("stable-2"));
    assert_eq!(
        with_noise.outcome,
        Outcome::Pass,
        "{:?}",
        with_noise.findings
    );
    let shift = with_noise.routes[0]
        .checks
        .iter()
        .find(|c| c.metric == Metric::LatencyShift)
        .unwrap();
    assert_eq!(shift.noise, Some(3.0));
    assert!(shift.limit >= 3.6 - 1e-9, "{shift:?}");
    assert!(with_noise
        .notes
        .iter()
        .any(|n| n.starts_with("noise target stable-2")));
}

#[test]
fn the_noise_target_must_be_a_third_one() {
    let bad = Options {
        noise: Some(BASE.into()),
        ..Options::new(BASE, CAND)
    };
    assert!(matches!(bad.validate(), Err(OptionsError::Noise(_))));
}

#[test]
fn the_sequential_judge_rides_along_the_pairs() {
    let mut c = Comparison::new(Options {
        sequential: Some(sequential::SequentialOptions::default()),
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    // Interleaved as a replay delivers them: each exchange to both targets.
    for i in 0..100u64 {
        for (target, status) in [(BASE, 200), (CAND, 503)] {
            c.add(&Observation {
                id: i.to_string().into(),
                target: target.into(),
                route: "GET /a".into(),
                method: "GET".into(),
                status: Some(status),
                latency_us: 10_000,
                bytes: 0,
                error: None,
                at_ms: None,
                grpc_status: None,
            });
        }
    }
    let v = c.verdict();
    let s = v.sequential.as_ref().unwrap();
    let sequential::Decision::Fail { pairs, .. } = s.decision else {
        panic!("{s:?}");
    };
    assert!(pairs <= 12, "{s:?}");
    assert_eq!(s.route.as_deref(), Some("GET /a"));
    assert!(
        v.notes.iter().any(|n| n.starts_with(
            "sequential judge: fail — GET /a: the candidate had more failures than the baseline \
             in the pairs where they differed (e-value"
        ) && n
            .ends_with(&format!("after {pairs} pairs, {pairs} on this route)"))),
        "{:?}",
        v.notes
    );
    let finding = v
        .findings
        .iter()
        .find(|f| f.metric == Metric::Sequential)
        .unwrap();
    assert_eq!(
        (finding.route.as_str(), finding.severity),
        ("GET /a", Severity::Fail)
    );
    // It survives a JSON round trip like the rest of the verdict.
    let back: Verdict = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(back, v);
}

#[test]
fn the_sequential_judge_passes_identical_routes_and_notes_a_rare_one() {
    let mut c = Comparison::new(Options {
        sequential: Some(sequential::SequentialOptions::default()),
        ..Options::new(BASE, CAND)
    })
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    for i in 0..20_000u64 {
        let route = match i {
            3 | 400 | 2_000 => "GET /rare",
            _ if i % 2 == 0 => "GET /a",
            _ => "GET /b",
        };
        let work = 5_000 + rng.u64(..20_000);
        for target in [BASE, CAND] {
            c.add(&Observation {
                id: i.to_string().into(),
                target: target.into(),
                route: route.into(),
                method: "GET".into(),
                status: Some(200),
                latency_us: work + rng.u64(..1_000),
                bytes: 0,
                error: None,
                at_ms: None,
                grpc_status: None,
            });
        }
        if c.sequential_decision() != Some(sequential::Decision::Continue) {
            break;
        }
    }
    let v = c.verdict();
    let s = v.sequential.as_ref().unwrap();
    assert!(
        matches!(s.decision, sequential::Decision::Pass { .. }),
        "{s:?}"
    );
    assert!(
        v.notes.iter().any(|n| n.starts_with(&format!(
            "sequential judge: pass after {} pairs: every route's confidence interval is inside \
             its allowance",
            s.pairs
        ))),
        "{:?}",
        v.notes
    );
    assert!(
        v.notes.iter().any(|n| n
            == "sequential judge: not judged for a pass, below 5% of the pairs: GET /rare (2 pairs)"
            || n == "sequential judge: not judged for a pass, below 5% of the pairs: GET /rare (3 pairs)"),
        "{:?}",
        v.notes
    );
    assert!(v.findings.iter().all(|f| f.metric != Metric::Sequential));
}
