//! HTTP/1.x framing on arbitrary bytes: requests, responses (every method, at EOF or not),
//! chunked bodies whole and fed in pieces. Besides "no panic", checks that what framing
//! reports is consistent: lengths inside the buffer, a chunked body that framed decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nprt::http::{
    decode_chunked, final_response_head, frame_request, frame_response, route_key, ChunkedScanner,
    Framed,
};

const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "CONNECT", "PUT"];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, buf)) = data.split_first() else {
        return;
    };
    let mut rest = buf;
    // Pipelined requests, one after another, as capture and the tee proxy take them.
    for _ in 0..64 {
        match frame_request(rest) {
            Ok(Framed::Complete(f)) => {
                assert!(f.body_start <= f.len && f.len <= rest.len());
                f.decoded_body(rest).expect("a framed body decodes");
                let _ = route_key(&f.head.method, &f.head.target);
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

    // The chunked scanner must not care how the body is cut.
    let whole = decode_chunked(buf);
    let step = usize::from(ctl & 0x0f) + 1;
    let mut scanner = ChunkedScanner::new();
    let mut pieces = Vec::new();
    let mut outcome = Ok(None);
    for (i, piece) in buf.chunks(step).enumerate() {
        match scanner.feed_with(piece, |d| pieces.extend_from_slice(d)) {
            Ok(Some(n)) => {
                outcome = Ok(Some(i * step + n));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    match (&whole, &outcome) {
        (Ok(body), Ok(Some(_))) => assert_eq!(body, &pieces),
        (Err(_), Err(_)) => {}
        // The whole buffer may hold bytes after the body, or stop before its end.
        _ => {}
    }
    if let Ok(Some(n)) = outcome {
        assert!(n <= buf.len());
        assert_eq!(decode_chunked(&buf[..n]).as_deref().ok(), Some(&pieces[..]));
    }
});
