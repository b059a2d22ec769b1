//! The routes of a verdict in the order a reader needs them: failing first, then the ones too
//! thin to judge, then the passing ones, the overall row last. A report that lists routes
//! alphabetically puts the one failing route after pages of passing ones.

use std::collections::HashSet;

use crate::compare::{CheckOutcome, Metric, Outcome, Section, Severity, Verdict, OVERALL_ROUTE};

/// One route (or the overall row) with what the overview shows of it.
#[derive(Debug, Clone)]
pub struct RouteRow<'a> {
    pub section: Section<'a>,
    /// Fail when a finding (or a check without one) failed here; inconclusive when it was not
    /// judged or its failed checks were not held against the candidate.
    pub outcome: Outcome,
    /// The metrics that failed here, in check order, each once.
    pub failed: Vec<Metric>,
    /// Checks over their limit but not significant after adjustment.
    pub not_significant: usize,
    /// Failed checks whose findings were demoted to information, so not held against the
    /// candidate (nprt saturated in a live run); they make the route inconclusive.
    pub held_back: usize,
    /// A unique HTML id for the route's section.
    pub anchor: String,
}

impl RouteRow<'_> {
    pub fn is_overall(&self) -> bool {
        self.section.route == OVERALL_ROUTE
    }
}

/// Every section of `v`, failing routes first, then inconclusive, then passing, each group in
/// report order; the overall section last.
pub fn ordered(v: &Verdict) -> Vec<RouteRow<'_>> {
    let mut used = HashSet::new();
    let mut rows: Vec<RouteRow<'_>> = v
        .sections()
        .map(|section| row(v, section, &mut used))
        .collect();
    let rank = |r: &RouteRow<'_>| {
        let group = match r.outcome {
            Outcome::Fail => 0,
            Outcome::Inconclusive => 1,
            Outcome::Pass => 2,
        };
        (r.is_overall(), group)
    };
    // A stable sort keeps the report order inside each group.
    rows.sort_by_key(rank);
    rows
}

fn row<'a>(v: &'a Verdict, section: Section<'a>, used: &mut HashSet<String>) -> RouteRow<'a> {
    let findings: Vec<_> = v
        .findings
        .iter()
        .filter(|f| f.route == section.route)
        .collect();
    let failing_finding = |m: Metric| {
        findings
            .iter()
            .any(|f| f.metric == m && f.severity == Severity::Fail)
    };
    let mut failed = Vec::new();
    let mut held_back = 0;
    for c in section.checks {
        if c.outcome != CheckOutcome::Fail || failed.contains(&c.metric) {
            continue;
        }
        // A failed check whose finding was demoted to information (a live run where nprt
        // itself was saturated) is not held against the candidate: the verdict says why.
        if failing_finding(c.metric) || !findings.iter().any(|f| f.metric == c.metric) {
            failed.push(c.metric);
        } else {
            held_back += 1;
        }
    }
    // Findings without a check (the sequential judge's) fail a route too.
    for f in &findings {
        if f.severity == Severity::Fail && !failed.contains(&f.metric) {
            failed.push(f.metric);
        }
    }
    let outcome = if !failed.is_empty() {
        Outcome::Fail
    } else if !section.judged || held_back > 0 {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    let not_significant = section
        .checks
        .iter()
        .filter(|c| c.outcome == CheckOutcome::NotSignificant)
        .count();
    RouteRow {
        anchor: anchor(section.route, used),
        section,
        outcome,
        failed,
        held_back,
        not_significant,
    }
}

/// "route-get-api-products-id" from "GET /api/products/:id", unique among `used`: letters and
/// digits kept (lower case), every other run of characters one dash.
fn anchor(route: &str, used: &mut HashSet<String>) -> String {
    slug("route", route, used)
}

/// `prefix`, a dash and the words of `text` as [`anchor`] makes them, unique among `used`
/// (the resource metrics' sections use it too, under their own prefix).
pub fn slug(prefix: &str, text: &str, used: &mut HashSet<String>) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let slug = if words.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}-{}", words.join("-"))
    };
    let mut candidate = slug.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{slug}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::{p99_regression, same_distributions};

    #[test]
    fn failing_routes_come_first_and_overall_last() {
        let v = p99_regression().verdict();
        let rows = ordered(&v);
        let routes: Vec<&str> = rows.iter().map(|r| r.section.route).collect();
        assert_eq!(routes, ["GET /search", "GET /users/:id", OVERALL_ROUTE]);
        assert_eq!(rows[0].outcome, Outcome::Fail);
        assert!(rows[0].failed.contains(&Metric::P99Latency));
        assert_eq!(rows[1].outcome, Outcome::Pass);
        assert!(rows[1].failed.is_empty());
        let pass = same_distributions().verdict();
        assert!(ordered(&pass).iter().all(|r| r.outcome == Outcome::Pass));
    }

    #[test]
    fn demoted_findings_make_a_route_inconclusive_not_failing() {
        let mut v = p99_regression().verdict();
        for f in &mut v.findings {
            f.severity = Severity::Info;
        }
        let rows = ordered(&v);
        assert_eq!(rows[0].section.route, "GET /search");
        assert_eq!(rows[0].outcome, Outcome::Inconclusive);
        assert!(rows[0].failed.is_empty() && rows[0].held_back > 0);
    }

    #[test]
    fn anchors_are_readable_and_unique() {
        let mut used = HashSet::new();
        assert_eq!(
            anchor("GET /api/products/:id", &mut used),
            "route-get-api-products-id"
        );
        assert_eq!(
            anchor("GET /api/products/{id}", &mut used),
            "route-get-api-products-id-2"
        );
        assert_eq!(anchor("(overall)", &mut used), "route-overall");
        assert_eq!(anchor("", &mut used), "route");
    }
}
