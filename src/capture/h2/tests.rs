//! The HTTP/2 decoder on hand-built frames and HPACK blocks, through the capture core.

use super::frame::*;
use crate::capture::tests::Wire;
use crate::capture::{Capture, CaptureStats, CapturedExchange, Limits, LinkType};

/// A frame: 9-byte header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: a literal field with incremental indexing and a new name (RFC 7541 §6.2.1).
fn indexed_literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x40, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

/// HPACK: a literal field without indexing and a new name (§6.2.2).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = indexed_literal(name, value);
    b[0] = 0x00;
    b
}

/// HPACK: `:method POST`, `:scheme http` (static 3, 6), `:path`, `:authority` literals.
fn post(path: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86];
    b.extend(literal(":path", path));
    b.extend(literal(":authority", "svc:50051"));
    b
}

fn grpc_message(m: &[u8]) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&(m.len() as u32).to_be_bytes());
    b.extend_from_slice(m);
    b
}

const STATUS_200: u8 = 0x88;

fn run(packets: &[Vec<u8>]) -> (Vec<CapturedExchange>, CaptureStats) {
    crate::capture::tests::run(packets, &[50051])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn wire() -> Wire {
    Wire::new("10.0.0.1:40000", "10.0.0.2:50051", 1000, 9000)
}

/// A client's preface and SETTINGS, and the server's SETTINGS, on a fresh connection.
fn start(w: &mut Wire) -> Vec<Vec<u8>> {
    let mut p = w.open();
    p.extend(w.send(false, &frame(SETTINGS, 0, 0, &[]), &[]));
    let mut client = PREFACE.to_vec();
    client.extend(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0]));
    p.extend(w.send(true, &client, &[10]));
    p.extend(w.send(false, &frame(SETTINGS, ACK, 0, &[]), &[]));
    p
}

#[test]
fn interleaved_streams_with_trailers_become_http1_form_exchanges() {
    let mut w = wire();
    let mut p = start(&mut w);
    let mut client = frame(HEADERS, END_HEADERS, 1, &post("/echo.Echo/Call"));
    client.extend(frame(HEADERS, END_HEADERS, 3, &post("/echo.Echo/Other")));
    client.extend(frame(DATA, END_STREAM, 3, &grpc_message(b"three")));
    client.extend(frame(DATA, END_STREAM, 1, &grpc_message(b"one")));
    p.extend(w.send(true, &client, &[20, 40]));
    let mut server = frame(HEADERS, END_HEADERS, 3, &[STATUS_200]);
    server.extend(frame(HEADERS, END_HEADERS, 1, &[STATUS_200]));
    server.extend(frame(DATA, 0, 1, &grpc_message(b"echo-one")));
    server.extend(frame(DATA, 0, 3, &grpc_message(b"echo-three")));
    let trailers = literal("grpc-status", "0");
    server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers));
    server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &trailers));
    p.extend(w.send(false, &server, &[7, 30]));
    let (ex, stats) = run(&p);
    assert_eq!(stats.exchanges, 2);
    assert_eq!(stats.h2_connections, 1);
    let req = text(&ex[0].exchange.request);
    assert_eq!(
        req,
        "POST /echo.Echo/Call HTTP/1.1\r\nHost: svc:50051\r\nX-Nprt-Protocol: HTTP/2\r\n\
         Content-Length: 8\r\n\r\n\0\0\0\0\x03one"
    );
    assert_eq!(ex[0].exchange.request_head.target(), "/echo.Echo/Call");
    // What replay and the passive mirror look for to send it over HTTP/2 again.
    assert!(crate::recording::recorded_over_http2(
        &ex[0].exchange.request_head
    ));
    assert_eq!(&ex[0].exchange.request_body()[5..], b"one");
    let res = ex[0].exchange.response.as_ref().unwrap();
    assert_eq!(
        text(&res.bytes),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n\0\0\0\0\x08echo-one\r\n\
         0\r\ngrpc-status: 0\r\n\r\n"
    );
    let other = text(&ex[1].exchange.request);
    assert!(
        other.starts_with("POST /echo.Echo/Other HTTP/1.1\r\n"),
        "{other}"
    );
    let res = text(&ex[1].exchange.response.as_ref().unwrap().bytes);
    assert!(
        res.contains("echo-three\r\n0\r\ngrpc-status: 0\r\n\r\n"),
        "{res}"
    );
}

#[test]
fn continuation_padding_priority_and_the_dynamic_table() {
    let mut w = wire();
    let mut p = start(&mut w);
    // Stream 1: the head split over HEADERS (padded, with priority) and a CONTINUATION;
    // x-tenant enters the dynamic table (index 62).
    let mut block = post("/a.B/C");
    block.extend(indexed_literal("x-tenant", "blue"));
    let (first, rest) = block.split_at(5);
    let mut headers = vec![3]; // pad length
    headers.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    headers.extend_from_slice(first);
    headers.extend([0, 0, 0]);
    let mut client = frame(HEADERS, PADDED | PRIORITY_FLAG, 1, &headers);
    client.extend(frame(CONTINUATION, END_HEADERS, 1, rest));
    let mut data = vec![2];
    data.extend(grpc_message(b"x"));
    data.extend([0, 0]);
    client.extend(frame(DATA, END_STREAM | PADDED, 1, &data));
    // Stream 3 refers to the entry: 0xbe is index 62.
    let mut block = post("/a.B/D");
    block.push(0xbe);
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block));
    p.extend(w.send(true, &client, &[3]));
    // Trailers-only answers: one HEADERS with END_STREAM carrying grpc-status.
    let mut only = vec![STATUS_200];
    only.extend(literal("grpc-status", "12"));
    let mut server = frame(HEADERS, END_HEADERS | END_STREAM, 1, &only);
    server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &only));
    p.extend(w.send(false, &server, &[]));
    let (ex, stats) = run(&p);
    assert_eq!(stats.exchanges, 2, "{stats:?}");
    let one = text(&ex[0].exchange.request);
    assert!(one.contains("\r\nx-tenant: blue\r\n"), "{one}");
    assert!(
        one.ends_with("Content-Length: 6\r\n\r\n\0\0\0\0\x01x"),
        "{one}"
    );
    let three = text(&ex[1].exchange.request);
    assert!(three.starts_with("POST /a.B/D HTTP/1.1\r\n"), "{three}");
    assert!(three.contains("\r\nx-tenant: blue\r\n"), "{three}");
    assert!(three.ends_with("Content-Length: 0\r\n\r\n"), "{three}");
    let res = text(&ex[1].exchange.response.as_ref().unwrap().bytes);
    assert_eq!(
        res,
        "HTTP/1.1 200 OK\r\ngrpc-status: 12\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn a_reset_stream_has_no_response_and_request_trailers_are_chunked() {
    let mut w = wire();
    let mut p = start(&mut w);
    let mut client = frame(HEADERS, END_HEADERS, 1, &post("/s.S/Stream"));
    client.extend(frame(DATA, 0, 1, b"abc"));
    client.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &literal("x-sum", "7"),
    ));
    client.extend(frame(HEADERS, END_HEADERS, 3, &post("/s.S/Slow")));
    client.extend(frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    client.extend(frame(PING, 0, 0, &[0; 8]));
    client.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    client.extend(frame(PRIORITY, 0, 1, &[0, 0, 0, 0, 1]));
    p.extend(w.send(true, &client, &[]));
    let mut server = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[STATUS_200]);
    server.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    p.extend(w.send(false, &server, &[]));
    let (mut ex, stats) = run(&p);
    assert_eq!(stats.exchanges, 2);
    assert_eq!((stats.h2_resets, stats.unanswered), (1, 1));
    // The reset stream ended first.
    ex.reverse();
    let one = text(&ex[0].exchange.request);
    assert!(
        one.ends_with("Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 7\r\n\r\n"),
        "{one}"
    );
    assert_eq!(&ex[0].exchange.request_body()[..], b"abc");
    assert!(text(&ex[1].exchange.request).starts_with("POST /s.S/Slow "));
    assert!(ex[1].exchange.response.is_none());
}

#[test]
fn a_connection_joined_mid_stream_is_counted_and_skipped() {
    let mut w = wire();
    // No SYN, no preface: frames referring to a dynamic table never seen.
    let mut client = frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        5,
        &[0x83, 0x86, 0xbe, 0xbf],
    );
    client.extend(frame(DATA, END_STREAM, 5, b"POST / HTTP/1.1\r\n\r\n"));
    let mut p = w.send(true, &client, &[]);
    p.extend(w.send(false, &frame(HEADERS, END_HEADERS, 5, &[STATUS_200]), &[]));
    let (ex, stats) = run(&p);
    assert!(ex.is_empty());
    assert_eq!((stats.h2_midstream, stats.connections_midstream), (1, 1));
    assert_eq!((stats.h2_connections, stats.exchanges), (0, 0));
}

#[test]
fn http1_still_works_and_a_lost_segment_makes_http2_undecodable() {
    let mut w = wire();
    let mut p = w.open();
    p.extend(w.send(
        true,
        b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        &[1, 3],
    ));
    p.extend(w.send(false, b"HTTP/1.1 204 No Content\r\n\r\n", &[]));
    let (ex, stats) = run(&p);
    assert_eq!((ex.len(), stats.h2_connections), (1, 0));

    let mut w = wire();
    let mut p = start(&mut w);
    let client = frame(HEADERS, END_HEADERS | END_STREAM, 1, &post("/a.B/C"));
    let lost = w.send(true, &client, &[]);
    drop(lost);
    p.extend(w.send(true, &frame(PING, 0, 0, &[0; 8]), &[]));
    let mut cap = Capture::new(
        vec![50051],
        Limits {
            hole_timeout_ns: 0,
            ..Limits::default()
        },
    );
    for (i, pk) in p.iter().enumerate() {
        cap.packet(
            LinkType::Ethernet,
            1_000 * (i as u64 + 1),
            pk,
            pk.len() as u32,
        );
    }
    cap.finish();
    assert!(cap.take_exchanges().is_empty());
    assert_eq!(cap.stats().h2_undecodable, 1, "{:?}", cap.stats());
}

#[test]
fn frames_are_cut_out_whatever_the_segments() {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    bytes.extend(frame(DATA, PADDED, 1, &[1, b'x', 0]));
    // One byte at a time, each seen at the time of its offset.
    let mut r = FrameReader::new(true, 1 << 20);
    let mut frames = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        r.push(&[*b], i as u64);
        while let Some(f) = r.next_frame() {
            frames.push(f.unwrap());
        }
    }
    assert_eq!((frames[0].head.kind, frames[0].ts_ns), (SETTINGS, 24));
    assert_eq!(
        (frames[1].payload.as_slice(), frames[1].ts_ns),
        (&b"x"[..], 33)
    );
    assert_eq!(frames.len(), 2);
    let mut r = FrameReader::new(false, 1 << 20);
    r.push(&frame(DATA, PADDED, 1, &[5, b'x']), 0);
    assert_eq!(r.next_frame(), Some(Err(FrameError::BadLength)));
    assert_eq!(
        looks_like_frames(&frame(SETTINGS, 0, 0, &[0; 6])),
        Looks::Frames
    );
    let mut two = frame(DATA, 0, 1, b"abc");
    two.extend(&frame(DATA, 0, 1, b"def")[..12]);
    assert_eq!(looks_like_frames(&two), Looks::Frames);
    assert_eq!(looks_like_frames(&two[..12]), Looks::Frames);
    assert_eq!(looks_like_frames(&two[..11]), Looks::Unsure);
    assert_eq!(looks_like_frames(&two[..5]), Looks::Unsure);
    assert_eq!(
        looks_like_frames(b"HTTP/1.1 200 OK\r\n\r\n"),
        Looks::NotFrames
    );
    assert_eq!(
        looks_like_frames(b"GET / HTTP/1.1\r\n\r\n"),
        Looks::NotFrames
    );
}

#[test]
fn limits_bound_header_blocks_streams_and_bodies() {
    let limits = Limits {
        max_head_bytes: 256,
        max_pipelined: 2,
        max_message_bytes: 1024,
        ..Limits::default()
    };
    let run_limited = |client: &[u8]| {
        let mut w = wire();
        let mut p = start(&mut w);
        p.extend(w.send(true, client, &[]));
        let mut cap = Capture::new(vec![50051], limits.clone());
        for (i, pk) in p.iter().enumerate() {
            cap.packet(
                LinkType::Ethernet,
                1_000 * (i as u64 + 1),
                pk,
                pk.len() as u32,
            );
        }
        cap.finish();
        (cap.take_exchanges(), cap.stats().clone())
    };
    // A header block beyond max_head_bytes, spread over CONTINUATIONs: dropped whole.
    let mut client = frame(HEADERS, 0, 1, &post("/a.B/C"));
    for _ in 0..4 {
        client.extend(frame(
            CONTINUATION,
            0,
            1,
            &literal("x-pad", &"p".repeat(100)),
        ));
    }
    let (ex, stats) = run_limited(&client);
    assert!(ex.is_empty());
    assert_eq!(
        (stats.over_limit_heads, stats.limit_dropped_connections),
        (1, 1)
    );
    // More open streams than max_pipelined.
    let mut client = Vec::new();
    for id in [1, 3, 5] {
        client.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &post("/a.B/C"),
        ));
    }
    let (ex, stats) = run_limited(&client);
    assert!(ex.is_empty());
    assert_eq!(
        (stats.pipeline_floods, stats.limit_dropped_requests),
        (1, 3)
    );
    // A body beyond max_message_bytes: that stream only.
    let mut client = frame(HEADERS, END_HEADERS, 1, &post("/a.B/C"));
    client.extend(frame(DATA, END_STREAM, 1, &[7; 2000]));
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &post("/a.B/D")));
    let (ex, stats) = run_limited(&client);
    assert_eq!((ex.len(), stats.too_large, stats.unanswered), (1, 1, 1));
}

#[test]
fn a_table_size_update_is_honoured_up_to_what_settings_allowed() {
    // The server's encoder grows its table to 8192 (a size update, RFC 7541 §6.3): allowed
    // only because the client's SETTINGS said SETTINGS_HEADER_TABLE_SIZE 8192.
    let answer = |table: u8| {
        let mut w = wire();
        let mut p = w.open();
        let mut client = PREFACE.to_vec();
        client.extend(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, table, 0]));
        client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &post("/a.B/C")));
        p.extend(w.send(true, &client, &[]));
        let mut block = vec![0x3f, 0xe1, 0x3f, STATUS_200];
        block.extend(indexed_literal("grpc-status", "0"));
        let mut server = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
        server.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &[0xbe]));
        p.extend(w.send(false, &server, &[]));
        run(&p)
    };
    let (ex, stats) = answer(0x20);
    assert_eq!((stats.exchanges, stats.h2_undecodable), (1, 0), "{stats:?}");
    let res = text(&ex[0].exchange.response.as_ref().unwrap().bytes);
    assert!(res.contains("grpc-status: 0\r\n"), "{res}");
    let (ex, stats) = answer(0x10);
    assert_eq!((ex.len(), stats.h2_undecodable), (0, 1), "{stats:?}");
}

/// An HTTP/1.1 request asking for the h2c upgrade (RFC 7540 §3.2), as curl sends it.
fn upgrade_request(settings: &str) -> Vec<u8> {
    format!(
        "GET /x HTTP/1.1\r\nHost: svc:50051\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: {settings}\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The client's preface and SETTINGS after the 101.
fn client_preface() -> Vec<u8> {
    let mut client = PREFACE.to_vec();
    client.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    client
}

/// HEADERS `:status 200` and a DATA frame ending stream `id` with `body`.
fn answer(id: u32, body: &[u8]) -> Vec<u8> {
    let mut b = frame(HEADERS, END_HEADERS, id, &[STATUS_200]);
    b.extend(frame(DATA, END_STREAM, id, body));
    b
}

#[test]
fn an_upgraded_connection_records_stream_1_and_the_streams_after_it() {
    let mut w = wire();
    let mut p = w.open();
    p.extend(w.send(true, &upgrade_request("AAMAAABkAAQAAP__"), &[])); // at 3000
                                                                       // The server's SETTINGS in the same segment as the 101.
    let mut server = SWITCHING.to_vec();
    server.extend(frame(SETTINGS, 0, 0, &[]));
    p.extend(w.send(false, &server, &[]));
    let mut client = client_preface();
    client.extend(frame(SETTINGS, ACK, 0, &[]));
    client.extend(frame(HEADERS, END_HEADERS, 3, &post("/three")));
    client.extend(frame(DATA, END_STREAM, 3, b"3-in"));
    p.extend(w.send(true, &client, &[]));
    let mut server = frame(SETTINGS, ACK, 0, &[]);
    server.extend(answer(1, b"one-body"));
    p.extend(w.send(false, &server, &[])); // at 6000
    p.extend(w.send(false, &answer(3, b"three-body"), &[]));
    p.push(w.fin(true));
    p.push(w.fin(false));
    let (ex, stats) = run(&p);
    assert_eq!(
        (stats.exchanges, stats.h2_connections, stats.h2_upgrades),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!((stats.tunnel_bytes, stats.non_http_bytes), (0, 0));
    let one = &ex[0].exchange;
    assert_eq!(
        text(&one.request),
        "GET /x HTTP/1.1\r\nHost: svc:50051\r\nAccept: */*\r\nX-Nprt-Protocol: HTTP/2\r\n\r\n"
    );
    assert_eq!(one.request_head.target(), "/x");
    assert_eq!(one.request_head.head_len, one.request.len());
    assert!(one.request_head.header("upgrade").is_none());
    assert!(crate::recording::recorded_over_http2(&one.request_head));
    let res = one.response.as_ref().unwrap();
    assert_eq!(
        text(&res.bytes),
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\none-body"
    );
    assert_eq!((one.start_ns, res.latency_ns), (3000, 3000));
    assert_eq!(ex[0].latency_last_byte_ns, Some(3000));
    assert!(!ex[0].request_truncated && !ex[0].response_truncated);
    let three = &ex[1].exchange;
    assert!(text(&three.request).starts_with("POST /three HTTP/1.1\r\n"));
    assert!(crate::recording::recorded_over_http2(&three.request_head));
    assert_eq!(&three.request_body()[..], b"3-in");
    let res = text(&three.response.as_ref().unwrap().bytes);
    assert!(res.ends_with("\r\n\r\nthree-body"), "{res}");
}

#[test]
fn the_switch_is_found_however_the_segments_fall() {
    // The 101, the server's SETTINGS and stream 1's answer in one burst, cut anywhere; the
    // client's preface before or after the 101 reaches the capture (a segment held back
    // for a retransmission).
    let mut server = SWITCHING.to_vec();
    server.extend(frame(SETTINGS, 0, 0, &[]));
    server.extend(answer(1, b"one-body"));
    let mut client = client_preface();
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &post("/three")));
    for cut in 0..server.len() {
        for preface_first in [false, true] {
            let mut w = wire();
            let mut p = w.open();
            p.extend(w.send(true, &upgrade_request("AAMAAABk"), &[]));
            let client = w.send(true, &client, &[]);
            if preface_first {
                p.extend(client.clone());
            }
            p.extend(w.send(false, &server, &[cut]));
            if !preface_first {
                p.extend(client);
            }
            p.extend(w.send(false, &answer(3, b"three-body"), &[]));
            let (ex, stats) = run(&p);
            let ctx = format!("cut {cut}, preface first {preface_first}: {stats:?}");
            assert_eq!((ex.len(), stats.h2_upgrades), (2, 1), "{ctx}");
            for (e, body) in ex.iter().zip(["one-body", "three-body"]) {
                let res = e.exchange.response.as_ref().expect(&ctx);
                assert!(text(&res.bytes).ends_with(body), "{ctx}");
            }
            assert_eq!(
                (stats.h2_undecodable, stats.non_http_bytes),
                (0, 0),
                "{ctx}"
            );
        }
    }
}

#[test]
fn http2_settings_header_table_size_is_honoured_and_a_bad_one_ignored() {
    // As with a SETTINGS frame: the server's encoder may grow its table to 8192 only if
    // the client's HTTP2-Settings said so.
    let answer_with = |settings: &str| {
        let mut w = wire();
        let mut p = w.open();
        p.extend(w.send(true, &upgrade_request(settings), &[]));
        let mut server = SWITCHING.to_vec();
        server.extend(frame(SETTINGS, 0, 0, &[]));
        server.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &[0x3f, 0xe1, 0x3f, STATUS_200],
        ));
        p.extend(w.send(false, &server, &[]));
        p.extend(w.send(true, &client_preface(), &[]));
        run(&p)
    };
    let (ex, stats) = answer_with("AAEAACAA"); // HEADER_TABLE_SIZE 8192
    assert_eq!((ex.len(), stats.h2_undecodable), (1, 0), "{stats:?}");
    assert!(ex[0].exchange.response.is_some());
    for settings in ["AAEAABAA", "not*base64", "AAEA", ""] {
        let (ex, stats) = answer_with(settings);
        assert_eq!(
            (ex.len(), stats.h2_undecodable, stats.h2_upgrades),
            (0, 1, 1),
            "{settings}: {stats:?}"
        );
    }
}

#[test]
fn a_declined_upgrade_stays_http1_and_a_websocket_switch_tunnels() {
    // Declined: a 200 over HTTP/1.1; the request sent after the upgrade request waits, then
    // is framed as HTTP/1 as before. A request pipelined before it is answered first.
    let mut w = wire();
    let mut p = w.open();
    let asked = upgrade_request("AAMAAABk");
    let mut client = b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n".to_vec();
    client.extend(&asked);
    p.extend(w.send(true, &client, &[]));
    p.extend(w.send(true, b"GET /b HTTP/1.1\r\nHost: svc\r\n\r\n", &[]));
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ndeclined";
    p.extend(w.send(false, b"HTTP/1.1 204 No Content\r\n\r\n", &[]));
    p.extend(w.send(false, ok, &[]));
    p.extend(w.send(false, b"HTTP/1.1 204 No Content\r\n\r\n", &[]));
    let (ex, stats) = run(&p);
    assert_eq!(
        (ex.len(), stats.h2_upgrades, stats.h2_connections),
        (3, 0, 0)
    );
    assert_eq!(&ex[1].exchange.request[..], &asked[..]);
    assert!(ex
        .iter()
        .all(|e| !crate::recording::recorded_over_http2(&e.exchange.request_head)));
    assert!(text(&ex[1].exchange.response.as_ref().unwrap().bytes).ends_with("declined"));
    assert_eq!(ex[2].exchange.request_head.target(), "/b");
    assert_eq!((stats.non_http_bytes, stats.unanswered), (0, 0));

    // WebSocket: the 101 is the exchange's response and what follows is tunnelled.
    let mut w = wire();
    let mut p = w.open();
    let ws =
        b"GET /chat HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    p.extend(w.send(true, ws, &[]));
    let switch =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let mut server = switch.to_vec();
    server.extend([0x81, 0x03, b'h', b'e', b'y']);
    p.extend(w.send(false, &server, &[]));
    p.extend(w.send(true, &[0x81, 0x02, b'h', b'i'], &[]));
    let (ex, stats) = run(&p);
    assert_eq!(
        (ex.len(), stats.h2_upgrades, stats.h2_connections),
        (1, 0, 0)
    );
    assert_eq!(stats.tunnel_bytes, 9);
    let res = ex[0].exchange.response.as_ref().unwrap();
    assert_eq!((res.head.status, &res.bytes[..]), (101, &switch[..]));
    assert!(!crate::recording::recorded_over_http2(
        &ex[0].exchange.request_head
    ));
}

#[test]
fn a_request_pipelined_before_the_upgrade_keeps_its_http1_answer() {
    // GET /a, then the upgrade request; the client's HTTP/2 bytes reach the capture before
    // the server's answers (held back for a retransmission): they wait through /a's answer.
    let mut w = wire();
    let mut p = w.open();
    let mut client = b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n".to_vec();
    client.extend(upgrade_request("AAMAAABk"));
    p.extend(w.send(true, &client, &[]));
    let mut client = client_preface();
    client.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &post("/three")));
    p.extend(w.send(true, &client, &[]));
    let mut server = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    server.extend(SWITCHING);
    server.extend(frame(SETTINGS, 0, 0, &[]));
    p.extend(w.send(false, &server, &[]));
    p.extend(w.send(false, &answer(3, b"three-body"), &[]));
    p.extend(w.send(false, &answer(1, b"one-body"), &[]));
    let (ex, stats) = run(&p);
    assert_eq!((ex.len(), stats.h2_upgrades), (3, 1), "{stats:?}");
    assert!(!crate::recording::recorded_over_http2(
        &ex[0].exchange.request_head
    ));
    assert_eq!(ex[0].exchange.request_head.target(), "/a");
    assert_eq!(ex[1].exchange.request_head.target(), "/three");
    assert_eq!(ex[2].exchange.request_head.target(), "/x");
    assert!(text(&ex[2].exchange.response.as_ref().unwrap().bytes).ends_with("one-body"));
    assert_eq!((stats.non_http_bytes, stats.h2_undecodable), (0, 0));
}
