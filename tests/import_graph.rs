//! The command line sits on top: nothing outside `src/cli/` and `src/main.rs` imports it, so
//! scenarios, the demo and every capability are usable without it.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `line` names the path `crate::cli` (or `super::cli`, `nprt::cli`) as a whole
/// segment, not `crate::client`.
fn names_cli(line: &str) -> bool {
    ["crate::cli", "super::cli", "nprt::cli"]
        .iter()
        .any(|path| {
            line.match_indices(path).any(|(at, _)| {
                !line[at + path.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
}

/// Lines of code (not comments) that name the `cli` module.
fn cli_uses(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
        .filter(|l| names_cli(l))
        .map(str::to_owned)
        .collect()
}

#[test]
fn nothing_below_the_command_line_imports_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut offenders = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("src/cli/") || rel == "src/main.rs" {
            continue;
        }
        for line in cli_uses(&std::fs::read_to_string(&path).unwrap()) {
            offenders.push(format!("{rel}: {line}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "imports of cli:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_sees_imports_and_ignores_comments() {
    assert_eq!(
        cli_uses("use crate::cli::Failure;\n// see crate::cli\n//! crate::cli docs"),
        vec!["use crate::cli::Failure;"]
    );
    assert!(cli_uses("use crate::client::X;").is_empty());
    assert_eq!(cli_uses("crate::cli::main()"), vec!["crate::cli::main()"]);
}
