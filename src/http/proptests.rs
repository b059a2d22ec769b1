//! Property tests: generated messages, framed from every prefix.
//!
//! The claim under test is that framing does not depend on how the bytes arrived: any
//! strict prefix of a message is `Incomplete`, the whole is `Complete` with exactly its
//! length, and what follows it is left alone.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
struct ChunkPlan {
    sizes: Vec<usize>,
    extensions: Vec<String>,
    trailers: Vec<(String, String)>,
    upper_hex: bool,
}

#[derive(Debug, Clone)]
enum Framing {
    /// No body and no length header.
    None,
    Fixed,
    Chunked(ChunkPlan),
    /// Responses only: no length, body ends at EOF.
    Close,
}

fn chunk_plan() -> impl Strategy<Value = ChunkPlan> {
    (
        vec(1usize..40, 1..6),
        vec(
            prop_oneof![
                Just(String::new()),
                "[a-z]{1,5}".prop_map(|n| format!(";{n}")),
                ("[a-z]{1,5}", "[a-z0-9]{1,5}").prop_map(|(n, v)| format!(";{n}={v}")),
                ("[a-z]{1,5}", "[ a-z;=]{0,8}").prop_map(|(n, v)| format!(" ; {n} = \"{v}\"")),
            ],
            1..4,
        ),
        vec(("[A-Za-z][A-Za-z-]{0,8}", "[ -~]{0,12}"), 0..3),
        any::<bool>(),
    )
        .prop_map(|(sizes, extensions, trailers, upper_hex)| ChunkPlan {
            sizes,
            extensions,
            trailers,
            upper_hex,
        })
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(("x-[a-z]{1,10}", "[!-~]([ -~]{0,18}[!-~])?"), 0..5)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..120)
}

/// Writes `body` with `plan`, cycling through its chunk sizes and extensions.
fn encode_chunked(body: &[u8], plan: &ChunkPlan) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    let ext = |i: usize| &plan.extensions[i % plan.extensions.len()];
    while !rest.is_empty() {
        let n = plan.sizes[i % plan.sizes.len()].min(rest.len());
        let size = if plan.upper_hex {
            format!("{n:X}")
        } else {
            format!("{n:x}")
        };
        out.extend_from_slice(format!("{size}{}\r\n", ext(i)).as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(format!("0{}\r\n", ext(i)).as_bytes());
    for (name, value) in &plan.trailers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The head's framing header and the body bytes on the wire.
fn framing_parts(framing: &Framing, body: &[u8]) -> (String, Vec<u8>) {
    match framing {
        Framing::None | Framing::Close => (String::new(), body.to_vec()),
        Framing::Fixed => (format!("Content-Length: {}\r\n", body.len()), body.to_vec()),
        Framing::Chunked(plan) => (
            "Transfer-Encoding: chunked\r\n".into(),
            encode_chunked(body, plan),
        ),
    }
}

fn assemble(start_line: &str, headers: &[(String, String)], framing: &str, wire: &[u8]) -> Vec<u8> {
    let mut msg = format!("{start_line}\r\n");
    for (name, value) in headers {
        msg.push_str(&format!("{name}: {value}\r\n"));
    }
    msg.push_str(framing);
    msg.push_str("\r\n");
    let mut msg = msg.into_bytes();
    msg.extend_from_slice(wire);
    msg
}

#[derive(Debug, Clone)]
struct Request {
    bytes: Vec<u8>,
    body: Vec<u8>,
}

fn request() -> impl Strategy<Value = Request> {
    let framing = prop_oneof![
        Just(Framing::None),
        Just(Framing::Fixed),
        chunk_plan().prop_map(Framing::Chunked),
    ];
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        "(/[a-z0-9]{0,8}){1,4}(\\?[a-z]=[0-9]{1,3})?",
        headers(),
        framing,
        body(),
    )
        .prop_map(|(method, path, headers, framing, body)| {
            let body = if matches!(framing, Framing::None) {
                Vec::new()
            } else {
                body
            };
            let (field, wire) = framing_parts(&framing, &body);
            let line = format!("{method} {path} HTTP/1.1");
            Request {
                bytes: assemble(&line, &headers, &field, &wire),
                body,
            }
        })
}

#[derive(Debug, Clone)]
struct Response {
    method: &'static str,
    /// Interim responses before the final one, and their total length.
    interim_len: usize,
    bytes: Vec<u8>,
    body: Vec<u8>,
    close: bool,
}

fn response() -> impl Strategy<Value = Response> {
    let framing = prop_oneof![
        Just(Framing::Fixed),
        Just(Framing::Close),
        chunk_plan().prop_map(Framing::Chunked),
    ];
    (
        prop::sample::select(vec!["GET", "POST", "HEAD"]),
        prop::sample::select(vec![200u16, 201, 204, 304, 404, 500]),
        prop::sample::select(vec![
            "",
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        ]),
        headers(),
        framing,
        body(),
    )
        .prop_map(|(method, status, interim, headers, framing, body)| {
            let bodiless = method == "HEAD" || status == 204 || status == 304;
            let (framing, body) = if bodiless {
                (Framing::None, Vec::new())
            } else {
                (framing, body)
            };
            let (field, wire) = framing_parts(&framing, &body);
            let mut bytes = interim.as_bytes().to_vec();
            bytes.extend(assemble(
                &format!("HTTP/1.1 {status} X"),
                &headers,
                &field,
                &wire,
            ));
            Response {
                method,
                interim_len: interim.len(),
                bytes,
                body,
                close: matches!(framing, Framing::Close),
            }
        })
}

proptest! {
    #[test]
    fn request_framing_is_independent_of_split(req in request(), next in request()) {
        let msg = &req.bytes;
        for cut in 0..msg.len() {
            prop_assert_eq!(frame_request(&msg[..cut]), Ok(Framed::Incomplete), "cut {}", cut);
        }
        let mut both = msg.clone();
        both.extend_from_slice(&next.bytes);
        for buf in [&msg[..], &both[..]] {
            match frame_request(buf) {
                Ok(Framed::Complete(frame)) => {
                    prop_assert_eq!(frame.len, msg.len());
                    prop_assert_eq!(frame.decoded_body(buf).unwrap().into_owned(), req.body.clone());
                }
                other => prop_assert!(false, "not complete: {:?}", other),
            }
        }
    }

    #[test]
    fn response_framing_is_independent_of_split(res in response()) {
        let msg = &res.bytes;
        // The interim responses come off first, whatever follows them.
        if res.interim_len > 0 {
            for cut in 0..res.interim_len {
                prop_assert_eq!(frame_response(&msg[..cut], res.method, false), Ok(Framed::Incomplete));
            }
            match frame_response(msg, res.method, false) {
                Ok(Framed::Interim(frame)) => prop_assert_eq!(frame.len, res.interim_len),
                other => prop_assert!(false, "not interim: {:?}", other),
            }
        }
        let fin = &msg[res.interim_len..];
        for cut in 0..fin.len() {
            prop_assert_eq!(frame_response(&fin[..cut], res.method, false), Ok(Framed::Incomplete));
        }
        match frame_response(fin, res.method, false) {
            Ok(Framed::Incomplete) => prop_assert!(res.close),
            Ok(Framed::Complete(frame)) => {
                prop_assert!(!res.close);
                prop_assert_eq!(frame.len, fin.len());
                prop_assert_eq!(frame.decoded_body(fin).unwrap().into_owned(), res.body.clone());
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        match frame_response(fin, res.method, true) {
            Ok(Framed::Complete(frame)) => {
                prop_assert_eq!(frame.len, fin.len());
                prop_assert_eq!(frame.decoded_body(fin).unwrap().into_owned(), res.body.clone());
            }
            other => prop_assert!(false, "not complete at eof: {:?}", other),
        }
        let last = final_response_head(msg).unwrap().unwrap();
        prop_assert!(!last.is_interim());
    }

    #[test]
    fn decode_chunked_recovers_the_body(body in body(), plan in chunk_plan(), tail in vec(any::<u8>(), 0..8)) {
        let mut wire = encode_chunked(&body, &plan);
        let end = wire.len();
        prop_assert_eq!(decode_chunked(&wire), Ok(body.clone()));
        wire.extend_from_slice(&tail);
        // Fed in two pieces split anywhere, the scanner finds the same end and data.
        for split in 0..=wire.len() {
            let mut scanner = ChunkedScanner::new();
            let mut data = Vec::new();
            let found = match scanner.feed_with(&wire[..split], |d| data.extend_from_slice(d)) {
                Ok(Some(n)) => Some(n),
                Ok(None) => scanner
                    .feed_with(&wire[split..], |d| data.extend_from_slice(d))
                    .unwrap()
                    .map(|n| split + n),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            };
            prop_assert_eq!(found, Some(end));
            prop_assert_eq!(&data, &body);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300), eof in any::<bool>()) {
        let _ = frame_request(&bytes);
        let _ = frame_response(&bytes, "GET", eof);
        let _ = final_response_head(&bytes);
        let _ = decode_chunked(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(req in request(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = req.bytes;
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = frame_request(&bytes);
        let _ = frame_response(&bytes, "HEAD", true);
        if let Ok(Some(head)) = parse_request_head(&bytes) {
            let _ = route_key(head.method(), head.target());
        }
    }
}
