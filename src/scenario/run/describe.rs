//! What `nprt run --check` prints: the scenario as understood, one line per part (a line per
//! target or testbed), in the order the run uses them, and nothing contacted.

use crate::scenario::file::{CanaryDeploy, Loaded, RecordingSpec, Scenario, Source};
use std::fmt::Write as _;

/// What `nprt run --check` prints: the scenario as understood, nothing contacted.
pub fn describe(loaded: &Loaded) -> String {
    let s = &loaded.scenario;
    let mut text = format!("scenario {} ({}): valid\n", s.name, s.file.display());
    source(&mut text, s);
    targets(&mut text, s);
    if let Some(d) = &s.deploy {
        deploy(&mut text, d);
    }
    judge(&mut text, s);
    afterwards(&mut text, s);
    text
}

/// Where the traffic comes from: the recording and its pace, or the live source and where its
/// copies go.
fn source(text: &mut String, s: &Scenario) {
    match &s.source {
        Source::Recording(r) => {
            let _ = writeln!(
                text,
                "  source     recording {}, {}",
                r.path.display(),
                pacing(r)
            );
        }
        Source::Shadow(l) | Source::Mirror(l) => {
            let place = match &s.source {
                Source::Shadow(_) => format!(
                    "shadow proxy on {}",
                    l.listen.map(|a| a.to_string()).unwrap_or_default()
                ),
                _ => format!(
                    "passive mirror on {} port {}",
                    l.interface.as_deref().unwrap_or(""),
                    l.port.unwrap_or(0)
                ),
            };
            let baseline = match (&l.settings.shadow_baseline, &s.deploy) {
                (Some(url), _) => format!(", and to the baseline copy {url}"),
                (None, Some(d)) if d.request.with_baseline => {
                    ", and to the deployed baseline copy".to_owned()
                }
                _ => String::new(),
            };
            let _ = writeln!(
                text,
                "  source     {place}, copies {}%{baseline}, until the judge decides or {:?}",
                l.settings.policy.percent, l.duration
            );
        }
    }
}

/// How fast a recording is replayed.
fn pacing(r: &RecordingSpec) -> String {
    match r.options.pacing {
        crate::replay::Pacing::Original { speed } => format!("at {speed}× the recorded pace"),
        crate::replay::Pacing::Rate { per_second } => format!("at {per_second} per second"),
        crate::replay::Pacing::Max { concurrency } => {
            format!("as fast as possible, {concurrency} in flight")
        }
    }
}

/// The fixed targets, then the testbeds this process starts.
fn targets(text: &mut String, s: &Scenario) {
    for t in &s.targets {
        let _ = writeln!(text, "  target     {} = {}", t.name, t.base);
    }
    for t in &s.testbeds {
        let _ = writeln!(
            text,
            "  testbed    {} on {} ({} ms, {} errors, {} route rules)",
            t.name,
            t.listen,
            t.config.latency_ms,
            t.config.error_rate,
            t.config.routes.len()
        );
    }
}

/// The canary deployed first, and how.
fn deploy(text: &mut String, d: &CanaryDeploy) {
    let via = match (&d.server, &d.config) {
        (Some(server), _) => format!("through {server}"),
        (None, Some(config)) => format!("with {}", config.display()),
        _ => String::new(),
    };
    let _ = writeln!(
        text,
        "  deploy     {} as a canary {via} (commit {}, tag {}){}",
        d.service,
        d.request.commit.as_deref().unwrap_or("branch head"),
        d.request.tag.as_deref().unwrap_or("from tag_format"),
        if d.request.with_baseline {
            ", with a baseline of the stable release beside it"
        } else {
            ""
        }
    );
}

/// Who is judged against whom: a live source with a baseline copy judges the candidate against
/// the copy, with the baseline target as the noise.
fn judge(text: &mut String, s: &Scenario) {
    let o = &s.judge.options;
    let baseline_copy = match (&s.source, &s.deploy) {
        (Source::Shadow(l) | Source::Mirror(l), d) => {
            l.settings.shadow_baseline.is_some()
                || d.as_ref().is_some_and(|d| d.request.with_baseline)
        }
        _ => false,
    };
    let against = if baseline_copy {
        format!(
            "the baseline copy {} (noise {})",
            crate::shadow::SHADOW_BASELINE,
            o.baseline
        )
    } else {
        format!("baseline {}", o.baseline)
    };
    let _ = writeln!(
        text,
        "  judge      {} vs {against}{}",
        o.candidate,
        s.judge
            .spec
            .file
            .as_ref()
            .map(|f| format!(" with {}", f.display()))
            .unwrap_or_default()
    );
}

/// What happens after the verdict: the actions, the reports, the notifications.
fn afterwards(text: &mut String, s: &Scenario) {
    let _ = writeln!(
        text,
        "  then       on pass {}, on fail {}, on inconclusive {}",
        s.on_pass.as_str(),
        s.on_fail.as_str(),
        s.on_inconclusive.as_str()
    );
    let _ = writeln!(text, "  reports    {}/", s.report.dir.display());
    if let Some(n) = &s.notify {
        let _ = writeln!(text, "  notify     {}", n.describe());
    }
}
