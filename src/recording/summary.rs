//! What a recording holds, for `nprt inspect`: a pure fold over [`Exchange`]s (plus the
//! reader's [`ReadStats`]) into counts by method, status and route, time span and rate.
//!
//! Memory is bounded: past a configurable number of distinct routes (and methods), further
//! keys are counted under [`OTHER`]. Summaries of parts of a recording [`Summary::merge`].

use super::{Exchange, ReadStats};
use crate::http::request_route;
use std::collections::BTreeMap;
use std::fmt;

/// The bucket for keys beyond the cap.
pub const OTHER: &str = "(other)";
/// Default number of distinct routes kept.
pub const DEFAULT_ROUTE_CAP: usize = 10_000;
/// Distinct methods kept: real traffic has a handful; more means garbage.
const METHOD_CAP: usize = 64;
/// Routes shown by the text rendering.
const TEXT_TOP_ROUTES: usize = 20;

/// Counts over a recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub exchanges: u64,
    /// Requests folded: every exchange has exactly one.
    pub requests: u64,
    /// Exchanges that carry their original response.
    pub responses: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Method → exchanges.
    pub methods: BTreeMap<String, u64>,
    /// Final status code → responses.
    pub status: BTreeMap<String, u64>,
    /// gRPC answers: status name (`UNAVAILABLE`) → responses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grpc_status: BTreeMap<String, u64>,
    /// Route key → exchanges, at most `route_cap` keys plus [`OTHER`].
    pub routes: BTreeMap<String, u64>,
    /// Earliest request start, ns since the Unix epoch.
    pub first_ns: Option<u64>,
    /// Latest request start, ns since the Unix epoch.
    pub last_ns: Option<u64>,
    pub span_seconds: f64,
    /// Exchanges per second over the span; 0 when the span is 0.
    pub rate_per_second: f64,
    /// Mean original latency of the responses, in milliseconds.
    pub mean_latency_ms: Option<f64>,
    /// What the reader could not turn into exchanges.
    pub reader: Option<ReadStats>,
    #[serde(skip)]
    route_cap: usize,
    #[serde(skip)]
    latency_sum_ns: u128,
}

impl Default for Summary {
    fn default() -> Self {
        Self::with_route_cap(DEFAULT_ROUTE_CAP)
    }
}

impl Summary {
    /// An empty summary keeping at most `route_cap` distinct routes.
    pub fn with_route_cap(route_cap: usize) -> Self {
        Self {
            exchanges: 0,
            requests: 0,
            responses: 0,
            request_bytes: 0,
            response_bytes: 0,
            methods: BTreeMap::new(),
            status: BTreeMap::new(),
            grpc_status: BTreeMap::new(),
            routes: BTreeMap::new(),
            first_ns: None,
            last_ns: None,
            span_seconds: 0.0,
            rate_per_second: 0.0,
            mean_latency_ms: None,
            reader: None,
            route_cap,
            latency_sum_ns: 0,
        }
    }

    /// Folds one exchange in.
    pub fn add(&mut self, ex: &Exchange) {
        self.exchanges += 1;
        self.requests += 1;
        self.request_bytes += ex.request.len() as u64;
        let head = &ex.request_head;
        bump(&mut self.methods, head.method(), 1, METHOD_CAP);
        let route = request_route(head.method(), head.target(), head.header("content-type"));
        bump(&mut self.routes, &route, 1, self.route_cap);
        if let Some(res) = &ex.response {
            self.responses += 1;
            self.response_bytes += res.bytes.len() as u64;
            self.latency_sum_ns += u128::from(res.latency_ns);
            *self.status.entry(res.head.status.to_string()).or_default() += 1;
            if let Some(code) = res.grpc_status() {
                let name = crate::observation::grpc_name(code);
                *self.grpc_status.entry(name.to_owned()).or_default() += 1;
            }
        }
        self.first_ns = Some(self.first_ns.map_or(ex.start_ns, |f| f.min(ex.start_ns)));
        self.last_ns = Some(self.last_ns.map_or(ex.start_ns, |l| l.max(ex.start_ns)));
        self.derive();
    }

    /// Combines the summary of another part of a recording (reader stats are added).
    pub fn merge(&mut self, other: &Summary) {
        self.exchanges += other.exchanges;
        self.requests += other.requests;
        self.responses += other.responses;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.latency_sum_ns += other.latency_sum_ns;
        for (k, v) in &other.methods {
            bump(&mut self.methods, k, *v, METHOD_CAP);
        }
        for (k, v) in &other.status {
            *self.status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.grpc_status {
            *self.grpc_status.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.routes {
            bump(&mut self.routes, k, *v, self.route_cap);
        }
        self.first_ns = min_opt(self.first_ns, other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        self.reader = match (self.reader.take(), &other.reader) {
            (Some(a), Some(b)) => Some(add_stats(a, b)),
            (a, b) => a.or_else(|| b.clone()),
        };
        self.derive();
    }

    /// Attaches the reader's counts once the recording has been read.
    pub fn finish(mut self, stats: &ReadStats) -> Self {
        self.reader = Some(stats.clone());
        self
    }

    /// Routes by count, highest first, ties by name, [`OTHER`] last.
    pub fn top_routes(&self) -> Vec<(&str, u64)> {
        sorted_by_count(&self.routes)
    }

    fn derive(&mut self) {
        let span_ns = match (self.first_ns, self.last_ns) {
            (Some(f), Some(l)) => l.saturating_sub(f),
            _ => 0,
        };
        self.span_seconds = span_ns as f64 / 1e9;
        self.rate_per_second = if span_ns > 0 {
            self.exchanges as f64 / self.span_seconds
        } else {
            0.0
        };
        self.mean_latency_ms =
            (self.responses > 0).then(|| self.latency_sum_ns as f64 / self.responses as f64 / 1e6);
    }
}

/// Adds `n` to `key`, or to [`OTHER`] once `cap` distinct keys are held.
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64, cap: usize) {
    if let Some(v) = map.get_mut(key) {
        *v += n;
        return;
    }
    let held = map.len() - usize::from(map.contains_key(OTHER));
    let key = if held < cap { key } else { OTHER };
    *map.entry(key.to_owned()).or_default() += n;
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn add_stats(a: ReadStats, b: &ReadStats) -> ReadStats {
    ReadStats {
        bytes: a.bytes + b.bytes,
        records: a.records + b.records,
        requests: a.requests + b.requests,
        responses: a.responses + b.responses,
        replayed: a.replayed + b.replayed,
        exchanges: a.exchanges + b.exchanges,
        paired: a.paired + b.paired,
        unanswered: a.unanswered + b.unanswered,
        orphan_responses: a.orphan_responses + b.orphan_responses,
        interim_responses: a.interim_responses + b.interim_responses,
        bad_responses: a.bad_responses + b.bad_responses,
        duplicates: a.duplicates + b.duplicates,
        late: a.late + b.late,
        skipped: a.skipped + b.skipped,
        too_large: a.too_large + b.too_large,
    }
}

fn sorted_by_count(map: &BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    let mut v: Vec<(&str, u64)> = map.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // The overflow bucket is not a route: it goes last, whatever its count.
    v.sort_by(|a, b| {
        (a.0 == OTHER)
            .cmp(&(b.0 == OTHER))
            .then(b.1.cmp(&a.1))
            .then(a.0.cmp(b.0))
    });
    v
}

/// A right-aligned count column followed by its label.
fn rows(f: &mut fmt::Formatter<'_>, items: &[(&str, u64)]) -> fmt::Result {
    let width = items
        .iter()
        .map(|(_, n)| n.to_string().len())
        .max()
        .unwrap_or(1);
    for (label, n) in items {
        writeln!(f, "  {n:>width$}  {label}")?;
    }
    Ok(())
}

impl fmt::Display for Summary {
    /// The human rendering of `nprt inspect`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exchanges   {}", self.exchanges)?;
        writeln!(
            f,
            "responses   {} ({} without)",
            self.responses,
            self.exchanges.saturating_sub(self.responses)
        )?;
        writeln!(
            f,
            "bytes       {} request, {} response",
            self.request_bytes, self.response_bytes
        )?;
        writeln!(
            f,
            "span        {:.3} s, {:.1} exchanges/s",
            self.span_seconds, self.rate_per_second
        )?;
        if let Some(ms) = self.mean_latency_ms {
            writeln!(f, "latency     {ms:.3} ms mean (original)")?;
        }
        writeln!(f, "\nmethods")?;
        rows(f, &sorted_by_count(&self.methods))?;
        writeln!(f, "\nstatus")?;
        let status: Vec<(&str, u64)> = self.status.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        rows(f, &status)?;
        if !self.grpc_status.is_empty() {
            writeln!(f, "\ngRPC status")?;
            rows(f, &sorted_by_count(&self.grpc_status))?;
        }
        let routes = self.top_routes();
        let shown = routes.len().min(TEXT_TOP_ROUTES);
        writeln!(f, "\nroutes (top {shown} of {})", routes.len())?;
        rows(f, &routes[..shown])?;
        if let Some(s) = &self.reader {
            writeln!(f, "\nrecords     {} in {} bytes", s.records, s.bytes)?;
            let notes = [
                ("orphan responses", s.orphan_responses),
                ("interim (1xx) responses", s.interim_responses),
                ("unusable responses", s.bad_responses),
                ("replayed responses (type 3)", s.replayed),
                ("duplicate records", s.duplicates),
                ("out-of-order beyond the window", s.late),
                ("skipped bad records", s.skipped),
                ("  of them over the record size limit", s.too_large),
            ];
            let notes: Vec<(&str, u64)> = notes.into_iter().filter(|(_, n)| *n > 0).collect();
            if !notes.is_empty() {
                writeln!(f, "not paired or not used")?;
                rows(f, &notes)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request_head, parse_response_head};
    use crate::recording::RecordedResponse;
    use bytes::Bytes;

    fn ex(method: &str, path: &str, start_ns: u64, status: Option<u16>) -> Exchange {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = status.map(|s| {
            let raw = format!("HTTP/1.1 {s} X\r\n\r\n");
            RecordedResponse {
                head: parse_response_head(raw.as_bytes()).unwrap().unwrap(),
                bytes: Bytes::from(raw),
                latency_ns: 2_000_000,
            }
        });
        Exchange {
            id: "i".into(),
            start_ns,
            request_head: parse_request_head(req.as_bytes()).unwrap().unwrap(),
            request: Bytes::from(req),
            response,
        }
    }

    #[test]
    fn counts_grpc_statuses_from_trailers_and_trailers_only_answers() {
        let mut s = Summary::default();
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ngrpc-status: 14\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ] {
            let mut e = ex("POST", "/echo.Echo/Call", 1, None);
            let req = "POST /echo.Echo/Call HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc\r\n\r\n";
            e.request_head = parse_request_head(req.as_bytes()).unwrap().unwrap();
            e.request = Bytes::from_static(req.as_bytes());
            e.response = Some(RecordedResponse {
                head: parse_response_head(raw.as_bytes()).unwrap().unwrap(),
                bytes: Bytes::from(raw),
                latency_ns: 1,
            });
            s.add(&e);
        }
        assert_eq!(s.grpc_status["OK"], 1);
        assert_eq!(s.grpc_status["UNAVAILABLE"], 1);
        assert_eq!(s.grpc_status.len(), 2, "a plain HTTP answer has none");
        // A gRPC call's route is its method's name, without the POST.
        assert_eq!(s.routes["/echo.Echo/Call"], 3);
        assert!(s.to_string().contains("gRPC status"), "{s}");
    }

    #[test]
    fn folds_counts_span_and_rate() {
        let mut s = Summary::default();
        s.add(&ex("GET", "/a?x=1", 1_000_000_000, Some(200)));
        s.add(&ex("GET", "/a", 2_000_000_000, Some(404)));
        s.add(&ex("POST", "/b", 3_000_000_000, None));
        assert_eq!((s.exchanges, s.requests, s.responses), (3, 3, 2));
        assert_eq!(s.methods["GET"], 2);
        assert_eq!(s.status["404"], 1);
        assert_eq!(s.routes["GET /a"], 2);
        assert_eq!(s.span_seconds, 2.0);
        assert_eq!(s.rate_per_second, 1.5);
        assert_eq!(s.mean_latency_ms, Some(2.0));
        let json = serde_json::to_value(&s).unwrap();
        for key in [
            "exchanges",
            "requests",
            "responses",
            "methods",
            "status",
            "routes",
            "span_seconds",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn routes_beyond_cap_fold_into_other() {
        let mut s = Summary::with_route_cap(2);
        for (i, p) in ["/a", "/b", "/c", "/d", "/a"].iter().enumerate() {
            s.add(&ex("GET", p, i as u64, None));
        }
        assert_eq!(s.routes.len(), 3);
        assert_eq!(s.routes[OTHER], 2);
        assert_eq!(s.routes["GET /a"], 2);
        assert_eq!(s.top_routes()[0], ("GET /a", 2));
        assert_eq!(s.top_routes()[2], (OTHER, 2));
    }

    #[test]
    fn merge_equals_one_fold() {
        let all = [
            ex("GET", "/a", 5, Some(200)),
            ex("PUT", "/b", 1, Some(500)),
            ex("GET", "/a", 9, None),
        ];
        let mut one = Summary::default();
        all.iter().for_each(|e| one.add(e));
        let (mut left, mut right) = (Summary::default(), Summary::default());
        left.add(&all[0]);
        all[1..].iter().for_each(|e| right.add(e));
        left.merge(&right);
        assert_eq!(left, one);
    }

    #[test]
    fn text_is_aligned_and_lists_routes_by_count() {
        let mut s = Summary::default();
        for i in 0..12 {
            s.add(&ex("GET", "/many", i, Some(200)));
        }
        s.add(&ex("GET", "/once", 20, Some(200)));
        let s = s.finish(&ReadStats {
            orphan_responses: 2,
            ..ReadStats::default()
        });
        let text = s.to_string();
        let many = text.find("GET /many").unwrap();
        let once = text.find("GET /once").unwrap();
        assert!(many < once, "{text}");
        assert!(
            text.contains("  12  GET /many\n   1  GET /once\n"),
            "{text}"
        );
        assert!(text.contains("orphan responses"), "{text}");
    }
}
