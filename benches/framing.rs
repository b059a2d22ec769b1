//! Framing throughput: how fast a reader can take whole messages off a buffer, which bounds
//! how fast a recording or a captured stream can be read.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nprt::http::{frame_request, frame_response, Framed};

const MESSAGES: usize = 1000;

fn pipelined_gets() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..MESSAGES {
        buf.extend_from_slice(
            format!(
                "GET /api/v1/users/{i}/orders?page=2 HTTP/1.1\r\nHost: shop.example.com\r\n\
                 User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: application/json\r\n\
                 Accept-Encoding: gzip, br\r\nCookie: session=5f3a2b1c9d8e7f60\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    buf
}

fn response_head(extra: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 01 Jul 2025 12:00:00 GMT\r\n\
         Content-Type: application/json\r\nCache-Control: no-store\r\n{extra}\r\n"
    )
}

fn fixed_responses(body_len: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..MESSAGES {
        buf.extend_from_slice(response_head(&format!("Content-Length: {body_len}\r\n")).as_bytes());
        buf.resize(buf.len() + body_len, b'x');
    }
    buf
}

fn chunked_responses(body_len: usize, chunk: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..MESSAGES {
        buf.extend_from_slice(response_head("Transfer-Encoding: chunked\r\n").as_bytes());
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk);
            buf.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            buf.resize(buf.len() + n, b'x');
            buf.extend_from_slice(b"\r\n");
            left -= n;
        }
        buf.extend_from_slice(b"0\r\n\r\n");
    }
    buf
}

fn count_requests(mut buf: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(Framed::Complete(frame)) = frame_request(buf) {
        buf = &buf[frame.len..];
        n += 1;
    }
    n
}

fn count_responses(mut buf: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(Framed::Complete(frame)) = frame_response(buf, "GET", false) {
        buf = &buf[frame.len..];
        n += 1;
    }
    n
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let gets = pipelined_gets();
    assert_eq!(count_requests(&gets), MESSAGES);
    group.throughput(Throughput::Bytes(gets.len() as u64));
    group.bench_function("pipelined_get_requests", |b| {
        b.iter(|| count_requests(black_box(&gets)))
    });

    let fixed = fixed_responses(2048);
    assert_eq!(count_responses(&fixed), MESSAGES);
    group.throughput(Throughput::Bytes(fixed.len() as u64));
    group.bench_function("content_length_responses_2k", |b| {
        b.iter(|| count_responses(black_box(&fixed)))
    });

    let chunked = chunked_responses(2048, 256);
    assert_eq!(count_responses(&chunked), MESSAGES);
    group.throughput(Throughput::Bytes(chunked.len() as u64));
    group.bench_function("chunked_responses_2k_in_256b_chunks", |b| {
        b.iter(|| count_responses(black_box(&chunked)))
    });

    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
