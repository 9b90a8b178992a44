//! `sigil proxy`: the mTLS proxy beside each workload (like an Istio sidecar).
//!
//! - identity: the workload's SVID and bundles from the local agent's Workload API
//!   ([`identity`]), swapped atomically on rotation;
//! - policy: the mesh configuration from the agent's MeshConfig service, compiled for this
//!   workload ([`mesh`]);
//! - inbound: per port, the PeerAuthentication mode (STRICT / PERMISSIVE / DISABLE), then the
//!   AuthorizationPolicy decision (403 for HTTP, close for TCP);
//! - outbound: the DestinationRule TLS mode toward each upstream, with secure naming;
//! - admin and stats endpoints, and a JSON access log.

pub mod access_log;
pub mod config;
pub mod identity;
pub mod mesh;
pub mod stats;
pub mod testing;

use std::sync::Arc;

/// What every connection handler reads: configuration, identity, policy, counters, log.
#[derive(Clone)]
pub struct Context {
    pub cfg: Arc<config::ProxyConfig>,
    pub identity: identity::IdentitySource,
    pub mesh: mesh::MeshSource,
    pub stats: Arc<stats::Stats>,
    pub access_log: access_log::AccessLog,
}
