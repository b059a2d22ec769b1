//! Output files: written under a temporary name and renamed into place only when complete,
//! so a failed run leaves nothing half-written.

use super::*;

/// Writes the report in every format into `dir`, creating it: report.json, report.txt,
/// report.html, report.md and junit.xml.
pub(crate) fn write_reports(dir: &Path, verdict: &crate::compare::Verdict) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    let formats = [
        ("report.json", Format::Json),
        ("report.txt", Format::Text),
        ("report.html", Format::Html),
        ("report.md", Format::Markdown),
        ("junit.xml", Format::Junit),
    ];
    for (name, format) in formats {
        let mut file = AtomicFile::create(&dir.join(name))?;
        file.writer()
            .write_all(report::render(verdict, format).as_bytes())
            .map_err(Failure::runtime)?;
        file.commit()?;
    }
    Ok(())
}

/// An output file that appears under its name only once it is complete.
pub(crate) struct AtomicFile {
    path: PathBuf,
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path) -> Result<Self, Failure> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".nprt-")
            .tempfile_in(dir)
            .map_err(|e| {
                Failure::runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
            })?;
        Ok(AtomicFile {
            path: path.to_owned(),
            writer: std::io::BufWriter::new(temp),
        })
    }

    pub(crate) fn writer(&mut self) -> &mut impl Write {
        &mut self.writer
    }

    pub(crate) fn commit(self) -> Result<(), Failure> {
        let fail = |e: &dyn std::fmt::Display| {
            Failure::runtime(anyhow::anyhow!("cannot write {}: {e}", self.path.display()))
        };
        let temp = self.writer.into_inner().map_err(|e| fail(&e.error()))?;
        temp.persist(&self.path).map_err(|e| fail(&e.error))?;
        Ok(())
    }
}
