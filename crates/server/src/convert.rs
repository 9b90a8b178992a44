//! Conversions between datastore records and protobuf messages, and datastore errors to gRPC
//! statuses (only here, at the API edge).

use sigil_datastore::{Error as DsError, RegistrationEntry, Selector};
use sigil_proto::node as pb;
use tonic::Status;

pub fn ds_status(e: DsError) -> Status {
    let msg = e.to_string();
    match e {
        DsError::NotFound { .. } => Status::not_found(msg),
        DsError::AlreadyExists { .. } => Status::already_exists(msg),
        DsError::Expired { .. } => Status::failed_precondition(msg),
        DsError::Conflict { .. } => Status::aborted(msg),
        DsError::Invalid(_) => Status::invalid_argument(msg),
        DsError::Unavailable { .. } => Status::unavailable(msg),
        DsError::Internal(_) => Status::internal(msg),
    }
}

pub fn selector_to_pb(s: &Selector) -> pb::Selector {
    pb::Selector {
        r#type: s.r#type.clone(),
        value: s.value.clone(),
    }
}

pub fn entry_to_pb(e: &RegistrationEntry) -> pb::Entry {
    pb::Entry {
        id: e.id.clone(),
        spiffe_id: e.spiffe_id.to_string(),
        parent_id: e.parent_id.to_string(),
        selectors: e.selectors.iter().map(selector_to_pb).collect(),
        x509_svid_ttl: i32::try_from(e.x509_svid_ttl).unwrap_or(i32::MAX),
        jwt_svid_ttl: i32::try_from(e.jwt_svid_ttl).unwrap_or(i32::MAX),
        federates_with: e.federates_with.iter().map(|t| t.to_string()).collect(),
        admin: e.admin,
        downstream: e.downstream,
        expires_at: e.expires_at.unwrap_or(0),
        dns_names: e.dns_names.clone(),
        revision_number: e.revision_number,
        store_svid: e.store_svid,
        hint: e.hint.clone(),
        created_at: e.created_at,
    }
}
