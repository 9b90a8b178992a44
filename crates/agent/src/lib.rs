//! The Sigil node agent: attests to the server, keeps the SVIDs of the entries it may serve,
//! and serves them to local workloads over the SPIFFE Workload API on a Unix socket.

pub mod attestor;
pub mod cache;
pub mod client;
pub mod config;
pub mod jwt;
pub mod manager;
pub mod plan;
pub mod store;
pub mod workload_api;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::cache::CacheRx;
use crate::config::AgentConfig;
use crate::manager::{Fatal, Manager};

/// A running agent.
pub struct Bound {
    pub socket_path: PathBuf,
    pub manager: Arc<Manager>,
    pub cache: CacheRx,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Bound {
    /// Waits until a task ends with an error (a fatal refusal by the server, a socket failure).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        while !self.tasks.is_empty() {
            let (r, _, rest) = futures::future::select_all(std::mem::take(&mut self.tasks)).await;
            self.tasks = rest;
            r.context("agent task panicked")??;
        }
        Ok(())
    }

    /// Stops serving and syncing; the persisted state stays for the next start.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Loads the persisted state, attests (or reuses the stored SVID), binds the Workload API
/// socket and starts the sync loop.
pub async fn build(cfg: AgentConfig) -> anyhow::Result<Bound> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "cannot create the data dir {} (check --data-dir)",
            cfg.data_dir.display()
        )
    })?;
    std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to mode 0700", cfg.data_dir.display()))?;
    let socket_path = cfg.socket_path.clone();
    let server = cfg.server_address.clone();
    let (manager, cache) = Manager::load(cfg)?;
    manager.publish_initial().await;

    // First contact: a refusal is fatal; an unreachable server is fatal only without a stored
    // SVID (nothing to serve, nothing to prove who we are later).
    if let Err(e) = manager.sync().await {
        if e.downcast_ref::<Fatal>().is_some() || manager.agent_id().await.is_none() {
            return Err(e.context(format!(
                "the agent cannot start against the server at {server}"
            )));
        }
        warn!(error = %format!("{e:#}"), "server unreachable at start; serving the cached SVIDs");
    }

    let listener = workload_api::bind_workload_socket(&socket_path).with_context(|| {
        format!(
            "cannot bind the Workload API socket {}",
            socket_path.display()
        )
    })?;
    let attestor: Arc<dyn attestor::WorkloadAttestor> = Arc::new(attestor::UnixAttestor::new());
    let jwt: Arc<dyn jwt::JwtSource> = Arc::new(jwt::ServerJwtSource::new(manager.clone()));
    let api = workload_api::WorkloadApi::new(cache.clone(), attestor, jwt);
    let health = workload_api::health_reporter().await;
    workload_api::set_serving(&health, manager.agent_id().await.is_some()).await;

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut rx = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        workload_api::serve(listener, api, &health, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
        .context("the Workload API server failed")
    }));
    tasks.push(tokio::spawn(manager.clone().run(shutdown_rx)));
    info!(
        agent = manager.agent_id().await.unwrap_or_default(),
        socket = %socket_path.display(),
        "sigil agent ready"
    );
    Ok(Bound {
        socket_path,
        manager,
        cache,
        shutdown,
        tasks,
    })
}
