//! Route keys: the unit per which latencies and status codes are compared. Requests to
//! `/users/17` and `/users/42` hit the same handler, so they must land in one histogram.

/// `METHOD /normalised/path`, the key an exchange is compared under.
///
/// The target is normalised so that requests served by the same handler share a key:
/// - the query (`?…`), the fragment (`#…`) and path parameters (`;…` in a segment) are
///   dropped: they carry tokens and session ids, and routes appear in every report;
/// - an absolute-form target (`http://host:port/path?q`, any scheme) is reduced to its
///   path; an empty path becomes `/`;
/// - every path segment that looks like an identifier becomes `:id`:
///   - a decimal number (`17`, `007`);
///   - a UUID, 8-4-4-4-12 hex digits in any case;
///   - a run of 16 or more hex digits (hashes, object ids);
///   - 8 to 15 hex digits that mix at least one decimal digit and one letter `a`–`f`
///     (short hashes such as `5f3a2b1c`), so that words made only of hex letters, like
///     `deadbeef` or `facade`, and segments like `v2` stay as they are.
///
/// Other segments, empty segments and a trailing `/` are kept: they can select different
/// handlers. `*` (OPTIONS) and authority-form targets (CONNECT `host:port`) are kept whole.
pub fn route_key(method: &str, target: &str) -> String {
    let mut key = String::with_capacity(method.len() + 1 + target.len());
    route_key_into(method, target, &mut key);
    key
}

/// The route key of a request, given its `content-type` value: a gRPC call
/// (`application/grpc…`) is keyed by its method's name alone, `/package.Service/Method`, and
/// any other request by [`route_key`].
///
/// A gRPC call is always a POST to a path that already names its handler, so the method adds
/// nothing and the path is not normalised (`/ids.V1/Get` is a name, not an id); only a query
/// or fragment, which gRPC never sends, is dropped.
pub fn request_route(method: &str, target: &str, content_type: Option<&[u8]>) -> String {
    let mut key = String::with_capacity(method.len() + 1 + target.len());
    request_route_into(method, target, content_type, &mut key);
    key
}

/// [`request_route`] written into `key` (cleared first), to reuse one buffer.
pub fn request_route_into(
    method: &str,
    target: &str,
    content_type: Option<&[u8]>,
    key: &mut String,
) {
    if !content_type.is_some_and(is_grpc) {
        route_key_into(method, target, key);
        return;
    }
    key.clear();
    let end = target.bytes().position(|b| b == b'?' || b == b'#');
    let path = strip_origin(&target[..end.unwrap_or(target.len())]);
    if !path.starts_with('/') {
        key.push('/');
    }
    key.push_str(path);
}

/// Whether a `content-type` value is gRPC's (`application/grpc`, `application/grpc+proto`…).
pub fn is_grpc(content_type: &[u8]) -> bool {
    content_type.starts_with(b"application/grpc")
}

/// [`route_key`] written into `key` (cleared first), to reuse one buffer.
pub fn route_key_into(method: &str, target: &str, key: &mut String) {
    key.clear();
    key.push_str(method);
    key.push(' ');
    let end = target.bytes().position(|b| b == b'?' || b == b'#');
    let path = strip_origin(&target[..end.unwrap_or(target.len())]);
    if path.is_empty() {
        key.push('/');
        return;
    }
    if !path.starts_with('/') {
        key.push_str(path);
        return;
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            key.push('/');
        }
        // Path parameters (`;jsessionid=…`) are dropped like the query: they carry
        // session ids, and the route is shown in every report.
        let segment = segment.split(';').next().unwrap_or_default();
        key.push_str(if is_id(segment) { ":id" } else { segment });
    }
}

/// The path of an absolute-form target (`scheme://authority/path`), or `target` itself.
fn strip_origin(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return target;
    };
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme {
        return target;
    }
    rest.find('/').map_or("", |at| &rest[at..])
}

fn is_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    if bytes.iter().all(u8::is_ascii_digit) || is_uuid(bytes) {
        return true;
    }
    if !bytes.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    bytes.len() >= 16
        || (bytes.len() >= 8
            && bytes.iter().any(u8::is_ascii_digit)
            && bytes.iter().any(u8::is_ascii_alphabetic))
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::{is_grpc, request_route, route_key};

    #[test]
    fn query_and_fragment_are_dropped() {
        assert_eq!(route_key("GET", "/search?q=1&p=2"), "GET /search");
        assert_eq!(route_key("GET", "/page#top"), "GET /page");
        assert_eq!(route_key("GET", "/a?x=/1#f"), "GET /a");
        assert_eq!(
            route_key("GET", "/cart;jsessionid=AB12/items/7;v=1"),
            "GET /cart/items/:id"
        );
    }

    #[test]
    fn empty_path_is_root() {
        assert_eq!(route_key("GET", ""), "GET /");
        assert_eq!(route_key("GET", "?q"), "GET /");
        assert_eq!(route_key("GET", "/"), "GET /");
    }

    #[test]
    fn absolute_form_is_reduced_to_its_path() {
        assert_eq!(
            route_key("GET", "http://api.example.com:8080/users/7?x=1"),
            "GET /users/:id"
        );
        assert_eq!(route_key("GET", "HTTPS://example.com"), "GET /");
        assert_eq!(route_key("GET", "http://example.com?q=/a"), "GET /");
    }

    #[test]
    fn ids_are_folded() {
        assert_eq!(route_key("GET", "/users/42"), "GET /users/:id");
        assert_eq!(
            route_key("DELETE", "/users/42/posts/7"),
            "DELETE /users/:id/posts/:id"
        );
        assert_eq!(
            route_key("PUT", "/items/123E4567-e89b-12d3-A456-426614174000"),
            "PUT /items/:id"
        );
        assert_eq!(
            route_key("GET", "/obj/507f1f77bcf86cd799439011"),
            "GET /obj/:id"
        );
        assert_eq!(
            route_key("GET", "/blob/da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            "GET /blob/:id"
        );
        assert_eq!(route_key("GET", "/commit/5f3a2b1c"), "GET /commit/:id");
    }

    #[test]
    fn words_are_kept() {
        for path in [
            "/v2/users",
            "/api/v1/me",
            "/deadbeef",
            "/cafe/facade",
            "/abc123",
            "/users/",
            "/a//b",
            "/x-42",
            "/12a-3",
        ] {
            assert_eq!(route_key("GET", path), format!("GET {path}"));
        }
    }

    #[test]
    fn other_forms_are_kept_whole() {
        assert_eq!(route_key("OPTIONS", "*"), "OPTIONS *");
        assert_eq!(
            route_key("CONNECT", "example.com:443"),
            "CONNECT example.com:443"
        );
    }

    #[test]
    fn grpc_calls_are_keyed_by_their_method_name() {
        let grpc = Some(&b"application/grpc"[..]);
        assert_eq!(
            request_route("POST", "/echo.Echo/Call", grpc),
            "/echo.Echo/Call"
        );
        // Not normalised: digits and hex in a method name are part of the name.
        assert_eq!(
            request_route("POST", "/ids.V1/Get42", Some(b"application/grpc+proto")),
            "/ids.V1/Get42"
        );
        assert_eq!(
            request_route("POST", "/pkg.S/12345678?x=1#f", grpc),
            "/pkg.S/12345678"
        );
        assert_eq!(
            request_route("POST", "http://h:50051/pkg.S/M", grpc),
            "/pkg.S/M"
        );
        assert_eq!(request_route("POST", "", grpc), "/");
    }

    #[test]
    fn other_requests_keep_method_and_normalised_path() {
        for content_type in [
            None,
            Some(&b"application/json"[..]),
            Some(b"text/grpc"),
            Some(b"application/grp"),
        ] {
            assert_eq!(
                request_route("POST", "/users/7?x=1", content_type),
                "POST /users/:id"
            );
        }
        assert!(is_grpc(b"application/grpc-web"));
        assert!(!is_grpc(b"Application/json"));
    }
}
