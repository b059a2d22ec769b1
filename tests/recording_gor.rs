//! `.gor` reading and writing against real files: the GoReplay fixture, bad inputs, and
//! write-then-read round trips.

use bytes::Bytes;
use nprt::http::{parse_request_head, parse_response_head};
use nprt::recording::gor::SEPARATOR;
use nprt::recording::{
    Exchange, GorReader, GorWriter, ReadOptions, ReadStats, RecordedResponse, RecordingError,
    Summary,
};
use proptest::prelude::*;
use std::path::Path;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/goreplay/recorded-8002-keepalive_0.gor"
);

fn read_path(path: &Path, opts: ReadOptions) -> Result<(Vec<Exchange>, ReadStats), RecordingError> {
    let mut r = GorReader::open(path, opts)?;
    let ex = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((ex, r.stats().clone()))
}

fn record(kind: u8, id: &str, ts: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = format!("{kind} {id} {ts} 0\n").into_bytes();
    v.extend_from_slice(payload);
    v.extend_from_slice(SEPARATOR);
    v
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn fixture_pairs_what_it_can_and_counts_the_rest() {
    let (ex, stats) = read_path(Path::new(FIXTURE), ReadOptions::default()).unwrap();
    // 7 exchanges on the wire; the 100-continue POST has no request record.
    assert_eq!(ex.len(), 6);
    assert!(ex.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    let mut summary = Summary::default();
    ex.iter().for_each(|e| summary.add(e));
    let summary = summary.finish(&stats);
    assert_eq!(summary.methods["GET"], 5);
    assert_eq!(summary.methods["POST"], 1);
    assert_eq!(summary.status["200"], 2);
    assert_eq!(summary.status["404"], 2);
    assert_eq!(summary.status["201"], 1);
    assert_eq!(summary.responses, 5);
    // The chunked GET lost its response head; the 100-continue POST's 201 and the chunked
    // terminator `0\r\n\r\n` have no request; the `100 Continue` was a record of its own.
    let chunked = ex
        .iter()
        .find(|e| e.request_head.target() == "/chunked")
        .unwrap();
    assert!(chunked.response.is_none());
    assert_eq!(stats.records, 14);
    assert_eq!((stats.requests, stats.responses), (6, 8));
    assert_eq!((stats.paired, stats.unanswered), (5, 1));
    assert_eq!(stats.orphan_responses, 2);
    assert_eq!(stats.interim_responses, 1);
    assert_eq!(stats.skipped + stats.duplicates + stats.late, 0);
    assert_eq!(stats.bytes, std::fs::metadata(FIXTURE).unwrap().len());
    // The slow route took ~200 ms from request start to response.
    let slow = ex
        .iter()
        .find(|e| e.request_head.target() == "/slow/hello.txt")
        .unwrap();
    let latency = slow.response.as_ref().unwrap().latency_ns;
    assert!((150_000_000..400_000_000).contains(&latency), "{latency}");
    let text = summary.to_string();
    assert!(text.contains("GET /hello.txt"), "{text}");
}

#[test]
fn fixture_survives_rewrite_plain_and_gzip() {
    let (ex, _) = read_path(Path::new(FIXTURE), ReadOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["copy.gor", "copy.gor.gz"] {
        let path = dir.path().join(name);
        let mut w = GorWriter::create(&path).unwrap();
        ex.iter().for_each(|e| w.write_exchange(e).unwrap());
        w.finish().unwrap();
        let (back, stats) = read_path(&path, ReadOptions::default()).unwrap();
        assert_eq!(back, ex, "{name}");
        assert_eq!(stats.orphan_responses + stats.interim_responses, 0);
    }
}

/// Writes `bytes` to `name` in a fresh directory and reads it.
fn read_bytes(
    name: &str,
    bytes: &[u8],
    opts: ReadOptions,
) -> Result<(Vec<Exchange>, ReadStats), RecordingError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    read_path(&path, opts)
}

fn assert_error(name: &str, bytes: &[u8], offset: u64) -> RecordingError {
    let err = read_bytes(name, bytes, ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains(&format!("byte {offset}")), "{msg}");
    err
}

#[test]
fn truncated_file_names_the_last_record() {
    let mut f = record(1, "a", 1, GET);
    let at = f.len() as u64;
    f.extend_from_slice(b"1 b 2 0\nGET /b HTTP/1.1\r\n\r\n");
    let err = assert_error("trunc.gor", &f, at);
    assert!(matches!(err, RecordingError::Truncated { .. }), "{err}");
}

#[test]
fn garbage_header_lines_are_errors() {
    for header in [
        "9 a 1 0",
        "1 a",
        "1 a 1 0 extra",
        "1 a yesterday 0",
        "hello world",
    ] {
        let mut f = record(1, "a", 1, GET);
        let at = f.len() as u64;
        f.extend(format!("{header}\n").into_bytes());
        f.extend_from_slice(GET);
        f.extend_from_slice(SEPARATOR);
        let err = assert_error("garbage.gor", &f, at);
        assert!(matches!(err, RecordingError::BadHeader { .. }), "{err}");
    }
}

#[test]
fn unparsable_request_is_an_error() {
    let mut f = record(2, "a", 1, OK);
    let at = f.len() as u64;
    f.extend(record(1, "b", 2, b"\x00\x01 not http\r\n\r\n"));
    let err = assert_error("badreq.gor", &f, at);
    assert!(matches!(err, RecordingError::BadRequest { .. }), "{err}");
}

#[test]
fn gz_name_with_plain_data_is_not_gzip() {
    let err = assert_error("plain.gor.gz", &record(1, "a", 1, GET), 0);
    assert!(matches!(err, RecordingError::NotGzip { .. }), "{err}");
}

#[test]
fn empty_files_are_errors() {
    for name in ["empty.gor", "empty.gor.gz", "blank.gor"] {
        let bytes: &[u8] = if name == "blank.gor" { b"\n\n" } else { b"" };
        let err = assert_error(name, bytes, bytes.len() as u64);
        assert!(matches!(err, RecordingError::Empty { .. }), "{err}");
    }
}

#[test]
fn missing_file_names_it() {
    let err = GorReader::open("/nonexistent/x.gor", ReadOptions::default()).err();
    assert!(err.unwrap().to_string().contains("/nonexistent/x.gor"));
}

#[test]
fn skip_bad_continues_at_the_next_separator() {
    let mut f = record(1, "a", 1, GET);
    f.extend(record(2, "a", 2, OK));
    f.extend(
        b"1 b yesterday 0\nGET / HTTP/1.1\r\n\r\n"
            .iter()
            .chain(SEPARATOR),
    );
    f.extend(record(1, "c", 3, b"garbage\x00\r\n\r\n"));
    f.extend(record(1, "d", 4, GET));
    f.extend(b"2 d 5 0\nHTTP/1.1 200 OK\r\n".iter()); // truncated tail
    let opts = ReadOptions {
        skip_bad: true,
        ..ReadOptions::default()
    };
    let (ex, stats) = read_bytes("skip.gor", &f, opts).unwrap();
    let ids: Vec<&str> = ex.iter().map(|e| &*e.id).collect();
    assert_eq!(ids, ["a", "d"]);
    assert_eq!(stats.skipped, 3);
    assert_eq!(stats.paired, 1);
}

#[test]
fn corrupt_gzip_is_an_io_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gor.gz");
    let mut w = GorWriter::create(&path).unwrap();
    for i in 0..200u64 {
        w.write_record(
            nprt::recording::RecordKind::Request,
            &format!("{i}"),
            i,
            0,
            GET,
        )
        .unwrap();
    }
    w.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..].iter_mut().for_each(|b| *b ^= 0x5a);
    let err = read_bytes("x.gor.gz", &bytes, ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("x.gor.gz"), "{err}");
}

#[test]
fn writer_leaves_nothing_unless_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gor");
    {
        let mut w = GorWriter::create(&path).unwrap();
        w.write_record(nprt::recording::RecordKind::Request, "a", 1, 0, GET)
            .unwrap();
        // dropped, as when a run fails half-way
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let mut w = GorWriter::create(&path).unwrap();
    let err = w
        .write_record(nprt::recording::RecordKind::Request, "a", 1, 0, SEPARATOR)
        .unwrap_err();
    assert!(
        matches!(err, RecordingError::Unrepresentable { .. }),
        "{err}"
    );
    w.write_record(nprt::recording::RecordKind::Request, "a", 1, 0, GET)
        .unwrap();
    assert_eq!(w.finish().unwrap(), path);
    assert_eq!(std::fs::read(&path).unwrap(), record(1, "a", 1, GET));
}

#[test]
fn out_of_order_records_are_paired_and_sorted() {
    // Responses before requests, a slow connection written last, interleaved ids.
    let mut f = Vec::new();
    f.extend(record(2, "c", 350, OK));
    f.extend(record(1, "b", 200, GET));
    f.extend(record(1, "c", 300, GET));
    f.extend(record(2, "b", 260, OK));
    f.extend(record(1, "a", 100, GET));
    f.extend(record(2, "a", 900, OK));
    let (ex, stats) = read_bytes("ooo.gor", &f, ReadOptions::default()).unwrap();
    let got: Vec<(&str, u64, u64)> = ex
        .iter()
        .map(|e| (&*e.id, e.start_ns, e.response.as_ref().unwrap().latency_ns))
        .collect();
    assert_eq!(got, [("a", 100, 800), ("b", 200, 60), ("c", 300, 50)]);
    assert_eq!(stats.late, 0);
}

// ---- round trip ----

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// Body bytes biased towards pieces of the separator, the hard case for framing.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        (0..SEPARATOR.len() - 1, 1..SEPARATOR.len())
            .prop_map(|(a, n)| SEPARATOR[a..(a + n).min(SEPARATOR.len() - 1)].to_vec()),
        Just(b"\r\n\r\n".to_vec()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        prop::array::uniform12(any::<u8>()),
        0..1u64 << 62,
        prop::sample::select(METHODS),
        "/[a-z0-9/._-]{0,20}(\\?[a-z=&0-9]{0,10})?",
        body(),
        prop::option::of((200u16..600, body(), 0..10_000_000_000u64)),
    )
        .prop_map(|(id, start_ns, method, path, req_body, res)| {
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                req_body.len()
            )
            .into_bytes();
            request.extend_from_slice(&req_body);
            let response = res.map(|(status, res_body, latency_ns)| {
                let mut raw = format!("HTTP/1.1 {status} R\r\n\r\n").into_bytes();
                raw.extend_from_slice(&res_body);
                RecordedResponse {
                    head: parse_response_head(&raw).unwrap().unwrap(),
                    bytes: Bytes::from(raw),
                    latency_ns,
                }
            });
            Exchange {
                id: id
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into(),
                start_ns,
                request_head: parse_request_head(&request).unwrap().unwrap(),
                request: Bytes::from(request),
                response,
            }
        })
        .prop_filter("payload must be representable in .gor", |e| {
            nprt::recording::gor::is_representable(&e.request)
                && e.response
                    .as_ref()
                    .is_none_or(|r| nprt::recording::gor::is_representable(&r.bytes))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_exchanges_read_back_in_time_order(
        exchanges in prop::collection::vec(exchange(), 1..40),
        gzip in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(if gzip { "p.gor.gz" } else { "p.gor" });
        let mut w = GorWriter::create(&path).unwrap();
        // Written in arbitrary order; ids are random 12-byte values, so distinct.
        for e in &exchanges {
            w.write_exchange(e).unwrap();
        }
        w.finish().unwrap();
        let (back, stats) = read_path(&path, ReadOptions::default()).unwrap();
        let mut want = exchanges.clone();
        want.sort_by_key(|e| e.start_ns);
        prop_assert_eq!(back.len(), want.len());
        prop_assert!(back.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
        // Equal start times may come out in either order; compare as sets by id.
        let key = |e: &Exchange| (e.start_ns, e.id.clone());
        let mut back_sorted = back.clone();
        back_sorted.sort_by_key(key);
        want.sort_by_key(key);
        prop_assert_eq!(back_sorted, want);
        prop_assert_eq!(stats.orphan_responses + stats.duplicates + stats.skipped, 0);
    }
}
