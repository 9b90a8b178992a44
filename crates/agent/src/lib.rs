//! The Sigil node agent: attests to the server, keeps the SVIDs of the entries it may serve,
//! and serves them to local workloads over the SPIFFE Workload API on a Unix socket.

pub mod admin;
pub mod attestor;
pub mod cache;
pub mod client;
pub mod config;
pub mod jwt;
pub mod manager;
pub mod mesh_config;
pub mod plan;
pub mod proxy_status;
pub mod secret_files;
pub mod store;
pub mod workload_api;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sigil_server::tasks::Tasks;
use tracing::{info, warn};

use crate::cache::CacheRx;
use crate::config::AgentConfig;
use crate::manager::{Fatal, Manager};

/// A running agent.
pub struct Bound {
    pub socket_path: PathBuf,
    /// The private admin socket (`sigil entry explain`).
    pub admin_socket_path: PathBuf,
    pub manager: Arc<Manager>,
    pub cache: CacheRx,
    /// The mesh configuration this agent serves to local proxies.
    pub mesh: Arc<mesh_config::MeshConfigSync>,
    /// The proxies reporting on this node.
    pub proxies: Arc<proxy_status::ProxyHub>,
    tasks: Tasks,
}

impl Bound {
    /// Waits until a task ends with an error (a fatal refusal by the server, a socket failure).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        self.tasks.wait().await
    }

    /// Stops serving and syncing; the persisted state stays for the next start.
    pub async fn shutdown(self) {
        self.tasks.stop().await;
        let _ = std::fs::remove_file(&self.socket_path);
        let _ = std::fs::remove_file(&self.admin_socket_path);
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
    let admin_socket_path = cfg.admin_socket_path.clone();
    let server = cfg.server_address.clone();
    let mesh = mesh_config::MeshConfigSync::load(&cfg.data_dir)?;
    let secret_files = cfg.secret_files.clone();
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
    let admin_listener = admin::bind(&admin_socket_path)?;
    let admin = admin::AgentAdminService::new(cache.clone(), attestor.clone(), manager.clone());
    let jwt: Arc<dyn jwt::JwtSource> = Arc::new(jwt::ServerJwtSource::new(manager.clone()));
    let api = workload_api::WorkloadApi::new(cache.clone(), attestor, jwt);
    let health = workload_api::health_reporter().await;
    workload_api::set_serving(&health, manager.agent_id().await.is_some()).await;

    let mut tasks = Tasks::new("agent");
    let mut rx = tasks.shutdown_signal();
    // One socket, two services: the SPIFFE Workload API and, beside it, Sigil's MeshConfig.
    let config_service =
        mesh_config::MeshConfigService::new(mesh.subscribe(), tasks.shutdown_signal());
    let proxies = proxy_status::ProxyHub::new(proxy_status::ProxyHub::interval_for(
        manager.sync_interval(),
    ));
    let status_service = proxy_status::ProxyStatusService::new(proxies.clone(), api.clone());
    let closer = api.clone();
    let router = workload_api::router(api, &health)
        .add_service(config_service)
        .add_service(status_service);
    tasks.spawn(async move {
        router
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(listener),
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                    closer.close_streams();
                },
            )
            .await
            .context("the Workload API server failed")
    });
    tasks.spawn(manager.clone().run(tasks.shutdown_signal()));
    tasks.spawn(mesh.clone().run(manager.clone(), tasks.shutdown_signal()));
    tasks.spawn(
        proxies
            .clone()
            .forward(manager.clone(), tasks.shutdown_signal()),
    );
    if let Some(sf) = secret_files {
        info!(dir = %sf.dir.display(), secrets = sf.secrets.len(), "writing Secrets as files");
        tasks.spawn(secret_files::run(
            sf,
            manager.clone(),
            tasks.shutdown_signal(),
        ));
    }
    admin::serve(admin_listener, admin, &mut tasks);
    info!(
        agent = manager.agent_id().await.unwrap_or_default(),
        socket = %socket_path.display(),
        "sigil agent ready"
    );
    Ok(Bound {
        socket_path,
        admin_socket_path,
        manager,
        cache,
        mesh,
        proxies,
        tasks,
    })
}
