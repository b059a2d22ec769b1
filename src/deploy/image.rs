//! Container image references: does one carry a tag or a digest, and what is it with a tag.
//!
//! Grammar (distribution/reference): `[host[:port]/]path[:tag][@digest]`. A tag can only be in
//! the last path component, which is how `registry:5000/app` is told apart from `app:5000`.

/// Why an image reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("image `{0}` is empty or contains whitespace")]
    Malformed(String),
    #[error("image `{image}`: `{tag}` is not a valid tag")]
    BadTag { image: String, tag: String },
}

/// Whether the image names a tag or a digest (so the driver leaves it alone).
pub fn has_tag_or_digest(image: &str) -> bool {
    image.contains('@') || last_component(image).contains(':')
}

/// `image` with `tag` appended when it has neither tag nor digest; unchanged otherwise.
///
/// # Errors
/// When the image reference is empty or contains whitespace, or the tag is not a valid tag.
pub fn with_default_tag(image: &str, tag: &str) -> Result<String, ImageError> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return Err(ImageError::Malformed(image.to_owned()));
    }
    if has_tag_or_digest(image) {
        return Ok(image.to_owned());
    }
    if !is_tag(tag) {
        return Err(ImageError::BadTag {
            image: image.to_owned(),
            tag: tag.to_owned(),
        });
    }
    Ok(format!("{image}:{tag}"))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn last_component(image: &str) -> &str {
    image.rsplit('/').next().unwrap_or(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests() {
        let cases = [
            ("app", "app:v1"),
            ("library/app", "library/app:v1"),
            ("registry:5000/app", "registry:5000/app:v1"),
            ("registry:5000/team/app", "registry:5000/team/app:v1"),
            ("localhost:5000/app", "localhost:5000/app:v1"),
            ("quay.io/team/app", "quay.io/team/app:v1"),
            ("app:1.0", "app:1.0"),
            ("registry:5000/app:1.0", "registry:5000/app:1.0"),
            ("app@sha256:0123abcd", "app@sha256:0123abcd"),
            (
                "registry:5000/app@sha256:0123abcd",
                "registry:5000/app@sha256:0123abcd",
            ),
            ("app:1.0@sha256:0123abcd", "app:1.0@sha256:0123abcd"),
            ("[::1]:5000/app", "[::1]:5000/app:v1"),
        ];
        for (image, expected) in cases {
            assert_eq!(with_default_tag(image, "v1").unwrap(), expected, "{image}");
        }
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            with_default_tag("", "v1"),
            Err(ImageError::Malformed(String::new()))
        );
        assert!(with_default_tag("app x", "v1").is_err());
        assert!(with_default_tag("app", "-v1").is_err());
        assert!(with_default_tag("app", "a/b").is_err());
        assert!(with_default_tag("app", &"a".repeat(129)).is_err());
        // A tagged image is left alone whatever the release's tag is.
        assert_eq!(with_default_tag("app:2", "bad tag").unwrap(), "app:2");
        assert!(is_tag("_x.y-Z"));
        assert!(!is_tag(""));
    }
}
