//! `v1` `Secret` objects, sealed at rest.
//!
//! A Secret is a configuration object like any other (`sigil apply`, `sigil get`, a change bumps
//! the configuration revision), but its values never reach the datastore in clear: the server
//! replaces `data`/`stringData` with `sealedData`, the values encrypted with AES-256-GCM under a
//! key kept in `<data-dir>/secrets.key` (0600). The object's kind, namespace and name are bound
//! to the ciphertext as associated data, so a sealed value copied onto another Secret does not
//! open. Replicas sharing a PostgreSQL datastore must share the key file; one that holds
//! another key names both key ids in its error.
//!
//! `sigil get` shows a Secret's keys and sizes; the values only with `--show-secrets`, which is
//! logged. Nothing here logs a value.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sigil_datastore::{ConfigChange, ConfigKey, StoredConfig};
use sigil_policy::{REDACTED_PREFIX, SECRET_TYPE_TLS};
use zeroize::Zeroizing;

use crate::state::Shared;

/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;
/// `sealedData.version` this server writes and reads.
const SEALED_VERSION: i64 = 1;

/// What went wrong with a Secret, by blame.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file cannot be read, created, or is unsafe.
    #[error("secrets key file {path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    /// The value was sealed under another key (typically: a replica without the shared key file).
    #[error(
        "Secret {key} was sealed with key {sealed_with}, but this server holds key {ours} ({path}); \
         every server replica must use the same {KEY_FILE}: copy it from the replica that wrote the Secret"
    )]
    WrongKey {
        key: ConfigKey,
        sealed_with: String,
        ours: String,
        path: PathBuf,
    },
    /// The stored object does not decrypt or decode.
    #[error("Secret {key} is unreadable: {problem}")]
    Corrupt { key: ConfigKey, problem: String },
    /// The datastore failed.
    #[error("datastore: {0}")]
    Store(#[from] sigil_datastore::Error),
    /// The change itself is not allowed.
    #[error("{0}")]
    Refused(String),
}

/// A Secret's content, decoded.
#[derive(Clone, Default, PartialEq)]
pub struct SecretData {
    /// `kubernetes.io/tls`, `Opaque`…
    pub type_: String,
    /// Values by key: `tls.crt`, `tls.key`, `ca.crt`…
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretData")
            .field("type", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .finish()
    }
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
            type_: SECRET_TYPE_TLS.to_owned(),
            data,
            ..Default::default()
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(|v| v.as_slice())
    }
}

/// The sealing key, loaded once at start.
pub struct SecretKeyring {
    key: LessSafeKey,
    mac: hmac::Key,
    id: String,
    path: PathBuf,
}

impl SecretKeyring {
    /// Loads `<data_dir>/secrets.key`, creating it (0600, 32 random bytes as hex) on first start.
    /// A key file readable by group or others is refused.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        let path = data_dir.join(KEY_FILE);
        let err = |problem: String| SecretError::KeyFile {
            path: path.clone(),
            problem,
        };
        let bytes = match fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "mode is {mode:o}; only its owner may read it: chmod 600 {}",
                        path.display()
                    )));
                }
                let text =
                    Zeroizing::new(fs::read_to_string(&path).map_err(|e| err(e.to_string()))?);
                Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
                    err("it does not hold 64 hexadecimal characters; restore it from a backup or from another replica".into())
                })?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new(vec![0u8; KEY_LEN]);
                aws_lc_rs::rand::fill(&mut key).map_err(|_| err("no randomness".into()))?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| err(format!("cannot create: {e}")))?;
                let text = Zeroizing::new(format!("{}\n", hex::encode(&*key)));
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| err(format!("cannot write: {e}")))?;
                key
            }
            Err(e) => return Err(err(e.to_string())),
        };
        if bytes.len() != KEY_LEN {
            return Err(err(format!(
                "it holds {} bytes, a key has {KEY_LEN}; restore it from a backup or from another replica",
                bytes.len()
            )));
        }
        Ok(Self::from_bytes(&bytes, path))
    }

    fn from_bytes(bytes: &[u8], path: PathBuf) -> Self {
        let id = hex::encode(
            &Sha256::digest([b"sigil secrets key id\0".as_slice(), bytes].concat())[..8],
        );
        // A 32-byte key is always valid for AES-256-GCM.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key");
        SecretKeyring {
            key: LessSafeKey::new(unbound),
            mac: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            id,
            path,
        }
    }

    /// A public name for the key (not derived reversibly from it), for messages.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aad(key: &ConfigKey) -> String {
        format!(
            "sigil secret v{SEALED_VERSION}\0{}\0{}",
            key.namespace, key.name
        )
    }

    /// The `sealedData` object for `data`.
    fn seal(
        &self,
        key: &ConfigKey,
        data: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    ) -> Result<Value, SecretError> {
        let plain: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.as_slice()))))
            .collect();
        let mut buf = Zeroizing::new(Value::Object(plain).to_string().into_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| SecretError::Refused("no randomness".into()))?;
        let mut sealed: Vec<u8> = std::mem::take(&mut *buf);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(key).as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretError::Refused("encryption failed".into()))?;
        let sizes: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.len())))
            .collect();
        Ok(serde_json::json!({
            "version": SEALED_VERSION,
            "keyId": self.id,
            "nonce": STANDARD.encode(nonce),
            "ciphertext": STANDARD.encode(sealed),
            "sizes": sizes,
        }))
    }

    /// Opens a `sealedData` object.
    fn open(
        &self,
        key: &ConfigKey,
        sealed: &Value,
    ) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, SecretError> {
        let corrupt = |problem: &str| SecretError::Corrupt {
            key: key.clone(),
            problem: problem.to_owned(),
        };
        let field = |f: &str| {
            sealed
                .get(f)
                .and_then(Value::as_str)
                .ok_or_else(|| corrupt(&format!("sealedData.{f} missing")))
        };
        if sealed.get("version").and_then(Value::as_i64) != Some(SEALED_VERSION) {
            return Err(corrupt("sealedData.version is not 1"));
        }
        let key_id = field("keyId")?;
        if key_id != self.id {
            return Err(SecretError::WrongKey {
                key: key.clone(),
                sealed_with: key_id.to_owned(),
                ours: self.id.clone(),
                path: self.path.clone(),
            });
        }
        let nonce: [u8; NONCE_LEN] = STANDARD
            .decode(field("nonce")?)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| corrupt("bad nonce"))?;
        let mut buf = Zeroizing::new(
            STANDARD
                .decode(field("ciphertext")?)
                .map_err(|_| corrupt("ciphertext is not base64"))?,
        );
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(key).as_bytes()),
                &mut buf,
            )
            .map_err(|_| {
                corrupt("it does not decrypt (tampered with, or sealed for another Secret)")
            })?;
        let map: Map<String, Value> =
            serde_json::from_slice(plain).map_err(|_| corrupt("decrypted data is not JSON"))?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let bytes = v
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| corrupt("decrypted value is not base64"))?;
            out.insert(k, Zeroizing::new(bytes));
        }
        Ok(out)
    }

    /// The `spec_hash` of a Secret: an HMAC over type and values, so equal content is recognised
    /// without storing a plain digest of key material.
    fn content_hash(&self, type_: &str, data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> String {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(type_.as_bytes());
        for (k, v) in data {
            ctx.update(&(k.len() as u64).to_be_bytes());
            ctx.update(k.as_bytes());
            ctx.update(&(v.len() as u64).to_be_bytes());
            ctx.update(v);
        }
        hex::encode(ctx.sign().as_ref())
    }
}

fn body_type(body: &Value) -> String {
    body.get("type")
        .and_then(Value::as_str)
        .unwrap_or(sigil_policy::SECRET_TYPE_OPAQUE)
        .to_owned()
}

fn string_map(body: &Value, field: &str) -> BTreeMap<String, String> {
    body.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Turns a planned (validated, plain) Secret body into the body to store: values sealed,
/// `spec_hash` from the content. When the stored Secret already holds the same content its
/// ciphertext is kept, so re-applying the same Secret is `unchanged`. An `immutable` Secret's
/// content cannot change.
pub fn seal_for_store(
    ring: &SecretKeyring,
    key: &ConfigKey,
    body: &mut Value,
    existing: Option<&StoredConfig>,
) -> Result<String, SecretError> {
    let refused = |m: String| SecretError::Refused(format!("Secret {key}: {m}"));
    let obj = body
        .as_object_mut()
        .ok_or_else(|| refused("not an object".into()))?;
    let mut data: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    if let Some(Value::Object(d)) = obj.remove("data") {
        for (k, v) in d {
            let text = v.as_str().unwrap_or_default();
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|e| refused(format!("data.{k} is not base64: {e}")))?;
            data.insert(k, Zeroizing::new(bytes));
        }
    }
    if let Some(Value::Object(d)) = obj.remove("stringData") {
        for (k, v) in d {
            data.insert(
                k,
                Zeroizing::new(v.as_str().unwrap_or_default().as_bytes().to_vec()),
            );
        }
    }
    let type_ = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(sigil_policy::SECRET_TYPE_OPAQUE)
        .to_owned();
    let hash = ring.content_hash(&type_, &data);
    let reuse = match existing {
        Some(old) => {
            let old_body: Value =
                serde_json::from_str(&old.body).map_err(|e| SecretError::Corrupt {
                    key: key.clone(),
                    problem: e.to_string(),
                })?;
            let immutable = old_body.get("immutable").and_then(Value::as_bool) == Some(true);
            let same = old.spec_hash == hash && body_type(&old_body) == type_;
            if immutable && !same {
                return Err(refused(
                    "the Secret is immutable, so its data and type cannot change; delete it and create it again".into(),
                ));
            }
            if immutable && obj.get("immutable").and_then(Value::as_bool) != Some(true) {
                return Err(refused(
                    "`immutable: true` cannot be unset; delete the Secret and create it again"
                        .into(),
                ));
            }
            same.then(|| old_body.get("sealedData").cloned()).flatten()
        }
        None => None,
    };
    let sealed = match reuse {
        Some(s) => s,
        None => ring.seal(key, &data)?,
    };
    obj.insert("sealedData".into(), sealed);
    Ok(hash)
}

/// The Secret as `sigil get` shows it: `data` with every value, base64 (`show`), or a
/// `REDACTED: N bytes` placeholder per key; never `sealedData`.
pub fn render_for_get(
    ring: &SecretKeyring,
    key: &ConfigKey,
    rendered: &mut Value,
    show: bool,
) -> Result<(), SecretError> {
    let Some(obj) = rendered.as_object_mut() else {
        return Ok(());
    };
    let Some(sealed) = obj.remove("sealedData") else {
        return Ok(());
    };
    let data: Map<String, Value> = if show {
        ring.open(key, &sealed)?
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.as_slice()))))
            .collect()
    } else {
        sealed
            .get("sizes")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, n)| {
                        (
                            k.clone(),
                            Value::String(format!(
                                "{REDACTED_PREFIX} {} bytes",
                                n.as_u64().unwrap_or(0)
                            )),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    obj.insert("data".into(), Value::Object(data));
    Ok(())
}

/// The key of Secret `namespace/name`.
pub fn secret_key(namespace: &str, name: &str) -> ConfigKey {
    ConfigKey::new("Secret", namespace, name)
}

/// Reads and opens a Secret; `None` when it does not exist.
pub async fn read_secret(
    s: &Shared,
    namespace: &str,
    name: &str,
) -> Result<Option<SecretData>, SecretError> {
    let key = secret_key(namespace, name);
    let Some(stored) = s.ds.get_config(&key).await? else {
        return Ok(None);
    };
    let body: Value = serde_json::from_str(&stored.body).map_err(|e| SecretError::Corrupt {
        key: key.clone(),
        problem: e.to_string(),
    })?;
    let sealed = body.get("sealedData").ok_or_else(|| SecretError::Corrupt {
        key: key.clone(),
        problem: "no sealedData".into(),
    })?;
    Ok(Some(SecretData {
        type_: body_type(&body),
        data: s.secrets.open(&key, sealed)?,
        labels: string_map(&body, "labels"),
        annotations: string_map(&body, "annotations"),
    }))
}

/// Writes (creates or replaces) a Secret in one store transaction and wakes the configuration
/// hub. Content equal to what is stored leaves it unchanged.
pub async fn write_secret(
    s: &Shared,
    namespace: &str,
    name: &str,
    secret: &SecretData,
) -> Result<(), SecretError> {
    let key = secret_key(namespace, name);
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.to_owned()));
    metadata.insert("namespace".into(), Value::String(namespace.to_owned()));
    if !secret.labels.is_empty() {
        metadata.insert(
            "labels".into(),
            serde_json::to_value(&secret.labels).unwrap_or_default(),
        );
    }
    if !secret.annotations.is_empty() {
        metadata.insert(
            "annotations".into(),
            serde_json::to_value(&secret.annotations).unwrap_or_default(),
        );
    }
    let data: Map<String, Value> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(STANDARD.encode(v.as_slice()))))
        .collect();
    let mut body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret.type_,
        "data": data,
    });
    let existing = s.ds.get_config(&key).await?;
    let spec_hash = seal_for_store(&s.secrets, &key, &mut body, existing.as_ref())?;
    let change = ConfigChange::Put {
        key,
        api_version: "v1".into(),
        body: body.to_string(),
        spec_hash,
    };
    s.ds.apply_config(vec![change], crate::state::now_unix_ms())
        .await?;
    if let Err(e) = s.config.refresh(s.ds.as_ref()).await {
        tracing::warn!(error = %e, "Secret stored; configuration reload deferred");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(byte: u8) -> SecretKeyring {
        SecretKeyring::from_bytes(&[byte; KEY_LEN], PathBuf::from("/test/secrets.key"))
    }

    fn plain(ns: &str, name: &str, data: &[(&str, &str)]) -> (ConfigKey, Value) {
        let d: Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(STANDARD.encode(v))))
            .collect();
        (
            secret_key(ns, name),
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": SECRET_TYPE_TLS, "data": d}),
        )
    }

    fn stored(key: &ConfigKey, body: &Value, hash: &str) -> StoredConfig {
        StoredConfig {
            key: key.clone(),
            api_version: "v1".into(),
            body: body.to_string(),
            spec_hash: hash.to_owned(),
            generation: 1,
            uid: "u".into(),
            created_at_ms: 0,
            updated_at_ms: 0,
            revision: 1,
        }
    }

    #[test]
    fn values_are_sealed_and_open_only_for_the_same_secret_and_key() {
        let r = ring(7);
        let (key, mut body) = plain(
            "cert-manager",
            "ca-key-pair",
            &[("tls.key", "PRIVATE-KEY-BYTES"), ("tls.crt", "CERT")],
        );
        let hash = seal_for_store(&r, &key, &mut body, None).unwrap();
        let text = body.to_string();
        assert!(
            !text.contains("PRIVATE-KEY-BYTES")
                && !text.contains(&STANDARD.encode("PRIVATE-KEY-BYTES")),
            "{text}"
        );
        assert!(body.get("data").is_none() && body.get("sealedData").is_some());
        let opened = r.open(&key, &body["sealedData"]).unwrap();
        assert_eq!(opened["tls.key"].as_slice(), b"PRIVATE-KEY-BYTES");
        // Moved onto another Secret: refused.
        let other = secret_key("payments", "ca-key-pair");
        assert!(matches!(
            r.open(&other, &body["sealedData"]),
            Err(SecretError::Corrupt { .. })
        ));
        // Another replica's key: named in the error.
        let e = ring(8).open(&key, &body["sealedData"]).unwrap_err();
        assert!(matches!(e, SecretError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains(KEY_FILE), "{e}");
        // Tampered ciphertext: refused.
        let mut t = body["sealedData"].clone();
        let mut ct = STANDARD.decode(t["ciphertext"].as_str().unwrap()).unwrap();
        ct[0] ^= 1;
        t["ciphertext"] = Value::String(STANDARD.encode(ct));
        assert!(r.open(&key, &t).is_err());
        assert_eq!(hash.len(), 64);
    }

    #[test]
    fn same_content_keeps_the_stored_ciphertext_and_immutable_is_enforced() {
        let r = ring(1);
        let (key, mut first) = plain("ns", "s", &[("a", "1")]);
        let hash = seal_for_store(&r, &key, &mut first, None).unwrap();
        let old = stored(&key, &first, &hash);
        let (_, mut again) = plain("ns", "s", &[("a", "1")]);
        let hash2 = seal_for_store(&r, &key, &mut again, Some(&old)).unwrap();
        assert_eq!(hash, hash2);
        assert_eq!(first["sealedData"], again["sealedData"]);
        let (_, mut changed) = plain("ns", "s", &[("a", "2")]);
        assert_ne!(
            seal_for_store(&r, &key, &mut changed, Some(&old)).unwrap(),
            hash
        );

        let (_, mut imm) = plain("ns", "s", &[("a", "1")]);
        imm["immutable"] = Value::Bool(true);
        let h = seal_for_store(&r, &key, &mut imm, None).unwrap();
        let old = stored(&key, &imm, &h);
        let (_, mut change) = plain("ns", "s", &[("a", "2")]);
        change["immutable"] = Value::Bool(true);
        let e = seal_for_store(&r, &key, &mut change, Some(&old)).unwrap_err();
        assert!(e.to_string().contains("immutable"), "{e}");
    }

    #[test]
    fn get_redacts_unless_asked() {
        let r = ring(3);
        let (key, mut body) = plain("ns", "s", &[("tls.key", "k3y")]);
        seal_for_store(&r, &key, &mut body, None).unwrap();
        let mut shown = body.clone();
        render_for_get(&r, &key, &mut body, false).unwrap();
        assert_eq!(body["data"]["tls.key"], "REDACTED: 3 bytes");
        assert!(body.get("sealedData").is_none());
        render_for_get(&r, &key, &mut shown, true).unwrap();
        assert_eq!(shown["data"]["tls.key"], STANDARD.encode("k3y"));
    }

    #[test]
    fn key_file_is_created_0600_reused_and_refused_when_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretKeyring::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = SecretKeyring::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretKeyring::load_or_create(dir.path()).err().unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "nothex\n").unwrap();
        let e = SecretKeyring::load_or_create(dir.path()).err().unwrap();
        assert!(e.to_string().contains("64 hexadecimal"), "{e}");
    }
}
