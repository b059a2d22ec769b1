use super::*;
use crate::deploy::rewrite::Track;
use crate::replay::{MethodPolicy, Pacing};

const MINIMAL: &str = r#"
[source]
kind = "recording"
recording = "rec.gor"

[[testbeds]]
name = "stable"

[targets]
canary = "http://127.0.0.1:9"

[report]
dir = "out"
"#;

fn parse_with(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let overrides: Vec<Override> = sets.iter().map(|s| Override::parse(s).unwrap()).collect();
    parse(text, Path::new("dir/s.toml"), &overrides)
}

fn error(text: &str, sets: &[&str]) -> ScenarioError {
    parse_with(text, sets).expect_err("the scenario is refused")
}

#[test]
fn a_minimal_scenario_gets_the_defaults() {
    let s = parse_with(MINIMAL, &[]).unwrap();
    assert_eq!(s.name, "s");
    assert_eq!(s.judge.options.baseline, "stable");
    assert_eq!(s.judge.options.candidate, "canary");
    assert_eq!(
        (s.on_pass, s.on_fail, s.on_inconclusive),
        (Action::Report, Action::Report, Action::Report)
    );
    assert_eq!(s.report.dir, Path::new("dir/out"));
    assert!(s.report.summary && !s.report.observations);
    let Source::Recording(r) = &s.source else {
        panic!("a recording")
    };
    assert_eq!(r.path, Path::new("dir/rec.gor"));
    assert_eq!(r.options.pacing, Pacing::Original { speed: 1.0 });
    assert_eq!(r.options.filter.methods, MethodPolicy::Safe);
    assert_eq!(s.testbeds[0].listen, "127.0.0.1:0".parse().unwrap());
}

#[test]
fn unknown_fields_are_named_with_their_line() {
    let e = error(&format!("{MINIMAL}\n[replay]\nspeeed = 2.0\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.speeed"), "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(16), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("dir/s.toml:16:1: replay.speeed: unknown field"),
        "{text}"
    );
    let e = error(&format!("colour = 1\n{MINIMAL}"), &[]);
    assert_eq!(e.field.as_deref(), Some("colour"), "{e}");
    assert_eq!(e.position, Some((1, 1)));
}

#[test]
fn bad_values_are_named() {
    let e = error(&format!("{MINIMAL}\n[replay]\nrate = \"fast\"\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.rate"), "{e}");
    let e = error(&format!("{MINIMAL}\n[replay]\nrate = -3.0\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.rate"), "{e}");
    assert!(e.message.contains("positive"), "{e}");
    let e = error(&format!("on_fail = \"explode\"\n{MINIMAL}"), &[]);
    assert_eq!(e.field.as_deref(), Some("on_fail"), "{e}");
    let e = error(
        &MINIMAL.replace("kind = \"recording\"", "kind = \"carrier-pigeon\""),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("source.kind"), "{e}");
    let e = error(
        &format!("{MINIMAL}\n[replay]\nspeed = 2.0\nmax = true\n"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("replay.max"), "{e}");
    let e = error(&format!("{MINIMAL}\n[replay]\nshard = \"4/4\"\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.shard"), "{e}");
    let e = error(&format!("{MINIMAL}\n[replay]\nallow_urls = [\"(\"]\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.allow_urls"), "{e}");
    let e = error(&format!("{MINIMAL}\n[replay]\nloop = true\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("replay.loop"), "{e}");
    let e = error(
        &MINIMAL.replace("name = \"stable\"", "name = \"stable\"\nerror_rate = 2.0"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("testbeds.0.error_rate"), "{e}");
    assert_eq!(e.position.map(|p| p.0), Some(8), "{e}");
    let e = error(&MINIMAL.replace("http://127.0.0.1:9", "ftp://x"), &[]);
    assert_eq!(e.field.as_deref(), Some("targets.canary"), "{e}");
    let e = error(&MINIMAL.replace("dir = \"out\"", ""), &[]);
    assert_eq!(e.field.as_deref(), Some("report.dir"), "{e}");
}

#[test]
fn judge_targets_must_exist_and_differ() {
    let e = error(&format!("{MINIMAL}\n[judge]\ncandidate = \"canry\"\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("judge.candidate"), "{e}");
    assert!(e.message.contains("canary, stable"), "{e}");
    let e = error(
        &format!("{MINIMAL}\n[judge]\ncandidate = \"stable\"\n"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("judge.candidate"), "{e}");
    let e = error(
        &MINIMAL.replace("[targets]\ncanary", "[targets]\nstable"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("testbeds.0.name"), "{e}");
}

#[test]
fn overrides_apply_before_checking_and_are_reported_as_such() {
    let s = parse_with(
        MINIMAL,
        &[
            "replay.rate=200",
            "report.dir=/tmp/x",
            "judge.min_requests=5",
        ],
    )
    .unwrap();
    let Source::Recording(r) = &s.source else {
        panic!()
    };
    assert_eq!(r.options.pacing, Pacing::Rate { per_second: 200.0 });
    assert_eq!(s.report.dir, Path::new("/tmp/x"));
    assert_eq!(s.judge.options.min_requests, 5);
    // Relative paths from --set are the caller's, not the file's.
    let s = parse_with(MINIMAL, &["report.dir=here"]).unwrap();
    assert_eq!(s.report.dir, Path::new("here"));
    let e = error(MINIMAL, &["replay.rate=0"]);
    assert_eq!(e.field.as_deref(), Some("replay.rate"));
    assert!(e.from_set && e.position.is_none(), "{e}");
    assert!(e.to_string().contains("replay.rate (from --set)"), "{e}");
    let e = error(MINIMAL, &["replay.sped=1"]);
    assert_eq!(e.field.as_deref(), Some("replay.sped"), "{e}");
    let s = parse_with(MINIMAL, &["testbeds.0.error_rate=0.5"]).unwrap();
    assert_eq!(s.testbeds[0].config.error_rate, 0.5);
}

#[test]
fn actions_need_a_deploy_and_fit_the_verdict() {
    let e = error(&format!("on_fail = \"rollback\"\n{MINIMAL}"), &[]);
    assert_eq!(e.field.as_deref(), Some("on_fail"));
    assert!(e.message.contains("[deploy]"), "{e}");
    let deploy = "\n[deploy]\nconfig = \"deploy.toml\"\nservice = \"shop\"\ncommit = \"abc\"\n";
    let s = parse_with(
        &format!("on_pass = \"promote\"\non_fail = \"rollback\"\n{MINIMAL}{deploy}"),
        &[],
    )
    .unwrap();
    assert_eq!(s.on_inconclusive, Action::Rollback, "follows on_fail");
    let d = s.deploy.unwrap();
    assert_eq!(d.config.as_deref(), Some(Path::new("dir/deploy.toml")));
    assert_eq!(d.request.track, Track::Canary);
    assert!(d.rollback_on_interrupt);
    let e = error(&format!("on_pass = \"rollback\"\n{MINIMAL}{deploy}"), &[]);
    assert_eq!(e.field.as_deref(), Some("on_pass"));
    let e = error(&format!("on_fail = \"promote\"\n{MINIMAL}{deploy}"), &[]);
    assert_eq!(e.field.as_deref(), Some("on_fail"));
}

#[test]
fn deploy_is_direct_or_through_a_server_with_a_token_reference() {
    let base = format!("{MINIMAL}\n[deploy]\nservice = \"shop\"\n");
    let e = error(&base, &[]);
    assert_eq!(e.field.as_deref(), Some("deploy.config"), "{e}");
    let server = format!("{base}server = \"https://deploy.example\"\n");
    let e = error(&server, &[]);
    assert_eq!(e.field.as_deref(), Some("deploy.token_env"), "{e}");
    let e = error(&format!("{server}token_env = \"hunter2!\"\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("deploy.token_env"), "{e}");
    let s = parse_with(&format!("{server}token_env = \"NPRT_DEPLOY_TOKEN\"\n"), &[]).unwrap();
    assert_eq!(
        s.deploy.unwrap().server.as_deref(),
        Some("https://deploy.example")
    );
    let e = error(
        &format!("{server}token_env = \"T\"\nconfig = \"d.toml\"\n"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("deploy.config"), "{e}");
    let e = error(&format!("{base}config = \"d.toml\"\ntag = \"-bad\"\n"), &[]);
    assert_eq!(e.field.as_deref(), Some("deploy.tag"), "{e}");
    let e = error(
        &format!("{base}config = \"d.toml\"\ntimeout = \"soon\"\n"),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("deploy.timeout"), "{e}");
}

const SHADOW: &str = r#"
[source]
kind = "shadow"

[shadow]
listen = "0.0.0.0:8080"
primary = "http://web.shop.svc"
shadow = "http://web-canary.shop.svc"
mirror_percent = 50
max_body = "64KiB"
queue = 100
duration = "10m"

[report]
dir = "out"
"#;

#[test]
fn live_sources_are_checked_fully() {
    let s = parse_with(SHADOW, &[]).unwrap();
    let Source::Shadow(l) = &s.source else {
        panic!("shadow")
    };
    assert_eq!(l.settings.policy.max_body, 64 * 1024);
    assert_eq!(l.settings.policy.percent, 50.0);
    assert_eq!(l.duration, Duration::from_secs(600));
    assert_eq!(l.settings.policy.methods, MethodPolicy::Safe);
    for (set, field) in [
        ("shadow.mirror_percent=150", "shadow.mirror_percent"),
        ("shadow.max_body=\"12 parsecs\"", "shadow.max_body"),
        ("shadow.queue=0", "shadow.queue"),
        ("shadow.listen=nowhere", "shadow.listen"),
        ("shadow.primary=web", "shadow.primary"),
        ("shadow.interface=eth0", "shadow.interface"),
        ("shadow.methods=some", "shadow.methods"),
        ("source.recording=x.gor", "source.recording"),
        ("replay.speed=2", "replay"),
    ] {
        let e = error(SHADOW, &[set]);
        assert_eq!(e.field.as_deref(), Some(field), "{set}: {e}");
    }
    let e = error(&SHADOW.replace("duration = \"10m\"", ""), &[]);
    assert_eq!(e.field.as_deref(), Some("shadow.duration"), "{e}");
    let e = error(
        &SHADOW.replace("shadow = \"http://web-canary.shop.svc\"", ""),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("shadow.shadow"), "{e}");
    // Without URLs in the section, the judge's targets are the primary and the shadow.
    let s = parse_with(
        &(SHADOW.replace("shadow = \"http://web-canary.shop.svc\"", "")
            + "\n[targets]\ncanary = \"http://web-canary.shop.svc\"\n"),
        &[],
    )
    .unwrap();
    assert!(matches!(
        &s.source,
        Source::Shadow(l) if l.settings.shadow.is_none()
    ));

    let mirror = "[source]\nkind = \"mirror\"\n[mirror]\ninterface = \"eth0\"\nport = 8080\nshadow = \"http://c\"\nduration = \"1h\"\n[report]\ndir = \"o\"\n";
    let s = parse_with(mirror, &[]).unwrap();
    assert!(matches!(&s.source, Source::Mirror(l) if l.port == Some(8080)));
    let e = error(mirror, &["mirror.port=0"]);
    assert_eq!(e.field.as_deref(), Some("mirror.port"), "{e}");
    let e = error(mirror, &["mirror.listen=\"0.0.0.0:1\""]);
    assert_eq!(e.field.as_deref(), Some("mirror.listen"), "{e}");
    let e = error(
        &mirror.replace("kind = \"mirror\"", "kind = \"shadow\""),
        &[],
    );
    assert_eq!(e.field.as_deref(), Some("mirror"), "{e}");
}

#[test]
fn syntax_errors_have_a_position() {
    let e = error("[source\nkind = 1\n", &[]);
    assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");
    assert!(e.field.is_none());
}

#[test]
fn a_pacing_set_on_the_command_line_replaces_the_files() {
    let text = format!("{MINIMAL}\n[replay]\nspeed = 20.0\n");
    let s = parse_with(&text, &["replay.rate=200"]).unwrap();
    let Source::Recording(r) = &s.source else {
        panic!()
    };
    assert_eq!(r.options.pacing, Pacing::Rate { per_second: 200.0 });
    let s = parse_with(&text, &["replay.max=true", "replay.concurrency=4"]).unwrap();
    let Source::Recording(r) = &s.source else {
        panic!()
    };
    assert_eq!(r.options.pacing, Pacing::Max { concurrency: 4 });
    // Two pacings on the command line are still one too many.
    let e = error(&text, &["replay.max=true", "replay.rate=5"]);
    assert_eq!(e.field.as_deref(), Some("replay.max"), "{e}");
}
