//! Exchanges recorded over HTTP/2 (the capture marks them `X-Nprt-Protocol: HTTP/2`; gRPC's
//! among them) are sent over HTTP/2 again: a gRPC server refuses HTTP/1.1.
//!
//! They go as concurrent streams on one connection per target shared by the senders of one
//! thread (a [`Link`]): h2c with prior knowledge for http:// targets, ALPN `h2` alone for
//! https://. The connection is driven by a task of its own on the thread's runtime, so a
//! lane thread's streams never wait on another thread. A target that answers the HTTP/2
//! preface in HTTP/1.x (or refuses `h2` in ALPN) is said to be one that does not speak
//! HTTP/2, which every observation of it then carries.

use super::{describe, Body, Conn, Endpoint, Io, Job, CONNECT_TIMEOUT};
use crate::observation::Observation;
use http_body_util::BodyExt;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) use crate::recording::{recorded_over_http2 as marked, PROTOCOL_HEADER};

/// The first bytes a target sent on a connection: how an HTTP/1.x answer to the HTTP/2
/// preface is told from an HTTP/2 failure.
type FirstBytes = Arc<OnceLock<Vec<u8>>>;

/// One live HTTP/2 connection: a handle to open streams on, and what the target sent first.
#[derive(Clone)]
struct Live {
    sender: http2::SendRequest<Body>,
    first: FirstBytes,
}

/// The HTTP/2 connection to one target shared by the senders of one thread (or of one
/// open-model pool), opened on first use and again after it ends.
pub(crate) struct Link {
    endpoint: Arc<Endpoint>,
    live: tokio::sync::Mutex<Option<Live>>,
}

impl Link {
    pub(crate) fn new(endpoint: Arc<Endpoint>) -> Arc<Self> {
        Arc::new(Link {
            endpoint,
            live: tokio::sync::Mutex::new(None),
        })
    }

    /// The live connection, opened (by one sender while the others wait) when there is none.
    async fn live(&self) -> Result<Live, String> {
        let mut slot = self.live.lock().await;
        if let Some(live) = slot.as_ref().filter(|l| !l.sender.is_closed()) {
            return Ok(live.clone());
        }
        *slot = None;
        let live = open(&self.endpoint).await?;
        *slot = Some(live.clone());
        Ok(live)
    }

    /// Sends `job` as one stream and reads the whole answer: status, body bytes and the
    /// gRPC status (trailers, or the headers of a trailers-only answer).
    async fn round_trip(&self, job: &Job) -> Result<(u16, u64, Option<u8>), String> {
        let request = request(&self.endpoint, job)?;
        let Live { mut sender, first } = self.live().await?;
        let fail = |what: &str, e: &hyper::Error| explain(&first, what, e);
        sender.ready().await.map_err(|e| fail("connect", &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("request", &e))?;
        let status = response.status().as_u16();
        let mut grpc = crate::http::grpc_status(response.headers());
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail("reading body", &e))?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
            } else if let Some(trailers) = frame.trailers_ref() {
                grpc = crate::http::grpc_status(trailers).or(grpc);
            }
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

/// The HTTP/2 request for `job`: [`super::build_request`]'s, without the marker, with the
/// recorded Host as the `:authority` when the rewrite keeps it, and `te: trailers` again
/// when the client asked for trailers (gRPC does; the other hop-by-hop fields are gone).
fn request(endpoint: &Endpoint, job: &Job) -> Result<hyper::Request<Body>, String> {
    let exchange = &job.exchange;
    let mut request = super::build_request(
        &endpoint.target,
        exchange,
        job.body.clone(),
        &endpoint.rewrite,
    )?;
    let headers = request.headers_mut();
    headers.remove(PROTOCOL_HEADER);
    if let Some(host) = headers.remove(hyper::header::HOST) {
        let mut parts = request.uri().clone().into_parts();
        parts.authority = Some(
            hyper::http::uri::Authority::try_from(host.as_bytes())
                .map_err(|e| format!("request {}: Host as :authority: {e}", exchange.id))?,
        );
        *request.uri_mut() = hyper::Uri::from_parts(parts)
            .map_err(|e| format!("request {}: Host as :authority: {e}", exchange.id))?;
    }
    let te = exchange.request_head.header_values("te");
    if crate::http::lists_token(te, b"trailers") {
        request.headers_mut().insert(
            hyper::header::TE,
            hyper::header::HeaderValue::from_static("trailers"),
        );
    }
    Ok(request)
}

/// Opens an HTTP/2 connection to the endpoint and starts its driver on this runtime.
async fn open(endpoint: &Endpoint) -> Result<Live, String> {
    let refused = |why: &str| {
        format!("HTTP/2: the target does not speak HTTP/2 ({why}); the exchange was recorded over HTTP/2")
    };
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| format!("connect: timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
    .map_err(|e| describe("connect", &e))?;
    let _ = tcp.set_nodelay(true);
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
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| explain(&first, "connect", &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Live { sender, first })
}

/// A short reason for an HTTP/2 failure. An HTTP/2 server's first frame is its SETTINGS:
/// when the target's first bytes were anything else (an HTTP/1.x status line, or an HTML
/// error page), it does not speak HTTP/2; when it sent nothing before the connection failed,
/// it likely does not (an HTTP/1.x server's answer to the preface may be lost to the reset
/// of the connection).
fn explain(first: &FirstBytes, what: &str, error: &hyper::Error) -> String {
    const RECORDED: &str = "the exchange was recorded over HTTP/2";
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

    /// An h2c server answering every request with `ok` and the trailer `grpc-status: 0`;
    /// its address and the number of connections it accepted.
    async fn h2c_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let service = hyper::service::service_fn(|_req| async {
                    let answer = crate::testbed::grpc::answer(
                        bytes::Bytes::from_static(b"\0\0\0\0\x02ok"),
                        false,
                        None,
                    );
                    Ok::<_, std::convert::Infallible>(answer)
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn many_senders_share_one_connection_as_concurrent_streams() {
        let (addr, accepted) = h2c_server().await;
        let target = crate::replay::Target::parse(&format!("t=http://{addr}")).unwrap();
        let tls = crate::tls::client_config(None).unwrap();
        let endpoint = Arc::new(
            Endpoint::new(&target, false, &tls, Arc::default(), Duration::from_secs(5)).unwrap(),
        );
        let link = Link::new(Arc::clone(&endpoint));
        let mut conns: Vec<Conn> = (0..16)
            .map(|_| Conn::sharing(Arc::clone(&endpoint), Arc::clone(&link)))
            .collect();
        for _ in 0..5 {
            let call = job(CALL);
            let sent = conns.iter_mut().map(|c| c.exchange(&call));
            for obs in crate::replay::closed::join_all(sent).await {
                assert_eq!(
                    (obs.status, obs.bytes, obs.grpc_status, &obs.error),
                    (Some(200), 7, Some(0), &None)
                );
            }
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn the_marker_chooses_http2_and_is_not_sent() {
        let call = job(CALL);
        assert!(call.h2);
        assert!(!job(b"GET / HTTP/1.1\r\nX-Nprt-Protocol: HTTP/1.1\r\n\r\n").h2);
        assert!(job(b"GET / HTTP/1.1\r\nx-nprt-protocol:  http/2 \r\n\r\n").h2);
        let sent = request(&endpoint(false), &call).unwrap();
        assert_eq!(sent.uri(), "http://127.0.0.1:9/p/pkg.S/M");
        let h = sent.headers();
        assert!(h.get("x-nprt-protocol").is_none() && h.get("host").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(
            &sent.into_body().into_inner().unwrap()[..],
            b"\0\0\0\0\x02hi"
        );
        // The recorded Host kept: it is the :authority.
        let kept = request(&endpoint(true), &call).unwrap();
        assert_eq!(kept.uri(), "http://rec.example:50051/p/pkg.S/M");
        assert!(kept.headers().get("host").is_none());
    }
}
