//! The unix workload attestor (SPIRE's `unix` plugin): selectors from `/proc/<pid>` and the
//! local user and group databases.
//!
//! Selectors, all of type `unix`, in this order:
//! - `uid:<uid>`, `user:<name>` (from the passwd file; omitted when the uid has no name),
//! - `gid:<gid>`, `group:<name>` (from the group file; omitted likewise),
//! - `supplementary_gid:<gid>` / `supplementary_group:<name>` for each gid on the `Groups:` line
//!   of `/proc/<pid>/status`,
//! - `path:<exe>` (the target of `/proc/<pid>/exe`) and `sha256:<hex>` (of the executable, read
//!   through `/proc/<pid>/exe`, so a binary replaced on disk after exec is not what gets hashed).
//!   A deleted executable (link text ending in ` (deleted)`) yields neither: its old path no
//!   longer names what runs. An executable over the hashing cap yields no `sha256`.
//!
//! uid and gid come from `SO_PEERCRED`, not from `/proc`; `/proc` must agree with them.
//!
//! Pid reuse: the process start time (`/proc/<pid>/stat` field 22) is read before and after
//! everything else, and the effective uid/gid in `/proc/<pid>/status` must equal the socket
//! peer's. Any difference fails the attestation with "process changed while being attested".
//! (A pidfd taken at accept time would close the remaining window, where the original caller
//! exits and an unrelated process with the same start tick takes its pid; that needs a custom
//! `Connected` type and is left for later.)

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::{AttestError, Caller, WorkloadAttestor};
use crate::cache::Selector;

/// Executables larger than this are not hashed (no `unix:sha256` selector).
pub const DEFAULT_MAX_HASH_BYTES: u64 = 512 * 1024 * 1024;

/// Remembered executable digests; the map is cleared when it grows past this.
const HASH_CACHE_CAPACITY: usize = 1024;

const DELETED_SUFFIX: &str = " (deleted)";

/// What identifies a file's contents without reading it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ExeKey {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
}

impl ExeKey {
    fn of(m: &std::fs::Metadata) -> Self {
        ExeKey {
            dev: m.dev(),
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            size: m.size(),
        }
    }
}

type Hook = Box<dyn Fn(i32) + Send + Sync>;

/// Attests callers from `/proc` (see the module docs for the selectors).
pub struct UnixAttestor {
    proc_root: PathBuf,
    passwd: PathBuf,
    group: PathBuf,
    max_hash_bytes: u64,
    hashes: Mutex<HashMap<ExeKey, String>>,
    names: NameFiles,
    hashes_computed: AtomicU64,
    after_first_stat: Option<Hook>,
}

impl std::fmt::Debug for UnixAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixAttestor")
            .field("proc_root", &self.proc_root)
            .field("passwd", &self.passwd)
            .field("group", &self.group)
            .field("max_hash_bytes", &self.max_hash_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for UnixAttestor {
    fn default() -> Self {
        Self::new()
    }
}

impl UnixAttestor {
    /// Reads the host's `/proc`, `/etc/passwd` and `/etc/group`.
    pub fn new() -> Self {
        Self::with_roots("/proc", "/etc/passwd", "/etc/group")
    }

    /// Reads a `/proc`-shaped tree and user/group files elsewhere (tests build them in a
    /// temporary directory).
    pub fn with_roots(
        proc_root: impl Into<PathBuf>,
        passwd: impl Into<PathBuf>,
        group: impl Into<PathBuf>,
    ) -> Self {
        UnixAttestor {
            proc_root: proc_root.into(),
            passwd: passwd.into(),
            group: group.into(),
            max_hash_bytes: DEFAULT_MAX_HASH_BYTES,
            hashes: Mutex::new(HashMap::new()),
            names: NameFiles::default(),
            hashes_computed: AtomicU64::new(0),
            after_first_stat: None,
        }
    }

    /// Executables larger than `max` bytes get no `sha256` selector.
    pub fn max_hash_bytes(mut self, max: u64) -> Self {
        self.max_hash_bytes = max;
        self
    }

    /// Runs `hook(pid)` after the first start-time read and before anything else is gathered.
    /// For tests that simulate pid reuse by changing the process between the two reads.
    pub fn with_gather_hook(mut self, hook: impl Fn(i32) + Send + Sync + 'static) -> Self {
        self.after_first_stat = Some(Box::new(hook));
        self
    }

    /// How many times an executable was actually read and hashed (cache misses).
    pub fn hashes_computed(&self) -> u64 {
        self.hashes_computed.load(Ordering::Relaxed)
    }

    fn pid_dir(&self, pid: i32) -> PathBuf {
        self.proc_root.join(pid.to_string())
    }

    /// Start time of the process in clock ticks since boot (stat field 22).
    fn start_time(&self, pid: i32) -> Result<u64, AttestError> {
        let path = self.pid_dir(pid).join("stat");
        let text = read_proc_file(&path, pid)?;
        parse_start_time(&text).ok_or_else(|| AttestError::Malformed {
            path,
            detail: "no start time (field 22) after the command name".to_owned(),
        })
    }

    fn status(&self, pid: i32) -> Result<ProcStatus, AttestError> {
        let path = self.pid_dir(pid).join("status");
        let text = read_proc_file(&path, pid)?;
        ProcStatus::parse(&text).map_err(|detail| AttestError::Malformed { path, detail })
    }

    /// `path:` and `sha256:` selectors for the process's executable.
    /// Adds `unix:path` and `unix:sha256`. With `may_hash` false, returns `Ok(false)` instead
    /// of reading an executable whose digest is not cached.
    fn exe_selectors(
        &self,
        pid: i32,
        out: &mut Vec<Selector>,
        may_hash: bool,
    ) -> Result<bool, AttestError> {
        let link = self.pid_dir(pid).join("exe");
        let target = match std::fs::read_link(&link) {
            Ok(t) => t,
            Err(e) => return exe_unreadable(pid, &link, e).map(|()| true),
        };
        let target = target.to_string_lossy().into_owned();
        if target.ends_with(DELETED_SUFFIX) {
            warn!(
                pid,
                exe = %target,
                "workload's executable was deleted after it started; no unix:path or unix:sha256 \
                 selector"
            );
            return Ok(true);
        }
        out.push(Selector::new("unix", format!("path:{target}")));
        match File::open(&link) {
            Ok(file) => match self.sha256_of(pid, file, &link, may_hash)? {
                ExeDigest::Known(hex) => {
                    out.push(Selector::new("unix", format!("sha256:{hex}")));
                    Ok(true)
                }
                ExeDigest::Skipped => Ok(true),
                ExeDigest::NotCached => Ok(false),
            },
            Err(e) => exe_unreadable(pid, &link, e).map(|()| true),
        }
    }

    /// The executable's SHA-256, from the cache when its (dev, inode, mtime, size) was seen.
    fn sha256_of(
        &self,
        pid: i32,
        mut file: File,
        link: &Path,
        may_hash: bool,
    ) -> Result<ExeDigest, AttestError> {
        let io_err = |source| AttestError::Io {
            path: link.to_owned(),
            source,
        };
        let meta = file.metadata().map_err(io_err)?;
        if meta.size() > self.max_hash_bytes {
            warn!(
                pid,
                size = meta.size(),
                cap = self.max_hash_bytes,
                "workload's executable is larger than the hashing cap; no unix:sha256 selector"
            );
            return Ok(ExeDigest::Skipped);
        }
        let key = ExeKey::of(&meta);
        if let Some(hex) = self.cache().get(&key) {
            return Ok(ExeDigest::Known(hex.clone()));
        }
        if !may_hash {
            return Ok(ExeDigest::NotCached);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = file.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > self.max_hash_bytes {
                warn!(
                    pid,
                    "workload's executable grew past the hashing cap while being read"
                );
                return Ok(ExeDigest::Skipped);
            }
            hasher.update(&buf[..n]);
        }
        self.hashes_computed.fetch_add(1, Ordering::Relaxed);
        let hex = hex::encode(hasher.finalize());
        // Cache only if the file did not change while it was read.
        let after = file.metadata().map_err(io_err)?;
        if ExeKey::of(&after) == key && total == key.size {
            let mut cache = self.cache();
            if cache.len() >= HASH_CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, hex.clone());
        } else {
            debug!(
                pid,
                "executable changed while being hashed; digest not cached"
            );
        }
        Ok(ExeDigest::Known(hex))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ExeKey, String>> {
        // A poisoned cache only means another attestation panicked mid-insert; the map is
        // still a valid map.
        self.hashes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl WorkloadAttestor for UnixAttestor {
    fn attest(&self, caller: &Caller) -> Result<Vec<Selector>, AttestError> {
        // With hashing allowed the procedure always completes.
        self.run(caller, true)?
            .ok_or_else(|| AttestError::Malformed {
                path: self.pid_dir(caller.pid),
                detail: "attestation stopped before hashing the executable".into(),
            })
    }

    fn attest_nonblocking(&self, caller: &Caller) -> Option<Result<Vec<Selector>, AttestError>> {
        self.run(caller, false).transpose()
    }
}

impl UnixAttestor {
    /// The whole procedure; `Ok(None)` when `may_hash` is false and the executable's digest is
    /// not cached yet.
    fn run(&self, caller: &Caller, may_hash: bool) -> Result<Option<Vec<Selector>>, AttestError> {
        let pid = caller.pid;
        if pid <= 0 {
            return Err(AttestError::NoPid);
        }
        let started = self.start_time(pid)?;
        if let Some(hook) = &self.after_first_stat {
            hook(pid);
        }

        let status = self.status(pid)?;
        if status.euid != caller.uid || status.egid != caller.gid {
            return Err(AttestError::ProcessChanged {
                pid,
                detail: format!(
                    "the socket peer was uid {} gid {}, but /proc/{pid}/status now says \
                     effective uid {} gid {}",
                    caller.uid, caller.gid, status.euid, status.egid
                ),
            });
        }

        let users = self.names.get(&self.passwd);
        let groups = self.names.get(&self.group);
        let mut out = Vec::new();
        out.push(Selector::new("unix", format!("uid:{}", caller.uid)));
        if let Some(name) = users.get(&caller.uid) {
            out.push(Selector::new("unix", format!("user:{name}")));
        }
        out.push(Selector::new("unix", format!("gid:{}", caller.gid)));
        if let Some(name) = groups.get(&caller.gid) {
            out.push(Selector::new("unix", format!("group:{name}")));
        }
        for gid in &status.groups {
            out.push(Selector::new("unix", format!("supplementary_gid:{gid}")));
        }
        for gid in &status.groups {
            if let Some(name) = groups.get(gid) {
                out.push(Selector::new("unix", format!("supplementary_group:{name}")));
            }
        }
        if !self.exe_selectors(pid, &mut out, may_hash)? {
            return Ok(None);
        }

        let now = self.start_time(pid)?;
        if now != started {
            return Err(AttestError::ProcessChanged {
                pid,
                detail: format!(
                    "its start time went from {started} to {now} ticks (the pid was reused)"
                ),
            });
        }
        Ok(Some(out))
    }
}

/// The outcome of looking for an executable's digest.
enum ExeDigest {
    Known(String),
    /// Too large to hash (logged): no `unix:sha256` selector.
    Skipped,
    /// Not cached and hashing was not allowed.
    NotCached,
}

/// id → name, from a passwd- or group-format file.
type Names = Arc<HashMap<u32, String>>;

/// Parsed passwd/group files, re-read only when their (inode, mtime, size) changes.
#[derive(Default)]
struct NameFiles {
    parsed: Mutex<HashMap<PathBuf, (ExeKey, Names)>>,
}

impl NameFiles {
    fn get(&self, path: &Path) -> Names {
        let Ok(meta) = std::fs::metadata(path) else {
            return Arc::new(read_names(path, 2));
        };
        let key = ExeKey::of(&meta);
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, names)) = parsed.get(path)
            && *k == key
        {
            return names.clone();
        }
        let names = Arc::new(read_names(path, 2));
        parsed.insert(path.to_owned(), (key, names.clone()));
        names
    }
}

/// Reads a file under `/proc/<pid>`; a missing file means the process is gone.
fn read_proc_file(path: &Path, pid: i32) -> Result<String, AttestError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if is_gone(&e) => Err(AttestError::ProcessGone { pid }),
        Err(source) => Err(AttestError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// ENOENT and ESRCH both mean the process (or its exe link) no longer exists.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3)
}

/// The exe link could not be read: gone → error; not permitted → fewer selectors (which can
/// only match fewer entries), with a warning.
fn exe_unreadable(pid: i32, link: &Path, e: io::Error) -> Result<(), AttestError> {
    if is_gone(&e) {
        return Err(AttestError::ProcessGone { pid });
    }
    if e.kind() == io::ErrorKind::PermissionDenied {
        warn!(
            pid,
            error = %e,
            "cannot read the workload's executable (the agent needs ptrace access to it); \
             no unix:path or unix:sha256 selector"
        );
        return Ok(());
    }
    Err(AttestError::Io {
        path: link.to_owned(),
        source: e,
    })
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and parentheses, so counting starts after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come fields 3 (state), 4, ...; field 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What attestation needs from `/proc/<pid>/status`.
#[derive(Debug, PartialEq, Eq)]
struct ProcStatus {
    euid: u32,
    egid: u32,
    groups: Vec<u32>,
}

impl ProcStatus {
    fn parse(text: &str) -> Result<Self, String> {
        let mut euid = None;
        let mut egid = None;
        let mut groups = None;
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                // Real, effective, saved, filesystem.
                "Uid" => euid = Some(nth_id(v, 1).ok_or("bad Uid: line")?),
                "Gid" => egid = Some(nth_id(v, 1).ok_or("bad Gid: line")?),
                "Groups" => {
                    let mut gs = Vec::new();
                    for g in v.split_whitespace() {
                        gs.push(g.parse().map_err(|_| format!("bad group id {g:?}"))?);
                    }
                    groups = Some(gs);
                }
                _ => {}
            }
        }
        Ok(ProcStatus {
            euid: euid.ok_or("no Uid: line")?,
            egid: egid.ok_or("no Gid: line")?,
            groups: groups.unwrap_or_default(),
        })
    }
}

fn nth_id(v: &str, n: usize) -> Option<u32> {
    v.split_whitespace().nth(n)?.parse().ok()
}

/// id → name from a passwd- or group-format file (`name:x:id:...`); the first name for an id
/// wins. An unreadable file gives no names (and so no name selectors).
fn read_names(path: &Path, id_field: usize) -> HashMap<u32, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            debug!(path = %path.display(), error = %e, "cannot read names; no name selectors");
            return HashMap::new();
        }
    };
    let mut names = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(id)) = (fields.first(), fields.get(id_field)) else {
            continue;
        };
        if let Ok(id) = id.parse::<u32>()
            && !name.is_empty()
        {
            names.entry(id).or_insert_with(|| (*name).to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 12345678 100 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("1 (x) S 1 2"), None);
        assert_eq!(parse_start_time("no parens"), None);
    }

    #[test]
    fn status_parses_effective_ids_and_groups() {
        let s = "Name:\tpython3\nUid:\t1000\t1001\t1000\t1000\nGid:\t100\t101\t100\t100\n\
                 Groups:\t4 24 27 \n";
        assert_eq!(
            ProcStatus::parse(s).unwrap(),
            ProcStatus {
                euid: 1001,
                egid: 101,
                groups: vec![4, 24, 27]
            }
        );
        let empty = ProcStatus::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n").unwrap();
        assert!(empty.groups.is_empty());
        assert_eq!(
            ProcStatus::parse("Gid:\t0\t0\t0\t0\n").unwrap_err(),
            "no Uid: line"
        );
        assert!(ProcStatus::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\tx\n").is_err());
    }

    #[test]
    fn names_take_the_first_entry_for_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(
            &p,
            "# comment\nroot:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\nbad\n",
        )
        .unwrap();
        let names = read_names(&p, 2);
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.len(), 1);
        assert!(read_names(&dir.path().join("missing"), 2).is_empty());
    }
}
