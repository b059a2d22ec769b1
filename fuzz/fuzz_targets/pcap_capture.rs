//! pcap/pcapng bytes through the file reader, packet decoding, TCP reassembly, HTTP framing
//! and pairing, with small limits so eviction, hole skipping and size limits are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nprt::capture::{pcap, Capture, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_connections: 8,
        max_pending_bytes: 4096,
        max_message_bytes: 16 << 10,
        idle_timeout_ns: 5_000_000_000,
        hole_timeout_ns: 100_000_000,
        ..Limits::default()
    };
    let mut cap = Capture::new(vec![80, 8080, 8081, 3000], limits);
    let mut exchanges = 0usize;
    let _ = pcap::read_from(std::io::Cursor::new(data.to_vec()), "fuzz.pcap".into(), |p| {
        cap.packet(p.link, p.ts_ns, p.data, p.orig_len);
        exchanges += cap.take_exchanges().len();
        assert!(cap.open_connections() <= 8);
        Ok(())
    });
    cap.finish();
    for ex in cap.take_exchanges() {
        assert!(ex.exchange.request.len() <= 16 << 10);
    }
});
