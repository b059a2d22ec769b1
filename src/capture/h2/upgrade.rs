//! HTTP/2 reached through the HTTP/1.1 upgrade (RFC 7540 §3.2, `Upgrade: h2c`): the
//! upgrade request is stream 1 of the HTTP/2 connection that follows the server's
//! `101 Switching Protocols`, so it is recorded in the form of a decoded HTTP/2 request
//! ([`super::form`]), its `HTTP2-Settings` taken as the client's first SETTINGS.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};

use super::form::PROTOCOL_MARKER;
use crate::http::{parse_request_head_with, HeadLimits, RequestHead, ResponseHead};

/// Fields that only mean something to one HTTP/1.1 connection (RFC 9113 §8.2.2): an
/// HTTP/2 request has none, so a replay over HTTP/2 must not send them.
const CONNECTION_FIELDS: [&[u8]; 5] = [
    b"connection",
    b"upgrade",
    b"http2-settings",
    b"keep-alive",
    b"proxy-connection",
];

/// Whether `token` is one of the comma-separated `values` (ASCII case-insensitive).
fn lists<'a>(mut values: impl Iterator<Item = &'a [u8]>, token: &[u8]) -> bool {
    values.any(|v| {
        v.split(|&c| c == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// Whether a request asks to switch to HTTP/2 in clear text.
pub fn asks_h2c(head: &RequestHead) -> bool {
    lists(head.header_values("upgrade"), b"h2c")
}

/// Whether a `101 Switching Protocols` switches to HTTP/2 in clear text.
pub fn grants_h2c(head: &ResponseHead) -> bool {
    head.status == 101 && lists(head.header_values("upgrade"), b"h2c")
}

/// The upgrade request `bytes` (head `head`) as stream 1 of the HTTP/2 connection: the
/// connection-specific fields (the fixed ones and those `Connection` names) removed, the
/// marker written where [`super::form::request`] writes it — after the other fields,
/// before the framing ones (`Content-Length`, `Transfer-Encoding`) — and the head parsed
/// again so that it matches the bytes. Every other byte is as it was on the wire. `None`
/// when the rewritten head does not parse within `limits` (it has no more fields than the
/// original, so only a head that was at a limit already).
pub fn request(
    bytes: &[u8],
    head: &RequestHead,
    limits: &HeadLimits,
) -> Option<(Vec<u8>, RequestHead)> {
    let named: Vec<&[u8]> = head
        .header_values("connection")
        .flat_map(|v| v.split(|&c| c == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
        .collect();
    let drop = |name: &[u8]| {
        CONNECTION_FIELDS
            .iter()
            .chain(named.iter())
            .any(|f| f.eq_ignore_ascii_case(name))
    };
    let head_bytes = bytes.get(..head.head_len)?;
    // Lines with their terminators; the last is the blank line that ends the head.
    let mut lines = head_bytes.split_inclusive(|&c| c == b'\n');
    let mut out = Vec::with_capacity(bytes.len() + PROTOCOL_MARKER.len() + 2);
    out.extend_from_slice(lines.next()?);
    let mut framing = Vec::new();
    let mut dropping = false;
    for line in lines {
        if line.trim_ascii().is_empty() {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            // A field line (a line starting with white space folds into the one before).
            let name = line.split(|&c| c == b':').next().unwrap_or_default();
            dropping = drop(name.trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length")
                || name.eq_ignore_ascii_case(b"transfer-encoding")
            {
                framing.extend_from_slice(line);
                continue;
            }
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(PROTOCOL_MARKER.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&framing);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes[head.head_len..]);
    let head = parse_request_head_with(&out, limits).ok()??;
    Some((out, head))
}

/// The SETTINGS payload the client sent in its `HTTP2-Settings` field (base64url, RFC
/// 7540 §3.2.1), or `None` when it is missing or not base64url of whole settings: then
/// it is ignored, as a SETTINGS frame that was never seen.
pub fn client_settings(head: &RequestHead) -> Option<Vec<u8>> {
    // The crate's URL-safe engine, lenient about the padding the RFC says to leave out.
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let value = head.header("http2-settings")?.trim_ascii();
    let payload = ENGINE.decode(value).ok()?;
    (payload.len() % 6 == 0).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request_head;

    fn rewrite(raw: &[u8]) -> (String, RequestHead) {
        let head = parse_request_head(raw).unwrap().unwrap();
        let (bytes, head) = request(raw, &head, &HeadLimits::default()).unwrap();
        (String::from_utf8(bytes).unwrap(), head)
    }

    #[test]
    fn connection_fields_go_and_the_marker_comes_before_the_framing() {
        let raw = b"POST /x?q=1 HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings, \
                    X-Hop\r\nContent-Length: 3\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\
                    X-Hop: 1\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nAccept: */*\r\n\r\nabc";
        let (text, head) = rewrite(raw);
        assert_eq!(
            text,
            "POST /x?q=1 HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\nX-Nprt-Protocol: HTTP/2\r\n\
             Content-Length: 3\r\n\r\nabc"
        );
        assert_eq!(head.head_len, text.len() - 3);
        assert!(crate::recording::recorded_over_http2(&head));
        assert_eq!(head.target(), "/x?q=1");
    }

    #[test]
    fn upgrade_tokens_and_settings() {
        let raw = b"GET / HTTP/1.1\r\nUpgrade: foo/2, H2C\r\nHTTP2-Settings: AAEAABAA\r\n\r\n";
        let head = parse_request_head(raw).unwrap().unwrap();
        assert!(asks_h2c(&head));
        // SETTINGS_HEADER_TABLE_SIZE (id 1) = 4096.
        assert_eq!(client_settings(&head), Some(vec![0, 1, 0, 0, 0x10, 0]));
        // What curl sends: `_` is base64url's 63.
        let curl = b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        let head = parse_request_head(curl).unwrap().unwrap();
        assert_eq!(
            client_settings(&head),
            Some(vec![0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff])
        );
        let no = b"GET / HTTP/1.1\r\nUpgrade: h2c2, websocket\r\nHTTP2-Settings: ***\r\n\r\n";
        let head = parse_request_head(no).unwrap().unwrap();
        assert!(!asks_h2c(&head));
        assert_eq!(client_settings(&head), None);
        // Valid base64url, but not whole 6-byte settings.
        let odd = b"GET / HTTP/1.1\r\nHTTP2-Settings: AAEA\r\n\r\n";
        let head = parse_request_head(odd).unwrap().unwrap();
        assert_eq!(client_settings(&head), None);
    }
}
