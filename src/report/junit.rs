//! JUnit XML: one `<testcase>` per route × metric, so CI systems list every check and show a
//! failing one with its finding. Routes too thin to judge appear as skipped test cases.

use std::fmt::Write;

use crate::compare::{Check, CheckOutcome, Finding, Verdict};

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
            let name = check.metric.as_str();
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
                    "<failure message=\"{}\" type=\"{name}\">{}</failure>",
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

/// "effect +3.1 ms [2.9, 3.4], limit 2 ms, p 0.001 (adjusted 0.004), test wilcoxon_signed_rank".
pub fn summary(check: &Check) -> String {
    let mut s = format!("effect {:+} {}", check.effect, check.unit);
    if let Some([lo, hi]) = check.interval {
        let _ = write!(s, " [{lo}, {hi}]");
    }
    let _ = write!(s, ", limit {} {}", check.limit, check.unit);
    if let Some(noise) = check.noise {
        let _ = write!(s, " (noise {noise:+})");
    }
    if let Some(p) = check.p_value {
        let _ = write!(s, ", p {}", crate::compare::checks::fmt_p(p));
    }
    if let Some(p) = check.p_adjusted {
        let _ = write!(s, " (adjusted {})", crate::compare::checks::fmt_p(p));
    }
    let _ = write!(s, ", test {}", check.test);
    s
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
        assert!(xml.contains("<testcase classname=\"GET /search\" name=\"p99_latency\"><failure message=\"p99 latency 74.0 ms"), "{xml}");
        assert!(
            xml.contains(
                "<testcase classname=\"GET /users/:id\" name=\"latency_shift\"><system-out>"
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
