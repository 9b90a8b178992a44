//! What every server component shares: configuration, datastore, CA, metrics.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_datastore::{DataStore, IssuedCert, IssuedKind};
use sigil_spiffe::{Bundle, SpiffeId};
use tracing::warn;

use crate::ca_handle::{CaHandle, Issued};
use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct Shared {
    pub cfg: ServerConfig,
    pub server_id: String,
    pub ds: Arc<dyn DataStore>,
    pub ca: CaHandle,
    pub metrics: Arc<Metrics>,
    /// The mesh configuration delivered to agents.
    pub config: crate::mesh::ConfigHub,
    /// Roots agents' x509pop certificates must chain to; `None` disables x509pop.
    pub x509pop_roots: Option<Vec<CertificateDer<'static>>>,
    /// The proxies agents report (in memory, per replica).
    pub proxies: crate::proxies::ProxyRegistry,
    /// Wakes the Certificate controller.
    pub certs: crate::certs::CertsHandle,
    /// Seals and opens `Secret` values.
    pub secrets: crate::secrets::SecretKeyring,
    /// This replica's CRLs.
    pub crl: crate::crl::CrlPublisher,
}

/// An SVID of this trust domain, verified.
pub struct VerifiedCert {
    pub id: SpiffeId,
    /// Lowercase hex, no leading zeros (the datastore's normal form).
    pub serial_hex: String,
}

impl Shared {
    /// Verifies a client chain against the current own bundle (every replica's roots).
    pub fn verify_own_svid(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Result<VerifiedCert, String> {
        let b =
            Bundle::from_x509_authorities(self.cfg.trust_domain.clone(), self.ca.trusted_roots())
                .map_err(|e| e.to_string())?;
        let v =
            sigil_spiffe::verify_x509_svid(chain, &b, UnixTime::now(), sigil_spiffe::Usage::Client)
                .map_err(|e| e.to_string())?;
        let leaf = chain.first().ok_or("empty chain")?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
        let serial_hex = sigil_datastore::normalize_serial(&hex::encode(cert.raw_serial()))
            .map_err(|e| e.to_string())?;
        Ok(VerifiedCert {
            id: v.id().clone(),
            serial_hex,
        })
    }

    /// Writes an issued certificate to the log; a failure is logged, not fatal (the
    /// certificate exists already).
    pub async fn record_issued(
        &self,
        issued: &Issued,
        id: &SpiffeId,
        kind: IssuedKind,
        agent: Option<&SpiffeId>,
        entry: Option<&str>,
    ) {
        let rec = IssuedCert {
            serial_hex: issued.serial_hex.clone(),
            spiffe_id: id.clone(),
            kind,
            issued_by: self.server_id.clone(),
            agent_id: agent.cloned(),
            entry_id: entry.map(str::to_owned),
            not_after: issued.not_after,
            issued_at: now_unix(),
        };
        if let Err(e) = self.ds.record_issued(rec).await {
            warn!(serial = %issued.serial_hex, error = %e, "could not record issued certificate");
        }
    }

    /// Updates the entry and agent gauges.
    pub async fn refresh_counts(&self) {
        if let Ok(n) = self.ds.count_entries().await {
            self.metrics.entries.set(n as i64);
        }
        let all = sigil_datastore::Pagination::all();
        if let Ok(p) = self.ds.list_agents(&Default::default(), &all).await {
            self.metrics.agents.set(p.items.len() as i64);
        }
    }
}
