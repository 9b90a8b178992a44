//! Kubernetes `v1` Secrets stored as configuration objects of kind `Secret`.
//!
//! Interim implementation with the agreed interface (`SecretData`, `read_secret`,
//! `write_secret`) so the Certificate controller can be built and tested; it is replaced by the
//! full implementation (encryption at rest, `sigil create secret tls`) when branches merge.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sigil_datastore::{ConfigChange, ConfigKey};
use zeroize::Zeroizing;

use crate::state::Shared;

/// The contents of a Secret.
#[derive(Default)]
pub struct SecretData {
    /// `kubernetes.io/tls`, `Opaque`…
    pub type_: String,
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl SecretData {
    /// A `kubernetes.io/tls` Secret.
    pub fn tls(cert_pem: &[u8], key_pem: &[u8], ca_pem: Option<&[u8]>) -> Self {
        let mut data = BTreeMap::new();
        data.insert("tls.crt".to_owned(), Zeroizing::new(cert_pem.to_vec()));
        data.insert("tls.key".to_owned(), Zeroizing::new(key_pem.to_vec()));
        if let Some(ca) = ca_pem {
            data.insert("ca.crt".to_owned(), Zeroizing::new(ca.to_vec()));
        }
        SecretData {
            type_: "kubernetes.io/tls".to_owned(),
            data,
            ..SecretData::default()
        }
    }

    /// One data entry.
    pub fn get(&self, k: &str) -> Option<&[u8]> {
        self.data.get(k).map(|v| v.as_slice())
    }
}

/// Why a Secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("datastore: {0}")]
    Store(#[from] sigil_datastore::Error),
    #[error("stored Secret {0} is unreadable: {1}")]
    Corrupt(String, String),
}

fn key(namespace: &str, name: &str) -> ConfigKey {
    ConfigKey::new("Secret", namespace, name)
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a Secret; `None` when it does not exist.
pub async fn read_secret(
    s: &Shared,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>, SecretError> {
    let Some(stored) = s.ds.get_config(&key(namespace, name)).await? else {
        return Ok(None);
    };
    let corrupt = |m: String| SecretError::Corrupt(stored.key.to_string(), m);
    let v: Value = serde_json::from_str(&stored.body).map_err(|e| corrupt(e.to_string()))?;
    let mut data = BTreeMap::new();
    if let Some(m) = v.get("data").and_then(Value::as_object) {
        for (k, val) in m {
            let text = val.as_str().unwrap_or_default();
            let bytes = STANDARD
                .decode(text)
                .map_err(|e| corrupt(format!("data.{k}: {e}")))?;
            data.insert(k.clone(), Zeroizing::new(bytes));
        }
    }
    Ok(Some(SecretData {
        type_: v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Opaque")
            .to_owned(),
        data,
        labels: strings(v.pointer("/metadata/labels")),
        annotations: strings(v.pointer("/metadata/annotations")),
    }))
}

/// Creates or replaces a Secret.
pub async fn write_secret(
    s: &Shared,
    namespace: &str,
    name: &str,
    secret: &SecretData,
) -> Result<(), SecretError> {
    let data: serde_json::Map<String, Value> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.as_slice()))))
        .collect();
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": secret.labels,
            "annotations": secret.annotations,
        },
        "type": secret.type_,
        "data": data,
    });
    let body = Zeroizing::new(body.to_string());
    let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    s.ds.apply_config(
        vec![ConfigChange::Put {
            key: key(namespace, name),
            api_version: "v1".to_owned(),
            body: body.to_string(),
            spec_hash: hash,
        }],
        crate::state::now_unix_ms(),
    )
    .await?;
    Ok(())
}

use sha2::Digest as _;
