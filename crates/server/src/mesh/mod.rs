//! Mesh configuration in the control plane: what `sigil apply` stored, rendered with the
//! server's metadata, and the hub that tells every agent stream about a new revision.
//!
//! Delivery is state of the world: a snapshot carries every delivered object at one store
//! revision. An agent that reconnects says which revision it holds and hears nothing until the
//! configuration changes again. Replicas sharing PostgreSQL notice each other's applies by
//! polling the configuration revision (a one-row read) every [`POLL`].

pub mod admin;
pub mod kinds;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigil_datastore::{DataStore, StoredConfig};
use sigil_proto::config as pb;
use tokio::sync::{Mutex, watch};

/// How often a replica checks the store for configuration applied through another replica.
pub const POLL: Duration = Duration::from_millis(250);

/// The delivered configuration at one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub revision: i64,
    pub resources: Vec<pb::ConfigResource>,
    /// Revoked certificates not yet expired.
    pub revoked: Vec<pb::RevokedCertificate>,
}

impl Snapshot {
    /// As sent on the wire.
    pub fn to_pb(&self) -> pb::ConfigSnapshot {
        pb::ConfigSnapshot {
            revision: self.revision,
            resources: self.resources.clone(),
            revoked: self.revoked.clone(),
        }
    }
}

/// Holds the current snapshot and wakes subscribers when it changes.
pub struct ConfigHub {
    tx: watch::Sender<Arc<Snapshot>>,
    reload: Mutex<()>,
}

impl ConfigHub {
    /// Reads the current configuration from the store.
    pub async fn load(ds: &dyn DataStore) -> Result<Self, sigil_datastore::Error> {
        let snapshot = read(ds).await?;
        let (tx, _) = watch::channel(Arc::new(snapshot));
        Ok(ConfigHub {
            tx,
            reload: Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }

    /// Reloads when the store's configuration revision moved past the current one; returns
    /// whether subscribers were woken.
    pub async fn refresh(&self, ds: &dyn DataStore) -> Result<bool, sigil_datastore::Error> {
        let _one_at_a_time = self.reload.lock().await;
        let stored = ds.config_revision().await?;
        if stored <= self.current().revision {
            return Ok(false);
        }
        let snapshot = read(ds).await?;
        if snapshot.revision <= self.current().revision {
            return Ok(false);
        }
        tracing::info!(
            revision = snapshot.revision,
            objects = snapshot.resources.len(),
            "mesh configuration changed; pushing to agents"
        );
        self.tx.send_replace(Arc::new(snapshot));
        Ok(true)
    }
}

async fn read(ds: &dyn DataStore) -> Result<Snapshot, sigil_datastore::Error> {
    let (revision, stored) = ds.config_snapshot().await?;
    let mut resources = Vec::with_capacity(stored.len());
    for s in &stored {
        if !kinds::info(&s.key.kind).is_some_and(|k| k.delivered) {
            continue;
        }
        match render(s) {
            Ok(r) => resources.push(r),
            // Only a corrupted row gets here; the rest of the mesh keeps its configuration.
            Err(e) => {
                tracing::error!(object = %s.key, error = %e, "stored object is unreadable; not delivered")
            }
        }
    }
    // Read after the revision: a revocation stored in between is included early (harmless)
    // and its revision is delivered at the next refresh.
    let now = crate::state::now_unix();
    let revoked = ds
        .list_revocations()
        .await?
        .iter()
        .filter(|r| r.not_after >= now)
        .map(crate::revoke::to_pb)
        .collect();
    Ok(Snapshot {
        revision,
        resources,
        revoked,
    })
}

/// RFC 3339 at whole seconds, as Kubernetes writes `creationTimestamp`.
pub fn rfc3339_seconds(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The stored object with the server's metadata filled in, as JSON.
pub fn render_value(s: &StoredConfig) -> Result<Value, String> {
    let mut v: Value = serde_json::from_str(&s.body).map_err(|e| format!("bad JSON: {e}"))?;
    let Some(Value::Object(m)) = v.get_mut("metadata") else {
        return Err("no metadata".into());
    };
    m.insert("generation".into(), Value::from(s.generation));
    m.insert(
        "creationTimestamp".into(),
        Value::String(rfc3339_seconds(s.created_at_ms)),
    );
    m.insert("uid".into(), Value::String(s.uid.clone()));
    m.insert(
        "resourceVersion".into(),
        Value::String(s.revision.to_string()),
    );
    Ok(v)
}

/// The stored object as delivered.
pub fn render(s: &StoredConfig) -> Result<pb::ConfigResource, String> {
    let v = render_value(s)?;
    Ok(pb::ConfigResource {
        api_version: s.api_version.clone(),
        kind: s.key.kind.clone(),
        namespace: s.key.namespace.clone(),
        name: s.key.name.clone(),
        json: v.to_string(),
        generation: s.generation,
        revision: s.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::rfc3339_seconds;

    #[test]
    fn timestamps_are_whole_seconds_utc() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_767_225_600_999), "2026-01-01T00:00:00Z");
    }
}
