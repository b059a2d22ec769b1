//! The accept loop every server shares (`nprt::net::serve`), under a full file table: the
//! real binary runs with a low `RLIMIT_NOFILE` (set for the child only, no root needed), its
//! descriptors are used up by idle client connections, and its endpoints must come back
//! once they are freed. One `EMFILE` used to end `/metrics` for good.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Descriptors the child may have open: enough to start, few enough to run out.
const NOFILE: libc::rlim_t = 64;

/// `nprt shadow` with `/metrics` under [`NOFILE`]; the child, the proxy's and the metrics'
/// addresses.
fn shadow_with_few_descriptors() -> (Child, String, String) {
    let closed = common::closed_port_url();
    let mut command = common::nprt();
    command
        .args([
            "shadow",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args([
            "--primary",
            &closed,
            "--shadow",
            &closed,
            "--duration",
            "60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child's own limit.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = command.spawn().expect("nprt shadow starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut metrics = None;
    let proxy = loop {
        let line = lines
            .next()
            .expect("nprt shadow printed its addresses")
            .unwrap();
        let addr = line
            .rsplit("http://")
            .next()
            .unwrap()
            .trim_end_matches("/metrics");
        if line.starts_with("nprt metrics on") {
            metrics = Some(addr.to_owned());
        } else if line.starts_with("nprt shadow listening on") {
            break addr.to_owned();
        }
    };
    (child, proxy, metrics.expect("the metrics address"))
}

/// Sends `GET /metrics` on `stream` and reads the whole answer (empty when the connection
/// was closed without one).
fn scrape(mut stream: TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn the_metrics_endpoint_outlives_a_full_file_table() {
    let (mut child, proxy, metrics) = shadow_with_few_descriptors();
    assert!(scrape(TcpStream::connect(&metrics).unwrap()).starts_with("HTTP/1.1 200"));

    // Idle clients of the proxy take every descriptor the child has left; the rest wait in
    // the proxy's listen queue.
    let held: Vec<TcpStream> = (0..2 * NOFILE)
        .map(|_| TcpStream::connect(&proxy).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A scrape now cannot be accepted: the metrics server's accept fails with EMFILE...
    let waiting = TcpStream::connect(&metrics).unwrap();
    let scraped = std::thread::spawn(move || scrape(waiting));
    std::thread::sleep(Duration::from_millis(500));
    // ...and is accepted and answered once the clients go and their descriptors are free.
    let freed = Instant::now();
    drop(held);
    let answer = scraped.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer:?}");
    assert!(answer.contains("nprt_shadow_requests_total"), "{answer}");
    eprintln!(
        "answered {:?} after the descriptors were freed",
        freed.elapsed()
    );
    // The endpoint goes on serving, and so does the proxy.
    assert!(scrape(TcpStream::connect(&metrics).unwrap()).starts_with("HTTP/1.1 200"));
    let mut client = TcpStream::connect(&proxy).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    // The primary is a closed port: the proxy answers 502 of its own.
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer:?}");

    let _ = child.kill();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = child.wait();
    // The full file table was met, by the metrics server too, and waited out.
    let metrics_waited = log.lines().any(|l| {
        l.contains("accept failed; waiting it out")
            && l.contains("metrics")
            && l.contains("os error 24")
    });
    assert!(metrics_waited, "{log}");
}
