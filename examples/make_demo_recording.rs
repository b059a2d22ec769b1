//! Makes `replay/demo.gor`, the recording `nprt demo` replays.
//!
//! Traffic of a small shop API is generated (Poisson arrivals, a realistic route mix, JSON and
//! chunked uploads), every request is sent over keep-alive TCP connections to a real `nprt`
//! testbed, and the raw response bytes and measured latencies are written with nprt's own
//! `.gor` writer. Request timestamps follow the generated arrival times, so the recording
//! replays at its original pace; the latencies are the measured ones.
//!
//! Run: `cargo run --release --example make_demo_recording -- replay/demo.gor [EXCHANGES]`

use nprt::http::{frame_request, frame_response, Framed};
use nprt::recording::{Exchange, GorWriter, RecordedResponse};
use nprt::testbed::{RouteEffect, RouteRule, TestbedConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// 2026-11-02 10:00:00 UTC: a fixed start so the recording is reproducible.
const START_NS: u64 = 1_793_613_600_000_000_000;
/// Mean arrivals per second.
const RATE: f64 = 25.0;
/// Keep-alive connections the traffic is spread over, like a few browsers and an app.
const CONNECTIONS: usize = 6;

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.0 Safari/605.1.15",
    "shop-app/4.12.0 (Android 15)",
    "okhttp/4.12.0",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "replay/demo.gor".into());
    let count: usize = args.next().map_or(Ok(3000), |n| n.parse())?;
    fastrand::seed(20_181_026);

    let addr = start_testbed()?;
    let mut connections: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(addr))
        .collect::<Result<_, _>>()?;
    for c in &connections {
        c.set_nodelay(true)?;
    }
    let mut writer = GorWriter::create(&out)?;
    let mut at_ns = START_NS;
    for i in 0..count {
        // Exponential inter-arrival times: a Poisson process at RATE per second.
        at_ns += (-(1.0 - fastrand::f64()).ln() / RATE * 1e9) as u64;
        let request = make_request(i);
        let conn = &mut connections[fastrand::usize(..CONNECTIONS)];
        let sent = Instant::now();
        conn.write_all(&request)?;
        let response = read_response(conn, &request)?;
        let latency_ns = sent.elapsed().as_nanos() as u64;
        let Framed::Complete(req) = frame_request(&request)? else {
            return Err("generated an incomplete request".into());
        };
        let Framed::Complete(res) = frame_response(&response, req.head.method(), false)? else {
            return Err("read an incomplete response".into());
        };
        writer.write_exchange(&Exchange {
            id: nprt::recording::new_id().into(),
            start_ns: at_ns,
            request: request.into(),
            request_head: req.head,
            response: Some(RecordedResponse {
                bytes: response.into(),
                head: res.head,
                latency_ns,
            }),
        })?;
    }
    let path = writer.finish()?;
    eprintln!("wrote {count} exchanges to {}", path.display());
    Ok(())
}

/// The stable service the recording was taken from: a few milliseconds, search slower.
fn start_testbed() -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let config = TestbedConfig {
        latency_ms: 2.0,
        jitter_ms: 3.0,
        error_rate: 0.0,
        routes: vec![RouteRule {
            pattern: "/api/search".into(),
            effect: RouteEffect::LatencyMs(12.0),
        }],
        ..TestbedConfig::default()
    };
    std::thread::spawn(move || runtime.block_on(nprt::testbed::serve(listener, config, None)));
    Ok(addr)
}

fn make_request(i: usize) -> Vec<u8> {
    let user = uuid();
    let product = fastrand::u32(1000..1600);
    let (method, target, body, chunked) = match fastrand::u32(0..100) {
        0..=19 => {
            let sort = ["price", "rating", "new"][fastrand::usize(..3)];
            let page = fastrand::u32(1..8);
            (
                "GET",
                format!("/api/products?page={page}&sort={sort}"),
                None,
                false,
            )
        }
        20..=49 => ("GET", format!("/api/products/{product}"), None, false),
        50..=59 => ("GET", format!("/api/users/{user}"), None, false),
        60..=69 => ("GET", "/api/cart".to_owned(), None, false),
        70..=76 => {
            let body = format!(
                "{{\"product_id\":{product},\"quantity\":{},\"user\":\"{user}\"}}",
                fastrand::u32(1..4)
            );
            // Mobile clients stream their uploads.
            (
                "POST",
                "/api/cart/items".to_owned(),
                Some(body),
                fastrand::bool(),
            )
        }
        77..=78 => ("DELETE", format!("/api/cart/items/{product}"), None, false),
        79..=80 => {
            let body = format!(
                "{{\"newsletter\":{},\"currency\":\"EUR\"}}",
                fastrand::bool()
            );
            (
                "PUT",
                format!("/api/users/{user}/preferences"),
                Some(body),
                false,
            )
        }
        81..=90 => {
            let q = ["lamp", "desk", "chair", "mug", "shelf"][fastrand::usize(..5)];
            ("GET", format!("/api/search?q={q}&limit=20"), None, false)
        }
        91..=95 => ("GET", "/static/app.js".to_owned(), None, false),
        _ => ("GET", "/healthz".to_owned(), None, false),
    };
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: shop.example.internal\r\nUser-Agent: {}\r\nAccept: application/json\r\nX-Request-Id: demo-{i:06}\r\n",
        AGENTS[fastrand::usize(..AGENTS.len())]
    );
    let mut bytes = Vec::new();
    match body {
        Some(body) if chunked => {
            head.push_str("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
            bytes.extend_from_slice(head.as_bytes());
            let (a, b) = body.split_at(body.len() / 2);
            for part in [a, b] {
                bytes.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
        Some(body) => {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ));
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(body.as_bytes());
        }
        None => {
            head.push_str("\r\n");
            bytes.extend_from_slice(head.as_bytes());
        }
    }
    bytes
}

fn uuid() -> String {
    let h = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
            .collect()
    };
    format!("{}-{}-4{}-a{}-{}", h(8), h(4), h(3), h(3), h(12))
}

/// Reads one whole response, framed by nprt's own HTTP framing.
fn read_response(
    conn: &mut TcpStream,
    request: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let method = std::str::from_utf8(request)?
        .split(' ')
        .next()
        .unwrap_or("GET")
        .to_owned();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Framed::Complete(frame) = frame_response(&buf, &method, false)? {
            buf.truncate(frame.len);
            return Ok(buf);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err("the testbed closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
