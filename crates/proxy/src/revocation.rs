//! Revoked certificates as this proxy enforces them: the set the agent delivers with the mesh
//! configuration, matched by serial against every certificate a peer presents (leaf and
//! intermediates).
//!
//! - A new handshake whose peer chain holds a revoked certificate is refused right after the
//!   handshake, before any application byte is forwarded (inbound: client certificates;
//!   outbound: the upstream's server certificate).
//! - An open inbound connection is watched: when a revocation of one of its peer certificates
//!   arrives, the connection is closed.
//!
//! Each refusal and closure is logged with the serial, the SPIFFE ID and the reason, and counted
//! in `sigil_proxy_revoked_peer_total{direction,action}`.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use sigil_proto::config::RevokedCertificate;
use tracing::warn;

use crate::mesh::MeshSource;

/// Revoked serials (lowercase hex, no leading zeros) → why.
#[derive(Debug, Default, Clone)]
pub struct RevokedSet {
    by_serial: Arc<HashMap<String, Revoked>>,
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: String,
    pub spiffe_id: String,
    pub reason: String,
}

impl RevokedSet {
    /// From the delivered list.
    pub fn from_pb(list: &[RevokedCertificate]) -> Self {
        let by_serial = list
            .iter()
            .map(|r| {
                let serial = normalize(&r.serial);
                let v = Revoked {
                    serial: serial.clone(),
                    spiffe_id: r.spiffe_id.clone(),
                    reason: if r.reason.is_empty() {
                        "unspecified".into()
                    } else {
                        r.reason.clone()
                    },
                };
                (serial, v)
            })
            .collect();
        RevokedSet {
            by_serial: Arc::new(by_serial),
        }
    }

    pub fn len(&self) -> usize {
        self.by_serial.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_serial.is_empty()
    }

    /// The first revoked certificate among `serials` (normalized, see [`chain_serials`]).
    pub fn find<'a>(&self, serials: impl IntoIterator<Item = &'a String>) -> Option<&Revoked> {
        if self.by_serial.is_empty() {
            return None;
        }
        serials.into_iter().find_map(|s| self.by_serial.get(s))
    }
}

/// Lowercase hex without leading zeros (the control plane's normal form).
fn normalize(hex: &str) -> String {
    let lower: String = hex
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let t = lower.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_owned()
    }
}

/// The serials of every certificate of a peer chain, normalized; unparsable ones are skipped
/// (the handshake already verified the chain).
pub fn chain_serials(chain: &[rustls::pki_types::CertificateDer<'_>]) -> Vec<String> {
    chain
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| normalize(&hex::encode(c.raw_serial())))
        .collect()
}

/// Labels of `sigil_proxy_revoked_peer_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevokedPeerLabels {
    /// `inbound` (a client's certificate) or `outbound` (an upstream's).
    pub direction: String,
    /// `refused` (new handshake) or `closed` (open connection).
    pub action: String,
}

/// Resolves when a revocation of one of `serials` arrives in `mesh`; never when none does.
pub async fn revoked_later(mesh: &MeshSource, serials: &[String]) -> Revoked {
    let mut changes = mesh.changes();
    loop {
        if let Some(r) = mesh.current().revoked.find(serials) {
            return r.clone();
        }
        if changes.changed().await.is_err() {
            // The watcher stopped: no revocation can arrive any more.
            return std::future::pending().await;
        }
    }
}

/// Logs a refused or closed connection.
pub fn log(direction: &str, action: &str, peer: &str, r: &Revoked) {
    warn!(
        direction,
        action,
        peer = %peer,
        serial = %r.serial,
        spiffe_id = %r.spiffe_id,
        reason = %r.reason,
        "peer certificate is revoked; connection {action}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_match_in_any_hex_form() {
        let set = RevokedSet::from_pb(&[RevokedCertificate {
            serial: "00:0A:bc".into(),
            spiffe_id: "spiffe://td/x".into(),
            reason: "keyCompromise".into(),
            ..Default::default()
        }]);
        assert_eq!(set.len(), 1);
        let hit = set.find(&[normalize("0abc")]).expect("revoked");
        assert_eq!(hit.reason, "keyCompromise");
        assert!(set.find(&[normalize("abcd")]).is_none());
        assert!(RevokedSet::default().find(&["abc".to_owned()]).is_none());
    }
}
