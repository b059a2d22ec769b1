//! The messages of `nprt run`: what a scenario tells about its verdict and its rollback or
//! promotion, so that the orchestration only says when.

use super::{Event, Kind, Notifier};
use crate::compare::Verdict;
use crate::scenario::deployer::Op;
use crate::scenario::Scenario;
use serde_json::Value;

fn run_name(scenario: &Scenario) -> String {
    format!("scenario {}", scenario.name)
}

/// Adds the deployed service and its versions (when the scenario deploys one) and the
/// reports' folder.
fn context(event: Event, scenario: &Scenario, deployed: Option<&Value>) -> Event {
    let event = event.with_report(&scenario.report.dir);
    match &scenario.deploy {
        Some(d) => event.with_deploy(&d.service, deployed),
        None => event,
    }
}

/// The decided verdict; `deployed` is the deploy driver's outcome for the canary.
pub fn verdict_event(scenario: &Scenario, verdict: &Verdict, deployed: Option<&Value>) -> Event {
    context(
        Event::verdict(verdict, run_name(scenario)),
        scenario,
        deployed,
    )
}

/// A rollback or promotion (`op`) done because of `on`, or failed with `error`.
pub fn action_event(
    scenario: &Scenario,
    op: Op,
    on: &str,
    error: Option<String>,
    deployed: Option<&Value>,
) -> Event {
    let kind = match op {
        Op::Promote => Kind::Promotion,
        Op::Rollback | Op::Canary => Kind::Rollback,
    };
    let event = Event::action(kind, on, error, run_name(scenario));
    let mut event = context(event, scenario, deployed);
    event.baseline = scenario.judge.options.baseline.clone();
    event.candidate = scenario.judge.options.candidate.clone();
    event
}

/// Sends `event` when there is a notifier; owns both, so that it can run beside work that
/// borrows the run's state.
pub async fn send(notifier: Option<Notifier>, event: Event) {
    if let Some(n) = notifier {
        n.send(&event).await;
    }
}
