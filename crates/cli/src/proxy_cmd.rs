//! `sigil proxy run --config FILE`: the mTLS proxy beside a workload.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sigil_proxy::admin::LogControl;
use sigil_proxy::config::ProxyConfig;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::EXIT_CONFIG;

#[derive(Debug, Subcommand)]
pub enum ProxyCmd {
    /// Runs the proxy: identity from the agent's Workload API, policy from its MeshConfig
    /// service, mTLS on every inbound port and upstream of the config.
    Run(ProxyRunArgs),
    /// Every proxy the agents report: its workload, identity, configuration revision versus
    /// the server's, SVID expiry and last error (like `istioctl proxy-status`).
    Status(crate::status_cmd::ProxyStatusArgs),
}

#[derive(Debug, Args)]
pub struct ProxyRunArgs {
    /// The proxy's YAML config (workload, inbound ports, outbound upstreams, admin, stats).
    #[arg(long)]
    config: PathBuf,
    /// The agent's Workload API socket (path or unix:///path); overrides `workloadApi` of the
    /// config and $SPIFFE_ENDPOINT_SOCKET.
    #[arg(long = "workload-api")]
    workload_api: Option<String>,
    /// Log filter (error, warn, info, debug, trace or a tracing directive); changeable at
    /// runtime with POST /logging?level=… on the admin endpoint.
    #[arg(long = "log-level", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text")]
    log_format: String,
    /// Threads that run connections (default: one per CPU). One thread is what a sidecar
    /// beside a small service needs and what `bench/run` measures.
    #[arg(long = "worker-threads", env = "SIGIL_PROXY_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

impl ProxyCmd {
    /// The runtime's worker threads this command asks for (`None`: tokio's default).
    pub fn worker_threads(&self) -> Option<usize> {
        match self {
            ProxyCmd::Run(a) => a.worker_threads.map(usize::from),
            ProxyCmd::Status(_) => None,
        }
    }
}

/// Logs to stderr through a reloadable filter; returns the handle for `/logging`.
fn init_logs(level: &str, format: &str) -> anyhow::Result<LogControl> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("--log-level {level:?}: {e}"))?;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        "json" => registry.with(fmt.json()).try_init()?,
        "text" => registry.with(fmt).try_init()?,
        f => anyhow::bail!("--log-format {f:?}: use text or json"),
    }
    Ok(LogControl::from_reload(handle))
}

pub async fn run(cmd: ProxyCmd) -> Result<(), (u8, anyhow::Error)> {
    match cmd {
        ProxyCmd::Run(a) => proxy_run(a).await,
        ProxyCmd::Status(a) => crate::status_cmd::proxy_status(a).await,
    }
}

async fn proxy_run(a: ProxyRunArgs) -> Result<(), (u8, anyhow::Error)> {
    let cfg_err = |e: anyhow::Error| (EXIT_CONFIG, e);
    let log = init_logs(&a.log_level, &a.log_format).map_err(cfg_err)?;
    let mut cfg = ProxyConfig::load(&a.config).map_err(|e| cfg_err(e.into()))?;
    if a.workload_api.is_some() {
        cfg.workload_api = a.workload_api;
    }
    let mut bound = sigil_proxy::run::build(cfg, Some(log)).await.map_err(|e| {
        let config = e
            .downcast_ref::<sigil_proxy::run::StartError>()
            .is_some_and(|s| s.is_config());
        (if config { EXIT_CONFIG } else { 1 }, e)
    })?;
    let failed = tokio::select! {
        r = bound.wait() => Some(r),
        _ = crate::shutdown_signal() => None,
    };
    match failed {
        Some(r) => {
            bound.shutdown().await;
            r.map_err(|e| (1, e))
        }
        None => {
            tracing::info!("shutting down: draining open connections");
            bound.shutdown().await;
            Ok(())
        }
    }
}
