//! Workload attestation: turning kernel facts about a caller into selectors.
//!
//! The Workload API learns who is calling from the Unix socket's `SO_PEERCRED` (pid, uid and
//! gid as the kernel recorded them at `connect(2)`), never from anything the caller sends. An
//! attestor looks the process up (for [`UnixAttestor`]: in `/proc`) and returns selectors such
//! as `unix:uid:1000`; registration entries whose selectors are all among them apply to the
//! caller. Several attestors (unix today, k8s later) combine with [`CompositeAttestor`].
//!
//! Attestation is synchronous and may do file IO (hashing an executable): async callers run it
//! on the blocking pool (`tokio::task::spawn_blocking`).

mod unix;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use unix::{DEFAULT_MAX_HASH_BYTES, UnixAttestor};

use crate::cache::Selector;

/// The caller as the kernel reports it through `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Why a caller could not be attested. Every variant means "no selectors": the caller gets
/// nothing rather than a partial identity.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// The socket peer has no process ID (for example a peer in another PID namespace).
    #[error(
        "the socket peer credentials carry no process ID, so the caller cannot be attested; \
         connect from a process in the agent's PID namespace"
    )]
    NoPid,
    /// The pid now names a different process (pid reuse) or the process changed identity
    /// (setuid) after it connected. The caller may retry.
    #[error("process changed while being attested (pid {pid}): {detail}")]
    ProcessChanged { pid: i32, detail: String },
    /// The process exited before it could be looked at.
    #[error("process {pid} exited before it could be attested")]
    ProcessGone { pid: i32 },
    /// A file that should be readable was not (local: permissions, no /proc mounted...).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected shape.
    #[error("unexpected contents in {}: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },
}

impl AttestError {
    /// True when the fault lies with the caller's process (it changed or went away) rather
    /// than with the agent's host: the API answers PermissionDenied instead of Internal.
    pub fn is_caller_fault(&self) -> bool {
        matches!(
            self,
            AttestError::ProcessChanged { .. } | AttestError::ProcessGone { .. }
        )
    }
}

/// Something that derives selectors for a caller from facts it can check itself.
pub trait WorkloadAttestor: Send + Sync {
    /// The caller's selectors. An error means the caller gets no identity at all. May block
    /// (hashing an executable): async callers run it on the blocking pool.
    fn attest(&self, caller: &Caller) -> Result<Vec<Selector>, AttestError>;

    /// The same answer as [`WorkloadAttestor::attest`] when it can be had without blocking
    /// work (for the unix attestor: small procfs reads, the executable's digest already
    /// known); `None` otherwise, and the caller falls back to `attest` on the blocking pool.
    fn attest_nonblocking(&self, _caller: &Caller) -> Option<Result<Vec<Selector>, AttestError>> {
        None
    }
}

/// Runs several attestors and unions their selectors (first-seen order, duplicates dropped).
///
/// Fails closed: if any attestor fails, the whole attestation fails. (SPIRE logs and drops a
/// failing plugin's selectors instead; here a failure such as pid reuse must not be papered
/// over by the other attestors' answers.)
#[derive(Clone, Default)]
pub struct CompositeAttestor {
    attestors: Vec<Arc<dyn WorkloadAttestor>>,
}

impl CompositeAttestor {
    pub fn new(attestors: Vec<Arc<dyn WorkloadAttestor>>) -> Self {
        CompositeAttestor { attestors }
    }

    /// Adds one more attestor.
    pub fn with(mut self, attestor: Arc<dyn WorkloadAttestor>) -> Self {
        self.attestors.push(attestor);
        self
    }
}

fn union_into(out: &mut Vec<Selector>, more: Vec<Selector>) {
    for s in more {
        if !out.contains(&s) {
            out.push(s);
        }
    }
}

impl WorkloadAttestor for CompositeAttestor {
    fn attest(&self, caller: &Caller) -> Result<Vec<Selector>, AttestError> {
        let mut out: Vec<Selector> = Vec::new();
        for a in &self.attestors {
            union_into(&mut out, a.attest(caller)?);
        }
        Ok(out)
    }

    fn attest_nonblocking(&self, caller: &Caller) -> Option<Result<Vec<Selector>, AttestError>> {
        let mut out: Vec<Selector> = Vec::new();
        for a in &self.attestors {
            match a.attest_nonblocking(caller)? {
                Ok(more) => union_into(&mut out, more),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Selector>);
    impl WorkloadAttestor for Fixed {
        fn attest(&self, _: &Caller) -> Result<Vec<Selector>, AttestError> {
            Ok(self.0.clone())
        }
    }

    struct Failing;
    impl WorkloadAttestor for Failing {
        fn attest(&self, c: &Caller) -> Result<Vec<Selector>, AttestError> {
            Err(AttestError::ProcessGone { pid: c.pid })
        }
    }

    const CALLER: Caller = Caller {
        pid: 42,
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn composite_unions_in_first_seen_order() {
        let a = Fixed(vec![
            Selector::new("unix", "uid:1000"),
            Selector::new("unix", "gid:1000"),
        ]);
        let b = Fixed(vec![
            Selector::new("k8s", "ns:default"),
            Selector::new("unix", "uid:1000"),
        ]);
        let c = CompositeAttestor::new(vec![Arc::new(a)]).with(Arc::new(b));
        let got: Vec<String> = c
            .attest(&CALLER)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["unix:uid:1000", "unix:gid:1000", "k8s:ns:default"]);
    }

    #[test]
    fn composite_fails_closed() {
        let c = CompositeAttestor::new(vec![
            Arc::new(Fixed(vec![Selector::new("unix", "uid:1000")])),
            Arc::new(Failing),
        ]);
        let err = c.attest(&CALLER).unwrap_err();
        assert!(matches!(err, AttestError::ProcessGone { pid: 42 }));
        assert!(err.is_caller_fault());
    }

    #[test]
    fn empty_composite_gives_no_selectors() {
        assert!(
            CompositeAttestor::default()
                .attest(&CALLER)
                .unwrap()
                .is_empty()
        );
    }
}
