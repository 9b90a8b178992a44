//! A memo of chains already verified by one verifier (one set of bundles).
//!
//! A workload presents the same SVID chain on every connection until it rotates (an hour by
//! default), and re-verifying it costs two ECDSA verifications per handshake (leaf and
//! intermediate signatures) of the three a client-authenticated TLS 1.3 handshake needs. The
//! verification of a chain is a pure function of its bytes, the bundles and the time; the
//! bundles are fixed for the life of a verifier (a new identity generation builds a new one,
//! with an empty memo), so the only thing a hit re-checks is the time: the remembered result
//! holds between the latest notBefore and the earliest notAfter of the verified path.
//!
//! The handshake signature (CertificateVerify) is never cached: it proves possession of the
//! key on this connection. Failures are not cached, so a refused chain is always re-verified
//! and logged. Keys are SHA-256 of the length-prefixed DER of every certificate presented.

use std::collections::HashMap;
use std::sync::Mutex;

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use sigil_spiffe::SpiffeId;

/// Chains remembered per verifier; when full, the memo starts over (a mesh has far fewer
/// distinct live SVIDs calling one workload than this).
const CAPACITY: usize = 1024;

pub(crate) type Key = [u8; 32];

struct Verified {
    id: SpiffeId,
    not_before: u64,
    not_after: u64,
}

#[derive(Default)]
pub(crate) struct ChainCache {
    map: Mutex<HashMap<Key, Verified>>,
}

impl std::fmt::Debug for ChainCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map_or(0, |m| m.len());
        write!(f, "ChainCache({n} chains)")
    }
}

pub(crate) fn key(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Key {
    let mut h = Sha256::new();
    for c in std::iter::once(end_entity).chain(intermediates) {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c.as_ref());
    }
    h.finalize().into()
}

impl ChainCache {
    /// The SPIFFE ID of a chain verified before whose path is still valid at `now`.
    pub(crate) fn get(&self, key: &Key, now: UnixTime) -> Option<SpiffeId> {
        let now = now.as_secs();
        let map = self.map.lock().ok()?;
        let v = map.get(key)?;
        (v.not_before <= now && now < v.not_after).then(|| v.id.clone())
    }

    pub(crate) fn insert(&self, key: Key, v: &sigil_spiffe::VerifiedSvid) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(
            key,
            Verified {
                id: v.id().clone(),
                not_before: v.path_not_before(),
                not_after: v.path_not_after(),
            },
        );
    }
}
