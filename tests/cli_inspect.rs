//! `nprt inspect` as a user runs it: the real GoReplay fixture, the bundled demo recording, and
//! bad files that must give exit 2 with the file and offset named.

mod common;

use common::{goreplay_fixture, run, stderr, stdout};
use std::path::Path;

fn inspect_json(path: &Path) -> serde_json::Value {
    let out = run(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints one JSON object")
}

#[test]
fn goreplay_fixture_is_paired_and_its_warts_counted() {
    let json = inspect_json(&goreplay_fixture());
    assert_eq!(json["exchanges"], 6);
    assert_eq!(json["requests"], 6);
    assert_eq!(json["responses"], 5);
    assert_eq!(json["methods"]["GET"], 5);
    assert_eq!(json["methods"]["POST"], 1);
    assert_eq!(json["status"]["200"], 2);
    assert_eq!(json["status"]["404"], 2);
    assert_eq!(json["status"]["201"], 1);
    assert_eq!(json["reader"]["orphan_responses"], 2);
    assert_eq!(json["reader"]["interim_responses"], 1);
    assert!(json["routes"]["GET /hello.txt"].as_u64().unwrap() >= 1);
    let span = json["span_seconds"].as_f64().unwrap();
    assert!(span > 0.0 && span < 60.0, "{span}");
}

#[test]
fn text_output_reads_well() {
    let out = run(&["inspect", goreplay_fixture().to_str().unwrap()]);
    assert!(out.status.success());
    let text = stdout(&out);
    for expected in ["exchanges", "GET /hello.txt", "404", "orphan"] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn demo_recording_is_a_few_thousand_exchanges_of_a_web_api() {
    let json = inspect_json(&common::demo_recording());
    let exchanges = json["exchanges"].as_u64().unwrap();
    assert!((2000..10_000).contains(&exchanges), "{exchanges}");
    assert_eq!(json["responses"], json["exchanges"]);
    assert!(json["routes"].as_object().unwrap().len() >= 8);
    assert!(json["routes"]["GET /api/products/:id"].as_u64().unwrap() > 100);
    assert!(json["methods"]["POST"].as_u64().unwrap() > 0);
}

/// Runs inspect on `bytes` saved as `name`; it must fail with exit 2 and a message naming the
/// file and `offset_text`.
fn assert_bad(name: &str, bytes: &[u8], offset_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = run(&["inspect", path.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{name}: {err}");
    assert!(
        err.contains(name),
        "{name}: the error does not name the file: {err}"
    );
    assert!(
        err.contains(offset_text),
        "{name}: no {offset_text:?} in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{name}: partial output: {}",
        stdout(&out)
    );
}

const SEPARATOR: &[u8] = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n";

fn good_record() -> Vec<u8> {
    let mut record =
        b"1 0123456789abcdef01234567 1700000000000000000 0\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
            .to_vec();
    record.extend_from_slice(SEPARATOR);
    record
}

#[test]
fn truncated_recording() {
    let mut bytes = good_record();
    let second = bytes.len();
    bytes.extend_from_slice(
        b"1 aaaaaaaaaaaaaaaaaaaaaaaa 1700000000000000001 0\nGET /cut HTTP/1.1\r\nHo",
    );
    assert_bad("truncated.gor", &bytes, &format!("byte {second}"));
}

#[test]
fn garbage_header_line() {
    let mut bytes = good_record();
    let second = bytes.len();
    bytes.extend_from_slice(b"hello world\nGET / HTTP/1.1\r\n\r\n");
    bytes.extend_from_slice(SEPARATOR);
    assert_bad("garbage.gor", &bytes, &format!("byte {second}"));
}

#[test]
fn plain_data_named_gz() {
    assert_bad("plain.gor.gz", &good_record(), "gzip");
}

#[test]
fn empty_file() {
    assert_bad("empty.gor", b"", "byte 0");
}

#[test]
fn missing_file_is_bad_input() {
    let out = run(&["inspect", "/nonexistent/rec.gor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/rec.gor"));
}

#[test]
fn skip_bad_counts_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.gor");
    let mut bytes = good_record();
    bytes.extend_from_slice(b"9 nonsense\nxx");
    bytes.extend_from_slice(SEPARATOR);
    bytes.extend_from_slice(&good_record().replace_id());
    std::fs::write(&path, &bytes).unwrap();
    let strict = run(&["inspect", path.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(2));
    let out = run(&["inspect", path.to_str().unwrap(), "--json", "--skip-bad"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["exchanges"], 2);
    assert_eq!(json["reader"]["skipped"], 1);
}

trait ReplaceId {
    fn replace_id(self) -> Vec<u8>;
}

impl ReplaceId for Vec<u8> {
    fn replace_id(self) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        text.replacen("0123456789abcdef01234567", "fedcba9876543210fedcba98", 1)
            .into_bytes()
    }
}
