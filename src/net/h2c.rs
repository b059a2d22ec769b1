//! Taking the h2c upgrade (RFC 7540 §3.2): a client on an `http://` URL that would like HTTP/2
//! sends its first request over HTTP/1.1 with `Upgrade: h2c` and `HTTP2-Settings`; a server
//! that agrees answers `101 Switching Protocols` and sends the response to that request as
//! HTTP/2 stream 1. curl `--http2`, Java's `HttpClient` and `nghttp -u` do this.
//!
//! hyper serves HTTP/2 only from the client's preface and has no way to be handed a stream
//! that is already open, so the server takes the upgrade in front of it: it reads the
//! connection's first request head ([`first_request`]); when that head asks for h2c and has
//! no body, it answers 101 and gives hyper's HTTP/2 server the client's preface and first
//! SETTINGS frame, then a HEADERS frame for stream 1 carrying that request
//! ([`stream_one_frames`]), then the rest of the connection. The header block is written
//! with HPACK literals that never enter the dynamic table, so the decoder's table stays
//! the one the client's encoder assumes and the client's own header blocks still decode.
//! Anything else (HTTP/1 without the upgrade, HTTP/2 with prior knowledge) is handed to
//! hyper untouched, the bytes already read put back in front ([`Prefixed`]).
//!
//! Only a connection's first request is upgraded (curl and Java upgrade nothing else); a
//! later upgrade request, one with a body, or one pipelined with more requests is served
//! over HTTP/1.1, as the RFC lets a server decline.
//!
//! The HPACK literal writer is hand-written: the HPACK crates' encoders index what they
//! encode, which here must never happen.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::http::{lists_token, HeadLimits, RequestHead};

/// The client's connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a server's first bytes from a client tell.
#[derive(Debug, PartialEq, Eq)]
pub enum First {
    /// Not enough bytes to tell.
    More,
    /// Anything but an h2c upgrade: served as it is.
    AsIs,
    /// An h2c upgrade: answer [`SWITCHING`], then serve HTTP/2 with these frames for
    /// stream 1 after the client's first SETTINGS.
    Upgrade(Vec<u8>),
}

/// The 101 answer to an h2c upgrade.
pub const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The largest frame payload a server must accept before its SETTINGS are known.
const MAX_FRAME: usize = 16_384;

/// Decides from the first bytes a client sent whether they ask for the h2c upgrade.
pub fn first_request(buf: &[u8], limits: &HeadLimits) -> First {
    if buf.len() < PREFACE.len() && PREFACE.starts_with(buf) {
        return First::More;
    }
    match crate::http::parse_request_head_with(buf, limits) {
        Ok(None) => First::More,
        Ok(Some(head)) if head.head_len == buf.len() && asks_for_h2c(&head) => {
            First::Upgrade(stream_one_frames(&head))
        }
        // A pipelined request after it, a head hyper will refuse, or no upgrade.
        Ok(Some(_)) | Err(_) => First::AsIs,
    }
}

/// Whether a request head asks for h2c in a way that can be taken: HTTP/1.1, `Upgrade`
/// listing `h2c`, `Connection` naming `Upgrade` and `HTTP2-Settings`, one `HTTP2-Settings`
/// field (RFC 7540 §3.2.1), and no body.
fn asks_for_h2c(head: &RequestHead) -> bool {
    let connection = || head.header_values("connection");
    head.version == 1
        && head.method() != "CONNECT"
        && lists_token(head.header_values("upgrade"), b"h2c")
        && lists_token(connection(), b"upgrade")
        && lists_token(connection(), b"http2-settings")
        && head.header_values("http2-settings").count() == 1
        && head.header("transfer-encoding").is_none()
        && head
            .header_values("content-length")
            .all(|v| v.trim_ascii() == b"0")
}

/// Stream 1's request as HEADERS (and CONTINUATION) frames, END_STREAM set.
pub fn stream_one_frames(head: &RequestHead) -> Vec<u8> {
    let block = header_block(head);
    let mut frames = Vec::with_capacity(block.len() + 9 * (1 + block.len() / MAX_FRAME));
    let chunks: Vec<&[u8]> = if block.is_empty() {
        vec![&[]]
    } else {
        block.chunks(MAX_FRAME).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let (kind, mut flags) = if i == 0 { (0x1, 0x1) } else { (0x9, 0x0) };
        if i + 1 == chunks.len() {
            flags |= 0x4;
        }
        let len = chunk.len().to_be_bytes();
        frames.extend_from_slice(&len[len.len() - 3..]);
        frames.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        frames.extend_from_slice(chunk);
    }
    frames
}

/// The request's fields as HTTP/2 sees them: pseudo-fields from the request line and Host,
/// names lower-cased, connection-specific fields left out (RFC 9113 §8.2.2).
fn header_block(head: &RequestHead) -> Vec<u8> {
    let target = head.target();
    // An absolute-form target carries the authority and the path.
    let (authority, path) = match target.split_once("://") {
        Some((_, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (
                Some(authority.as_bytes()),
                if path.is_empty() { "/" } else { path },
            )
        }
        None => (None, target),
    };
    let authority = authority.or_else(|| head.header("host"));
    let named_by_connection = |name: &[u8]| {
        head.header_values("connection")
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    };
    let mut block = Vec::with_capacity(head.head_len + 64);
    literal(&mut block, b":method", head.method().as_bytes());
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":path", path.as_bytes());
    if let Some(authority) = authority {
        literal(&mut block, b":authority", authority);
    }
    for (name, value) in head.header_bytes() {
        let name = name.to_ascii_lowercase();
        let hop = matches!(
            name.as_slice(),
            b"connection"
                | b"upgrade"
                | b"http2-settings"
                | b"keep-alive"
                | b"proxy-connection"
                | b"transfer-encoding"
                | b"host"
        ) || (name == b"te" && !value.trim_ascii().eq_ignore_ascii_case(b"trailers"))
            || named_by_connection(&name);
        if !hop {
            literal(&mut block, &name, value);
        }
    }
    block
}

/// One field as "literal without indexing, new name" (RFC 7541 §6.2.2), strings raw.
fn literal(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    block.push(0x00);
    for s in [name, value] {
        integer(block, s.len(), 7, 0x00);
        block.extend_from_slice(s);
    }
}

/// An HPACK integer with an `n`-bit prefix, the byte's other bits `flags` (RFC 7541 §5.1).
fn integer(block: &mut Vec<u8>, mut value: usize, n: u32, flags: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        block.push(flags | value as u8);
        return;
    }
    block.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        block.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    block.push(value as u8);
}

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I> Prefixed<I> {
    pub fn new(prefix: Vec<u8>, inner: I) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How a plain connection is to be served once its first bytes were read.
pub enum Opening<I> {
    /// Serve it as hyper would have (HTTP/1 or HTTP/2 with prior knowledge).
    AsIs(Prefixed<I>),
    /// Upgraded: serve HTTP/2 only; the preface, SETTINGS and stream 1 come first.
    Upgraded(Prefixed<I>),
}

/// Reads a plain connection's first request head (within `timeout`, else `None`: the client
/// is too slow, as hyper's own header timeout would find) and takes the h2c upgrade when it
/// asks for one.
pub async fn open<I: AsyncRead + AsyncWrite + Unpin>(
    mut io: I,
    limits: &HeadLimits,
    timeout: Duration,
) -> Option<Opening<I>> {
    let read = async {
        let mut buf = Vec::with_capacity(1024);
        loop {
            match first_request(&buf, limits) {
                First::More => {}
                First::AsIs => {
                    return Ok::<_, std::io::Error>(Opening::AsIs(Prefixed::new(buf, io)))
                }
                First::Upgrade(frames) => {
                    io.write_all(SWITCHING).await?;
                    io.flush().await?;
                    let start = read_preface_and_settings(&mut io).await?;
                    return Ok(Opening::Upgraded(Prefixed::new(splice(start, &frames), io)));
                }
            }
            if io.read_buf(&mut buf).await? == 0 {
                // Closed before a whole head: hyper sees the same end.
                return Ok(Opening::AsIs(Prefixed::new(buf, io)));
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(opening)) => Some(opening),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection ended before its first request");
            None
        }
        Err(_) => None,
    }
}

/// Reads what the client sends after the 101: its preface and first frame (SETTINGS), or
/// whatever it sent instead once that is clearly not it.
async fn read_preface_and_settings<I: AsyncRead + Unpin>(io: &mut I) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(PREFACE.len() + 64);
    while settings_end(&buf) == End::More {
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    More,
    /// The preface and first frame end here.
    At(usize),
    /// Not a preface followed by SETTINGS: nothing is injected.
    Not,
}

/// Where the client's preface and first SETTINGS frame end in `buf`.
fn settings_end(buf: &[u8]) -> End {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        return End::Not;
    }
    let Some(frame) = buf.get(PREFACE.len()..PREFACE.len() + 9) else {
        return End::More;
    };
    let len = usize::from(frame[0]) << 16 | usize::from(frame[1]) << 8 | usize::from(frame[2]);
    if frame[3] != 0x4 || len > MAX_FRAME {
        return End::Not;
    }
    let end = PREFACE.len() + 9 + len;
    if buf.len() >= end {
        End::At(end)
    } else {
        End::More
    }
}

/// The client's bytes with stream 1's frames put in after its preface and SETTINGS.
fn splice(start: Vec<u8>, frames: &[u8]) -> Vec<u8> {
    match settings_end(&start) {
        End::At(end) => {
            let mut out = Vec::with_capacity(start.len() + frames.len());
            out.extend_from_slice(&start[..end]);
            out.extend_from_slice(frames);
            out.extend_from_slice(&start[end..]);
            out
        }
        // Not HTTP/2 after all: hyper's HTTP/2 server refuses it as it is.
        End::More | End::Not => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &[u8] = b"GET /items?page=2 HTTP/1.1\r\nHost: shop:8080\r\nAccept: */*\r\n\
        Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\
        X-Trace: abc\r\n\r\n";

    fn decode(frames: &[u8]) -> Vec<(String, String)> {
        let mut block = Vec::new();
        let mut rest = frames;
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            assert_eq!(&rest[5..9], &[0, 0, 0, 1], "stream 1");
            block.extend_from_slice(&rest[9..9 + len]);
            rest = &rest[9 + len..];
        }
        let mut fields = Vec::new();
        let mut decoder = loona_hpack::Decoder::new();
        decoder
            .decode_with_cb(&block, |n, v| {
                fields.push((
                    String::from_utf8(n.into_owned()).unwrap(),
                    String::from_utf8(v.into_owned()).unwrap(),
                ));
            })
            .unwrap();
        fields
    }

    fn upgrade_frames(head: &[u8]) -> Vec<u8> {
        match first_request(head, &HeadLimits::default()) {
            First::Upgrade(frames) => frames,
            other => panic!("not taken: {other:?}"),
        }
    }

    #[test]
    fn an_upgrade_request_becomes_stream_one_without_its_connection_fields() {
        let frames = upgrade_frames(UPGRADE);
        // HEADERS, END_STREAM | END_HEADERS.
        assert_eq!((frames[3], frames[4]), (0x1, 0x5));
        let fields = decode(&frames);
        let expect = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/items?page=2"),
            (":authority", "shop:8080"),
            ("accept", "*/*"),
            ("x-trace", "abc"),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(fields, expect);
    }

    #[test]
    fn the_literals_leave_the_dynamic_table_as_it_was() {
        let frames = upgrade_frames(UPGRADE);
        let mut decoder = loona_hpack::Decoder::new();
        decoder.decode(&frames[9..]).unwrap();
        // The client's encoder knows an empty table: index 62 (the first dynamic entry)
        // must still be unknown to the server's decoder.
        assert!(decoder.decode(&[0x80 | 62]).is_err());
    }

    #[test]
    fn a_large_head_is_split_into_continuation_frames() {
        let big = "v".repeat(40_000);
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Big: {big}\r\n\r\n"
        );
        let limits = HeadLimits {
            max_head_bytes: 128 << 10,
            ..HeadLimits::default()
        };
        let First::Upgrade(frames) = first_request(head.as_bytes(), &limits) else {
            panic!("not taken");
        };
        let kinds: Vec<(u8, u8)> = {
            let mut kinds = Vec::new();
            let mut rest = frames.as_slice();
            while !rest.is_empty() {
                let len =
                    usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
                assert!(len <= MAX_FRAME);
                kinds.push((rest[3], rest[4]));
                rest = &rest[9 + len..];
            }
            kinds
        };
        assert_eq!(kinds, vec![(0x1, 0x1), (0x9, 0x0), (0x9, 0x4)]);
        let fields = decode(&frames);
        assert!(fields.contains(&("x-big".to_owned(), big)));
        assert!(fields.contains(&(":method".to_owned(), "POST".to_owned())));
    }

    #[test]
    fn what_is_not_an_upgrade_is_served_as_it_is() {
        let limits = HeadLimits::default();
        let declined: [&[u8]; 6] = [
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            // A body, a missing HTTP2-Settings, Connection not naming it, WebSocket, HTTP/1.0.
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AA\r\n\r\n",
        ];
        for head in declined {
            assert_eq!(first_request(head, &limits), First::AsIs, "{head:?}");
        }
        // Pipelined behind another request: the upgrade cannot be taken.
        let mut pipelined = UPGRADE.to_vec();
        pipelined.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(first_request(&pipelined, &limits), First::AsIs);
        // Not yet told.
        assert_eq!(first_request(b"", &limits), First::More);
        assert_eq!(first_request(b"PRI * HTTP", &limits), First::More);
        assert_eq!(first_request(&UPGRADE[..40], &limits), First::More);
        assert_eq!(first_request(PREFACE, &limits), First::AsIs);
        assert_eq!(first_request(b"\x16\x03\x01garbage", &limits), First::AsIs);
    }

    #[test]
    fn stream_one_goes_in_after_the_clients_settings() {
        let settings = [0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        let window_update = [0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0x10, 0];
        let mut client = PREFACE.to_vec();
        client.extend_from_slice(&settings);
        assert_eq!(settings_end(&client[..30]), End::More);
        assert_eq!(settings_end(&client[..PREFACE.len() + 10]), End::More);
        client.extend_from_slice(&window_update);
        let spliced = splice(client.clone(), b"STREAM-ONE");
        let at = PREFACE.len() + settings.len();
        assert_eq!(&spliced[..at], &client[..at]);
        assert_eq!(&spliced[at..at + 10], b"STREAM-ONE");
        assert_eq!(&spliced[at + 10..], &window_update);
        // Not a preface: nothing is put in.
        assert_eq!(
            splice(b"GET / HTTP/1.1\r\n".to_vec(), b"X"),
            b"GET / HTTP/1.1\r\n"
        );
        let mut ping_first = PREFACE.to_vec();
        ping_first.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(settings_end(&ping_first), End::Not);
    }

    #[test]
    fn hpack_integers_use_their_prefix_then_continuation_bytes() {
        let mut b = Vec::new();
        integer(&mut b, 10, 5, 0);
        integer(&mut b, 1337, 5, 0);
        integer(&mut b, 127, 7, 0);
        // RFC 7541 C.1.1 and C.1.2; 127 fills a 7-bit prefix and continues with 0.
        assert_eq!(b, vec![10, 31, 154, 10, 127, 0]);
    }
}
