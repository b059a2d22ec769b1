//! Markdown for CI job summaries (GitHub's `$GITHUB_STEP_SUMMARY`, GitLab notes): the verdict,
//! one table row per route (failing routes first, the failing checks by their readable names),
//! the failing findings, the notes.

use std::fmt::Write;

use crate::compare::{Outcome, Severity, Verdict};

use super::{check_name, routes};

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
    let _ = writeln!(
        out,
        "| route | requests | fail % (base → cand) | p50 ms | p99 ms | checks |\n|---|---:|---:|---:|---:|---|"
    );
    for row in routes::ordered(v) {
        let section = row.section;
        let (route, b, c) = (section.route, section.baseline, section.candidate);
        let status = match row.outcome {
            Outcome::Fail => {
                let failed: Vec<&str> = row.failed.iter().map(|&m| check_name(m)).collect();
                format!("❌ {}", failed.join(", "))
            }
            Outcome::Inconclusive if row.held_back > 0 => {
                "⚠️ failed, not held against the candidate (see the notes)".to_owned()
            }
            Outcome::Inconclusive => "not judged".to_owned(),
            Outcome::Pass => "✅".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.2} → {:.2} | {:.1} → {:.1} | {:.1} → {:.1} | {status} |",
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
    }
}
