//! Pure parts of talking to Prometheus: filling a query's `{placeholders}` for one target, and
//! reading the HTTP API's JSON answer (a range query's matrix, or its error).

use serde::Deserialize;

/// What nprt knows about one target, for the placeholders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetLabels {
    /// The target's name in the run (`--target NAME=URL`).
    pub target: String,
    pub version: Option<String>,
    pub track: Option<String>,
    pub namespace: Option<String>,
    /// The workload (Deployment) serving it, `web` or `web-canary`.
    pub workload: Option<String>,
}

/// The `{name}` placeholders in a query, in order. PromQL's own braces hold label matchers
/// (`{job="x"}`), never a bare identifier, so `{identifier}` is always a placeholder.
pub fn placeholders(query: &str) -> impl Iterator<Item = &str> {
    query.split('{').skip(1).filter_map(|rest| {
        let name = &rest[..rest.find('}')?];
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .then_some(name)
    })
}

/// Escapes a value for a PromQL double-quoted string.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The query for one target, every placeholder filled.
///
/// # Errors
/// A placeholder whose value this run does not know (say `{version}` without a deploy).
pub fn fill(query: &str, labels: &TargetLabels, step_s: u64) -> Result<String, String> {
    let mut out = query.to_owned();
    for name in placeholders(query) {
        let value = match name {
            "target" => Some(labels.target.clone()),
            "step" => Some(format!("{step_s}s")),
            "version" => labels.version.clone(),
            "track" => labels.track.clone(),
            "namespace" => labels.namespace.clone(),
            "workload" => labels.workload.clone(),
            _ => None,
        };
        let Some(value) = value else {
            return Err(format!(
                "{{{name}}} is not known for target {} in this run (it is filled when nprt \
                 deploys the canary, from the deploy config)",
                labels.target
            ));
        };
        out = out.replace(&format!("{{{name}}}"), &quoted(&value));
    }
    Ok(out)
}

/// One series of a range query: its labels and its (unix seconds, value) samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(f64, f64)>,
}

impl Series {
    /// `{job="stable", instance="…"}`, for naming a series in an error.
    pub fn label_text(&self) -> String {
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{{{}}}", inner.join(", "))
    }
}

/// Why an answer is not a usable matrix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    /// Prometheus refused the query: `bad_data` is a mistake in the query (exit 2), the
    /// others (timeout, execution) are the server's.
    #[error("Prometheus refused the query ({kind}): {message}")]
    Refused { kind: String, message: String },
    #[error("not a Prometheus API answer: {0}")]
    Malformed(String),
}

impl AnswerError {
    /// A mistake in the judge file rather than in the server.
    pub fn is_bad_query(&self) -> bool {
        matches!(self, AnswerError::Refused { kind, .. } if kind == "bad_data")
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// The `data` of a successful answer (any HTTP status: errors come as JSON too).
fn data(body: &[u8]) -> Result<Data, AnswerError> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| AnswerError::Malformed(shorten(body, &e)))?;
    if answer.status != "success" {
        return Err(AnswerError::Refused {
            kind: answer.error_type.unwrap_or_else(|| "error".into()),
            message: answer.error.unwrap_or_default(),
        });
    }
    answer
        .data
        .ok_or_else(|| AnswerError::Malformed("a success without data".into()))
}

/// Reads a `/api/v1/query_range` answer.
///
/// # Errors
/// [`AnswerError`]: refused by Prometheus, or not its JSON.
pub fn parse_matrix(body: &[u8]) -> Result<Vec<Series>, AnswerError> {
    let data = data(body)?;
    if data.result_type != "matrix" {
        return Err(AnswerError::Malformed(format!(
            "expected a matrix, got a {}",
            data.result_type
        )));
    }
    let raw: Vec<RawSeries> = serde_json::from_value(data.result)
        .map_err(|e| AnswerError::Malformed(format!("a matrix: {e}")))?;
    raw.into_iter()
        .map(|s| {
            let samples = s
                .values
                .into_iter()
                .map(|(t, v)| match v.parse::<f64>() {
                    Ok(v) => Ok((t, v)),
                    Err(_) => Err(AnswerError::Malformed(format!("sample value {v:?}"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Series {
                labels: s.metric.into_iter().collect(),
                samples,
            })
        })
        .collect()
}

/// How many series an instant query (`/api/v1/query`) answered: the check before traffic.
///
/// # Errors
/// As [`parse_matrix`].
pub fn count_series(body: &[u8]) -> Result<usize, AnswerError> {
    let data = data(body)?;
    Ok(match data.result_type.as_str() {
        "vector" | "matrix" => data.result.as_array().map_or(0, Vec::len),
        _ => 1,
    })
}

fn shorten(body: &[u8], e: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(120)]);
    format!("{e} in {text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_placeholders_and_leaves_promql_braces() {
        let q = r#"rate(process_cpu_seconds_total{job="{target}", track="{track}"}[{step}])"#;
        assert_eq!(
            placeholders(q).collect::<Vec<_>>(),
            ["target", "track", "step"]
        );
        let labels = TargetLabels {
            target: "canary".into(),
            track: Some("ca\"nary".into()),
            ..TargetLabels::default()
        };
        assert_eq!(
            fill(q, &labels, 2).unwrap(),
            r#"rate(process_cpu_seconds_total{job="canary", track="ca\"nary"}[2s])"#
        );
        let err = fill(r#"up{version="{version}"}"#, &labels, 2).unwrap_err();
        assert!(
            err.contains("{version} is not known for target canary"),
            "{err}"
        );
        // Label matchers are not placeholders.
        assert_eq!(placeholders(r#"up{job="x"} or {__name__=~"a"}"#).count(), 0);
    }

    #[test]
    fn reads_a_matrix_and_errors() {
        let ok = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"job":"stable"},"values":[[1700000000,"0.5"],[1700000002.5,"1e-3"]]}]}}"#;
        let s = parse_matrix(ok).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].samples, [(1700000000.0, 0.5), (1700000002.5, 0.001)]);
        assert_eq!(s[0].label_text(), "{job=\"stable\"}");
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_matrix(bad).unwrap_err();
        assert!(e.is_bad_query());
        assert!(e.to_string().contains("parse error at char 5"));
        let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        assert!(!parse_matrix(timeout).unwrap_err().is_bad_query());
        assert!(matches!(
            parse_matrix(b"<html>"),
            Err(AnswerError::Malformed(_))
        ));
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_matrix(vector)
            .unwrap_err()
            .to_string()
            .contains("vector"));
        assert_eq!(count_series(vector).unwrap(), 0);
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1,"1"]},{"metric":{"job":"b"},"value":[1,"1"]}]}}"#;
        assert_eq!(count_series(two).unwrap(), 2);
        assert!(count_series(bad).unwrap_err().is_bad_query());
    }
}
