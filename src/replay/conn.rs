//! One connection to one target, owned by one sender (a closed-model lane or an open-model
//! worker): no pool to check out from and no task per request.
//!
//! HTTP/1.1 (plain or over TLS) is written and read by nprt itself ([`Wire`]): the request
//! bytes built from the recording go out in one write, the answer is read with
//! [`ResponseReader`] and its body counted, not kept. HTTP/2 (`--h2`, or chosen by the
//! server in ALPN) goes through hyper's low-level connection API, the task that sends a
//! request also driving the connection (see [`drive`]). Either way a request and its
//! response cost no wake-up between tasks; the connection is kept alive between requests
//! and replaced when it closes or fails.
//!
//! Exchanges recorded over HTTP/2 (marked by the capture) go another way ([`h2`]): streams
//! on a connection shared by the senders of a thread.

mod h2;

pub(crate) use h2::Link;

use super::target::write_request;
use super::{build_request, Rewrite, Target};
use crate::http::{HeadLimits, Response, ResponseReader};
use crate::observation::Observation;
use crate::recording::Exchange;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

type Body = Full<Bytes>;

/// The future that runs a connection's protocol (reads, writes, HTTP/2 frames).
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// Time allowed to open a TCP connection, within the request's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach one target and what to send it; shared by all of the target's connections.
pub(crate) struct Endpoint {
    pub target: Target,
    host: String,
    port: u16,
    /// The Host header of HTTP/1.1 requests that do not keep the recorded one.
    host_header: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// For exchanges recorded over HTTP/2, on https: `h2` alone offered in ALPN.
    h2_tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// HTTP/2 with prior knowledge (on https: offered alone in ALPN).
    h2: bool,
    rewrite: Arc<Rewrite>,
    timeout: Duration,
}

impl Endpoint {
    /// # Errors
    /// A message when the target's host cannot be used (e.g. not a valid TLS server name).
    pub(crate) fn new(
        target: &Target,
        h2: bool,
        tls: &rustls::ClientConfig,
        rewrite: Arc<Rewrite>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let https = target.base.scheme_str() == Some("https");
        let default_port = if https { 443 } else { 80 };
        let authority_host = target.base.host().unwrap_or_default();
        let host = authority_host.trim_start_matches('[').trim_end_matches(']');
        let port = target.base.port_u16().unwrap_or(default_port);
        let host_header = match target.base.port_u16() {
            Some(p) if p != default_port => format!("{authority_host}:{p}"),
            _ => authority_host.to_owned(),
        };
        if hyper::header::HeaderValue::from_str(&host_header).is_err() {
            return Err(format!(
                "target {}: `{host_header}` is not a Host",
                target.name
            ));
        }
        let h2_tls = if https {
            let mut config = tls.clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            ServerName::try_from(host.to_owned())
                .ok()
                .map(|name| (tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let tls = if https {
            let mut config = tls.clone();
            // What the HTTPS connector of a pooled client offers: h2 when the server picks it.
            config.alpn_protocols = if h2 {
                vec![b"h2".to_vec()]
            } else {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            };
            let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                format!(
                    "target {}: `{host}` is not a TLS server name: {e}",
                    target.name
                )
            })?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Endpoint {
            target: target.clone(),
            host: host.to_owned(),
            port,
            host_header,
            tls,
            h2_tls,
            h2,
            rewrite,
            timeout,
        })
    }
}

/// One exchange due to be sent, the same for every target.
#[derive(Clone)]
pub(crate) struct Job {
    pub exchange: Arc<Exchange>,
    /// The exchange's route key, computed once for all targets.
    route: Arc<str>,
    method: Arc<str>,
    pub body: Bytes,
    /// When it was due: latency counts from here.
    pub due: Instant,
    /// Recorded over HTTP/2: sent over HTTP/2 ([`h2`]).
    h2: bool,
}

impl Job {
    pub(crate) fn new(exchange: Arc<Exchange>, due: Instant) -> Self {
        let head = &exchange.request_head;
        let (route, method) = Names::with(|names| {
            let route = names.route(head.method(), head.target(), head.header("content-type"));
            (route, names.shared(head.method()))
        });
        Job {
            route,
            method,
            h2: h2::marked(head),
            body: exchange.request_body(),
            exchange,
            due,
        }
    }

    /// The observation of this job on `target`, with `latency_us` measured from `due`.
    pub(crate) fn observed(
        &self,
        target: &Target,
        result: Result<(u16, u64), String>,
        latency_us: u64,
    ) -> Observation {
        let (status, bytes, error) = match result {
            Ok((status, bytes)) => (Some(status), bytes, None),
            Err(e) => (None, 0, Some(e)),
        };
        Observation {
            id: Arc::clone(&self.exchange.id),
            target: Names::with(|names| names.shared(&target.name)),
            route: Arc::clone(&self.route),
            method: Arc::clone(&self.method),
            status,
            latency_us,
            bytes,
            error,
            at_ms: Some(crate::observation::now_ms()),
            grpc_status: None,
        }
    }
}

/// Most distinct texts one sender thread keeps in [`Names`].
const NAMES_CAP: usize = 4096;

/// The texts that recur in a sender thread's observations (routes, methods, target names),
/// each kept once and shared by the observations. Copying them into Strings for every
/// observation, to be freed on the consumer's thread, was ~8% of the CPU time of a
/// full-rate replay. One set per thread, so that the reference counts of one thread's
/// copies are not fought over by another's; past [`NAMES_CAP`] texts, a new one is shared
/// only by the observations of its exchange.
#[derive(Default)]
struct Names {
    set: hashbrown::HashSet<Arc<str>>,
    /// Where a route key is built before it is looked up.
    key: String,
}

thread_local! {
    static NAMES: std::cell::RefCell<Names> = std::cell::RefCell::default();
}

impl Names {
    fn with<T>(f: impl FnOnce(&mut Names) -> T) -> T {
        NAMES.with_borrow_mut(f)
    }

    /// The shared copy of `text`.
    fn shared(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.set.get(text) {
            return Arc::clone(known);
        }
        let new: Arc<str> = text.into();
        if self.set.len() < NAMES_CAP {
            self.set.insert(Arc::clone(&new));
        }
        new
    }

    /// The shared copy of the route key of `method` and `target` (a gRPC call's when
    /// `content_type` is gRPC's).
    fn route(&mut self, method: &str, target: &str, content_type: Option<&[u8]>) -> Arc<str> {
        let mut key = std::mem::take(&mut self.key);
        crate::http::request_route_into(method, target, content_type, &mut key);
        let route = self.shared(&key);
        self.key = key;
        route
    }
}

/// A byte stream to a target: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Room kept free in a connection's read buffer before each read.
const READ_ROOM: usize = 16 * 1024;

/// An HTTP/1.1 connection spoken by nprt itself: it writes the request bytes built by
/// [`write_request`] and reads the answer with [`ResponseReader`], counting the body instead
/// of keeping it. hyper's client would build a header map, a URI and a body stream for
/// every request and parse every response into a header map, none of which a replay needs;
/// at full rate that was most of the client's CPU time per request.
struct Wire {
    io: Box<dyn Io>,
    /// What the reader left unread: the start of a head.
    buf: BytesMut,
}

/// Why a round trip on a [`Wire`] failed.
enum WireError {
    /// Not a byte of response came back: on a kept-alive connection, the server may have
    /// closed it just before the request was sent, without having seen it.
    Unanswered(String),
    Failed(String),
}

impl Wire {
    /// Whether the server has closed the idle connection (or sent something unasked): read
    /// readiness the reactor already knows of, with no system call when there is none.
    async fn closed_while_idle(&mut self) -> bool {
        let mut probe = [0u8; 1];
        std::future::poll_fn(|cx| {
            let mut read = ReadBuf::new(&mut probe);
            Poll::Ready(!matches!(
                Pin::new(&mut self.io).poll_read(cx, &mut read),
                Poll::Pending
            ))
        })
        .await
    }

    async fn round_trip(&mut self, method: &str, request: &[u8]) -> Result<Response, WireError> {
        self.io
            .write_all(request)
            .await
            .map_err(|e| WireError::Unanswered(describe("request", &e)))?;
        let mut reader = ResponseReader::new(method, HeadLimits::default());
        loop {
            if self.buf.capacity() - self.buf.len() < READ_ROOM / 4 {
                self.buf.reserve(READ_ROOM);
            }
            let read = match self.io.read_buf(&mut self.buf).await {
                Ok(n) => n,
                Err(e) if reader.is_untouched() && self.buf.is_empty() => {
                    return Err(WireError::Unanswered(describe("response", &e)))
                }
                Err(e) => return Err(WireError::Failed(describe("response", &e))),
            };
            if read == 0 {
                if reader.is_untouched() && self.buf.is_empty() {
                    return Err(WireError::Unanswered(
                        "response: the connection closed without an answer".into(),
                    ));
                }
                reader
                    .end()
                    .map_err(|e| WireError::Failed(format!("response: {e}")))?;
            } else {
                let used = reader.feed(&self.buf).map_err(|e| {
                    if reader.is_untouched() && answers_in_http2(&self.buf) {
                        return WireError::Failed(
                            "response: the target answered in HTTP/2 (it does not speak \
                             HTTP/1.x); the exchange was recorded over HTTP/1.1: replay with --h2"
                                .into(),
                        );
                    }
                    WireError::Failed(format!("response: {e}"))
                })?;
                self.buf.advance(used);
            }
            if let Some(response) = reader.finished() {
                return Ok(response);
            }
        }
    }
}

enum Live {
    Wire(Wire),
    /// HTTP/2, through hyper's client connection.
    H2 {
        sender: http2::SendRequest<Body>,
        /// `None` once the connection has ended.
        driver: Option<Driver>,
    },
}

impl Live {
    /// Whether the kept-alive connection can take the next request: a close by the server
    /// after its last answer is noticed here, without waiting for anything.
    async fn usable(&mut self) -> bool {
        match self {
            Live::Wire(wire) => !wire.closed_while_idle().await,
            Live::H2 { sender, driver } => {
                std::future::poll_fn(|cx| {
                    if let Some(d) = driver.as_mut() {
                        if d.as_mut().poll(cx).is_ready() {
                            *driver = None;
                        }
                    }
                    Poll::Ready(())
                })
                .await;
                driver.is_some() && !sender.is_closed()
            }
        }
    }
}

/// A connection to one target, opened on first use and reopened after it ends.
pub(crate) struct Conn {
    endpoint: Arc<Endpoint>,
    live: Option<Live>,
    /// The HTTP/1.1 request being sent, reused from one request to the next.
    request: Vec<u8>,
    /// Where exchanges recorded over HTTP/2 go.
    link: Arc<Link>,
}

impl Conn {
    /// A connection with an HTTP/2 link of its own.
    #[cfg(test)]
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Self {
        let link = Link::new(Arc::clone(&endpoint));
        Conn::sharing(endpoint, link)
    }

    /// A connection whose exchanges recorded over HTTP/2 go on `link`, shared with others.
    pub(crate) fn sharing(endpoint: Arc<Endpoint>, link: Arc<Link>) -> Self {
        Conn {
            endpoint,
            live: None,
            request: Vec::new(),
            link,
        }
    }

    /// Sends `job` and reads the whole response, within the timeout counted from its due
    /// time. Every outcome, failures included, is an observation.
    pub(crate) async fn exchange(&mut self, job: &Job) -> Observation {
        if job.h2 {
            return self.exchange_h2(job).await;
        }
        let timeout = self.endpoint.timeout;
        let result = match tokio::time::timeout_at(job.due + timeout, self.round_trip(job)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection is mid-request: it cannot carry another one.
                self.live = None;
                Err(format!("timeout after {} ms", timeout.as_millis()))
            }
        };
        let latency_us = u64::try_from(job.due.elapsed().as_micros()).unwrap_or(u64::MAX);
        job.observed(&self.endpoint.target, result, latency_us)
    }

    /// Opens the connection before the first request needs it, within the request timeout;
    /// a failure is left for that request to meet and observe.
    pub(crate) async fn connect_ahead(&mut self) {
        if self.live.is_none() {
            let connecting = connect(&self.endpoint);
            if let Ok(Ok(live)) = tokio::time::timeout(self.endpoint.timeout, connecting).await {
                self.live = Some(live);
            }
        }
    }

    /// Waits for `fut` while keeping an idle HTTP/2 connection running, so that a close by
    /// the server is noticed now rather than on the next request. (An idle HTTP/1.1
    /// connection needs nothing: its close is noticed before the next request is written.)
    pub(crate) async fn idle<F: Future>(&mut self, fut: F) -> F::Output {
        match &mut self.live {
            Some(Live::H2 { driver, .. }) => drive(driver, fut).await,
            _ => fut.await,
        }
    }

    async fn round_trip(&mut self, job: &Job) -> Result<(u16, u64), String> {
        let endpoint = Arc::clone(&self.endpoint);
        let exchange = &job.exchange;
        let method = exchange.request_head.method();
        let mut written = false;
        // A kept-alive connection found closed is replaced once; a fresh connection that
        // fails is the answer.
        let mut fresh = false;
        loop {
            let usable = match self.live.as_mut() {
                Some(live) => live.usable().await,
                None => false,
            };
            if !usable {
                self.live = None;
                self.live = Some(connect(&endpoint).await?);
                fresh = true;
            }
            match self.live.as_mut() {
                Some(Live::Wire(wire)) => {
                    if !written {
                        write_request(
                            &mut self.request,
                            &endpoint.target,
                            &endpoint.host_header,
                            exchange,
                            &job.body,
                            &endpoint.rewrite,
                        )?;
                        written = true;
                    }
                    match wire.round_trip(method, &self.request).await {
                        Ok(response) => {
                            if !response.reusable {
                                self.live = None;
                            }
                            return Ok((response.status, response.body_bytes));
                        }
                        // The server may have closed the kept-alive connection as the
                        // request went out; sent again only when repeating it is harmless
                        // (RFC 9110 §9.2.2).
                        Err(WireError::Unanswered(_)) if !fresh && idempotent(method) => {
                            self.live = None;
                        }
                        Err(WireError::Unanswered(e) | WireError::Failed(e)) => {
                            self.live = None;
                            return Err(e);
                        }
                    }
                }
                Some(Live::H2 { sender, driver }) => {
                    let request = build_request(
                        &endpoint.target,
                        exchange,
                        job.body.clone(),
                        &endpoint.rewrite,
                    )?;
                    let result = h2_round_trip(sender, driver, request).await;
                    if result.is_err() {
                        self.live = None;
                    }
                    return result;
                }
                None => return Err("connect: no connection".into()),
            }
        }
    }
}

/// Methods whose repetition has the effect of one request (RFC 9110 §9.2.2).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

async fn h2_round_trip(
    sender: &mut http2::SendRequest<Body>,
    driver: &mut Option<Driver>,
    request: Request<Body>,
) -> Result<(u16, u64), String> {
    drive(driver, std::future::poll_fn(|cx| sender.poll_ready(cx)))
        .await
        .map_err(|e| describe("connect", &e))?;
    let response = drive(driver, sender.send_request(request))
        .await
        .map_err(|e| describe("request", &e))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    drive(driver, async {
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading body: {e}"))?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok::<_, String>(bytes)
    })
    .await
    .map(|bytes| (status, bytes))
}

/// Polls `fut` to completion, polling the connection's driver in the same task: the driver
/// does the I/O that `fut` waits for, and wakes this very task when it has done it.
async fn drive<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        match driver.as_mut() {
            Some(d) => {
                if d.as_mut().poll(cx).is_ready() {
                    // Ended (closed or failed); what `fut` waits for has been answered with
                    // an error by now.
                    *driver = None;
                }
                fut.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    })
    .await
}

/// A TCP connection to the endpoint within [`CONNECT_TIMEOUT`], without Nagle: requests are
/// written whole, and waiting to coalesce them only adds latency.
async fn connect_tcp(endpoint: &Endpoint) -> Result<TcpStream, String> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| format!("connect: timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| describe("connect", &e))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn connect(endpoint: &Endpoint) -> Result<Live, String> {
    let tcp = connect_tcp(endpoint).await?;
    let (io, h2): (Box<dyn Io>, bool) = match &endpoint.tls {
        None => (Box::new(tcp), endpoint.h2),
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| describe("connect", &e))?;
            let h2 = endpoint.h2 || tls.get_ref().1.alpn_protocol() == Some(b"h2");
            (Box::new(tls), h2)
        }
    };
    if !h2 {
        return Ok(Live::Wire(Wire {
            io,
            buf: BytesMut::new(),
        }));
    }
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|e| describe("connect", &e))?;
    Ok(Live::H2 {
        sender,
        driver: Some(Box::pin(conn)),
    })
}

/// A short reason with the root cause, e.g. `connect: Connection refused (os error 111)`.
/// Whether a server's first bytes are an HTTP/2 frame head rather than a status line: a
/// SETTINGS or GOAWAY frame on stream 0 (what an HTTP/2-only server sends an HTTP/1.1 client).
fn answers_in_http2(first: &[u8]) -> bool {
    first.len() >= 9 && matches!(first[3], 0x4 | 0x7) && first[5..9] == [0, 0, 0, 0]
}

fn describe(what: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut root = error;
    while let Some(source) = root.source() {
        root = source;
    }
    format!("{what}: {root}")
}

#[cfg(test)]
mod tests;
