//! Message bodies (pure): an [`Event`] as a Slack/Mattermost incoming-webhook payload or as a
//! generic JSON document.
//!
//! A chat message has to be read at a glance: one headline (outcome, what was compared, which
//! run), the failing findings one line each, and where the report is. Long lists are cut (the
//! report has everything) so that a verdict with hundreds of failing routes still fits in one
//! message.

use super::{Event, Format, Kind};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `schema` of the generic JSON document.
pub const SCHEMA: &str = "nprt.notification/v1";

/// Failing findings shown in a chat message; the rest are counted.
pub const CHAT_FINDINGS: usize = 10;
/// Failing findings in a JSON document; `findings_total` counts them all.
pub const JSON_FINDINGS: usize = 100;
/// Characters of one finding's or error's text at most.
const LINE_CHARS: usize = 300;

/// The body to post, serialized.
pub fn body(event: &Event, format: Format) -> String {
    match format {
        Format::Slack => slack(event),
        Format::Json => json(event),
    }
    .to_string()
}

/// A Slack incoming-webhook payload. Only `text` is used: Slack, Mattermost (and the
/// Slack-compatible endpoints of other chats) all render it, which blocks and attachments are
/// not.
pub fn slack(event: &Event) -> Value {
    json!({ "text": slack_text(event) })
}

/// The chat message: a headline, the failing findings one line each, the report's location.
pub fn slack_text(event: &Event) -> String {
    let mut lines = vec![format!("{} {}", icon(event), headline(event, true))];
    if let Some(error) = &event.error {
        lines.push(format!("> {}", escape(&cut(error))));
        if let (Some(service), Kind::Rollback) = (&event.service, event.kind) {
            lines.push(format!(
                "The canary may still run: `nprt rollback {}` removes it.",
                code(service)
            ));
        }
    }
    for f in event.findings.iter().take(CHAT_FINDINGS) {
        lines.push(format!(
            "• `{}`: {}",
            code(&f.route),
            escape(&cut(&f.message))
        ));
    }
    if event.findings.len() > CHAT_FINDINGS {
        lines.push(format!(
            "• … and {} more in the report",
            event.findings.len() - CHAT_FINDINGS
        ));
    }
    if let Some(report) = &event.report {
        lines.push(format!("Report: {}", escape(report)));
    }
    lines.join("\n")
}

/// The generic document: every field typed, nothing to parse out of prose.
pub fn json(event: &Event) -> Value {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    json!({
        "schema": SCHEMA,
        "event": event.kind.as_str(),
        "outcome": event.outcome,
        "ok": event.error.is_none(),
        "error": event.error.as_deref().map(cut),
        "run": event.run,
        "service": event.service,
        "baseline": some(&event.baseline),
        "candidate": some(&event.candidate),
        "versions": { "stable": event.stable_version, "canary": event.canary_version },
        "findings": event.findings.iter().take(JSON_FINDINGS).collect::<Vec<_>>(),
        "findings_total": event.findings.len(),
        "report": event.report,
        "timestamp": rfc3339(event.at),
        "summary": headline(event, false),
    })
}

fn icon(event: &Event) -> &'static str {
    match (event.kind, event.error.is_some(), event.outcome.as_str()) {
        (_, true, _) => ":warning:",
        (Kind::Verdict, _, "pass") => ":white_check_mark:",
        (Kind::Verdict, _, "fail") => ":x:",
        (Kind::Verdict, _, _) => ":grey_question:",
        (Kind::Rollback, _, _) => ":rewind:",
        (Kind::Promotion, _, _) => ":rocket:",
    }
}

/// One sentence; with `markup`, Slack's bold and code spans (and its escapes).
fn headline(event: &Event, markup: bool) -> String {
    let (b, c) = if markup { ("*", "`") } else { ("", "") };
    let text = |s: &str| if markup { code(s) } else { s.to_owned() };
    let version = |v: &Option<String>| match v {
        Some(v) => format!(" ({c}{}{c})", text(v)),
        None => String::new(),
    };
    let run = if markup {
        escape(&event.run)
    } else {
        event.run.clone()
    };
    let service = event
        .service
        .as_deref()
        .map(|s| format!("{c}{}{c}", text(s)));
    match event.kind {
        Kind::Verdict => {
            let of = service.map(|s| format!(" of {s}")).unwrap_or_default();
            format!(
                "nprt {run}: {b}{}{b}{of}: {c}{}{c}{} vs {c}{}{c}{}",
                event.outcome.to_uppercase(),
                text(&event.candidate),
                version(&event.canary_version),
                text(&event.baseline),
                version(&event.stable_version),
            )
        }
        Kind::Rollback | Kind::Promotion => {
            let what = match event.kind {
                Kind::Rollback => "rollback of the canary",
                _ => "promotion of the canary",
            };
            let of = service.map(|s| format!(" of {s}")).unwrap_or_default();
            let done = if event.error.is_some() {
                format!("{b}FAILED{b}")
            } else {
                "done".to_owned()
            };
            format!(
                "nprt {run}: {what}{of}{} {done}, after {}",
                version(&event.canary_version),
                after(&event.outcome, b)
            )
        }
    }
}

/// What an action followed, as words.
fn after(on: &str, bold: &str) -> String {
    match on {
        "error" => "the run broke off".to_owned(),
        "interrupted" => "an interrupt".to_owned(),
        "unreachable" => "a target could not be reached".to_owned(),
        other => format!("a {bold}{}{bold} verdict", other.to_uppercase()),
    }
}

/// Slack's three escapes. Mattermost renders Markdown, which decodes the same entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text inside a code span: escaped, and without backticks, which would end it.
fn code(text: &str) -> String {
    escape(&text.replace('`', "'"))
}

/// At most [`LINE_CHARS`] characters, on one line.
fn cut(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= LINE_CHARS {
        return one_line;
    }
    let mut short: String = one_line.chars().take(LINE_CHARS - 1).collect();
    short.push('…');
    short
}

/// `2024-05-01T12:34:56Z`: UTC, whole seconds.
pub fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm, proleptic
/// Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}
