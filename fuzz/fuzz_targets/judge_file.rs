//! Judge files (TOML) on arbitrary text: parse errors carry a position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nprt::compare::{judge_file, Options};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match judge_file::parse(text, Options::new("stable", "canary")) {
        Ok(opts) => {
            let _ = nprt::compare::Comparison::new(opts);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(e.line <= text.lines().count() + 1, "line {} past the end", e.line);
        }
    }
});
