//! `nprt demo`: the whole replay → compare path on loopback with nothing else installed.
//!
//! Two testbeds start in this process: a stable service and a canary that is 30 ms slower on
//! one route and fails 3% of its requests there. The bundled recording (`replay/demo.gor`, embedded in the binary) is replayed to
//! both, and the comparison is printed and written as a JSON report. The run succeeds when it
//! completes; finding the regression is the point of the demo, so it does not fail the exit code.

use crate::compare::{Comparison, Options as CompareOptions};
use crate::recording::{GorReader, ReadOptions};
use crate::replay::{Filter, MethodPolicy, Pacing, ReplayOptions, Target};
use crate::report::{self, Format};
use crate::session::replay::ReplayRun;
use crate::session::{write_reports, Failure};
use crate::testbed::{RouteEffect, RouteRule, TestbedConfig};
use crate::Exit;
use std::path::PathBuf;
use std::time::Duration;

/// The bundled recording: a small shop API, see `examples/make_demo_recording.rs`.
pub const DEMO_RECORDING: &[u8] = include_bytes!("../replay/demo.gor");

/// The route the demo's canary regressed on.
pub const REGRESSED_ROUTE: &str = "/api/products/:id";

/// How long the demo's replay should take, at the recording's pace sped up to fit.
const REPLAY_SECONDS: f64 = 6.0;

fn stable() -> TestbedConfig {
    TestbedConfig {
        latency_ms: 2.0,
        jitter_ms: 3.0,
        error_rate: 0.0,
        routes: Vec::new(),
        cost: Default::default(),
        grpc: false,
    }
}

fn canary() -> TestbedConfig {
    TestbedConfig {
        routes: vec![
            RouteRule {
                pattern: REGRESSED_ROUTE.to_owned(),
                effect: RouteEffect::LatencyMs(32.0),
            },
            RouteRule {
                pattern: REGRESSED_ROUTE.to_owned(),
                effect: RouteEffect::ErrorRate(0.03),
            },
        ],
        ..stable()
    }
}

async fn start(name: &str, config: TestbedConfig) -> Result<String, Failure> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    crate::session::testbed::start(name, loopback, config).await
}

fn open_recording() -> Result<GorReader, Failure> {
    GorReader::from_reader(
        std::io::Cursor::new(DEMO_RECORDING),
        "replay/demo.gor (bundled)",
        ReadOptions::default(),
    )
    .map_err(|e| Failure::runtime(anyhow::anyhow!("the bundled recording is unreadable: {e}")))
}

/// Runs the demo, writing the reports into `report_dir` (or a new temporary folder).
pub(crate) async fn run(report_dir: Option<PathBuf>) -> Result<Exit, Failure> {
    let stable_url = start("the stable testbed", stable()).await?;
    let canary_url = start("the canary testbed", canary()).await?;
    eprintln!("stable testbed on {stable_url}; canary testbed on {canary_url}, {REGRESSED_ROUTE} regressed: +30 ms and 3% errors");

    // The pace is the recording's own, sped up so the demo takes a few seconds.
    let mut span = crate::recording::Summary::default();
    for exchange in open_recording()? {
        span.add(&exchange.map_err(Failure::bad_input)?);
    }
    let speed = (span.span_seconds / REPLAY_SECONDS).max(1.0);
    let targets = [("stable", &stable_url), ("canary", &canary_url)]
        .iter()
        .map(|(name, url)| Target::parse(&format!("{name}={url}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::runtime(anyhow::anyhow!(e)))?;
    let dir = match report_dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("nprt-demo-")
            .tempdir()
            .map_err(Failure::runtime)?
            .keep(),
    };
    crate::session::output::prepare_output_dir(&dir, "--report")?;
    eprintln!(
        "replaying {} exchanges ({:.0} s of traffic) at {speed:.1}× the recorded pace…",
        span.exchanges, span.span_seconds
    );
    let run = ReplayRun {
        resources: None,
        options: ReplayOptions {
            targets,
            pacing: Pacing::Original { speed },
            filter: Filter {
                // Both testbeds belong to the demo, so writes are safe to replay.
                methods: MethodPolicy::All,
                ..Filter::default()
            },
            timeout: Duration::from_secs(10),
            ..ReplayOptions::default()
        },
        observations: Some(dir.join("observations.ndjson")),
        summary: None,
        quiet: false,
        total: Some(span.exchanges),
        comparison: Some(
            Comparison::new(CompareOptions::new("stable", "canary")).map_err(Failure::runtime)?,
        ),
    };
    let recording = open_recording()?;
    let mut once = Some(recording);
    let source: crate::replay::Passes = Box::new(move || {
        Ok(Box::new(once.take().into_iter().flatten()) as crate::replay::Exchanges)
    });
    let done = run
        .execute(source, crate::session::shutdown_signal())
        .await?;
    eprint!("{}", done.summary.render());
    let verdict = done
        .verdict
        .ok_or_else(|| Failure::runtime(anyhow::anyhow!("the demo made no comparison")))?;
    print!("{}", report::render(&verdict, Format::Text));
    write_reports(&dir, &verdict)?;
    println!(
        "\nreports and observations written to {}\nthe demo exits 0 because it completed; `nprt compare` on the observations would exit {}",
        dir.display(),
        verdict.exit() as i32
    );
    Ok(Exit::Pass)
}
