//! The HTML report opened in headless Chromium: it loads, and the charts paint. Skipped (with a
//! message) where no `chromium` is installed, and failed in CI; on Debian: `apt-get install chromium`.

mod common;

use std::io::Write;
use std::process::Command;

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
    // A screenshot: a blank page compresses to a few KB; charts and tables do not.
    let png = dir.path().join("report.png");
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
