//! `nprt redact`: a recording with its secrets scrubbed, record by record, to be shared.

use super::*;
use crate::recording::GorWriter;
use crate::redact::Redactor;

#[derive(Debug, Args)]
pub(super) struct RedactArgs {
    /// The recording to scrub (.gor, or .gor.gz for gzip).
    input: PathBuf,
    /// Where to write the scrubbed recording (.gor or .gor.gz); written whole or not at all,
    /// mode 0600.
    output: PathBuf,
    /// Also redact the values of these headers (Authorization, Proxy-Authorization, Cookie
    /// and Set-Cookie always are, and query parameters named like token, key, secret,
    /// password or auth).
    /// Repeat the flag or separate names with commas.
    #[arg(long = "redact", value_name = "HEADER", value_delimiter = ',')]
    headers: Vec<String>,
}

pub(super) fn redact(args: &RedactArgs) -> CommandResult {
    let redactor = Redactor::new(&args.headers);
    let opts = ReadOptions::default();
    let mut reader = GorReader::open(&args.input, opts).map_err(Failure::bad_input)?;
    crate::session::output::check_output_file(&args.output, "the output")?;
    let mut writer = GorWriter::create(&args.output).map_err(Failure::bad_input)?;
    let (mut records, mut changed) = (0u64, 0u64);
    // An error drops the writer: its temporary file goes, and no output appears.
    while let Some(rec) = reader.next_raw().map_err(Failure::bad_input)? {
        let payload = redactor.message(&rec.payload);
        if matches!(payload, std::borrow::Cow::Owned(_)) {
            changed += 1;
        }
        writer
            .write_record(rec.kind, &rec.id, rec.ts_ns, rec.latency_ns, &payload)
            .map_err(Failure::bad_input)?;
        records += 1;
    }
    let path = writer.finish().map_err(Failure::bad_input)?;
    eprintln!(
        "redacted {changed} of {records} records into {}",
        path.display()
    );
    Ok(Exit::Pass)
}
