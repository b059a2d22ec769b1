//! The one accept loop of every server nprt runs: the testbed, the shadow proxy, the metrics
//! endpoint and the deploy API.
//!
//! Each used to have a loop of its own with its own idea of a failed `accept`; one of them
//! ended `/metrics` for good on the first `EMFILE`. Here the policy is the same everywhere:
//! - a transient accept error ([`accept_error_is_transient`]: out of file descriptors, a
//!   connection that died in the queue) is logged and waited out with a growing back-off,
//!   and never ends the server; the connection waiting in the queue is accepted once a
//!   descriptor is free again;
//! - at most [`ServeOptions::max_connections`] connections are open at once; one beyond is
//!   closed at once (and reported to [`ServeOptions::on_full`]), so a flood cannot take every
//!   descriptor the process has;
//! - TLS, when configured, is handshaken on the connection's own task within
//!   [`ServeOptions::handshake_timeout`], so a slow client never holds up the accepting;
//! - when `shutdown` resolves, nothing more is accepted, open connections finish the
//!   requests in flight (idle keep-alive connections are closed), and whatever is still
//!   open after [`ServeOptions::grace`] is cut off;
//! - with [`ServeOptions::h2c_upgrade`], a plain connection's first request may upgrade it to
//!   HTTP/2 ([`h2c`]).

pub mod h2c;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The first pause after a failed accept; it doubles up to [`MAX_BACKOFF`] while accepting
/// keeps failing, so a full file table is neither spun on nor waited out for long.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether a failed `accept` is worth waiting out rather than the end of a server's
/// listening: no descriptor or buffer free for a moment (`EMFILE`, `ENFILE`, `ENOBUFS`,
/// `ENOMEM`), a connection that died in the queue, or, on Linux, a network error of the
/// connection being accepted, which accept(2) says to treat like `EAGAIN`.
pub fn accept_error_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::TimedOut
    ) {
        return true;
    }
    e.raw_os_error().is_some_and(|code| {
        [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EPROTO,
            libc::EPERM,
            libc::ENETDOWN,
            libc::ENETUNREACH,
            libc::ENOPROTOOPT,
            libc::EHOSTDOWN,
            libc::EHOSTUNREACH,
            libc::EOPNOTSUPP,
            #[cfg(target_os = "linux")]
            libc::ENONET,
        ]
        .contains(&code)
    })
}

/// How [`serve`] accepts and ends connections; everything else (protocols, timeouts of the
/// HTTP layer) is the caller's [`Builder`].
#[derive(Clone)]
pub struct ServeOptions {
    /// The server's name in log lines ("testbed", "shadow proxy", "metrics", "deploy API").
    pub name: &'static str,
    /// Serve TLS with this configuration (its ALPN protocols should match the builder's).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections open at once; one beyond is closed at once.
    pub max_connections: usize,
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long open requests may finish after `shutdown`.
    pub grace: Duration,
    /// Called for every connection closed because `max_connections` were open.
    pub on_full: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Take the h2c upgrade on plain connections ([`h2c`]), reading a connection's first
    /// request head within this long (a client slower than that is closed, as hyper's own
    /// header timeout would close it).
    pub h2c_upgrade: Option<Duration>,
}

impl ServeOptions {
    /// Plain TCP, 10 000 connections, 10 s for handshakes and for the grace period.
    pub fn new(name: &'static str) -> ServeOptions {
        ServeOptions {
            name,
            tls: None,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            on_full: None,
            h2c_upgrade: None,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("grace", &self.grace)
            .field("h2c_upgrade", &self.h2c_upgrade)
            .finish_non_exhaustive()
    }
}

/// Accepts connections on `listener` and serves each with `builder` and the service
/// `make_service` gives for its peer, until `shutdown` resolves; then lets the requests in
/// flight finish for `options.grace` (see the module's documentation for the policy).
///
/// # Errors
/// Only when accepting fails for a reason that is not transient (the listener itself is
/// broken); the connections open then are still given their grace period.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    options: ServeOptions,
    builder: Builder<TokioExecutor>,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let name = options.name;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let serving = Serving {
        name,
        builder: Arc::new(builder),
        acceptor: options.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        handshake_timeout: options.handshake_timeout,
        h2c_upgrade: options.h2c_upgrade,
    };
    let mut tasks = JoinSet::new();
    let mut backoff = FIRST_BACKOFF;
    let mut failure = None;
    tokio::pin!(shutdown);
    loop {
        // Finished connections leave the set as new ones come.
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = FIRST_BACKOFF;
                accepted
            }
            Err(e) if accept_error_is_transient(&e) => {
                tracing::warn!(
                    server = name,
                    error = %e,
                    retry_in_ms = backoff.as_millis() as u64,
                    "accept failed; waiting it out"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = &mut shutdown => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => {
                tracing::error!(server = name, error = %e, "accept failed for good; stopping");
                failure = Some(e);
                break;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(server = name, %peer, "connection limit reached; closed");
            if let Some(on_full) = &options.on_full {
                on_full();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (service, watcher) = (make_service(peer), graceful.watcher());
        let serving = serving.clone();
        tasks.spawn(async move {
            serving.connection(stream, peer, service, watcher).await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            server = name,
            open = tasks.len(),
            "connections still open after the grace period were cut off"
        );
    }
    tasks.shutdown().await;
    failure.map_or(Ok(()), Err)
}

/// What every connection's task needs.
#[derive(Clone)]
struct Serving {
    name: &'static str,
    builder: Arc<Builder<TokioExecutor>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
    h2c_upgrade: Option<Duration>,
}

impl Serving {
    /// Handshakes TLS when configured, then serves the connection.
    async fn connection<S, B>(
        self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        service: S,
        watcher: Watcher,
    ) where
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let name = self.name;
        let Some(acceptor) = &self.acceptor else {
            let Some(timeout) = self.h2c_upgrade else {
                return connection(&self.builder, TokioIo::new(stream), service, watcher, name)
                    .await;
            };
            let limits = crate::http::HeadLimits::default();
            match h2c::open(stream, &limits, timeout).await {
                Some(h2c::Opening::AsIs(io)) => {
                    connection(&self.builder, TokioIo::new(io), service, watcher, name).await
                }
                Some(h2c::Opening::Upgraded(io)) => {
                    let h2 = Builder::clone(&self.builder).http2_only();
                    connection(&h2, TokioIo::new(io), service, watcher, name).await
                }
                None => tracing::debug!(server = name, %peer, "no request head in time"),
            }
            return;
        };
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                connection(&self.builder, TokioIo::new(tls), service, watcher, name).await
            }
            Ok(Err(e)) => tracing::debug!(server = name, %peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(server = name, %peer, "TLS handshake timed out"),
        }
    }
}

/// Serves one connection, watched for the graceful shutdown.
async fn connection<I, S, B>(
    builder: &Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: Watcher,
    name: &'static str,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
        tracing::debug!(server = name, error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::body::Bytes;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn which_accept_errors_are_waited_out() {
        let os = std::io::Error::from_raw_os_error;
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ECONNABORTED,
        ] {
            assert!(accept_error_is_transient(&os(code)), "{code}");
        }
        for code in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            assert!(!accept_error_is_transient(&os(code)), "{code}");
        }
    }

    /// A server whose every answer takes `delay`; its address and the shutdown trigger.
    async fn slow_server(
        delay: Duration,
        mut options: ServeOptions,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
        Arc<AtomicU64>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&refused);
        options.on_full = Some(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            listener,
            options,
            Builder::new(TokioExecutor::new()),
            move |_| {
                hyper::service::service_fn(move |_req: Request<Incoming>| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                })
            },
            async {
                let _ = stopped.await;
            },
        ));
        (addr, stop, served, refused)
    }

    async fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_beyond_the_cap_is_closed_and_counted() {
        let mut options = ServeOptions::new("test");
        options.max_connections = 1;
        let (addr, _stop, _served, refused) =
            slow_server(Duration::from_millis(300), options).await;
        let first = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The one slot is taken: the second connection is closed without an answer.
        let second = get(addr).await.unwrap_or_default();
        assert_eq!(second, "");
        assert_eq!(refused.load(Ordering::SeqCst), 1);
        assert!(first.await.unwrap().unwrap().ends_with("ok"));
        // The slot is free again once the first connection's task has ended.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(get(addr).await.unwrap().ends_with("ok"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_lets_requests_in_flight_finish_within_the_grace_period() {
        let mut options = ServeOptions::new("test");
        options.grace = Duration::from_secs(5);
        let (addr, stop, served, _) = slow_server(Duration::from_millis(300), options).await;
        let in_flight = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let answer = in_flight.await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        served.await.unwrap().unwrap();
        // Nothing is accepted any more.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_still_open_after_the_grace_period_are_cut_off() {
        let mut options = ServeOptions::new("test");
        options.grace = Duration::from_millis(100);
        let (addr, stop, served, _) = slow_server(Duration::from_secs(30), options).await;
        let in_flight = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        // The cut-off connection is closed without an answer.
        let answer = tokio::time::timeout(Duration::from_secs(5), in_flight)
            .await
            .expect("the connection was closed")
            .unwrap()
            .unwrap_or_default();
        assert_eq!(answer, "");
    }
}
