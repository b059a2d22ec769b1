//! `--set key=value`: overrides of single values in a scenario's TOML tree, applied before the
//! tree is checked, so an override is validated exactly like the file.
//!
//! The key is dotted (`replay.rate`, `report.dir`); a number selects an element of an array of
//! tables (`testbeds.1.error_rate`). The value is read as a TOML value when it is one (`200`,
//! `true`, `"x"`, `["a", "b"]`) and as a string otherwise, so `report.dir=/tmp/out` needs no
//! quotes.

use toml::{Table, Value};

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key as given, e.g. `replay.rate`.
    pub key: String,
    pub path: Vec<String>,
    pub value: Value,
}

impl Override {
    /// Parses `key=value`.
    ///
    /// # Errors
    /// A message saying what is wrong and what is expected.
    pub fn parse(text: &str) -> Result<Override, String> {
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: expected KEY=VALUE, e.g. replay.rate=200"))?;
        let key = key.trim();
        let path: Vec<String> = key.split('.').map(|s| s.trim().to_owned()).collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "`{text}`: the key `{key}` has an empty part; use dotted names like report.dir"
            ));
        }
        Ok(Override {
            key: path.join("."),
            path,
            value: parse_value(raw.trim()),
        })
    }

    /// Whether this override sets `field` (a dotted key, array indexes included) or a table
    /// holding it.
    pub fn covers(&self, field: &str) -> bool {
        field == self.key || field.starts_with(&format!("{}.", self.key))
    }
}

/// A TOML value if `raw` is one, else the text as a string.
fn parse_value(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// Applies `o` to `root`, creating missing tables on the way.
///
/// # Errors
/// A message naming the key when the path runs into a value that is not a table, or an index
/// beyond an array.
pub fn apply(root: &mut Table, o: &Override) -> Result<(), String> {
    let (last, parents) = o.path.split_last().expect("a key has at least one part");
    let mut here = root;
    let mut walked = Vec::new();
    let mut i = 0;
    while i < parents.len() {
        let part = &parents[i];
        walked.push(part.as_str());
        let entry = here
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        here = match entry {
            Value::Table(t) => t,
            Value::Array(items) => {
                let Some(index) = parents.get(i + 1).and_then(|p| p.parse::<usize>().ok()) else {
                    return Err(format!(
                        "`{}` is an array; give an index, like {}.0.{last}",
                        walked.join("."),
                        walked.join(".")
                    ));
                };
                let len = items.len();
                match items.get_mut(index) {
                    Some(Value::Table(t)) => {
                        i += 1;
                        walked.push(&parents[i]);
                        t
                    }
                    Some(_) => {
                        return Err(format!("`{}.{index}` is not a table", walked.join(".")))
                    }
                    None => {
                        return Err(format!(
                            "`{}` has {len} elements; index {index} is beyond it",
                            walked.join(".")
                        ))
                    }
                }
            }
            _ => {
                return Err(format!(
                    "`{}` is a value, not a table, so `{}` cannot be set",
                    walked.join("."),
                    o.key
                ))
            }
        };
        i += 1;
    }
    here.insert(last.clone(), o.value.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn values_are_toml_when_they_parse_and_strings_otherwise() {
        let o = Override::parse("replay.rate=200").unwrap();
        assert_eq!(o.path, ["replay", "rate"]);
        assert_eq!(o.value, Value::Integer(200));
        assert_eq!(
            Override::parse("report.dir=/tmp/x y").unwrap().value,
            Value::String("/tmp/x y".into())
        );
        assert_eq!(
            Override::parse("a=\"quoted\"").unwrap().value,
            Value::String("quoted".into())
        );
        assert_eq!(
            Override::parse("a=true").unwrap().value,
            Value::Boolean(true)
        );
        assert_eq!(
            Override::parse("a=[\"x\"]").unwrap().value,
            Value::Array(vec![Value::String("x".into())])
        );
        assert_eq!(
            Override::parse("a=").unwrap().value,
            Value::String(String::new())
        );
        assert!(Override::parse("novalue").is_err());
        assert!(Override::parse("a..b=1").is_err());
    }

    #[test]
    fn applies_into_existing_and_new_tables_and_arrays() {
        let mut t = table(
            "[replay]\nspeed = 2.0\n[[testbeds]]\nname = \"a\"\n[[testbeds]]\nname = \"b\"\n",
        );
        for text in [
            "replay.rate=200",
            "report.dir=out",
            "testbeds.1.error_rate=0.5",
        ] {
            apply(&mut t, &Override::parse(text).unwrap()).unwrap();
        }
        assert_eq!(t["replay"]["rate"].as_integer(), Some(200));
        assert_eq!(t["replay"]["speed"].as_float(), Some(2.0));
        assert_eq!(t["report"]["dir"].as_str(), Some("out"));
        assert_eq!(t["testbeds"][1]["error_rate"].as_float(), Some(0.5));
        assert!(t["testbeds"][0].get("error_rate").is_none());
    }

    #[test]
    fn refuses_paths_through_values_and_beyond_arrays() {
        let mut t = table("name = \"x\"\n[[testbeds]]\nname = \"a\"\n");
        let err = apply(&mut t, &Override::parse("name.sub=1").unwrap()).unwrap_err();
        assert!(err.contains("`name` is a value"), "{err}");
        let err = apply(&mut t, &Override::parse("testbeds.3.name=1").unwrap()).unwrap_err();
        assert!(err.contains("1 elements"), "{err}");
        let err = apply(&mut t, &Override::parse("testbeds.name=1").unwrap()).unwrap_err();
        assert!(err.contains("give an index"), "{err}");
    }

    #[test]
    fn covers_the_key_and_what_is_below_it() {
        let o = Override::parse("report=1").unwrap();
        assert!(o.covers("report.dir"));
        assert!(o.covers("report"));
        assert!(!o.covers("reporter"));
    }
}
