//! HTTP/2 frames (RFC 9113 §4, §6) cut out of one reassembled direction of a connection.
//!
//! The reader only frames: it strips padding and priority fields so that the caller sees
//! header block fragments and data as they count, and leaves every meaning to the caller.

/// What a client sends first on an h2c connection with prior knowledge (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

/// The 9-byte frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `b` (at least 9 bytes).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; 9] = b.get(..9)?.try_into().ok()?;
        Some(Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether this header is one a conforming peer could send: a known type on the kind of
    /// stream (connection or request) it belongs to, the reserved bit clear. Used to tell a
    /// connection joined mid-way that speaks HTTP/2 from one that speaks HTTP/1.
    fn plausible(raw: &[u8]) -> bool {
        let Some(h) = Self::parse(raw) else {
            return false;
        };
        let on_stream = h.stream != 0;
        raw[5] & 0x80 == 0
            && match h.kind {
                DATA | HEADERS | PRIORITY | RST_STREAM | CONTINUATION | PUSH_PROMISE => on_stream,
                SETTINGS => !on_stream && h.len % 6 == 0,
                PING => !on_stream && h.len == 8,
                GOAWAY => !on_stream && h.len >= 8,
                WINDOW_UPDATE => h.len == 4,
                _ => false,
            }
    }
}

/// What the first bytes seen of a direction of a connection joined mid-way say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looks {
    /// A run of plausible HTTP/2 frames: one ending exactly where the bytes end, or at
    /// least two headers in a row. Random bytes (an HTTP/1 body) rarely pass the first
    /// header and almost never two; HTTP/1 text never does (a letter where the type is).
    Frames,
    /// Not HTTP/2 framing.
    NotFrames,
    /// Too few bytes to tell.
    Unsure,
}

/// How `data`, the first bytes seen of a direction joined mid-way, reads.
pub fn looks_like_frames(data: &[u8]) -> Looks {
    let mut at = 0;
    let mut headers = 0;
    loop {
        if at == data.len() && headers > 0 {
            return Looks::Frames;
        }
        let rest = &data[at.min(data.len())..];
        if at > data.len() || rest.len() < 9 {
            return if headers >= 2 {
                Looks::Frames
            } else {
                Looks::Unsure
            };
        }
        if !FrameHeader::plausible(rest) {
            return Looks::NotFrames;
        }
        let len = FrameHeader::parse(rest).map_or(0, |h| h.len);
        at += 9 + len;
        headers += 1;
    }
}

/// One frame with padding and priority fields removed. For PUSH_PROMISE the promised
/// stream id is removed too: `payload` is the header block fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub head: FrameHeader,
    pub payload: Vec<u8>,
    /// When the first byte of the frame was seen.
    pub ts_ns: u64,
    /// A DATA frame larger than the reader keeps: its payload was skipped.
    pub cut: bool,
}

/// A frame that breaks the framing: the direction cannot be read any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The client's first bytes are not the connection preface.
    NoPreface,
    /// Padding longer than the frame, or a frame too short for its fixed fields.
    BadLength,
    /// A frame other than DATA larger than the reader keeps.
    TooLarge,
}

/// Frames of one direction, fed with reassembled bytes.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    pos: usize,
    /// The connection preface is still expected (the client's direction).
    preface: bool,
    /// Largest payload kept; a larger DATA frame is skipped, any other is an error.
    max_frame: usize,
    /// Bytes of a cut DATA frame still to skip.
    skip: usize,
    /// When the first unconsumed byte was seen.
    start_ns: u64,
    last_ns: u64,
}

impl FrameReader {
    /// A reader of the client's direction (`preface`) or the server's.
    pub fn new(preface: bool, max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            preface,
            max_frame,
            skip: 0,
            start_ns: 0,
            last_ns: 0,
        }
    }

    /// Bytes held.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends bytes first seen at `ts_ns`.
    pub fn push(&mut self, mut data: &[u8], ts_ns: u64) {
        let skipped = self.skip.min(data.len());
        self.skip -= skipped;
        data = &data[skipped..];
        if data.is_empty() {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.start_ns = ts_ns;
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
        self.last_ns = ts_ns;
    }

    /// The next whole frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.preface {
            let have = &self.buf[self.pos..];
            let n = have.len().min(PREFACE.len());
            if have[..n] != PREFACE[..n] {
                return Some(Err(FrameError::NoPreface));
            }
            if n < PREFACE.len() {
                return None;
            }
            self.consume(PREFACE.len());
            self.preface = false;
        }
        let head = FrameHeader::parse(&self.buf[self.pos..])?;
        let ts_ns = self.start_ns;
        if head.len > self.max_frame {
            if head.kind != DATA {
                return Some(Err(FrameError::TooLarge));
            }
            let have = (self.buf.len() - self.pos - 9).min(head.len);
            self.consume(9 + have);
            self.skip = head.len - have;
            let frame = Frame {
                head,
                payload: Vec::new(),
                ts_ns,
                cut: true,
            };
            return Some(Ok(frame));
        }
        let end = self.pos + 9 + head.len;
        if self.buf.len() < end {
            return None;
        }
        let raw = &self.buf[self.pos + 9..end];
        let payload = strip(&head, raw).map(<[u8]>::to_vec);
        self.consume(9 + head.len);
        Some(payload.map(|payload| Frame {
            head,
            payload,
            ts_ns,
            cut: false,
        }))
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos < self.buf.len() {
            // What is left arrived with the latest bytes.
            self.start_ns = self.last_ns;
        }
    }
}

/// The payload of a frame less its padding, priority fields and promised stream id.
fn strip<'a>(head: &FrameHeader, raw: &'a [u8]) -> Result<&'a [u8], FrameError> {
    let mut body = raw;
    let padded = matches!(head.kind, DATA | HEADERS | PUSH_PROMISE) && head.flags & PADDED != 0;
    if padded {
        let (&pad, rest) = body.split_first().ok_or(FrameError::BadLength)?;
        let keep = rest
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(FrameError::BadLength)?;
        body = &rest[..keep];
    }
    let fixed = match head.kind {
        HEADERS if head.flags & PRIORITY_FLAG != 0 => 5,
        PUSH_PROMISE => 4,
        _ => 0,
    };
    body.get(fixed..).ok_or(FrameError::BadLength)
}
