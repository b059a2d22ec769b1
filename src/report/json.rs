//! The JSON report: the [`Verdict`] serialised as is, schema `nprt.report/v2`.
//!
//! Keys: `schema`, `verdict` ("pass"/"fail"/"inconclusive"), `baseline`, `candidate`,
//! `thresholds`, `overall` (`baseline`/`candidate` summaries), `routes` (each with `route`,
//! `judged`, `baseline`, `candidate`, `findings`), `findings` (all, overall ones under route
//! "(overall)"), `notes`, `ignored`, `include_histograms`.

use crate::compare::Verdict;

/// Pretty-printed JSON with a trailing newline.
pub fn render(verdict: &Verdict) -> String {
    // Only string-keyed maps and plain fields, and serde_json writes non-finite floats as
    // null: serialising this cannot fail.
    let mut out = serde_json::to_string_pretty(verdict).expect("a verdict always serialises");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::p99_regression;

    #[test]
    fn has_the_schema_keys() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&p99_regression().verdict())).unwrap();
        for key in [
            "schema",
            "verdict",
            "baseline",
            "candidate",
            "overall",
            "routes",
            "findings",
            "notes",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["schema"], "nprt.report/v2");
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["baseline"], "stable");
        assert_eq!(json["candidate"], "canary");
        for side in ["baseline", "candidate"] {
            let stats = &json["overall"][side];
            for key in [
                "requests", "errors", "status", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
                "mean_ms",
            ] {
                assert!(stats.get(key).is_some(), "overall.{side} missing {key}");
            }
            assert_eq!(stats["status"]["200"], 400);
            assert!(stats.get("histogram").is_none(), "histograms are opt-in");
        }
        let route = &json["routes"][0];
        assert_eq!(route["route"], "GET /search");
        assert_eq!(route["findings"][0]["metric"], "p99_latency");
        assert_eq!(route["findings"][0]["severity"], "fail");
        for key in [
            "route",
            "metric",
            "severity",
            "baseline",
            "candidate",
            "threshold",
            "message",
        ] {
            assert!(
                route["findings"][0].get(key).is_some(),
                "finding missing {key}"
            );
        }
    }

    #[test]
    fn round_trips_into_a_verdict() {
        let verdict = p99_regression().verdict();
        let back: Verdict = serde_json::from_str(&render(&verdict)).unwrap();
        assert_eq!(back, verdict);
    }
}
