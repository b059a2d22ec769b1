//! Kubernetes manifests as generic JSON trees: read from multi-document YAML, written back as
//! multi-document YAML.
//!
//! Why `serde_json::Value` and not typed k8s-openapi objects: the rewrite touches a handful of
//! paths (images, env, labels, selectors, annotations) and must give every other field back
//! exactly as written, including fields newer than whatever Kubernetes version a typed crate
//! was generated for and custom resources it has never heard of. A generic tree keeps unknown
//! fields by construction, serialises to the same JSON the API server takes for server-side
//! apply, and keeps the pure part free of a heavy generated dependency.

use serde_json::Value;

/// Why manifests could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: document {document} is not a mapping (a Kubernetes object)")]
    NotAnObject { file: String, document: usize },
    #[error("{file}: document {document} has no {field}")]
    Missing {
        file: String,
        document: usize,
        field: &'static str,
    },
    #[error("cannot write YAML: {0}")]
    Write(String),
}

/// One Kubernetes object and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it was read from (relative to the repository).
    pub file: String,
    /// Its position among the file's non-empty documents, from 1.
    pub document: usize,
    pub object: Value,
}

/// Reads every non-empty document of a YAML file as a Kubernetes object.
///
/// # Errors
/// When the text is not YAML, or a document is not a mapping with `apiVersion`, `kind` and
/// `metadata.name`.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<Manifest>, ManifestError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
        file: file.to_owned(),
        message: first_line(&e.to_string()),
    })?;
    let mut out = Vec::new();
    for (i, object) in docs.into_iter().filter(|d| !d.is_null()).enumerate() {
        let document = i + 1;
        if !object.is_object() {
            return Err(ManifestError::NotAnObject {
                file: file.to_owned(),
                document,
            });
        }
        for (field, present) in [
            ("apiVersion", object["apiVersion"].is_string()),
            ("kind", object["kind"].is_string()),
            ("metadata.name", object["metadata"]["name"].is_string()),
        ] {
            if !present {
                return Err(ManifestError::Missing {
                    file: file.to_owned(),
                    document,
                    field,
                });
            }
        }
        out.push(Manifest {
            file: file.to_owned(),
            document,
            object,
        });
    }
    Ok(out)
}

/// The objects as one multi-document YAML text.
///
/// # Errors
/// Only if a value cannot be represented in YAML.
pub fn to_yaml(objects: &[Value]) -> Result<String, ManifestError> {
    serde_saphyr::to_string_multiple(objects).map_err(|e| ManifestError::Write(e.to_string()))
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).to_owned()
}

/// The object's `kind`.
pub fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or("")
}

/// The object's `metadata.name`.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// The object's `metadata.namespace`, if it has one.
pub fn namespace(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

/// `Kind/name`, as kubectl prints it.
pub fn describe(object: &Value) -> String {
    format!("{}/{}", kind(object), name(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n# nothing here\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: b\n  annotations:\n    build: '1234567'\n";
        let docs = parse_documents(text, "k/a.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(describe(&docs[1].object), "Deployment/b");
        assert_eq!(docs[1].document, 2);
        let yaml = to_yaml(&[docs[0].object.clone(), docs[1].object.clone()]).unwrap();
        // Digit-only strings stay strings, or the API server refuses the annotation.
        assert!(yaml.contains("build: \"1234567\""), "{yaml}");
        let again = parse_documents(&yaml, "out").unwrap();
        assert_eq!(again[1].object, docs[1].object);
    }

    #[test]
    fn bad_documents() {
        let e = parse_documents("a: [1\n", "k/x.yml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k/x.yml: not valid YAML: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let e = parse_documents("- 1\n", "f").unwrap_err().to_string();
        assert_eq!(e, "f: document 1 is not a mapping (a Kubernetes object)");
        let e = parse_documents("kind: Service\nmetadata: {name: a}\n", "f")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "f: document 1 has no apiVersion");
        let e = parse_documents("apiVersion: v1\nkind: Service\nmetadata: {}\n", "f")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "f: document 1 has no metadata.name");
        assert!(parse_documents("", "f").unwrap().is_empty());
    }
}
