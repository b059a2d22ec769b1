//! One connection against scripted servers on loopback: every response framing, keep-alive and
//! replacement, HTTPS over HTTP/1.1, malformed and refused answers; the shared-name cache.

use super::*;

#[test]
fn names_are_shared_and_bounded() {
    let mut names = Names::default();
    let a = names.route("GET", "/users/17?x=1", None);
    let b = names.route("GET", "/users/42", None);
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
        Arc::ptr_eq(&a, &names.route("GET", "/users/9", None)),
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
