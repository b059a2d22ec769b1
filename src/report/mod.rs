//! Renderers of a [`Verdict`]: one file per output format, each a single
//! `render(&Verdict) -> String`, so a new format (HTML, JUnit, Markdown) is one more file and
//! one more [`Format`] variant. Renderers only format; every number and decision comes from
//! `compare`. Writing the string to stdout or a file is the caller's job. [`labels`] turns
//! `compare`'s check ids into readable names and its numbers into numbers with units for every
//! format a person reads (JSON keeps the ids); [`routes`] orders routes failing first;
//! [`resources`] writes the Prometheus metrics' rows and charts.

pub mod html;
pub mod json;
pub mod junit;
pub mod labels;
pub mod markdown;
pub mod resources;
pub mod routes;
pub mod text;

pub use labels::{check_name, test_name};

use std::fmt;
use std::str::FromStr;

use crate::compare::Verdict;

/// An output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for a terminal.
    Text,
    /// `nprt.report/v2` JSON, for machines and for merging later.
    Json,
    /// One self-contained HTML file with inline SVG charts.
    Html,
    /// JUnit XML, one test case per route × metric.
    Junit,
    /// Markdown for CI job summaries.
    Markdown,
}

impl Format {
    /// Every format, by the name `--format` accepts.
    pub const ALL: &'static [(&'static str, Format)] = &[
        ("text", Format::Text),
        ("json", Format::Json),
        ("html", Format::Html),
        ("junit", Format::Junit),
        ("markdown", Format::Markdown),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Html => "html",
            Format::Junit => "junit",
            Format::Markdown => "markdown",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--format` value that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format {0:?}; use one of: text, json, html, junit, markdown")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::ALL
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|&(_, format)| format)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Renders `verdict` for stdout: like [`render`], with colour in the text format when `tty`.
pub fn render_for(verdict: &Verdict, format: Format, tty: bool) -> String {
    match format {
        Format::Text => text::render_with(verdict, tty),
        other => render(verdict, other),
    }
}

/// Renders `verdict` in `format`; the result ends with a newline.
pub fn render(verdict: &Verdict, format: Format) -> String {
    match format {
        Format::Text => text::render(verdict),
        Format::Json => json::render(verdict),
        Format::Html => html::render(verdict),
        Format::Junit => junit::render(verdict),
        Format::Markdown => markdown::render(verdict),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::{Comparison, Options};
    use crate::observation::Observation;

    /// A comparison of gRPC calls on `/echo.Echo/Call` (every answer an HTTP 200): the
    /// baseline answers all 300 `OK`, the candidate 31 of them `UNAVAILABLE`; plus an HTTP
    /// route, so that a mixed report shows both.
    pub(crate) fn grpc_verdict() -> Verdict {
        let mut c = Comparison::new(Options::new("stable", "canary")).unwrap();
        for i in 0..300u64 {
            for (target, code) in [("stable", 0), ("canary", if i < 31 { 14 } else { 0 })] {
                for (route, grpc_status) in [("/echo.Echo/Call", Some(code)), ("GET /health", None)]
                {
                    c.add(&Observation {
                        id: format!("{route}#{i}").into(),
                        target: target.into(),
                        route: route.into(),
                        method: if grpc_status.is_some() { "POST" } else { "GET" }.into(),
                        status: Some(200),
                        latency_us: 1000 + (i * 37) % 100 * 10,
                        bytes: 20,
                        error: None,
                        at_ms: None,
                        grpc_status,
                    });
                }
            }
        }
        c.verdict()
    }

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("text".parse::<Format>(), Ok(Format::Text));
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert_eq!("html".parse::<Format>(), Ok(Format::Html));
        let err = "pdf".parse::<Format>().unwrap_err().to_string();
        assert!(
            err.contains("\"pdf\"") && err.contains("text, json, html, junit, markdown"),
            "{err}"
        );
        for &(name, format) in Format::ALL {
            assert_eq!(format.name(), name);
        }
    }
}
