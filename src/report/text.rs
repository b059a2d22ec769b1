//! The terminal report: verdict first, then one table row per route and target, one line per
//! resource metric (when Prometheus was queried), then the findings and notes. Plain ASCII apart from the route names; colour only when asked for
//! (the CLI asks when stdout is a terminal), so it reads the same in a CI log.

use std::fmt::Write;

use crate::compare::{Finding, Metric, Outcome, Severity, TargetSummary, Verdict, OVERALL_ROUTE};

use super::resources;

/// The readable table, ending with a newline.
pub fn render(verdict: &Verdict) -> String {
    render_with(verdict, false)
}

/// Like [`render`], with ANSI colours on the verdict and the failing findings when `colour`.
pub fn render_with(verdict: &Verdict, colour: bool) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_report(&mut out, verdict, colour);
    out
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The whole report: headline and limits, the table, the resource metrics, then findings and
/// notes.
fn write_report(out: &mut String, v: &Verdict, colour: bool) -> std::fmt::Result {
    write_headline(out, v, colour)?;
    writeln!(out)?;
    write_table(out, v)?;
    write_resources(out, v, colour)?;
    write_findings_and_notes(out, v, colour)
}

/// One line per resource metric, names and outcomes in columns: the numbers of a judged one
/// (see [`resources::line`]), why not for an unjudged one.
fn write_resources(out: &mut String, v: &Verdict, colour: bool) -> std::fmt::Result {
    if v.resources.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nresources (Prometheus, per step; shift = Hodges-Lehmann, + = harmful direction):"
    )?;
    let titles: Vec<String> = v.resources.iter().map(resources::title).collect();
    let width = titles.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    for (r, title) in v.resources.iter().zip(&titles) {
        let (word, code) = match r.outcome {
            Outcome::Pass => ("PASS", "32"),
            Outcome::Fail => ("FAIL", "31"),
            Outcome::Inconclusive => ("INCONCLUSIVE", "33"),
        };
        // Padded before painting, so the colour codes do not shift the columns.
        let outcome = paint(&format!("{word:<12}"), code, colour);
        let detail = match (&r.check, &r.reason) {
            (Some(check), _) => resources::line(r, check, "->"),
            (None, reason) => reason.clone().unwrap_or_else(|| "not judged".to_owned()),
        };
        writeln!(out, "  {title:<width$}  {outcome}  {detail}")?;
    }
    Ok(())
}

/// The verdict with its finding counts, and the limits it was judged by.
fn write_headline(out: &mut String, v: &Verdict, colour: bool) -> std::fmt::Result {
    let fails = count(&v.findings, Severity::Fail);
    let infos = count(&v.findings, Severity::Info);
    let headline = match v.outcome {
        Outcome::Pass => paint("PASS", "1;32", colour),
        Outcome::Fail => paint("FAIL", "1;31", colour),
        Outcome::Inconclusive => paint("INCONCLUSIVE", "1;33", colour),
    };
    writeln!(
        out,
        "{headline}: candidate {} vs baseline {}; findings: {fails} failing, {infos} informational",
        v.candidate, v.baseline,
    )?;
    let t = &v.thresholds;
    writeln!(
        out,
        "limits: p99 +{}% and +{} ms, 5xx/no-response rate +{} percentage point{}, \
         at least {} requests per target",
        trim(t.p99_relative * 100.0),
        trim(t.p99_absolute_ms),
        trim(t.error_rate_margin * 100.0),
        if t.error_rate_margin == 0.01 { "" } else { "s" },
        t.min_requests,
    )
}

/// One pair of rows (baseline, candidate) per route, columns sized to the longest route and
/// target, and the legend.
fn write_table(out: &mut String, v: &Verdict) -> std::fmt::Result {
    // The overall row is never marked "not judged": its notes say why when it was not.
    let rows: Vec<(&str, bool, &TargetSummary, &TargetSummary)> = v
        .sections()
        .map(|s| {
            let judged = s.judged || s.route == OVERALL_ROUTE;
            (s.route, judged, s.baseline, s.candidate)
        })
        .collect();
    let route_width = rows
        .iter()
        .map(|(route, judged, ..)| route.chars().count() + usize::from(!judged) * 2)
        .max()
        .unwrap_or(0)
        .max("route".len());
    let target_width = [v.baseline.as_str(), v.candidate.as_str(), "target"]
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0);

    // gRPC statuses only in reports of gRPC calls: an HTTP-only table is unchanged.
    let grpc = super::labels::any_grpc(v);
    writeln!(
        out,
        "{:<route_width$}  {:<target_width$}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}  {:>8}{}",
        "route",
        "target",
        "requests",
        "fail %",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        if grpc { "  gRPC status" } else { "" }
    )?;
    for (route, judged, baseline, candidate) in &rows {
        let failing = |metric| {
            v.findings
                .iter()
                .any(|f| f.route == *route && f.metric == metric && f.severity == Severity::Fail)
        };
        let label = if *judged {
            route.to_string()
        } else {
            format!("{route} *")
        };
        write_row(
            out,
            &label,
            route_width,
            &v.baseline,
            target_width,
            baseline,
            [false; 2],
        )?;
        grpc_cell(out, grpc, baseline);
        write_row(
            out,
            "",
            route_width,
            &v.candidate,
            target_width,
            candidate,
            [failing(Metric::FailureRate), failing(Metric::P99Latency)],
        )?;
        grpc_cell(out, grpc, candidate);
    }
    writeln!(
        out,
        "fail % = 5xx, gRPC failure status or no response; ! = over the limit; * = too few requests, not judged"
    )
}

/// The findings (failing ones painted when `colour`) and the notes, each under its own heading
/// and only when there are any.
fn write_findings_and_notes(out: &mut String, v: &Verdict, colour: bool) -> std::fmt::Result {
    if !v.findings.is_empty() {
        writeln!(out, "\nfindings:")?;
        for f in &v.findings {
            let severity = match f.severity {
                Severity::Fail => paint("FAIL", "31", colour),
                Severity::Info => "info".to_owned(),
            };
            writeln!(out, "  {severity}  {}: {}", f.route, f.message)?;
        }
    }
    if !v.notes.is_empty() {
        writeln!(out, "\nnotes:")?;
        for note in &v.notes {
            writeln!(out, "  {note}")?;
        }
    }
    Ok(())
}

/// One target's row; `marks` flags the fail % and p99 cells.
fn write_row(
    out: &mut String,
    route: &str,
    route_width: usize,
    target: &str,
    target_width: usize,
    s: &TargetSummary,
    [fail_mark, p99_mark]: [bool; 2],
) -> std::fmt::Result {
    let mark = |on: bool| if on { '!' } else { ' ' };
    writeln!(
        out,
        "{route:<route_width$}  {target:<target_width$}  {:>8} {:>7.2}%{} {:>8.1}  {:>8.1}  {:>8.1}{} {:>8.1}",
        s.requests,
        s.failure_rate * 100.0,
        mark(fail_mark),
        s.p50_ms,
        s.p90_ms,
        s.p99_ms,
        mark(p99_mark),
        s.max_ms,
    )
    .map(|_| ())?;
    // Trailing blanks from unmarked cells would only make logs noisy.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    Ok(())
}

/// Appends the gRPC status counts of `s` to the row just written, when the table has the
/// column (`shown`) and the target gave gRPC answers. The row ends at its last cell, which is
/// right-aligned, so the counts start in one column.
fn grpc_cell(out: &mut String, shown: bool, s: &TargetSummary) {
    let Some(counts) = super::labels::grpc_counts(s).filter(|_| shown) else {
        return;
    };
    out.pop();
    out.push_str("  ");
    out.push_str(&counts);
    out.push('\n');
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

fn trim(value: f64) -> String {
    let s = format!("{value:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{p99_regression, same_distributions};

    #[test]
    fn shows_verdict_routes_and_findings() {
        let text = render(&p99_regression().verdict());
        println!("{text}");
        assert!(
            text.starts_with("FAIL: candidate canary vs baseline stable"),
            "{text}"
        );
        assert!(text.contains("GET /search"));
        assert!(text.contains("GET /users/:id"));
        assert!(text.contains("(overall)"));
        assert!(text.contains("FAIL  GET /search: p99 latency"), "{text}");
        // The failing p99 cell of the candidate is marked, and only on failing routes.
        let search_canary = text
            .lines()
            .skip_while(|l| !l.starts_with("GET /search"))
            .nth(1)
            .unwrap();
        assert!(search_canary.contains('!'), "{search_canary}");
        let users_canary = text
            .lines()
            .skip_while(|l| !l.starts_with("GET /users/:id"))
            .nth(1)
            .unwrap();
        assert!(!users_canary.contains('!'), "{users_canary}");
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn colour_only_when_asked() {
        let v = p99_regression().verdict();
        assert!(!render(&v).contains('\x1b'));
        let coloured = render_with(&v, true);
        assert!(
            coloured.starts_with("\x1b[1;31mFAIL\x1b[0m: "),
            "{coloured}"
        );
    }

    #[test]
    fn resource_metrics_follow_the_route_table_one_line_each() {
        let text = render(&resources::tests::verdict());
        println!("{text}");
        assert!(text.starts_with("FAIL: "), "{text}");
        let block = &text[text.find("\nresources (").expect("a resources block")..];
        assert!(
            text.find("fail % = 5xx").unwrap() < text.find("\nresources (").unwrap(),
            "after the route table"
        );
        let lines: Vec<&str> = block.lines().skip(2).take(3).collect();
        assert!(
            lines[0].starts_with("  cpu per request  FAIL  "),
            "{}",
            lines[0]
        );
        for part in [
            "per request, shift +",
            " per request (interval +",
            "%), allowed +",
            ", p ",
            " (adjusted ",
            ", 30 steps",
        ] {
            assert!(lines[0].contains(part), "{part:?} not in {}", lines[0]);
        }
        assert!(lines[0].contains(" -> "), "ASCII arrow: {}", lines[0]);
        assert!(
            lines[1].starts_with("  rss (growth)     PASS  "),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(" per minute"), "{}", lines[1]);
        assert!(
            lines[2].starts_with("  gc pauses        INCONCLUSIVE  only 0 step(s)"),
            "{}",
            lines[2]
        );
        assert!(
            text.contains("\nfindings:\n  FAIL  (overall): cpu per request"),
            "{text}"
        );
        assert!(text.lines().all(|l| l == l.trim_end()));
        assert!(!render(&p99_regression().verdict()).contains("\nresources"));
    }

    #[test]
    fn grpc_statuses_are_shown_by_name_per_target() {
        let text = render(&crate::report::tests::grpc_verdict());
        println!("{text}");
        let header = text.lines().find(|l| l.starts_with("route")).unwrap();
        assert!(header.ends_with("max ms  gRPC status"), "{header}");
        let mut rows = text
            .lines()
            .skip_while(|l| !l.starts_with("/echo.Echo/Call"));
        let (baseline, candidate) = (rows.next().unwrap(), rows.next().unwrap());
        assert!(baseline.ends_with(" OK 300"), "{baseline}");
        // The failing status first, and in the same column as the baseline's.
        assert!(
            candidate.ends_with(" UNAVAILABLE 31, OK 269"),
            "{candidate}"
        );
        assert_eq!(baseline.find(" OK 300"), candidate.find(" UNAVAILABLE"));
        let overall = text.lines().find(|l| l.starts_with("(overall)")).unwrap();
        assert!(overall.ends_with(" OK 300"), "{overall}");
        // The HTTP route of the same report has no gRPC counts.
        let health = text.lines().find(|l| l.starts_with("GET /health")).unwrap();
        assert!(health.ends_with(char::is_numeric), "{health}");
        assert!(!health.contains("OK"), "{health}");
        assert!(text.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn http_only_reports_have_no_grpc_column() {
        for v in [
            p99_regression().verdict(),
            same_distributions().verdict(),
            crate::compare::tests::error_regression().verdict(),
        ] {
            let text = render(&v);
            assert!(!text.contains("gRPC status"), "{text}");
            let header = text.lines().find(|l| l.starts_with("route")).unwrap();
            assert!(header.ends_with("max ms"), "{header}");
        }
    }

    #[test]
    fn pass_has_no_findings_section() {
        let text = render(&same_distributions().verdict());
        assert!(text.starts_with("PASS: "), "{text}");
        assert!(!text.contains("\nfindings:"), "{text}");
        assert!(text.contains("POST /orders"));
    }
}
