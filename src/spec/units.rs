//! The one syntax for durations (`500ms`, `10s`, `5m`, `1h`) and sizes (`512B`, `64KiB`,
//! `1MiB`, `1GiB`) on every flag and every scenario key. A bare number is refused with a
//! hint: `--timeout 500` meant milliseconds on one command and seconds on another, and a
//! size without a unit is as ambiguous.
//!
//! Written by hand: the crates for this (humantime, bytesize) accept forms nprt refuses
//! (bare numbers, `1 hour 2 min`, decimal `KB` as 1000), and the point is one strict syntax.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// A byte size written with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// Parses `500ms`, `10s`, `1.5s`, `5m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (value, unit) = split(text, "a duration like 500ms, 10s, 5m or 1h")?;
    let seconds = match unit {
        "" => {
            return Err(format!(
                "`{text}` has no unit: write {text}ms, {text}s or {text}m"
            ))
        }
        "us" | "µs" => value / 1e6,
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// Parses `512B`, `64KiB`, `1MiB` or `1GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (value, unit) = split(text, "a size like 512B, 64KiB or 1MiB")?;
    let scale: f64 = match unit {
        "" => {
            return Err(format!(
                "`{text}` has no unit: write {text}B, or use KiB, MiB, GiB"
            ))
        }
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" | "MB" | "GB" | "K" | "M" | "G" => {
            return Err(format!(
                "`{text}`: write sizes in powers of 1024 as B, KiB, MiB or GiB"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use B, KiB, MiB or GiB"
            ))
        }
    };
    let bytes = value * scale;
    if bytes.fract() != 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// A non-negative number and the unit after it.
fn split<'a>(text: &'a str, what: &str) -> Result<(f64, &'a str), String> {
    let t = text.trim();
    let at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(at);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not {what}"))?;
    Ok((value, unit.trim()))
}

impl Size {
    /// The size as a `usize` (saturating on 32-bit targets).
    pub fn bytes(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Span)
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Size)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= scale && self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Deserializes from a string with a unit; a bare TOML number gets the same hint as on the
/// command line.
struct UnitVisitor<T> {
    parse: fn(&str) -> Result<T, String>,
    expecting: &'static str,
}

impl<T> Visitor<'_> for UnitVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.parse)(&format!("{v}")).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.parse)(&format!("{v}")).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.parse)(&format!("{v}")).map_err(E::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            parse: |s| s.parse(),
            expecting: "a duration like \"500ms\", \"10s\" or \"5m\"",
        })
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor {
            parse: |s| s.parse(),
            expecting: "a size like \"64KiB\" or \"1MiB\"",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        let e = parse_duration("500").unwrap_err();
        assert!(e.contains("no unit") && e.contains("500ms"), "{e}");
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("is not a duration"));
    }

    #[test]
    fn sizes_need_a_unit_in_powers_of_1024() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert!(parse_size("65536").unwrap_err().contains("no unit"));
        assert!(parse_size("1MB").unwrap_err().contains("powers of 1024"));
        assert!(parse_size("0.5B").unwrap_err().contains("whole number"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["500ms", "10s", "90s"] {
            assert_eq!(text.parse::<Span>().unwrap().to_string(), text);
        }
        for text in ["512B", "64KiB", "1MiB", "3GiB"] {
            assert_eq!(text.parse::<Size>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn toml_numbers_get_the_same_hint() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            d: Span,
            s: Option<Size>,
        }
        let t: T = toml::from_str("d = \"2s\"\ns = \"1KiB\"").unwrap();
        assert_eq!((t.d.0, t.s.unwrap().0), (Duration::from_secs(2), 1024));
        let e = toml::from_str::<T>("d = 30").unwrap_err().to_string();
        assert!(e.contains("no unit"), "{e}");
    }
}
