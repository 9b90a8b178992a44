//! The proxy's command line, shared by `sigil proxy run` and the proxy-only `sigil-proxy`
//! binary (the same flags, the same exit codes: 0 stopped by a signal, 1 failed while running,
//! 64 bad configuration or flags).
//!
//! `sigil-proxy` links only this crate and what it uses, so a sidecar's resident text is the
//! proxy's, not the server's, datastore's and CLI's (bench/RESULTS.md measures both).

use std::path::PathBuf;

use clap::Args;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::admin::LogControl;
use crate::config::ProxyConfig;

/// Exit code for a configuration or flag the user must fix (sysexits' EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The proxy's YAML config (workload, inbound ports, outbound upstreams, admin, stats).
    #[arg(long)]
    pub config: PathBuf,
    /// The agent's Workload API socket (path or unix:///path); overrides `workloadApi` of the
    /// config and $SPIFFE_ENDPOINT_SOCKET.
    #[arg(long = "workload-api")]
    pub workload_api: Option<String>,
    /// Log filter (error, warn, info, debug, trace or a tracing directive); changeable at
    /// runtime with POST /logging?level=… on the admin endpoint.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text")]
    pub log_format: String,
    /// Threads that run connections (default: one per CPU). One thread is what a sidecar
    /// beside a small service needs and what `bench/run` measures.
    #[arg(long = "worker-threads", env = "SIGIL_PROXY_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

impl RunArgs {
    /// The tokio runtime these flags ask for: multi-thread, `--worker-threads` workers.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.worker_threads {
            b.worker_threads(usize::from(n));
        }
        b.enable_all().build()
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

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the proxy until a signal (drains open connections) or a fatal error. The error comes
/// with its exit code.
pub async fn run(a: RunArgs) -> Result<(), (u8, anyhow::Error)> {
    let cfg_err = |e: anyhow::Error| (EXIT_CONFIG, e);
    let log = init_logs(&a.log_level, &a.log_format).map_err(cfg_err)?;
    let mut cfg = ProxyConfig::load(&a.config).map_err(|e| cfg_err(e.into()))?;
    if a.workload_api.is_some() {
        cfg.workload_api = a.workload_api;
    }
    let mut bound = crate::run::build(cfg, Some(log)).await.map_err(|e| {
        let config = e
            .downcast_ref::<crate::run::StartError>()
            .is_some_and(|s| s.is_config());
        (if config { EXIT_CONFIG } else { 1 }, e)
    })?;
    let failed = tokio::select! {
        r = bound.wait() => Some(r),
        _ = shutdown_signal() => None,
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
