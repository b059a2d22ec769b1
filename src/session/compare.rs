//! `nprt compare` and `nprt calibrate`'s input: observation files and histogram summaries,
//! in any mix, fed into one comparison.

use super::Failure;
use crate::compare::summary::HistogramSummary;
use crate::compare::Comparison;
use crate::observation;
use std::path::{Path, PathBuf};

/// Whether `path` is a histogram summary (`replay --summary`) rather than observations.
fn is_summary(path: &Path) -> Result<bool, Failure> {
    use std::io::Read;
    let mut start = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut start))
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
    Ok(HistogramSummary::sniff(&start[..n]))
}

/// Feeds every observation and summary of `paths` into `comparison`.
pub fn feed_files(comparison: &mut Comparison, paths: &[PathBuf]) -> Result<(), Failure> {
    let mut observation_paths = Vec::new();
    for path in paths {
        if is_summary(path)? {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
            let summary = HistogramSummary::from_json(&text)
                .map_err(|e| Failure::bad_input(anyhow::anyhow!("{}: {e}", path.display())))?;
            comparison.add_summary(&summary);
        } else {
            observation_paths.push(path);
        }
    }
    // The files are read in turn, one line each, so that when every target has its own file
    // (in the same exchange order) partners arrive close together and the bounded pending map
    // of the pairing does not overflow.
    let mut files = observation_paths
        .into_iter()
        .map(|path| observation::read_file(path).map_err(Failure::bad_input))
        .collect::<Result<Vec<_>, _>>()?;
    while !files.is_empty() {
        let mut i = 0;
        while i < files.len() {
            match files[i].next() {
                Some(obs) => {
                    comparison.add(&obs.map_err(Failure::bad_input)?);
                    i += 1;
                }
                None => {
                    drop(files.remove(i));
                }
            }
        }
    }
    Ok(())
}
