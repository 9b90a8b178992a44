//! The node API's `NewJWTSVID`: an attested agent asks for a JWT-SVID for one of its
//! authorized entries. Steps, each refusal logged with the agent and counted
//! (`svids_issued{kind="jwt-svid"}`):
//!
//! 1. the request names an entry and at least one audience, none empty (InvalidArgument);
//! 2. the entry is among the agent's authorized entries (PermissionDenied, with the reason);
//! 3. the TTL is the entry's `jwt_svid_ttl`, else the server's `default_jwt_svid_ttl`; the
//!    CA clamps `exp` to the signing key's expiry.
//!
//! JWT-SVIDs have no serial number and are not recorded in the issued-certificates log.

use std::time::Duration;

use sigil_ca::Blame;
use sigil_proto::node as pb;
use tonic::Status;
use tracing::{info, warn};

use crate::node_api::{AgentCaller, NodeApi};

const KIND: &str = "jwt-svid";

/// Checks the request's shape before anything is looked up.
fn check_request(
    api: &NodeApi,
    caller: &AgentCaller,
    req: &pb::NewJwtsvidRequest,
) -> Result<(), Status> {
    let why = if req.entry_id.is_empty() {
        Some("entry_id is required: name the registration entry to mint a JWT-SVID for")
    } else if req.audience.is_empty() {
        Some("audience is required: name at least one audience the JWT-SVID is for")
    } else if req.audience.iter().any(String::is_empty) {
        Some("audience values must not be empty")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => {
            api.shared.metrics.svid(KIND, "invalid");
            warn!(agent = %caller.id, entry = %req.entry_id, reason = why, "JWT-SVID refused");
            Err(Status::invalid_argument(why))
        }
    }
}

/// Signs a JWT-SVID for `req.entry_id` if `caller` is authorized for it.
pub(crate) async fn new_jwt_svid(
    api: &NodeApi,
    caller: &AgentCaller,
    req: pb::NewJwtsvidRequest,
) -> Result<pb::NewJwtsvidResponse, Status> {
    check_request(api, caller, &req)?;
    let s = &api.shared;
    let authorized = api.authorized_entries(caller).await?;
    let Some(entry) = authorized.iter().find(|e| e.id == req.entry_id) else {
        let why = match s.ds.get_entry(&req.entry_id).await {
            Ok(Some(e)) => format!(
                "entry {} ({}) is parented to {}, which is neither agent {} nor a node alias matching its selectors",
                e.id, e.spiffe_id, e.parent_id, caller.id
            ),
            Ok(None) => format!("entry {} does not exist", req.entry_id),
            Err(e) => e.to_string(),
        };
        s.metrics.svid(KIND, "unauthorized");
        warn!(agent = %caller.id, entry = %req.entry_id, reason = %why, "JWT-SVID refused");
        return Err(Status::permission_denied(why));
    };
    let ttl = match entry.jwt_svid_ttl {
        0 => s.cfg.default_jwt_svid_ttl,
        t => Duration::from_secs(u64::from(t)),
    };
    match s.ca.sign_jwt_svid(&entry.spiffe_id, &req.audience, ttl) {
        Ok(svid) => {
            s.metrics.svid(KIND, "ok");
            info!(
                agent = %caller.id,
                spiffe_id = %entry.spiffe_id,
                kid = %svid.kid,
                expires_at = svid.expires_at.unix_timestamp(),
                "JWT-SVID issued"
            );
            Ok(pb::NewJwtsvidResponse {
                token: svid.token,
                expires_at: svid.expires_at.unix_timestamp(),
                spiffe_id: entry.spiffe_id.to_string(),
            })
        }
        Err(e) => {
            let (label, status) = match e.blame() {
                Blame::Caller => ("invalid", Status::invalid_argument(e.to_string())),
                _ => (
                    "error",
                    Status::internal(format!("cannot sign a JWT-SVID: {e}")),
                ),
            };
            s.metrics.svid(KIND, label);
            warn!(agent = %caller.id, entry = %entry.id, reason = %e, "JWT-SVID refused");
            Err(status)
        }
    }
}
