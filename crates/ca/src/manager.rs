//! The CA manager: holds the configuration, the journal and the loaded authorities, and applies
//! [`rotation::plan`] — generating keys, writing them as 0600 files, minting CA certificates.
//!
//! Synchronous and clock-free: the server calls [`CaManager::tick`] with the current time
//! (for example at [`CaManager::next_deadline`]) and persists [`CaManager::journal`] whenever
//! a tick reports a change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use sigil_spiffe::TrustDomain;
use time::OffsetDateTime;

use crate::authority::{IssuedCert, SvidRequest, X509Authority};
use crate::error::CaError;
use crate::keys::{KeyType, PrivateKey};
use crate::lifecycle::{self, Rotor};
use crate::rotation::{self, CaStatus, Journal, JournalEntry};
use crate::signer::Signer;
use crate::template::{CaSubject, DEFAULT_CA_TTL};
use crate::upstream::{UpstreamCa, UpstreamFiles};
use crate::x509;

/// Where CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// Each CA generation is a new self-signed root (like SPIRE without an UpstreamAuthority)
    /// and this server's intermediate under it, which signs.
    SelfSigned,
    /// Each CA generation is this server's intermediate under an upstream CA. The files are
    /// re-read at every preparation, so replacing them renews the upstream.
    Upstream(UpstreamFiles),
}

/// The CA manager's configuration, resolved and validated by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    pub trust_domain: TrustDomain,
    pub key_type: KeyType,
    /// Lifetime of each CA generation (SPIRE `ca_ttl`, default 24h).
    pub ca_ttl: Duration,
    pub subject: CaSubject,
    pub source: CaSource,
    /// Directory for CA key files; created with mode 0700 when missing.
    pub key_dir: PathBuf,
}

impl CaConfig {
    /// Defaults: self-signed, `ec-p256`, 24h CAs, subject `C=US, O=SPIFFE`.
    pub fn new(trust_domain: TrustDomain, key_dir: impl Into<PathBuf>) -> Self {
        CaConfig {
            trust_domain,
            key_type: KeyType::default(),
            ca_ttl: DEFAULT_CA_TTL,
            subject: CaSubject::default(),
            source: CaSource::SelfSigned,
            key_dir: key_dir.into(),
        }
    }
}

/// Something that happened to the CA set during a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaEvent {
    /// A new CA was created and its root is now in the bundle.
    Prepared {
        id: String,
        not_after: OffsetDateTime,
    },
    /// The CA `id` now signs; `previous` stopped signing (and stays in the bundle).
    Activated {
        id: String,
        previous: Option<String>,
    },
    /// An expired CA left the journal; its key file was removed unless `key_file_error` says
    /// why not.
    Pruned {
        id: String,
        key_file_error: Option<String>,
    },
}

/// The events of one or more ticks; persist [`CaManager::journal`] when you receive one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JournalChange {
    pub events: Vec<CaEvent>,
}

impl JournalChange {
    /// True when the set of published roots may have changed (republish the bundle).
    pub fn bundle_changed(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, CaEvent::Prepared { .. } | CaEvent::Pruned { .. }))
    }
}

/// Owns the CA lifecycle of one server.
#[derive(Debug)]
pub struct CaManager {
    config: CaConfig,
    rotor: Rotor<Journal, X509Authority>,
}

impl CaManager {
    /// Starts from a persisted journal, or creates the first CA when there is none.
    ///
    /// With a journal, the keys of the active and prepared CAs are loaded and checked against
    /// their certificates; any problem is an error naming the CA and the key file, and nothing
    /// is regenerated. No rotation happens here: call [`CaManager::tick`] next. Without a
    /// journal, a CA is prepared and activated at once and the change is returned (persist it).
    pub fn load_or_init(
        config: CaConfig,
        journal: Option<Journal>,
        now: OffsetDateTime,
    ) -> Result<(Self, Option<JournalChange>), CaError> {
        if config.ca_ttl.is_zero() {
            return Err(CaError::ZeroCaTtl);
        }
        let (rotor, fresh) = Rotor::open(
            &config.key_dir,
            &config.trust_domain,
            journal,
            || Journal::new(&config.trust_domain),
            |e| load_entry(&config, e),
        )?;
        let mut manager = CaManager { config, rotor };
        let change = if fresh { manager.tick(now)? } else { None };
        Ok((manager, change))
    }

    /// Applies every rotation step due at `now`. Returns the change to persist, if any.
    ///
    /// On error (e.g. the upstream CA cannot be read), steps already applied stay applied and
    /// are reported by the next successful tick; the in-memory journal is always consistent.
    pub fn tick(&mut self, now: OffsetDateTime) -> Result<Option<JournalChange>, CaError> {
        let config = &self.config;
        let events = self
            .rotor
            .tick(now, |journal| prepare(config, journal, now))?;
        Ok((!events.is_empty()).then_some(JournalChange { events }))
    }

    /// Issues an X509-SVID with the active CA for the key in `csr_der` (see
    /// [`X509Authority::sign_csr`]).
    pub fn sign_svid(
        &self,
        csr_der: &[u8],
        req: &SvidRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        self.signing_ca()?.sign_csr(csr_der, req, now)
    }

    /// Issues an X509-SVID with the active CA for a DER SubjectPublicKeyInfo.
    pub fn sign_public_key(
        &self,
        spki_der: &[u8],
        req: &SvidRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        self.signing_ca()?.sign_public_key(spki_der, req, now)
    }

    fn signing_ca(&self) -> Result<&X509Authority, CaError> {
        self.rotor.active.as_deref().ok_or(CaError::NoActiveCa)
    }

    /// The trust anchors to publish at `now` (see [`rotation::bundle_roots`]).
    pub fn bundle_roots(&self, now: OffsetDateTime) -> Vec<CertificateDer<'static>> {
        rotation::bundle_roots(&self.rotor.journal, now)
    }

    /// The active CA's `notAfter`: no SVID issued now outlives it.
    pub fn active_not_after(&self) -> Option<OffsetDateTime> {
        self.rotor.active.as_ref().map(|a| a.not_after())
    }

    /// The active authority, to sign without holding a lock on the manager.
    pub fn active(&self) -> Option<Arc<X509Authority>> {
        self.rotor.active.clone()
    }

    /// When [`CaManager::tick`] next has work.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        rotation::next_deadline(&self.rotor.journal)
    }

    /// The journal to persist.
    pub fn journal(&self) -> &Journal {
        &self.rotor.journal
    }

    pub fn config(&self) -> &CaConfig {
        &self.config
    }
}

/// Loads a journal entry's key and checks it against the entry's certificates.
fn load_entry(config: &CaConfig, entry: &JournalEntry) -> Result<X509Authority, CaError> {
    let malformed = |m: String| CaError::JournalMalformed(format!("CA {}: {m}", entry.id));
    let key = lifecycle::read_entry_key(&config.key_dir, entry, |key| {
        let cert = x509::parse(&entry.ca_cert).map_err(&malformed)?;
        Ok(x509::key_matches(&cert, key))
    })?;
    let top = entry.intermediates.last().unwrap_or(&entry.ca_cert);
    let root = x509::parse(&entry.root_cert).map_err(&malformed)?;
    x509::check_issued_by(&x509::parse(top).map_err(&malformed)?, &root)
        .map_err(|e| malformed(format!("does not chain to its root: {e}")))?;
    let authority = X509Authority::new(
        config.trust_domain.clone(),
        entry.ca_cert.clone(),
        entry.intermediates.clone(),
        Arc::new(key),
    )
    .map_err(|e| malformed(e.to_string()))?;
    if authority.id() != entry.id {
        return Err(malformed(format!(
            "certificate key ID is {}",
            authority.id()
        )));
    }
    Ok(authority)
}

/// Creates the next CA: key, certificate, key file. The journal is not touched.
fn prepare(
    cfg: &CaConfig,
    journal: &Journal,
    now: OffsetDateTime,
) -> Result<(JournalEntry, X509Authority), CaError> {
    let upstream = match &cfg.source {
        CaSource::SelfSigned => None,
        CaSource::Upstream(files) => {
            let up = UpstreamCa::load(files, &cfg.trust_domain, now)?;
            if let Some(active) = journal.active().filter(|a| a.not_after > now)
                && up.not_after() <= active.not_after
            {
                return Err(CaError::UpstreamExpiresTooSoon {
                    path: files.cert.clone(),
                    upstream_not_after: up.not_after(),
                    active_not_after: active.not_after,
                });
            }
            Some(up)
        }
    };
    let key = Arc::new(PrivateKey::generate(cfg.key_type)?);
    let signer: Arc<dyn Signer> = key.clone();
    let (authority, root, root_crl_pem) = match &upstream {
        None => {
            // A fresh root per CA generation whose key only ever signs this server's
            // intermediate: it is dropped (never written to disk) once the intermediate
            // exists, so the long-lived trust anchor has no key to steal.
            let root_key: Arc<dyn Signer> = Arc::new(PrivateKey::generate(cfg.key_type)?);
            let root = X509Authority::self_signed(
                cfg.trust_domain.clone(),
                &cfg.subject,
                root_key,
                cfg.ca_ttl,
                now,
            )?;
            let a = root.mint_intermediate(&cfg.subject, signer, cfg.ca_ttl, now)?;
            // The root's only CRL, signed now: its key is gone afterwards.
            let crl = crate::crl::sign_crl(
                &root,
                &[],
                1,
                now - crate::template::NOT_BEFORE_BACKDATE,
                root.not_after(),
            )?;
            (a, root.cert_der().clone(), Some(crl.pem))
        }
        Some(up) => (
            up.mint_intermediate(&cfg.subject, signer, cfg.ca_ttl, now)?,
            up.root().clone(),
            None,
        ),
    };
    let id = authority.id();
    let key_file = PathBuf::from(format!("x509-ca-{id}.key"));
    lifecycle::write_key(&cfg.key_dir, &key_file, &key)?;
    let entry = JournalEntry {
        id,
        status: CaStatus::Prepared,
        key_type: cfg.key_type,
        key_file,
        ca_cert: authority.cert_der().clone(),
        intermediates: authority.intermediates().to_vec(),
        root_cert: root,
        not_before: authority.not_before(),
        not_after: authority.not_after(),
        prepared_at: now,
        activated_at: None,
        root_crl_pem,
    };
    Ok((entry, authority))
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
