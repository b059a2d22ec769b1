//! What the tee proxy changes on the way through, and which requests it mirrors. Pure: no I/O,
//! decided from the method, the headers and a random draw.

use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

use crate::replay::MethodPolicy;
use std::sync::Arc;

/// Marks every request the shadow gets, so that the canary (and its logs) can tell mirrored
/// traffic from anything else.
pub const SHADOW_HEADER: &str = "x-nprt-shadow";

/// Removes the hop-by-hop headers: the fixed list and every header the Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in crate::http::HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Adds the client's address to X-Forwarded-For, and sets X-Forwarded-Proto and
/// X-Forwarded-Host unless a proxy in front already did.
pub fn add_forwarded(headers: &mut HeaderMap, client: std::net::IpAddr, host: Option<&str>) {
    let client = client.to_string();
    let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(before) if !before.trim().is_empty() => format!("{before}, {client}"),
        _ => client,
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert("x-forwarded-for", value);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.entry("x-forwarded-host").or_insert(host);
    }
}

/// Why a request was not mirrored; each reason is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// POST, PUT, PATCH, DELETE… without `--methods all`.
    UnsafeMethod,
    /// Left out by `--mirror-percent`.
    Percent,
    /// The body is larger than `--max-body`.
    TooLarge,
    /// The client did not send the whole body (or the primary stopped reading it).
    BodyIncomplete,
    /// A protocol switch (WebSocket, h2c upgrade): the shadow cannot take part in it.
    Upgrade,
    /// Mirroring stopped: the judge failed the canary, or the proxy is shutting down.
    Stopped,
    /// Passive mirror: the captured request has no captured response to compare with.
    Unanswered,
    /// Passive mirror: bytes of the captured request or response are missing.
    Truncated,
    /// The shadow (or its baseline copy) refused or timed out repeatedly: its circuit is open.
    ShadowDown,
    /// A gRPC call whose method `--grpc-mirror` does not name (every call is a POST).
    GrpcMethod,
}

impl Skip {
    pub const ALL: [Skip; 10] = [
        Skip::UnsafeMethod,
        Skip::Percent,
        Skip::TooLarge,
        Skip::BodyIncomplete,
        Skip::Upgrade,
        Skip::Stopped,
        Skip::Unanswered,
        Skip::Truncated,
        Skip::ShadowDown,
        Skip::GrpcMethod,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsafeMethod => "unsafe_method",
            Skip::Percent => "percent",
            Skip::TooLarge => "too_large",
            Skip::BodyIncomplete => "body_incomplete",
            Skip::Upgrade => "upgrade",
            Skip::Stopped => "stopped",
            Skip::Unanswered => "unanswered",
            Skip::Truncated => "truncated",
            Skip::ShadowDown => "shadow_down",
            Skip::GrpcMethod => "grpc_method",
        }
    }
}

/// Which requests are mirrored.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorPolicy {
    pub methods: MethodPolicy,
    /// Share of eligible requests mirrored, 0 to 100.
    pub percent: f64,
    /// Largest request body mirrored, in bytes.
    pub max_body: u64,
    /// gRPC methods mirrored (`pkg.Service/Get*`, `*` matching any run): a gRPC call is a
    /// POST whatever it does, so it is mirrored by its method's name, not by its HTTP method.
    pub grpc: Arc<[String]>,
}

impl Default for MirrorPolicy {
    fn default() -> Self {
        MirrorPolicy {
            methods: MethodPolicy::Safe,
            percent: 100.0,
            max_body: 1 << 20,
            grpc: Arc::new([]),
        }
    }
}

/// Whether a request is a gRPC call (`content-type: application/grpc`, `+proto`…).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|v| crate::http::is_grpc(v.as_bytes()))
}

impl MirrorPolicy {
    /// Decides from what is known when the request head arrives; `draw` is uniform in [0, 1).
    /// A body of unknown length is decided again when it has been read.
    ///
    /// # Errors
    /// The reason the request is not mirrored.
    pub fn decide(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        content_length: Option<u64>,
        draw: f64,
    ) -> Result<(), Skip> {
        if is_grpc(headers) && self.methods != MethodPolicy::All {
            // `/pkg.Service/Method?…` against `pkg.Service/Method` patterns.
            let name = path.trim_start_matches('/');
            let name = name.split_once('?').map_or(name, |(n, _)| n);
            if !self
                .grpc
                .iter()
                .any(|p| crate::compare::options::glob(p, name))
            {
                return Err(Skip::GrpcMethod);
            }
        } else if !self.methods.allows(method) {
            return Err(Skip::UnsafeMethod);
        }
        if headers.contains_key(hyper::header::UPGRADE) || method == "CONNECT" {
            return Err(Skip::Upgrade);
        }
        if content_length.is_some_and(|n| n > self.max_body) {
            return Err(Skip::TooLarge);
        }
        if draw * 100.0 >= self.percent {
            return Err(Skip::Percent);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Trace-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-trace-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("accept", "*/*"),
            ("x-request-id", "42"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept", "x-request-id"]);
    }

    #[test]
    fn forwarded_headers_extend_a_chain_and_keep_a_front_proxys_values() {
        let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let mut fresh = HeaderMap::new();
        add_forwarded(&mut fresh, ip, Some("shop.example"));
        assert_eq!(fresh["x-forwarded-for"], "10.1.2.3");
        assert_eq!(fresh["x-forwarded-proto"], "http");
        assert_eq!(fresh["x-forwarded-host"], "shop.example");

        let mut behind = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "www.example"),
        ]);
        add_forwarded(&mut behind, ip, Some("internal"));
        assert_eq!(behind["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(behind["x-forwarded-proto"], "https");
        assert_eq!(behind["x-forwarded-host"], "www.example");
    }

    #[test]
    fn grpc_calls_are_mirrored_by_method_name() {
        let grpc = headers(&[("content-type", "application/grpc+proto")]);
        let p = MirrorPolicy {
            grpc: vec!["shop.Catalog/Get*".to_owned(), "shop.Health/*".to_owned()].into(),
            ..MirrorPolicy::default()
        };
        let decide = |path| p.decide("POST", path, &grpc, Some(5), 0.0);
        assert_eq!(decide("/shop.Catalog/GetItem"), Ok(()));
        assert_eq!(decide("/shop.Health/Check"), Ok(()));
        assert_eq!(decide("/shop.Catalog/DeleteItem"), Err(Skip::GrpcMethod));
        assert_eq!(decide("/shop.CatalogV2/GetItem"), Err(Skip::GrpcMethod));
        // Without patterns no call is mirrored, unless every method is.
        let none = MirrorPolicy::default();
        assert_eq!(
            none.decide("POST", "/shop.Health/Check", &grpc, None, 0.0),
            Err(Skip::GrpcMethod)
        );
        let all = MirrorPolicy {
            methods: MethodPolicy::All,
            ..MirrorPolicy::default()
        };
        assert_eq!(all.decide("POST", "/x.Y/Z", &grpc, None, 0.0), Ok(()));
        // An ordinary POST is still an unsafe method.
        assert_eq!(
            p.decide(
                "POST",
                "/shop.Catalog/GetItem",
                &HeaderMap::new(),
                None,
                0.0
            ),
            Err(Skip::UnsafeMethod)
        );
    }

    #[test]
    fn mirror_policy_reasons() {
        let none = HeaderMap::new();
        let p = MirrorPolicy {
            max_body: 10,
            percent: 50.0,
            ..MirrorPolicy::default()
        };
        assert_eq!(p.decide("GET", "/", &none, None, 0.1), Ok(()));
        assert_eq!(p.decide("HEAD", "/", &none, Some(10), 0.49), Ok(()));
        assert_eq!(p.decide("GET", "/", &none, None, 0.5), Err(Skip::Percent));
        assert_eq!(
            p.decide("POST", "/", &none, None, 0.0),
            Err(Skip::UnsafeMethod)
        );
        assert_eq!(
            p.decide("GET", "/", &none, Some(11), 0.0),
            Err(Skip::TooLarge)
        );
        let ws = headers(&[("upgrade", "websocket")]);
        assert_eq!(p.decide("GET", "/", &ws, None, 0.0), Err(Skip::Upgrade));
        let all = MirrorPolicy {
            methods: MethodPolicy::All,
            ..p.clone()
        };
        assert_eq!(all.decide("POST", "/", &none, Some(3), 0.0), Ok(()));
        assert_eq!(all.decide("DELETE", "/", &none, None, 0.0), Ok(()));
        let off = MirrorPolicy {
            percent: 0.0,
            ..MirrorPolicy::default()
        };
        assert_eq!(off.decide("GET", "/", &none, None, 0.0), Err(Skip::Percent));
    }
}
