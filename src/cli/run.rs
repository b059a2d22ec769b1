//! `nprt run SCENARIO.toml`: a whole scenario in one command, see [`crate::scenario`].

use super::*;

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// The scenario file (TOML): source × targets × judge × what to do on pass and fail.
    scenario: PathBuf,
    /// Override one value of the scenario before it is checked, as a dotted KEY=VALUE, e.g.
    /// report.dir=out or replay.rate=200 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Check the scenario and what it refers to, print the plan, and exit; contacts nothing.
    #[arg(long)]
    check: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub(super) async fn run_scenario(args: &RunArgs) -> CommandResult {
    let overrides = args
        .set
        .iter()
        .map(|s| crate::scenario::set::Override::parse(s).map_err(usage("--set")))
        .collect::<Result<Vec<_>, _>>()?;
    let loaded = crate::scenario::load(&args.scenario, &overrides).map_err(Failure::bad_input)?;
    if args.check {
        print!("{}", crate::scenario::describe(&loaded));
        return Ok(Exit::Pass);
    }
    crate::scenario::run(loaded, args.quiet).await
}
