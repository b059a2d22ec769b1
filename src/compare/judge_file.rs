//! The judge file: a TOML file that sets how strict the judge is — alpha and the p-value
//! correction, the thresholds (relative and absolute per metric), overrides for routes matching
//! a pattern, the minimum samples and the warm-up to exclude. `nprt compare --judge FILE` reads
//! it; `nprt calibrate` writes one.
//!
//! ```toml
//! alpha = 0.05
//! correction = "holm"        # holm | bh | none
//! min_requests = 20
//! warmup = 100               # first observations of each target left out
//!
//! [thresholds]
//! error_rate = 0.01                                  # +1 point of 5xx/no-response
//! p99 = { relative = 0.20, absolute_ms = 5.0 }       # fails only above both
//! shift = { relative = 0.10, absolute_ms = 2.0 }
//! distribution = 0.05                                # share of requests beyond the p99 allowance
//!
//! [[routes]]
//! pattern = "GET /api/search*"  # `*` matches anything; a pattern starting with / matches the path
//! min_requests = 50
//! thresholds = { p99 = { relative = 0.5, absolute_ms = 20.0 } }
//!
//! [prometheus]                  # resource metrics, see `crate::resource::config`
//! url = "http://127.0.0.1:9090"
//! step = "2s"
//! [[prometheus.metrics]]
//! name = "cpu per request"
//! query = 'rate(process_cpu_seconds_total{job="{target}"}[{step}])'
//! per_request = true
//! limit = "+20%"
//! ```
//!
//! Parsing is pure (text in, [`Options`] out); errors carry the line and column of the value or
//! key at fault, and the caller adds the file name.

use serde::Deserialize;
use toml::Spanned;

use super::{Correction, Options, RouteOverride};

/// A judge file that cannot be used, with where in the text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct JudgeFileError {
    /// 1-based; 0 when the parser could not say.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    alpha: Option<Spanned<f64>>,
    correction: Option<Spanned<String>>,
    min_requests: Option<Spanned<u64>>,
    warmup: Option<Spanned<u64>>,
    max_pending: Option<Spanned<u64>>,
    reservoir: Option<Spanned<u64>>,
    bootstrap_resamples: Option<Spanned<u64>>,
    #[serde(default)]
    thresholds: ThresholdsFile,
    #[serde(default)]
    routes: Vec<RouteFile>,
    prometheus: Option<crate::resource::config::File>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsFile {
    error_rate: Option<Spanned<f64>>,
    p99: Option<Allowance>,
    shift: Option<Allowance>,
    distribution: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Allowance {
    relative: Option<Spanned<f64>>,
    absolute_ms: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    pattern: Spanned<String>,
    min_requests: Option<Spanned<u64>>,
    #[serde(default)]
    thresholds: ThresholdsFile,
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

struct Checker<'a> {
    text: &'a str,
}

impl Checker<'_> {
    fn error<T>(&self, value: &Spanned<T>, message: String) -> JudgeFileError {
        let (line, column) = position(self.text, value.span().start);
        JudgeFileError {
            line,
            column,
            message,
        }
    }

    /// A finite number ≥ 0.
    fn limit(
        &self,
        value: &Option<Spanned<f64>>,
        name: &str,
    ) -> Result<Option<f64>, JudgeFileError> {
        match value {
            None => Ok(None),
            Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => Ok(Some(*v.get_ref())),
            Some(v) => Err(self.error(
                v,
                format!("{name} must be a number ≥ 0, got {}", v.get_ref()),
            )),
        }
    }

    fn positive(
        &self,
        value: &Option<Spanned<u64>>,
        name: &str,
    ) -> Result<Option<usize>, JudgeFileError> {
        match value {
            None => Ok(None),
            Some(v) if *v.get_ref() >= 1 => {
                Ok(Some(usize::try_from(*v.get_ref()).unwrap_or(usize::MAX)))
            }
            Some(v) => Err(self.error(v, format!("{name} must be at least 1"))),
        }
    }

    fn thresholds(
        &self,
        t: &ThresholdsFile,
        prefix: &str,
        apply: &mut dyn FnMut(Field, f64),
    ) -> Result<(), JudgeFileError> {
        let name = |field: &str| format!("{prefix}thresholds.{field}");
        if let Some(v) = self.limit(&t.error_rate, &name("error_rate"))? {
            apply(Field::ErrorRate, v);
        }
        if let Some(v) = self.limit(&t.distribution, &name("distribution"))? {
            if let Some(s) = &t.distribution {
                if v > 1.0 {
                    return Err(self.error(
                        s,
                        format!(
                            "{} is a share between 0 and 1, got {v}",
                            name("distribution")
                        ),
                    ));
                }
            }
            apply(Field::Distribution, v);
        }
        for (allowance, relative, absolute, label) in [
            (&t.p99, Field::P99Relative, Field::P99Absolute, "p99"),
            (
                &t.shift,
                Field::ShiftRelative,
                Field::ShiftAbsolute,
                "shift",
            ),
        ] {
            if let Some(a) = allowance {
                if let Some(v) = self.limit(&a.relative, &name(&format!("{label}.relative")))? {
                    apply(relative, v);
                }
                if let Some(v) =
                    self.limit(&a.absolute_ms, &name(&format!("{label}.absolute_ms")))?
                {
                    apply(absolute, v);
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Field {
    ErrorRate,
    P99Relative,
    P99Absolute,
    ShiftRelative,
    ShiftAbsolute,
    Distribution,
}

/// Reads a judge file's text on top of `base` (which names the targets and holds the defaults).
///
/// # Errors
/// [`JudgeFileError`] with the line and column of the first bad key or value.
pub fn parse(text: &str, base: Options) -> Result<Options, JudgeFileError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |span| position(text, span.start));
        JudgeFileError {
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })?;
    let check = Checker { text };
    let mut o = base;
    if let Some(a) = &file.alpha {
        let v = *a.get_ref();
        if !(v > 0.0 && v < 1.0) {
            return Err(check.error(a, format!("alpha must be between 0 and 1, got {v}")));
        }
        o.alpha = v;
    }
    if let Some(c) = &file.correction {
        o.correction = match c.get_ref().to_ascii_lowercase().as_str() {
            "holm" => Correction::Holm,
            "bh" | "benjamini-hochberg" => Correction::Bh,
            "none" => Correction::None,
            other => {
                return Err(check.error(
                    c,
                    format!("correction must be \"holm\", \"bh\" or \"none\", got {other:?}"),
                ))
            }
        };
    }
    if let Some(n) = &file.min_requests {
        o.min_requests = *n.get_ref();
    }
    if let Some(n) = &file.warmup {
        o.warmup = *n.get_ref();
    }
    if let Some(n) = check.positive(&file.max_pending, "max_pending")? {
        o.max_pending = n;
    }
    if let Some(n) = check.positive(&file.reservoir, "reservoir")? {
        o.reservoir = n;
    }
    if let Some(n) = check.positive(&file.bootstrap_resamples, "bootstrap_resamples")? {
        o.bootstrap_resamples = n;
    }
    check.thresholds(&file.thresholds, "", &mut |field, v| match field {
        Field::ErrorRate => o.error_rate_margin = v,
        Field::P99Relative => o.p99_relative = v,
        Field::P99Absolute => o.p99_absolute_ms = v,
        Field::ShiftRelative => o.shift_relative = v,
        Field::ShiftAbsolute => o.shift_absolute_ms = v,
        Field::Distribution => o.distribution_share = v,
    })?;
    for (i, route) in file.routes.iter().enumerate() {
        if route.pattern.get_ref().trim().is_empty() {
            return Err(check.error(&route.pattern, "a route pattern must not be empty".into()));
        }
        let mut r = RouteOverride {
            pattern: route.pattern.get_ref().trim().to_owned(),
            min_requests: route.min_requests.as_ref().map(|n| *n.get_ref()),
            ..RouteOverride::default()
        };
        check.thresholds(
            &route.thresholds,
            &format!("routes[{i}]."),
            &mut |field, v| {
                let slot = match field {
                    Field::ErrorRate => &mut r.error_rate_margin,
                    Field::P99Relative => &mut r.p99_relative,
                    Field::P99Absolute => &mut r.p99_absolute_ms,
                    Field::ShiftRelative => &mut r.shift_relative,
                    Field::ShiftAbsolute => &mut r.shift_absolute_ms,
                    Field::Distribution => &mut r.distribution_share,
                };
                *slot = Some(v);
            },
        )?;
        o.routes.push(r);
    }
    if let Some(section) = &file.prometheus {
        let config = crate::resource::config::build(section).map_err(|(span, message)| {
            let (line, column) = position(text, span.start);
            JudgeFileError {
                line,
                column,
                message,
            }
        })?;
        o.prometheus = Some(config);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Options {
        Options::new("stable", "canary")
    }

    #[test]
    fn reads_the_prometheus_section_and_points_at_its_mistakes() {
        let text = r#"
alpha = 0.01
[prometheus]
url = "http://127.0.0.1:9090"
step = "2s"
[[prometheus.metrics]]
name = "cpu per request"
query = 'rate(process_cpu_seconds_total{job="{target}"}[{step}])'
per_request = true
"#;
        let o = parse(text, base()).unwrap();
        let p = o.prometheus.as_ref().unwrap();
        assert_eq!((p.step_s, p.metrics.len()), (2, 1));
        assert!(p.metrics[0].per_request);
        let bad = text.replace("per_request = true", "per_request = true\nlimit = \"lots\"");
        let e = parse(&bad, base()).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("prometheus.metrics[0].limit"), "{e}");
    }

    #[test]
    fn reads_every_setting() {
        let o = parse(
            r#"
alpha = 0.01
correction = "bh"
min_requests = 50
warmup = 100
reservoir = 5000

[thresholds]
error_rate = 0.005
p99 = { relative = 0.3, absolute_ms = 10 }
shift = { relative = 0.05, absolute_ms = 1.5 }
distribution = 0.1

[[routes]]
pattern = "GET /api/search*"
min_requests = 200
thresholds = { p99 = { absolute_ms = 50.0 } }
"#,
            base(),
        )
        .unwrap();
        assert_eq!((o.alpha, o.correction), (0.01, Correction::Bh));
        assert_eq!((o.min_requests, o.warmup, o.reservoir), (50, 100, 5000));
        assert_eq!(o.error_rate_margin, 0.005);
        assert_eq!((o.p99_relative, o.p99_absolute_ms), (0.3, 10.0));
        assert_eq!((o.shift_relative, o.shift_absolute_ms), (0.05, 1.5));
        assert_eq!(o.distribution_share, 0.1);
        assert_eq!(o.routes.len(), 1);
        assert_eq!(o.routes[0].p99_absolute_ms, Some(50.0));
        assert_eq!(o.routes[0].p99_relative, None);
        o.validate().unwrap();
        // The override applies to matching routes only, on top of the file's defaults.
        let search = o.for_route("GET /api/search");
        assert_eq!((search.p99_relative, search.p99_absolute_ms), (0.3, 50.0));
        assert_eq!(search.min_requests, 200);
        assert_eq!(o.for_route("GET /api/cart").p99_absolute_ms, 10.0);
        // Targets come from the command line, not the file.
        assert_eq!(o.baseline, "stable");
    }

    #[test]
    fn an_empty_file_keeps_the_defaults() {
        assert_eq!(parse("", base()).unwrap(), base());
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let unknown = parse("alpha = 0.05\nalpah = 0.1\n", base()).unwrap_err();
        assert_eq!(unknown.line, 2, "{unknown}");
        assert!(unknown.message.contains("alpah"), "{unknown}");

        let range = parse("\n\nalpha = 1.5\n", base()).unwrap_err();
        assert_eq!((range.line, range.column), (3, 9), "{range}");
        assert!(range.message.contains("alpha"), "{range}");

        let negative = parse("[thresholds]\np99 = { relative = -0.1 }\n", base()).unwrap_err();
        assert_eq!(negative.line, 2);
        assert!(
            negative.message.contains("thresholds.p99.relative"),
            "{negative}"
        );

        let route = parse(
            "[[routes]]\npattern = \"/a\"\n[[routes]]\npattern = \"/b\"\nthresholds = { distribution = 2 }\n",
            base(),
        )
        .unwrap_err();
        assert_eq!(route.line, 5);
        assert!(
            route.message.contains("routes[1].thresholds.distribution"),
            "{route}"
        );

        let wrong_type = parse("min_requests = \"many\"\n", base()).unwrap_err();
        assert_eq!(wrong_type.line, 1);

        let syntax = parse("alpha = \n", base()).unwrap_err();
        assert_eq!(syntax.line, 1, "{syntax}");

        let correction = parse("correction = \"bonferroni\"", base()).unwrap_err();
        assert!(correction.message.contains("holm"), "{correction}");
    }
}
