//! How a comparison is judged: the judge file and the overrides given beside it, as flags
//! (`--judge`, `--min-requests`, `--sequential`) and as a scenario's `[judge]` keys (`file`,
//! `min_requests`, `sequential`).

use super::SpecError;
use crate::compare::judge_file;
use crate::compare::sequential::SequentialOptions;
use crate::compare::Options as CompareOptions;
use std::path::{Path, PathBuf};

/// The judge's settings that are not target names.
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// Scenario key only (each command names its targets its own way): the target the
    /// candidate is judged against [scenario default: stable].
    #[arg(skip)]
    pub baseline: Option<String>,
    /// Scenario key only: the target being judged [scenario default: canary].
    #[arg(skip)]
    pub candidate: Option<String>,
    /// Scenario key only: a second stable target whose differences from the baseline are
    /// discounted.
    #[arg(skip)]
    pub noise: Option<String>,
    /// A judge file (TOML): alpha, thresholds, route overrides, minimum samples, warm-up.
    #[arg(long = "judge", value_name = "FILE")]
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Fewest requests per target for a verdict other than inconclusive (overrides the judge
    /// file).
    #[arg(long, value_name = "N")]
    pub min_requests: Option<u64>,
    /// Also run the anytime-valid sequential judge over the pairs in arrival order, and
    /// report after how many pairs it would have stopped (live runs always use it).
    #[arg(long)]
    #[serde(default)]
    pub sequential: bool,
}

impl JudgeSpec {
    /// The options: `base` (target names and defaults), then the judge file, then the
    /// overrides; validated.
    pub fn options(&self, base: CompareOptions) -> Result<CompareOptions, SpecError> {
        let text = match &self.file {
            Some(path) => Some((
                path.as_path(),
                std::fs::read_to_string(path).map_err(|e| {
                    SpecError::new("file", format!("cannot read {}: {e}", path.display()))
                        .with_flag("--judge")
                })?,
            )),
            None => None,
        };
        self.apply(base, text.as_ref().map(|(p, t)| (*p, t.as_str())))
    }

    /// [`JudgeSpec::options`] with the judge file's text already read (or none).
    pub fn apply(
        &self,
        base: CompareOptions,
        file: Option<(&Path, &str)>,
    ) -> Result<CompareOptions, SpecError> {
        let in_file = |message: String| SpecError::new("file", message).with_flag("--judge");
        let mut options = match file {
            Some((path, text)) => judge_file::parse(text, base).map_err(|e| {
                in_file(format!(
                    "{}:{}:{}: {}",
                    path.display(),
                    e.line,
                    e.column,
                    e.message
                ))
            })?,
            None => base,
        };
        if let Some(n) = self.min_requests {
            options.min_requests = n;
        }
        if self.sequential && options.sequential.is_none() {
            options.sequential = Some(SequentialOptions::default());
        }
        // The sequential judge holds the comparison's own alpha.
        if let Some(seq) = &mut options.sequential {
            seq.alpha = options.alpha;
        }
        options.validate().map_err(|e| match file {
            Some((path, _)) => in_file(format!("{}: {e}", path.display())),
            None => SpecError::new("min_requests", e.to_string()),
        })?;
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides_and_one_alpha() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judge.toml");
        std::fs::write(&path, "alpha = 0.01\nmin_requests = 50\n").unwrap();
        let spec = JudgeSpec {
            file: Some(path.clone()),
            min_requests: Some(7),
            sequential: true,
            ..JudgeSpec::default()
        };
        let o = spec.options(CompareOptions::new("a", "b")).unwrap();
        assert_eq!((o.alpha, o.min_requests), (0.01, 7));
        assert_eq!(o.sequential.unwrap().alpha, 0.01);
        std::fs::write(&path, "alpha = \"high\"\n").unwrap();
        let e = spec.options(CompareOptions::new("a", "b")).unwrap_err();
        assert_eq!(e.flag(), "--judge");
        assert!(
            e.message.starts_with(&format!("{}:1:", path.display())),
            "{}",
            e.message
        );
        let e = JudgeSpec {
            file: Some(dir.path().join("missing.toml")),
            ..JudgeSpec::default()
        }
        .options(CompareOptions::new("a", "b"))
        .unwrap_err();
        assert!(e.message.contains("cannot read"), "{}", e.message);
    }
}
