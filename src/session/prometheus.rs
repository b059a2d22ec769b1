//! Querying Prometheus for the judge file's resource metrics: a check before any traffic
//! (every query is sent once as an instant query, so a syntax error, an unknown placeholder,
//! an unreachable server or a query matching several series per target stops the command
//! before it sends anything), then the range queries over the window the traffic was sent
//! in, judged by [`crate::resource::judge`].
//!
//! Written on hyper rather than with a Prometheus client crate: the API nprt needs is two
//! POST endpoints answering JSON, and the crates for it (prometheus-http-query) bring reqwest,
//! a second HTTP stack with its own TLS settings beside [`crate::tls`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use super::Failure;
use crate::compare::stats::Correction;
use crate::resource::config::{Config, Metric, Token};
use crate::resource::judge::{self, ResourceResult, Side};
use crate::resource::promql::{self, Series, TargetLabels};
use crate::resource::Timeline;

/// The largest answer read; a range query of a day at 1 s steps is well below.
const ANSWER_LIMIT: usize = 64 << 20;

/// Prometheus refuses range queries of more than 11 000 points per series; longer windows
/// are asked in chunks of this many steps.
const MAX_POINTS: u64 = 10_000;

/// A Prometheus API client for one judge file's `[prometheus]` section.
pub struct Prometheus {
    config: Config,
    token: Option<String>,
    client: crate::tls::HttpsClient<Full<Bytes>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Prometheus {
    /// A client; reads the bearer token now, so a missing one is found before traffic.
    ///
    /// # Errors
    /// Exit 2 naming the token's variable or file; exit 4 when no TLS client can be made.
    pub fn new(config: Config) -> Result<Prometheus, Failure> {
        let token = match &config.token {
            Token::None => None,
            Token::Env(name) => Some(std::env::var(name).map_err(|_| {
                Failure::bad_input_msg(format!(
                    "prometheus.token_env: the variable {name} is not set"
                ))
            })?),
            Token::File(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        Failure::bad_input_msg(format!(
                            "prometheus.token_file: {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
        };
        let client = crate::tls::https_client(&crate::tls::ClientOptions {
            connect_timeout: Duration::from_millis(config.timeout_ms).min(Duration::from_secs(5)),
            idle_per_host: 2,
            ..Default::default()
        })
        .map_err(Failure::runtime)?;
        Ok(Prometheus {
            config,
            token,
            client,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// One POST to the API; the answer's body whatever its status (errors come as JSON).
    async fn post(&self, path: &str, form: &[(&str, String)]) -> Result<Vec<u8>, String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let url = format!("{}{path}", self.config.url);
        let mut request = hyper::Request::post(&url)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("nprt/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                format!(
                    "cannot reach {}: {}",
                    self.config.url,
                    crate::tls::error_chain(&e)
                )
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), ANSWER_LIMIT)
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            if status == hyper::StatusCode::UNAUTHORIZED || status == hyper::StatusCode::FORBIDDEN {
                return Err(format!(
                    "{} answered {status}: check prometheus.token_env or token_file",
                    self.config.url
                ));
            }
            Ok(body.to_vec())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} did not answer within {timeout:?} (prometheus.timeout)",
                self.config.url
            )),
        }
    }

    fn fill(&self, metric: &Metric, labels: &TargetLabels) -> Result<String, Failure> {
        promql::fill(&metric.query, labels, self.config.step_s).map_err(|e| {
            Failure::bad_input_msg(format!("prometheus metric \"{}\": {e}", metric.name))
        })
    }

    /// Sends every metric's query once for each target, as an instant query, before any
    /// traffic.
    ///
    /// # Errors
    /// Exit 2: an unknown placeholder, a query Prometheus cannot parse, one matching several
    /// series for a target. Exit 4: Prometheus unreachable or refusing for another reason.
    pub async fn preflight(&self, targets: &[TargetLabels; 2]) -> Result<(), Failure> {
        for metric in &self.config.metrics {
            for labels in targets {
                let query = self.fill(metric, labels)?;
                let named = |what: String| {
                    format!(
                        "prometheus metric \"{}\", target {}: {what} (query: {query})",
                        metric.name, labels.target
                    )
                };
                let body = self
                    .post("/api/v1/query", &[("query", query.clone())])
                    .await
                    .map_err(|e| Failure::runtime(anyhow::anyhow!(named(e))))?;
                match promql::count_series(&body) {
                    Ok(n) if n > 1 => {
                        return Err(Failure::bad_input_msg(named(format!(
                            "{n} series answer it; a query must match one series per target \
                             (add a label matcher with {{target}}, or aggregate with sum())"
                        ))))
                    }
                    Ok(_) => {}
                    Err(e) if e.is_bad_query() => {
                        return Err(Failure::bad_input_msg(named(e.to_string())))
                    }
                    Err(e) => return Err(Failure::runtime(anyhow::anyhow!(named(e.to_string())))),
                }
            }
        }
        Ok(())
    }

    /// One target's range query over `from..=to` (unix seconds, whole steps), in chunks
    /// of at most [`MAX_POINTS`] steps.
    async fn range(&self, query: &str, from: u64, to: u64) -> Result<Vec<Series>, String> {
        let step = self.config.step_s;
        let mut all: Vec<Series> = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start + step * (MAX_POINTS - 1));
            let body = self
                .post(
                    "/api/v1/query_range",
                    &[
                        ("query", query.to_owned()),
                        ("start", start.to_string()),
                        ("end", end.to_string()),
                        ("step", step.to_string()),
                    ],
                )
                .await?;
            let chunk = promql::parse_matrix(&body).map_err(|e| e.to_string())?;
            for series in chunk {
                match all.iter_mut().find(|s| s.labels == series.labels) {
                    Some(s) => s.samples.extend(series.samples),
                    None => all.push(series),
                }
            }
            start = end + step;
        }
        Ok(all)
    }

    /// Queries and judges every metric over the window the timeline covers, after waiting
    /// for the last steps to be scraped (`prometheus.settle`). Each problem with a metric
    /// (nothing answered, several series, Prometheus gone) makes that metric INCONCLUSIVE
    /// with the query named; the run's data are never lost to it.
    pub async fn judge(
        &self,
        targets: &[TargetLabels; 2],
        timeline: &Timeline,
        correction: Correction,
        alpha: f64,
    ) -> Vec<ResourceResult> {
        let step = self.config.step_s;
        let window = window(timeline, targets, step);
        if let Some((_, last)) = window {
            let ready = last as f64 + self.config.settle_ms as f64 / 1000.0;
            let wait = ready - unix_now();
            if wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
        }
        let mut results = Vec::new();
        for metric in &self.config.metrics {
            results.push(
                self.judge_metric(metric, targets, timeline, window, alpha)
                    .await,
            );
        }
        judge::decide_all(&mut results, correction, alpha);
        results
    }

    /// One metric: both range queries, then [`judge::judge`].
    pub async fn judge_metric(
        &self,
        metric: &Metric,
        targets: &[TargetLabels; 2],
        timeline: &Timeline,
        window: Option<(u64, u64)>,
        alpha: f64,
    ) -> ResourceResult {
        let queries = targets
            .clone()
            .map(|t| promql::fill(&metric.query, &t, self.config.step_s).unwrap_or_default());
        let unjudged = |reason: String| ResourceResult::unjudged(metric, queries.clone(), reason);
        let Some((first, last)) = window else {
            return unjudged(format!(
                "no answer of {} or {} carries a time (`at_ms`: observation files from older nprt lack it)",
                targets[0].target, targets[1].target
            ));
        };
        let mut samples: Vec<Vec<(f64, f64)>> = Vec::new();
        for (labels, query) in targets.iter().zip(&queries) {
            let series = match self.range(query, first, last).await {
                Ok(s) => s,
                Err(e) => return unjudged(format!("query `{query}` failed: {e}")),
            };
            match series.len() {
                0 => {
                    return unjudged(format!(
                        "query `{query}` returned no series for target {} (is it scraped?)",
                        labels.target
                    ))
                }
                1 => {}
                n => {
                    return unjudged(format!(
                        "query `{query}` returned {n} series for target {} ({}, …); it must \
                         return one per target",
                        labels.target,
                        series[0].label_text()
                    ))
                }
            }
            samples.push(
                series
                    .into_iter()
                    .next()
                    .map(|s| s.samples)
                    .unwrap_or_default(),
            );
        }
        let step = self.config.step_s;
        let counts = targets.clone().map(|t| {
            move |at: f64| {
                let end = at as u64;
                timeline.count(&t.target, end.saturating_sub(step), end)
            }
        });
        judge::judge(
            metric,
            queries.clone(),
            [
                Side {
                    samples: &samples[0],
                    requests: &counts[0],
                },
                Side {
                    samples: &samples[1],
                    requests: &counts[1],
                },
            ],
            step,
            self.config.min_steps,
            alpha,
        )
    }
}

/// The steps to query: from the first whole step after the first answer of either target
/// to the last step ending by the last answer (unix seconds), or `None` without answers.
pub fn window(timeline: &Timeline, targets: &[TargetLabels; 2], step: u64) -> Option<(u64, u64)> {
    let spans: Vec<(u64, u64)> = targets
        .iter()
        .filter_map(|t| timeline.span(&t.target))
        .collect();
    let first = spans.iter().map(|s| s.0).min()?;
    let last = spans.iter().map(|s| s.1).max()? + 1;
    let first_step = first + step;
    (first_step <= last).then(|| (first_step, first_step + (last - first_step) / step * step))
}

/// The resource judge of one run: the client, and the two targets' labels, checked before
/// the traffic ([`ResourceJudge::prepare`]) and applied to the verdict after it.
pub struct ResourceJudge {
    prometheus: Prometheus,
    targets: [TargetLabels; 2],
    correction: Correction,
    alpha: f64,
}

impl ResourceJudge {
    /// `None` when the judge file has no `[prometheus]`; otherwise the client, after every
    /// query was tried once. `labels` gives what nprt knows of a target by name (a deployed
    /// canary's version, track, namespace and workload).
    ///
    /// # Errors
    /// As [`Prometheus::preflight`].
    pub async fn prepare(
        options: &crate::compare::Options,
        labels: impl Fn(&str) -> TargetLabels,
    ) -> Result<Option<ResourceJudge>, Failure> {
        let Some(config) = &options.prometheus else {
            return Ok(None);
        };
        let prometheus = Prometheus::new(config.clone())?;
        let targets = [labels(&options.baseline), labels(&options.candidate)];
        prometheus.preflight(&targets).await?;
        Ok(Some(ResourceJudge {
            prometheus,
            targets,
            correction: options.correction,
            alpha: options.alpha,
        }))
    }

    pub fn config(&self) -> &Config {
        self.prometheus.config()
    }

    /// Queries and judges every metric over the whole run.
    pub async fn results(&self, timeline: &Timeline) -> Vec<ResourceResult> {
        self.prometheus
            .judge(&self.targets, timeline, self.correction, self.alpha)
            .await
    }

    /// [`ResourceJudge::results`] added to `verdict` (see
    /// [`Verdict::add_resources`](crate::compare::Verdict::add_resources)).
    pub async fn apply(&self, verdict: &mut crate::compare::Verdict, timeline: &Timeline) {
        verdict.add_resources(self.results(timeline).await);
    }

    /// A live look during a shadow or mirror run: every metric over the window so far (no
    /// settling wait: the steps not yet scraped are left out), at `alpha` — the caller
    /// spends its alpha over the looks. The first metric that fails, if any.
    pub async fn look(&self, timeline: &Timeline, alpha: f64) -> Option<ResourceResult> {
        let step = self.prometheus.config.step_s;
        let settle = self.prometheus.config.settle_ms.div_ceil(1000);
        let (first, last) = window(timeline, &self.targets, step)?;
        let ready = (unix_now() as u64).saturating_sub(settle);
        let last = last.min(first + ready.saturating_sub(first) / step * step);
        if last < first {
            return None;
        }
        let mut results = Vec::new();
        for metric in &self.prometheus.config.metrics {
            let r = self
                .prometheus
                .judge_metric(metric, &self.targets, timeline, Some((first, last)), alpha)
                .await;
            results.push(r);
        }
        judge::decide_all(&mut results, self.correction, alpha);
        results
            .into_iter()
            .find(|r| r.outcome == crate::compare::Outcome::Fail)
    }
}

/// What nprt knows of a target from its name alone.
pub fn named(target: &str) -> TargetLabels {
    TargetLabels {
        target: target.to_owned(),
        ..TargetLabels::default()
    }
}
