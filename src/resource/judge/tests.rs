use super::*;
use crate::resource::config::Limit;

fn metric(kind: Kind, per_request: bool, limit: f64) -> Metric {
    Metric {
        name: "cpu per request".into(),
        query: "q".into(),
        kind,
        per_request,
        harmful: Harmful::Increase,
        limit: Limit {
            relative: Some(limit),
            absolute: None,
        },
    }
}

/// A deterministic wobble in [-1, 1].
fn wobble(k: usize, salt: u64) -> f64 {
    let x = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let x = x ^ (x >> 29);
    ((x >> 11) % 2001) as f64 / 1000.0 - 1.0
}

type Input = (Vec<(f64, f64)>, Vec<u64>);

/// `n` steps of 2 s: each step's load varies by ±30% (the same on both targets, as replay
/// sends every exchange to both), and each target's CPU per request by ±5% on its own.
fn cpu(n: usize, cost: f64, salt: u64) -> Input {
    let mut samples = Vec::new();
    let mut counts = Vec::new();
    for k in 0..n {
        let requests = (400.0 * (1.0 + 0.3 * wobble(k, 7))) as u64;
        let per_request = cost * (1.0 + 0.05 * wobble(k, salt));
        samples.push((1000.0 + 2.0 * k as f64, per_request * requests as f64 / 2.0));
        counts.push(requests);
    }
    (samples, counts)
}

fn run(m: &Metric, b: &Input, c: &Input) -> ResourceResult {
    let count = |side: &Input| {
        let side = side.clone();
        move |t: f64| {
            side.0
                .iter()
                .position(|&(s, _)| s == t)
                .map_or(0, |i| side.1[i])
        }
    };
    let (cb, cc) = (count(b), count(c));
    let mut r = [judge(
        m,
        ["qb".into(), "qc".into()],
        [
            Side {
                samples: &b.0,
                requests: &cb,
            },
            Side {
                samples: &c.0,
                requests: &cc,
            },
        ],
        2,
        6,
        0.05,
    )];
    decide_all(&mut r, stats::Correction::Holm, 0.05);
    let [r] = r;
    r
}

#[test]
fn twice_the_cpu_per_request_fails_and_the_same_passes() {
    let m = metric(Kind::Level, true, 0.2);
    let base = cpu(30, 0.002, 1);
    let double = run(&m, &base, &cpu(30, 0.004, 2));
    assert_eq!(double.outcome, Outcome::Fail, "{double:?}");
    let check = double.check.as_ref().unwrap();
    assert!((check.baseline - 0.002).abs() < 0.0002, "{check:?}");
    assert!((double.relative.unwrap() - 1.0).abs() < 0.1, "{double:?}");
    assert_eq!(double.steps, 30);
    let same = run(&m, &base, &cpu(30, 0.002, 3));
    assert_eq!(same.outcome, Outcome::Pass, "{same:?}");
    assert!(same.relative.unwrap().abs() < 0.05);
    // The values compared (and charted) are per request, though the load varies by ±30%.
    assert!(same.series[0]
        .iter()
        .all(|&(_, v)| (v - 0.002).abs() < 0.0002));
    assert_eq!(same.series[0][0].0, 0.0, "chart times start at the window");
}

#[test]
fn over_the_allowance_but_within_noise_is_not_a_failure() {
    // +20% with a 10% allowance over only 6 steps with ±40% noise: not significant.
    let m = metric(Kind::Level, false, 0.1);
    let noisy = |cost: f64, salt| {
        let (mut s, c) = cpu(6, cost, 0);
        for (k, x) in s.iter_mut().enumerate() {
            x.1 *= 1.0 + 0.4 * wobble(k, salt);
        }
        (s, c)
    };
    let r = run(&m, &noisy(1.0, 11), &noisy(1.2, 12));
    assert_eq!(r.outcome, Outcome::Pass, "{r:?}");
    let check = r.check.as_ref().unwrap();
    assert!(check.p_adjusted.unwrap() >= 0.05, "{check:?}");
}

#[test]
fn too_few_busy_steps_is_inconclusive_naming_why() {
    let m = metric(Kind::Level, true, 0.2);
    let mut b = cpu(10, 0.002, 1);
    // Steps without traffic on the candidate do not count.
    let mut c = cpu(10, 0.002, 2);
    for k in 0..6 {
        c.1[k] = 0;
    }
    let r = run(&m, &b, &c);
    assert_eq!(r.outcome, Outcome::Inconclusive);
    assert!(
        r.reason.as_ref().unwrap().contains("only 4 step(s)"),
        "{r:?}"
    );
    b.0.truncate(2);
    assert_eq!(run(&m, &b, &cpu(10, 0.002, 2)).steps, 2);
}

#[test]
fn a_leak_fails_on_growth_though_levels_start_equal() {
    let m = Metric {
        limit: Limit {
            relative: None,
            absolute: Some(1024.0 * 1024.0),
        },
        ..metric(Kind::Growth, false, 0.0)
    };
    let rss = |leak_per_step: f64, salt| {
        let (s, c) = cpu(40, 0.0, 0);
        let s = s
            .iter()
            .enumerate()
            .map(|(k, &(t, _))| (t, 50e6 + leak_per_step * k as f64 + 200e3 * wobble(k, salt)))
            .collect();
        (s, c)
    };
    // 2 MiB per 2 s step = 60 MiB a minute against an allowance of 1 MiB a minute.
    let leak = run(&m, &rss(0.0, 1), &rss(2.0 * 1024.0 * 1024.0, 2));
    assert_eq!(leak.outcome, Outcome::Fail, "{leak:?}");
    let per_minute = leak.check.as_ref().unwrap().effect;
    assert!(
        (per_minute / (60.0 * 1024.0 * 1024.0) - 1.0).abs() < 0.1,
        "{per_minute}"
    );
    assert_eq!(leak.steps, 39, "one increment fewer than steps");
    let flat = run(&m, &rss(0.0, 1), &rss(0.0, 3));
    assert_eq!(flat.outcome, Outcome::Pass, "{flat:?}");
}

#[test]
fn the_harmful_direction_decides() {
    let mut m = metric(Kind::Level, false, 0.1);
    let (hi, lo) = (cpu(20, 1.0, 1), cpu(20, 0.5, 2));
    assert_eq!(
        run(&m, &hi, &lo).outcome,
        Outcome::Pass,
        "a drop is harmless by default"
    );
    m.harmful = Harmful::Decrease;
    let r = run(&m, &hi, &lo);
    assert_eq!(r.outcome, Outcome::Fail);
    assert!(
        r.check.unwrap().effect > 0.0,
        "the effect is oriented to harm"
    );
    m.harmful = Harmful::Both;
    assert_eq!(run(&m, &hi, &lo).outcome, Outcome::Fail);
    assert_eq!(run(&m, &lo, &hi).outcome, Outcome::Fail);
}
