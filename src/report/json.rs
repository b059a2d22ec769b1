//! The JSON report: the [`Verdict`] serialised as is, schema `nprt.report/v2`.
//!
//! Keys: `schema`, `verdict` ("pass"/"fail"/"inconclusive"), `baseline`, `candidate`,
//! `thresholds`, `overall` (`baseline`/`candidate` summaries), `routes` (each with `route`,
//! `judged`, `baseline`, `candidate`, `findings`), `findings` (all, overall ones under route
//! "(overall)"), `notes`, `ignored`, `include_histograms`; `resources` (each metric's `name`,
//! `kind`, `harmful`, `queries`, `outcome`, `reason` or `check`, `relative`, `steps`,
//! `series`) when Prometheus was queried.

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
    fn resources_are_there_with_their_fields_and_round_trip() {
        let verdict = crate::report::resources::tests::verdict();
        let json: serde_json::Value = serde_json::from_str(&render(&verdict)).unwrap();
        let resources = json["resources"].as_array().expect("a resources array");
        assert_eq!(resources.len(), 3);
        let cpu = &resources[0];
        assert_eq!(cpu["name"], "cpu per request");
        assert_eq!(cpu["kind"], "level");
        assert_eq!(cpu["harmful"], "increase");
        assert_eq!(cpu["outcome"], "fail");
        assert_eq!(cpu["steps"], 30);
        assert!(cpu["queries"][0].as_str().unwrap().contains("stable"));
        assert!(cpu["queries"][1].as_str().unwrap().contains("canary"));
        assert!(cpu["relative"].as_f64().unwrap() > 0.9);
        assert!(cpu.get("reason").is_none(), "judged: no reason");
        let check = &cpu["check"];
        assert_eq!(check["metric"], "resource");
        assert_eq!(check["test"], "wilcoxon_signed_rank");
        assert_eq!(check["unit"], "per request");
        assert_eq!(check["outcome"], "fail");
        for key in [
            "baseline",
            "candidate",
            "effect",
            "limit",
            "p_value",
            "p_adjusted",
        ] {
            assert!(check[key].is_number(), "check.{key}: {check}");
        }
        assert_eq!(check["interval"].as_array().map(Vec::len), Some(2));
        let series = cpu["series"].as_array().unwrap();
        assert_eq!(series.len(), 2, "baseline and candidate");
        assert_eq!(series[0].as_array().unwrap().len(), 30);
        assert_eq!(series[0][1][0], 2.0, "(seconds since the start, value)");
        assert_eq!(resources[1]["kind"], "growth");
        let gc = &resources[2];
        assert_eq!(gc["outcome"], "inconclusive");
        assert!(gc["reason"]
            .as_str()
            .unwrap()
            .contains("prometheus.min_steps"));
        assert!(gc.get("check").is_none() && gc.get("relative").is_none());
        let back: Verdict = serde_json::from_str(&render(&verdict)).unwrap();
        assert_eq!(back, verdict);
        let plain = serde_json::from_str::<serde_json::Value>(&render(&p99_regression().verdict()));
        assert!(
            plain.unwrap().get("resources").is_none(),
            "left out when none queried"
        );
    }

    #[test]
    fn round_trips_into_a_verdict() {
        let verdict = p99_regression().verdict();
        let back: Verdict = serde_json::from_str(&render(&verdict)).unwrap();
        assert_eq!(back, verdict);
    }
}
