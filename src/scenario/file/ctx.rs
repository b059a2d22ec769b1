//! Where a field is in the scenario file, so that every error names its line and column (or
//! says it came from `--set`), and what a path field is relative to.

use crate::scenario::set::Override;
use crate::scenario::ScenarioError;
use std::path::{Path, PathBuf};

/// Where fields are in the file, for messages.
pub(super) struct Ctx<'a> {
    pub(super) file: String,
    pub(super) text: &'a str,
    pub(super) doc: Option<toml::Spanned<toml::de::DeTable<'a>>>,
    pub(super) overrides: &'a [Override],
    /// The scenario file's folder.
    pub(super) base: PathBuf,
}

impl Ctx<'_> {
    /// An error about `field`, at its place in the file unless `--set` gave it.
    pub(super) fn err(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        let from_set = self.overrides.iter().any(|o| o.covers(field));
        let position = if from_set {
            None
        } else {
            self.doc
                .as_ref()
                .and_then(|d| locate(d.get_ref(), field))
                .map(|offset| position(self.text, offset))
        };
        ScenarioError {
            file: self.file.clone(),
            position,
            field: Some(field.to_owned()),
            from_set,
            message: message.into(),
        }
    }

    /// A path field: relative to the file's folder, or to the current directory when it came
    /// from `--set`.
    pub(super) fn path(&self, field: &str, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() || self.overrides.iter().any(|o| o.covers(field)) {
            p.to_owned()
        } else {
            normalize(&self.base.join(p))
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system (messages show the shorter path).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The byte offset of the key of a dotted `field` (`replay.rate`, `testbeds.1.name`); when a
/// part is an array and the next is not an index, the first element holding the rest is used.
fn locate(table: &toml::de::DeTable<'_>, field: &str) -> Option<usize> {
    let parts: Vec<&str> = field.split('.').collect();
    locate_in(table, &parts)
}

fn locate_in(table: &toml::de::DeTable<'_>, parts: &[&str]) -> Option<usize> {
    let (first, rest) = parts.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    if rest.is_empty() {
        return Some(key.span().start);
    }
    locate_value(value.get_ref(), rest).or(Some(key.span().start))
}

fn locate_value(value: &toml::de::DeValue<'_>, parts: &[&str]) -> Option<usize> {
    match value {
        toml::de::DeValue::Table(t) => locate_in(t, parts),
        toml::de::DeValue::Array(items) => match parts[0].parse::<usize>() {
            Ok(i) => {
                let item = items.get(i)?;
                if parts.len() == 1 {
                    Some(item.span().start)
                } else {
                    locate_value(item.get_ref(), &parts[1..]).or(Some(item.span().start))
                }
            }
            Err(_) => items
                .iter()
                .find_map(|item| locate_value(item.get_ref(), parts)),
        },
        _ => None,
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The field a serde error is about: the keys toml reports (`in `a.b``), plus the field an
/// unknown-field or missing-field message names.
pub(super) fn serde_field(error: &toml::de::Error) -> (Option<String>, String) {
    let message = error.message().trim().to_owned();
    let shown = error.to_string();
    let mut keys: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|r| r.strip_suffix('`')))
        .map(|k| k.split('.').map(str::to_owned).collect())
        .unwrap_or_default();
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
        {
            keys.push(name.to_owned());
        }
    }
    let field = (!keys.is_empty()).then(|| keys.join("."));
    (field, message)
}
