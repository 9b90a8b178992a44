//! The Sigil control-plane server: a trust domain's CA, its datastore, the node API agents talk
//! to, and the admin API the CLI talks to. `build` binds everything and returns a [`Bound`].

pub mod admin_api;
pub mod admin_client;
mod admin_mint;
pub mod authz;
pub mod ca_handle;
pub mod certs;
pub mod config;
mod convert;
pub mod crl;
mod jwt_api;
pub mod mesh;
pub mod metrics;
pub mod node_api;
pub mod node_client;
pub mod proxies;
pub mod revoke;
pub mod secret_delivery;
pub mod secrets;
pub mod state;
pub mod tasks;
pub mod tls;
mod uds;
pub mod x509pop;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};

use crate::ca_handle::CaHandle;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::state::{Shared, now_unix};
use crate::tasks::Tasks;

/// Largest admin API message (a `sigil apply` of many files, a `sigil get` of everything).
pub const ADMIN_MAX_MESSAGE: usize = 16 << 20;

/// How often the server checks CA rotation, syncs the bundle and prunes.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// Floor between two housekeeping rounds, so a step that keeps failing cannot spin.
const MIN_WAIT: Duration = Duration::from_millis(200);
/// How often the CRL publisher checks whether its CRLs must be re-signed.
const CRL_CHECK: Duration = Duration::from_millis(500);

/// A running server: the addresses it actually bound, and its lifecycle.
pub struct Bound {
    pub node_addr: SocketAddr,
    pub admin_socket: PathBuf,
    pub metrics_addr: Option<SocketAddr>,
    /// The CRL endpoint (`--crl-listen`), if any.
    pub crl_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    tasks: Tasks,
}

impl Bound {
    /// Waits until a serving task fails (or all end).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        self.tasks.wait().await
    }

    /// Stops serving, closes the datastore and removes the admin socket.
    pub async fn shutdown(self) {
        self.tasks.stop().await;
        self.shared.ds.close().await;
        let _ = std::fs::remove_file(&self.admin_socket);
    }
}

/// The replica's stable name: from the config, else kept in `<data-dir>/server_id`.
fn server_id(cfg: &ServerConfig) -> anyhow::Result<String> {
    if let Some(id) = &cfg.server_id {
        return Ok(id.clone());
    }
    let path = cfg.data_dir.join("server_id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            let id = format!("server-{}", hex::encode(rand::random::<[u8; 6]>()));
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create data dir {} (check --data-dir)",
            dir.display()
        )
    })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict data dir {} to mode 0700", dir.display()))?;
    Ok(())
}

/// Opens the datastore, loads or creates the CA, and binds the node API, the admin socket and
/// the metrics endpoint.
pub async fn build(cfg: ServerConfig) -> anyhow::Result<Bound> {
    prepare_data_dir(&cfg.data_dir)?;
    let server_id = server_id(&cfg)?;
    let secrets = secrets::SecretKeyring::load_or_create(&cfg.data_dir)?;
    let ds = sigil_datastore::open(&cfg.datastore, Default::default())
        .await
        .with_context(|| format!("cannot open the datastore {}", redact_url(&cfg.datastore)))?;
    secrets
        .check_against_store(ds.as_ref())
        .await
        .context("the Secrets key does not match the datastore")?;
    let ca = CaHandle::init(&cfg, &server_id, ds.clone()).await?;
    let x509pop_roots = match &cfg.x509pop_ca_bundle {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --x509pop-ca-bundle {}", p.display()))?;
            let certs = sigil_spiffe::pem::decode_certificates(&text)
                .with_context(|| format!("--x509pop-ca-bundle {}", p.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--x509pop-ca-bundle {} holds no certificate",
                p.display()
            );
            Some(certs)
        }
    };
    let metrics = Arc::new(Metrics::new());
    let config = mesh::ConfigHub::load(ds.as_ref())
        .await
        .context("cannot read the mesh configuration from the datastore")?;
    metrics.config_revision.set(config.current().revision);
    let shared = Arc::new(Shared {
        config,
        cfg: cfg.clone(),
        server_id: server_id.clone(),
        ds,
        ca,
        metrics,
        x509pop_roots,
        proxies: Default::default(),
        certs: Default::default(),
        secrets,
        crl: crl::CrlPublisher::new(cfg.crl.clone()),
    });
    shared.refresh_counts().await;
    if let Some(t) = shared.ca.active_not_after() {
        shared.metrics.ca_expiry.set(t);
    }

    let mut tasks = Tasks::new("server");
    let shutdown_rx = tasks.shutdown_signal();

    // Node API: TLS, with the config swapped on CA rotation and server SVID renewal.
    let tls_cfg = shared
        .ca
        .server_tls_config()
        .context("cannot build the node API TLS config")?;
    let (tls_tx, tls_rx) = watch::channel(tls_cfg);
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| {
            format!(
                "cannot bind the node API on {} (check --bind-address/--bind-port)",
                cfg.bind
            )
        })?;
    let node_addr = listener.local_addr()?;
    let node = sigil_proto::node::node_server::NodeServer::new(node_api::NodeApi {
        shared: shared.clone(),
    });
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(node)
            .serve_with_incoming_shutdown(tls::incoming(listener, tls_rx), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .context("node API server failed")
    });

    // Admin API on the local socket.
    let uds = uds::bind_private(&cfg.socket_path)
        .await
        .with_context(|| format!("cannot bind the admin socket {}", cfg.socket_path.display()))?;
    let admin = sigil_proto::admin::admin_server::AdminServer::new(admin_api::AdminApi {
        shared: shared.clone(),
    })
    .max_decoding_message_size(ADMIN_MAX_MESSAGE)
    .max_encoding_message_size(ADMIN_MAX_MESSAGE);
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(admin)
            .serve_with_incoming_shutdown(UnixListenerStream::new(uds), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .context("admin API server failed")
    });

    let metrics_addr = match cfg.metrics {
        None => None,
        Some(addr) => {
            let l = metrics::bind(addr).await.with_context(|| {
                format!("cannot bind the metrics endpoint {addr} (--metrics-address)")
            })?;
            let a = l.local_addr()?;
            let m = shared.metrics.clone();
            let mut rx = shutdown_rx.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = metrics::serve(l, m) => {}
                    _ = rx.wait_for(|s| *s) => {}
                }
                Ok(())
            });
            Some(a)
        }
    };

    // CRLs: signed now (a failure here is a configuration problem worth refusing to start
    // over, e.g. an unwritable --crl-dir), then on every revocation, CA change and at half
    // of their validity.
    shared
        .crl
        .publish(&shared)
        .await
        .context("cannot publish the CRLs")?;
    let crl_addr = match shared.crl.bind().await? {
        None => None,
        Some(l) => {
            let a = l.local_addr()?;
            let s = shared.clone();
            let mut rx = shutdown_rx.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = crl::serve(l, s) => {}
                    _ = rx.wait_for(|s| *s) => {}
                }
                Ok(())
            });
            Some(a)
        }
    };
    let s = shared.clone();
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CRL_CHECK) => {}
                _ = s.crl.woken() => {}
                _ = rx.wait_for(|s| *s) => return Ok(()),
            }
            let revision = s.config.current().revision;
            let active = s.ca.active_id();
            if !s.crl.due(revision, active.as_deref(), time::OffsetDateTime::now_utc()) {
                continue;
            }
            match s.crl.publish(&s).await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    warn!(error = %format!("{e:#}"), "cannot publish the CRLs; will retry (the last ones stay served)");
                }
                Err(_) => {}
            }
        }
    });

    // Housekeeping: CA rotation, bundle sync with other replicas, server SVID renewal, pruning.
    let s = shared.clone();
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        loop {
            // Every 5 s, or sooner when a CA rotation step falls due.
            let wait =
                s.ca.until_next_step()
                    .map_or(HOUSEKEEPING, |d| d.clamp(MIN_WAIT, HOUSEKEEPING));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = rx.wait_for(|s| *s) => return Ok(()),
            }
            match s.ca.maintain().await {
                Ok(true) => match s.ca.server_tls_config() {
                    Ok(c) => {
                        let _ = tls_tx.send(c);
                    }
                    Err(e) => warn!(error = %e, "cannot rebuild the node API TLS config"),
                },
                Ok(false) => {}
                Err(e) => warn!(error = %format!("{e:#}"), "CA maintenance failed; will retry"),
            }
            if let Some(t) = s.ca.active_not_after() {
                s.metrics.ca_expiry.set(t);
            }
            // Expired tokens are kept an hour so that an agent using one hears "expired",
            // not "unknown".
            if let Err(e) = s.ds.prune_join_tokens(now_unix() - 3600).await {
                warn!(error = %e, "cannot prune expired join tokens");
            }
            // A revoked certificate past its notAfter is refused anyway.
            if let Err(e) = s.ds.prune_revocations(now_unix()).await {
                warn!(error = %e, "cannot prune expired revocations");
            }
            s.refresh_counts().await;
        }
    });

    // Configuration applied through another replica (shared PostgreSQL) reaches this one's
    // agents within one poll.
    let s = shared.clone();
    let mut rx = shutdown_rx.clone();
    tasks.spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(mesh::POLL) => {}
                _ = rx.wait_for(|s| *s) => return Ok(()),
            }
            match s.config.refresh(s.ds.as_ref()).await {
                Ok(_) => {
                    if failing {
                        info!("mesh configuration reload works again");
                    }
                    failing = false;
                    s.metrics.config_revision.set(s.config.current().revision);
                }
                Err(e) if !failing => {
                    failing = true;
                    warn!(error = %e, "cannot reload the mesh configuration; agents keep the current one");
                }
                Err(_) => {}
            }
        }
    });

    // cert-manager Certificates: issue, renew, keep status.
    let s = shared.clone();
    let rx = shutdown_rx.clone();
    tasks.spawn(async move { certs::controller::run(s, rx).await });

    info!(
        trust_domain = %cfg.trust_domain,
        server_id = %server_id,
        node_api = %node_addr,
        admin_socket = %cfg.socket_path.display(),
        metrics = ?metrics_addr,
        crl = ?crl_addr,
        "sigil server ready"
    );
    Ok(Bound {
        node_addr,
        admin_socket: cfg.socket_path.clone(),
        metrics_addr,
        crl_addr,
        shared,
        tasks,
    })
}

/// Hides a password in a datastore URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("/var/lib/x.db"), "/var/lib/x.db");
    }
}
