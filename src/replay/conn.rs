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

use super::target::write_request;
use super::{build_request, Rewrite, Target};
use crate::http::{Limits, Response, ResponseReader};
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
}

impl Job {
    pub(crate) fn new(exchange: Arc<Exchange>, due: Instant) -> Self {
        let head = &exchange.request_head;
        let (route, method) = Names::with(|names| {
            let route = names.route(head.method(), head.target());
            (route, names.shared(head.method()))
        });
        Job {
            route,
            method,
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

    /// The shared copy of the route key of `method` and `target`.
    fn route(&mut self, method: &str, target: &str) -> Arc<str> {
        let mut key = std::mem::take(&mut self.key);
        crate::http::route_key_into(method, target, &mut key);
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
        let mut reader = ResponseReader::new(method, Limits::default());
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
                let used = reader
                    .feed(&self.buf)
                    .map_err(|e| WireError::Failed(format!("response: {e}")))?;
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
}

impl Conn {
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Self {
        Conn {
            endpoint,
            live: None,
            request: Vec::new(),
        }
    }

    /// Sends `job` and reads the whole response, within the timeout counted from its due
    /// time. Every outcome, failures included, is an observation.
    pub(crate) async fn exchange(&mut self, job: &Job) -> Observation {
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

async fn connect(endpoint: &Endpoint) -> Result<Live, String> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| format!("connect: timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| describe("connect", &e))?;
    // Requests are written whole; waiting to coalesce them only adds latency.
    let _ = tcp.set_nodelay(true);
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
fn describe(what: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut root = error;
    while let Some(source) = root.source() {
        root = source;
    }
    format!("{what}: {root}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shared_and_bounded() {
        let mut names = Names::default();
        let a = names.route("GET", "/users/17?x=1");
        let b = names.route("GET", "/users/42");
        assert_eq!(&*a, "GET /users/:id");
        assert!(Arc::ptr_eq(&a, &b), "one route, one copy");
        assert!(Arc::ptr_eq(&names.shared("GET"), &names.shared("GET")));
        for i in 0..NAMES_CAP {
            names.shared(&format!("t{i}"));
        }
        assert_eq!(names.set.len(), NAMES_CAP);
        let late = names.shared("late");
        assert_eq!(&*late, "late");
        assert!(
            !Arc::ptr_eq(&late, &names.shared("late")),
            "past the cap, not kept"
        );
        assert!(
            Arc::ptr_eq(&a, &names.route("GET", "/users/9")),
            "known ones still shared"
        );
    }

    /// A server that answers the requests on each connection with the next of `script`'s
    /// responses, and closes a connection after a response marked `true`. Returns its
    /// address and the number of connections it accepted.
    fn scripted_server(
        script: &'static [(&'static str, bool)],
    ) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut answers = script.iter();
            for mut conn in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while let Ok(1) = conn.read(&mut byte) {
                    head.push(byte[0]);
                    if !head.ends_with(b"\r\n\r\n") {
                        continue;
                    }
                    head.clear();
                    let Some((answer, close)) = answers.next() else {
                        return;
                    };
                    let _ = conn.write_all(answer.as_bytes());
                    if *close {
                        break;
                    }
                }
            }
        });
        (addr, accepted)
    }

    fn conn_to(addr: std::net::SocketAddr) -> Conn {
        let target = Target::parse(&format!("t=http://{addr}")).unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let endpoint =
            Endpoint::new(&target, false, &tls, Arc::default(), Duration::from_secs(5)).unwrap();
        Conn::new(Arc::new(endpoint))
    }

    fn get() -> Arc<Exchange> {
        let request = Bytes::from_static(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        Arc::new(Exchange {
            id: "1".into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        })
    }

    #[tokio::test]
    async fn every_response_framing_is_read_and_connections_kept_when_they_can_be() {
        static SCRIPT: [(&str, bool); 6] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            (
                "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                false,
            ),
            (
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\nx",
                false,
            ),
            (
                "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 4\r\n\r\ngone",
                true,
            ),
            ("HTTP/1.1 500 Oops\r\n\r\nuntil the end", true),
            ("HTTP/1.0 204 No Content\r\n\r\n", true),
        ];
        let (addr, accepted) = scripted_server(&SCRIPT);
        let mut conn = conn_to(addr);
        let mut seen = Vec::new();
        for _ in 0..SCRIPT.len() {
            let obs = conn.exchange(&Job::new(get(), Instant::now())).await;
            assert_eq!(obs.error, None);
            seen.push((obs.status.unwrap(), obs.bytes));
        }
        assert_eq!(
            seen,
            [(200, 2), (201, 3), (202, 1), (404, 4), (500, 13), (204, 0)]
        );
        // Kept alive through the first four; the close-delimited body and HTTP/1.0 each
        // ended their connection.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_connection_closed_between_requests_is_replaced() {
        static SCRIPT: [(&str, bool); 6] =
            [("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true); 6];
        // One answer per connection, closed without a `Connection: close` to say so.
        let (addr, accepted) = scripted_server(&SCRIPT);
        let mut conn = conn_to(addr);
        for i in 0..6 {
            if i % 2 == 0 {
                // Time for the server's close to arrive, as between paced requests; without
                // it the close may cross the next request, which is then sent again.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let obs = conn.exchange(&Job::new(get(), Instant::now())).await;
            assert_eq!((obs.status, obs.bytes, &obs.error), (Some(200), 2, &None));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn https_over_http1_keeps_its_connection() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &Issuer::new(ca_params, ca_key))
            .unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(path("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(path("key.pem"), leaf_key.serialize_pem()).unwrap();
        let mut server = crate::tls::server_config(&path("cert.pem"), &path("key.pem")).unwrap();
        // A server that speaks only HTTP/1.1: the client's own HTTP/1.1 runs over TLS.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while let Ok(b) = tls.read_u8().await {
                        head.push(b);
                        if head.ends_with(b"\r\n\r\n") {
                            head.clear();
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntls";
                            if tls.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let target = Target::parse(&format!("t=https://{addr}")).unwrap();
        let tls = crate::tls::client_config(Some(&path("ca.pem"))).unwrap();
        let endpoint =
            Endpoint::new(&target, false, &tls, Arc::default(), Duration::from_secs(5)).unwrap();
        let mut conn = Conn::new(Arc::new(endpoint));
        for _ in 0..3 {
            let obs = conn.exchange(&Job::new(get(), Instant::now())).await;
            assert_eq!((obs.status, obs.bytes, &obs.error), (Some(200), 3, &None));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_malformed_or_cut_response_is_an_observed_error() {
        static SCRIPT: [(&str, bool); 2] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true),
            ("HTTP/1.1 2x0 OK\r\n\r\n", true),
        ];
        let (addr, _) = scripted_server(&SCRIPT);
        let mut conn = conn_to(addr);
        let cut = conn.exchange(&Job::new(get(), Instant::now())).await;
        let error = cut.error.unwrap();
        assert!(error.contains("after 3 body bytes"), "{error}");
        let bad = conn.exchange(&Job::new(get(), Instant::now())).await;
        let error = bad.error.unwrap();
        assert!(
            error.starts_with("response: malformed HTTP head"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_observed_error() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let target = Target::parse(&format!("t=http://{addr}")).unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let endpoint =
            Endpoint::new(&target, false, &tls, Arc::default(), Duration::from_secs(5)).unwrap();
        let request = Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n");
        let exchange = Arc::new(Exchange {
            id: "1".into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        });
        let obs = Conn::new(Arc::new(endpoint))
            .exchange(&Job::new(exchange, Instant::now()))
            .await;
        assert_eq!(obs.status, None);
        let error = obs.error.unwrap();
        assert!(error.starts_with("connect: "), "{error}");
    }

    #[test]
    fn endpoint_host_header_and_tls_name() {
        let tls = crate::tls::client_config(None).unwrap();
        let make = |url: &str| {
            Endpoint::new(
                &Target::parse(&format!("t={url}")).unwrap(),
                false,
                &tls,
                Arc::default(),
                Duration::from_secs(1),
            )
            .unwrap()
        };
        let plain = make("http://127.0.0.1:8080");
        assert_eq!(plain.host_header, "127.0.0.1:8080");
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 8080));
        let default = make("http://example.test");
        assert_eq!(
            (default.host_header.as_str(), default.port),
            ("example.test", 80)
        );
        let v6 = make("https://[::1]:8443");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.host_header, "[::1]:8443");
        assert!(v6.tls.is_some());
    }
}
