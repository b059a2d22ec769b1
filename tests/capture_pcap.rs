//! `nprt capture --pcap` on files made by real tcpdump and dumpcap (checked in, see
//! tests/fixtures/capture/make.sh), and on bad input.

mod common;

use common::{capture_pcap, run, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/capture")
        .join(name)
}

fn capture(input: &Path, out: &Path) -> std::process::Output {
    capture_pcap(input, out, &[])
}

#[test]
fn every_link_type_and_format_gives_all_seven_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "lo-ethernet.pcap",
        "any-sll.pcap",
        "any-sll2-nano.pcap",
        "lo.pcapng",
    ] {
        let out = dir.path().join(format!("{name}.gor"));
        let o = capture(&fixture(name), &out);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("exchanges 7: 0 without response, 0 truncated; 1 interim"),
            "{name}: {err}"
        );
        assert!(err.contains("wrote 7 exchanges"), "{err}");
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");

        let o = run(&["inspect", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("exchanges   7"), "{text}");
        assert!(text.contains("responses   7 (0 without)"), "{text}");
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            assert!(text.contains(method), "{name}: {method} missing in {text}");
        }
    }
}

#[test]
fn snaplen_cut_exchanges_are_kept_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.gor");
    let o = capture(&fixture("lo-snaplen300.pcap"), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("exchanges 7: 0 without response, 2 truncated"),
        "{err}"
    );
    assert!(err.contains("2 snaplen-cut packets"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.gor");

    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file").unwrap();
    let o = capture(&junk, &out);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("junk.pcap") && err.contains("byte 0"), "{err}");
    assert!(!out.exists());

    // A record in the middle claiming more bytes than any snaplen.
    let mut bytes = std::fs::read(fixture("lo-ethernet.pcap")).unwrap();
    bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, &bytes).unwrap();
    let o = capture(&bad, &out);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.pcap: corrupt capture at byte 24"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    let missing = dir.path().join("missing.pcap");
    let o = capture(&missing, &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.pcap: cannot open"));
}

#[test]
fn file_cut_mid_record_keeps_what_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("lo.pcapng")).unwrap();
    let cut = dir.path().join("cut.pcapng");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = dir.path().join("cut.gor");
    let o = capture(&cut, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("file cut inside a record at byte"), "{err}");
    assert!(out.exists());
}

/// A little-endian pcap of one raw-IPv4 TCP packet carrying `payload` to port 18080.
fn raw_ip_pcap(payload: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp(40000, 18080, 1, 1000);
    let mut packet = Vec::new();
    builder.write(&mut packet, payload).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    out.extend_from_slice(&packet);
    out
}

#[test]
fn non_http_payload_on_the_port_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tls.pcap");
    std::fs::write(
        &input,
        raw_ip_pcap(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello"),
    )
    .unwrap();
    let out = dir.path().join("tls.gor");
    let o = capture(&input, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("exchanges 0"), "{err}");
    assert!(err.contains("17 non-HTTP bytes"), "{err}");
}
