//! Whether a server speaks HTTP/2, learned by a probe: requests from HTTP/2 clients are passed
//! on over HTTP/2 exactly to the servers that take it. An HTTP/1.1-only backend behind h2c
//! clients keeps working, and an h2c-only one (a gRPC server, a Go `h2c` handler) gets
//! HTTP/2 even for requests that are not gRPC calls.
//!
//! The probe speaks first and waits for the answer: over http://, the client's preface and
//! an empty SETTINGS frame, to which an HTTP/2 server answers with its SETTINGS and an
//! HTTP/1 server with an error or by closing; over https://, ALPN offering `h2` and
//! `http/1.1`. An unreachable server is not known yet: it is probed again, at most once a
//! second, when next asked about.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a probe may take, connecting included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The least time between two probes of a server not known yet.
const REPROBE: Duration = Duration::from_secs(1);

const UNKNOWN: u8 = 0;
const HTTP2: u8 = 1;
const HTTP1: u8 = 2;

/// What one server speaks, probed once it is first asked about.
pub struct Http2Support {
    uri: hyper::Uri,
    tls: Arc<rustls::ClientConfig>,
    state: AtomicU8,
    /// Held while probing, with the time of the last probe: callers asking meanwhile wait
    /// for its answer rather than guess.
    probing: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Http2Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Support")
            .field("uri", &self.uri)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Http2Support {
    /// The server at `uri` (its scheme and authority), trusted with the system's roots plus
    /// `extra_ca` for https.
    ///
    /// # Errors
    /// When the extra CA cannot be read.
    pub fn new(
        uri: hyper::Uri,
        extra_ca: Option<&std::path::Path>,
    ) -> Result<Arc<Self>, crate::tls::TlsError> {
        Ok(Arc::new(Http2Support {
            uri,
            tls: Arc::new(crate::tls::client_config(extra_ca)?),
            state: AtomicU8::new(UNKNOWN),
            probing: tokio::sync::Mutex::new(None),
        }))
    }

    /// Whether the server is known to speak HTTP/2, without waiting: while it is not known
    /// yet (it could not be reached), a probe is started in the background.
    pub fn known(self: &Arc<Self>) -> bool {
        match self.state.load(Ordering::Relaxed) {
            HTTP2 => true,
            HTTP1 => false,
            _ => {
                if let Ok(last) = self.probing.try_lock() {
                    if last.is_none_or(|at| at.elapsed() >= REPROBE) {
                        drop(last);
                        let this = Arc::clone(self);
                        tokio::spawn(async move { this.speaks_http2().await });
                    }
                }
                false
            }
        }
    }

    /// Whether the server speaks HTTP/2: known, or probed now (the first caller probes,
    /// others wait for it). `false` while the server cannot be reached.
    pub async fn speaks_http2(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            HTTP2 => return true,
            HTTP1 => return false,
            _ => {}
        }
        let mut last = self.probing.lock().await;
        match self.state.load(Ordering::Relaxed) {
            HTTP2 => return true,
            HTTP1 => return false,
            _ => {}
        }
        if last.is_some_and(|at| at.elapsed() < REPROBE) {
            return false;
        }
        *last = Some(Instant::now());
        let answer = tokio::time::timeout(PROBE_TIMEOUT, probe(&self.uri, &self.tls))
            .await
            .ok()
            .flatten();
        match answer {
            Some(yes) => {
                tracing::debug!(server = %self.uri, http2 = yes, "probed");
                self.state
                    .store(if yes { HTTP2 } else { HTTP1 }, Ordering::Relaxed);
                yes
            }
            None => false,
        }
    }
}

/// Servers that get the same requests (the canary and a baseline copy): they get them over
/// HTTP/2 only when every one speaks it, so both sides of a comparison are reached alike.
#[derive(Debug, Clone, Default)]
pub struct Servers(Vec<Arc<Http2Support>>);

impl Servers {
    /// # Errors
    /// When the extra CA cannot be read.
    pub fn new<'a>(
        uris: impl IntoIterator<Item = &'a hyper::Uri>,
        extra_ca: Option<&std::path::Path>,
    ) -> Result<Self, crate::tls::TlsError> {
        let support = uris
            .into_iter()
            .map(|uri| Http2Support::new(uri.clone(), extra_ca))
            .collect::<Result<_, _>>()?;
        Ok(Servers(support))
    }

    /// Probes every server at once (bounded by the probe timeout), so that the first requests
    /// are sent the right way.
    pub async fn probe(&self) {
        let probes: Vec<_> = self
            .0
            .iter()
            .map(|server| {
                let server = Arc::clone(server);
                tokio::spawn(async move { server.speaks_http2().await })
            })
            .collect();
        for probe in probes {
            let _ = probe.await;
        }
    }

    /// Whether every server is known to speak HTTP/2, without waiting ([`Http2Support::known`]).
    pub fn known(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(Http2Support::known)
    }
}

/// `Some(true)` when the server speaks HTTP/2, `Some(false)` when it answered as an HTTP/1
/// server, `None` when it could not be reached.
async fn probe(uri: &hyper::Uri, tls: &Arc<rustls::ClientConfig>) -> Option<bool> {
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    if !https {
        return Some(answers_settings(tcp).await);
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).ok()?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .ok()?;
    Some(stream.get_ref().1.alpn_protocol() == Some(b"h2"))
}

/// Sends the preface and an empty SETTINGS frame; an HTTP/2 server's first frame is its
/// SETTINGS (RFC 9113 §3.4).
async fn answers_settings<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> bool {
    let mut hello = crate::net::h2c::PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    if stream.write_all(&hello).await.is_err() {
        return false;
    }
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.is_ok() && is_settings_frame_head(&head)
}

/// A frame head of type SETTINGS without ACK on stream 0.
fn is_settings_frame_head(head: &[u8; 9]) -> bool {
    head[3] == 0x4 && head[4] & 0x1 == 0 && head[5..9] == [0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_settings_frame_on_stream_zero_tells_http2() {
        assert!(is_settings_frame_head(&[0, 0, 6, 0x4, 0, 0, 0, 0, 0]));
        assert!(!is_settings_frame_head(b"HTTP/1.1 "));
        assert!(!is_settings_frame_head(&[0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]));
        assert!(!is_settings_frame_head(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0]));
    }

    #[tokio::test]
    async fn an_http1_server_and_a_closed_port_are_told_apart_from_an_http2_one() {
        let h1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h1_addr = h1.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = h1.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let h2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h2_addr = h2.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = h2.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Empty::<
                    bytes::Bytes,
                >::new()))
            });
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                .await;
        });
        let support = |addr: std::net::SocketAddr| {
            Http2Support::new(format!("http://{addr}").parse().unwrap(), None).unwrap()
        };
        assert!(support(h2_addr).speaks_http2().await);
        let h1 = support(h1_addr);
        assert!(!h1.speaks_http2().await);
        assert_eq!(h1.state.load(Ordering::Relaxed), HTTP1);
        let closed_addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let closed = support(closed_addr);
        assert!(!closed.speaks_http2().await);
        assert_eq!(
            closed.state.load(Ordering::Relaxed),
            UNKNOWN,
            "probed again later"
        );
    }
}
