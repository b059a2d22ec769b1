//! Output files: checked before any work starts, written under a temporary name in the same
//! folder and renamed into place only when complete, so a failed or interrupted run leaves
//! nothing half-written. The temporary file is removed when an [`AtomicFile`] is dropped
//! uncommitted, on every exit path that unwinds (errors, Ctrl-C handled by the session).

use super::Failure;
use crate::compare::Verdict;
use crate::report::{self, Format};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The report files written by [`write_reports`].
pub const REPORT_FORMATS: [(&str, Format); 5] = [
    ("report.json", Format::Json),
    ("report.txt", Format::Text),
    ("report.html", Format::Html),
    ("report.md", Format::Markdown),
    ("junit.xml", Format::Junit),
];

/// Writes the report in every format into `dir`, creating it: report.json, report.txt,
/// report.html, report.md and junit.xml.
pub fn write_reports(dir: &Path, verdict: &Verdict) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::bad_input(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    for (name, format) in REPORT_FORMATS {
        write_file(&dir.join(name), report::render(verdict, format).as_bytes())?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut file = AtomicFile::create(path)?;
    file.writer()
        .write_all(bytes)
        .map_err(|e| cannot_write(path, &e))?;
    file.commit()
}

fn cannot_write(path: &Path, e: &dyn std::fmt::Display) -> Failure {
    Failure::bad_input(anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// The folder an output file goes into (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks, before any work, that `path` can be written as an output file: not a folder, in a
/// folder that exists and takes a new file. `what` names the option or key it came from.
pub fn check_output_file(path: &Path, what: &str) -> Result<(), Failure> {
    if path.is_dir() {
        return Err(Failure::bad_input_msg(format!(
            "{what} {} is a folder; give a file name",
            path.display()
        )));
    }
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(Failure::bad_input_msg(format!(
            "{what} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    probe(dir).map_err(|e| {
        Failure::bad_input_msg(format!(
            "{what} {}: cannot write in {}: {e}",
            path.display(),
            dir.display()
        ))
    })
}

/// Checks, before any work, that `dir` is (or can be created as) a folder that takes new
/// files, and creates it. `what` names the option or key it came from.
pub fn prepare_output_dir(dir: &Path, what: &str) -> Result<(), Failure> {
    if dir.exists() && !dir.is_dir() {
        return Err(Failure::bad_input_msg(format!(
            "{what} {} is a file, not a folder",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir)
        .and_then(|()| probe(dir))
        .map_err(|e| {
            Failure::bad_input_msg(format!("{what} {}: cannot write there: {e}", dir.display()))
        })
}

/// Whether a new file can be made in `dir` (permissions, read-only mounts, quotas all show
/// only by trying).
fn probe(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new()
        .prefix(".nprt-check-")
        .tempfile_in(dir)
        .map(drop)
}

/// An output written as it comes (a live run's observations): checked like any output file,
/// then created or truncated. Live runs have no end to wait for before renaming.
pub fn stream_file(path: &Path, what: &str) -> Result<Box<dyn Write + Send>, Failure> {
    check_output_file(path, what)?;
    let file = std::fs::File::create(path).map_err(|e| cannot_write(path, &e))?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

/// An output file that appears under its name only once it is complete.
pub struct AtomicFile {
    path: PathBuf,
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self, Failure> {
        // Reports and observations are for reading by others (CI, a volume's other users);
        // the temporary file's default 0600 would follow it into place.
        let mut builder = tempfile::Builder::new();
        builder.prefix(".nprt-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let temp = builder
            .tempfile_in(parent(path))
            .map_err(|e| cannot_write(path, &e))?;
        Ok(AtomicFile {
            path: path.to_owned(),
            writer: std::io::BufWriter::new(temp),
        })
    }

    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.writer
    }

    /// Renames the complete file into place.
    pub fn commit(self) -> Result<(), Failure> {
        let temp = self
            .writer
            .into_inner()
            .map_err(|e| cannot_write(&self.path, &e.error()))?;
        temp.persist(&self.path)
            .map_err(|e| cannot_write(&self.path, &e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_checks_name_the_option_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_output_file(dir.path(), "--observations").unwrap_err();
        assert!(e.message().contains("--observations") && e.message().contains("is a folder"));
        let e = check_output_file(&dir.path().join("no/such/x.ndjson"), "--summary").unwrap_err();
        assert!(e.message().contains("does not exist"), "{}", e.message());
        check_output_file(&dir.path().join("x.ndjson"), "--observations").unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = prepare_output_dir(&file, "--report").unwrap_err();
        assert!(e.message().contains("is a file"), "{}", e.message());
        prepare_output_dir(&dir.path().join("a/b"), "--report").unwrap();
        assert!(dir.path().join("a/b").is_dir());
        // The probes leave nothing behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("a/b")).unwrap().count(),
            0
        );
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut f = AtomicFile::create(&path).unwrap();
        f.writer().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_file(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o044, 0o044, "readable by others: {mode:o}");
        }
    }
}
