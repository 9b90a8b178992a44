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
pub mod admin;
pub mod cli;
pub mod config;
pub mod identity;
pub mod inbound;
pub mod mesh;
pub mod outbound;
pub mod report;
pub mod revocation;
pub mod run;
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

/// Buffer of each direction when a connection is forwarded as opaque bytes (TCP ports and
/// upstreams). tokio's default of 8 KiB makes every TLS record half full and costs a read, an
/// encryption and a write per 8 KiB; 64 KiB fills four 16 KiB records per write and took the
/// TCP hop of `bench/run` from 385 to 597 MB/s of bulk (bench/RESULTS.md). Cost: 128 KiB per
/// open connection.
pub const COPY_BUFFER: usize = 64 * 1024;

/// Read buffer under each mTLS connection. rustls reads its transport into a deframer buffer
/// sized for about one record, so a stream of 16 KiB records straight off the socket costs one
/// `recvfrom` per record; this buffer lets one call take up to four records and rustls read
/// from memory (1 GiB through the client proxy: 66,069 → 16,412 `recvfrom`, bench/RESULTS.md).
/// Writes pass through unbuffered (rustls already hands whole records to `writev`).
pub const TLS_READ_BUFFER: usize = 64 * 1024;

/// The transport under every mTLS connection the proxy terminates or originates.
pub type TlsTransport = tokio::io::BufReader<tokio::net::TcpStream>;

/// Wraps an accepted or connected socket for rustls (see [`TLS_READ_BUFFER`]).
pub fn tls_transport(tcp: tokio::net::TcpStream) -> TlsTransport {
    tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp)
}

/// ALPN values that mark a connection as mesh mTLS (sniffed on PERMISSIVE ports) and that the
/// outbound side offers. Istio's values are accepted so Istio sidecars interoperate.
pub mod alpn {
    /// Sigil's own marker.
    pub const SIGIL: &[u8] = b"sigil-mtls";
    /// Istio's markers (`istio-peer-exchange` is sent by older sidecars).
    pub const ISTIO: &[&[u8]] = &[
        b"istio",
        b"istio-peer-exchange",
        b"istio-http/1.0",
        b"istio-http/1.1",
        b"istio-h2",
    ];
    pub const H2: &[u8] = b"h2";
    pub const HTTP11: &[u8] = b"http/1.1";

    /// Whether a ClientHello offering `p` comes from a mesh peer.
    pub fn is_mesh(p: &[u8]) -> bool {
        p == SIGIL || ISTIO.contains(&p)
    }
}
