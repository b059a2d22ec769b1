//! The chunked transfer coding (RFC 9112 §7.1): where a chunked body ends, and the data
//! it carries.
//!
//! [`ChunkedScanner`] is a push state machine: it never buffers, so a capture can feed it
//! segment by segment and memory stays constant however long the body is.

use super::HttpError;

/// More hex digits than this in a chunk size is refused, even with leading zeros: no peer
/// needs them, and parsers that disagree on such sizes are how requests get smuggled.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size {
        digits: u8,
    },
    /// After the size or an extension value: optional whitespace, then `;` or CR.
    ExtGap,
    ExtNameStart,
    ExtName,
    ExtAfterName,
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedEscape,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Finds the end of a chunked body fed to it in pieces, checking its syntax on the way.
///
/// Strict on purpose: sizes are hex with at most 16 digits, every line ends in CRLF, chunk
/// extensions (`;name=value`, value a token or quoted string) and trailer fields must be
/// well formed. A passive observer that framed more leniently than the server would
/// desynchronise from it.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// Size of the chunk being read, then the data bytes still to come in it.
    size: u64,
    /// Body bytes consumed so far, for error messages.
    offset: u64,
    /// Chunk data announced so far, and the most allowed.
    announced: u64,
    max_data: u64,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    /// A scanner positioned at the first byte of a chunked body.
    pub fn new() -> Self {
        Self::with_max_data(u64::MAX)
    }

    /// A scanner that refuses a body whose chunk sizes add up to more than `max_data`
    /// bytes with [`HttpError::Limit`], as soon as the size line that crosses it is read.
    pub fn with_max_data(max_data: u64) -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            offset: 0,
            announced: 0,
            max_data,
        }
    }

    /// Whether the body has ended: the last chunk, trailers and final CRLF were all seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes consumed so far, over every call to `feed`.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Feeds the next bytes of the body.
    ///
    /// Returns `Some(n)` when the body ended after the first `n` bytes of `bytes` (the rest
    /// belongs to whatever follows the message), `None` when more bytes are needed.
    ///
    /// # Errors
    /// The body is not valid chunked coding; the message says what and at which body offset.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, HttpError> {
        self.feed_with(bytes, |_| {})
    }

    /// Like [`feed`](Self::feed), and hands every piece of chunk data to `on_data` in order.
    ///
    /// # Errors
    /// The body is not valid chunked coding.
    pub fn feed_with(
        &mut self,
        bytes: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<Option<usize>, HttpError> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Done => return Ok(Some(i)),
                State::Data => {
                    let rest = &bytes[i..];
                    // A chunk larger than usize can only be partly in memory anyway.
                    let take = usize::try_from(self.size).map_or(rest.len(), |s| s.min(rest.len()));
                    on_data(&rest[..take]);
                    i += take;
                    self.size -= take as u64;
                    self.offset = self.offset.saturating_add(take as u64);
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    self.state = self.step(bytes[i])?;
                    i += 1;
                    self.offset = self.offset.saturating_add(1);
                }
            }
        }
        Ok(self.is_done().then_some(i))
    }

    fn error(&self, what: &str) -> HttpError {
        HttpError::Framing(format!(
            "chunked body: {what} at body offset {}",
            self.offset
        ))
    }

    /// One byte outside chunk data: the size line, the CRLF after the data, or the trailer.
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        use State::*;
        match self.state {
            Size { digits } => self.size_digit(digits, b),
            ExtGap | ExtNameStart | ExtName | ExtAfterName | ExtValueStart | ExtToken
            | ExtQuoted | ExtQuotedEscape => self.extension(b),
            SizeLf => self.size_line_end(b),
            DataCr | DataLf | TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                self.after_data(b)
            }
            // `feed_with` consumes data in bulk and stops at the end; neither reaches here.
            Data | Done => Ok(self.state),
        }
    }

    /// A byte of the chunk size: another hex digit, or what ends the size.
    fn size_digit(&mut self, digits: u8, b: u8) -> Result<State, HttpError> {
        use State::*;
        let ws = b == b' ' || b == b'\t';
        Ok(match hex_value(b) {
            Some(v) => {
                if digits >= MAX_SIZE_DIGITS {
                    return Err(self.error("chunk size longer than 16 hex digits"));
                }
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(v)))
                    .ok_or_else(|| self.error("chunk size overflows"))?;
                Size { digits: digits + 1 }
            }
            None if digits == 0 => return Err(self.error("expected a hex chunk size")),
            None if ws => ExtGap,
            None if b == b';' => ExtNameStart,
            None if b == b'\r' => SizeLf,
            None => return Err(self.error("invalid byte after chunk size")),
        })
    }

    /// A byte of the chunk extensions after the size (`;name=value`, the value a token or a
    /// quoted string), up to the CR that ends the size line.
    fn extension(&self, b: u8) -> Result<State, HttpError> {
        use State::*;
        let ws = b == b' ' || b == b'\t';
        Ok(match self.state {
            ExtGap => match b {
                _ if ws => ExtGap,
                b';' => ExtNameStart,
                b'\r' => SizeLf,
                _ => return Err(self.error("invalid chunk extension")),
            },
            ExtNameStart => match b {
                _ if ws => ExtNameStart,
                _ if is_tchar(b) => ExtName,
                _ => return Err(self.error("invalid chunk extension name")),
            },
            ExtName | ExtAfterName => match b {
                _ if is_tchar(b) && self.state == ExtName => ExtName,
                _ if ws => ExtAfterName,
                b'=' => ExtValueStart,
                b';' => ExtNameStart,
                b'\r' => SizeLf,
                _ => return Err(self.error("invalid chunk extension name")),
            },
            ExtValueStart => match b {
                _ if ws => ExtValueStart,
                b'"' => ExtQuoted,
                _ if is_tchar(b) => ExtToken,
                _ => return Err(self.error("invalid chunk extension value")),
            },
            ExtToken => match b {
                _ if is_tchar(b) => ExtToken,
                _ if ws => ExtGap,
                b';' => ExtNameStart,
                b'\r' => SizeLf,
                _ => return Err(self.error("invalid chunk extension value")),
            },
            ExtQuoted => match b {
                b'"' => ExtGap,
                b'\\' => ExtQuotedEscape,
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtQuoted,
                _ => return Err(self.error("invalid byte in quoted chunk extension")),
            },
            ExtQuotedEscape => match b {
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ExtQuoted,
                _ => return Err(self.error("invalid escape in quoted chunk extension")),
            },
            // Not an extension state: `step` sends only those here.
            other => other,
        })
    }

    /// The LF ending the size line: the chunk's data follows (its size counted against the
    /// limit), or the trailer after the last, empty chunk.
    fn size_line_end(&mut self, b: u8) -> Result<State, HttpError> {
        match b {
            b'\n' if self.size == 0 => Ok(State::TrailerStart),
            b'\n' => {
                self.announced = self
                    .announced
                    .checked_add(self.size)
                    .filter(|&n| n <= self.max_data)
                    .ok_or(HttpError::Limit {
                        what: "chunked body bytes",
                        limit: self.max_data,
                    })?;
                Ok(State::Data)
            }
            _ => Err(self.error("chunk size line not ended by CRLF")),
        }
    }

    /// A byte after chunk data: the CRLF ending a chunk, or the trailer fields and the CRLF
    /// ending the body.
    fn after_data(&self, b: u8) -> Result<State, HttpError> {
        use State::*;
        Ok(match self.state {
            DataCr => match b {
                b'\r' => DataLf,
                _ => return Err(self.error("chunk data longer than its size")),
            },
            DataLf => match b {
                b'\n' => Size { digits: 0 },
                _ => return Err(self.error("chunk data not followed by CRLF")),
            },
            TrailerStart => match b {
                b'\r' => EndLf,
                _ if is_tchar(b) => TrailerName,
                _ => return Err(self.error("invalid trailer field name")),
            },
            TrailerName => match b {
                _ if is_tchar(b) => TrailerName,
                b':' => TrailerValue,
                _ => return Err(self.error("invalid trailer field name")),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                b'\t' | b' '..=0x7e | 0x80..=0xff => TrailerValue,
                _ => return Err(self.error("invalid byte in trailer field value")),
            },
            TrailerLf => match b {
                b'\n' => TrailerStart,
                _ => return Err(self.error("trailer field not ended by CRLF")),
            },
            EndLf => match b {
                b'\n' => Done,
                _ => return Err(self.error("chunked body not ended by CRLF")),
            },
            // Not a state after data: `step` sends only those here.
            other => other,
        })
    }
}

/// The data of the chunked body at the start of `raw`, without sizes, extensions or
/// trailers; bytes after the body's end are ignored. Useful to compare bodies whose chunk
/// boundaries differ.
///
/// # Errors
/// The body is invalid or ends before its last chunk.
pub fn decode_chunked(raw: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut data = Vec::with_capacity(raw.len());
    let mut scanner = ChunkedScanner::new();
    match scanner.feed_with(raw, |piece| data.extend_from_slice(piece))? {
        Some(_) => Ok(data),
        None => Err(scanner.error("truncated")),
    }
}

/// The trailer fields of a chunked body (`name: value` lines after the last chunk), or `None`
/// when the body is not complete chunked framing. Chunk extensions are skipped.
pub fn chunked_trailers(raw: &[u8]) -> Option<Vec<(String, String)>> {
    let mut rest = raw;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = rest[..line_end].split(|&b| b == b';').next()?;
        let size_text = std::str::from_utf8(size_text).ok()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        // The chunk and its CRLF.
        rest = rest.get(size.checked_add(2)?..)?;
    }
    let mut fields = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        if line_end == 0 {
            return Some(fields);
        }
        let line = std::str::from_utf8(&rest[..line_end]).ok()?;
        let (name, value) = line.split_once(':')?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        rest = &rest[line_end + 2..];
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 token characters.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(body: &[u8]) -> Result<Option<usize>, HttpError> {
        ChunkedScanner::new().feed(body)
    }

    #[test]
    fn trailers_are_read_after_the_last_chunk() {
        let body = b"5;x=1\r\nhello\r\n0\r\ngrpc-status: 14\r\nGrpc-Message: down\r\n\r\n";
        let t = chunked_trailers(body).unwrap();
        assert_eq!(
            t,
            [
                ("grpc-status".into(), "14".into()),
                ("grpc-message".into(), "down".into())
            ]
        );
        assert_eq!(chunked_trailers(b"0\r\n\r\n").unwrap(), []);
        assert_eq!(chunked_trailers(b"5\r\nhel"), None, "cut short");
        assert_eq!(chunked_trailers(b"zz\r\n"), None);
    }

    #[test]
    fn simple_body_ends_after_last_chunk() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(scan(body), Ok(Some(body.len() - 16)));
        assert_eq!(decode_chunked(body).as_deref(), Ok(&b"hello world"[..]));
    }

    #[test]
    fn extensions_and_trailers_are_accepted_and_skipped() {
        let body = b"4;name=value\r\nWiki\r\n5 ; a ; b = \"q\\\"x;y\"\r\npedia\r\n\
                     0;last\r\nExpires: never\r\nX-Sum:abc\r\n\r\n";
        assert_eq!(scan(body), Ok(Some(body.len())));
        assert_eq!(decode_chunked(body).as_deref(), Ok(&b"Wikipedia"[..]));
    }

    #[test]
    fn upper_and_lower_case_hex_sizes() {
        let body = b"a\r\n0123456789\r\nA\r\n0123456789\r\n00\r\n\r\n";
        assert_eq!(decode_chunked(body).map(|d| d.len()), Ok(20));
    }

    #[test]
    fn chunk_size_overflow_and_too_many_digits_are_errors() {
        assert!(scan(b"10000000000000000\r\n").is_err());
        assert!(scan(b"00000000000000001\r\n").is_err());
        // 16 digits is the limit; such a chunk is merely incomplete.
        assert_eq!(scan(b"ffffffffffffffff\r\nabc"), Ok(None));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n",
            b"5\r\nhello\rX",
            b"5;\"q\r\n",
            b"5;a=\x01\r\n",
            b"0\r\nbad header\r\n\r\n",
            b"0\r\nX: a\nb\r\n\r\n",
            b"0\r\n\rX",
            b"-1\r\n",
        ] {
            assert!(scan(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn truncated_bodies_need_more_and_do_not_decode() {
        let body = b"3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n";
        for cut in 0..body.len() {
            assert_eq!(scan(&body[..cut]), Ok(None), "cut at {cut}");
            assert!(decode_chunked(&body[..cut]).is_err());
        }
    }

    #[test]
    fn feeding_byte_by_byte_matches_feeding_whole() {
        let body = b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nrest";
        let mut scanner = ChunkedScanner::new();
        let mut data = Vec::new();
        let mut end = None;
        for (i, b) in body.iter().enumerate() {
            if let Some(n) = scanner
                .feed_with(std::slice::from_ref(b), |d| data.extend_from_slice(d))
                .unwrap()
            {
                end = Some(i + n);
                break;
            }
        }
        assert_eq!(end, Some(body.len() - 4));
        assert_eq!(data, b"abc");
        assert!(scanner.is_done());
        assert_eq!(scanner.consumed(), (body.len() - 4) as u64);
    }
}
