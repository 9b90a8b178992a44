//! `MintX509SVID` on the admin socket: an X.509-SVID for a CSR without a registration entry,
//! like `spire-server x509 mint` (`sigil x509 mint`, `sigil diagnose tls --as`).
//!
//! Same signing path as the node API: [`crate::ca_handle::CaHandle::sign_svid`] (the SVID
//! template, the lifetime clamped to the CA's), the issued-certificate log, and
//! `sigil_server_svids_issued_total{kind="x509-svid"}`. Only the caller's public key arrives
//! (in the CSR); the log line names the caller (uid and pid from the socket), the ID and the
//! serial.
//!
//! Refused: IDs outside the trust domain, the trust domain ID itself, and `/spire/…` (agent and
//! server identities: minting one would let the caller impersonate them).

use std::time::Duration;

use sigil_proto::admin as api;
use sigil_spiffe::{SpiffeId, TrustDomain};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};
use tracing::{info, warn};

use crate::state::Shared;

/// Who called, from the Unix socket's peer credentials.
pub fn caller<T>(req: &Request<T>) -> String {
    match req
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred)
    {
        Some(c) => match c.pid() {
            Some(pid) => format!("uid={} pid={pid}", c.uid()),
            None => format!("uid={}", c.uid()),
        },
        None => "unknown local caller".to_owned(),
    }
}

/// The ID to mint, or why not.
fn mint_id(td: &TrustDomain, s: &str) -> Result<SpiffeId, Status> {
    let bad = |why: String| Status::invalid_argument(format!("spiffe_id {s:?}: {why}"));
    let id = SpiffeId::parse(s).map_err(|e| bad(e.to_string()))?;
    if id.trust_domain() != td {
        return Err(bad(format!(
            "not in this server's trust domain {td}; use spiffe://{td}/..."
        )));
    }
    if id.is_root() {
        return Err(bad("a workload ID needs a path".into()));
    }
    if id.path().starts_with("/spire/") {
        return Err(bad(
            "paths under /spire/ name agents and servers and are never minted".into(),
        ));
    }
    Ok(id)
}

pub async fn mint(
    s: &Shared,
    who: &str,
    r: api::MintX509svidRequest,
) -> Result<api::MintX509svidResponse, Status> {
    let id = mint_id(&s.cfg.trust_domain, &r.spiffe_id)?;
    let ttl = match r.ttl {
        0 => s.cfg.default_x509_svid_ttl,
        t if t > 0 => Duration::from_secs(t.unsigned_abs().into()),
        t => {
            return Err(Status::invalid_argument(format!(
                "ttl {t}: must be 0 (server default) or a positive number of seconds"
            )));
        }
    };
    for d in &r.dns_names {
        crate::admin_api::check_dns_name(d)
            .map_err(|why| Status::invalid_argument(format!("dns {d:?}: {why}")))?;
    }
    if r.csr.is_empty() {
        return Err(Status::invalid_argument(
            "csr is empty: send the PKCS#10 request of the key the SVID is for",
        ));
    }
    let issued = match s.ca.sign_svid(&r.csr, &id, &r.dns_names, ttl) {
        Ok(i) => i,
        Err(e) if e.blame() == sigil_ca::Blame::Caller => {
            s.metrics.svid("x509-svid", "bad_csr");
            warn!(caller = %who, spiffe_id = %id, reason = %e, "X509-SVID mint refused");
            return Err(Status::invalid_argument(e.to_string()));
        }
        Err(e) => {
            s.metrics.svid("x509-svid", "error");
            warn!(caller = %who, spiffe_id = %id, reason = %e, "X509-SVID mint failed");
            return Err(Status::unavailable(e.to_string()));
        }
    };
    s.record_issued(
        &issued,
        &id,
        sigil_datastore::IssuedKind::X509Svid,
        None,
        None,
    )
    .await;
    s.metrics.svid("x509-svid", "ok");
    info!(
        caller = %who,
        spiffe_id = %id,
        serial = %issued.serial_hex,
        expires_at = issued.not_after,
        "X509-SVID minted on the admin socket"
    );
    Ok(api::MintX509svidResponse {
        cert_chain: issued.chain,
        bundle: s.ca.trusted_roots().iter().map(|c| c.to_vec()).collect(),
        expires_at: issued.not_after,
        serial: issued.serial_hex,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workload_ids_of_the_own_trust_domain_are_minted() {
        let td = TrustDomain::new("cluster.local").unwrap();
        assert!(mint_id(&td, "spiffe://cluster.local/ns/a/sa/b").is_ok());
        for (bad, why) in [
            (
                "spiffe://other.org/ns/a/sa/b",
                "not in this server's trust domain",
            ),
            ("spiffe://cluster.local", "needs a path"),
            ("spiffe://cluster.local/spire/server", "never minted"),
            ("https://cluster.local/x", "spiffe_id"),
        ] {
            let e = mint_id(&td, bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(why), "{bad}: {}", e.message());
        }
    }
}
