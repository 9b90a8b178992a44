//! The agent's disk state: its own SVID and key, and the last good cache (workload SVIDs, keys,
//! bundles), so a restart needs no new token and a server outage costs nothing until expiry.
//! Files holding keys are written atomically with mode 0600 from creation.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// Writes `data` to `path` atomically (temp file 0600, fsync, rename, fsync dir).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a private file, refusing one that group or others can read.
pub fn read_private(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is readable by others; run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        )),
        Ok(_) => std::fs::read(path).map(Some),
    }
}

mod b64 {
    use super::*;
    pub fn ser<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
    pub fn ser_vec<S: serde::Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&B64.encode(x))?;
        }
        seq.end()
    }
    pub fn de_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.into_iter()
            .map(|s| B64.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The agent's own identity on disk (`agent.json`, 0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct AgentIdentityFile {
    pub spiffe_id: String,
    pub attestation_type: String,
    #[serde(serialize_with = "b64::ser_vec", deserialize_with = "b64::de_vec")]
    pub chain: Vec<Vec<u8>>,
    #[serde(serialize_with = "b64::ser", deserialize_with = "b64::de")]
    pub key_pkcs8: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

/// One cached workload SVID with the entry it was signed for.
#[derive(Clone, Serialize, Deserialize)]
pub struct SvidFile {
    pub entry_id: String,
    pub entry_revision: i64,
    pub spiffe_id: String,
    /// `type:value`.
    pub selectors: Vec<String>,
    pub hint: String,
    pub federates_with: Vec<String>,
    pub jwt_svid_ttl: u32,
    #[serde(serialize_with = "b64::ser_vec", deserialize_with = "b64::de_vec")]
    pub chain: Vec<Vec<u8>>,
    #[serde(serialize_with = "b64::ser", deserialize_with = "b64::de")]
    pub key_pkcs8: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

/// The last good cache (`cache.json`, 0600).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct CacheFile {
    /// SPIFFE bundle JSON of the own trust domain.
    #[serde(serialize_with = "b64::ser", deserialize_with = "b64::de")]
    pub own_bundle: Vec<u8>,
    /// Trust domain name → SPIFFE bundle JSON.
    pub federated: BTreeMap<String, String>,
    pub svids: Vec<SvidFile>,
}

/// File locations in the data dir.
#[derive(Debug, Clone)]
pub struct Paths {
    pub agent: PathBuf,
    pub cache: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Self {
        Paths {
            agent: data_dir.join("agent.json"),
            cache: data_dir.join("cache.json"),
        }
    }
}

pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match read_private(path)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is corrupt ({e}); remove it to start over (the agent then attests again)",
                path.display()
            )
        })?)),
    }
}

pub fn save<T: Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(v)?;
    write_private(path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_refused_when_exposed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("agent.json");
        write_private(&p, b"{}").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_private(&p).unwrap().unwrap(), b"{}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_private(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(read_private(&dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn corrupt_state_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache.json");
        write_private(&p, b"{not json").unwrap();
        let e = load::<CacheFile>(&p).err().unwrap().to_string();
        assert!(e.contains("corrupt") && e.contains("remove it"), "{e}");
    }
}
