//! The deploy driver's commands: `ls`, `show`, `deploy`, `canary`, `rollback`, `promote`,
//! `status`, `tags` and `serve`, on top of [`crate::deploy`].

use super::*;
use crate::deploy::client::{ApiClient, ClientError};
use crate::deploy::outcome::{Deployed, ServiceSettings, Timing};

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve https with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request body accepted, e.g. 1MiB (larger ones get 413).
    #[arg(long, value_name = "SIZE", default_value = "1MiB")]
    max_body: crate::spec::Size,
    /// Failed authentications allowed per client address within --auth-window before it
    /// gets 429 (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 10)]
    auth_failures: u32,
    /// The window of --auth-failures, e.g. 1m.
    #[arg(long, value_name = "D", default_value = "1m")]
    auth_window: crate::spec::Span,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub(super) struct TagsArgs {
    /// The service, as named in deploy.toml.
    service: String,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    server: ServerArgs,
}

/// Client mode: the operation goes through a running `nprt serve`.
#[derive(Debug, Args)]
pub(super) struct ServerArgs {
    /// Go through the deploy API at URL (a running `nprt serve`) instead of the cluster; the
    /// token comes from NPRT_TOKEN or --token-file.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Read the API token from FILE instead of the NPRT_TOKEN environment variable.
    #[arg(long, value_name = "FILE", requires = "server")]
    token_file: Option<PathBuf>,
    /// Trust this PEM CA certificate for an https --server, besides the system's roots.
    #[arg(long, alias = "ca-cert", value_name = "FILE", requires = "server")]
    ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct ClusterArgs {
    /// The kubeconfig context to use (default: the current context; in a pod, its service account).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// How long to wait for rollouts and deletions, e.g. 5m.
    #[arg(long, value_name = "D", default_value = "5m")]
    timeout: crate::spec::Span,
    /// Take over fields another field manager owns instead of failing on the conflict.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub(super) struct ServiceArgs {
    /// The service, as named in deploy.toml.
    service: String,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct DeployArgs {
    /// The service, as named in deploy.toml.
    service: String,
    #[command(flatten)]
    spec: crate::spec::deploy::DeploySpec,
    /// Print the rewritten objects as YAML instead of applying them; contacts no cluster.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct ConfigArg {
    /// The deploy driver's configuration.
    #[arg(long, value_name = "FILE", default_value = "deploy.toml")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct LsArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    server: ServerArgs,
}

pub(super) fn load_deploy_config(arg: &ConfigArg) -> Result<crate::deploy::DeployConfig, Failure> {
    crate::deploy::DeployConfig::load(&arg.config).map_err(Failure::bad_input)
}

pub(super) async fn deploy_ls(args: &LsArgs) -> CommandResult {
    // None: a service whose settings this token may not see.
    let shown: Vec<(String, Option<ServiceSettings>)> = match client(&args.server, None)? {
        Some(api) => {
            let list = api.services().await.map_err(client_failure)?;
            let mut shown = Vec::new();
            for name in list.services {
                match api.settings(&name).await {
                    Ok(settings) => shown.push((name, Some(settings))),
                    // A token sees the other services' names only.
                    Err(ClientError::Forbidden { .. }) => shown.push((name, None)),
                    Err(e) => return Err(client_failure(e)),
                }
            }
            shown
        }
        None => load_deploy_config(&args.config)?
            .services
            .values()
            .map(|s| (s.name.clone(), Some(crate::deploy::ops::show(s))))
            .collect(),
    };
    for (name, settings) in shown {
        let Some(s) = settings else {
            println!("{name}\t(not visible with this token)");
            continue;
        };
        println!(
            "{}\t{}\t{}\t{}/\tnamespace={}\texposure={}",
            s.service,
            s.repository,
            s.branch,
            s.manifests,
            s.namespace.as_deref().unwrap_or("(kubeconfig default)"),
            s.exposure,
        );
    }
    Ok(Exit::Pass)
}

/// The API client when `--server` is given: token from the environment or file, never the
/// command line. The client waits for the server's own operation `timeout` (default 30 s)
/// plus a margin for the answer.
fn client(server: &ServerArgs, timeout: Option<Duration>) -> Result<Option<ApiClient>, Failure> {
    use crate::deploy::client::read_token;
    let Some(url) = &server.server else {
        return Ok(None);
    };
    let token = read_token(server.token_file.as_deref()).map_err(client_failure)?;
    // The server waits up to its own timeout for rollouts; leave it room to answer.
    let timeout = timeout.unwrap_or(Duration::from_secs(30)) + Duration::from_secs(30);
    ApiClient::new(url, token, server.ca.as_deref(), timeout)
        .map(Some)
        .map_err(client_failure)
}

fn client_failure(e: ClientError) -> Failure {
    if e.is_bad_input() {
        Failure::bad_input(e)
    } else {
        Failure::runtime(e)
    }
}

/// Refuses direct-mode options that mean nothing through the API.
fn direct_only(server: &ServerArgs, cluster: &ClusterArgs, dry_run: bool) -> Result<(), Failure> {
    if server.server.is_none() {
        return Ok(());
    }
    let refused = [
        (
            dry_run,
            "--dry-run (run it directly: it contacts no cluster)",
        ),
        (cluster.force, "--force (the server decides)"),
        (
            cluster.context.is_some(),
            "--context (the server has its cluster)",
        ),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, what)) => Err(Failure::bad_input_msg(format!(
            "{what} cannot be used with --server"
        ))),
        None => Ok(()),
    }
}

pub(super) fn op_failure(e: crate::deploy::ops::OpError) -> Failure {
    if e.bad_input {
        Failure::bad_input(e)
    } else {
        Failure::runtime(e)
    }
}

pub(super) fn settings(config: &ConfigArg, cluster: &ClusterArgs) -> crate::deploy::ops::Settings {
    crate::deploy::ops::Settings {
        cache: crate::deploy::git::default_cache_dir(),
        config_file: config.config.clone(),
        timeout: cluster.timeout.0,
        force: cluster.force,
        skip_image_check: false,
    }
}

pub(super) fn target(cluster: &ClusterArgs) -> crate::deploy::ops::ClusterAccess {
    crate::deploy::ops::ClusterAccess::Kubeconfig {
        context: cluster.context.clone(),
    }
}

/// Prints an outcome as JSON on stdout (keys sorted, as the API answers it), its timing on
/// stderr.
pub(super) fn print_outcome(outcome: &impl serde::Serialize, timing: &Timing) -> CommandResult {
    print_timing(timing);
    let json = serde_json::to_value(outcome).map_err(Failure::runtime)?;
    println!("{json}");
    Ok(Exit::Pass)
}

/// The timing breakdown on stderr, for people; the JSON on stdout has it too.
fn print_timing(timing: &Timing) {
    eprintln!("timing: {}", timing.line());
}

pub(super) async fn deploy(
    args: &DeployArgs,
    track: crate::deploy::rewrite::Track,
) -> CommandResult {
    use crate::deploy::driver::{fetch, plan};
    direct_only(&args.server, &args.cluster, args.dry_run)?;
    let request = args.spec.request(track).map_err(flag_error)?;
    if args.dry_run && request.with_baseline && request.baseline_commit.is_none() {
        return Err(Failure::bad_input_msg(
            "--with-baseline --dry-run contacts no cluster, so it cannot read which release the stable workloads run: give --baseline-commit (and --baseline-tag)",
        ));
    }
    if let Some(api) = client(&args.server, Some(args.cluster.timeout.0))? {
        let outcome = api
            .deploy(&args.service, &request, args.spec.skip_image_check)
            .await
            .map_err(client_failure)?;
        return print_deployed(&outcome);
    }
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let mut settings = settings(&args.config, &args.cluster);
    settings.skip_image_check = args.spec.skip_image_check;
    if !args.dry_run {
        let outcome =
            crate::deploy::ops::deploy(&target(&args.cluster), service, &request, &settings)
                .await
                .map_err(op_failure)?;
        return print_deployed(&outcome);
    }
    let fail = |e: crate::deploy::driver::PrepareError| op_failure(e.into());
    let fetched = fetch(service, &request, &settings.cache).map_err(fail)?;
    let prepared = plan(service, &request, &fetched).map_err(fail)?;
    let mut releases = vec![(track, prepared.clone())];
    if let (true, Some(commit)) = (args.spec.with_baseline, &args.spec.baseline_commit) {
        use crate::deploy::driver::{baseline_request, check_apart};
        let baseline = baseline_request(&prepared, commit.clone(), args.spec.baseline_tag.clone());
        let baseline_fetched = fetch(service, &baseline, &settings.cache).map_err(fail)?;
        let baseline_prepared = plan(service, &baseline, &baseline_fetched).map_err(fail)?;
        check_apart(
            service,
            (&fetched, &prepared),
            (&baseline_fetched, &baseline_prepared),
        )
        .map_err(fail)?;
        releases.push((crate::deploy::rewrite::Track::Baseline, baseline_prepared));
    }
    let mut objects = Vec::new();
    for (track, prepared) in &releases {
        eprintln!(
            "{} {} at {} as {} ({} objects from {} files)",
            track.as_str(),
            service.name,
            prepared.commit,
            prepared.release.version,
            prepared.plan.objects.len(),
            prepared.files
        );
        objects.extend(prepared.plan.objects.iter().cloned());
    }
    for (workload, why) in &prepared.plan.left_alone {
        eprintln!("left alone: {workload}: {why}");
    }
    let yaml = crate::deploy::manifest::to_yaml(&objects).map_err(Failure::runtime)?;
    print!("{yaml}");
    if !yaml.ends_with('\n') {
        println!();
    }
    Ok(Exit::Pass)
}

fn print_deployed(outcome: &Deployed) -> CommandResult {
    for workload in &outcome.left_alone {
        eprintln!("left alone: {workload}");
    }
    if outcome.tag_from == crate::deploy::outcome::TagFrom::Registry {
        eprintln!(
            "tag {} found in the registry for commit {}",
            outcome.version, outcome.commit
        );
    }
    if let Some(baseline) = &outcome.baseline {
        eprintln!(
            "baseline {} at {} (tag from {})",
            baseline.version,
            baseline.commit,
            baseline.tag_from.as_str()
        );
    }
    print_outcome(outcome, &outcome.timing_ms)
}

/// Runs one cluster operation on the service `args` names: through the API at `--server`
/// (`via_api`), else directly with its config and cluster (`op`).
pub(super) async fn service_op<T>(
    args: &ServiceArgs,
    via_api: impl AsyncFnOnce(&ApiClient, &str) -> Result<T, ClientError>,
    op: impl AsyncFnOnce(
        &crate::deploy::ops::ClusterAccess,
        &crate::deploy::config::ServiceConfig,
        &crate::deploy::ops::Settings,
    ) -> Result<T, crate::deploy::ops::OpError>,
) -> Result<T, Failure> {
    direct_only(&args.server, &args.cluster, false)?;
    if let Some(api) = client(&args.server, Some(args.cluster.timeout.0))? {
        return via_api(&api, &args.service).await.map_err(client_failure);
    }
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    op(
        &target(&args.cluster),
        service,
        &settings(&args.config, &args.cluster),
    )
    .await
    .map_err(op_failure)
}

pub(super) async fn rollback(args: &ServiceArgs) -> CommandResult {
    let outcome = service_op(args, ApiClient::rollback, crate::deploy::ops::rollback).await?;
    print_outcome(&outcome, &outcome.timing_ms)
}

pub(super) async fn promote(args: &ServiceArgs) -> CommandResult {
    let outcome = service_op(args, ApiClient::promote, crate::deploy::ops::promote).await?;
    print_outcome(&outcome, &outcome.timing_ms)
}

pub(super) async fn deploy_status(args: &ServiceArgs) -> CommandResult {
    let outcome = service_op(args, ApiClient::status, crate::deploy::ops::status).await?;
    print_timing(&outcome.timing_ms);
    for s in &outcome.workloads {
        println!(
            "{}\t{}\t{}\t{}\tready {}",
            s.object,
            s.track,
            s.version.as_deref().unwrap_or("-"),
            s.commit.as_deref().unwrap_or("-"),
            s.ready
        );
    }
    Ok(Exit::Pass)
}

pub(super) async fn deploy_tags(args: &TagsArgs) -> CommandResult {
    let outcome = match client(&args.server, None)? {
        Some(api) => api.tags(&args.service).await.map_err(client_failure)?,
        None => {
            let config = load_deploy_config(&args.config)?;
            let service = config.service(&args.service).map_err(Failure::bad_input)?;
            let settings = crate::deploy::ops::Settings {
                cache: crate::deploy::git::default_cache_dir(),
                config_file: args.config.config.clone(),
                timeout: Duration::from_secs(30),
                force: false,
                skip_image_check: false,
            };
            crate::deploy::ops::tags(service, &settings)
                .await
                .map_err(op_failure)?
        }
    };
    print_timing(&outcome.timing_ms);
    for (image, tags) in &outcome.images {
        for tag in tags {
            println!("{image}\t{tag}");
        }
    }
    Ok(Exit::Pass)
}

pub(super) async fn serve(args: &ServeArgs) -> CommandResult {
    let config = load_deploy_config(&args.config)?;
    let api = crate::deploy::api::Api::new(
        config,
        target(&args.cluster),
        settings(&args.config, &args.cluster),
    )
    .map_err(Failure::bad_input_msg)?
    .with_limits(crate::deploy::api::ApiLimits {
        max_body: args.max_body.bytes(),
        auth_failures: args.auth_failures,
        auth_window: args.auth_window.0,
        ..crate::deploy::api::ApiLimits::default()
    });
    if args.auth_window.0.is_zero() && args.auth_failures > 0 {
        return Err(Failure::bad_input_msg(
            "--auth-window must be at least 1 second (or turn the limit off with --auth-failures 0)".to_owned(),
        ));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(
            crate::tls::server_config(cert, key).map_err(Failure::bad_input)?,
        )),
        _ => None,
    };
    let listener = crate::session::testbed::bind("--listen", args.listen).await?;
    let addr = listener.local_addr().map_err(Failure::bad_input)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("nprt deploy API listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    // On Ctrl-C or SIGTERM: nothing more is accepted, operations in flight may finish.
    crate::deploy::api::serve(listener, std::sync::Arc::new(api), tls, shutdown_signal())
        .await
        .map_err(Failure::runtime)?;
    Ok(Exit::Pass)
}

pub(super) async fn deploy_show(args: &TagsArgs) -> CommandResult {
    let shown = match client(&args.server, None)? {
        Some(api) => api.settings(&args.service).await.map_err(client_failure)?,
        None => {
            let config = load_deploy_config(&args.config)?;
            let service = config.service(&args.service).map_err(Failure::bad_input)?;
            crate::deploy::ops::show(service)
        }
    };
    // Through a Value: keys sorted, as the API answers them.
    let json = serde_json::to_value(&shown).map_err(Failure::runtime)?;
    let text = serde_json::to_string_pretty(&json).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(Exit::Pass)
}
