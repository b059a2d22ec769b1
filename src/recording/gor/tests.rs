//! Reader and writer on small in-memory recordings: pairing in either order, interim responses,
//! the reorder window, header variants, oversized records.

use super::*;
use crate::recording::Exchange;

fn read_all(bytes: Vec<u8>, name: &str, opts: ReadOptions) -> (Vec<Exchange>, ReadStats) {
    let mut r = GorReader::from_reader(std::io::Cursor::new(bytes), name, opts).unwrap();
    let out: Vec<Exchange> = r.by_ref().map(Result::unwrap).collect();
    (out, r.stats().clone())
}

fn rec(kind: u8, id: &str, ts: u64, payload: &str) -> Vec<u8> {
    let mut v = format!("{kind} {id} {ts} 0\n").into_bytes();
    v.extend_from_slice(payload.as_bytes());
    v.extend_from_slice(SEPARATOR);
    v
}

const GET: &str = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn finds_separator_across_anchor_positions() {
    assert_eq!(find_separator(SEPARATOR), Some(0));
    assert_eq!(find_separator(&SEPARATOR[..13]), None);
    let mut v = b"ab\xb5\xb5".to_vec();
    v.extend_from_slice(SEPARATOR);
    assert_eq!(find_separator(&v), Some(4));
    assert_eq!(find_separator(b""), None);
}

#[test]
fn pairs_response_before_request() {
    let mut f = rec(2, "b", 1_500, OK);
    f.extend(rec(1, "b", 1_000, GET));
    f.extend(rec(1, "a", 900, GET));
    let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
    assert_eq!(ex.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(ex[1].response.as_ref().unwrap().latency_ns, 500);
    assert_eq!((stats.paired, stats.unanswered), (1, 1));
}

#[test]
fn interim_then_final_in_one_payload_uses_final_status() {
    let both = format!("HTTP/1.1 100 Continue\r\n\r\n{OK}");
    let mut f = rec(1, "a", 1, GET);
    f.extend(rec(2, "a", 5, "HTTP/1.1 100 Continue\r\n\r\n"));
    f.extend(rec(2, "a", 9, &both));
    let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
    let res = ex[0].response.as_ref().unwrap();
    assert_eq!(res.head.status, 200);
    assert_eq!(&res.bytes[..], OK.as_bytes());
    assert_eq!(res.latency_ns, 8);
    assert_eq!(stats.interim_responses, 1);
}

#[test]
fn small_window_releases_early_and_counts_late() {
    let mut f = rec(1, "a", 30, GET);
    f.extend(rec(1, "b", 20, GET));
    f.extend(rec(1, "c", 10, GET));
    let opts = ReadOptions {
        reorder_window: 1,
        ..ReadOptions::default()
    };
    let (ex, stats) = read_all(f, "t.gor", opts);
    assert_eq!(ex.len(), 3);
    assert_eq!(stats.late, 1);
}

#[test]
fn duplicates_and_replayed_are_counted() {
    let mut f = rec(1, "a", 1, GET);
    f.extend(rec(1, "a", 2, GET));
    f.extend(rec(2, "a", 3, OK));
    f.extend(rec(2, "a", 4, OK));
    f.extend(rec(3, "a", 5, OK));
    let (ex, stats) = read_all(f, "t.gor", ReadOptions::default());
    assert_eq!(ex.len(), 1);
    assert_eq!((stats.duplicates, stats.replayed), (2, 1));
}

#[test]
fn header_variants() {
    assert!(parse_record(b"1 abc 12\nGET", 0).is_ok());
    assert!(parse_record(b"2 abc 12 -1\n", 0).is_ok());
    for bad in [
        &b"4 abc 12 0\n"[..],
        b"1 abc\n",
        b"1 abc 12 0 9\n",
        b"1 abc x12 0\n",
        b"1  12 0\n",
        b"1 abc 12 zz\n",
    ] {
        assert!(parse_record(bad, 0).is_err(), "{bad:?}");
    }
}

#[test]
fn representable_matches_framing() {
    let sep = SEPARATOR;
    assert!(is_representable(b""));
    assert!(is_representable(b"x\n\xf0\x9f"));
    assert!(!is_representable(sep));
    assert!(!is_representable(&sep[1..]));
    assert!(!is_representable(&sep[..13]));
    assert!(!is_representable(&sep[1..13]));
    let long_tail = [vec![b'x'; 100], sep[..13].to_vec()].concat();
    assert!(!is_representable(&long_tail));
    let long_head = [sep[1..].to_vec(), vec![b'x'; 100]].concat();
    assert!(!is_representable(&long_head));
}

#[test]
fn ids_are_24_hex() {
    let id = new_id();
    assert_eq!(id.len(), 24);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn too_large_record_is_error_or_skipped() {
    let mut f = rec(1, "a", 1, &"x".repeat(1_000));
    f.extend(rec(1, "b", 2, GET));
    let small = ReadOptions {
        max_record_bytes: 200,
        ..ReadOptions::default()
    };
    let mut r = GorReader::from_reader(std::io::Cursor::new(f.clone()), "t.gor", small).unwrap();
    let err = r.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("at byte 0"), "{err}");
    let skip = ReadOptions {
        skip_bad: true,
        ..small
    };
    let (ex, stats) = read_all(f, "t.gor", skip);
    assert_eq!(ex.len(), 1);
    assert_eq!((stats.skipped, stats.too_large), (1, 1));
}

#[test]
fn oversized_record_spanning_reads_is_skipped() {
    let mut f = rec(1, "a", 1, &"x".repeat(3 * READ_CHUNK));
    f.extend(rec(1, "b", 2, GET));
    let opts = ReadOptions {
        max_record_bytes: READ_CHUNK / 2,
        skip_bad: true,
        ..ReadOptions::default()
    };
    let (ex, stats) = read_all(f, "t.gor", opts);
    assert_eq!(ex.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["b"]);
    assert_eq!((stats.skipped, stats.too_large), (1, 1));
}
