//! Reading the response to a request a client sent, as its bytes arrive on the connection:
//! where it ends, its status, how many body bytes it carried, and whether the connection can
//! carry another request. The body is counted, never kept, so memory does not depend on it.

use super::body::{response_length, BodyLength};
use super::head::with_response_head;
use super::{ChunkedScanner, HeadLimits, HttpError};

/// The outcome of one response read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Body bytes, after removing the chunked coding.
    pub body_bytes: u64,
    /// Whether the connection may carry another request: the response was delimited by its
    /// own framing, neither side asked to close, and nothing followed it.
    pub reusable: bool,
}

/// A push reader for one response: feed it bytes in the order they arrive.
#[derive(Debug)]
pub struct ResponseReader {
    /// `HEAD`, `CONNECT` or `GET` standing for every other method: all that decides how a
    /// response is framed.
    request_method: &'static str,
    limits: HeadLimits,
    state: State,
    status: u16,
    body_bytes: u64,
    reusable: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Fixed(u64),
    Chunked(ChunkedScanner),
    UntilClose,
    Done,
}

impl ResponseReader {
    /// A reader for the response to a request with `request_method`, refusing a head beyond
    /// `limits` (the body is not bounded: it is counted, not kept).
    pub fn new(request_method: &str, limits: HeadLimits) -> Self {
        ResponseReader {
            request_method: match request_method {
                "HEAD" => "HEAD",
                "CONNECT" => "CONNECT",
                _ => "GET",
            },
            limits,
            state: State::Head,
            status: 0,
            body_bytes: 0,
            reusable: true,
        }
    }

    /// Takes what it can from the front of `buf` and says how many bytes it took. What it
    /// leaves is an incomplete head: call again with the same bytes and more after them.
    /// Interim (1xx) responses are read past.
    ///
    /// # Errors
    /// The response is malformed or its head is beyond the limits.
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, HttpError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match &mut self.state {
                State::Head => {
                    let method = self.request_method;
                    let parsed = with_response_head(rest, &self.limits, |head| {
                        let length = response_length(head.status, head.version, method, |name| {
                            head.values(name)
                        })?;
                        let keep_alive =
                            connection_persists(head.version, |name| head.values(name));
                        Ok((head.status, head.head_len, length, keep_alive))
                    })?;
                    let Some((status, head_len, length, keep_alive)) = parsed else {
                        return Ok(used);
                    };
                    used += head_len;
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    self.status = status;
                    self.reusable = keep_alive;
                    self.state = match length {
                        BodyLength::Empty | BodyLength::Fixed(0) => State::Done,
                        BodyLength::Fixed(n) => State::Fixed(n),
                        BodyLength::Chunked => {
                            State::Chunked(ChunkedScanner::with_max_data(u64::MAX))
                        }
                        BodyLength::CloseDelimited => {
                            self.reusable = false;
                            State::UntilClose
                        }
                        BodyLength::Tunnel => {
                            // Whatever follows is not HTTP/1.1 any more.
                            self.reusable = false;
                            State::Done
                        }
                    };
                }
                State::Fixed(remaining) => {
                    let take =
                        usize::try_from(*remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    *remaining -= take as u64;
                    self.body_bytes += take as u64;
                    used += take;
                    if *remaining > 0 {
                        return Ok(used);
                    }
                    self.state = State::Done;
                }
                State::Chunked(scanner) => {
                    let mut data = 0u64;
                    let end = scanner.feed_with(rest, |d| data += d.len() as u64)?;
                    self.body_bytes += data;
                    match end {
                        Some(n) => {
                            used += n;
                            self.state = State::Done;
                        }
                        None => return Ok(buf.len()),
                    }
                }
                State::UntilClose => {
                    self.body_bytes += rest.len() as u64;
                    return Ok(buf.len());
                }
                State::Done => {
                    if !rest.is_empty() {
                        // Bytes nobody asked for: the connection is out of step.
                        self.reusable = false;
                    }
                    return Ok(used);
                }
            }
        }
    }

    /// The connection has ended: a body that runs until the close is complete now.
    ///
    /// # Errors
    /// The response was not complete.
    pub fn end(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Done => Ok(()),
            State::Head => Err(HttpError::Framing(
                "the connection closed before a complete response head".into(),
            )),
            State::Fixed(_) | State::Chunked(_) => Err(HttpError::Framing(format!(
                "the connection closed after {} body bytes, before the body ended",
                self.body_bytes
            ))),
        }
    }

    /// Whether no byte of the response has been taken yet.
    pub fn is_untouched(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// The response, once it has ended.
    pub fn finished(&self) -> Option<Response> {
        matches!(self.state, State::Done).then_some(Response {
            status: self.status,
            body_bytes: self.body_bytes,
            reusable: self.reusable,
        })
    }
}

/// Whether the connection stays open after a message of `version` with these Connection
/// fields (RFC 9112 §9.3): HTTP/1.1 unless `close`, HTTP/1.0 only with `keep-alive`.
fn connection_persists<'a, I>(version: u8, values: impl Fn(&'static str) -> I) -> bool
where
    I: Iterator<Item = &'a [u8]>,
{
    let has = |token: &[u8]| super::lists_token(values("connection"), token);
    if version == 0 {
        has(b"keep-alive")
    } else {
        !has(b"close")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes the way a connection delivers them: what the
    /// reader leaves stays in the buffer and more is appended.
    fn read(method: &str, wire: &[u8], step: usize, eof: bool) -> Result<Response, HttpError> {
        let mut reader = ResponseReader::new(method, HeadLimits::default());
        let mut buf = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let used = reader.feed(&buf)?;
            buf.drain(..used);
        }
        if eof {
            reader.end()?;
        }
        Ok(reader.finished().expect("the response ended"))
    }

    fn every_split(method: &str, wire: &str, eof: bool) -> Response {
        let first = read(method, wire.as_bytes(), wire.len(), eof).unwrap();
        for step in 1..wire.len() {
            assert_eq!(
                read(method, wire.as_bytes(), step, eof).unwrap(),
                first,
                "{step}"
            );
        }
        first
    }

    #[test]
    fn content_length_chunked_and_close_delimited() {
        let fixed = every_split(
            "GET",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            false,
        );
        assert_eq!(
            (fixed.status, fixed.body_bytes, fixed.reusable),
            (200, 5, true)
        );
        let chunked = every_split(
            "GET",
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            false,
        );
        assert_eq!(
            (chunked.status, chunked.body_bytes, chunked.reusable),
            (201, 5, true)
        );
        let until_close = every_split("GET", "HTTP/1.1 200 OK\r\n\r\nall of it", true);
        assert_eq!((until_close.body_bytes, until_close.reusable), (9, false));
    }

    #[test]
    fn interim_responses_are_read_past_and_heads_have_no_body() {
        let r = every_split(
            "POST",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
            false,
        );
        assert_eq!((r.status, r.body_bytes, r.reusable), (204, 0, true));
        let head = every_split(
            "HEAD",
            "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            false,
        );
        assert_eq!((head.status, head.body_bytes), (200, 0));
        let switched = every_split("GET", "HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
        assert_eq!((switched.status, switched.reusable), (101, false));
    }

    #[test]
    fn who_closes_the_connection() {
        let close = every_split(
            "GET",
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(!close.reusable);
        let old = every_split(
            "GET",
            "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
            false,
        );
        assert!(!old.reusable);
        let old_kept = every_split(
            "GET",
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
            false,
        );
        assert!(old_kept.reusable);
        // Bytes after the end put the connection out of step.
        let extra = read(
            "GET",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP",
            64,
            false,
        );
        assert!(!extra.unwrap().reusable);
    }

    #[test]
    fn incomplete_and_malformed_responses_are_errors() {
        let mut reader = ResponseReader::new("GET", HeadLimits::default());
        assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), 0);
        assert!(reader.is_untouched());
        assert!(reader
            .end()
            .unwrap_err()
            .to_string()
            .contains("before a complete response head"));

        let mut reader = ResponseReader::new("GET", HeadLimits::default());
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(reader.feed(wire).unwrap(), wire.len());
        assert!(reader.finished().is_none() && !reader.is_untouched());
        assert!(reader
            .end()
            .unwrap_err()
            .to_string()
            .contains("after 3 body bytes"));

        for bad in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            let mut reader = ResponseReader::new("GET", HeadLimits::default());
            assert!(
                reader.feed(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let small = HeadLimits {
            max_head_bytes: 32,
            ..HeadLimits::default()
        };
        let mut reader = ResponseReader::new("GET", small);
        let err = reader
            .feed(b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaa")
            .unwrap_err();
        assert!(err.is_limit(), "{err}");
    }
}
