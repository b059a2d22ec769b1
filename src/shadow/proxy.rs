//! The inline tee proxy: every request goes to the primary and the client gets the primary's
//! response, streamed; a copy goes to the shadow through [`super::sender`], off the path.
//!
//! The request body is streamed to the primary as it arrives and copied on the side up to
//! `--max-body` ([`TeeBody`]); only when it has been read whole is the copy queued for the
//! shadow. The primary's answer is timed from the request handed to the connection to its
//! response head, the points the copies are timed at too; its body is counted as the client
//! reads it ([`CountedBody`]). A [`Ticket`] joins the two: the primary's observation is judged only when
//! its request was mirrored, so that both sides of the comparison see the same requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;

use super::forward::{add_forwarded, strip_hop_by_hop, MirrorPolicy, Skip};
use super::judge::JudgeHandle;
use super::metrics::{Drop, Metrics};
use super::sender::{MirrorJob, Sender};
use super::Client;
use crate::observation::Observation;

/// What the client gets back: the primary's body, or a short error of the proxy's own.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Limits on client connections (against slowloris and floods).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once; further ones are closed at once and counted.
    pub max_connections: usize,
    /// A client must send a whole request head within this long, or its connection is closed.
    pub header_timeout: Duration,
    /// How long open requests may finish at shutdown.
    pub grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(10),
        }
    }
}

/// Everything a request handler needs.
pub struct Proxy {
    pub primary: hyper::Uri,
    /// The primary's target name in observations and reports.
    pub primary_name: String,
    pub client: Client<ProxyBody>,
    /// For clients that came over HTTP/2: the primary is spoken to the same way when it
    /// speaks HTTP/2 (a gRPC call always).
    pub client_h2: Client<ProxyBody>,
    pub primary_speaks: super::speaks::Servers,
    /// The canary (and baseline copy): copies go over HTTP/2 the same way.
    pub shadows: super::speaks::Servers,
    pub policy: MirrorPolicy,
    pub sender: Sender,
    pub judge: JudgeHandle,
    pub metrics: Arc<Metrics>,
    /// Set when the judge failed the shadow or the proxy is stopping: nothing more is mirrored.
    pub stopped: Arc<AtomicBool>,
    pub next_id: AtomicU64,
}

/// Accepts clients until `shutdown` resolves, then lets open requests finish for
/// `limits.grace` ([`crate::net::serve`]); a connection beyond `limits.max_connections` is
/// closed at once and counted as dropped.
///
/// # Errors
/// When accepting fails for a reason other than a full file table or a reset.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    // No Date header of the proxy's own: the client gets the primary's headers as they were
    // (in a gRPC trailers-only answer, an added Date would show as trailing metadata).
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .auto_date_header(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .auto_date_header(false);
    let metrics = Arc::clone(&proxy.metrics);
    let options = crate::net::ServeOptions {
        max_connections: limits.max_connections,
        grace: limits.grace,
        on_full: Some(Arc::new(move || metrics.dropped(Drop::Connections))),
        // Clients on http:// URLs that ask for HTTP/2 by upgrade get it, as from the primary.
        h2c_upgrade: Some(limits.header_timeout),
        ..crate::net::ServeOptions::new("shadow proxy")
    };
    let make_service = move |client: SocketAddr| {
        let proxy = Arc::clone(&proxy);
        hyper::service::service_fn(move |req| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(handle(&proxy, client, req).await) }
        })
    };
    crate::net::serve(listener, options, builder, make_service, shutdown).await
}

/// A mirrored request's two halves: the ticket that joins them and the primary's stamp.
type Mirror = (Arc<Ticket>, Stamp);

/// Forwards one request to the primary and hands back its response; mirrors a copy.
async fn handle(
    proxy: &Arc<Proxy>,
    client: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    proxy.metrics.request();
    let (mut parts, body) = req.into_parts();
    // A request that came over HTTP/2 goes on over HTTP/2 to a server that speaks it, and
    // over HTTP/1.1 to one that does not (as every backend takes that). A gRPC call
    // (`TE: trailers`, or a gRPC content type) always goes over HTTP/2, `TE: trailers`
    // kept: a gRPC server refuses anything else, and its answer ends in trailers.
    let te = parts.headers.get_all(hyper::header::TE);
    let te_trailers = crate::http::lists_token(te.iter().map(|v| v.as_bytes()), b"trailers");
    let came_http2 = parts.version == hyper::Version::HTTP_2;
    let grpc = came_http2 && (te_trailers || super::forward::is_grpc(&parts.headers));
    let http2 = grpc || (came_http2 && proxy.primary_speaks.known());
    let copy_http2 = grpc || (came_http2 && proxy.shadows.known());
    let path_and_query = forwarded_head(&mut parts, client);
    if http2 && te_trailers {
        parts.headers.insert(
            hyper::header::TE,
            hyper::header::HeaderValue::from_static("trailers"),
        );
    }
    let mirror = start_mirror(proxy, &parts, &body, &path_and_query);
    let body: ProxyBody = match &mirror {
        Some((ticket, stamp)) => offer_copy(
            proxy,
            (ticket, stamp),
            &parts,
            &path_and_query,
            body,
            copy_http2,
        ),
        None => body.boxed_unsync(),
    };

    let Ok(uri) = super::join(&proxy.primary, &path_and_query) else {
        return plain(StatusCode::BAD_REQUEST, "bad request target\n");
    };
    parts.uri = uri;
    let client = if http2 {
        parts.version = hyper::Version::HTTP_2;
        &proxy.client_h2
    } else {
        parts.version = hyper::Version::HTTP_11;
        &proxy.client
    };
    // Timed from the request handed to the connection to the response head, as the shadow's
    // copies are: both sides of a pair are measured between the same two points.
    let sent = Instant::now();
    let answer = client.request(Request::from_parts(parts, body)).await;
    let latency = sent.elapsed();
    respond(answer, latency, mirror)
}

/// Rewrites the client's request head for the primary (hop-by-hop headers out, `Forwarded`
/// in, `Host` left to the client) and returns its path and query.
fn forwarded_head(parts: &mut hyper::http::request::Parts, client: SocketAddr) -> String {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, client.ip(), host.as_deref());
    // The client sets the primary's own Host from the URI.
    parts.headers.remove(hyper::header::HOST);
    path_and_query
}

/// Whether this request is to be mirrored (the policy, the sender and the stop flag decide;
/// a refusal is counted by reason). Only a mirrored request gets an id, a route key and a
/// ticket.
fn start_mirror(
    proxy: &Proxy,
    parts: &hyper::http::request::Parts,
    body: &Incoming,
    path_and_query: &str,
) -> Option<Mirror> {
    let decision = if proxy.stopped.load(Ordering::Relaxed) {
        Err(Skip::Stopped)
    } else {
        proxy
            .policy
            .decide(
                parts.method.as_str(),
                path_and_query,
                &parts.headers,
                body.size_hint().exact(),
                fastrand::f64(),
            )
            .and_then(|()| proxy.sender.accepting())
    };
    match decision {
        Ok(()) => {
            let method = parts.method.as_str().to_owned();
            let stamp = Stamp {
                target: proxy.primary_name.clone(),
                id: proxy
                    .next_id
                    .fetch_add(1, Ordering::Relaxed)
                    .to_string()
                    .into(),
                route: crate::http::request_route(
                    &method,
                    path_and_query,
                    parts
                        .headers
                        .get(hyper::header::CONTENT_TYPE)
                        .map(|v| v.as_bytes()),
                )
                .into(),
                method,
            };
            let ticket = Arc::new(Ticket {
                judge: proxy.judge.clone(),
                state: Mutex::new(State::Undecided(None)),
            });
            Some((ticket, stamp))
        }
        Err(reason) => {
            proxy.metrics.skipped(reason);
            None
        }
    }
}

/// The body to send the primary, with the copy for the shadow taken on the side: an empty
/// body's copy is offered at once; any other is offered when it has been read whole (or not,
/// when it grew past `--max-body`), and the ticket learns which.
fn offer_copy(
    proxy: &Proxy,
    (ticket, stamp): (&Arc<Ticket>, &Stamp),
    parts: &hyper::http::request::Parts,
    path_and_query: &str,
    body: Incoming,
    http2: bool,
) -> ProxyBody {
    let job = MirrorJob {
        id: Arc::clone(&stamp.id),
        route: Arc::clone(&stamp.route),
        method: parts.method.clone(),
        path_and_query: path_and_query.to_owned(),
        headers: parts.headers.clone(),
        body: Bytes::new(),
        queued: Instant::now(),
        http2,
    };
    if body.is_end_stream() {
        ticket.decide(proxy.sender.offer(job));
        return body.boxed_unsync();
    }
    let (sender, ticket, metrics) = (
        proxy.sender.clone(),
        Arc::clone(ticket),
        Arc::clone(&proxy.metrics),
    );
    TeeBody {
        inner: body,
        copy: Some(BytesMut::new()),
        limit: usize::try_from(proxy.policy.max_body).unwrap_or(usize::MAX),
        end: Some(Box::new(move |copy: Result<Bytes, Skip>| match copy {
            Ok(body) => ticket.decide(sender.offer(MirrorJob {
                body,
                queued: Instant::now(),
                ..job
            })),
            Err(reason) => {
                metrics.skipped(reason);
                ticket.decide(false);
            }
        })),
    }
    .boxed_unsync()
}

/// The client's response: the primary's, streamed, with a mirrored request's observation
/// handed to its ticket once the client has read the body; or 502 when the primary did not
/// answer (observed as an error).
fn respond(
    answer: Result<Response<Incoming>, hyper_util::client::legacy::Error>,
    latency: Duration,
    mirror: Option<Mirror>,
) -> Response<ProxyBody> {
    match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let (mut head, body) = response.into_parts();
            strip_hop_by_hop(&mut head.headers);
            let body = match mirror {
                Some((ticket, stamp)) => CountedBody {
                    inner: body,
                    bytes: 0,
                    // A trailers-only gRPC answer carries its status in the headers.
                    grpc: crate::http::grpc_status(&head.headers),
                    done: Some(Box::new(move |(bytes, grpc)| {
                        let mut observation = stamp.observe(Some(status), latency, bytes, None);
                        observation.grpc_status = grpc;
                        ticket.primary(observation);
                    })),
                }
                .boxed_unsync(),
                None => body.boxed_unsync(),
            };
            Response::from_parts(head, body)
        }
        Err(e) => {
            let message = super::describe_error(&e);
            tracing::warn!(error = %message, "the primary did not answer");
            if let Some((ticket, stamp)) = mirror {
                ticket.primary(stamp.observe(None, latency, 0, Some(message)));
            }
            plain(
                StatusCode::BAD_GATEWAY,
                "the upstream service did not answer\n",
            )
        }
    }
}

/// What the primary's observation of a request needs besides its answer.
struct Stamp {
    target: String,
    id: Arc<str>,
    route: Arc<str>,
    method: String,
}

impl Stamp {
    fn observe(
        self,
        status: Option<u16>,
        latency: Duration,
        bytes: u64,
        error: Option<String>,
    ) -> Observation {
        Observation {
            id: self.id,
            target: self.target.into(),
            route: self.route,
            method: self.method.into(),
            status,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            bytes,
            error,
            at_ms: Some(crate::observation::now_ms()),
            grpc_status: None,
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// Joins a request's two halves: the primary's observation is judged only once the request
/// was mirrored, whichever of the two is known first.
struct Ticket {
    judge: JudgeHandle,
    state: Mutex<State>,
}

enum State {
    /// The body is still being read; the primary's observation may already wait here.
    Undecided(Option<Observation>),
    Mirrored,
    NotMirrored,
}

impl Ticket {
    /// Whether the copy went to the shadow.
    fn decide(&self, mirrored: bool) {
        let waiting = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let next = if mirrored {
                State::Mirrored
            } else {
                State::NotMirrored
            };
            match std::mem::replace(&mut *state, next) {
                State::Undecided(waiting) if mirrored => waiting,
                _ => None,
            }
        };
        if let Some(observation) = waiting {
            self.judge.send(observation);
        }
    }

    /// The primary's answer is complete.
    fn primary(&self, observation: Observation) {
        let send = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            match &mut *state {
                State::Undecided(slot) => {
                    *slot = Some(observation);
                    None
                }
                State::Mirrored => Some(observation),
                State::NotMirrored => None,
            }
        };
        if let Some(observation) = send {
            self.judge.send(observation);
        }
    }
}

type OnEnd<T> = Option<Box<dyn FnOnce(T) + Send>>;

/// The client's request body on its way to the primary, copied on the side up to a limit.
struct TeeBody {
    inner: Incoming,
    /// `None` once the body outgrew the limit.
    copy: Option<BytesMut>,
    limit: usize,
    /// Called once: with the copy when the body was read whole, with the reason otherwise.
    end: OnEnd<Result<Bytes, Skip>>,
}

impl TeeBody {
    fn finish(&mut self, result: Result<(), Skip>) {
        if let Some(end) = self.end.take() {
            let copy = self.copy.take();
            end(match (result, copy) {
                (Ok(()), Some(copy)) => Ok(copy.freeze()),
                (Ok(()), None) => Err(Skip::TooLarge),
                (Err(reason), _) => Err(reason),
            });
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this
                        .copy
                        .as_ref()
                        .is_some_and(|c| c.len() + data.len() > this.limit)
                    {
                        this.copy = None;
                    }
                    if let Some(copy) = this.copy.as_mut() {
                        copy.extend_from_slice(data);
                    }
                }
                // The primary's client may stop polling once the body says it is complete.
                if this.inner.is_end_stream() {
                    this.finish(Ok(()));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Err(Skip::BodyIncomplete));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(Ok(()));
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::ops::Drop for TeeBody {
    fn drop(&mut self) {
        self.finish(Err(Skip::BodyIncomplete));
    }
}

/// The primary's response body on its way to the client, counted; reports once at the end.
struct CountedBody {
    inner: Incoming,
    bytes: u64,
    /// The gRPC status, from the headers or the trailers.
    grpc: Option<u8>,
    done: OnEnd<(u64, Option<u8>)>,
}

impl CountedBody {
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            done((self.bytes, self.grpc));
        }
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if let Some(trailers) = frame.trailers_ref() {
                    this.grpc = crate::http::grpc_status(trailers).or(this.grpc);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(_) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::ops::Drop for CountedBody {
    fn drop(&mut self) {
        // The client went away early (or the body was empty and never polled): what was
        // counted so far is still the primary's answer.
        self.finish();
    }
}
