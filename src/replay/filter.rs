//! Which recorded exchanges are replayed: method policy, URL and header allow/deny rules,
//! consistent sampling and sharding. Pure: decided from the exchange alone.

use super::MethodPolicy;
use crate::recording::Exchange;
use regex::Regex;
use std::collections::BTreeMap;

/// Why an exchange was not sent; counted per reason in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// POST, PUT, PATCH, DELETE… without `--methods all`.
    UnsafeMethod,
    /// Not in `--allow-method`.
    Method,
    /// Not matched by `--allow-url`, or matched by `--deny-url`.
    Url,
    /// Not matched by `--allow-header`, or matched by `--deny-header`.
    Header,
    /// Left out by `--sample`.
    Sample,
    /// Belongs to another shard.
    Shard,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::UnsafeMethod => "unsafe method",
            Skip::Method => "method",
            Skip::Url => "url",
            Skip::Header => "header",
            Skip::Sample => "sample",
            Skip::Shard => "shard",
        }
    }
}

/// A header rule: the header's name (case-insensitive) and a pattern for its value.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub name: String,
    pub value: Regex,
}

impl HeaderRule {
    /// Parses `NAME:REGEX`, e.g. `User-Agent:^curl/`.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, pattern) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}`: expected NAME:REGEX, e.g. 'User-Agent:^curl/'"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{text}`: the header name is empty"));
        }
        Ok(HeaderRule {
            name: name.to_owned(),
            value: Regex::new(pattern).map_err(|e| format!("`{text}`: {e}"))?,
        })
    }

    fn matches(&self, exchange: &Exchange) -> bool {
        exchange
            .request_head
            .header_values(&self.name)
            .any(|v| self.value.is_match(&String::from_utf8_lossy(v)))
    }
}

/// The replay's selection rules; the default sends safe methods only.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub methods: MethodPolicy,
    /// When not empty, only these methods (upper case) are sent.
    pub allow_methods: Vec<String>,
    pub allow_urls: Vec<Regex>,
    pub deny_urls: Vec<Regex>,
    pub allow_headers: Vec<HeaderRule>,
    pub deny_headers: Vec<HeaderRule>,
    /// Percentage (0–100) of exchanges sent, chosen by a hash of the exchange id so the same
    /// recorded request is in or out on every run and for every target.
    pub sample_percent: Option<f64>,
    /// `(index, count)`: only exchanges whose id hashes to `index` modulo `count`.
    pub shard: Option<(u32, u32)>,
}

impl Filter {
    /// Whether to send `exchange`, or why not.
    pub fn check(&self, exchange: &Exchange) -> Result<(), Skip> {
        let head = &exchange.request_head;
        if let Some((index, count)) = self.shard {
            if fnv1a(b"shard", exchange.id.as_bytes()) % u64::from(count) != u64::from(index) {
                return Err(Skip::Shard);
            }
        }
        if !self.allow_methods.is_empty() {
            if !self.allow_methods.iter().any(|m| m == head.method()) {
                return Err(Skip::Method);
            }
        } else if !self.methods.allows(head.method()) {
            return Err(Skip::UnsafeMethod);
        }
        if (!self.allow_urls.is_empty()
            && !self.allow_urls.iter().any(|r| r.is_match(head.target())))
            || self.deny_urls.iter().any(|r| r.is_match(head.target()))
        {
            return Err(Skip::Url);
        }
        if (!self.allow_headers.is_empty()
            && !self.allow_headers.iter().any(|r| r.matches(exchange)))
            || self.deny_headers.iter().any(|r| r.matches(exchange))
        {
            return Err(Skip::Header);
        }
        if let Some(percent) = self.sample_percent {
            let bucket = fnv1a(b"sample", exchange.id.as_bytes()) % 10_000;
            if (bucket as f64) >= percent * 100.0 {
                return Err(Skip::Sample);
            }
        }
        Ok(())
    }
}

/// Counts of skipped exchanges by reason.
pub type SkipCounts = BTreeMap<Skip, u64>;

/// FNV-1a over a domain tag and the bytes. Written here rather than using std's hasher because
/// sampling and sharding must give the same answer on every machine and Rust version, which
/// `DefaultHasher` does not promise.
fn fnv1a(domain: &[u8], bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in domain.iter().chain(b":").chain(bytes) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn exchange(id: &str, request: &str) -> Exchange {
        let request = Bytes::from(request.to_owned());
        Exchange {
            id: id.into(),
            start_ns: 0,
            request_head: crate::http::parse_request_head(&request).unwrap().unwrap(),
            request,
            response: None,
        }
    }

    fn get(id: &str) -> Exchange {
        exchange(id, "GET /a?x=1 HTTP/1.1\r\nUser-Agent: curl/8\r\n\r\n")
    }

    #[test]
    fn fnv1a_matches_the_published_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (Fowler/Noll/Vo test vectors); ours hashes
        // "<domain>:<bytes>", so an empty domain gives ":a" — check the core with "a" itself.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        hash ^= u64::from(b'a');
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fnv1a(b"x", b"a"), fnv1a(b"y", b"a"));
    }

    #[test]
    fn safe_methods_by_default() {
        let f = Filter::default();
        assert_eq!(f.check(&get("1")), Ok(()));
        let post = exchange("2", "POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(f.check(&post), Err(Skip::UnsafeMethod));
        let all = Filter {
            methods: MethodPolicy::All,
            ..Filter::default()
        };
        assert_eq!(all.check(&post), Ok(()));
        let only_head = Filter {
            allow_methods: vec!["HEAD".into()],
            ..Filter::default()
        };
        assert_eq!(only_head.check(&get("1")), Err(Skip::Method));
    }

    #[test]
    fn url_and_header_rules() {
        let f = Filter {
            allow_urls: vec![Regex::new("^/a").unwrap()],
            deny_urls: vec![Regex::new("x=2").unwrap()],
            deny_headers: vec![HeaderRule::parse("user-agent:^bot").unwrap()],
            ..Filter::default()
        };
        assert_eq!(f.check(&get("1")), Ok(()));
        assert_eq!(
            f.check(&exchange("2", "GET /b HTTP/1.1\r\n\r\n")),
            Err(Skip::Url)
        );
        assert_eq!(
            f.check(&exchange("3", "GET /a?x=2 HTTP/1.1\r\n\r\n")),
            Err(Skip::Url)
        );
        assert_eq!(
            f.check(&exchange(
                "4",
                "GET /a HTTP/1.1\r\nUser-Agent: bot/1\r\n\r\n"
            )),
            Err(Skip::Header)
        );
        let allow = Filter {
            allow_headers: vec![HeaderRule::parse("User-Agent:curl").unwrap()],
            ..Filter::default()
        };
        assert_eq!(allow.check(&get("5")), Ok(()));
        assert_eq!(
            allow.check(&exchange("6", "GET / HTTP/1.1\r\n\r\n")),
            Err(Skip::Header)
        );
        assert!(HeaderRule::parse("nocolon")
            .unwrap_err()
            .contains("NAME:REGEX"));
        assert!(HeaderRule::parse("a:(").is_err());
    }

    #[test]
    fn sampling_is_consistent_and_close_to_the_percentage() {
        let f = Filter {
            sample_percent: Some(25.0),
            ..Filter::default()
        };
        let ids: Vec<String> = (0..10_000).map(|i| format!("{i:024x}")).collect();
        let kept: Vec<bool> = ids.iter().map(|id| f.check(&get(id)).is_ok()).collect();
        let again: Vec<bool> = ids.iter().map(|id| f.check(&get(id)).is_ok()).collect();
        assert_eq!(kept, again);
        let n = kept.iter().filter(|k| **k).count();
        assert!((2_300..2_700).contains(&n), "{n}");
    }

    #[test]
    fn shards_partition_the_exchanges() {
        let shards: Vec<Filter> = (0..3)
            .map(|i| Filter {
                shard: Some((i, 3)),
                ..Filter::default()
            })
            .collect();
        for i in 0..3_000 {
            let e = get(&format!("{i:024x}"));
            let owners = shards.iter().filter(|f| f.check(&e).is_ok()).count();
            assert_eq!(owners, 1, "exchange {i} must belong to exactly one shard");
        }
    }
}
