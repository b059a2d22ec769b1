//! Clients that ask for HTTP/2 by the h2c upgrade (curl `--http2`, `nghttp -u`) through
//! `nprt shadow`: the proxy takes the upgrade, answers the upgrading request on stream 1 and
//! the rest as HTTP/2 streams, and mirrors them like any other request.

mod common;

use std::process::Command;

use common::nghttpd::Nghttpd;
use common::{available, Shadow, Testbed};

fn tool(name: &str) -> bool {
    let present = Command::new(name).arg("--version").output().is_ok();
    available(name, present)
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_upgrades_to_http2_through_the_proxy_and_every_request_is_mirrored() {
    if !tool("curl") {
        return;
    }
    let (primary, canary) = (Testbed::start(&[]), Testbed::start(&[]));
    let proxy = Shadow::start(&primary.url, &canary.url, &[]);
    let urls: Vec<String> = (1..=3)
        .map(|i| format!("{}/api/items/{i}", proxy.url))
        .collect();
    let mut args = vec![
        "-v",
        "--http2",
        "-w",
        "[%{http_version} %{response_code}]\n",
    ];
    args.extend(urls.iter().map(String::as_str));
    let (body, trace) = curl(&args);
    assert!(
        trace.contains("< HTTP/1.1 101 Switching Protocols"),
        "{trace}"
    );
    // The upgrading request is answered on stream 1, the others on the same connection.
    assert_eq!(trace.matches("< HTTP/2 200").count(), 3, "{trace}");
    assert_eq!(trace.matches("Connected to").count(), 1, "{trace}");
    for i in 1..=3 {
        assert!(
            body.contains(&format!("\"target\":\"/api/items/{i}\"")),
            "{body}"
        );
    }
    assert_eq!(body.matches("[2 200]").count(), 3, "{body}");
    // Too few requests for a verdict (exit 3); what matters is what was mirrored.
    let (_, _, err) = proxy.stop();
    assert!(err.contains("requests 3, mirrored 3,"), "{err}");
}

#[test]
fn an_upgrade_with_a_body_is_declined_and_served_over_http1() {
    if !tool("curl") {
        return;
    }
    let (primary, canary) = (Testbed::start(&[]), Testbed::start(&[]));
    let proxy = Shadow::start(&primary.url, &canary.url, &["--methods", "all"]);
    let url = format!("{}/api/orders", proxy.url);
    let (body, trace) = curl(&[
        "-v",
        "--http2",
        "-d",
        "item=42",
        "-w",
        "[%{http_version} %{response_code}]",
        &url,
    ]);
    assert!(trace.contains("> Upgrade: h2c"), "curl asked: {trace}");
    assert!(!trace.contains("101"), "{trace}");
    assert!(
        body.contains("\"received_bytes\":7"),
        "the body arrived: {body}"
    );
    assert!(body.ends_with("[1.1 200]"), "{body}");
    // Too few requests for a verdict (exit 3); what matters is what was mirrored.
    let (_, _, err) = proxy.stop();
    assert!(err.contains("requests 1, mirrored 1,"), "{err}");
}

#[test]
fn nghttp_upgrades_and_gets_the_primarys_answer() {
    if !tool("nghttp") {
        return;
    }
    let (primary, canary) = (Testbed::start(&[]), Testbed::start(&[]));
    let proxy = Shadow::start(&primary.url, &canary.url, &[]);
    let out = Command::new("nghttp")
        .args(["-u", "-v", "-t", "10"])
        .arg(format!("{}/api/items/7", proxy.url))
        .output()
        .expect("nghttp runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HTTP Upgrade success"), "{text}");
    assert!(text.contains("recv (stream_id=1) :status: 200"), "{text}");
    assert!(text.contains("\"target\":\"/api/items/7\""), "{text}");
    // Too few requests for a verdict (exit 3); what matters is what was mirrored.
    let (_, _, err) = proxy.stop();
    assert!(err.contains("requests 1, mirrored 1,"), "{err}");
}

#[test]
fn http2_clients_reach_a_primary_that_speaks_only_http2() {
    if !tool("curl") || !common::nghttpd::nghttpd() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("api")).unwrap();
    std::fs::write(dir.path().join("api/item"), "{\"id\":7}\n").unwrap();
    let (primary, canary) = (Nghttpd::start(dir.path()), Nghttpd::start(dir.path()));
    let proxy = Shadow::start(&primary.url, &canary.url, &[]);
    let url = format!("{}/api/item", proxy.url);
    for how in ["--http2-prior-knowledge", "--http2"] {
        let (body, _) = curl(&[how, "-w", "[%{http_version} %{response_code}]", &url]);
        assert_eq!(body, "{\"id\":7}\n[2 200]", "{how}");
    }
    let (_, out, err) = proxy.stop();
    assert!(err.contains("requests 2, mirrored 2,"), "{err}");
    // The copies went to the canary over HTTP/2 too: it answered them.
    assert!(!err.contains("did not answer"), "{err}");
    assert!(out.contains("fail % = "), "{out}");
    let shadow_row = out
        .lines()
        .find(|l| l.contains("shadow") && l.contains("0.00%"));
    assert!(
        shadow_row.is_some(),
        "the canary answered every copy: {out}"
    );
}
