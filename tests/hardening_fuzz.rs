//! Every input the fuzzers ever broke nprt with, kept under `tests/fixtures/fuzz/` as
//! `TARGET-what`, replayed through the same harness the fuzz target runs
//! (`fuzz/harness.rs`), together with the seed corpora. Each must finish quickly, without a
//! panic. Run the fuzzers themselves with `fuzz/run.sh TARGET SECONDS`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn harness_for(target: &str) -> fn(&[u8]) {
    match target {
        "http_framing" => harness::http_framing,
        "gor_reader" => harness::gor_reader,
        "pcap_capture" => harness::pcap_capture,
        "manifest_rewrite" => harness::manifest_rewrite,
        "judge_file" => harness::judge_file,
        "scenario_file" => harness::scenario_file,
        "h2_decode" => harness::h2_decode,
        other => panic!("no fuzz target {other}"),
    }
}

/// Runs `input` through `target`'s harness in a thread: a panic or more than 20 s fails.
fn replay(target: &str, input: Vec<u8>, what: &str) {
    let run = harness_for(target);
    let (tx, rx) = mpsc::channel();
    let name = what.to_owned();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| run(&input));
        let _ = tx.send(outcome.is_ok());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(true) => {}
        Ok(false) => panic!("{name}: the {target} harness panicked"),
        Err(_) => panic!("{name}: the {target} harness hangs"),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn kept_reproducers_run_clean() {
    let mut n = 0;
    for path in files(&root().join("tests/fixtures/fuzz")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some((target, _)) = name.split_once('-') else {
            continue;
        };
        replay(target, std::fs::read(&path).unwrap(), &name);
        n += 1;
    }
    println!("{n} reproducers replayed");
}

#[test]
fn seed_corpora_run_clean() {
    for target in ["http_framing", "judge_file", "h2_decode"] {
        for path in files(&root().join("fuzz/seeds").join(target)) {
            let mut input = Vec::new();
            if target == "http_framing" {
                input.push(0);
            }
            input.extend(std::fs::read(&path).unwrap());
            replay(target, input, &path.display().to_string());
        }
    }
    for path in files(&root().join("scenarios")) {
        if path.extension().is_some_and(|e| e == "toml") {
            let mut input = b"\n".to_vec();
            input.extend(std::fs::read(&path).unwrap());
            replay("scenario_file", input, &path.display().to_string());
        }
    }
    for path in files(&root().join("tests/fixtures/capture")) {
        if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            replay(
                "pcap_capture",
                std::fs::read(&path).unwrap(),
                &path.display().to_string(),
            );
        }
    }
    for path in files(&root().join("kubernetes/example-app")) {
        let mut input = vec![0];
        input.extend(std::fs::read(&path).unwrap());
        replay("manifest_rewrite", input, &path.display().to_string());
    }
    let demo = std::fs::read(root().join("replay/demo.gor")).unwrap();
    replay(
        "gor_reader",
        [&[8u8][..], &demo[..20_000]].concat(),
        "demo.gor",
    );
}
