//! The messages of `nprt run`: what a scenario tells about its verdict and its rollback or
//! promotion, so that the orchestration only says when.

use super::{Event, Kind, Notifier, Versions};
use crate::compare::Verdict;
use crate::deploy::outcome::Deployed;
use crate::scenario::deployer::Op;
use crate::scenario::Scenario;

fn run_name(scenario: &Scenario) -> String {
    format!("scenario {}", scenario.name)
}

/// Adds the deployed service and its versions (when the scenario deploys one) and the
/// reports' folder.
fn context(event: Event, scenario: &Scenario, deployed: Option<&Deployed>) -> Event {
    let event = event.with_report(&scenario.report.dir);
    match &scenario.deploy {
        Some(d) => event.with_deploy(&d.service, Versions::of(deployed)),
        None => event,
    }
}

/// The decided verdict; `deployed` is the deploy driver's outcome for the canary.
pub fn verdict_event(scenario: &Scenario, verdict: &Verdict, deployed: Option<&Deployed>) -> Event {
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
    deployed: Option<&Deployed>,
) -> Event {
    let kind = match op {
        Op::Promote => Kind::Promotion,
        Op::Rollback => Kind::Rollback,
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
