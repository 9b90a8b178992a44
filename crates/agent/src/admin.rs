//! The agent's admin API (`sigil entry explain`) on its own private Unix socket.
//!
//! The Workload API socket is world-reachable by design, so nothing that lists entries may be
//! served there. As SPIRE's agent `admin_socket_path`, this socket:
//! - is never in the Workload API socket's directory ([`crate::config`] refuses that);
//! - is created with mode 0600, in a directory that is created 0700 when missing and refused
//!   when other users may write to it;
//! - answers only callers with the agent's own uid or root (checked from `SO_PEERCRED`, which
//!   also covers the moment between `bind(2)` and `chmod(2)`).
//!
//! [`explain`] is pure: it applies the Workload API's own rule ([`selectors_match`] and
//! [`Entitlement`]) to the cache snapshot, so an explanation cannot disagree with what a
//! workload actually gets.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sigil_proto::agent_admin::agent_admin_server::{AgentAdmin, AgentAdminServer};
use sigil_proto::agent_admin::{
    EntryExplanation, ExplainEntriesRequest, ExplainEntriesResponse, SelectorMiss,
    explain_entries_request::Subject,
};
use sigil_proto::node::{self as pb, GetAuthorizedEntriesRequest};
use sigil_server::tasks::Tasks;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};
use tracing::{debug, info};

use crate::attestor::{AttestError, Caller, WorkloadAttestor};
use crate::cache::{CacheRx, CacheState, Selector, selectors_match};
use crate::manager::{Manager, now_unix};
use crate::workload_api::views::Entitlement;

/// How long an explanation waits for the server's list of authorized entries.
const SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent cannot see, said plainly in every explanation.
const UNSEEN_NOTE: &str = "the agent sees only the entries the server authorizes for it: those \
    parented to this agent, to a node alias this node matches, or to an entry among those. An \
    entry parented to another agent or alias (e.g. a mistyped -parentID) is not listed here; \
    look for it on the server with `sigil entry show -selector TYPE:VALUE`";

/// The admin service. Cheap to clone.
#[derive(Clone)]
pub struct AgentAdminService {
    cache: CacheRx,
    attestor: Arc<dyn WorkloadAttestor>,
    manager: Arc<Manager>,
    proc_root: PathBuf,
    own_uid: u32,
}

impl AgentAdminService {
    /// Uses the same attestor and cache snapshot as the Workload API.
    pub fn new(cache: CacheRx, attestor: Arc<dyn WorkloadAttestor>, manager: Arc<Manager>) -> Self {
        let own_uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
        AgentAdminService {
            cache,
            attestor,
            manager,
            proc_root: PathBuf::from("/proc"),
            own_uid,
        }
    }

    fn check_caller<T>(&self, request: &Request<T>) -> Result<u32, Status> {
        let uid = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred)
            .map(|c| c.uid())
            .ok_or_else(|| {
                Status::permission_denied("the agent admin API needs the caller's credentials")
            })?;
        if uid != self.own_uid && uid != 0 {
            return Err(Status::permission_denied(format!(
                "only the agent's user (uid {}) or root may use the agent admin API; you are \
                 uid {uid}",
                self.own_uid
            )));
        }
        Ok(uid)
    }

    /// Attests `pid` exactly as the Workload API attests a caller with that pid.
    async fn attest_pid(&self, pid: i32) -> Result<Vec<Selector>, Status> {
        if pid <= 0 {
            return Err(Status::invalid_argument(format!(
                "--pid {pid}: give the process ID of a running workload (a positive number)"
            )));
        }
        let caller = caller_of_pid(&self.proc_root, pid)?;
        let attestor = self.attestor.clone();
        let attested = tokio::task::spawn_blocking(move || attestor.attest(&caller))
            .await
            .map_err(|e| Status::internal(format!("workload attestation task failed: {e}")))?;
        attested.map_err(|e| match e {
            AttestError::ProcessGone { pid } => no_such_process(pid),
            e if e.is_caller_fault() => Status::aborted(format!("{e}; run the command again")),
            e => Status::internal(format!("cannot attest process {pid}: {e}")),
        })
    }

    /// The server's current list of entries for this agent, or why it could not be had.
    async fn authorized_entries(&self) -> Result<Vec<pb::Entry>, String> {
        let ask = async {
            let mut client = self.manager.node_client().await?;
            let r = client
                .get_authorized_entries(GetAuthorizedEntriesRequest {})
                .await?;
            anyhow::Ok(r.into_inner().entries)
        };
        match tokio::time::timeout(SERVER_TIMEOUT, ask).await {
            Ok(Ok(entries)) => Ok(entries),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!(
                "the server did not answer within {}s",
                SERVER_TIMEOUT.as_secs()
            )),
        }
    }
}

fn no_such_process(pid: i32) -> Status {
    Status::not_found(format!(
        "process {pid} does not exist on this host (no /proc/{pid} in the agent's PID \
         namespace); check the pid, e.g. with `pgrep -a NAME`"
    ))
}

/// The pid's effective uid and gid, as `SO_PEERCRED` would report them for a connection it
/// made now (the unix attestor checks them against `/proc` again).
fn caller_of_pid(proc_root: &Path, pid: i32) -> Result<Caller, Status> {
    let path = proc_root.join(pid.to_string()).join("status");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) || e.raw_os_error() == Some(3) => {
            return Err(no_such_process(pid));
        }
        Err(e) => {
            return Err(Status::internal(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let effective = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| {
                Status::internal(format!("{} has no readable {key} line", path.display()))
            })
    };
    Ok(Caller {
        pid,
        uid: effective("Uid:")?,
        gid: effective("Gid:")?,
    })
}

fn from_pb(s: &pb::Selector) -> Selector {
    Selector::new(s.r#type.clone(), s.value.clone())
}

fn to_pb(s: &Selector) -> pb::Selector {
    pb::Selector {
        r#type: s.r#type.clone(),
        value: s.value.clone(),
    }
}

/// What a selector is about: its type and, for `uid:1000`-shaped values, the key (`uid`).
fn kind(s: &Selector) -> (&str, &str) {
    let key = s.value.split_once(':').map_or("", |(k, _)| k);
    (s.r#type.as_str(), key)
}

/// One entry as [`explain`] sees it, before matching.
struct Candidate<'a> {
    entry_id: &'a str,
    spiffe_id: &'a str,
    parent_id: &'a str,
    selectors: Vec<Selector>,
    hint: &'a str,
}

/// Explains, for a subject with `subject` selectors, every entry the agent knows: the
/// server's current `authorized` list (or why it could not be had) and every entry with a
/// cached SVID. Whether an entry is *served* is decided by the Workload API's own
/// [`Entitlement`]; for a cached entry the cached selectors count, as they do there.
pub fn explain(
    subject: &[Selector],
    authorized: Result<&[pb::Entry], &str>,
    state: &CacheState,
    now: i64,
) -> ExplainEntriesResponse {
    let ent = Entitlement::of(state, subject, now);
    let served: HashSet<&str> = ent.svids.iter().map(|s| s.entry_id.as_str()).collect();
    let dropped: HashMap<&str, &str> = ent
        .dropped_hints
        .iter()
        .map(|(id, hint)| (id.as_str(), hint.as_str()))
        .collect();
    let cached: HashMap<&str, _> = state
        .svids
        .iter()
        .map(|s| (s.entry_id.as_str(), s.clone()))
        .collect();

    let mut candidates = Vec::new();
    let mut listed = HashSet::new();
    for e in authorized.unwrap_or_default() {
        listed.insert(e.id.as_str());
        candidates.push(Candidate {
            entry_id: &e.id,
            spiffe_id: &e.spiffe_id,
            parent_id: &e.parent_id,
            selectors: match cached.get(e.id.as_str()) {
                Some(c) => c.selectors.clone(),
                None => e.selectors.iter().map(from_pb).collect(),
            },
            hint: &e.hint,
        });
    }
    for c in &state.svids {
        if !listed.contains(c.entry_id.as_str()) {
            candidates.push(Candidate {
                entry_id: &c.entry_id,
                spiffe_id: c.spiffe_id.as_str(),
                parent_id: "",
                selectors: c.selectors.clone(),
                hint: &c.hint,
            });
        }
    }
    candidates.sort_by(|a, b| (a.spiffe_id, a.entry_id).cmp(&(b.spiffe_id, b.entry_id)));

    let entries: Vec<EntryExplanation> = candidates
        .iter()
        .map(|c| {
            let matched = selectors_match(&c.selectors, subject);
            let missing = c
                .selectors
                .iter()
                .filter(|s| !subject.contains(s))
                .map(|s| SelectorMiss {
                    wanted: Some(to_pb(s)),
                    have: subject
                        .iter()
                        .filter(|h| kind(h) == kind(s))
                        .map(to_pb)
                        .collect(),
                })
                .collect();
            let svid = cached.get(c.entry_id);
            let is_served = served.contains(c.entry_id);
            let not_served_reason = if c.selectors.is_empty() {
                "the entry has no selectors, so it matches no workload".to_owned()
            } else if !matched || is_served {
                String::new()
            } else if let Some(hint) = dropped.get(c.entry_id) {
                format!(
                    "another entry served to this subject has the same hint {hint:?}; hints \
                     must be unique in one response, so only the first (by SPIFFE ID) is served"
                )
            } else {
                match svid {
                    None => "the agent holds no SVID for this entry yet: it asks the server for \
                             one at every sync; if this lasts, the agent's log says why the server \
                             refused (\"server refused an SVID\")"
                        .to_owned(),
                    Some(s) => format!(
                        "its SVID expired at unix time {} and was not renewed{}",
                        s.not_after,
                        match &state.unavailable {
                            Some(why) => format!(": {why}"),
                            None => String::new(),
                        }
                    ),
                }
            };
            EntryExplanation {
                entry_id: c.entry_id.to_owned(),
                spiffe_id: c.spiffe_id.to_owned(),
                parent_id: c.parent_id.to_owned(),
                selectors: c.selectors.iter().map(to_pb).collect(),
                matched,
                missing,
                svid_cached: svid.is_some(),
                svid_expires_at: svid.map_or(0, |s| s.not_after),
                served: is_served,
                not_served_reason,
                hint: c.hint.to_owned(),
            }
        })
        .collect();

    let closest_entry_id = if entries.iter().any(|e| e.matched) {
        String::new()
    } else {
        entries
            .iter()
            .filter(|e| !e.selectors.is_empty())
            .min_by_key(|e| e.missing.len())
            .map(|e| e.entry_id.clone())
            .unwrap_or_default()
    };
    ExplainEntriesResponse {
        agent_id: String::new(),
        pid: 0,
        selectors: subject.iter().map(to_pb).collect(),
        entries,
        closest_entry_id,
        entries_from_server: authorized.is_ok(),
        server_error: authorized.err().unwrap_or_default().to_owned(),
        unseen_entries_note: UNSEEN_NOTE.to_owned(),
        unavailable: state.unavailable.clone().unwrap_or_default(),
        now,
    }
}

#[tonic::async_trait]
impl AgentAdmin for AgentAdminService {
    async fn explain_entries(
        &self,
        request: Request<ExplainEntriesRequest>,
    ) -> Result<Response<ExplainEntriesResponse>, Status> {
        let caller_uid = self.check_caller(&request)?;
        let (pid, subject) = match request.into_inner().subject {
            Some(Subject::Pid(pid)) => {
                debug!(caller_uid, pid, "explain request");
                (pid, self.attest_pid(pid).await?)
            }
            Some(Subject::Selectors(list)) => {
                debug!(
                    caller_uid,
                    selectors = list.selectors.len(),
                    "explain request"
                );
                if list.selectors.is_empty() {
                    return Err(Status::invalid_argument(
                        "give at least one selector, e.g. --selectors unix:uid:1000",
                    ));
                }
                (0, list.selectors.iter().map(from_pb).collect())
            }
            None => {
                return Err(Status::invalid_argument(
                    "say what to explain: a pid (--pid) or selectors (--selectors)",
                ));
            }
        };
        let authorized = self.authorized_entries().await;
        let state = self.cache.borrow().clone();
        let mut out = explain(
            &subject,
            authorized.as_deref().map_err(String::as_str),
            &state,
            now_unix(),
        );
        out.agent_id = self.manager.agent_id().await.unwrap_or_default();
        out.pid = pid;
        Ok(Response::new(out))
    }
}

/// Binds the admin socket at `path`: the parent directory is created 0700 when missing and
/// refused when other users may write to it; a stale socket is replaced, a live one or a
/// non-socket file is an error; the socket gets mode 0600.
pub fn bind_admin_socket(path: &Path) -> io::Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(parent) {
        Ok(m) if m.permissions().mode() & 0o022 != 0 => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to put the agent admin socket in {}: other users may write to \
                     that directory (mode {:04o}), so they could replace the socket; use a \
                     directory only the agent can write to (the default is <data-dir>/admin.sock)",
                    parent.display(),
                    m.permissions().mode() & 0o7777
                ),
            ));
        }
        Ok(m) if m.uid() != 0 && Some(m.uid()) != own_uid() => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to put the agent admin socket in {}: the directory belongs to uid \
                     {}, who could replace the socket; use a directory owned by the agent's user \
                     or root (the default is <data-dir>/admin.sock)",
                    parent.display(),
                    m.uid()
                ),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        Err(e) => return Err(e),
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it with the agent admin \
                     socket",
                    path.display()
                ),
            ));
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another process is serving on {}; stop it (is another agent running?) \
                         or choose another --admin-socket-path",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Binds the admin socket (see [`bind_admin_socket`]), with an error naming the flag.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let listener = bind_admin_socket(path).with_context(|| {
        format!(
            "cannot bind the agent admin socket {} (--admin-socket-path)",
            path.display()
        )
    })?;
    info!(socket = %path.display(), "agent admin socket bound");
    Ok(listener)
}

/// Serves `service` on `listener` until the tasks' shutdown.
pub fn serve(listener: UnixListener, service: AgentAdminService, tasks: &mut Tasks) {
    let mut rx = tasks.shutdown_signal();
    tasks.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AgentAdminServer::new(service))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
            .context("the agent admin server failed")
    });
}

/// The agent's own uid (the owner of `/proc/self`, as the caller check uses).
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CachedSvid;
    use sigil_spiffe::{SpiffeId, TrustDomain};

    const NOW: i64 = 1_000_000;

    fn sel(s: &str) -> Selector {
        let (t, v) = s.split_once(':').unwrap();
        Selector::new(t, v)
    }

    fn sels(list: &[&str]) -> Vec<Selector> {
        list.iter().map(|s| sel(s)).collect()
    }

    fn svid(id: &str, spiffe_id: &str, selectors: &[&str], not_after: i64) -> Arc<CachedSvid> {
        hinted(id, spiffe_id, selectors, not_after, "")
    }

    fn hinted(
        id: &str,
        spiffe_id: &str,
        selectors: &[&str],
        not_after: i64,
        hint: &str,
    ) -> Arc<CachedSvid> {
        Arc::new(CachedSvid {
            entry_id: id.into(),
            spiffe_id: SpiffeId::parse(spiffe_id).unwrap(),
            selectors: sels(selectors),
            chain: Vec::new(),
            key_pkcs8: zeroize::Zeroizing::new(Vec::new()),
            not_after,
            hint: hint.into(),
            federates_with: Vec::new(),
            jwt_svid_ttl: 0,
        })
    }

    fn entry(id: &str, spiffe_id: &str, selectors: &[&str]) -> pb::Entry {
        pb::Entry {
            id: id.into(),
            spiffe_id: spiffe_id.into(),
            parent_id: "spiffe://cluster.local/spire/agent/join_token/t".into(),
            selectors: sels(selectors).iter().map(to_pb).collect(),
            ..Default::default()
        }
    }

    fn state(svids: Vec<Arc<CachedSvid>>) -> CacheState {
        let mut s = CacheState::empty(TrustDomain::new("cluster.local").unwrap());
        s.svids = svids;
        s
    }

    fn row<'a>(r: &'a ExplainEntriesResponse, id: &str) -> &'a EntryExplanation {
        r.entries.iter().find(|e| e.entry_id == id).unwrap()
    }

    fn show(sels: &[pb::Selector]) -> Vec<String> {
        sels.iter()
            .map(|s| format!("{}:{}", s.r#type, s.value))
            .collect()
    }

    #[test]
    fn match_and_near_misses_follow_the_workload_api_rule() {
        let st = state(vec![
            svid(
                "a",
                "spiffe://cluster.local/app",
                &["unix:uid:1000"],
                NOW + 60,
            ),
            svid(
                "b",
                "spiffe://cluster.local/db",
                &["unix:uid:1001", "unix:path:/usr/bin/db"],
                NOW + 60,
            ),
        ]);
        let auth = [
            entry("a", "spiffe://cluster.local/app", &["unix:uid:1000"]),
            entry(
                "b",
                "spiffe://cluster.local/db",
                &["unix:uid:1001", "unix:path:/usr/bin/db"],
            ),
        ];
        let subject = sels(&["unix:uid:1000", "unix:gid:1000", "unix:path:/usr/bin/app"]);
        let r = explain(&subject, Ok(&auth), &st, NOW);
        let a = row(&r, "a");
        assert!(a.matched && a.served && a.svid_cached && a.missing.is_empty());
        assert_eq!(a.svid_expires_at, NOW + 60);
        let b = row(&r, "b");
        assert!(!b.matched && !b.served && b.not_served_reason.is_empty());
        let missing: Vec<(String, Vec<String>)> = b
            .missing
            .iter()
            .map(|m| {
                let w = m.wanted.as_ref().unwrap();
                (format!("{}:{}", w.r#type, w.value), show(&m.have))
            })
            .collect();
        assert_eq!(
            missing,
            [
                ("unix:uid:1001".to_owned(), vec!["unix:uid:1000".to_owned()]),
                (
                    "unix:path:/usr/bin/db".to_owned(),
                    vec!["unix:path:/usr/bin/app".to_owned()]
                ),
            ]
        );
        assert!(r.closest_entry_id.is_empty(), "an entry matched");
        assert!(r.entries_from_server && r.server_error.is_empty());
        // The served set is exactly what the Workload API hands out.
        let served: Vec<&str> = r
            .entries
            .iter()
            .filter(|e| e.served)
            .map(|e| e.entry_id.as_str())
            .collect();
        let wl: Vec<String> = st
            .svids_for(&subject, NOW)
            .iter()
            .map(|s| s.entry_id.clone())
            .collect();
        assert_eq!(served, wl);
    }

    #[test]
    fn closest_is_the_entry_missing_fewest_selectors() {
        let auth = [
            entry(
                "two",
                "spiffe://cluster.local/a",
                &["unix:uid:7", "unix:gid:7"],
            ),
            entry(
                "one",
                "spiffe://cluster.local/b",
                &["unix:uid:7", "unix:gid:1000"],
            ),
        ];
        let subject = sels(&["unix:uid:1000", "unix:gid:1000"]);
        let r = explain(&subject, Ok(&auth), &state(vec![]), NOW);
        assert_eq!(r.closest_entry_id, "one");
        assert!(r.entries.iter().all(|e| !e.matched && !e.served));
        // Nothing held at all: no closest.
        let r = explain(&subject, Ok(&[]), &state(vec![]), NOW);
        assert!(r.entries.is_empty() && r.closest_entry_id.is_empty());
    }

    #[test]
    fn matched_but_not_served_says_why() {
        let st = state(vec![
            svid(
                "old",
                "spiffe://cluster.local/old",
                &["unix:uid:1"],
                NOW - 1,
            ),
            hinted(
                "h1",
                "spiffe://cluster.local/a",
                &["unix:uid:1"],
                NOW + 60,
                "web",
            ),
            hinted(
                "h2",
                "spiffe://cluster.local/b",
                &["unix:uid:1"],
                NOW + 60,
                "web",
            ),
        ]);
        let auth = [
            entry("new", "spiffe://cluster.local/new", &["unix:uid:1"]),
            entry("old", "spiffe://cluster.local/old", &["unix:uid:1"]),
            entry("h1", "spiffe://cluster.local/a", &["unix:uid:1"]),
            entry("h2", "spiffe://cluster.local/b", &["unix:uid:1"]),
            entry("none", "spiffe://cluster.local/none", &[]),
        ];
        let r = explain(&sels(&["unix:uid:1"]), Ok(&auth), &st, NOW);
        let new = row(&r, "new");
        assert!(new.matched && !new.served && !new.svid_cached);
        assert!(
            new.not_served_reason.contains("holds no SVID"),
            "{}",
            new.not_served_reason
        );
        let old = row(&r, "old");
        assert!(old.matched && !old.served && old.svid_cached);
        assert!(
            old.not_served_reason.contains("expired"),
            "{}",
            old.not_served_reason
        );
        assert!(row(&r, "h1").served);
        let h2 = row(&r, "h2");
        assert!(!h2.served && h2.not_served_reason.contains("same hint \"web\""));
        let none = row(&r, "none");
        assert!(!none.matched && none.not_served_reason.contains("no selectors"));
    }

    #[test]
    fn without_the_server_only_cached_entries_are_listed_and_that_is_said() {
        let st = state(vec![svid(
            "a",
            "spiffe://cluster.local/app",
            &["unix:uid:5"],
            NOW + 60,
        )]);
        let r = explain(&sels(&["unix:uid:6"]), Err("connection refused"), &st, NOW);
        assert!(!r.entries_from_server);
        assert_eq!(r.server_error, "connection refused");
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].parent_id, "", "parent unknown from the cache");
        assert_eq!(r.closest_entry_id, "a");
        assert!(r.unseen_entries_note.contains("sigil entry show -selector"));
    }

    #[test]
    fn a_pid_is_read_from_proc_and_a_missing_one_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::fs::write(
            dir.path().join("42/status"),
            "Name:\tsleep\nUid:\t1001\t1002\t1002\t1002\nGid:\t50\t51\t51\t51\n",
        )
        .unwrap();
        let c = caller_of_pid(dir.path(), 42).unwrap();
        assert_eq!((c.pid, c.uid, c.gid), (42, 1002, 51), "effective ids");
        let e = caller_of_pid(dir.path(), 43).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(
            e.message().contains("process 43 does not exist"),
            "{}",
            e.message()
        );
    }

    #[tokio::test]
    async fn the_socket_is_private_and_its_directory_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new/admin.sock");
        let l = bind_admin_socket(&p).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        let e = bind_admin_socket(&p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        bind_admin_socket(&p).unwrap();

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = bind_admin_socket(&open.join("admin.sock")).unwrap_err();
        assert!(e.to_string().contains("other users may write"), "{e}");

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = bind_admin_socket(&file).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
    }
}
