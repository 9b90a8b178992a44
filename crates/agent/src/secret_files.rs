//! Secrets written as files on the node, for what has no proxy (nginx, haproxy, a job):
//! `<dir>/<namespace>/<secret>/tls.crt|tls.key|ca.crt|…`, followed by an optional reload
//! command after each change.
//!
//! Files change atomically as a set, the way Kubernetes updates a mounted Secret: the values go
//! into a new hidden directory `..<time>_<random>`, the symlink `..data` is swapped to it with a
//! rename, and every `<key>` is a symlink to `..data/<key>`. A reader sees the old pair or the
//! new pair, never a new certificate beside an old key. Private material (every key whose name
//! does not end in `.crt`) is 0600; certificates 0644.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_proto::node as pb;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::manager::Manager;

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A reload command still running after this is killed.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
const DATA_LINK: &str = "..data";

/// Which Secrets to write where, and what to run after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFilesConfig {
    pub dir: PathBuf,
    /// `(namespace, name)`.
    pub secrets: Vec<(String, String)>,
    /// Run with `/bin/sh -c` after the files of one or more Secrets changed.
    pub reload_command: Option<String>,
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_ref(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name))
            if sigil_policy::is_dns1123_label(ns) && sigil_policy::is_dns1123_subdomain(name) =>
        {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "{s:?} is not NAMESPACE/NAME of a Secret (e.g. payments/billing-service-tls)"
        )),
    }
}

fn private(key: &str) -> bool {
    !key.ends_with(".crt")
}

/// The current value of `key` in a Secret directory, if any.
fn current(dir: &Path, key: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(DATA_LINK).join(key)).ok()
}

/// Whether the files in `dir` already hold exactly `data`.
pub fn up_to_date(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> bool {
    let Ok(listing) = fs::read_dir(dir.join(DATA_LINK)) else {
        return false;
    };
    let present = listing
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .count();
    present == data.len()
        && data
            .iter()
            .all(|(k, v)| current(dir, k).as_deref() == Some(v.as_slice()))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes one Secret's values into `dir` (created 0755) as an atomic set. Returns whether
/// anything changed.
pub fn write_secret_dir(dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> std::io::Result<bool> {
    if up_to_date(dir, data) {
        return Ok(false);
    }
    for k in data.keys() {
        if !sigil_policy::is_secret_key(k) || k.starts_with("..") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the Secret holds a key {k:?} that cannot be a file name"),
            ));
        }
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let version = format!("..{stamp}_{:08x}", rand_u32());
    let vdir = dir.join(&version);
    fs::create_dir(&vdir)?;
    fs::set_permissions(&vdir, fs::Permissions::from_mode(0o755))?;
    let written = (|| {
        for (k, v) in data {
            write_file(&vdir.join(k), v, if private(k) { 0o600 } else { 0o644 })?;
        }
        fs::File::open(&vdir)?.sync_all()?;
        // Swap `..data` to the new version with one rename.
        let tmp = dir.join("..data_tmp");
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp)?;
        fs::rename(&tmp, dir.join(DATA_LINK))
    })();
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&vdir);
        return Err(e);
    }
    // Top-level links for the keys; stale ones (keys gone from the Secret) and old versions go.
    for k in data.keys() {
        let link = dir.join(k);
        if fs::read_link(&link).is_err() {
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(k), &link)?;
        }
    }
    for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == DATA_LINK || name == version {
            continue;
        }
        if name.starts_with("..") {
            let _ = fs::remove_dir_all(e.path());
        } else if !data.contains_key(&name) && fs::read_link(e.path()).is_ok() {
            let _ = fs::remove_file(e.path());
        }
    }
    fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    // The suffix only keeps two versions in one nanosecond apart; a failure leaves zeros.
    let _ = getrandom_fill(&mut b);
    u32::from_be_bytes(b)
}

fn getrandom_fill(b: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    fs::File::open("/dev/urandom")?.read_exact(b)
}

/// Runs the reload command; its outcome is logged, never fatal.
pub async fn run_reload(cmd: &str, changed: &[String]) {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("SIGIL_CHANGED_SECRETS", changed.join(" "))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!(command = %cmd, error = %e, "cannot start the Secret reload command");
            return;
        }
    };
    match tokio::time::timeout(RELOAD_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => {
            info!(command = %cmd, secrets = ?changed, "Secret files changed; reload command succeeded");
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            warn!(command = %cmd, status = %out.status, stderr = %tail.trim(), "Secret files changed; reload command failed");
        }
        Ok(Err(e)) => {
            warn!(command = %cmd, error = %e, "Secret reload command could not be waited for")
        }
        Err(_) => {
            warn!(command = %cmd, timeout_s = RELOAD_TIMEOUT.as_secs(), "Secret reload command timed out and was killed")
        }
    }
}

/// Applies one snapshot: writes every delivered Secret, logs every one that is not, and runs
/// the reload command once when anything changed. Returns the Secrets that changed.
pub async fn apply(cfg: &SecretFilesConfig, snapshot: pb::SecretsSnapshot) -> Vec<String> {
    let mut changed = Vec::new();
    for s in snapshot.secrets {
        let Some(r) = s.r#ref else { continue };
        let name = format!("{}/{}", r.namespace, r.name);
        if !cfg
            .secrets
            .iter()
            .any(|(ns, n)| *ns == r.namespace && *n == r.name)
        {
            warn!(secret = %name, "the server sent a Secret this agent did not ask for; ignored");
            continue;
        }
        if !s.problem.is_empty() {
            warn!(secret = %name, problem = %s.problem, "Secret not written: the server did not deliver it; the files in place stay");
            continue;
        }
        let dir = cfg.dir.join(&r.namespace).join(&r.name);
        let data: BTreeMap<String, Vec<u8>> = s.data.into_iter().collect();
        match write_secret_dir(&dir, &data) {
            Ok(true) => {
                info!(secret = %name, dir = %dir.display(), keys = ?data.keys().collect::<Vec<_>>(), revision = snapshot.revision, "Secret files written");
                changed.push(name);
            }
            Ok(false) => {}
            Err(e) => {
                warn!(secret = %name, dir = %dir.display(), error = %e, "cannot write the Secret's files; the previous files stay")
            }
        }
    }
    if !changed.is_empty()
        && let Some(cmd) = &cfg.reload_command
    {
        run_reload(cmd, &changed).await;
    }
    changed
}

/// Follows the server's Secret stream until `shutdown`, reconnecting with backoff.
pub async fn run(
    cfg: SecretFilesConfig,
    manager: Arc<Manager>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    fs::create_dir_all(&cfg.dir)?;
    let request = pb::StreamSecretsRequest {
        secrets: cfg
            .secrets
            .iter()
            .map(|(namespace, name)| pb::SecretRef {
                namespace: namespace.clone(),
                name: name.clone(),
            })
            .collect(),
    };
    let mut delay = RETRY_MIN;
    let mut failing = false;
    loop {
        let attempt = async {
            let mut client = manager.node_client().await?;
            let mut stream = client.stream_secrets(request.clone()).await?.into_inner();
            if failing {
                info!("Secret stream to the server restored");
            }
            failing = false;
            delay = RETRY_MIN;
            while let Some(s) = stream.message().await? {
                apply(&cfg, s).await;
            }
            anyhow::Ok(())
        };
        let result = tokio::select! {
            r = attempt => r,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        if let Err(e) = result {
            if !failing {
                warn!(error = %format!("{e:#}"), "Secret stream to the server lost; the files in place stay");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_a_set_swaps_it_atomically_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("payments/billing-service-tls");
        let v1 = data(&[("tls.crt", "C1"), ("tls.key", "K1"), ("ca.crt", "R")]);
        assert!(write_secret_dir(&dir, &v1).unwrap());
        assert_eq!(fs::read(dir.join("tls.crt")).unwrap(), b"C1");
        assert_eq!(fs::read(dir.join("tls.key")).unwrap(), b"K1");
        assert_eq!(mode(&dir.join("tls.key")), 0o600);
        assert_eq!(mode(&dir.join("tls.crt")), 0o644);
        // Same content: nothing written, no reload needed.
        assert!(!write_secret_dir(&dir, &v1).unwrap());
        // New pair, one key dropped.
        let v2 = data(&[("tls.crt", "C2"), ("tls.key", "K2")]);
        assert!(write_secret_dir(&dir, &v2).unwrap());
        assert_eq!(fs::read(dir.join("tls.crt")).unwrap(), b"C2");
        assert_eq!(fs::read(dir.join("tls.key")).unwrap(), b"K2");
        assert!(!dir.join("ca.crt").exists() && fs::symlink_metadata(dir.join("ca.crt")).is_err());
        let versions: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_LINK)
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
    }

    #[test]
    fn hostile_keys_are_refused_and_leave_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ns/s");
        write_secret_dir(&dir, &data(&[("tls.crt", "C1")])).unwrap();
        for bad in ["../escape", "..data", "a/b"] {
            assert!(
                write_secret_dir(&dir, &data(&[(bad, "x")])).is_err(),
                "{bad}"
            );
        }
        assert_eq!(fs::read(dir.join("tls.crt")).unwrap(), b"C1");
        assert!(!tmp.path().join("ns/escape").exists());
    }

    #[test]
    fn refs_parse() {
        assert_eq!(
            parse_ref("payments/billing-service-tls").unwrap(),
            ("payments".into(), "billing-service-tls".into())
        );
        for bad in ["nope", "/x", "NS/x", "ns/", "a/b/c"] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }
}
