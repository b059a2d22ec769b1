//! Posting a message: one POST with a timeout, whose failure is logged and counted and never
//! reaches the caller — a chat being down must not change a verdict, an exit code, or a
//! rollback.
//!
//! Logs name the webhook's host only: its path (Slack's `/services/T…/B…/secret`) is the
//! credential.

use super::{message, Event, Format};
use crate::compare::sequential::Decision;
use crate::compare::{Outcome, Verdict};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Client = crate::tls::HttpsClient<Full<Bytes>>;

/// Bytes of a webhook's answer read at most (enough for an error message).
const ANSWER_LIMIT: usize = 16 * 1024;

/// Posts events to one webhook. Cloning shares the connection pool and the counters.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    url: hyper::Uri,
    /// What logs may show of the URL.
    host: String,
    format: Format,
    timeout: Duration,
    client: Client,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("host", &self.inner.host)
            .field("format", &self.inner.format)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier posting `format` bodies to `url`, each given up on after `timeout`.
    ///
    /// # Errors
    /// When no TLS client can be made (the message does not quote the URL).
    pub fn new(url: hyper::Uri, format: Format, timeout: Duration) -> Result<Notifier, String> {
        let options = crate::tls::ClientOptions {
            connect_timeout: Duration::from_secs(5),
            idle_per_host: 1,
            ..Default::default()
        };
        let client =
            crate::tls::https_client(&options).map_err(|e| format!("cannot set up TLS: {e}"))?;
        let host = url.host().unwrap_or("").to_owned();
        Ok(Notifier {
            inner: Arc::new(Inner {
                url,
                host,
                format,
                timeout,
                client,
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    /// The webhook's host (the only part of its URL that may be shown).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Messages delivered and not delivered so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.sent.load(Ordering::Relaxed),
            self.inner.failed.load(Ordering::Relaxed),
        )
    }

    /// The counts as written into a run's record.
    pub fn counts_json(&self) -> serde_json::Value {
        let (sent, failed) = self.counts();
        serde_json::json!({ "host": self.host(), "sent": sent, "failed": failed })
    }

    /// Posts the event. Never fails: a refused, failed or slow post is logged with a warning
    /// (naming the host, not the URL) and counted. Returns whether it was delivered.
    pub async fn send(&self, event: &Event) -> bool {
        let inner = &self.inner;
        let body = message::body(event, inner.format);
        let outcome = match tokio::time::timeout(inner.timeout, self.post(body)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", inner.timeout)),
        };
        match outcome {
            Ok(()) => {
                inner.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(webhook = %inner.host, event = event.kind.as_str(), "notification sent");
                true
            }
            Err(why) => {
                inner.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    webhook = %inner.host,
                    event = event.kind.as_str(),
                    "notification not delivered (the verdict stands): {why}"
                );
                false
            }
        }
    }

    async fn post(&self, body: String) -> Result<(), String> {
        let inner = &self.inner;
        let request = hyper::Request::post(inner.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("nprt/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.scrub(&e.to_string()))?;
        let response = inner
            .client
            .request(request)
            .await
            .map_err(|e| self.scrub(&crate::tls::error_chain(&e)))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&answer);
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text: String = text.chars().take(200).collect();
        Err(self.scrub(&format!("the webhook answered {status}: {text}")))
    }

    /// `text` with the URL's path and query replaced, in case an error quotes them.
    fn scrub(&self, text: &str) -> String {
        let url = &self.inner.url;
        let mut out = text.replace(&url.to_string(), &format!("<webhook on {}>", self.host()));
        if let Some(pq) = url.path_and_query().map(|p| p.as_str()) {
            if pq.len() > 1 {
                out = out.replace(pq, "/…");
            }
        }
        out
    }
}

/// The one verdict message of a live run (`nprt shadow`, `nprt mirror`): sent the moment the
/// live judge fails the shadow (while the proxy keeps serving users, the run may go on for
/// long), or else with the final verdict — never both.
pub struct LiveVerdict {
    notifier: Notifier,
    run: String,
    report: Option<PathBuf>,
    state: Mutex<LiveState>,
}

#[derive(Default)]
struct LiveState {
    taken: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveVerdict {
    /// `run` names the command for the reader (`shadow`, `mirror`); `report` is the reports'
    /// folder, if any.
    pub fn new(notifier: Notifier, run: &str, report: Option<PathBuf>) -> Arc<LiveVerdict> {
        Arc::new(LiveVerdict {
            notifier,
            run: run.to_owned(),
            report,
            state: Mutex::new(LiveState::default()),
        })
    }

    fn event(&self, verdict: &Verdict) -> Event {
        let event = Event::verdict(verdict, self.run.clone());
        match &self.report {
            Some(dir) => event.with_report(dir),
            None => event,
        }
    }

    /// Called with every verdict the live judge writes; sends (on a task of its own, so the
    /// judge never waits) the first one whose FAIL the sequential judge decided.
    pub fn offer(&self, verdict: &Verdict) {
        let decided_fail = verdict.outcome == Outcome::Fail
            && verdict
                .sequential
                .as_ref()
                .is_some_and(|s| matches!(s.decision, Decision::Fail { .. }));
        if !decided_fail {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.taken {
            return;
        }
        state.taken = true;
        let (notifier, event) = (self.notifier.clone(), self.event(verdict));
        state.task = Some(tokio::spawn(async move {
            notifier.send(&event).await;
        }));
    }

    /// The run is over: sends the final verdict unless a decided fail was sent already, and
    /// waits until the message went (or was given up on).
    pub async fn finish(&self, verdict: &Verdict) {
        let task = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !state.taken {
                state.taken = true;
                None
            } else {
                Some(state.task.take())
            }
        };
        match task {
            None => {
                self.notifier.send(&self.event(verdict)).await;
            }
            Some(Some(task)) => {
                let _ = task.await;
            }
            Some(None) => {}
        }
    }
}
