//! What to compare and how strict to be: the [`Options`] a [`Comparison`](super::Comparison)
//! is built with, per-route [`RouteOverride`]s, and the checks that refuse options which
//! cannot be used ([`OptionsError`]).

use serde::{Deserialize, Serialize};

use super::sequential;
use super::stats::Correction;

/// What to compare and how strict to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Target name of the stable version.
    pub baseline: String,
    /// Target name of the version under test.
    pub candidate: String,
    /// Requests each target needs on a route (or overall) before it is judged.
    pub min_requests: u64,
    /// Allowed relative p99 increase (0.20 = +20%)...
    pub p99_relative: f64,
    /// ...and allowed absolute p99 increase, in ms; a p99 fails only above both.
    pub p99_absolute_ms: f64,
    /// Allowed increase of the 5xx-or-no-response rate, as a fraction (0.01 = one point).
    pub error_rate_margin: f64,
    /// Distinct routes kept; later routes are folded into [`OTHER_ROUTE`](super::OTHER_ROUTE).
    pub max_routes: usize,
    /// Put each target's encoded histogram into the summaries (large, but mergeable).
    pub include_histograms: bool,
    /// Significance level of every check, after adjustment across routes × metrics.
    pub alpha: f64,
    /// How p-values are adjusted across routes × metrics.
    pub correction: Correction,
    /// Allowed paired median shift, relative to the baseline median (0.10 = +10%)...
    pub shift_relative: f64,
    /// ...and absolute, in ms; the shift fails only above both.
    pub shift_absolute_ms: f64,
    /// Allowed share of requests slower than the p99 allowance (0.05 = 5%).
    pub distribution_share: f64,
    /// Observations waiting for their partner (same id, other target) at most; beyond, the
    /// oldest is counted as unpaired.
    pub max_pending: usize,
    /// Paired latencies sampled per route (uniform reservoir) for the rank tests and bootstrap.
    pub reservoir: usize,
    /// Bootstrap resamples for the p99 interval.
    pub bootstrap_resamples: usize,
    /// The first this many observations of each target are left out (warm-up), and so are
    /// their partners.
    pub warmup: u64,
    /// Thresholds for routes matching a pattern; the first match wins.
    pub routes: Vec<RouteOverride>,
    /// A second stable target: differences that also show between baseline and noise are
    /// discounted (Diffy's rule).
    pub noise: Option<String>,
    /// With noise, a candidate effect must exceed the noise effect by this share too
    /// (0.20 = 20% more than baseline-vs-noise), besides the metric's own limit.
    pub noise_relative: f64,
    /// Also run the anytime-valid sequential judge over the pairs, in the order they form.
    /// It is not merged: after [`Comparison::merge`](super::Comparison::merge) it has seen the
    /// pairs formed here only.
    pub sequential: Option<sequential::SequentialOptions>,
    /// Resource metrics to query from Prometheus after the run (the judge file's
    /// `[prometheus]`); judged by the session layer, which does the I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<crate::resource::Config>,
}

/// Thresholds for the routes that match `pattern`; unset fields keep the general value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteOverride {
    /// `*` matches any run of characters. A pattern starting with `/` is matched against the
    /// route's path, otherwise against the whole route key ("GET /api/items/:id").
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_absolute_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_absolute_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_share: Option<f64>,
}

impl RouteOverride {
    pub fn matches(&self, route: &str) -> bool {
        let subject = if self.pattern.starts_with('/') {
            route.split_once(' ').map_or(route, |(_, path)| path)
        } else {
            route
        };
        glob(&self.pattern, subject)
    }
}

/// `*` matches any run of characters, everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*` at all
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Options {
    /// The default thresholds for comparing `candidate` against `baseline`.
    pub fn new(baseline: impl Into<String>, candidate: impl Into<String>) -> Options {
        Options {
            baseline: baseline.into(),
            candidate: candidate.into(),
            min_requests: 20,
            p99_relative: 0.20,
            p99_absolute_ms: 5.0,
            error_rate_margin: 0.01,
            max_routes: 1000,
            include_histograms: false,
            alpha: 0.05,
            correction: Correction::Holm,
            shift_relative: 0.10,
            shift_absolute_ms: 2.0,
            distribution_share: 0.05,
            max_pending: 100_000,
            reservoir: 10_000,
            bootstrap_resamples: 200,
            warmup: 0,
            routes: Vec::new(),
            noise: None,
            noise_relative: 0.20,
            sequential: None,
            prometheus: None,
        }
    }

    /// The options for one route: the first matching override applied.
    pub fn for_route(&self, route: &str) -> Options {
        let mut o = Options {
            routes: Vec::new(),
            ..self.clone()
        };
        if let Some(r) = self.routes.iter().find(|r| r.matches(route)) {
            o.min_requests = r.min_requests.unwrap_or(o.min_requests);
            o.error_rate_margin = r.error_rate_margin.unwrap_or(o.error_rate_margin);
            o.p99_relative = r.p99_relative.unwrap_or(o.p99_relative);
            o.p99_absolute_ms = r.p99_absolute_ms.unwrap_or(o.p99_absolute_ms);
            o.shift_relative = r.shift_relative.unwrap_or(o.shift_relative);
            o.shift_absolute_ms = r.shift_absolute_ms.unwrap_or(o.shift_absolute_ms);
            o.distribution_share = r.distribution_share.unwrap_or(o.distribution_share);
        }
        o
    }

    /// Checks what the types cannot.
    ///
    /// # Errors
    /// [`OptionsError`] naming the offending option.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.baseline.is_empty() || self.candidate.is_empty() {
            return Err(OptionsError::EmptyTarget);
        }
        if self.baseline == self.candidate {
            return Err(OptionsError::SameTarget(self.baseline.clone()));
        }
        if let Some(noise) = &self.noise {
            if noise.is_empty() || *noise == self.baseline || *noise == self.candidate {
                return Err(OptionsError::Noise(noise.clone()));
            }
        }
        for (name, value) in [
            ("p99 relative", self.p99_relative),
            ("p99 absolute ms", self.p99_absolute_ms),
            ("error rate margin", self.error_rate_margin),
            ("shift relative", self.shift_relative),
            ("shift absolute ms", self.shift_absolute_ms),
            ("distribution share", self.distribution_share),
            ("noise relative", self.noise_relative),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(OptionsError::Threshold { name, value });
            }
        }
        if self.max_routes == 0 {
            return Err(OptionsError::NoRoutes);
        }
        // Memory and time grow with these: a judge file must not ask for the impossible.
        for (name, value, max) in [
            ("max_routes", self.max_routes, 100_000),
            ("reservoir", self.reservoir, 1_000_000),
            ("bootstrap_resamples", self.bootstrap_resamples, 100_000),
            ("max_pending", self.max_pending, 10_000_000),
        ] {
            if value > max {
                return Err(OptionsError::TooLarge { name, value, max });
            }
        }
        for r in &self.routes {
            for (name, value) in [
                ("route error rate margin", r.error_rate_margin),
                ("route p99 relative", r.p99_relative),
                ("route p99 absolute ms", r.p99_absolute_ms),
                ("route shift relative", r.shift_relative),
                ("route shift absolute ms", r.shift_absolute_ms),
                ("route distribution share", r.distribution_share),
            ] {
                if let Some(value) = value {
                    if !value.is_finite() || value < 0.0 {
                        return Err(OptionsError::Threshold { name, value });
                    }
                }
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(OptionsError::Alpha(self.alpha));
        }
        if let Some(s) = &self.sequential {
            if !(s.alpha > 0.0 && s.alpha < 1.0) {
                return Err(OptionsError::Alpha(s.alpha));
            }
        }
        for (name, value) in [
            ("max pending", self.max_pending),
            ("reservoir", self.reservoir),
            ("bootstrap resamples", self.bootstrap_resamples),
        ] {
            if value == 0 {
                return Err(OptionsError::Zero(name));
            }
        }
        Ok(())
    }
}

/// Options that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionsError {
    #[error("baseline and candidate target names must not be empty")]
    EmptyTarget,
    #[error("baseline and candidate are both {0:?}; compare two different targets")]
    SameTarget(String),
    #[error("{name} threshold must be a finite number ≥ 0, got {value}")]
    Threshold { name: &'static str, value: f64 },
    #[error("max routes must be at least 1")]
    NoRoutes,
    #[error("alpha must be between 0 and 1 (exclusive), got {0}")]
    Alpha(f64),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("{name} is {value}, more than the most allowed ({max})")]
    TooLarge {
        name: &'static str,
        value: usize,
        max: usize,
    },
    #[error("the noise target {0:?} must be a third target, neither baseline nor candidate")]
    Noise(String),
}
