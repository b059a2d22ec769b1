//! From statistics to a [`Verdict`]: [`Comparison::verdict`] in named steps.
//!
//! 1. halves still waiting for a partner are counted as unpaired, per route;
//! 2. the routes are put in report order (by name, `(other)` last);
//! 3. every check of every route and overall is made, then all their p-values are adjusted
//!    together (so the significance level holds across routes × metrics);
//! 4. each route's checks become findings (`findings`), the overall ones skip status codes a
//!    route already reported;
//! 5. the notes say what was left out or could not be judged (`notes`);
//! 6. any failing finding fails the run; without enough requests overall it is inconclusive.

use std::collections::{BTreeMap, BTreeSet};

use super::checks::{self, Check};
use super::comparison::Pair;
use super::findings::{adjust_all, discount_noise, findings_of, sequential_finding};
use super::notes::{sequential_report, too_few};
use super::paired::Side;
use super::rules::{Finding, Severity};
use super::{
    Comparison, Options, Outcome, Overall, RouteReport, Thresholds, Verdict, OTHER_ROUTE,
    OVERALL_ROUTE, SCHEMA,
};

/// Unpaired halves still waiting, per route and in total, as (baseline, candidate).
type Waiting<'a> = (BTreeMap<&'a str, (u64, u64)>, (u64, u64));

impl Comparison {
    /// Judges what has been fed so far.
    pub fn verdict(&self) -> Verdict {
        let opts = &self.options;
        let mut notes = Vec::new();
        let (waiting, waiting_total) = self.waiting();
        let ordered = self.ordered_routes();

        // Every check of the run first, so that p-values are adjusted over all of them.
        let route_opts: Vec<Options> = ordered.iter().map(|(r, _)| opts.for_route(r)).collect();
        let mut route_checks: Vec<Vec<Check>> = ordered
            .iter()
            .zip(&route_opts)
            .map(|((_, pair), ropts)| judged_checks(pair, ropts))
            .collect();
        let overall_judged = self.overall.enough(opts.min_requests);
        let mut overall_checks = judged_checks(&self.overall, opts);
        adjust_all(
            route_checks
                .iter_mut()
                .flatten()
                .chain(overall_checks.iter_mut()),
            opts,
        );

        let mut findings = Vec::new();
        let mut reported_status = BTreeSet::new();
        let routes: Vec<RouteReport> = ordered
            .into_iter()
            .zip(route_checks)
            .zip(&route_opts)
            .map(|(((route, pair), checks), ropts)| {
                let extra = waiting.get(route.as_str()).copied().unwrap_or_default();
                let report = self.route_report(route, pair, checks, ropts, extra, &mut notes);
                reported_status.extend(report.findings.iter().filter_map(|f| f.status));
                findings.extend(report.findings.iter().cloned());
                report
            })
            .collect();
        if self.routes.contains_key(OTHER_ROUTE) {
            notes.push(format!(
                "routes beyond the first {} are counted together as {OTHER_ROUTE}",
                opts.max_routes
            ));
        }

        if overall_judged {
            let skip: Vec<u16> = reported_status.into_iter().collect();
            findings.extend(findings_of(
                OVERALL_ROUTE,
                &self.overall.baseline,
                &self.overall.candidate,
                &overall_checks,
                opts,
                &skip,
            ));
        } else {
            notes.push(too_few("overall", &self.overall, opts.min_requests));
        }
        let overall_paired = self.overall.paired.summary(waiting_total);
        let sequential = self.sequential.as_ref().map(sequential_report);
        notes.extend(self.run_notes(&overall_paired, sequential.as_ref()));
        if let (Some(s), Some(o)) = (&sequential, &opts.sequential) {
            findings.extend(sequential_finding(s, o));
        }

        let histograms = opts.include_histograms;
        Verdict {
            schema: SCHEMA.to_owned(),
            outcome: outcome(&findings, overall_judged),
            baseline: opts.baseline.clone(),
            candidate: opts.candidate.clone(),
            thresholds: thresholds(opts),
            overall: Overall {
                baseline: self.overall.baseline.summary(histograms),
                candidate: self.overall.candidate.summary(histograms),
                paired: overall_paired,
                checks: overall_checks,
            },
            routes,
            findings,
            notes,
            ignored: self.ignored,
            include_histograms: histograms,
            sequential,
            resources: Vec::new(),
        }
    }

    /// Halves still waiting count as unpaired on their route (and overall).
    fn waiting(&self) -> Waiting<'_> {
        let mut waiting: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut waiting_total = (0u64, 0u64);
        for (_, side, half) in self.pairer.waiting() {
            let route = if self.routes.contains_key(&*half.route) {
                &*half.route
            } else {
                OTHER_ROUTE
            };
            let slot = waiting.entry(route).or_default();
            match side {
                Side::Baseline => {
                    slot.0 += 1;
                    waiting_total.0 += 1;
                }
                Side::Candidate => {
                    slot.1 += 1;
                    waiting_total.1 += 1;
                }
            }
        }
        (waiting, waiting_total)
    }

    /// The routes in report order: (other) goes last, after the real routes in name order.
    fn ordered_routes(&self) -> Vec<(&String, &Pair)> {
        self.routes
            .iter()
            .filter(|(r, _)| r.as_str() != OTHER_ROUTE)
            .chain(self.routes.get_key_value(OTHER_ROUTE))
            .collect()
    }

    /// One route's report, its checks already decided; a route with too few requests gets a
    /// note instead of findings.
    fn route_report(
        &self,
        route: &str,
        pair: &Pair,
        checks: Vec<Check>,
        ropts: &Options,
        waiting: (u64, u64),
        notes: &mut Vec<String>,
    ) -> RouteReport {
        let histograms = self.options.include_histograms;
        let judged = pair.enough(ropts.min_requests);
        let findings = if judged {
            findings_of(route, &pair.baseline, &pair.candidate, &checks, ropts, &[])
        } else {
            notes.push(too_few(route, pair, ropts.min_requests));
            Vec::new()
        };
        RouteReport {
            route: route.to_owned(),
            judged,
            baseline: pair.baseline.summary(histograms),
            candidate: pair.candidate.summary(histograms),
            paired: pair.paired.summary(waiting),
            checks,
            findings,
        }
    }
}

/// The checks of `pair` with the noise discounted, none when either target has too few
/// requests to judge.
fn judged_checks(pair: &Pair, opts: &Options) -> Vec<Check> {
    if !pair.enough(opts.min_requests) {
        return Vec::new();
    }
    let mut checks = checks::checks(&pair.baseline, &pair.candidate, &pair.paired, opts);
    discount_noise(&mut checks, pair, opts);
    checks
}

/// Any failing finding fails the run; otherwise too few requests overall leave it undecided.
fn outcome(findings: &[Finding], overall_judged: bool) -> Outcome {
    if findings.iter().any(|f| f.severity == Severity::Fail) {
        Outcome::Fail
    } else if !overall_judged {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    }
}

/// The general thresholds, as the report shows them.
fn thresholds(opts: &Options) -> Thresholds {
    Thresholds {
        min_requests: opts.min_requests,
        p99_relative: opts.p99_relative,
        p99_absolute_ms: opts.p99_absolute_ms,
        error_rate_margin: opts.error_rate_margin,
        shift_relative: opts.shift_relative,
        shift_absolute_ms: opts.shift_absolute_ms,
        distribution_share: opts.distribution_share,
        alpha: opts.alpha,
        correction: opts.correction,
        warmup: opts.warmup,
        routes: opts.routes.clone(),
    }
}
