//! The fuzz harnesses: one function per target, each taking arbitrary bytes. Shared by the
//! libFuzzer targets in `fuzz_targets/` and by `tests/hardening_fuzz.rs`, which replays every
//! kept reproducer through the same function (a `#[path]` include, so the crate's own test
//! build needs no fuzzing dependency).
//!
//! Besides "no panic, no hang, bounded memory", each checks what the reader promises.
//!
#![allow(dead_code)]

use nprt::capture::{pcap, Capture, Limits};
use nprt::compare::{judge_file, Comparison, Options};
use nprt::deploy::manifest::{parse_documents, to_yaml};
use nprt::deploy::rewrite::{isolation_violations, rewrite, Release, Track};
use nprt::deploy::Exposure;
use nprt::http::{
    decode_chunked, final_response_head, frame_request, frame_response, route_key, ChunkedScanner,
    Framed,
};
use nprt::recording::gor::is_representable;
use nprt::recording::{GorReader, ReadOptions};

/// HTTP/1.x framing: pipelined requests, responses (the method and EOF taken from the first
/// byte), and chunked bodies whole and fed in pieces. What framing reports must be
/// consistent: lengths inside the buffer, a framed chunked body decodes, and the scanner
/// gives the same data however the body is cut.
pub fn http_framing(data: &[u8]) {
    const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "CONNECT", "PUT"];
    let Some((&ctl, buf)) = data.split_first() else {
        return;
    };
    let mut rest = buf;
    for _ in 0..64 {
        match frame_request(rest) {
            Ok(Framed::Complete(f)) => {
                assert!(f.body_start <= f.len && f.len <= rest.len());
                f.decoded_body(rest).expect("a framed body decodes");
                let _ = route_key(f.head.method(), f.head.target());
                let _ = nprt::redact::Redactor::default().message(&rest[..f.len]);
                if f.len == 0 {
                    break;
                }
                rest = &rest[f.len..];
            }
            Ok(Framed::Interim(_)) => panic!("requests are never interim"),
            Ok(Framed::Incomplete) | Err(_) => break,
        }
    }
    let method = METHODS[usize::from(ctl) % METHODS.len()];
    let at_eof = ctl & 0x80 != 0;
    let mut rest = buf;
    for _ in 0..64 {
        match frame_response(rest, method, at_eof) {
            Ok(Framed::Complete(f) | Framed::Interim(f)) => {
                assert!(f.body_start <= f.len && f.len <= rest.len());
                f.decoded_body(rest).expect("a framed body decodes");
                if f.len == 0 {
                    break;
                }
                rest = &rest[f.len..];
            }
            Ok(Framed::Incomplete) | Err(_) => break,
        }
    }
    let _ = final_response_head(buf);

    let step = usize::from(ctl & 0x0f) + 1;
    let mut scanner = ChunkedScanner::new();
    let mut pieces = Vec::new();
    let mut end = None;
    for (i, piece) in buf.chunks(step).enumerate() {
        match scanner.feed_with(piece, |d| pieces.extend_from_slice(d)) {
            Ok(Some(n)) => {
                end = Some(i * step + n);
                break;
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    if let Some(n) = end {
        assert!(n <= buf.len());
        assert_eq!(decode_chunked(buf).ok().as_deref(), Some(&pieces[..]));
    }
}

/// The `.gor` reader, plain and gzip (by the first byte), with a small record limit and
/// reorder window so their paths are reached, with and without skipping bad records; and
/// the record-by-record reader of `nprt redact` with the redaction itself.
pub fn gor_reader(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let opts = ReadOptions {
        max_record_bytes: if ctl & 1 == 0 { 4096 } else { 64 << 20 },
        reorder_window: usize::from(ctl >> 4) + 1,
        skip_bad: ctl & 2 != 0,
    };
    let name = if ctl & 4 != 0 {
        "fuzz.gor.gz"
    } else {
        "fuzz.gor"
    };
    let open = || GorReader::from_reader(std::io::Cursor::new(bytes.to_vec()), name, opts);
    if let Ok(mut reader) = open() {
        // Every item consumes input or ends the stream; the bound catches a stuck reader.
        let mut ended = false;
        for _ in 0..100_000 {
            match reader.next() {
                Some(Ok(ex)) => {
                    let _ = route_key(ex.request_head.method(), ex.request_head.target());
                }
                Some(Err(e)) => {
                    let _ = e.to_string();
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        assert!(ended, "the reader did not end");
    }
    if ctl & 8 != 0 {
        if let Ok(mut reader) = open() {
            let redactor = nprt::redact::Redactor::new(["x-api-key"]);
            for _ in 0..100_000 {
                match reader.next_raw() {
                    Ok(Some(rec)) => {
                        // Redaction never makes a record unwritable.
                        let clean = redactor.message(&rec.payload);
                        if is_representable(&rec.payload) {
                            assert!(is_representable(&clean));
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

/// pcap/pcapng bytes through the file reader, packet decoding, TCP reassembly, HTTP
/// framing and pairing, with small limits so eviction, hole skipping and size limits are
/// reached; the connection table must stay within its bound.
pub fn pcap_capture(data: &[u8]) {
    let limits = Limits {
        max_connections: 8,
        max_pending_bytes: 4096,
        max_message_bytes: 16 << 10,
        idle_timeout_ns: 5_000_000_000,
        hole_timeout_ns: 100_000_000,
        max_headers: 16,
        max_head_bytes: 2048,
        max_pipelined: 4,
    };
    let mut cap = Capture::new(vec![80, 8080, 8081, 3000], limits);
    let _ = pcap::read_from(
        std::io::Cursor::new(data.to_vec()),
        "fuzz.pcap".into(),
        |p| {
            cap.packet(p.link, p.ts_ns, p.data, p.orig_len);
            let _ = cap.take_exchanges();
            assert!(cap.open_connections() <= 8);
            Ok(())
        },
    );
    cap.finish();
    for ex in cap.take_exchanges() {
        assert!(ex.exchange.request.len() <= 16 << 10);
    }
}

/// Arbitrary YAML through the manifest reader (serde-saphyr) and the deploy rewrite, for
/// every track and exposure (the first byte), written back as YAML.
pub fn manifest_rewrite(data: &[u8]) {
    let Some((&ctl, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(manifests) = parse_documents(text, "fuzz.yaml") else {
        return;
    };
    let objects: Vec<_> = manifests.into_iter().map(|m| m.object).collect();
    let release = Release {
        service: "shop".into(),
        version: "v1".into(),
        tag: "abc123".into(),
        commit: Some("abc1234def".into()),
        track: if ctl & 1 == 0 {
            Track::Canary
        } else {
            Track::Stable
        },
        exposure: if ctl & 2 == 0 {
            Exposure::Shadow
        } else {
            Exposure::Shared
        },
        namespace: (ctl & 4 != 0).then(|| "ns".into()),
        workloads: if ctl & 8 != 0 {
            vec!["web".into()]
        } else {
            Vec::new()
        },
    };
    if let Ok(plan) = rewrite(&objects, &release) {
        let _ = isolation_violations(&objects, &plan.objects);
        let _ = to_yaml(&plan.objects);
    }
}

/// Judge files (TOML): an error names a line inside the text; accepted options build a
/// comparison without running out of memory.
pub fn judge_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match judge_file::parse(text, Options::new("stable", "canary")) {
        Ok(opts) => {
            let _ = Comparison::new(opts);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                e.line <= text.lines().count() + 1,
                "line {} past the end",
                e.line
            );
        }
    }
}

/// Scenario files (`nprt run SCENARIO.toml`): the first line is a `--set KEY=VALUE` override
/// (or empty), the rest the file. Errors name the file and, when in the file, a line inside it.
pub fn scenario_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (set, body) = text.split_once('\n').unwrap_or(("", text));
    let overrides: Vec<_> = nprt::scenario::set::Override::parse(set)
        .ok()
        .into_iter()
        .collect();
    let file = std::path::Path::new("fuzz.toml");
    if let Err(e) = nprt::scenario::file::parse(body, file, &overrides) {
        let message = e.to_string();
        assert!(message.starts_with("fuzz.toml"), "{message}");
        if let Some((line, _)) = e.position {
            assert!(
                line >= 1 && line <= body.lines().count() + 1,
                "line {line} past the end"
            );
        }
    }
}

/// HTTP/2 decoding (`nprt::capture::h2`): records of [direction and gap bit, length (2
/// bytes), bytes] fed to one connection whose client preface is given, so the fuzzer
/// starts inside the frames. Every exchange written must frame as exactly one HTTP/1.1
/// request and one response of the length stored (what replay reads back), carry the
/// HTTP/2 marker, and stay within the limits.
pub fn h2_decode(data: &[u8]) {
    use nprt::capture::h2::{frame::PREFACE, H2Conn, H2Limits};
    let limits = Limits {
        max_message_bytes: 16 << 10,
        max_headers: 16,
        max_head_bytes: 2048,
        max_pipelined: 4,
        ..Limits::default()
    };
    let client = "127.0.0.1:40000".parse().unwrap();
    let server = "127.0.0.1:50051".parse().unwrap();
    let mut conn = H2Conn::new(client, server, H2Limits::new(&limits));
    let mut out = Vec::new();
    let mut stats = nprt::capture::CaptureStats::default();
    conn.push(true, PREFACE, 0, &mut out, &mut stats);
    let mut rest = data;
    let mut ts = 0;
    while let [ctl, a, b, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        ts += 1;
        if ctl & 2 != 0 {
            conn.gap(&mut stats);
        } else {
            conn.push(ctl & 1 == 0, chunk, ts, &mut out, &mut stats);
        }
        assert!(conn.buffered() <= 4 * (16 << 10) + (1 << 25));
        rest = next;
    }
    conn.end(&mut out, &mut stats);
    assert_eq!(stats.exchanges, out.len() as u64);
    for ex in out {
        let e = ex.exchange;
        let text = String::from_utf8_lossy(&e.request);
        assert!(text.contains("\r\nX-Nprt-Protocol: HTTP/2\r\n"), "{text}");
        match frame_request(&e.request) {
            Ok(Framed::Complete(f)) => assert_eq!(f.len, e.request.len(), "{text}"),
            other => panic!("{other:?}: {text}"),
        }
        assert!(e.request_body().len() <= 16 << 10);
        if let Some(res) = e.response {
            let method = e.request_head.method();
            match frame_response(&res.bytes, method, false) {
                Ok(Framed::Complete(f)) => assert_eq!(f.len, res.bytes.len()),
                other => panic!("{other:?}: {}", String::from_utf8_lossy(&res.bytes)),
            }
        }
    }
}
