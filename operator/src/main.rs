//! `scs-operator`: one binary for the controllers, CRD generation, offline rendering and the
//! GPU device plugin.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use scs_operator::config::OperatorConfig;
use scs_operator::validate::cel::CrdSchemas;
use scs_operator::{api, plugin, render};

#[derive(Parser)]
#[command(name = "scs-operator", version, about = "Secure container service control plane for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster of the current kubeconfig or in-cluster config.
    Run {
        /// Operator configuration file (defaults apply without one).
        #[arg(long, value_name = "FILE", env = "SCS_CONFIG")]
        config: Option<PathBuf>,
        /// Address of the /healthz and /readyz endpoints.
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080", env = "SCS_HEALTH_ADDR")]
        health_addr: std::net::SocketAddr,
        /// Reconcile only while holding the Lease (run several replicas safely).
        #[arg(long, env = "SCS_LEADER_ELECT")]
        leader_elect: bool,
        /// Name of the Lease.
        #[arg(long, default_value = "scs-operator")]
        lease_name: String,
        /// Namespace of the Lease (the pod's namespace in a cluster).
        #[arg(long, default_value = "scs-system", env = "POD_NAMESPACE")]
        lease_namespace: String,
        /// Seconds the Lease stays valid without renewal: how long a standby waits for a dead leader.
        #[arg(long, default_value_t = 15)]
        lease_duration: u64,
        /// Log format: `text` or `json` (one object per line).
        #[arg(long, default_value = "text", env = "SCS_LOG_FORMAT", value_parser = ["text", "json"])]
        log_format: String,
        /// Seconds in-flight reconciles get to finish after SIGTERM before the process exits anyway.
        #[arg(long, default_value_t = 30)]
        shutdown_timeout: u64,
    },
    /// Print the CustomResourceDefinitions as multi-document YAML (or write one file per CRD).
    Crdgen {
        /// Write `<group>_<plural>.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Validate Tenants, SdnNetworks and SecureWorkloads offline and print every object the
    /// operator would create for them.
    Render {
        /// Files or directories of YAML manifests; `-` reads standard input.
        #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Also read subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Operator configuration file (defaults apply without one).
        #[arg(long, value_name = "FILE", env = "SCS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show a Tenant (quota used/hard, namespaces, conditions) or a SecureWorkload (phase,
    /// replicas, revision, conditions): `status tenant/acme`, `status swl/web -n acme-prod`.
    Status {
        /// `tenant/NAME` (`tn/NAME`) or `secureworkload/NAME` (`swl/NAME`).
        target: String,
        /// Namespace of a SecureWorkload (default: the kubeconfig context's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// List the recorded revisions of a SecureWorkload's spec with what each changed.
    History {
        /// `swl/NAME`.
        target: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Roll a SecureWorkload back to a recorded revision (sets the `scs.dev/rollback-to`
    /// annotation; the operator copies that revision's spec back). Under GitOps, roll back in Git.
    Rollback {
        /// `swl/NAME`.
        target: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Revision to go back to (default: the one before the current).
        #[arg(long, value_name = "N")]
        to_revision: Option<i64>,
    },
    /// Init container of pre-authorized pods: ask the authz-server for this pod's grants and wait
    /// until they are in place.
    Authorize {
        /// URL of the authz-server.
        #[arg(long, env = "SCS_AUTHZ_URL")]
        url: String,
        /// The pod's projected ServiceAccount token.
        #[arg(long, env = "SCS_AUTHZ_TOKEN_FILE", default_value = "/var/run/secrets/scs.dev/authz/token")]
        token_file: PathBuf,
        /// CA certificate(s) to verify an `https://` server with.
        #[arg(long, env = "SCS_AUTHZ_CA_FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Pod pre-authorization: `authz reset pg/NAME` closes a PermissionGroup's circuit breaker.
    Authz {
        #[command(subcommand)]
        action: AuthzAction,
    },
    /// Serve pre-authorization: grant pods their PermissionGroups before they start, revoke when
    /// they go.
    AuthzServer {
        /// Operator configuration file (providers and token audience).
        #[arg(long, value_name = "FILE", env = "SCS_CONFIG")]
        config: Option<PathBuf>,
        /// Address to serve /v1/authorize, /healthz and /metrics on.
        #[arg(long, default_value = "0.0.0.0:8443", env = "SCS_AUTHZ_ADDR")]
        addr: std::net::SocketAddr,
        /// Namespace of records, breakers and provider Secrets (the server's own).
        #[arg(long, default_value = "scs-system", env = "POD_NAMESPACE")]
        namespace: String,
        /// Accept calls from any address (only when the server runs outside the pod network).
        #[arg(long)]
        no_peer_ip_check: bool,
        /// Seconds between sweeps for grants of pods that are gone.
        #[arg(long, default_value_t = 300)]
        sweep_interval: u64,
        /// Log format: `text` or `json`.
        #[arg(long, default_value = "text", env = "SCS_LOG_FORMAT", value_parser = ["text", "json"])]
        log_format: String,
    },
    /// Run the GPU device plugin on a node (a DaemonSet): advertise NVIDIA GPUs or Kunlun XPUs to
    /// the kubelet, as host device nodes or as VFIO devices for Kata VMs.
    DevicePlugin(scs_operator::device_plugin::Args),
}

#[derive(Subcommand)]
enum AuthzAction {
    /// Let a PermissionGroup's providers be asked again after its breaker opened (sets the
    /// `scs.dev/authz-reset` annotation to the current time).
    Reset {
        /// `pg/NAME`.
        target: String,
        /// Namespace (default: the kubeconfig context's).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
}

/// Parses the command line; installed as `kubectl-scs` the binary is a kubectl plugin and names
/// itself `kubectl scs` in help and errors.
fn parse_cli(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let name = args.first().map_or("scs-operator", |argv0| plugin::command_name(argv0));
    let command = Cli::command().name(name).bin_name(name);
    command.try_get_matches_from(args).and_then(|matches| Cli::from_arg_matches(&matches))
}

fn main() -> ExitCode {
    scs_operator::allocator::limit_fragmentation();
    let cli = parse_cli(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Run {
            config,
            health_addr,
            leader_elect,
            lease_name,
            lease_namespace,
            lease_duration,
            log_format,
            shutdown_timeout,
        } => {
            let election = leader_elect.then(|| scs_operator::controller::leader::Election {
                lease: lease_name,
                namespace: lease_namespace,
                identity: std::env::var("POD_NAME").unwrap_or_else(|_| format!("scs-operator-{}", std::process::id())),
                duration: std::time::Duration::from_secs(lease_duration),
                grace: std::time::Duration::from_secs((lease_duration / 3).max(2)),
            });
            init_logging(&log_format);
            run_controllers(config, health_addr, election, std::time::Duration::from_secs(shutdown_timeout))
        }
        Command::DevicePlugin(args) => {
            init_logging(&args.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(scs_operator::device_plugin::run(args, wait_for_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Authorize { url, token_file, ca_file } => {
            let claimed = scs_operator::authz::server::AuthorizeRequest {
                namespace: std::env::var("POD_NAMESPACE").ok(),
                name: std::env::var("POD_NAME").ok(),
                uid: std::env::var("POD_UID").ok(),
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(scs_operator::authz::client::authorize(
                &url,
                &token_file,
                ca_file.as_deref(),
                claimed,
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::AuthzServer { config, addr, namespace, no_peer_ip_check, sweep_interval, log_format } => {
            init_logging(&log_format);
            let config_path = config.clone();
            let config = match load_config(config) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let settings = scs_operator::authz::server::Settings {
                config_path,
                address: addr,
                namespace,
                replica: std::env::var("POD_NAME").unwrap_or_else(|_| format!("scs-authz-{}", std::process::id())),
                check_peer_ip: !no_peer_ip_check,
                sweep_interval: std::time::Duration::from_secs(sweep_interval.max(10)),
                tls_names: config.pre_authorization.tls_names(),
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let result = runtime.block_on(async {
                let client = kube::Client::try_default().await?;
                scs_operator::authz::server::run(client, config, settings, wait_for_signal()).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Authz { action: AuthzAction::Reset { target, namespace } } => day2(|client| async move {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            Ok(scs_operator::authz::reset::reset(client, &target, namespace, now).await?)
        }),
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Render { paths, recursive, config } => run_render(&paths, recursive, config),
        Command::Status { target, namespace } => {
            day2(|client| async move { Ok(plugin::status(client, &plugin::parse_target(&target)?, namespace).await?) })
        }
        Command::History { target, namespace } => day2(|client| async move {
            let name = workload_name(&target)?;
            Ok(plugin::history(client, &name, namespace).await?)
        }),
        Command::Rollback { target, namespace, to_revision } => day2(|client| async move {
            let name = workload_name(&target)?;
            plugin::rollback(client, &name, namespace, to_revision).await
        }),
    }
}

type Day2Result = Result<String, Box<dyn std::error::Error>>;

/// Runs one day-2 command against the current kube context and prints its output.
fn day2<F, Fut>(command: F) -> ExitCode
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = Day2Result>,
{
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let client = kube::Client::try_default().await?;
        command(client).await
    });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The name in `swl/NAME` (history and rollback are about SecureWorkloads only).
fn workload_name(target: &str) -> Result<String, String> {
    match plugin::parse_target(target)? {
        plugin::Target::Workload(name) => Ok(name),
        plugin::Target::Tenant(_) => Err(format!("{target}: history and rollback are for SecureWorkloads (swl/NAME)")),
    }
}

fn load_config(path: Option<PathBuf>) -> Result<OperatorConfig, ExitCode> {
    path.map(|path| OperatorConfig::from_file(&path)).transpose().map(Option::unwrap_or_default).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn run_controllers(
    config: Option<PathBuf>,
    health_addr: std::net::SocketAddr,
    election: Option<scs_operator::controller::leader::Election>,
    shutdown_timeout: std::time::Duration,
) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let client = match client(&config.api_pressure).await {
            Ok(client) => client,
            Err(e) => {
                eprintln!("error: cannot reach a Kubernetes API server: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(election) = election else {
            scs_operator::controller::run(client, config, Some(health_addr), shutdown_signal(shutdown_timeout)).await;
            return ExitCode::SUCCESS;
        };
        use scs_operator::controller::leader::{Outcome, run_elected};
        match run_elected(client, config, Some(health_addr), election, shutdown_signal(shutdown_timeout)).await {
            Ok(Outcome::Shutdown) => ExitCode::SUCCESS,
            Ok(Outcome::LostLeadership) => {
                eprintln!("error: lost the lease to another replica; exiting to restart as a standby");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: leader election: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A client for the current kube context or the in-cluster config, counting its requests and
/// paced as configured.
async fn client(pressure: &scs_operator::config::ApiPressure) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    scs_operator::controller::client::build(config, pressure)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
    // Colours only on a terminal: in a container they end up as escape codes in `kubectl logs`
    // and in log collectors.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C; from then on the process has
/// `timeout` to finish its in-flight work before it exits regardless.
async fn shutdown_signal(timeout: std::time::Duration) {
    wait_for_signal().await;
    tracing::info!(?timeout, "shutting down: finishing in-flight reconciles");
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        eprintln!("error: in-flight work did not finish within {timeout:?} of SIGTERM; exiting");
        std::process::exit(1);
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn crdgen(out_dir: Option<PathBuf>) -> ExitCode {
    for crd in api::crds() {
        let yaml = format!("---\n{}", serde_yaml::to_string(&crd).expect("CRDs serialize"));
        match &out_dir {
            None => print!("{yaml}"),
            Some(dir) => {
                let file = dir.join(format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural));
                if let Err(e) = std::fs::write(&file, yaml) {
                    eprintln!("error: {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn run_render(paths: &[PathBuf], recursive: bool, config: Option<PathBuf>) -> ExitCode {
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let schemas = CrdSchemas::new();
    let result = render::read_documents(paths, recursive)
        .and_then(|documents| render::load(documents, &schemas))
        .and_then(|loaded| render::render(&loaded, &config).map(|children| (loaded, children)));
    match result {
        Ok((loaded, children)) => {
            for (source, what) in &loaded.skipped {
                eprintln!("warning: {source}: skipped {what}: not an {} resource", api::GROUP);
            }
            print!("{}", render::to_yaml(&children));
            let catalog = &loaded.catalog;
            eprintln!(
                "rendered {} objects from {} Tenant(s), {} SdnNetwork(s), {} SecureWorkload(s)",
                children.len(),
                catalog.tenants.len(),
                catalog.networks.len(),
                catalog.workloads.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_cli(args.iter().map(Into::into).collect())
    }

    #[test]
    fn the_plugin_offers_the_same_subcommands() {
        let cli =
            parse(&["/usr/local/bin/kubectl-scs", "rollback", "swl/web", "-n", "acme-prod", "--to-revision", "2"]);
        match cli.unwrap().command {
            Command::Rollback { target, namespace, to_revision } => {
                assert_eq!(
                    (target.as_str(), namespace.as_deref(), to_revision),
                    ("swl/web", Some("acme-prod"), Some(2))
                );
            }
            _ => panic!("not rollback"),
        }
        assert!(matches!(parse(&["kubectl-scs", "status", "tenant/acme"]).unwrap().command, Command::Status { .. }));
        assert!(matches!(parse(&["scs-operator", "history", "swl/web"]).unwrap().command, Command::History { .. }));
        assert!(matches!(parse(&["kubectl-scs", "render", "-f", "x.yaml"]).unwrap().command, Command::Render { .. }));
        // Help and errors name the command the way it was invoked.
        let help = parse(&["kubectl-scs", "--help"]).err().unwrap().to_string();
        assert!(help.contains("Usage: kubectl scs <COMMAND>"), "{help}");
        let help = parse(&["scs-operator", "--help"]).err().unwrap().to_string();
        assert!(help.contains("Usage: scs-operator <COMMAND>"), "{help}");
    }
}
