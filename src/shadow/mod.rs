//! Mirroring without user exposure: the inline tee proxy ([`proxy`]) and the passive mirror
//! ([`passive`]). Both send a copy of live traffic to the shadow (the isolated canary), compare
//! every shadow response with the primary's for the same request in a live [`judge`], and
//! never let the shadow touch what users get.
//!
//! ```text
//!  client ─► proxy ─► primary ─► response ─► client          (the users' path, streaming)
//!              └─ copy ─► bounded queue ─► sender ─► shadow  (off the path; drops counted)
//!  primary's and shadow's observations ─► judge (sequential) ─► reports, metrics, on-fail
//! ```

pub mod breaker;
pub mod forward;
pub mod judge;
pub mod metrics;
pub mod passive;
pub mod proxy;
pub mod sender;
pub mod speaks;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

pub use breaker::BreakerSettings;
pub use forward::{MirrorPolicy, Skip, SHADOW_HEADER};
pub use judge::{JudgeOutcome, JudgeSettings, OnFail};
pub use metrics::{Metrics, Totals};
pub use proxy::ConnectionLimits;
pub use sender::ShadowTarget;

/// The target name of the primary (stable) in observations and reports.
pub const PRIMARY: &str = "primary";
/// The target name of the shadow (canary) in observations and reports.
pub const SHADOW: &str = "shadow";
/// The target name of the shadow's baseline copy (a fresh stable beside the canary).
pub const SHADOW_BASELINE: &str = "shadow-baseline";

/// A pooled HTTP/1.1 or HTTP/2 client (https too) with its own connections.
pub type Client<B> = crate::tls::HttpsClient<B>;

/// Makes a client ([`crate::tls::https_client`]) whose pool keeps up to `idle_per_host` idle
/// connections; connecting gives up after 5 s, so a dead shadow shows as errors quickly.
///
/// # Errors
/// When the extra CA file cannot be read.
pub fn client<B>(
    extra_ca: Option<&std::path::Path>,
    idle_per_host: usize,
) -> Result<Client<B>, crate::tls::TlsError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    client_with(extra_ca, idle_per_host, false)
}

/// [`client`], speaking HTTP/2 only when `http2_only` (for requests that came over HTTP/2,
/// gRPC's among them: a gRPC server refuses HTTP/1.1).
///
/// # Errors
/// When the extra CA file cannot be read.
pub fn client_with<B>(
    extra_ca: Option<&std::path::Path>,
    idle_per_host: usize,
    http2_only: bool,
) -> Result<Client<B>, crate::tls::TlsError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    crate::tls::https_client(&crate::tls::ClientOptions {
        extra_ca: extra_ca.map(std::path::Path::to_path_buf),
        connect_timeout: Duration::from_secs(5),
        idle_per_host,
        idle_timeout: Duration::from_secs(60),
        http2_only,
    })
}

/// `base` (scheme, authority, optional path prefix) joined with a request's path and query.
///
/// # Errors
/// When the result is not a valid URI.
pub fn join(base: &hyper::Uri, path_and_query: &str) -> Result<hyper::Uri, String> {
    let prefix = base.path().trim_end_matches('/');
    let rest = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        format!("{prefix}{rest}")
            .parse()
            .map_err(|e| format!("`{path_and_query}`: {e}"))?,
    );
    hyper::Uri::from_parts(parts).map_err(|e| format!("`{path_and_query}`: {e}"))
}

/// Checks that a URL is an absolute http(s) URL.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_url(text: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "`{text}`: scheme {other} is not supported (http or https)"
            ))
        }
        None => return Err(format!("`{text}`: give the scheme, e.g. http://{text}")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{text}`: no host"));
    }
    Ok(uri)
}

/// Checks a base URL (of the primary or the shadow): an absolute http(s) URL without a query.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_base(text: &str) -> Result<hyper::Uri, String> {
    let uri = parse_url(text)?;
    if uri.query().is_some() {
        return Err(format!("`{text}`: a base URL has no query"));
    }
    Ok(uri)
}

/// The comparison options of a live run, from the configured ones (baseline: the primary,
/// candidate: the shadow). The sequential judge decides a live run, at the comparison's alpha
/// unless it was set up already. With a baseline copy (its target name given), the shadow is
/// judged against that copy and the primary becomes the noise target: a difference that also
/// shows between the two stables is not the canary's.
pub fn live_options(
    mut options: crate::compare::Options,
    baseline_copy: Option<&str>,
) -> crate::compare::Options {
    if options.sequential.is_none() {
        options.sequential = Some(crate::compare::sequential::SequentialOptions {
            alpha: options.alpha,
            ..Default::default()
        });
    }
    if let Some(copy) = baseline_copy {
        options.noise = Some(std::mem::replace(&mut options.baseline, copy.to_owned()));
    }
    options
}

/// Describes a client error by its root cause ("connect: Connection refused").
pub(crate) fn describe_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() { "connect" } else { "request" }.to_owned();
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(root) = last {
        text.push_str(": ");
        text.push_str(&root);
    }
    text
}

/// The shadow side and the judge, shared by the proxy and the passive mirror.
pub struct Mirroring {
    /// The primary's target name in observations and reports (the shadow's is in `target`).
    pub primary_name: String,
    pub target: ShadowTarget,
    pub policy: MirrorPolicy,
    pub extra_ca: Option<std::path::PathBuf>,
    pub judge: JudgeSettings,
}

/// Everything started for one run: the judge, the shadow's sender and the metrics.
struct Running {
    primary_name: String,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
    judge: judge::JudgeHandle,
    judge_task: tokio::task::JoinHandle<JudgeOutcome>,
    sender: sender::Sender,
    sender_task: tokio::task::JoinHandle<()>,
    /// The canary and the baseline copy: copies of requests that came over HTTP/2 go over
    /// HTTP/2 when they speak it.
    shadows: speaks::Servers,
}

impl Running {
    fn start(
        m: Mirroring,
        metrics: Arc<Metrics>,
    ) -> Result<(Running, MirrorPolicy), crate::tls::TlsError> {
        let stopped = Arc::new(AtomicBool::new(false));
        let shadows = speaks::Servers::new(
            std::iter::once(&m.target.canary.base)
                .chain(m.target.baseline.as_ref().map(|b| &b.base)),
            m.extra_ca.as_deref(),
        )?;
        let shadow_client = sender::Clients {
            http1: client(m.extra_ca.as_deref(), m.target.concurrency)?,
            http2: client_with(m.extra_ca.as_deref(), 4, true)?,
        };
        let (judge, judge_task) = judge::start(m.judge, Arc::clone(&metrics), Arc::clone(&stopped));
        let (sender, sender_task) = sender::start(
            m.target,
            shadow_client,
            judge.clone(),
            Arc::clone(&metrics),
            Arc::clone(&stopped),
        );
        Ok((
            Running {
                primary_name: m.primary_name,
                metrics,
                stopped,
                judge,
                judge_task,
                sender,
                sender_task,
                shadows,
            },
            m.policy,
        ))
    }

    /// Stops mirroring, lets the shadow's requests in flight finish, and takes the verdict.
    ///
    /// # Errors
    /// When the judge task died (a bug): the clients were served all along, but there is no
    /// verdict.
    async fn finish(self) -> anyhow::Result<JudgeOutcome> {
        let Running {
            stopped,
            judge,
            judge_task,
            sender,
            sender_task,
            ..
        } = self;
        stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(sender);
        let _ = sender_task.await;
        drop(judge);
        judge_task
            .await
            .map_err(|e| anyhow::anyhow!("the live judge failed, no verdict: {e}"))
    }
}

/// The end of a shadow or mirror run.
pub struct RunOutcome {
    pub judge: JudgeOutcome,
    pub totals: Totals,
}

/// Runs the tee proxy on `listener` in front of `primary` until `shutdown` resolves.
///
/// # Errors
/// When the TLS settings cannot be read or accepting connections fails.
pub async fn run_proxy(
    listener: tokio::net::TcpListener,
    primary: hyper::Uri,
    mirroring: Mirroring,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<RunOutcome> {
    let primary_client = client(mirroring.extra_ca.as_deref(), 1024)?;
    // One HTTP/2 connection carries many streams: a few per host are plenty.
    let primary_h2 = client_with(mirroring.extra_ca.as_deref(), 4, true)?;
    let primary_speaks = speaks::Servers::new([&primary], mirroring.extra_ca.as_deref())?;
    let (running, policy) = Running::start(mirroring, Arc::clone(&metrics))?;
    // Known before the first request, so that it goes the right way.
    tokio::join!(primary_speaks.probe(), running.shadows.probe());
    let proxy = Arc::new(proxy::Proxy {
        primary,
        primary_name: running.primary_name.clone(),
        client: primary_client,
        client_h2: primary_h2,
        primary_speaks,
        shadows: running.shadows.clone(),
        policy,
        sender: running.sender.clone(),
        judge: running.judge.clone(),
        metrics: Arc::clone(&running.metrics),
        stopped: Arc::clone(&running.stopped),
        next_id: AtomicU64::new(1),
    });
    let served = proxy::serve(listener, Arc::clone(&proxy), limits, shutdown).await;
    // Handlers of cut-off connections may still hold the proxy; its senders go with them.
    drop(proxy);
    let judge = running.finish().await?;
    served?;
    Ok(RunOutcome {
        totals: metrics.totals(),
        judge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_join_paths_and_explain_mistakes() {
        let b = parse_base("http://127.0.0.1:8080").unwrap();
        assert_eq!(join(&b, "/a?x=1").unwrap(), "http://127.0.0.1:8080/a?x=1");
        let p = parse_base("https://canary.internal/v2/").unwrap();
        assert_eq!(join(&p, "/a").unwrap(), "https://canary.internal/v2/a");
        assert!(parse_base("127.0.0.1:80").unwrap_err().contains("scheme"));
        assert!(parse_base("ftp://x").unwrap_err().contains("not supported"));
        assert!(parse_base("http://x/?a=1").unwrap_err().contains("query"));
    }

    #[test]
    fn a_live_run_is_judged_sequentially_and_against_its_baseline_copy() {
        let plain = live_options(crate::compare::Options::new(PRIMARY, SHADOW), None);
        assert_eq!((plain.baseline.as_str(), plain.noise), (PRIMARY, None));
        assert_eq!(
            plain.sequential.as_ref().map(|s| s.alpha),
            Some(plain.alpha)
        );
        let copy = live_options(
            crate::compare::Options::new(PRIMARY, SHADOW),
            Some(SHADOW_BASELINE),
        );
        assert_eq!(copy.baseline, SHADOW_BASELINE);
        assert_eq!(copy.candidate, SHADOW);
        assert_eq!(copy.noise.as_deref(), Some(PRIMARY));
    }
}
