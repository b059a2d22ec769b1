//! The deploy driver's commands: `ls`, `show`, `deploy`, `canary`, `rollback`, `promote`,
//! `status`, `tags` and `serve`, on top of [`crate::deploy`].

use super::*;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
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
}

#[derive(Debug, Args)]
pub(super) struct ClusterArgs {
    /// The kubeconfig context to use (default: the current context; in a pod, its service account).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Seconds to wait for rollouts and deletions.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
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
}

#[derive(Debug, Args)]
pub(super) struct DeployArgs {
    /// The service, as named in deploy.toml.
    service: String,
    /// The commit (or branch, or tag) whose manifests to deploy; default: the branch head.
    #[arg(long, value_name = "C")]
    commit: Option<String>,
    /// The image tag to deploy instead of the one tag_format gives for the commit.
    #[arg(long, value_name = "T")]
    tag: Option<String>,
    /// How the canary meets traffic: shadow (mirrored only) or shared (takes user traffic).
    #[arg(long, value_name = "shadow|shared")]
    exposure: Option<crate::deploy::Exposure>,
    /// Canary this workload even if no Service selects it; repeat for more. Only the named
    /// workloads get a canary.
    #[arg(long, value_name = "NAME")]
    workload: Vec<String>,
    /// Print the rewritten objects as YAML instead of applying them; contacts no cluster.
    #[arg(long)]
    dry_run: bool,
    /// Apply without checking that the registry has every image tag the release uses.
    #[arg(long)]
    skip_image_check: bool,
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    cluster: ClusterArgs,
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
}

pub(super) fn load_deploy_config(arg: &ConfigArg) -> Result<crate::deploy::DeployConfig, Failure> {
    crate::deploy::DeployConfig::load(&arg.config).map_err(Failure::bad_input)
}

pub(super) fn deploy_ls(args: &LsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    for service in config.services.values() {
        println!(
            "{}\t{}\t{}\t{}/\tnamespace={}\texposure={}",
            service.name,
            service.repository,
            service.branch,
            service.manifests,
            service
                .namespace
                .as_deref()
                .unwrap_or("(kubeconfig default)"),
            match service.exposure {
                crate::deploy::Exposure::Shadow => "shadow",
                crate::deploy::Exposure::Shared => "shared",
            }
        );
    }
    Ok(Exit::Pass)
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
        timeout: Duration::from_secs(cluster.timeout),
        force: cluster.force,
        skip_image_check: false,
    }
}

pub(super) fn target(cluster: &ClusterArgs) -> crate::deploy::ops::Target {
    crate::deploy::ops::Target::Kubeconfig {
        context: cluster.context.clone(),
    }
}

pub(super) fn print_outcome(outcome: &serde_json::Value) -> Outcome {
    println!("{outcome}");
    Ok(Exit::Pass)
}

pub(super) async fn deploy(args: &DeployArgs, track: crate::deploy::rewrite::Track) -> Outcome {
    use crate::deploy::driver::{prepare, Request};
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    if let Some(tag) = &args.tag {
        if !crate::deploy::image::is_tag(tag) {
            return Err(Failure::bad_input_msg(format!(
                "--tag `{tag}` is not a valid image tag"
            )));
        }
    }
    let request = Request {
        track,
        commit: args.commit.clone(),
        tag: args.tag.clone(),
        exposure: args.exposure,
        workloads: args.workload.clone(),
    };
    let mut settings = settings(&args.config, &args.cluster);
    settings.skip_image_check = args.skip_image_check;
    if !args.dry_run {
        let outcome =
            crate::deploy::ops::deploy(&target(&args.cluster), service, &request, &settings)
                .await
                .map_err(op_failure)?;
        for workload in outcome["left_alone"].as_array().into_iter().flatten() {
            eprintln!("left alone: {}", workload.as_str().unwrap_or(""));
        }
        return print_outcome(&outcome);
    }
    let prepared = prepare(service, &request, &settings.cache).map_err(|e| op_failure(e.into()))?;
    eprintln!(
        "{} {} at {} as {} ({} objects from {} files)",
        track.as_str(),
        service.name,
        prepared.commit,
        prepared.release.version,
        prepared.plan.objects.len(),
        prepared.files
    );
    for (workload, why) in &prepared.plan.left_alone {
        eprintln!("left alone: {workload}: {why}");
    }
    let yaml =
        crate::deploy::manifest::to_yaml(&prepared.plan.objects).map_err(Failure::runtime)?;
    print!("{yaml}");
    if !yaml.ends_with('\n') {
        println!();
    }
    Ok(Exit::Pass)
}

/// Runs one cluster operation on the service `args` names, with its config and cluster.
pub(super) async fn service_op(
    args: &ServiceArgs,
    op: impl AsyncFnOnce(
        &crate::deploy::ops::Target,
        &crate::deploy::config::ServiceConfig,
        &crate::deploy::ops::Settings,
    ) -> Result<serde_json::Value, crate::deploy::ops::OpError>,
) -> Result<serde_json::Value, Failure> {
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

pub(super) async fn rollback(args: &ServiceArgs) -> Outcome {
    print_outcome(&service_op(args, crate::deploy::ops::rollback).await?)
}

pub(super) async fn promote(args: &ServiceArgs) -> Outcome {
    print_outcome(&service_op(args, crate::deploy::ops::promote).await?)
}

pub(super) async fn deploy_status(args: &ServiceArgs) -> Outcome {
    let outcome = service_op(args, crate::deploy::ops::status).await?;
    for s in outcome["workloads"].as_array().into_iter().flatten() {
        let text = |key: &str| s[key].as_str().unwrap_or("-").to_owned();
        println!(
            "{}\t{}\t{}\t{}\tready {}",
            text("object"),
            text("track"),
            text("version"),
            text("commit"),
            text("ready")
        );
    }
    Ok(Exit::Pass)
}

pub(super) async fn deploy_tags(args: &TagsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let settings = crate::deploy::ops::Settings {
        cache: crate::deploy::git::default_cache_dir(),
        config_file: args.config.config.clone(),
        timeout: Duration::from_secs(30),
        force: false,
        skip_image_check: false,
    };
    let outcome = crate::deploy::ops::tags(service, &settings)
        .await
        .map_err(op_failure)?;
    for (image, tags) in outcome["images"].as_object().into_iter().flatten() {
        for tag in tags.as_array().into_iter().flatten() {
            println!("{image}\t{}", tag.as_str().unwrap_or(""));
        }
    }
    Ok(Exit::Pass)
}

pub(super) async fn serve(args: &ServeArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let api = crate::deploy::api::Api::new(
        config,
        target(&args.cluster),
        settings(&args.config, &args.cluster),
    )
    .map_err(Failure::bad_input_msg)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr().map_err(Failure::runtime)?;
    println!("nprt deploy API listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tokio::select! {
        result = crate::deploy::api::serve(listener, std::sync::Arc::new(api)) => result.map_err(Failure::runtime)?,
        () = shutdown_signal() => {}
    }
    Ok(Exit::Pass)
}

pub(super) fn deploy_show(args: &TagsArgs) -> Outcome {
    let config = load_deploy_config(&args.config)?;
    let service = config.service(&args.service).map_err(Failure::bad_input)?;
    let secret = |s: &Option<crate::deploy::SecretRef>| match s {
        Some(crate::deploy::SecretRef::Env(var)) => format!("env {var}"),
        Some(crate::deploy::SecretRef::File(path)) => format!("file {}", path.display()),
        None => "none".to_owned(),
    };
    let outcome = serde_json::json!({
        "service": service.name,
        "repository": service.repository,
        "branch": service.branch,
        "manifests": service.manifests,
        "namespace": service.namespace,
        "exposure": match service.exposure {
            crate::deploy::Exposure::Shadow => "shadow",
            crate::deploy::Exposure::Shared => "shared",
        },
        "tag_format": service.tag_format,
        "commit_length": service.commit_length,
        "registry_username": service.registry.username,
        "registry_password": secret(&service.registry.password),
        "api_token": secret(&service.api_token),
    });
    let text = serde_json::to_string_pretty(&outcome).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(Exit::Pass)
}
