//! Histogram exchange format: HdrHistogram V2 with DEFLATE, then base64 (standard alphabet,
//! padded) — the same text other HdrHistogram tools print in interval logs, so summaries written
//! by runs on many machines can be decoded and added together exactly.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Why an encoded histogram could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
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

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(decode("Zm9*"), Err(DecodeError::Base64(_))));
        assert!(matches!(decode("Zm9v"), Err(DecodeError::Histogram(_))));
    }
}
