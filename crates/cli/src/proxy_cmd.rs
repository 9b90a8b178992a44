//! `sigil proxy run --config FILE`: the mTLS proxy beside a workload (its flags and run loop
//! are `sigil_proxy::cli`, shared with the proxy-only `sigil-proxy` binary).

use clap::Subcommand;
use sigil_proxy::cli::RunArgs;

#[derive(Debug, Subcommand)]
pub enum ProxyCmd {
    /// Runs the proxy: identity from the agent's Workload API, policy from its MeshConfig
    /// service, mTLS on every inbound port and upstream of the config.
    Run(RunArgs),
    /// Every proxy the agents report: its workload, identity, configuration revision versus
    /// the server's, SVID expiry and last error (like `istioctl proxy-status`).
    Status(crate::status_cmd::ProxyStatusArgs),
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

pub async fn run(cmd: ProxyCmd) -> Result<(), (u8, anyhow::Error)> {
    match cmd {
        ProxyCmd::Run(a) => sigil_proxy::cli::run(a).await,
        ProxyCmd::Status(a) => crate::status_cmd::proxy_status(a).await,
    }
}
