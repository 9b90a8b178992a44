//! When: the CA journal and the pure rotation plan.
//!
//! A server keeps at most one `Active` CA (signs), one `Prepared` CA (published in the bundle,
//! not yet signing) and any number of `Old` CAs (no longer signing, still published until
//! their `notAfter`). Timing is SPIRE's (`pkg/server/ca/manager`): for the active CA with
//! lifetime `L = notAfter - notBefore`,
//!
//! - **prepare** the next CA once `notAfter - now <= min(L/2, 30 days)`;
//! - **activate** it once `notAfter - now <= min(L/6, 7 days)`; the active one becomes `Old`;
//! - **prune** an `Old` (or never-activated `Prepared`) CA once `now >= notAfter`.
//!
//! Every certificate a CA signs is clamped to its `notAfter`, so keeping each CA's root in the
//! bundle until then means no valid certificate ever loses its trust anchor, and a prepared
//! root reaches peers before anything is signed under it.
//!
//! The journal is what the server persists per server ID (JSON). It holds certificates and
//! the *path* of each key file; keys themselves stay in 0600 files in the data directory.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::error::CaError;
use crate::keys::KeyType;
use crate::lifecycle::KeyJournal;
use crate::slots::{self, RotatingKey, rotating_key_fields};

/// The journal format version written by this crate.
pub const JOURNAL_VERSION: u32 = 1;

const THIRTY_DAYS: time::Duration = time::Duration::days(30);
const SEVEN_DAYS: time::Duration = time::Duration::days(7);

/// A CA's place in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaStatus {
    /// Published in the bundle, not signing yet.
    Prepared,
    /// Signing.
    Active,
    /// Replaced; published until its `notAfter`.
    Old,
}

impl CaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaStatus::Prepared => "prepared",
            CaStatus::Active => "active",
            CaStatus::Old => "old",
        }
    }
}

/// One CA generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// The CA's subject key identifier, hex.
    pub id: String,
    pub status: CaStatus,
    pub key_type: KeyType,
    /// The key file, relative to the CA key directory (or absolute).
    pub key_file: PathBuf,
    /// The certificate whose key signs (a self-signed root, or this server's intermediate).
    #[serde(with = "pem_cert")]
    pub ca_cert: CertificateDer<'static>,
    /// Certificates between `ca_cert` and the root (upstream mode), excluding the root.
    #[serde(with = "pem_certs", default, skip_serializing_if = "Vec::is_empty")]
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The trust anchor published in the bundle (equals `ca_cert` in self-signed mode).
    #[serde(with = "pem_cert")]
    pub root_cert: CertificateDer<'static>,
    /// Effective validity: the latest `notBefore` and earliest `notAfter` along the chain.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub prepared_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub activated_at: Option<OffsetDateTime>,
    /// Self-signed mode: the root's CRL (PEM, empty, valid until the root's `notAfter`), signed
    /// before the root key was dropped. OpenSSL peers that check the whole chain (nginx
    /// `ssl_crl`, HAProxy `crl-file`) need a CRL from every CA in it, the root included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_crl_pem: Option<String>,
}

impl JournalEntry {
    /// When the next CA should be prepared while this one is active.
    pub fn prepare_at(&self) -> OffsetDateTime {
        prepare_threshold(self.not_before, self.not_after)
    }

    /// When the prepared CA should take over from this one.
    pub fn activate_at(&self) -> OffsetDateTime {
        activate_threshold(self.not_before, self.not_after)
    }
}

/// `notAfter - min(lifetime/2, 30d)`.
pub fn prepare_threshold(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime: time::Duration = not_after - not_before;
    not_after - (lifetime / 2_i32).min(THIRTY_DAYS)
}

/// `notAfter - min(lifetime/6, 7d)`.
pub fn activate_threshold(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime: time::Duration = not_after - not_before;
    not_after - (lifetime / 6_i32).min(SEVEN_DAYS)
}

/// A server's CA history, persisted by the server (JSON) per server ID.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u32,
    pub trust_domain: String,
    pub entries: Vec<JournalEntry>,
}

/// The next step of the rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do until [`next_deadline`].
    None,
    /// Create the next CA and publish it (status `Prepared`).
    Prepare,
    /// Make this prepared CA active; the current active one becomes `Old`.
    Activate(String),
    /// Drop these expired entries (and their key files).
    Prune(Vec<String>),
}

impl Journal {
    /// An empty journal for a trust domain.
    pub fn new(trust_domain: &sigil_spiffe::TrustDomain) -> Self {
        Journal {
            version: JOURNAL_VERSION,
            trust_domain: trust_domain.to_string(),
            entries: vec![],
        }
    }

    /// Parses and validates a journal.
    pub fn from_json(json: &str) -> Result<Self, CaError> {
        let j: Journal =
            serde_json::from_str(json).map_err(|e| CaError::JournalMalformed(e.to_string()))?;
        j.validate()?;
        Ok(j)
    }

    /// Serialises the journal (pretty JSON, certificates as PEM).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Structural checks: known version, unique IDs, at most one active and one prepared
    /// entry, `notBefore < notAfter`.
    pub fn validate(&self) -> Result<(), CaError> {
        slots::validate(self.version, JOURNAL_VERSION, &self.entries)
            .map_err(CaError::JournalMalformed)
    }

    pub fn active(&self) -> Option<&JournalEntry> {
        slots::with_status(&self.entries, CaStatus::Active)
    }

    pub fn prepared(&self) -> Option<&JournalEntry> {
        slots::with_status(&self.entries, CaStatus::Prepared)
    }

    pub fn get(&self, id: &str) -> Option<&JournalEntry> {
        slots::get(&self.entries, id)
    }

    /// Records a freshly prepared CA.
    pub fn add_prepared(&mut self, entry: JournalEntry) -> Result<(), CaError> {
        KeyJournal::add_prepared(self, entry)
    }

    /// Makes the prepared CA `id` active; the previously active CA (returned) becomes `Old`.
    pub fn activate(&mut self, id: &str, now: OffsetDateTime) -> Result<Option<String>, CaError> {
        slots::activate(&mut self.entries, id, now).map_err(CaError::JournalMalformed)
    }

    /// Removes the given entries, returning them.
    pub fn prune(&mut self, ids: &[String]) -> Vec<JournalEntry> {
        slots::prune(&mut self.entries, ids)
    }
}

impl KeyJournal for Journal {
    type Entry = JournalEntry;

    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }

    fn entries_mut(&mut self) -> &mut Vec<JournalEntry> {
        &mut self.entries
    }

    fn validate(&self) -> Result<(), CaError> {
        Journal::validate(self)
    }
}

impl RotatingKey for JournalEntry {
    const NOUN: &'static str = "CA";
    const PLURAL: &'static str = "entries";

    rotating_key_fields!(id);

    fn lost_key_hint(&self) -> &'static str {
        crate::error::journal_key_hint(self.status)
    }
}

/// The next rotation step at `now`. Call repeatedly (applying each action) until
/// [`Action::None`]. Priority: prune expired entries; activate the prepared CA when it is due
/// or nothing usable is active; prepare when due or when there is nothing to activate.
pub fn plan(journal: &Journal, now: OffsetDateTime) -> Action {
    slots::plan(&journal.entries, now)
}

/// When [`plan`] will next return something other than [`Action::None`], if ever.
pub fn next_deadline(journal: &Journal) -> Option<OffsetDateTime> {
    slots::next_deadline(&journal.entries)
}

/// The trust anchors to publish at `now`: the roots of the prepared and active CAs and of
/// old CAs that have not expired, without duplicates, active first.
pub fn bundle_roots(journal: &Journal, now: OffsetDateTime) -> Vec<CertificateDer<'static>> {
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    for e in slots::published(&journal.entries, now) {
        if !roots.contains(&e.root_cert) {
            roots.push(e.root_cert.clone());
        }
    }
    roots
}

/// One certificate as a PEM string.
mod pem_cert {
    use rustls_pki_types::CertificateDer;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &CertificateDer<'static>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&sigil_spiffe::pem::encode_block("CERTIFICATE", c))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<CertificateDer<'static>, D::Error> {
        from_pem(&String::deserialize(d)?)
    }

    /// Exactly one certificate that parses as X.509.
    pub(super) fn from_pem<E: serde::de::Error>(pem: &str) -> Result<CertificateDer<'static>, E> {
        let certs = crate::pem::decode_certs(pem.as_bytes())
            .map_err(|e| E::custom(format!("bad certificate PEM: {e}")))?;
        match <[CertificateDer<'static>; 1]>::try_from(certs) {
            Ok([cert]) => Ok(cert),
            Err(certs) => Err(E::custom(format!(
                "expected exactly one certificate, found {}",
                certs.len()
            ))),
        }
    }
}

/// A list of certificates, each as a PEM string.
mod pem_certs {
    use rustls_pki_types::CertificateDer;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        certs: &[CertificateDer<'static>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            certs
                .iter()
                .map(|c| sigil_spiffe::pem::encode_block("CERTIFICATE", c)),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<CertificateDer<'static>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|p| super::pem_cert::from_pem(p))
            .collect()
    }
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
