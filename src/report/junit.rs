//! JUnit XML: one `<testcase>` per route × metric, so CI systems list every check and show a
//! failing one with its finding. Test cases are named by the checks' readable names (stable:
//! they change only with `labels::check_name`); a failure's `type` is the check's id. Routes
//! too thin to judge appear as skipped test cases. Each resource metric is one more test case
//! ("resource: <name>" under "(overall)"), skipped with the reason when it was not judged.

use std::fmt::Write;

use crate::compare::{Check, CheckOutcome, Finding, Metric, Outcome, Verdict, OVERALL_ROUTE};

use super::check_name;
use super::labels::summary;
use super::resources;

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
    let [t, f, s] = resource_cases(verdict, &mut cases);
    (tests, failures, skipped) = (tests + t, failures + f, skipped + s);
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

/// One test case per resource metric, under the overall row's class name: a failure with its
/// finding, skipped with the reason when not judged (like a route too thin to judge), the
/// numbers and the queries as output. Returns the tests, failures and skipped it wrote.
fn resource_cases(verdict: &Verdict, cases: &mut String) -> [usize; 3] {
    let mut counts = [0; 3];
    for r in &verdict.resources {
        counts[0] += 1;
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"resource: {}\">",
            escape(OVERALL_ROUTE),
            escape(&r.name)
        );
        let numbers = r.check.as_ref().map(|c| {
            let line = format!("{}: {}", r.name, resources::line(r, c, "→"));
            (line, summary(c))
        });
        let reason = r.reason.as_deref().unwrap_or("not judged");
        match (r.outcome, &numbers) {
            (Outcome::Fail, Some((line, summary))) => {
                counts[1] += 1;
                let message = resources::finding(verdict, r).map_or(line, |f| &f.message);
                let _ = write!(
                    cases,
                    "<failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(message),
                    Metric::Resource.as_str(),
                    escape(summary),
                );
            }
            (Outcome::Fail | Outcome::Pass, _) => {}
            (Outcome::Inconclusive, _) => {
                counts[2] += 1;
                let _ = write!(cases, "<skipped message=\"{}\"/>", escape(reason));
            }
        }
        let what = numbers.map_or_else(|| format!("not judged: {reason}"), |(line, _)| line);
        let _ = writeln!(
            cases,
            "<system-out>{}\nbaseline query: {}\ncandidate query: {}</system-out></testcase>",
            escape(&what),
            escape(&r.queries[0]),
            escape(&r.queries[1]),
        );
    }
    counts
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
    fn one_testcase_per_resource_metric_failed_passed_or_skipped() {
        let v = resources::tests::verdict();
        let xml = render(&v);
        println!("{xml}");
        // 2 routes + overall, 4 checks each, and 3 metrics.
        assert!(
            xml.contains("<testsuites name=\"nprt\" tests=\"15\" failures=\"1\" skipped=\"1\">"),
            "{xml}"
        );
        let case = |name: &str| {
            let open = format!("<testcase classname=\"(overall)\" name=\"resource: {name}\">");
            let at = xml.find(&open).unwrap_or_else(|| panic!("no {open}"));
            let rest = &xml[at + open.len()..];
            rest[..rest.find("</testcase>").unwrap()].to_owned()
        };
        let cpu = case("cpu per request");
        assert!(
            cpu.starts_with(
                "<failure message=\"cpu per request: 0.0021 → 0.0042 per request over 30 steps"
            ) && cpu.contains("type=\"resource\">resource metric: change +"),
            "{cpu}"
        );
        assert!(
            cpu.contains("baseline query: rate(cpu{track=&quot;stable&quot;,q=&quot;&lt;cpu per request&gt;&quot;}"),
            "queries escaped: {cpu}"
        );
        let rss = case("rss");
        assert!(rss.starts_with("<system-out>rss: "), "{rss}");
        let gc = case("gc pauses");
        assert!(
            gc.starts_with("<skipped message=\"only 0 step(s) with traffic on both targets, 6 needed (prometheus.min_steps)\"/><system-out>not judged: only 0"),
            "{gc}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 15);
        assert_eq!(xml.matches("</testcase>").count(), 15);
    }

    #[test]
    fn passing_run_has_no_failures_and_escapes_text() {
        let xml = render(&same_distributions().verdict());
        assert!(xml.contains("failures=\"0\""));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
