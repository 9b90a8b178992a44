//! Mesh configuration on the node: received from the server's configuration stream, checked,
//! persisted as the last good configuration, and served to local proxies through the
//! `sigil.config.v1.MeshConfig` service on the agent's socket (beside, never inside, the SPIFFE
//! Workload API).
//!
//! A snapshot that does not validate is refused as a whole and the last good one stays in
//! force. After a restart the persisted snapshot is served at once, also while the server is
//! down; the stream resumes from its revision.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sigil_proto::config::mesh_config_server::MeshConfig;
use sigil_proto::config::{
    self as pb, ConfigSnapshot, GetConfigRequest, WatchConfigRequest,
    mesh_config_server::MeshConfigServer,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::manager::Manager;
use crate::store::{read_private, write_private};

/// File in the data dir holding the last good configuration.
pub const FILE_NAME: &str = "mesh_config.json";

/// Backoff between stream attempts: from [`RETRY_MIN`] doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The current configuration; `None` until the first snapshot (from disk or the server).
pub type ConfigRx = watch::Receiver<Option<Arc<ConfigSnapshot>>>;

#[derive(Serialize, Deserialize)]
struct FileResource {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    json: String,
    generation: i64,
    revision: i64,
}

#[derive(Serialize, Deserialize)]
struct FileRevoked {
    serial: String,
    spiffe_id: String,
    reason: String,
    revoked_at: i64,
    not_after: i64,
    #[serde(default)]
    entry_id: String,
    #[serde(default)]
    agent_id: String,
}

#[derive(Serialize, Deserialize)]
struct FileSnapshot {
    revision: i64,
    resources: Vec<FileResource>,
    /// Revoked certificates (absent in files written before revocation existed).
    #[serde(default)]
    revoked: Vec<FileRevoked>,
}

fn to_file(s: &ConfigSnapshot) -> FileSnapshot {
    FileSnapshot {
        revision: s.revision,
        resources: s
            .resources
            .iter()
            .map(|r| FileResource {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                json: r.json.clone(),
                generation: r.generation,
                revision: r.revision,
            })
            .collect(),
        revoked: s
            .revoked
            .iter()
            .map(|r| FileRevoked {
                serial: r.serial.clone(),
                spiffe_id: r.spiffe_id.clone(),
                reason: r.reason.clone(),
                revoked_at: r.revoked_at,
                not_after: r.not_after,
                entry_id: r.entry_id.clone(),
                agent_id: r.agent_id.clone(),
            })
            .collect(),
    }
}

fn from_file(f: FileSnapshot) -> ConfigSnapshot {
    ConfigSnapshot {
        revision: f.revision,
        resources: f
            .resources
            .into_iter()
            .map(|r| pb::ConfigResource {
                api_version: r.api_version,
                kind: r.kind,
                namespace: r.namespace,
                name: r.name,
                json: r.json,
                generation: r.generation,
                revision: r.revision,
            })
            .collect(),
        revoked: f
            .revoked
            .into_iter()
            .map(|r| pb::RevokedCertificate {
                serial: r.serial,
                spiffe_id: r.spiffe_id,
                reason: r.reason,
                revoked_at: r.revoked_at,
                not_after: r.not_after,
                entry_id: r.entry_id,
                agent_id: r.agent_id,
            })
            .collect(),
    }
}

/// Checks every object of a snapshot with the same strict decoder and validation the server
/// applies; the first problem refuses the snapshot.
pub fn validate(s: &ConfigSnapshot) -> Result<(), String> {
    for r in &s.resources {
        let label = format!("{} {}/{}", r.kind, r.namespace, r.name);
        let parsed = sigil_policy::parse_documents(&label, &r.json).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        match parsed.as_slice() {
            [one] if one.kind() == r.kind && one.metadata().name == r.name => {}
            _ => return Err(format!("{label}: the object does not match its key")),
        }
    }
    Ok(())
}

/// The revoked serials of a snapshot, lowercase hex without leading zeros.
fn revoked_serials(s: &ConfigSnapshot) -> std::collections::HashSet<String> {
    s.revoked
        .iter()
        .map(|r| {
            let hex = r.serial.replace(':', "").to_ascii_lowercase();
            let t = hex.trim_start_matches('0');
            if t.is_empty() {
                "0".to_owned()
            } else {
                t.to_owned()
            }
        })
        .collect()
}

/// Receives, keeps and serves the mesh configuration.
pub struct MeshConfigSync {
    path: PathBuf,
    tx: watch::Sender<Option<Arc<ConfigSnapshot>>>,
}

impl MeshConfigSync {
    /// Loads the persisted configuration from `data_dir`, if any and valid.
    pub fn load(data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let path = data_dir.join(FILE_NAME);
        let initial = match read_private(&path)? {
            None => None,
            Some(bytes) => match serde_json::from_slice::<FileSnapshot>(&bytes) {
                Ok(f) => {
                    let s = from_file(f);
                    match validate(&s) {
                        Ok(()) => {
                            info!(
                                revision = s.revision,
                                objects = s.resources.len(),
                                "serving the persisted mesh configuration"
                            );
                            Some(Arc::new(s))
                        }
                        Err(e) => {
                            warn!(file = %path.display(), error = %e, "persisted mesh configuration is invalid; waiting for the server");
                            None
                        }
                    }
                }
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "persisted mesh configuration is unreadable; waiting for the server");
                    None
                }
            },
        };
        let (tx, _) = watch::channel(initial);
        Ok(Arc::new(MeshConfigSync { path, tx }))
    }

    pub fn subscribe(&self) -> ConfigRx {
        self.tx.subscribe()
    }

    /// The revision held (0 = none).
    pub fn revision(&self) -> i64 {
        self.tx.borrow().as_ref().map_or(0, |s| s.revision)
    }

    /// Takes a snapshot from the server: validated, persisted, then published. A refused
    /// snapshot leaves the current one in force.
    pub fn accept(&self, s: ConfigSnapshot) -> Result<(), String> {
        validate(&s).map_err(|e| format!("configuration revision {} refused: {e}", s.revision))?;
        let bytes = serde_json::to_vec(&to_file(&s)).map_err(|e| e.to_string())?;
        if let Err(e) = write_private(&self.path, &bytes) {
            // Still served: a full disk must not hold back policy, only its persistence.
            warn!(file = %self.path.display(), error = %e, "cannot persist the mesh configuration");
        }
        info!(
            revision = s.revision,
            objects = s.resources.len(),
            "mesh configuration updated"
        );
        self.tx.send_replace(Some(Arc::new(s)));
        Ok(())
    }

    /// Follows the server's configuration stream until `shutdown`, reconnecting with backoff
    /// and resuming from the revision held.
    pub async fn run(
        self: Arc<Self>,
        manager: Arc<Manager>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        if let Some(s) = self.tx.borrow().as_ref() {
            manager.set_revoked(revoked_serials(s));
        }
        let mut delay = RETRY_MIN;
        let mut failing = false;
        loop {
            let attempt = async {
                let mut client = manager.node_client().await?;
                let mut stream = client
                    .stream_config(WatchConfigRequest {
                        known_revision: self.revision(),
                    })
                    .await?
                    .into_inner();
                if failing {
                    info!("configuration stream to the server restored");
                }
                failing = false;
                delay = RETRY_MIN;
                while let Some(s) = stream.message().await? {
                    // A revoked SVID of this node is replaced at once (the sync loop wakes).
                    let revoked = revoked_serials(&s);
                    if let Err(e) = self.accept(s) {
                        warn!(error = %e, "keeping the last good mesh configuration");
                    } else {
                        manager.set_revoked(revoked);
                    }
                }
                anyhow::Ok(())
            };
            let result = tokio::select! {
                r = attempt => r,
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            };
            if let Err(e) = result {
                if !failing {
                    warn!(error = %format!("{e:#}"), revision = self.revision(), "configuration stream to the server lost; serving the last good configuration");
                }
                failing = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}

/// The `MeshConfig` gRPC service for local proxies.
#[derive(Clone)]
pub struct MeshConfigService {
    config: ConfigRx,
    closing: watch::Receiver<bool>,
}

impl MeshConfigService {
    /// `closing` ends open watches (so a graceful shutdown does not wait on them).
    pub fn new(config: ConfigRx, closing: watch::Receiver<bool>) -> MeshConfigServer<Self> {
        MeshConfigServer::new(MeshConfigService { config, closing })
    }
}

type WatchStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<ConfigSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl MeshConfig for MeshConfigService {
    async fn get_config(
        &self,
        _req: Request<GetConfigRequest>,
    ) -> Result<Response<ConfigSnapshot>, Status> {
        match self.config.borrow().as_ref() {
            Some(s) => Ok(Response::new((**s).clone())),
            None => Err(Status::unavailable(
                "the agent has no mesh configuration yet (never reached the server); retry",
            )),
        }
    }

    type WatchConfigStream = WatchStream;

    async fn watch_config(
        &self,
        req: Request<WatchConfigRequest>,
    ) -> Result<Response<Self::WatchConfigStream>, Status> {
        // 0 = "I hold nothing": the current snapshot is sent even at revision 0.
        let known = req.into_inner().known_revision;
        let mut sent = (known != 0).then_some(known);
        let mut config = self.config.clone();
        let mut closing = self.closing.clone();
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                let current = config.borrow_and_update().clone();
                if let Some(s) = current
                    && sent != Some(s.revision)
                {
                    if tx.send(Ok((*s).clone())).await.is_err() {
                        return;
                    }
                    sent = Some(s.revision);
                }
                let closing_now = tokio::select! {
                    r = config.changed() => if r.is_err() { return } else { false },
                    _ = closing.wait_for(|c| *c) => true,
                    _ = tx.closed() => return,
                };
                if closing_now {
                    let _ = tx
                        .send(Err(Status::unavailable("the agent is shutting down")))
                        .await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
