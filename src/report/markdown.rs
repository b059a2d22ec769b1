//! Markdown for CI job summaries (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab notes): the verdict,
//! one table row per route (failing routes first, the failing checks by their readable names),
//! one per resource metric (when Prometheus was queried), the failing findings, the notes.

use std::fmt::Write;

use crate::compare::{Metric, Outcome, Severity, Verdict};

use super::{check_name, labels, resources, routes};

/// The Markdown text, ending with a newline.
pub fn render(v: &Verdict) -> String {
    let mut out = String::new();
    let icon = match v.outcome {
        Outcome::Pass => "✅ PASS",
        Outcome::Fail => "❌ FAIL",
        Outcome::Inconclusive => "⚠️ INCONCLUSIVE",
    };
    let _ = writeln!(
        out,
        "## nprt: {icon}\n\ncandidate `{}` vs baseline `{}`; {} pairs; alpha {} ({:?} across routes × metrics)\n",
        cell(&v.candidate),
        cell(&v.baseline),
        v.overall.paired.pairs,
        v.thresholds.alpha,
        v.thresholds.correction,
    );
    route_table(&mut out, v);
    resource_table(&mut out, v);
    let failing: Vec<_> = v
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\n### Findings\n");
        for f in failing {
            let _ = writeln!(out, "- **{}** {}", cell(&f.route), cell(&f.message));
        }
    }
    let info: Vec<_> = v
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Info)
        .collect();
    if !info.is_empty() || !v.notes.is_empty() {
        let _ = writeln!(out, "\n<details><summary>Notes</summary>\n");
        for f in info {
            let _ = writeln!(out, "- {}: {}", cell(&f.route), cell(&f.message));
        }
        for n in &v.notes {
            let _ = writeln!(out, "- {}", cell(n));
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}

/// One row per route, failing first: the numbers of both targets and the failing checks;
/// their gRPC statuses by name when any target gave gRPC answers.
fn route_table(out: &mut String, v: &Verdict) {
    let grpc = labels::any_grpc(v);
    let _ = writeln!(
        out,
        "| route | requests | fail % (base → cand) | p50 ms | p99 ms |{} checks |\n|---|---:|---:|---:|---:|{}---|",
        if grpc { " gRPC status (base → cand) |" } else { "" },
        if grpc { "---|" } else { "" },
    );
    for row in routes::ordered(v) {
        let section = row.section;
        let (route, b, c) = (section.route, section.baseline, section.candidate);
        let status = match row.outcome {
            Outcome::Fail => {
                let failed: Vec<String> = row
                    .failed
                    .iter()
                    .map(|&m| match m {
                        // The overall row names the failing resource metrics.
                        Metric::Resource if row.is_overall() => format!(
                            "{}: {}",
                            check_name(m),
                            cell(&resources::failing_names(&v.resources))
                        ),
                        m => check_name(m).to_owned(),
                    })
                    .collect();
                format!("❌ {}", failed.join(", "))
            }
            Outcome::Inconclusive if row.held_back > 0 => {
                "⚠️ failed, not held against the candidate (see the notes)".to_owned()
            }
            Outcome::Inconclusive => "not judged".to_owned(),
            Outcome::Pass => "✅".to_owned(),
        };
        let grpc_cell = if grpc {
            let counts = |s| labels::grpc_counts(s).unwrap_or_else(|| "–".to_owned());
            format!(" {} → {} |", counts(b), counts(c))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.2} → {:.2} | {:.1} → {:.1} | {:.1} → {:.1} |{grpc_cell} {status} |",
            cell(route),
            c.requests,
            b.failure_rate * 100.0,
            c.failure_rate * 100.0,
            b.p50_ms,
            c.p50_ms,
            b.p99_ms,
            c.p99_ms,
        );
    }
}

/// The resource metrics, one row each with the text report's numbers; an unjudged one says
/// why in its outcome cell.
fn resource_table(out: &mut String, v: &Verdict) {
    if v.resources.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Resources\n\nFrom Prometheus, per step; shift = Hodges–Lehmann estimate, + in the harmful direction.\n\n\
         | metric | outcome | baseline → candidate | shift (interval) | relative | allowance | p (adjusted) | steps |\n\
         |---|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in &v.resources {
        let outcome = match (r.outcome, &r.reason) {
            (Outcome::Fail, _) => "❌ FAIL".to_owned(),
            (Outcome::Inconclusive, Some(reason)) => format!("⚠️ INCONCLUSIVE: {}", cell(reason)),
            (Outcome::Inconclusive, None) => "⚠️ INCONCLUSIVE".to_owned(),
            (Outcome::Pass, _) if resources::not_significant(r) => {
                "✅ PASS (over the allowance, not significant)".to_owned()
            }
            (Outcome::Pass, _) => "✅ PASS".to_owned(),
        };
        let none = resources::NONE;
        let cells = r.check.as_ref().map_or_else(
            || [none, none, none, none, none].map(str::to_owned),
            |c| {
                [
                    resources::levels(c, "→"),
                    format!("{} ({})", labels::effect(c), resources::bare_interval(c)),
                    resources::relative(r).unwrap_or_else(|| none.to_owned()),
                    labels::limit(c),
                    resources::p(c),
                ]
            },
        );
        let _ = writeln!(
            out,
            "| {} | {outcome} | {} | {} |",
            cell(&resources::title(r)),
            cells.map(|c| cell(&c)).join(" | "),
            r.steps
        );
    }
}

/// Text safe inside a table cell or list item: pipes and backticks escaped, no newlines.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('`', "'")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::p99_regression;

    #[test]
    fn table_and_findings() {
        let md = render(&p99_regression().verdict());
        assert!(md.starts_with("## nprt: ❌ FAIL"), "{md}");
        assert!(md.contains("| `GET /search` | 200 |"), "{md}");
        assert!(
            md.contains("❌ p99 latency, median latency shift, share of slower requests"),
            "{md}"
        );
        assert!(
            md.contains("| `GET /users/:id` | 200 | 0.00 → 0.00 |"),
            "{md}"
        );
        assert!(
            md.contains("### Findings\n\n- **GET /search** p99 latency"),
            "{md}"
        );
        let search = md.find("| `GET /search`").unwrap();
        assert!(
            search < md.find("| `GET /users/:id`").unwrap(),
            "failing first"
        );
        assert!(!md.contains("p99_latency"), "{md}");
        assert_eq!(cell("a|b`c"), "a\\|b'c");
        assert!(!md.contains("### Resources"), "no metrics, no table");
    }

    #[test]
    fn grpc_statuses_get_a_column_only_in_reports_of_grpc_calls() {
        let md = render(&crate::report::tests::grpc_verdict());
        println!("{md}");
        assert!(
            md.contains("| p99 ms | gRPC status (base → cand) | checks |\n|---|---:|---:|---:|---:|---|---|"),
            "{md}"
        );
        let call = md
            .lines()
            .find(|l| l.starts_with("| `/echo.Echo/Call`"))
            .unwrap();
        assert!(
            call.contains(" | OK 300 → UNAVAILABLE 31, OK 269 | ❌ error rate"),
            "{call}"
        );
        let health = md
            .lines()
            .find(|l| l.starts_with("| `GET /health`"))
            .unwrap();
        assert!(health.contains(" | – → – | "), "{health}");
        let http = render(&p99_regression().verdict());
        assert!(!http.contains("gRPC"), "{http}");
        assert!(
            http.contains("| p99 ms | checks |\n|---|---:|---:|---:|---:|---|\n"),
            "{http}"
        );
    }

    #[test]
    fn resources_table_after_the_routes() {
        let md = render(&resources::tests::verdict());
        println!("{md}");
        assert!(md.starts_with("## nprt: ❌ FAIL"), "{md}");
        let table = &md[md.find("### Resources").expect("a Resources table")..];
        assert!(md.find("| `POST /orders`").unwrap() < md.find("### Resources").unwrap());
        assert!(
            md.contains("| `(overall)` | 300 |")
                && md.contains("| ❌ resource metric: cpu per request |"),
            "{md}"
        );
        assert!(
            table.find("### Resources").unwrap() < table.find("### Findings").unwrap(),
            "before the findings"
        );
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 4, "header and three metrics: {table}");
        assert!(
            rows[0].contains("| shift (interval) | relative | allowance | p (adjusted) | steps |")
        );
        let cpu = rows[1];
        assert!(
            cpu.starts_with("| cpu per request | ❌ FAIL | 0.0021 → 0.0042 per request | +"),
            "{cpu}"
        );
        assert!(
            cpu.contains("% | +") && cpu.contains("(adjusted ") && cpu.ends_with("| 30 |"),
            "{cpu}"
        );
        assert!(
            rows[2].starts_with("| rss (growth) | ✅ PASS | "),
            "{}",
            rows[2]
        );
        assert_eq!(
            rows[3],
            "| gc pauses | ⚠️ INCONCLUSIVE: only 0 step(s) with traffic on both targets, 6 needed (prometheus.min_steps) | – | – | – | – | – | 0 |"
        );
        for row in &rows[1..] {
            assert_eq!(row.matches(" | ").count(), 7, "8 cells: {row}");
        }
    }
}
