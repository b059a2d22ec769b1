//! One spec per option set, shared by the command line and scenario files.
//!
//! Each spec is a plain struct of what the user wrote, deriving both `clap::Args` (flags such
//! as `--max-in-flight`) and `serde::Deserialize` (keys such as `replay.max_in_flight`), and has
//! one conversion to the validated options of its capability. A mistake comes back as a
//! [`SpecError`] naming the field by its key; the caller names it the way the user wrote it:
//! [`SpecError::flag`] on the command line, the dotted key in a scenario.

pub mod deploy;
pub mod judge;
pub mod live;
pub mod replay;
pub mod testbed;
pub mod units;

pub use live::MirrorSpec;
pub use replay::ReplaySpec;
pub use units::{parse_duration, parse_size, Size, Span};

/// A value of a spec that cannot be used: its key (`max_in_flight`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The scenario key; the flag is derived from it (see [`SpecError::flag`]).
    pub key: &'static str,
    /// The flag, when it is not the key with dashes.
    pub flag: Option<&'static str>,
    /// Why; other fields it mentions are written `‹key›` and named as the user writes them
    /// by [`SpecError::for_flag`] and [`SpecError::for_key`].
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(key: &'static str, message: impl Into<String>) -> Self {
        SpecError {
            key,
            flag: None,
            message: message.into(),
        }
    }

    /// The same error, for a field whose flag is not its key with dashes (`allow_urls` is
    /// `--allow-url`).
    pub(crate) fn with_flag(mut self, flag: &'static str) -> Self {
        self.flag = Some(flag);
        self
    }

    /// The command-line flag of the field, e.g. `--max-in-flight`.
    pub fn flag(&self) -> String {
        match self.flag {
            Some(flag) => flag.to_owned(),
            None => format!("--{}", self.key.replace('_', "-")),
        }
    }

    /// The message as the command line shows it: `--rate: must be a positive number`.
    pub fn for_flag(&self) -> String {
        let message = fill(&self.message, |key| format!("--{}", key.replace('_', "-")));
        format!("{}: {message}", self.flag())
    }

    /// The message as a scenario shows it, under `section` (`replay`).
    pub fn for_key(&self, section: &str) -> String {
        fill(&self.message, |key| format!("{section}.{key}"))
    }
}

/// Replaces each `‹key›` in a message with the name of that field as the user writes it.
/// (A marker no user input quotes, unlike braces in a regex.)
fn fill(message: &str, name: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let (Some(start), Some(end)) = (rest.find('‹'), rest.find('›')) {
        if end < start {
            break;
        }
        out.push_str(&rest[..start]);
        out.push_str(&name(&rest[start + '‹'.len_utf8()..end]));
        rest = &rest[end + '›'.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Which recorded or mirrored methods go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Methods {
    /// GET, HEAD and OPTIONS only.
    Safe,
    /// Every method: writes reach the target.
    All,
}

impl From<Methods> for crate::replay::MethodPolicy {
    fn from(m: Methods) -> Self {
        match m {
            Methods::Safe => crate::replay::MethodPolicy::Safe,
            Methods::All => crate::replay::MethodPolicy::All,
        }
    }
}

/// A number that must be at least 1.
pub(crate) fn at_least_one(key: &'static str, value: usize) -> Result<usize, SpecError> {
    if value == 0 {
        return Err(SpecError::new(key, "must be at least 1"));
    }
    Ok(value)
}

/// A percentage above 0 and at most 100.
pub(crate) fn percent(key: &'static str, value: f64) -> Result<f64, SpecError> {
    if !(value > 0.0 && value <= 100.0) {
        return Err(SpecError::new(
            key,
            format!("must be a percentage above 0 and at most 100, got {value}"),
        ));
    }
    Ok(value)
}
