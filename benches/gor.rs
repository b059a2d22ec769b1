//! Reading throughput of `.gor` recordings: 20k generated exchanges with small bodies,
//! plain and gzip, measured in bytes of the file on disk.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nprt::http::{parse_request_head, parse_response_head};
use nprt::recording::{new_id, Exchange, GorReader, GorWriter, ReadOptions, RecordedResponse};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const EXCHANGES: u64 = 20_000;

fn exchange(i: u64) -> Exchange {
    let request = format!(
        "GET /api/items/{i}?page={} HTTP/1.1\r\nHost: shop.local\r\nUser-Agent: bench\r\n\
         Accept: application/json\r\n\r\n",
        i % 7
    );
    let body = format!("{{\"id\":{i},\"name\":\"item {i}\",\"tags\":[\"a\",\"b\"]}}");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Exchange {
        id: new_id().into(),
        // Slightly out of order, as GoReplay writes them.
        start_ns: 1_700_000_000_000_000_000 + i * 1_000_000 + (i % 5) * 3_000_000,
        request_head: parse_request_head(request.as_bytes())
            .ok()
            .flatten()
            .expect("generated request parses"),
        request: Bytes::from(request),
        response: Some(RecordedResponse {
            head: parse_response_head(response.as_bytes())
                .ok()
                .flatten()
                .expect("generated response parses"),
            bytes: Bytes::from(response),
            latency_ns: 1_500_000 + i % 1000,
        }),
    }
}

fn write(path: &Path) -> u64 {
    let mut w = GorWriter::create(path).expect("create recording");
    for i in 0..EXCHANGES {
        w.write_exchange(&exchange(i)).expect("write exchange");
    }
    let path = w.finish().expect("finish recording");
    std::fs::metadata(path).expect("stat recording").len()
}

fn read(path: &Path, opts: ReadOptions) -> u64 {
    let reader = GorReader::open(path, opts).expect("open recording");
    let mut n = 0;
    for ex in reader {
        black_box(ex.expect("valid exchange"));
        n += 1;
    }
    n
}

fn bench_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("gor_read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for name in ["bench.gor", "bench.gor.gz"] {
        let path = dir.path().join(name);
        let size = write(&path);
        let opts = ReadOptions::default();
        assert_eq!(read(&path, opts), EXCHANGES);
        group.throughput(Throughput::Bytes(size));
        group.bench_function(name, |b| b.iter(|| read(&path, opts)));
    }
    // The default window holds half this recording in memory; a small one shows its cost.
    let path = dir.path().join("bench.gor");
    let size = std::fs::metadata(&path).expect("stat recording").len();
    group.throughput(Throughput::Bytes(size));
    let small = ReadOptions {
        reorder_window: 256,
        ..ReadOptions::default()
    };
    group.bench_function("bench.gor/window-256", |b| b.iter(|| read(&path, small)));
    group.finish();
}

criterion_group!(benches, bench_read);
criterion_main!(benches);
