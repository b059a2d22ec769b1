//! Exchanges recorded over HTTP/2 (the capture marks them `X-Nprt-Protocol: HTTP/2`; gRPC's
//! among them) are sent over HTTP/2 again: a gRPC server refuses HTTP/1.1.
//!
//! They go as concurrent streams on one connection per target shared by the senders of one
//! thread (a [`Link`]): h2c with prior knowledge for http:// targets, ALPN `h2` alone for
//! https://. The connection is driven by a task of its own on the thread's runtime, so a
//! lane thread's streams never wait on another thread. One connection per thread, not
//! more: with 32 streams in flight per thread, two or four connections each cost more CPU
//! time per request (fewer frames per write and per read) and gave fewer requests/s
//! (benches/h2_vs_h2load.sh). A target that answers the HTTP/2
//! preface in HTTP/1.x (or refuses `h2` in ALPN) is said to be one that does not speak
//! HTTP/2, which every observation of it then carries.

use super::{describe, Conn, Endpoint, Io, Job};
use crate::observation::Observation;
use bytes::Bytes;
use h2::client::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH, TE};
use hyper::Method;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) use crate::recording::{recorded_over_http2 as marked, PROTOCOL_HEADER};

/// The first bytes a target sent on a connection: how an HTTP/1.x answer to the HTTP/2
/// preface is told from an HTTP/2 failure.
type FirstBytes = Arc<OnceLock<Vec<u8>>>;

/// One live HTTP/2 connection: a handle to open streams on, what the target sent first,
/// and whether the connection has ended.
#[derive(Clone)]
struct Live {
    sender: SendRequest<Bytes>,
    first: FirstBytes,
    ended: Arc<AtomicBool>,
    /// Dropped with the last handle: tells the connection's task to close the connection
    /// once its last stream is done (the h2 crate does not notice on its own).
    _closer: Arc<tokio::sync::oneshot::Sender<()>>,
}

/// The HTTP/2 connection to one target shared by the senders of one thread (or of one
/// open-model pool), opened on first use and again after it ends.
///
/// Streams go through the h2 crate itself, not hyper's client connection: hyper hands
/// every request over a channel to its connection task, which spawns a task per request to
/// wait for the answer (and one more to send a body it cannot send at once). Here the
/// sender's own task opens the stream, queues the body and reads the answer; the
/// connection's task only reads and writes frames. That took a fifth of the client's CPU
/// time per request off, at full rate (benches/h2_vs_h2load.sh).
pub(crate) struct Link {
    endpoint: Arc<Endpoint>,
    /// The live connection, looked at by every request: a lock that is never held across
    /// an `.await`, so never waited on for long.
    live: Mutex<Option<Live>>,
    /// Held by the one sender opening a connection while the others wait for it.
    opening: tokio::sync::Mutex<()>,
}

impl Link {
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Arc<Self> {
        Arc::new(Link {
            endpoint,
            live: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
        })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Live>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live connection, if there is one that has not ended.
    fn current(&self) -> Option<Live> {
        let slot = self.slot();
        slot.as_ref()
            .filter(|live| !live.ended.load(Ordering::Acquire))
            .cloned()
    }

    /// The live connection, opened (by one sender while the others wait) when there is none.
    async fn live(&self) -> Result<Live, String> {
        if let Some(live) = self.current() {
            return Ok(live);
        }
        let _opening = self.opening.lock().await;
        if let Some(live) = self.current() {
            return Ok(live);
        }
        *self.slot() = None;
        let live = open(&self.endpoint).await?;
        *self.slot() = Some(live.clone());
        Ok(live)
    }

    /// Stops using the connection of `ended` (it refused a new stream, e.g. after the
    /// server's GOAWAY): the next request opens another.
    fn forget(&self, ended: &Arc<AtomicBool>) {
        let mut slot = self.slot();
        if slot
            .as_ref()
            .is_some_and(|kept| Arc::ptr_eq(&kept.ended, ended))
        {
            *slot = None;
        }
    }

    /// Sends `job` as one stream and reads the whole answer: status, body bytes and the
    /// gRPC status (trailers, or the headers of a trailers-only answer).
    async fn round_trip(&self, job: &Job) -> Result<(u16, u64, Option<u8>), String> {
        let (request, body) = request(&self.endpoint, job)?;
        // Its own handle on the connection, kept to the end of the stream.
        let Live {
            sender,
            first,
            ended,
            _closer,
        } = self.live().await?;
        let fail = |what: &str, e: &h2::Error| explain(&first, what, e);
        let mut sender = match sender.ready().await {
            Ok(sender) => sender,
            Err(e) => {
                self.forget(&ended);
                return Err(fail("connect", &e));
            }
        };
        let (response, mut stream) = sender
            .send_request(request, body.is_empty())
            .map_err(|e| fail("request", &e))?;
        if !body.is_empty() {
            // Queued whole: the connection sends it as the flow-control windows allow.
            stream
                .send_data(body, true)
                .map_err(|e| fail("request", &e))?;
        }
        let response = response.await.map_err(|e| fail("request", &e))?;
        let status = response.status().as_u16();
        let mut grpc = crate::http::grpc_status(response.headers());
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(data) = body.data().await {
            let data = data.map_err(|e| fail("reading body", &e))?;
            bytes += data.len() as u64;
            // Counted, not kept: the window is open again at once.
            let _ = body.flow_control().release_capacity(data.len());
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| fail("reading body", &e))?;
        if let Some(trailers) = trailers {
            grpc = crate::http::grpc_status(&trailers).or(grpc);
        }
        Ok((status, bytes, grpc))
    }
}

impl Conn {
    /// [`Conn::exchange`] for an exchange recorded over HTTP/2: a stream on the thread's
    /// shared connection to the target, within the timeout counted from its due time.
    pub(super) async fn exchange_h2(&mut self, job: &Job) -> Observation {
        let timeout = self.endpoint.timeout;
        // A stream cut off by the timeout is reset; the connection goes on.
        let outcome = tokio::time::timeout_at(job.due + timeout, self.link.round_trip(job)).await;
        let (result, grpc) = match outcome {
            Ok(Ok((status, bytes, grpc))) => (Ok((status, bytes)), grpc),
            Ok(Err(e)) => (Err(e), None),
            Err(_) => (
                Err(format!("timeout after {} ms", timeout.as_millis())),
                None,
            ),
        };
        let latency_us = u64::try_from(job.due.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut observation = job.observed(&self.endpoint.target, result, latency_us);
        observation.grpc_status = grpc;
        observation
    }
}

/// The HTTP/2 request head for `job` and its body: [`super::build_request`]'s, without the
/// marker, with the recorded Host as the `:authority` when the rewrite keeps it, and
/// `te: trailers` again when the client asked for trailers (gRPC does; the other hop-by-hop
/// fields are gone). Then what hyper's client did to it: no connection-specific field
/// (only `--set-header` can add one), and a Content-Length from the body.
fn request(endpoint: &Endpoint, job: &Job) -> Result<(hyper::Request<()>, Bytes), String> {
    let exchange = &job.exchange;
    let built = super::build_request(&endpoint.target, exchange, Bytes::new(), &endpoint.rewrite)?;
    let (mut parts, _) = built.into_parts();
    let headers = &mut parts.headers;
    headers.remove(PROTOCOL_HEADER);
    if let Some(host) = headers.remove(hyper::header::HOST) {
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.authority = Some(
            hyper::http::uri::Authority::try_from(host.as_bytes())
                .map_err(|e| format!("request {}: Host as :authority: {e}", exchange.id))?,
        );
        parts.uri = hyper::Uri::from_parts(uri)
            .map_err(|e| format!("request {}: Host as :authority: {e}", exchange.id))?;
    }
    let te = exchange.request_head.header_values("te");
    if crate::http::lists_token(te, b"trailers") {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if !endpoint.rewrite.set_headers.is_empty() {
        strip_connection_fields(headers);
    }
    let body = job.body.clone();
    let defined = !matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::CONNECT
    );
    if !body.is_empty() || defined {
        headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(body.len()));
    }
    Ok((hyper::Request::from_parts(parts, ()), body))
}

/// Removes the fields HTTP/2 forbids (RFC 9113 §8.2.2), as hyper's client did: the h2
/// crate refuses a request carrying one.
fn strip_connection_fields(headers: &mut HeaderMap) {
    for name in [
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
    if let Some(connection) = headers.remove(CONNECTION) {
        if let Ok(names) = connection.to_str() {
            for name in names.split(',') {
                headers.remove(name.trim());
            }
        }
    }
}

/// Opens an HTTP/2 connection to the endpoint and starts its driver on this runtime.
async fn open(endpoint: &Endpoint) -> Result<Live, String> {
    let refused = |why: &str| {
        format!("HTTP/2: the target does not speak HTTP/2 ({why}); the exchange was recorded over HTTP/2")
    };
    let tcp = super::connect_tcp(endpoint).await?;
    let io: Box<dyn Io> = match &endpoint.h2_tls {
        None => Box::new(tcp),
        Some((connector, name)) => {
            let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                let text = describe("connect", &e);
                if text.contains("NoApplicationProtocol") {
                    refused("it refused h2 in TLS ALPN")
                } else {
                    text
                }
            })?;
            match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") | None => Box::new(tls),
                Some(other) => {
                    let chosen = String::from_utf8_lossy(other).into_owned();
                    return Err(refused(&format!("it chose {chosen} in TLS ALPN")));
                }
            }
        }
    };
    let first = FirstBytes::default();
    let io = FirstRead {
        io,
        first: Arc::clone(&first),
    };
    let (sender, conn) = builder()
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| explain(&first, "connect", &e))?;
    let ended = Arc::new(AtomicBool::new(false));
    let (closer, closed) = tokio::sync::oneshot::channel::<()>();
    let flag = Arc::clone(&ended);
    tokio::spawn(async move {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            // Every handle gone: woken, the connection says GOAWAY once its streams are done.
            _ = closed => { let _ = conn.await; }
        }
        flag.store(true, Ordering::Release);
    });
    Ok(Live {
        sender,
        first,
        ended,
        _closer: Arc::new(closer),
    })
}

/// The settings hyper's client connection used (its defaults): windows larger than the
/// protocol's 64 KiB, so that a large answer is not held up by window updates, no server
/// push, and a bound on the header list and on the stream resets a broken peer may cause.
fn builder() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_max_send_streams(100)
        .initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_frame_size(16 << 10)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(1 << 20)
        .max_local_error_reset_streams(Some(1024))
        .enable_push(false);
    builder
}

/// A short reason for an HTTP/2 failure. An HTTP/2 server's first frame is its SETTINGS:
/// when the target's first bytes were anything else (an HTTP/1.x status line, or an HTML
/// error page), it does not speak HTTP/2; when it sent nothing before the connection failed,
/// it likely does not (an HTTP/1.x server's answer to the preface may be lost to the reset
/// of the connection).
fn explain(first: &FirstBytes, what: &str, error: &h2::Error) -> String {
    const RECORDED: &str = "the exchange was recorded over HTTP/2";
    // An I/O failure is told by its own cause, as hyper told it.
    let error: &(dyn std::error::Error + 'static) = match error.get_io() {
        Some(io) => io,
        None => error,
    };
    match first.get() {
        // Bytes 0-2 the length, byte 3 the type: 4 is SETTINGS.
        Some(bytes) if bytes.get(3).is_some_and(|&kind| kind != 4) => format!(
            "HTTP/2: the target does not speak HTTP/2: it answered the connection preface (h2c \
             prior knowledge) with `{}`, not HTTP/2's SETTINGS; {RECORDED}",
            bytes[..bytes.len().min(12)].escape_ascii()
        ),
        None => format!(
            "HTTP/2: the target may not speak HTTP/2: the connection failed before any answer \
             to the HTTP/2 preface (h2c prior knowledge); {RECORDED} ({})",
            describe(what, error)
        ),
        _ => describe(what, error),
    }
}

/// A byte stream that keeps the first bytes read from it.
struct FirstRead {
    io: Box<dyn Io>,
    first: FirstBytes,
}

impl AsyncRead for FirstRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.first.get().is_none() && buf.filled().len() > before {
            let new = &buf.filled()[before..];
            let _ = self.first.set(new[..new.len().min(16)].to_vec());
        }
        polled
    }
}

impl AsyncWrite for FirstRead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::Exchange;
    use std::time::Duration;

    fn job(request: &'static [u8]) -> Job {
        let request = bytes::Bytes::from_static(request);
        let exchange = Exchange {
            id: "1".into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        };
        Job::new(Arc::new(exchange), tokio::time::Instant::now())
    }

    fn endpoint(keep_host: bool) -> Endpoint {
        let target = crate::replay::Target::parse("t=http://127.0.0.1:9/p").unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let rewrite = crate::replay::Rewrite {
            keep_host,
            ..Default::default()
        };
        Endpoint::new(
            &target,
            false,
            &tls,
            Arc::new(rewrite),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    const CALL: &[u8] =
        b"POST /pkg.S/M HTTP/1.1\r\nHost: rec.example:50051\r\nX-Nprt-Protocol: HTTP/2\r\n\
        TE: trailers\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n\
        7\r\n\0\0\0\0\x02hi\r\n0\r\nx-t: 1\r\n\r\n";

    /// What an [`h2c_server`] counted: connections accepted and connections ended.
    #[derive(Default)]
    struct Counts {
        accepted: std::sync::atomic::AtomicUsize,
        ended: std::sync::atomic::AtomicUsize,
    }

    impl Counts {
        fn get(&self) -> (usize, usize) {
            let load = |n: &std::sync::atomic::AtomicUsize| n.load(Ordering::SeqCst);
            (load(&self.accepted), load(&self.ended))
        }
    }

    /// An h2c server answering every request with `ok` and the trailer `grpc-status: 0`
    /// (after 5 s for the path `/slow`), dropping each connection after `hold` if given;
    /// its address and what it counted.
    async fn h2c_server(hold: Option<Duration>) -> (std::net::SocketAddr, Arc<Counts>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let counter = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.accepted.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    if req.uri().path() == "/slow" {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    let answer = crate::testbed::grpc::answer(
                        bytes::Bytes::from_static(b"\0\0\0\0\x02ok"),
                        false,
                        None,
                    );
                    Ok::<_, std::convert::Infallible>(answer)
                });
                let conn =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    match hold {
                        Some(hold) => drop(tokio::time::timeout(hold, conn).await),
                        None => drop(conn.await),
                    }
                    counter.ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (addr, counts)
    }

    /// An endpoint for `addr` with `timeout`, and a link to it.
    fn link_to(addr: std::net::SocketAddr, timeout: Duration) -> (Arc<Endpoint>, Arc<Link>) {
        let target = crate::replay::Target::parse(&format!("t=http://{addr}")).unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let endpoint =
            Arc::new(Endpoint::new(&target, false, &tls, Arc::default(), timeout).unwrap());
        let link = Link::new(Arc::clone(&endpoint));
        (endpoint, link)
    }

    fn answered(obs: &Observation) -> (Option<u16>, u64, Option<u8>, &Option<String>) {
        (obs.status, obs.bytes, obs.grpc_status, &obs.error)
    }

    #[tokio::test]
    async fn many_senders_share_one_connection_as_concurrent_streams() {
        let (addr, counts) = h2c_server(None).await;
        let (endpoint, link) = link_to(addr, Duration::from_secs(5));
        let mut conns: Vec<Conn> = (0..16)
            .map(|_| Conn::sharing(Arc::clone(&endpoint), Arc::clone(&link)))
            .collect();
        for _ in 0..5 {
            let call = job(CALL);
            let sent = conns.iter_mut().map(|c| c.exchange(&call));
            for obs in crate::replay::closed::join_all(sent).await {
                assert_eq!(answered(&obs), (Some(200), 7, Some(0), &None));
            }
        }
        assert_eq!(counts.get(), (1, 0));
        // The link and its senders gone, the connection is closed (the h2 crate would keep
        // it open, idle, for as long as the runtime runs).
        drop((conns, link));
        for _ in 0..100 {
            if counts.get().1 == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counts.get(), (1, 1));
    }

    #[tokio::test]
    async fn a_connection_the_server_dropped_is_replaced() {
        let (addr, counts) = h2c_server(Some(Duration::from_millis(100))).await;
        let (endpoint, link) = link_to(addr, Duration::from_secs(5));
        let mut conn = Conn::sharing(endpoint, link);
        for round in 1..=2 {
            let obs = conn.exchange(&job(CALL)).await;
            assert_eq!(answered(&obs), (Some(200), 7, Some(0), &None), "{round}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(counts.get(), (2, 2));
    }

    #[tokio::test]
    async fn a_stream_past_its_timeout_is_cut_off_and_the_connection_goes_on() {
        let (addr, counts) = h2c_server(None).await;
        let (endpoint, link) = link_to(addr, Duration::from_millis(300));
        let mut conn = Conn::sharing(endpoint, link);
        let slow = conn
            .exchange(&job(
                b"POST /slow HTTP/1.1\r\nX-Nprt-Protocol: HTTP/2\r\n\r\n",
            ))
            .await;
        assert_eq!(slow.error.as_deref(), Some("timeout after 300 ms"));
        assert_eq!((slow.status, slow.grpc_status), (None, None));
        let obs = conn.exchange(&job(CALL)).await;
        assert_eq!(answered(&obs), (Some(200), 7, Some(0), &None));
        assert_eq!(counts.get(), (1, 0));
    }

    #[test]
    fn the_marker_chooses_http2_and_is_not_sent() {
        let call = job(CALL);
        assert!(call.h2);
        assert!(!job(b"GET / HTTP/1.1\r\nX-Nprt-Protocol: HTTP/1.1\r\n\r\n").h2);
        assert!(job(b"GET / HTTP/1.1\r\nx-nprt-protocol:  http/2 \r\n\r\n").h2);
        let (sent, body) = request(&endpoint(false), &call).unwrap();
        assert_eq!(sent.uri(), "http://127.0.0.1:9/p/pkg.S/M");
        let h = sent.headers();
        assert!(h.get("x-nprt-protocol").is_none() && h.get("host").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["content-length"], "7");
        assert_eq!(&body[..], b"\0\0\0\0\x02hi");
        // The recorded Host kept: it is the :authority.
        let (kept, _) = request(&endpoint(true), &call).unwrap();
        assert_eq!(kept.uri(), "http://rec.example:50051/p/pkg.S/M");
        assert!(kept.headers().get("host").is_none());
    }

    /// Fields HTTP/2 forbids, which `--set-header` may add, are dropped (the h2 crate would
    /// refuse the request); Content-Length comes from the body, and a GET without one has
    /// none, as hyper's client did it.
    #[test]
    fn connection_fields_are_dropped_and_content_length_follows_the_body() {
        let target = crate::replay::Target::parse("t=http://127.0.0.1:9").unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let set = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        let rewrite = crate::replay::Rewrite {
            set_headers: vec![
                set("Connection", "close, x-hop"),
                set("x-hop", "1"),
                set("Upgrade", "websocket"),
                set("Keep-Alive", "5"),
                set("x-kept", "yes"),
            ],
            ..Default::default()
        };
        let rewritten = Endpoint::new(
            &target,
            false,
            &tls,
            Arc::new(rewrite),
            Duration::from_secs(1),
        )
        .unwrap();
        let (sent, _) = request(&rewritten, &job(CALL)).unwrap();
        let names: Vec<_> = sent.headers().keys().map(|n| n.as_str()).collect();
        for gone in ["connection", "x-hop", "upgrade", "keep-alive"] {
            assert!(!names.contains(&gone), "{gone} in {names:?}");
        }
        assert_eq!(sent.headers()["x-kept"], "yes");
        assert_eq!(sent.headers()["te"], "trailers");

        let get = job(b"GET /a HTTP/1.1\r\nTE: gzip\r\nX-Nprt-Protocol: HTTP/2\r\n\r\n");
        let (sent, body) = request(&endpoint(false), &get).unwrap();
        assert!(body.is_empty());
        assert!(sent.headers().get("content-length").is_none());
        assert!(sent.headers().get("te").is_none());
        let post = job(b"POST /a HTTP/1.1\r\nX-Nprt-Protocol: HTTP/2\r\n\r\n");
        let (sent, _) = request(&endpoint(false), &post).unwrap();
        assert_eq!(sent.headers()["content-length"], "0");
    }
}
