//! The HTML report opened in headless Chromium: it loads, and the charts paint. Skipped (with a
//! message) where no `chromium` is installed, and failed in CI; on Debian: `apt-get install chromium`.
//! Without a browser: the report opens on an overview with the failing route first, linked to
//! its section; checks read by name and every limit has a unit, in every format but JSON.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Every check and test id `compare` gives (but "bootstrap" and "sequential", plain words of
/// their readable names too), and the debug name of an outcome: none of them may reach a
/// reader of the HTML, text or Markdown report.
const INTERNAL_IDS: [&str; 10] = [
    "failure_rate",
    "p99_latency",
    "new_status",
    "latency_shift",
    "latency_distribution",
    "mcnemar_exact",
    "fisher_exact",
    "wilcoxon_signed_rank",
    "smirnov_one_sided",
    "NotSignificant",
];

/// Three well-populated routes and one thin one; only `GET /z-slow` (last alphabetically)
/// regresses: the canary is 40 ms slower there and answers every tenth request with 503.
fn one_failing_route(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let routes = ["GET /a/:id", "GET /b", "GET /z-slow"];
    for i in 0..400u64 {
        for route in routes {
            for target in ["stable", "canary"] {
                let slow = target == "canary" && route == "GET /z-slow";
                let status = if slow && i % 10 == 0 { 503 } else { 200 };
                let latency = 5_000 + (i * 7919) % 5_000 + if slow { 40_000 } else { 0 };
                writeln!(
                    f,
                    r#"{{"id":"{route}{i}","target":"{target}","route":"{route}","method":"GET","status":{status},"latency_us":{latency},"bytes":1,"error":null}}"#
                )
                .unwrap();
            }
        }
    }
    for i in 0..5 {
        for target in ["stable", "canary"] {
            writeln!(
                f,
                r#"{{"id":"thin{i}","target":"{target}","route":"GET /thin","method":"GET","status":200,"latency_us":3000,"bytes":1,"error":null}}"#
            )
            .unwrap();
        }
    }
}

/// `nprt compare` of the one-failing-route observations in `format`; the verdict is FAIL.
fn compare_one_failing(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.ndjson");
    one_failing_route(&obs);
    let out = common::run(&[
        "compare",
        &obs.display().to_string(),
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--format",
        format,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    common::stdout(&out)
}

/// The text of every `<tag …>…</tag>` element whose opening tag starts with `open`.
fn elements<'a>(html: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    html.match_indices(open)
        .map(|(at, _)| {
            let rest = &html[at..];
            &rest[..rest.find(close).map_or(rest.len(), |end| end + close.len())]
        })
        .collect()
}

#[test]
fn html_opens_on_an_overview_with_the_failing_route_first() {
    let html = compare_one_failing("html");
    let overview = html
        .find("<table class=\"overview\">")
        .expect("an overview table");
    let first_section = html.find("<section").unwrap();
    assert!(
        overview < first_section,
        "the overview comes before the routes"
    );
    assert!(
        html[..overview].contains("FAIL") && html.contains("1 failing route, 1 inconclusive route"),
        "the verdict line, then the counts"
    );
    let table = elements(&html[overview..], "<table class=\"overview\">", "</table>")[0];
    let rows: Vec<&str> = elements(table, "<tr class=", "</tr>");
    assert_eq!(rows.len(), 5, "4 routes and the overall row: {table}");
    // Failing first, then inconclusive, then passing (in report order), the overall row last.
    let order: Vec<&str> = rows
        .iter()
        .map(|r| {
            let link = &r[r.find("<a href").unwrap()..];
            &link[link.find('>').unwrap() + 1..link.find("</a>").unwrap()]
        })
        .collect();
    assert_eq!(
        order,
        [
            "GET /z-slow",
            "GET /thin",
            "GET /a/:id",
            "GET /b",
            "(overall)"
        ],
        "{table}"
    );
    assert!(rows[0].starts_with("<tr class=\"fail\">") && rows[0].contains(">FAIL<"));
    assert!(rows[1].contains(">INCONCLUSIVE<") && rows[2].contains(">PASS<"));
    assert!(
        rows[0].contains("p99 latency") && rows[0].contains("error rate"),
        "{}",
        rows[0]
    );
    // Every row links to a section that exists, and the sections follow the same order.
    let mut last = 0;
    for row in &rows {
        let href = &row[row.find("href=\"#").unwrap() + 7..];
        let anchor = &href[..href.find('"').unwrap()];
        let target = format!("<section id=\"{anchor}\">");
        let at = html.find(&target).unwrap_or_else(|| panic!("no {target}"));
        assert!(at > last, "{anchor} out of order");
        last = at;
    }
}

#[test]
fn html_names_checks_readably_and_gives_every_limit_a_unit() {
    let html = compare_one_failing("html");
    for name in [
        "error rate",
        "p99 latency",
        "median latency shift",
        "share of slower requests",
        "Wilcoxon signed-rank test",
    ] {
        assert!(html.contains(name), "no {name:?}");
    }
    for id in INTERNAL_IDS {
        assert!(!html.contains(id), "internal id {id} in the HTML");
    }
    let limits: Vec<&str> = elements(&html, "<td class=\"limit\">", "</td>")
        .into_iter()
        .map(|cell| &cell["<td class=\"limit\">".len()..cell.len() - "</td>".len()])
        .collect();
    // 3 judged routes and the overall row, 4 checks each.
    assert_eq!(limits.len(), 16, "{limits:?}");
    for limit in &limits {
        assert!(
            [" ms", " % point", " % points", " % of requests"]
                .iter()
                .any(|unit| limit.ends_with(unit)),
            "limit without a unit: {limit:?}"
        );
        assert!(
            limit.trim().parse::<f64>().is_err(),
            "bare number {limit:?}"
        );
    }
    assert!(
        limits.contains(&"+5 ms") && limits.contains(&"+1 % point"),
        "{limits:?}"
    );
}

#[test]
fn other_formats_name_checks_readably_and_json_keeps_the_ids() {
    let markdown = compare_one_failing("markdown");
    let text = compare_one_failing("text");
    for (format, report) in [("markdown", &markdown), ("text", &text)] {
        for id in INTERNAL_IDS {
            assert!(
                !report.contains(id),
                "{id} in the {format} report:\n{report}"
            );
        }
    }
    assert!(
        markdown.contains("| `GET /z-slow` |") && markdown.contains("❌ error rate, p99 latency"),
        "{markdown}"
    );
    assert!(
        markdown.find("`GET /z-slow`") < markdown.find("`GET /a/:id`"),
        "failing route first:\n{markdown}"
    );
    let junit = compare_one_failing("junit");
    assert!(
        junit.contains("<testcase classname=\"GET /z-slow\" name=\"p99 latency\"><failure"),
        "{junit}"
    );
    assert!(
        junit.contains("type=\"p99_latency\""),
        "the failure type keeps the id"
    );
    let json: serde_json::Value = serde_json::from_str(&compare_one_failing("json")).unwrap();
    let metrics: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["metric"].as_str().unwrap())
        .collect();
    assert!(
        metrics.contains(&"p99_latency"),
        "JSON keeps the ids: {metrics:?}"
    );
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let browser = chromium();
    if !common::available("chromium (apt-get install chromium)", browser.is_some()) {
        return;
    }
    let Some(browser) = browser else { return };
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("obs.ndjson");
    let mut f = std::fs::File::create(&obs).unwrap();
    for i in 0..400u64 {
        for (target, extra) in [
            ("stable", 0),
            ("canary", if i % 10 == 0 { 80_000 } else { 0 }),
        ] {
            writeln!(
                f,
                r#"{{"id":"{i}","target":"{target}","route":"GET /r{}","method":"GET","status":200,"latency_us":{},"bytes":1,"error":null}}"#,
                i % 2,
                5_000 + (i * 7919) % 5_000 + extra
            )
            .unwrap();
        }
    }
    drop(f);
    let out = common::run(&[
        "compare",
        &obs.display().to_string(),
        "--baseline",
        "stable",
        "--candidate",
        "canary",
        "--format",
        "html",
    ]);
    let html = dir.path().join("report.html");
    std::fs::write(&html, &out.stdout).unwrap();
    // --dump-dom: the document after layout; the SVG elements must be in it.
    let dom = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<polyline").count(), 12, "{dom}");
    assert_screenshot_has_content(browser, &html, dir.path());
}

/// Three resource metrics as the session layer judges them after querying Prometheus: the
/// candidate's CPU per request doubles (FAIL), memory grows alike on both (PASS), and the
/// candidate's query matched nothing (INCONCLUSIVE). 30 steps of 2 s, 300–420 requests each.
fn resource_results() -> Vec<nprt::resource::ResourceResult> {
    use nprt::resource::config::{Harmful, Kind, Limit, Metric};
    use nprt::resource::judge::{decide_all, judge, Side};
    type Samples = (Vec<(f64, f64)>, Vec<u64>);
    let side = |value: &dyn Fn(usize, f64) -> f64| -> Samples {
        (0..30)
            .map(|k| {
                let n = 300 + (k as u64 * 37) % 120;
                ((1000.0 + 2.0 * k as f64, value(k, n as f64)), n)
            })
            .unzip()
    };
    let run = |name: &str, kind: Kind, b: &Samples, c: &Samples| {
        let metric = Metric {
            name: name.into(),
            query: "q".into(),
            kind,
            per_request: kind == Kind::Level,
            harmful: Harmful::Increase,
            limit: Limit {
                relative: Some(0.2),
                absolute: None,
            },
        };
        let count = |s: &Samples| {
            let s = s.clone();
            move |t: f64| s.0.iter().position(|p| p.0 == t).map_or(0, |i| s.1[i])
        };
        let (cb, cc) = (count(b), count(c));
        let sides = [
            Side {
                samples: &b.0,
                requests: &cb,
            },
            Side {
                samples: &c.0,
                requests: &cc,
            },
        ];
        let queries = ["stable", "canary"]
            .map(|t| format!("sum(rate(cpu{{track=\"{t}\",name=\"<{name}>\"}}[{{step}}]))"));
        judge(&metric, queries, sides, 2, 6, 0.05)
    };
    let wobble = |k: usize| ((k * 7) % 11) as f64 / 100.0;
    let cpu = |cost: f64| side(&|k, n| cost * (1.0 + wobble(k)) * n / 2.0);
    let rss = side(&|k, _| 1e8 + 2e5 * k as f64 + 1e5 * wobble(k * k));
    let mut all = vec![
        run("cpu per request", Kind::Level, &cpu(0.002), &cpu(0.004)),
        run("rss", Kind::Growth, &rss, &rss),
        run(
            "gc pauses",
            Kind::Level,
            &cpu(0.001),
            &(Vec::new(), Vec::new()),
        ),
    ];
    decide_all(&mut all, nprt::compare::Correction::Holm, 0.05);
    all
}

#[test]
fn html_report_with_resource_metrics_renders_in_headless_chromium() {
    let browser = chromium();
    if !common::available("chromium (apt-get install chromium)", browser.is_some()) {
        return;
    }
    let Some(browser) = browser else { return };
    let mut verdict: nprt::compare::Verdict =
        serde_json::from_str(&compare_one_failing("json")).unwrap();
    verdict.add_resources(resource_results());
    let outcomes: Vec<_> = verdict.resources.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            nprt::compare::Outcome::Fail,
            nprt::compare::Outcome::Pass,
            nprt::compare::Outcome::Inconclusive
        ]
    );
    let page = nprt::report::render(&verdict, nprt::report::Format::Html);
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    std::fs::write(&html, &page).unwrap();
    let dom = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Every chart survived parsing: the routes' and the 3 resource charts (5 lines: the
    // unjudged metric has only the baseline's).
    let resources = &dom[dom
        .find("<section id=\"resources\">")
        .expect("the Resources section")..];
    let resources = &resources[..resources.find("</section>").unwrap()];
    assert_eq!(resources.matches("<svg").count(), 3, "{resources}");
    assert_eq!(resources.matches("<polyline").count(), 5, "{resources}");
    assert_eq!(
        dom.matches("<polyline").count(),
        page.matches("<polyline").count()
    );
    // The query's angle brackets and quotes stayed text, not markup.
    assert!(
        resources.contains("name=\"&lt;gc pauses&gt;\""),
        "query not shown as text: {resources}"
    );
    assert!(!dom.contains("<gc pauses>"));
    for id in INTERNAL_IDS {
        assert!(!page.contains(id), "internal id {id} in the HTML");
    }
    assert_screenshot_has_content(browser, &html, dir.path());
}

/// A screenshot of the page: a blank page compresses to a few KB; charts and tables do not.
fn assert_screenshot_has_content(browser: &str, html: &Path, dir: &Path) {
    let png = dir.join("report.png");
    let shot = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1600",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 50_000, "screenshot only {size} bytes");
}
