//! JUnit XML: one `<testcase>` per route × metric, so CI systems list every check and show a
//! failing one with its finding. Test cases are named by the checks' readable names (stable:
//! they change only with `labels::check_name`); a failure's `type` is the check's id. Routes
//! too thin to judge appear as skipped test cases.

use std::fmt::Write;

use crate::compare::{Check, CheckOutcome, Finding, Verdict};

use super::check_name;
use super::labels::summary;

/// The XML document, ending with a newline.
pub fn render(verdict: &Verdict) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures, mut skipped) = (0usize, 0usize, 0usize);
    for section in verdict.sections() {
        let (route, judged, checks) = (section.route, section.judged, section.checks);
        if !judged {
            tests += 1;
            skipped += 1;
            let _ = writeln!(
                cases,
                "    <testcase classname=\"{}\" name=\"judged\"><skipped message=\"too few requests to judge\"/></testcase>",
                escape(route)
            );
            continue;
        }
        for check in checks {
            tests += 1;
            // The readable name is what CI lists; the failure's type keeps the stable id.
            let (name, id) = (check_name(check.metric), check.metric.as_str());
            let finding = find(&verdict.findings, route, check);
            let _ = write!(
                cases,
                "    <testcase classname=\"{}\" name=\"{name}\">",
                escape(route)
            );
            if check.outcome == CheckOutcome::Fail {
                failures += 1;
                let message = finding.map_or_else(|| summary(check), |f| f.message.clone());
                let _ = write!(
                    cases,
                    "<failure message=\"{}\" type=\"{id}\">{}</failure>",
                    escape(&message),
                    escape(&summary(check)),
                );
            }
            let _ = writeln!(
                cases,
                "<system-out>{}</system-out></testcase>",
                escape(&summary(check))
            );
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        out,
        "<testsuites name=\"nprt\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{} vs {}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        escape(&verdict.candidate),
        escape(&verdict.baseline)
    );
    out.push_str(&cases);
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn find<'a>(findings: &'a [Finding], route: &str, check: &Check) -> Option<&'a Finding> {
    findings
        .iter()
        .find(|f| f.route == route && f.metric == check.metric)
}

/// XML text and attribute escaping.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{p99_regression, same_distributions};

    #[test]
    fn one_testcase_per_route_and_metric_with_failures() {
        let xml = render(&p99_regression().verdict());
        // 3 rows (2 routes + overall) × 4 metrics.
        assert!(
            xml.contains("<testsuites name=\"nprt\" tests=\"12\" failures=\"6\" skipped=\"0\">"),
            "{xml}"
        );
        assert!(xml.contains("<testcase classname=\"GET /search\" name=\"p99 latency\"><failure message=\"p99 latency 74.0 ms"), "{xml}");
        assert!(
            xml.contains("type=\"p99_latency\">p99 latency: change +"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<testcase classname=\"GET /users/:id\" name=\"median latency shift\"><system-out>"
            ),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 12);
        assert_eq!(xml.matches("</testcase>").count(), 12);
    }

    #[test]
    fn passing_run_has_no_failures_and_escapes_text() {
        let xml = render(&same_distributions().verdict());
        assert!(xml.contains("failures=\"0\""));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
