//! `RevokeX509` / `ListRevocations` on the admin socket (`sigil x509 revoke`).
//!
//! What each target revokes (certificates from the issued-certificates log that have not
//! expired):
//! - `serial`: that one certificate (any kind: workload SVID, agent SVID, minted SVID, or this
//!   replica's intermediate CA under an upstream CA);
//! - `entry_id`: every certificate issued for the registration entry;
//! - `agent_id`: the agent's own SVIDs and every workload SVID it obtained.
//!
//! The revocations are stored in one transaction that moves the configuration revision, so
//! this replica's agents hear about them at once (and other replicas' within one poll); the
//! CRLs are re-signed; each certificate is logged (serial, SPIFFE ID, reason) and counted in
//! `sigil_server_revocations_total{reason}`. Revoking does not ban an agent: use `sigil agent
//! ban` too to keep a compromised node from obtaining new SVIDs.

use sigil_ca::Reason;
use sigil_datastore::{IssuedCert, IssuedFilter, IssuedKind, Revocation, normalize_serial};
use sigil_proto::admin as api;
use sigil_proto::config as pb;
use sigil_spiffe::SpiffeId;
use tonic::Status;
use tracing::{info, warn};

use crate::convert::ds_status;
use crate::metrics::ReasonLabel;
use crate::state::{Shared, now_unix};

/// A stored revocation as the data plane and the CLI see it.
pub fn to_pb(r: &Revocation) -> pb::RevokedCertificate {
    pb::RevokedCertificate {
        serial: r.serial_hex.clone(),
        spiffe_id: r.spiffe_id.to_string(),
        reason: r.reason.clone(),
        revoked_at: r.revoked_at,
        not_after: r.not_after,
        entry_id: r.entry_id.clone().unwrap_or_default(),
        agent_id: r
            .agent_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// This replica's intermediate CA with `serial` (under an upstream CA), as an issued-log
/// record: revoking it cuts off every SVID it signed at every proxy, and the upstream CA's CRL
/// lists it.
fn intermediate(s: &Shared, serial: &str, now: i64) -> Option<IssuedCert> {
    let (_, not_after) =
        s.ca.intermediate_serials()
            .into_iter()
            .find(|(x, _)| x == serial)?;
    Some(IssuedCert {
        serial_hex: serial.to_owned(),
        spiffe_id: s.cfg.trust_domain.id("").ok()?,
        kind: IssuedKind::Ca,
        issued_by: s.server_id.clone(),
        agent_id: None,
        entry_id: None,
        not_after,
        issued_at: now,
    })
}

/// The certificates `target` selects, or why none.
async fn select(
    s: &Shared,
    target: &api::revoke_x509_request::Target,
    now: i64,
) -> Result<Vec<IssuedCert>, Status> {
    use api::revoke_x509_request::Target;
    match target {
        Target::Serial(serial) => {
            let serial = normalize_serial(serial).map_err(ds_status)?;
            let found = match s.ds.get_issued(&serial).await.map_err(ds_status)? {
                Some(c) => Some(c),
                None => intermediate(s, &serial, now),
            };
            let Some(cert) = found else {
                return Err(Status::not_found(format!(
                    "serial {serial} is not in the issued-certificates log of this trust domain; \
                     check it with `openssl x509 -noout -serial -in CERT` (records are kept \
                     until the certificate expires)"
                )));
            };
            if cert.not_after < now {
                return Err(Status::failed_precondition(format!(
                    "certificate {serial} ({}) has already expired; every peer refuses it anyway",
                    cert.spiffe_id
                )));
            }
            Ok(vec![cert])
        }
        Target::EntryId(id) => {
            if id.trim().is_empty() {
                return Err(Status::invalid_argument("--entry needs an entry id"));
            }
            let certs =
                s.ds.list_issued(&IssuedFilter::Entry(id.clone()), now)
                    .await
                    .map_err(ds_status)?;
            if certs.is_empty() {
                let known = s.ds.get_entry(id).await.map_err(ds_status)?.is_some();
                return Err(Status::not_found(if known {
                    format!("entry {id} has no unexpired certificate; nothing to revoke")
                } else {
                    format!(
                        "no entry {id} and no unexpired certificate issued for it; list entries \
                         with `sigil entry show`"
                    )
                }));
            }
            Ok(certs)
        }
        Target::AgentId(id) => {
            let agent = SpiffeId::parse(id)
                .map_err(|e| Status::invalid_argument(format!("--agent {id:?}: {e}")))?;
            let certs =
                s.ds.list_issued(&IssuedFilter::Agent(agent), now)
                    .await
                    .map_err(ds_status)?;
            if certs.is_empty() {
                return Err(Status::not_found(format!(
                    "no unexpired certificate was issued to or through agent {id}; list agents \
                     with `sigil agent list`"
                )));
            }
            Ok(certs)
        }
    }
}

/// Revokes what the request selects.
pub async fn revoke(
    s: &Shared,
    who: &str,
    r: api::RevokeX509Request,
) -> Result<api::RevokeX509Response, Status> {
    let reason: Reason = if r.reason.trim().is_empty() {
        Reason::Unspecified
    } else {
        r.reason
            .parse()
            .map_err(|e: sigil_ca::CaError| Status::invalid_argument(e.to_string()))?
    };
    let Some(target) = r.target else {
        return Err(Status::invalid_argument(
            "say what to revoke: --serial, --entry or --agent",
        ));
    };
    let now = now_unix();
    let certs = select(s, &target, now).await?;
    let wanted = certs.len();
    let records = certs
        .iter()
        .map(|c| Revocation::of(c, reason.as_str(), now))
        .collect();
    let new = s.ds.revoke(records).await.map_err(ds_status)?;
    for r in &new {
        info!(
            serial = %r.serial_hex,
            spiffe_id = %r.spiffe_id,
            reason = %r.reason,
            entry_id = r.entry_id.as_deref().unwrap_or(""),
            agent_id = %r.agent_id.as_ref().map(ToString::to_string).unwrap_or_default(),
            caller = who,
            "certificate revoked"
        );
    }
    if !new.is_empty() {
        s.metrics
            .revocations
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().to_owned(),
            })
            .inc_by(new.len() as u64);
        // Push to this replica's agents now rather than at the next poll.
        if let Err(e) = s.config.refresh(s.ds.as_ref()).await {
            warn!(error = %e, "revocation stored but the configuration push failed; the next poll retries");
        }
        s.crl.wake();
    }
    Ok(api::RevokeX509Response {
        revoked: new.iter().map(to_pb).collect(),
        already_revoked: u32::try_from(wanted - new.len()).unwrap_or(u32::MAX),
    })
}

/// Every revocation, and the CRL URLs of this replica.
pub async fn list(s: &Shared) -> Result<api::ListRevocationsResponse, Status> {
    let all = s.ds.list_revocations().await.map_err(ds_status)?;
    Ok(api::ListRevocationsResponse {
        revoked: all.iter().map(to_pb).collect(),
        crl_urls: s.crl.urls(),
    })
}
