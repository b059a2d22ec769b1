//! What to deploy as a canary: `nprt canary`/`nprt deploy`'s flags and a scenario's
//! `[deploy]` keys. (Where to deploy — kubeconfig context, deploy API — and how long to wait
//! are each side's own: the command line shares them with `rollback`, `promote`, `status`.)

use super::SpecError;
use crate::deploy::driver::Request;
use crate::deploy::rewrite::Track;
use crate::deploy::Exposure;

/// The release to deploy and how its canary meets traffic.
#[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Scenario key only (the command line's positional SERVICE): the service of the deploy
    /// config.
    #[arg(skip)]
    #[serde(default)]
    pub service: String,
    /// Scenario key only (`--config`): the deploy.toml, for deploying directly.
    #[arg(skip)]
    pub config: Option<String>,
    /// Scenario key only (`--server`): the deploy API to deploy through instead.
    #[arg(skip)]
    pub server: Option<String>,
    /// Scenario key only: the environment variable holding the deploy API's token.
    #[arg(skip)]
    pub token_env: Option<String>,
    /// Scenario key only (`--context`): the kubeconfig context.
    #[arg(skip)]
    pub context: Option<String>,
    /// Scenario key only (`--timeout`): how long to wait for rollouts and deletions.
    #[arg(skip)]
    pub timeout: Option<super::Span>,
    /// Scenario key only (`--force`): take over fields another manager owns.
    #[arg(skip)]
    #[serde(default)]
    pub force: bool,
    /// Scenario key only: roll the canary back on Ctrl-C [default: true].
    #[arg(skip)]
    pub rollback_on_interrupt: Option<bool>,
    /// The commit (or branch, or tag) whose manifests to deploy; default: the branch head.
    #[arg(long, value_name = "C")]
    pub commit: Option<String>,
    /// The image tag to deploy instead of the one tag_format gives for the commit.
    #[arg(long, value_name = "T")]
    pub tag: Option<String>,
    /// How the canary meets traffic: shadow (mirrored only) or shared (takes user traffic).
    #[arg(long, value_name = "shadow|shared")]
    pub exposure: Option<Exposure>,
    /// Canary this workload even if no Service selects it; repeat for more. Only the named
    /// workloads get a canary.
    #[arg(long = "workload", value_name = "NAME")]
    #[serde(default)]
    pub workloads: Vec<String>,
    /// Apply without checking that the registry has every image tag the release uses.
    #[arg(long)]
    #[serde(default)]
    pub skip_image_check: bool,
    /// Canary only: also deploy a baseline, NAME-baseline, the stable release (the commit
    /// and version the stable workloads run) rewritten exactly like the canary, to judge the
    /// canary against.
    #[arg(long)]
    #[serde(default)]
    pub with_baseline: bool,
    /// The baseline's commit (or branch, or tag) when the stable workloads do not tell it
    /// (not deployed with `nprt deploy`), or instead of theirs.
    #[arg(long, value_name = "C")]
    pub baseline_commit: Option<String>,
    /// The baseline's image tag instead of the stable workloads' version (or, with
    /// --baseline-commit, the one tag_format gives).
    #[arg(long, value_name = "T")]
    pub baseline_tag: Option<String>,
}

impl DeploySpec {
    /// The deploy driver's request for `track`.
    pub fn request(&self, track: Track) -> Result<Request, SpecError> {
        for (key, tag) in [("tag", &self.tag), ("baseline_tag", &self.baseline_tag)] {
            if let Some(tag) = tag {
                if !crate::deploy::image::is_tag(tag) {
                    return Err(SpecError::new(
                        key,
                        format!("`{tag}` is not a valid image tag"),
                    ));
                }
            }
        }
        for (key, commit) in [
            ("commit", &self.commit),
            ("baseline_commit", &self.baseline_commit),
        ] {
            if commit.as_ref().is_some_and(|c| c.trim().is_empty()) {
                return Err(SpecError::new(key, "must not be empty"));
            }
        }
        for w in &self.workloads {
            if !crate::deploy::config::is_dns_label(w) {
                return Err(
                    SpecError::new("workloads", format!("`{w}` is not a workload name"))
                        .with_flag("--workload"),
                );
            }
        }
        if self.with_baseline && track != Track::Canary {
            return Err(SpecError::new(
                "with_baseline",
                "only a canary gets a baseline; use `nprt canary`",
            ));
        }
        if !self.with_baseline {
            for (key, given) in [
                ("baseline_commit", self.baseline_commit.is_some()),
                ("baseline_tag", self.baseline_tag.is_some()),
            ] {
                if given {
                    return Err(SpecError::new(key, "needs ‹with_baseline›"));
                }
            }
        }
        Ok(Request {
            track,
            commit: self.commit.clone(),
            tag: self.tag.clone(),
            exposure: self.exposure,
            workloads: self.workloads.clone(),
            with_baseline: self.with_baseline,
            baseline_commit: self.baseline_commit.clone(),
            baseline_tag: self.baseline_tag.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_options_need_with_baseline_named_either_way() {
        let spec: DeploySpec = toml::from_str("baseline_commit = \"abc\"").unwrap();
        let e = spec.request(Track::Canary).unwrap_err();
        assert_eq!(e.key, "baseline_commit");
        assert_eq!(e.for_flag(), "--baseline-commit: needs --with-baseline");
        assert_eq!(e.for_key("deploy"), "needs deploy.with_baseline");
        let spec: DeploySpec = toml::from_str("with_baseline = true").unwrap();
        assert_eq!(
            spec.request(Track::Stable).unwrap_err().key,
            "with_baseline"
        );
        let r = spec.request(Track::Canary).unwrap();
        assert!(r.with_baseline);
    }

    #[test]
    fn tags_commits_and_workloads_are_checked() {
        let e = DeploySpec {
            tag: Some("no spaces".into()),
            ..DeploySpec::default()
        }
        .request(Track::Canary)
        .unwrap_err();
        assert_eq!(e.flag(), "--tag");
        let e = DeploySpec {
            workloads: vec!["Not_A_Label".into()],
            ..DeploySpec::default()
        }
        .request(Track::Canary)
        .unwrap_err();
        assert_eq!((e.key, e.flag().as_str()), ("workloads", "--workload"));
        let e = DeploySpec {
            commit: Some(" ".into()),
            ..DeploySpec::default()
        }
        .request(Track::Canary)
        .unwrap_err();
        assert_eq!(e.key, "commit");
    }
}
