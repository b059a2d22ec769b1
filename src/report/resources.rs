//! The resource metrics from Prometheus (the judge file's `[prometheus]`) as every format a
//! person reads shows them: one row per metric beside the routes, with the same cells in text,
//! Markdown, JUnit and HTML, so a metric reads the same wherever an SRE meets it.
//!
//! The shift is the check's Hodges–Lehmann estimate, oriented like the check so that `+` is
//! the harmful direction (for a `harmful = "decrease"` metric, `+` means the candidate is
//! lower); the relative shift is oriented the same way, so the two never disagree in sign.
//! The HTML part adds, per metric, a chart of the two per-step series (in the check's unit:
//! per request, increments per minute for growth) and the queries sent.

use std::collections::HashSet;
use std::fmt::Write;

use crate::compare::checks::fmt_p;
use crate::compare::rules::significant;
use crate::compare::{Check, CheckOutcome, Finding, Outcome, Verdict};
use crate::resource::config::{Harmful, Kind};
use crate::resource::ResourceResult;

use super::html::{BASE_COLOUR, BOTTOM, CAND_COLOUR, H, LEFT, RIGHT, TOP, W};
use super::junit::escape;
use super::labels;
use super::routes::slug;

/// Written in a cell that has nothing to show (an unjudged metric's numbers).
pub const NONE: &str = "–";

/// "PASS", "FAIL" or "INCONCLUSIVE".
pub fn outcome(r: &ResourceResult) -> String {
    r.outcome.as_str().to_uppercase()
}

/// Over the allowance but not significant after the adjustment: passed, and worth a look.
pub fn not_significant(r: &ResourceResult) -> bool {
    r.check
        .as_ref()
        .is_some_and(|c| c.outcome == CheckOutcome::NotSignificant)
}

/// The name with what is not the default: "rss (growth)", "hit ratio (harmful: decrease)".
pub fn title(r: &ResourceResult) -> String {
    let mut extra = Vec::new();
    if r.kind == Kind::Growth {
        extra.push("growth".to_owned());
    }
    match r.harmful {
        Harmful::Increase => {}
        Harmful::Decrease => extra.push("harmful: decrease".to_owned()),
        Harmful::Both => extra.push("harmful: both ways".to_owned()),
    }
    if extra.is_empty() {
        r.name.clone()
    } else {
        format!("{} ({})", r.name, extra.join(", "))
    }
}

/// The two medians, the unit once: "0.002 → 0.004 per request"; `arrow` is "→" or "->".
pub fn levels(check: &Check, arrow: &str) -> String {
    format!(
        "{} {arrow} {}",
        significant(check.baseline, false),
        labels::value(check, check.candidate)
    )
}

/// The shift relative to the baseline's median, oriented like the shift: "+100%".
pub fn relative(r: &ResourceResult) -> Option<String> {
    let x = r.relative?;
    let x = if r.harmful == Harmful::Decrease {
        -x
    } else {
        x
    };
    // One decimal, like the findings' "(+25.0%)"; a rounded zero has no sign.
    let text = format!("{:+.1}%", x * 100.0);
    Some(match text.as_str() {
        "+0.0%" | "-0.0%" => "0%".to_owned(),
        _ => text,
    })
}

/// "1.9e-9 (adjusted 3.7e-9)", or "–" without a test.
pub fn p(check: &Check) -> String {
    match (check.p_value, check.p_adjusted) {
        (Some(p), Some(a)) => format!("{} (adjusted {})", fmt_p(p), fmt_p(a)),
        (Some(p), None) => fmt_p(p),
        _ => NONE.to_owned(),
    }
}

/// The shift's interval without the unit (it follows the shift): "+0.0019 to +0.0021".
pub fn bare_interval(check: &Check) -> String {
    check.interval.map_or_else(
        || NONE.to_owned(),
        |[lo, hi]| format!("{} to {}", significant(lo, true), significant(hi, true)),
    )
}

/// The whole comparison in a line (text, JUnit): levels, shift with its interval and
/// relative size, allowance, p-values and steps.
pub fn line(r: &ResourceResult, check: &Check, arrow: &str) -> String {
    let relative = relative(r).map(|x| format!(", {x}")).unwrap_or_default();
    let mut s = format!(
        "{}, shift {} (interval {}{relative}), allowed {}, p {}, {} steps",
        levels(check, arrow),
        labels::effect(check),
        bare_interval(check),
        labels::limit(check),
        p(check),
        r.steps,
    );
    if not_significant(r) {
        s.push_str(", over the allowance but not significant");
    }
    s
}

/// The failing finding `add_resources` made of `r`, when there is one.
pub fn finding<'a>(v: &'a Verdict, r: &ResourceResult) -> Option<&'a Finding> {
    let check = r.check.as_ref()?;
    v.findings.iter().find(|f| f.check.as_ref() == Some(check))
}

/// The failing metrics' names: "cpu per request, rss".
pub fn failing_names(resources: &[ResourceResult]) -> String {
    let names: Vec<&str> = resources
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .map(|r| r.name.as_str())
        .collect();
    names.join(", ")
}

/// A unique HTML id per metric, in `resources` order: "resource-cpu-per-request".
pub fn anchors(resources: &[ResourceResult]) -> Vec<String> {
    let mut used = HashSet::new();
    resources
        .iter()
        .map(|r| slug("resource", &r.name, &mut used))
        .collect()
}

/// Counts of failing, inconclusive and passing metrics.
pub fn counts(resources: &[ResourceResult]) -> [usize; 3] {
    let n = |o: Outcome| resources.iter().filter(|r| r.outcome == o).count();
    [n(Outcome::Fail), n(Outcome::Inconclusive), n(Outcome::Pass)]
}

/// "1 of 3 failed, 1 not judged": what the overall row of the HTML overview adds.
pub fn count_text(resources: &[ResourceResult]) -> String {
    let [fail, inconclusive, pass] = counts(resources);
    let mut parts = Vec::new();
    if fail > 0 {
        parts.push(format!("{fail} of {} failed", resources.len()));
    }
    if inconclusive > 0 {
        parts.push(format!("{inconclusive} not judged"));
    }
    if parts.is_empty() {
        parts.push(format!("{pass} passed"));
    }
    parts.join(", ")
}

/// The metric `f` (a resource finding) is about, by its check: its section's id.
pub fn anchor_of(v: &Verdict, f: &Finding) -> Option<String> {
    let check = f.check.as_ref()?;
    let at = v
        .resources
        .iter()
        .position(|r| r.check.as_ref() == Some(check))?;
    anchors(&v.resources).into_iter().nth(at)
}

/// The overview's sentence on the resource metrics, each failing or inconclusive one named
/// and linked to its chart; empty when none was queried.
pub fn html_counts(v: &Verdict) -> String {
    if v.resources.is_empty() {
        return String::new();
    }
    let anchors = anchors(&v.resources);
    let named = |o: Outcome| -> String {
        let names: Vec<String> = v
            .resources
            .iter()
            .zip(&anchors)
            .filter(|(r, _)| r.outcome == o)
            .map(|(r, a)| format!("<a href=\"#{a}\">{}</a>", escape(&r.name)))
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        }
    };
    let [fail, inconclusive, pass] = counts(&v.resources);
    let metrics = |n: usize| if n == 1 { "metric" } else { "metrics" };
    format!(
        " <a href=\"#resources\">Resources</a>: {fail} failing {}{}, {inconclusive} inconclusive {}{} (not judged), {pass} passing {}.",
        metrics(fail),
        named(Outcome::Fail),
        metrics(inconclusive),
        named(Outcome::Inconclusive),
        metrics(pass),
    )
}

/// The failing resource metrics for the overview's overall row, each linked to its chart.
pub fn html_failing(v: &Verdict) -> String {
    let links: Vec<String> = v
        .resources
        .iter()
        .zip(anchors(&v.resources))
        .filter(|(r, _)| r.outcome == Outcome::Fail)
        .map(|(r, a)| format!("<a href=\"#{a}\">{}</a>", escape(&r.name)))
        .collect();
    format!(
        "{}: {}",
        super::html::named(crate::compare::Metric::Resource),
        links.join(", ")
    )
}

/// The HTML section: the table, then per metric its chart, why it was not judged, and the
/// queries. Nothing when no metric was queried.
pub fn html_section(out: &mut String, v: &Verdict) {
    if v.resources.is_empty() {
        return;
    }
    let anchors = anchors(&v.resources);
    let _ = writeln!(
        out,
        "<section id=\"resources\"><h2>Resources</h2><p><a href=\"#overview\">↑ overview</a> · \
         from Prometheus, step by step over the run: shift = Hodges–Lehmann estimate of the \
         per-step difference (candidate − baseline), + in the harmful direction, its interval, \
         and the signed-rank test's p. <span class=\"key\"><span style=\"color:{BASE_COLOUR}\">━ baseline {}</span> \
         <span style=\"color:{CAND_COLOUR}\">━ candidate {}</span></span></p>",
        escape(&v.baseline),
        escape(&v.candidate),
    );
    let _ = writeln!(
        out,
        "<table class=\"resources\"><tr><th class=\"l\">metric</th><th class=\"l\">outcome</th><th>baseline → candidate</th><th>shift</th><th>interval</th><th>relative</th><th>allowance</th><th>p</th><th>adjusted p</th><th>steps</th></tr>"
    );
    for (r, anchor) in v.resources.iter().zip(&anchors) {
        html_row(out, r, anchor);
    }
    let _ = writeln!(out, "</table><div class=\"charts\">");
    for (r, anchor) in v.resources.iter().zip(&anchors) {
        html_detail(out, r, anchor);
    }
    let _ = writeln!(out, "</div></section>");
}

fn html_row(out: &mut String, r: &ResourceResult, anchor: &str) {
    let class = if not_significant(r) {
        "ns"
    } else {
        r.outcome.as_str()
    };
    let _ = write!(
        out,
        "<tr class=\"{class}\"><td class=\"l\"><a href=\"#{anchor}\">{}</a></td><td class=\"l\"><span class=\"badge {}\">{}</span>{}</td>",
        escape(&title(r)),
        r.outcome.as_str(),
        outcome(r),
        if not_significant(r) {
            " over the allowance, not significant"
        } else {
            ""
        },
    );
    let Some(c) = &r.check else {
        let reason = r.reason.as_deref().unwrap_or("not judged");
        let _ = writeln!(
            out,
            "<td class=\"l reason\" colspan=\"7\">{}</td><td>{}</td></tr>",
            escape(reason),
            r.steps
        );
        return;
    };
    let p_value = |x: Option<f64>| x.map_or_else(|| NONE.to_owned(), fmt_p);
    let _ = writeln!(
        out,
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"limit\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        escape(&levels(c, "→")),
        escape(&labels::effect(c)),
        escape(&labels::interval(c)),
        escape(&relative(r).unwrap_or_else(|| NONE.to_owned())),
        escape(&labels::limit(c)),
        p_value(c.p_value),
        p_value(c.p_adjusted),
        r.steps,
    );
}

/// One metric's chart, reason and queries.
fn html_detail(out: &mut String, r: &ResourceResult, anchor: &str) {
    let _ = writeln!(
        out,
        "<div class=\"resource\" id=\"{anchor}\"><h3>{} <span class=\"badge {}\">{}</span></h3>",
        escape(&title(r)),
        r.outcome.as_str(),
        outcome(r),
    );
    if let Some(reason) = &r.reason {
        let _ = writeln!(
            out,
            "<p class=\"reason\">Not judged: {}</p>",
            escape(reason)
        );
    }
    out.push_str(&chart(r));
    let _ = writeln!(
        out,
        "<p class=\"query\">baseline query <code>{}</code></p><p class=\"query\">candidate query <code>{}</code></p></div>",
        escape(&r.queries[0]),
        escape(&r.queries[1]),
    );
}

/// What the chart's values are: the check's unit when judged, else what the kind implies.
fn y_label(r: &ResourceResult) -> String {
    let unit = r.check.as_ref().map_or("", |c| c.unit.as_str());
    match (r.kind, unit) {
        (Kind::Level, "") => "value".to_owned(),
        (Kind::Growth, "") => "increase per step".to_owned(),
        (Kind::Level, u) => format!("value {u}"),
        (Kind::Growth, u) if u.starts_with("per ") => format!("increase {u}"),
        (Kind::Growth, u) => u.to_owned(),
    }
}

/// Round steps (1, 2 or 5 × a power of ten) covering [lo, hi] in about four intervals: the
/// axis's ends and its ticks.
fn ticks(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if hi - lo > f64::EPSILON * hi.abs().max(1.0) {
        (lo, hi)
    } else {
        let pad = (lo.abs() * 0.1).max(1e-9);
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * power);
    let (first, last) = ((lo / step).floor(), (hi / step).ceil());
    let marks = (0..=(last - first) as usize)
        .map(|i| (first + i as f64) * step)
        .collect();
    (first * step, last * step, marks)
}

/// A tick's label, short enough for the axis: "0.00105", "1500", "5.5M" (k, M, G, T from ten
/// thousand on, as dashboards write them).
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e4 {
        for (div, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
            if a >= div {
                return format!("{}{suffix}", significant(v / div, false));
            }
        }
    }
    significant(v, false)
}

/// Where the plot area is, and how values map into it.
struct Frame {
    left: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left + (x - self.x.0) / (self.x.1 - self.x.0) * (W - self.left - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (H - TOP - BOTTOM)
    }
}

/// The two per-step series over the window, baseline and candidate in the page's colours.
fn chart(r: &ResourceResult) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}: baseline and candidate per step</title>",
        escape(&r.name)
    );
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let points = || r.series.iter().flatten().filter(finite);
    if points().next().is_none() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">no samples</text></svg>",
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        points()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (_, t_max) = fold(|p| p.0);
    let (x0, x1, xticks) = ticks(0.0, t_max.max(1.0));
    let (v_lo, v_hi) = fold(|p| p.1);
    let (y0, y1, yticks) = ticks(v_lo, v_hi);
    let ylabels: Vec<String> = yticks.iter().map(|&y| tick_label(y)).collect();
    // Room for the longest tick label beside the axis's title.
    let longest = ylabels.iter().map(String::len).max().unwrap_or(0);
    let frame = Frame {
        left: LEFT.max(24.0 + 6.0 * longest as f64),
        x: (x0, x1),
        y: (y0, y1),
    };
    axes(&mut svg, &frame, &xticks, yticks.iter().zip(&ylabels));
    for (series, colour) in r.series.iter().zip([BASE_COLOUR, CAND_COLOUR]) {
        let xy: Vec<(f64, f64)> = series
            .iter()
            .filter(finite)
            .map(|&(t, v)| (frame.px(t), frame.py(v)))
            .collect();
        if let [(x, y)] = xy[..] {
            // One point is no line: a dot.
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{colour}\"/>"
            );
        } else if !xy.is_empty() {
            let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                path.join(" ")
            );
        }
    }
    let mid = TOP + (H - TOP - BOTTOM) / 2.0;
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">seconds since the window's start</text>\
         <text x=\"12\" y=\"{mid:.1}\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 {mid:.1})\">{}</text></svg>",
        frame.left + (W - frame.left - RIGHT) / 2.0,
        H - 6.0,
        escape(&y_label(r)),
    );
    svg
}

/// The plot area's frame, grid lines and tick labels.
fn axes<'a>(
    svg: &mut String,
    frame: &Frame,
    xticks: &[f64],
    yticks: impl Iterator<Item = (&'a f64, &'a String)>,
) {
    let left = frame.left;
    let _ = write!(
        svg,
        "<rect x=\"{left:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"white\" stroke=\"#999\"/>",
        W - left - RIGHT,
        H - TOP - BOTTOM
    );
    for &x in xticks {
        let _ = write!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2:.1}\" font-size=\"10\" text-anchor=\"middle\">{3}</text>",
            frame.px(x),
            H - BOTTOM,
            H - BOTTOM + 12.0,
            tick_label(x)
        );
    }
    for (&y, label) in yticks {
        let _ = write!(
            svg,
            "<line x1=\"{left:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{2:.1}\" y=\"{3:.1}\" font-size=\"10\" text-anchor=\"end\">{4}</text>",
            W - RIGHT,
            frame.py(y),
            left - 4.0,
            frame.py(y) + 3.0,
            escape(label)
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::stats::Correction;
    use crate::compare::tests::same_distributions;
    use crate::resource::config::{Limit, Metric};
    use crate::resource::judge::{decide_all, judge, Side};

    fn metric(name: &str, kind: Kind) -> Metric {
        Metric {
            name: name.into(),
            query: "q".into(),
            kind,
            per_request: kind == Kind::Level,
            harmful: Harmful::Increase,
            limit: Limit {
                relative: Some(0.2),
                absolute: None,
            },
        }
    }

    /// 30 steps of 2 s with 400 ± 120 requests each; `value(k, requests)` is the query's
    /// sample at step k.
    fn side(value: impl Fn(usize, f64) -> f64) -> (Vec<(f64, f64)>, Vec<u64>) {
        (0..30)
            .map(|k| {
                let requests = 400 + (k as u64 * 37) % 240 - 120;
                (
                    (1000.0 + 2.0 * k as f64, value(k, requests as f64)),
                    requests,
                )
            })
            .unzip()
    }

    fn run(
        m: &Metric,
        b: &(Vec<(f64, f64)>, Vec<u64>),
        c: &(Vec<(f64, f64)>, Vec<u64>),
    ) -> ResourceResult {
        let count = |s: &(Vec<(f64, f64)>, Vec<u64>)| {
            let s = s.clone();
            move |t: f64| s.0.iter().position(|p| p.0 == t).map_or(0, |i| s.1[i])
        };
        let (cb, cc) = (count(b), count(c));
        let sides = [
            Side {
                samples: &b.0,
                requests: &cb,
            },
            Side {
                samples: &c.0,
                requests: &cc,
            },
        ];
        let queries = [
            format!("rate(cpu{{track=\"stable\",q=\"<{}>\"}}[{{step}}])", m.name),
            format!("rate(cpu{{track=\"canary\",q=\"<{}>\"}}[{{step}}])", m.name),
        ];
        judge(m, queries, sides, 2, 6, 0.05)
    }

    /// Three judged results as a run has them: "cpu per request" FAILs (the candidate costs
    /// twice the CPU per request), "rss" (growth) PASSes (the same slope), and "gc pauses" is
    /// INCONCLUSIVE (its query matched nothing for the candidate).
    pub(crate) fn results() -> Vec<ResourceResult> {
        let wobble = |k: usize, salt: usize| ((k * 7 + salt * 13) % 11) as f64 / 100.0;
        let cpu =
            |cost: f64, salt: usize| side(move |k, n| cost * (1.0 + wobble(k, salt)) * n / 2.0);
        let cpu_fail = run(
            &metric("cpu per request", Kind::Level),
            &cpu(0.002, 1),
            &cpu(0.004, 2),
        );
        let rss = |slope: f64, salt: usize| {
            side(move |k, _| 1e8 + slope * k as f64 + 1e5 * wobble(k * k, salt))
        };
        let rss_pass = run(&metric("rss", Kind::Growth), &rss(2e5, 1), &rss(2.1e5, 2));
        let gc = metric("gc pauses", Kind::Level);
        let gc_unjudged = run(&gc, &cpu(0.001, 1), &(Vec::new(), Vec::new()));
        let mut all = vec![cpu_fail, rss_pass, gc_unjudged];
        decide_all(&mut all, Correction::Holm, 0.05);
        all
    }

    /// A passing comparison with [`results`] added: the verdict FAILs on "cpu per request".
    pub(crate) fn verdict() -> Verdict {
        let mut v = same_distributions().verdict();
        v.add_resources(results());
        v
    }

    #[test]
    fn the_fixture_fails_passes_and_is_inconclusive() {
        let v = verdict();
        let outcomes: Vec<Outcome> = v.resources.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Fail, Outcome::Pass, Outcome::Inconclusive],
            "{:#?}",
            v.resources
        );
        assert_eq!(v.outcome, Outcome::Fail);
        let cpu = &v.resources[0];
        assert!(finding(&v, cpu).is_some(), "the failing metric's finding");
        assert_eq!(relative(cpu).map(|s| s.starts_with("+")), Some(true));
        assert_eq!(count_text(&v.resources), "1 of 3 failed, 1 not judged");
        assert_eq!(
            anchors(&v.resources),
            [
                "resource-cpu-per-request",
                "resource-rss",
                "resource-gc-pauses"
            ]
        );
    }

    #[test]
    fn a_decrease_is_shown_in_the_harmful_direction() {
        let mut r = results().remove(0);
        r.harmful = Harmful::Decrease;
        r.relative = Some(-0.5);
        assert_eq!(relative(&r).as_deref(), Some("+50.0%"));
        r.relative = Some(-0.0001);
        assert_eq!(relative(&r).as_deref(), Some("0%"));
        assert_eq!(title(&r), "cpu per request (harmful: decrease)");
    }

    #[test]
    fn over_the_allowance_but_not_significant_is_said_in_every_format() {
        let mut v = verdict();
        let cpu = &mut v.resources[0];
        cpu.outcome = Outcome::Pass;
        cpu.check.as_mut().unwrap().outcome = CheckOutcome::NotSignificant;
        let text = super::super::text::render(&v);
        assert!(
            text.contains(", 30 steps, over the allowance but not significant\n"),
            "{text}"
        );
        let md = super::super::markdown::render(&v);
        assert!(
            md.contains("| cpu per request | ✅ PASS (over the allowance, not significant) |"),
            "{md}"
        );
        let html = super::super::html::render(&v);
        assert!(
            html.contains("<tr class=\"ns\"><td class=\"l\"><a href=\"#resource-cpu-per-request\">cpu per request</a></td><td class=\"l\"><span class=\"badge pass\">PASS</span> over the allowance, not significant</td>"),
            "{html}"
        );
    }

    #[test]
    fn tick_labels_stay_short() {
        assert_eq!(tick_label(0.00105), "0.00105");
        assert_eq!(tick_label(1500.0), "1500");
        assert_eq!(tick_label(5_500_000.0), "5.5M");
        assert_eq!(tick_label(-20_000.0), "-20k");
        assert_eq!(tick_label(2.5e9), "2.5G");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (lo, hi, marks) = ticks(0.0, 58.0);
        assert_eq!((lo, hi), (0.0, 60.0));
        assert_eq!(marks, [0.0, 20.0, 40.0, 60.0]);
        let (lo, hi, marks) = ticks(0.0021, 0.0043);
        assert!(
            lo <= 0.0021 && hi >= 0.0043 && marks.len() >= 3,
            "{marks:?}"
        );
        let (lo, hi, _) = ticks(5.0, 5.0);
        assert!(lo < 5.0 && hi > 5.0, "a flat series still has a range");
    }

    #[test]
    fn the_chart_draws_both_series_in_the_page_colours_with_labelled_axes() {
        let v = verdict();
        let svg = chart(&v.resources[0]);
        assert_eq!(svg.matches("<polyline ").count(), 2, "{svg}");
        assert!(svg.contains(BASE_COLOUR) && svg.contains(CAND_COLOUR));
        assert!(svg.contains("seconds since the window's start"));
        assert!(svg.contains("value per request"), "{svg}");
        assert!(chart(&v.resources[1]).contains("increase per minute"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let gc = chart(&v.resources[2]);
        assert_eq!(
            gc.matches("<polyline ").count(),
            1,
            "only the baseline has samples"
        );
    }
}
