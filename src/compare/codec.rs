//! Histogram exchange format: HdrHistogram V2 with DEFLATE, then base64 (standard alphabet,
//! padded) — the same text other HdrHistogram tools print in interval logs, so summaries written
//! by runs on many machines can be decoded and added together exactly.
//!
//! The `base64` crate is only a private dependency of `hdrhistogram`, and the encoding is a few
//! lines, so it lives here rather than in Cargo.toml.

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Why an encoded histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not base64: unexpected byte {byte:#04x} at offset {offset}")]
    Base64 { byte: u8, offset: usize },
    #[error("base64 text has a length of {0}, which is not a multiple of 4")]
    Base64Length(usize),
    #[error("not an HdrHistogram V2 histogram: {0:?}")]
    Histogram(hdrhistogram::serialization::DeserializeError),
}

/// Encodes a histogram as base64 of its V2 + DEFLATE serialisation; `None` only if the
/// serialiser refuses the histogram, which does not happen for `u64` counts on 64-bit targets.
pub fn encode(histogram: &Histogram<u64>) -> Option<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .ok()?;
    Some(base64_encode(&bytes))
}

/// Decodes what [`encode`] (or any HdrHistogram V2 writer, compressed or not) produced.
///
/// # Errors
/// [`DecodeError`] when the text is not base64 or the bytes are not a V2 histogram.
pub fn decode(text: &str) -> Result<Histogram<u64>, DecodeError> {
    let bytes = base64_decode(text.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(DecodeError::Histogram)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let input = text.as_bytes();
    if input.len() % 4 != 0 {
        return Err(DecodeError::Base64Length(input.len()));
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for (c, quad) in input.chunks(4).enumerate() {
        let last = c + 1 == input.len() / 4;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &byte) in quad.iter().enumerate() {
            let offset = c * 4 + i;
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                // Padding only at the very end, and at most two of it.
                b'=' if last && i >= 2 && (i == 3 || quad[3] == b'=') => {
                    pad += 1;
                    0
                }
                _ => return Err(DecodeError::Base64 { byte, offset }),
            };
            n = (n << 6) | u32::from(value);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("Zg=").is_err());
        assert!(base64_decode("Z=g=").is_err());
        assert!(base64_decode("Zg==Zg==").is_err());
        assert!(base64_decode("Zm9*").is_err());
    }

    #[test]
    fn histogram_round_trips_exactly() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [1, 5, 999, 1_000, 12_345, 3_600_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 6);
        assert_eq!(back.max(), h.max());
    }

    proptest::proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            proptest::prop_assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
    }
}
