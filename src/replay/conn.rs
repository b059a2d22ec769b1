//! One connection to one target, owned by one sender (a closed-model lane or an open-model
//! worker): no pool to check out from and no task per request.
//!
//! Built on hyper's low-level connection API. The task that sends a request also drives the
//! connection (see [`drive`]), so a request and its response cost no wake-up between tasks;
//! the connection is kept alive between requests and replaced when it closes or fails.

use super::{build_request, Rewrite, Target};
use crate::observation::Observation;
use crate::recording::Exchange;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
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
    host_header: HeaderValue,
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
        let host_header = HeaderValue::from_str(&host_header)
            .map_err(|_| format!("target {}: `{host_header}` is not a Host", target.name))?;
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
    pub route: Arc<str>,
    pub body: Bytes,
    /// When it was due: latency counts from here.
    pub due: Instant,
}

impl Job {
    pub(crate) fn new(exchange: Arc<Exchange>, due: Instant) -> Self {
        let head = &exchange.request_head;
        Job {
            route: crate::http::route_key(&head.method, &head.target).into(),
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
            id: self.exchange.id.clone(),
            target: target.name.clone(),
            route: self.route.to_string(),
            method: self.exchange.request_head.method.clone(),
            status,
            latency_us,
            bytes,
            error,
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

struct Live {
    sender: Sender,
    /// `None` once the connection has ended.
    driver: Option<Driver>,
}

impl Live {
    /// Lets the connection act on what arrived while nobody polled it (a close by the server
    /// after its last answer), without waiting for anything.
    async fn refresh(&mut self) {
        std::future::poll_fn(|cx| {
            if let Some(driver) = self.driver.as_mut() {
                if driver.as_mut().poll(cx).is_ready() {
                    self.driver = None;
                }
            }
            Poll::Ready(())
        })
        .await;
    }

    fn usable(&self) -> bool {
        self.driver.is_some()
            && match &self.sender {
                Sender::H1(s) => !s.is_closed(),
                Sender::H2(s) => !s.is_closed(),
            }
    }
}

/// A connection to one target, opened on first use and reopened after it ends.
pub(crate) struct Conn {
    endpoint: Arc<Endpoint>,
    live: Option<Live>,
}

impl Conn {
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Self {
        Conn {
            endpoint,
            live: None,
        }
    }

    /// Sends `job` and reads the whole response, within the timeout counted from its due
    /// time. Every outcome, failures included, is an observation.
    pub(crate) async fn exchange(&mut self, job: &Job) -> Observation {
        let endpoint = Arc::clone(&self.endpoint);
        let result = match build_request(
            &endpoint.target,
            &job.exchange,
            job.body.clone(),
            &endpoint.rewrite,
        ) {
            Ok(request) => {
                match tokio::time::timeout_at(job.due + endpoint.timeout, self.round_trip(request))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection is mid-request: it cannot carry another one.
                        self.live = None;
                        Err(format!("timeout after {} ms", endpoint.timeout.as_millis()))
                    }
                }
            }
            Err(e) => Err(e),
        };
        let latency_us = u64::try_from(job.due.elapsed().as_micros()).unwrap_or(u64::MAX);
        job.observed(&endpoint.target, result, latency_us)
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

    /// Waits for `fut` while keeping the idle connection running, so that a close by the
    /// server is noticed now rather than on the next request.
    pub(crate) async fn idle<F: Future>(&mut self, fut: F) -> F::Output {
        match &mut self.live {
            Some(live) => drive(&mut live.driver, fut).await,
            None => fut.await,
        }
    }

    async fn round_trip(&mut self, mut request: Request<Body>) -> Result<(u16, u64), String> {
        // A kept-alive connection found closed before the request was written is replaced
        // once; a fresh connection that fails is the answer.
        let mut fresh = false;
        if let Some(live) = self.live.as_mut() {
            live.refresh().await;
        }
        loop {
            if !self.live.as_ref().is_some_and(Live::usable) {
                self.live = None;
                self.live = Some(connect(&self.endpoint).await?);
                fresh = true;
            }
            let Some(Live { sender, driver }) = self.live.as_mut() else {
                return Err("connect: no connection".into());
            };
            let ready = drive(driver, std::future::poll_fn(|cx| poll_ready(sender, cx))).await;
            if let Err(e) = ready {
                self.live = None;
                if fresh {
                    return Err(describe("connect", &e));
                }
                continue;
            }
            let sent = match sender {
                Sender::H1(s) => {
                    let host = self.endpoint.host_header.clone();
                    request.headers_mut().entry(HOST).or_insert(host);
                    origin_form(request.uri_mut());
                    drive(driver, s.try_send_request(request)).await
                }
                Sender::H2(s) => drive(driver, s.try_send_request(request)).await,
            };
            let response = match sent {
                Ok(response) => response,
                Err(mut e) => {
                    self.live = None;
                    match e.take_message() {
                        Some(unsent) if !fresh => {
                            request = unsent;
                            continue;
                        }
                        _ => return Err(describe("request", e.error())),
                    }
                }
            };
            let status = response.status().as_u16();
            let mut body = response.into_body();
            let read = drive(driver, async {
                let mut bytes = 0u64;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("reading body: {e}"))?;
                    if let Some(data) = frame.data_ref() {
                        bytes += data.len() as u64;
                    }
                }
                Ok::<_, String>(bytes)
            })
            .await;
            if read.is_err() {
                self.live = None;
            }
            return read.map(|bytes| (status, bytes));
        }
    }
}

fn poll_ready(sender: &mut Sender, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
    match sender {
        Sender::H1(s) => s.poll_ready(cx),
        Sender::H2(s) => s.poll_ready(cx),
    }
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
    match &endpoint.tls {
        None => handshake(TokioIo::new(tcp), endpoint.h2).await,
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| describe("connect", &e))?;
            let h2 = endpoint.h2 || tls.get_ref().1.alpn_protocol() == Some(b"h2");
            handshake(TokioIo::new(tls), h2).await
        }
    }
}

async fn handshake<T>(io: T, h2: bool) -> Result<Live, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if h2 {
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| describe("connect", &e))?;
        Ok(Live {
            sender: Sender::H2(sender),
            driver: Some(Box::pin(conn)),
        })
    } else {
        let (sender, conn) = http1::handshake(io)
            .await
            .map_err(|e| describe("connect", &e))?;
        Ok(Live {
            sender: Sender::H1(sender),
            driver: Some(Box::pin(conn)),
        })
    }
}

/// Reduces an absolute URI to the origin form an HTTP/1.1 request line carries (`/p?q`).
fn origin_form(uri: &mut Uri) {
    let Some(path) = uri.path_and_query().cloned() else {
        return;
    };
    let mut parts = hyper::http::uri::Parts::default();
    parts.path_and_query = Some(path);
    if let Ok(origin) = Uri::from_parts(parts) {
        *uri = origin;
    }
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
    fn origin_form_keeps_path_and_query() {
        let mut uri: Uri = "http://127.0.0.1:9/a/b?c=1".parse().unwrap();
        origin_form(&mut uri);
        assert_eq!(uri, "/a/b?c=1");
    }

    /// A server that answers one request per connection and then closes it, without saying
    /// so in a `Connection: close` header.
    fn one_answer_per_connection() -> std::net::SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten().take(10) {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_connection_closed_between_requests_is_replaced() {
        let addr = one_answer_per_connection();
        let target = Target::parse(&format!("t=http://{addr}")).unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let endpoint =
            Endpoint::new(&target, false, &tls, Arc::default(), Duration::from_secs(5)).unwrap();
        let mut conn = Conn::new(Arc::new(endpoint));
        let request = Bytes::from_static(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        let exchange = Arc::new(Exchange {
            id: "1".into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        });
        for _ in 0..3 {
            // Give the server's close time to arrive, as between paced requests.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let obs = conn
                .exchange(&Job::new(Arc::clone(&exchange), Instant::now()))
                .await;
            assert_eq!((obs.status, obs.bytes, &obs.error), (Some(200), 2, &None));
        }
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
            (default.host_header.to_str().unwrap(), default.port),
            ("example.test", 80)
        );
        let v6 = make("https://[::1]:8443");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));
        assert_eq!(v6.host_header, "[::1]:8443");
        assert!(v6.tls.is_some());
    }
}
