//! The passive mirror: nothing sits in the users' path. Live capture (see [`crate::capture`])
//! yields each exchange with the stable service's own response; the request is sent to the
//! shadow, and the shadow's answer is judged against the captured one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use super::forward::{strip_hop_by_hop, MirrorPolicy, Skip};
use super::judge::JudgeHandle;
use super::metrics::Metrics;
use super::sender::{MirrorJob, Sender};
use super::{Mirroring, RunOutcome, Running};
use crate::capture::live::LiveOptions;
use crate::capture::{CaptureStats, CapturedExchange, Limits};
use crate::observation::Observation;

/// What the passive mirror ended with.
pub struct MirrorOutcome {
    pub run: RunOutcome,
    pub capture: CaptureStats,
}

/// Captures on `live.interface` for `ports` and mirrors to the shadow until `shutdown`
/// resolves, the capture's duration passes, or the judge fails the shadow.
///
/// # Errors
/// When the TLS settings cannot be read, or the capture cannot start or fails.
pub async fn run_mirror(
    live: LiveOptions,
    ports: Vec<u16>,
    limits: Limits,
    mirroring: Mirroring,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<MirrorOutcome> {
    // An interface that cannot be opened (no such device, no CAP_NET_RAW) is said before the
    // judge starts, so no empty verdict is printed before the error.
    drop(crate::capture::live::PacketSocket::open(&live.interface)?);
    let (running, policy) = Running::start(mirroring, Arc::clone(&metrics))?;
    let stop = Arc::new(AtomicBool::new(false));
    let feed = Feed {
        primary_name: running.primary_name.clone(),
        policy,
        sender: running.sender.clone(),
        judge: running.judge.clone(),
        metrics: Arc::clone(&metrics),
        stopped: Arc::clone(&running.stopped),
        shadows: running.shadows.clone(),
    };
    // Known before the first copy, so that it goes the right way.
    running.shadows.probe().await;
    let capture_stop = Arc::clone(&stop);
    let mut capture = tokio::task::spawn_blocking(move || {
        crate::capture::live::watch(&live, &ports, limits, &capture_stop, |ex| feed.offer(&ex))
    });
    let stopped = Arc::clone(&running.stopped);
    let failed = async move {
        while !stopped.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let early = tokio::select! {
        r = &mut capture => Some(r),
        () = shutdown => None,
        () = failed => None,
    };
    stop.store(true, Ordering::SeqCst);
    let captured = match early {
        Some(r) => r,
        None => capture.await,
    };
    let judge = running.finish().await?;
    let capture = captured??;
    Ok(MirrorOutcome {
        run: RunOutcome {
            judge,
            totals: metrics.totals(),
        },
        capture,
    })
}

/// Turns captured exchanges into mirror jobs and the primary's observations.
struct Feed {
    primary_name: String,
    policy: MirrorPolicy,
    sender: Sender,
    judge: JudgeHandle,
    metrics: Arc<Metrics>,
    stopped: Arc<AtomicBool>,
    shadows: super::speaks::Servers,
}

impl Feed {
    fn offer(&self, captured: &CapturedExchange) {
        self.metrics.request();
        match self.prepare(captured) {
            Ok((job, primary)) => {
                if self.sender.offer(job) {
                    self.judge.send(primary);
                }
            }
            Err(reason) => self.metrics.skipped(reason),
        }
    }

    fn prepare(&self, captured: &CapturedExchange) -> Result<(MirrorJob, Observation), Skip> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(Skip::Stopped);
        }
        let exchange = &captured.exchange;
        let Some(response) = &exchange.response else {
            return Err(Skip::Unanswered);
        };
        if captured.request_truncated || captured.response_truncated {
            return Err(Skip::Truncated);
        }
        self.sender.accepting()?;
        let head = &exchange.request_head;
        let mut headers = header_map(head);
        // Captured over HTTP/2: the copy goes over HTTP/2 (without the marker) when the
        // canary speaks it, a gRPC call's always, as the shadow proxy sends them.
        let came_http2 = crate::recording::recorded_over_http2(head);
        let te_trailers = crate::http::lists_token(head.header_values("te"), b"trailers");
        let grpc = came_http2 && (te_trailers || super::forward::is_grpc(&headers));
        let http2 = grpc || (came_http2 && self.shadows.known());
        headers.remove(crate::recording::PROTOCOL_HEADER);
        if http2 && te_trailers {
            // The one TE value HTTP/2 allows, which gRPC servers ask for; removed above as
            // hop-by-hop.
            headers.insert(hyper::header::TE, HeaderValue::from_static("trailers"));
        }
        let body = exchange.request_body();
        self.policy.decide(
            head.method(),
            head.target(),
            &headers,
            Some(body.len() as u64),
            fastrand::f64(),
        )?;
        let method =
            hyper::Method::from_bytes(head.method().as_bytes()).map_err(|_| Skip::Unanswered)?;
        let path_and_query = path_and_query(head.target());
        let content_type = head.header("content-type");
        let route: Arc<str> =
            crate::http::request_route(head.method(), head.target(), content_type).into();
        // To the response's first byte: the copies are timed to their response head too.
        let latency_ns = response.latency_ns;
        let primary = Observation {
            id: Arc::clone(&exchange.id),
            target: self.primary_name.as_str().into(),
            route: Arc::clone(&route),
            method: head.method().into(),
            status: Some(response.head.status),
            latency_us: latency_ns / 1000,
            bytes: response.bytes.len().saturating_sub(response.head.head_len) as u64,
            error: None,
            at_ms: Some(crate::observation::now_ms()),
            grpc_status: response.grpc_status(),
        };
        Ok((
            MirrorJob {
                id: Arc::clone(&exchange.id),
                route,
                method,
                path_and_query,
                headers,
                body,
                queued: std::time::Instant::now(),
                http2,
            },
            primary,
        ))
    }
}

/// The recorded request headers as forwarded: hop-by-hop ones removed.
fn header_map(head: &crate::http::RequestHead) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(head.header_bytes().len());
    for (name, value) in head.header_bytes() {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    strip_hop_by_hop(&mut map);
    map
}

/// The path and query of a request target, also from an absolute-form target.
fn path_and_query(target: &str) -> String {
    match target.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".to_owned(),
        },
        None if target.starts_with('/') => target.to_owned(),
        None => format!("/{target}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_targets_become_paths() {
        assert_eq!(path_and_query("/a?b=1"), "/a?b=1");
        assert_eq!(path_and_query("http://h:1/x/y?z"), "/x/y?z");
        assert_eq!(path_and_query("http://h:1"), "/");
        assert_eq!(path_and_query("*"), "/*");
    }
}
