//! Resource efficiency: CPU, memory and any other Prometheus metric of the targets, judged
//! per request beside latency and errors.
//!
//! The judge file's `[prometheus]` section ([`config`]) names the metrics. While traffic
//! flows, the [`timeline`] counts each target's answers per second (it lives in the
//! [`Comparison`](crate::compare::Comparison)); afterwards the session layer runs one range
//! query per metric and target over that window (`session::prometheus`), and [`judge`]
//! aligns the samples with the counts and compares the targets step by step. [`promql`]
//! fills queries and reads Prometheus's answers. Everything here is pure.

pub mod config;
pub mod judge;
pub mod promql;
pub mod timeline;

pub use config::Config;
pub use judge::ResourceResult;
pub use timeline::Timeline;
