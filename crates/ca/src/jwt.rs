//! JWT-SVID signing keys: what a JWT-SVID says, signing it, and when keys rotate.
//!
//! The lifecycle is the X.509 CA's ([`crate::rotation`]), with the same SPIRE timing: with a
//! key lifetime `L`, the next key is **prepared** (published in the bundle, not signing) once
//! `notAfter - now <= min(L/2, 30d)`, **activated** once `notAfter - now <= min(L/6, 7d)`, and
//! an old key is **pruned** once `now >= notAfter`. Every JWT-SVID's `exp` is clamped to its
//! key's `notAfter`, so a key stays published for as long as anything it signed is valid, and
//! a key is published before it signs anything.
//!
//! Keys are `ec-p256` (ES256, the default), `ec-p384` (ES384) or RSA (RS256); JWT-SVID has no
//! EdDSA. The [`JwtJournal`] (JSON, persisted by the server) holds each key's ID, status,
//! validity, public key and key *file*; private keys stay in 0600 files in the key directory.
//! Pruned key IDs are listed in [`JwtJournal::retired`] until the server confirms they left
//! the published bundle ([`JwtKeyManager::forget_retired`]).
//!
//! Tokens: header `{"alg", "kid", "typ": "JWT"}`; claims `sub`, `aud`, `exp`, `iat`. `aud` is
//! a string when there is one audience and an array otherwise — what go-jose (and so SPIRE)
//! puts on the wire; RFC 7519 allows both and validators must accept both. ES signatures are
//! the raw `r || s` of RFC 7518 §3.4. Key IDs are 32 random alphanumerics, like SPIRE's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sigil_spiffe::{SpiffeId, TrustDomain};
use time::OffsetDateTime;

use crate::error::CaError;
use crate::keys::{KeyType, PrivateKey};
use crate::lifecycle::{self, KeyJournal, Rotor};
use crate::manager::CaEvent;
use crate::rotation::{Action, CaStatus};
use crate::slots::{self, RotatingKey, rotating_key_fields};
use crate::template::DEFAULT_CA_TTL;

/// The JWT journal format version written by this crate.
pub const JWT_JOURNAL_VERSION: u32 = 1;

/// The key types JWT signing keys may have, for messages.
pub const VALID_JWT_KEY_TYPES: &str =
    "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 (JWT-SVID has no EdDSA)";

/// The JWS algorithm a JWT signing key uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlg {
    Es256,
    Es384,
    Rs256,
}

impl JwtAlg {
    /// The key's algorithm, or an error for key types JWT-SVID cannot use (Ed25519).
    pub fn for_key_type(key_type: KeyType) -> Result<Self, CaError> {
        match key_type {
            KeyType::EcP256 => Ok(JwtAlg::Es256),
            KeyType::EcP384 => Ok(JwtAlg::Es384),
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => Ok(JwtAlg::Rs256),
            KeyType::Ed25519 => Err(CaError::UnknownKeyType {
                given: key_type.name().to_owned(),
                valid: VALID_JWT_KEY_TYPES,
            }),
        }
    }

    /// The JWS `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlg::Es256 => "ES256",
            JwtAlg::Es384 => "ES384",
            JwtAlg::Rs256 => "RS256",
        }
    }
}

impl std::fmt::Display for JwtAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The JWT key manager's configuration, resolved by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtKeyConfig {
    pub trust_domain: TrustDomain,
    /// `ec-p256` (ES256, default), `ec-p384` (ES384) or `rsa-*` (RS256).
    pub key_type: KeyType,
    /// Lifetime of each key (default: the CA's default `ca_ttl`, 24h).
    pub key_ttl: Duration,
    /// Directory for key files; created with mode 0700 when missing.
    pub key_dir: PathBuf,
}

impl JwtKeyConfig {
    /// Defaults: `ec-p256`, 24h keys.
    pub fn new(trust_domain: TrustDomain, key_dir: impl Into<PathBuf>) -> Self {
        JwtKeyConfig {
            trust_domain,
            key_type: KeyType::EcP256,
            key_ttl: DEFAULT_CA_TTL,
            key_dir: key_dir.into(),
        }
    }
}

/// One JWT signing key generation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyEntry {
    /// The key ID (`kid`), as published in the bundle.
    pub kid: String,
    pub status: CaStatus,
    pub key_type: KeyType,
    /// The private key file, relative to the key directory (or absolute).
    pub key_file: PathBuf,
    /// The public key: a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub public_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub prepared_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub activated_at: Option<OffsetDateTime>,
}

impl JwtKeyEntry {
    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Result<Vec<u8>, CaError> {
        let bad = |m: String| CaError::JournalMalformed(format!("JWT key {}: {m}", self.kid));
        let blocks = sigil_spiffe::pem::decode_blocks(&self.public_key)
            .map_err(|e| bad(format!("public key PEM: {e}")))?;
        match <[_; 1]>::try_from(blocks) {
            Ok([b]) if b.label == "PUBLIC KEY" => Ok(b.der),
            _ => Err(bad("public_key must be one PEM PUBLIC KEY block".into())),
        }
    }
}

/// A server's JWT key history, persisted by the server (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtJournal {
    pub version: u32,
    pub trust_domain: String,
    pub keys: Vec<JwtKeyEntry>,
    /// Key IDs pruned from `keys` whose removal from the published bundle is not yet
    /// confirmed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

impl JwtJournal {
    pub fn new(trust_domain: &TrustDomain) -> Self {
        JwtJournal {
            version: JWT_JOURNAL_VERSION,
            trust_domain: trust_domain.to_string(),
            keys: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Parses and validates a journal.
    pub fn from_json(json: &str) -> Result<Self, CaError> {
        let j: JwtJournal = serde_json::from_str(json)
            .map_err(|e| CaError::JournalMalformed(format!("JWT key journal: {e}")))?;
        j.validate()?;
        Ok(j)
    }

    /// Serialises the journal (pretty JSON).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Structural checks: known version, unique key IDs, at most one active and one prepared
    /// key, `notBefore < notAfter`, public keys readable.
    pub fn validate(&self) -> Result<(), CaError> {
        slots::validate(self.version, JWT_JOURNAL_VERSION, &self.keys)
            .map_err(|m| CaError::JournalMalformed(format!("JWT key journal: {m}")))?;
        for k in &self.keys {
            sigil_spiffe::PublicKey::from_spki_der(&k.spki_der()?)
                .map_err(|e| CaError::JournalMalformed(format!("JWT key {}: {e}", k.kid)))?;
        }
        Ok(())
    }

    pub fn active(&self) -> Option<&JwtKeyEntry> {
        slots::with_status(&self.keys, CaStatus::Active)
    }

    pub fn prepared(&self) -> Option<&JwtKeyEntry> {
        slots::with_status(&self.keys, CaStatus::Prepared)
    }

    pub fn get(&self, kid: &str) -> Option<&JwtKeyEntry> {
        slots::get(&self.keys, kid)
    }
}

impl KeyJournal for JwtJournal {
    type Entry = JwtKeyEntry;

    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    fn entries(&self) -> &[JwtKeyEntry] {
        &self.keys
    }

    fn entries_mut(&mut self) -> &mut Vec<JwtKeyEntry> {
        &mut self.keys
    }

    fn validate(&self) -> Result<(), CaError> {
        JwtJournal::validate(self)
    }

    /// A pruned key ID stays listed until the server confirms it left the bundle.
    fn retire(&mut self, kid: &str) {
        self.retired.push(kid.to_owned());
    }
}

impl RotatingKey for JwtKeyEntry {
    const NOUN: &'static str = "key";
    const PLURAL: &'static str = "keys";

    rotating_key_fields!(kid);

    fn lost_key_hint(&self) -> &'static str {
        match self.status {
            CaStatus::Prepared => PREPARED_KEY_HINT,
            _ => ACTIVE_KEY_HINT,
        }
    }
}

/// The next rotation step at `now` (the same as [`crate::rotation::plan`]): prune expired
/// non-active keys; activate the prepared key when due or when nothing usable is active;
/// prepare when due or when there is nothing to activate.
pub fn plan(journal: &JwtJournal, now: OffsetDateTime) -> Action {
    slots::plan(&journal.keys, now)
}

/// When [`plan`] will next return something other than [`Action::None`], if ever.
pub fn next_deadline(journal: &JwtJournal) -> Option<OffsetDateTime> {
    slots::next_deadline(&journal.keys)
}

/// Something that happened to the JWT keys during a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeyEvent {
    /// A new key was created; publish it.
    Prepared {
        kid: String,
        not_after: OffsetDateTime,
    },
    /// The key `kid` now signs; `previous` stopped signing (and stays published).
    Activated {
        kid: String,
        previous: Option<String>,
    },
    /// An expired key left the journal (and goes on [`JwtJournal::retired`]); its key file was
    /// removed unless `key_file_error` says why not.
    Pruned {
        kid: String,
        key_file_error: Option<String>,
    },
}

/// The events of one or more ticks; persist [`JwtKeyManager::journal`] when you get one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtJournalChange {
    pub events: Vec<JwtKeyEvent>,
}

impl JwtJournalChange {
    /// True when the set of published keys may have changed (republish the bundle).
    pub fn bundle_changed(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, JwtKeyEvent::Prepared { .. } | JwtKeyEvent::Pruned { .. }))
    }
}

/// A public key to publish as a JWT authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtPublicKey {
    pub kid: String,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub alg: JwtAlg,
    pub not_after: OffsetDateTime,
}

/// A signed JWT-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSvid {
    /// JWS compact serialization.
    pub token: String,
    pub kid: String,
    pub issued_at: OffsetDateTime,
    /// `exp`: `issued_at + ttl`, clamped to the signing key's `notAfter`.
    pub expires_at: OffsetDateTime,
}

/// A loaded JWT signing key. Sign through it without holding a lock on the manager.
#[derive(Debug)]
pub struct JwtSigningKey {
    kid: String,
    alg: JwtAlg,
    trust_domain: TrustDomain,
    key: PrivateKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl JwtSigningKey {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> JwtAlg {
        self.alg
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Signs a JWT-SVID for `sub` (of this key's trust domain, with a path) and `audience`
    /// (at least one value, none empty; the server checks this first). `exp` is
    /// `now + ttl`, clamped to the key's `notAfter`; `iat` is `now`.
    pub fn sign_jwt_svid(
        &self,
        sub: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<JwtSvid, CaError> {
        if sub.trust_domain() != &self.trust_domain {
            return Err(CaError::IdNotInTrustDomain {
                id: sub.to_string(),
                trust_domain: self.trust_domain.to_string(),
            });
        }
        if sub.is_root() {
            return Err(CaError::IdIsTrustDomain {
                id: sub.to_string(),
            });
        }
        if ttl.is_zero() {
            return Err(CaError::ZeroTtl);
        }
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            // The API edge refuses this with InvalidArgument; reaching here is a bug.
            return Err(CaError::Encoding(
                "a JWT-SVID needs at least one audience, and no empty one".into(),
            ));
        }
        if now < self.not_before {
            return Err(CaError::CaNotYetValid {
                not_before: self.not_before,
            });
        }
        let iat = now.unix_timestamp();
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = iat
            .saturating_add(ttl_secs)
            .min(self.not_after.unix_timestamp());
        if exp <= iat {
            return Err(CaError::CaExpired {
                not_after: self.not_after,
            });
        }
        let aud = match audience {
            [one] => Value::from(one.as_str()),
            many => Value::from(many.to_vec()),
        };
        let header = json!({"alg": self.alg.name(), "kid": self.kid, "typ": "JWT"});
        let claims = json!({"sub": sub.as_str(), "aud": aud, "exp": exp, "iat": iat});
        let input = format!("{}.{}", segment(&header), segment(&claims));
        let signature = self.signature(input.as_bytes())?;
        Ok(JwtSvid {
            token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)),
            kid: self.kid.clone(),
            issued_at: from_unix(iat)?,
            expires_at: from_unix(exp)?,
        })
    }

    /// The JWS signature: PKCS#1 v1.5 SHA-256 for RSA; raw `r || s` for ECDSA.
    fn signature(&self, input: &[u8]) -> Result<Vec<u8>, CaError> {
        let sig = self.key.sign(input)?;
        let coordinate_len = match self.alg {
            JwtAlg::Rs256 => return Ok(sig),
            JwtAlg::Es256 => 32,
            JwtAlg::Es384 => 48,
        };
        sigil_spiffe::jwt::ecdsa_der_to_raw(&sig, coordinate_len)
            .ok_or_else(|| CaError::Crypto("ECDSA signature is not a DER ECDSA-Sig-Value".into()))
    }
}

fn segment(v: &Value) -> String {
    // Serializing a Value built from strings and integers cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
}

fn from_unix(t: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| CaError::Encoding(e.to_string()))
}

/// 32 random characters from `[A-Za-z0-9]`, like SPIRE's JWT key IDs.
fn new_kid() -> Result<String, CaError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut kid = String::with_capacity(32);
    while kid.len() < 32 {
        let mut buf = [0u8; 64];
        aws_lc_rs::rand::fill(&mut buf).map_err(|e| CaError::Crypto(format!("{e:?}")))?;
        // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
        kid.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| char::from(ALPHABET[usize::from(*b % 62)]))
                .take(32 - kid.len()),
        );
    }
    Ok(kid)
}

const PREPARED_KEY_HINT: &str = "Restore the key file from a backup, or delete this prepared \
     key from the server's JWT key journal: it has signed nothing and a new key will be prepared";
const ACTIVE_KEY_HINT: &str = "Restore the key file from a backup, or remove this server's JWT \
     key journal to start new JWT keys (JWT-SVIDs signed by the lost key stop validating)";

impl From<CaEvent> for JwtKeyEvent {
    fn from(event: CaEvent) -> Self {
        match event {
            CaEvent::Prepared { id, not_after } => JwtKeyEvent::Prepared { kid: id, not_after },
            CaEvent::Activated { id, previous } => JwtKeyEvent::Activated { kid: id, previous },
            CaEvent::Pruned { id, key_file_error } => JwtKeyEvent::Pruned {
                kid: id,
                key_file_error,
            },
        }
    }
}

/// Owns the JWT signing keys of one server.
#[derive(Debug)]
pub struct JwtKeyManager {
    config: JwtKeyConfig,
    alg: JwtAlg,
    rotor: Rotor<JwtJournal, JwtSigningKey>,
}

impl JwtKeyManager {
    /// Starts from a persisted journal, or creates the first key when there is none.
    ///
    /// With a journal, the active and prepared keys are loaded from their files and checked
    /// against the journal's public keys; any problem is an error naming the key and file, and
    /// nothing is regenerated. No rotation happens here: call [`JwtKeyManager::tick`] next.
    /// Without a journal, a key is prepared and activated at once and the change is returned.
    pub fn load_or_init(
        config: JwtKeyConfig,
        journal: Option<JwtJournal>,
        now: OffsetDateTime,
    ) -> Result<(Self, Option<JwtJournalChange>), CaError> {
        if config.key_ttl.is_zero() {
            return Err(CaError::ZeroCaTtl);
        }
        let alg = JwtAlg::for_key_type(config.key_type)?;
        let (rotor, fresh) = Rotor::open(
            &config.key_dir,
            &config.trust_domain,
            journal,
            || JwtJournal::new(&config.trust_domain),
            |e| load(&config, e),
        )?;
        let mut m = JwtKeyManager { config, alg, rotor };
        let change = if fresh { m.tick(now)? } else { None };
        Ok((m, change))
    }

    /// Applies every rotation step due at `now`. Returns the change to persist, if any.
    ///
    /// On error (a key file cannot be written), steps already applied stay applied and are
    /// reported by the next successful tick; the in-memory journal is always consistent.
    pub fn tick(&mut self, now: OffsetDateTime) -> Result<Option<JwtJournalChange>, CaError> {
        let (config, alg) = (&self.config, self.alg);
        let steps = self.rotor.tick(now, |_| prepare(config, alg, now))?;
        if steps.is_empty() {
            return Ok(None);
        }
        Ok(Some(JwtJournalChange {
            events: steps.into_iter().map(JwtKeyEvent::from).collect(),
        }))
    }

    /// The keys to publish at `now`: active, prepared, and old keys not yet expired.
    pub fn public_keys(&self, now: OffsetDateTime) -> Vec<JwtPublicKey> {
        slots::published(&self.rotor.journal.keys, now)
            .into_iter()
            .filter_map(|k| {
                // Every entry passed `validate`, so both conversions succeed.
                Some(JwtPublicKey {
                    kid: k.kid.clone(),
                    spki_der: k.spki_der().ok()?,
                    alg: JwtAlg::for_key_type(k.key_type).ok()?,
                    not_after: k.not_after,
                })
            })
            .collect()
    }

    /// Signs a JWT-SVID with the active key (see [`JwtSigningKey::sign_jwt_svid`]).
    pub fn sign_jwt_svid(
        &self,
        sub: &SpiffeId,
        audience: &[String],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<JwtSvid, CaError> {
        self.rotor
            .active
            .as_deref()
            .ok_or(CaError::NoActiveCa)?
            .sign_jwt_svid(sub, audience, ttl, now)
    }

    /// The active key, to sign without holding a lock on the manager.
    pub fn active(&self) -> Option<Arc<JwtSigningKey>> {
        self.rotor.active.clone()
    }

    /// Key IDs pruned but not yet confirmed gone from the published bundle.
    pub fn retired(&self) -> &[String] {
        &self.rotor.journal.retired
    }

    /// Drops `kids` from [`JwtJournal::retired`] once they left the bundle. True when the
    /// journal changed (persist it).
    pub fn forget_retired(&mut self, kids: &[String]) -> bool {
        let before = self.rotor.journal.retired.len();
        self.rotor.journal.retired.retain(|k| !kids.contains(k));
        self.rotor.journal.retired.len() != before
    }

    /// When [`JwtKeyManager::tick`] next has work.
    pub fn next_deadline(&self) -> Option<OffsetDateTime> {
        next_deadline(&self.rotor.journal)
    }

    /// The journal to persist.
    pub fn journal(&self) -> &JwtJournal {
        &self.rotor.journal
    }

    pub fn config(&self) -> &JwtKeyConfig {
        &self.config
    }
}

/// Loads a journal entry's key and checks it against the entry's public key.
fn load(config: &JwtKeyConfig, entry: &JwtKeyEntry) -> Result<JwtSigningKey, CaError> {
    let key = lifecycle::read_entry_key(&config.key_dir, entry, |key| {
        Ok(key.public_key_spki_der() == entry.spki_der()?)
    })?;
    Ok(JwtSigningKey {
        kid: entry.kid.clone(),
        alg: JwtAlg::for_key_type(entry.key_type).map_err(|e| lifecycle::key_error(entry, e))?,
        trust_domain: config.trust_domain.clone(),
        key,
        not_before: entry.not_before,
        not_after: entry.not_after,
    })
}

/// Creates the next key and its 0600 file. The journal is not touched.
fn prepare(
    config: &JwtKeyConfig,
    alg: JwtAlg,
    now: OffsetDateTime,
) -> Result<(JwtKeyEntry, JwtSigningKey), CaError> {
    let key = PrivateKey::generate(config.key_type)?;
    let kid = new_kid()?;
    let key_file = PathBuf::from(format!("jwt-{kid}.key"));
    lifecycle::write_key(&config.key_dir, &key_file, &key)?;
    let not_after = now + config.key_ttl;
    let entry = JwtKeyEntry {
        kid: kid.clone(),
        status: CaStatus::Prepared,
        key_type: config.key_type,
        key_file,
        public_key: sigil_spiffe::pem::encode_block("PUBLIC KEY", &key.public_key_spki_der()),
        not_before: now,
        not_after,
        prepared_at: now,
        activated_at: None,
    };
    let signing = JwtSigningKey {
        kid,
        alg,
        trust_domain: config.trust_domain.clone(),
        key,
        not_before: now,
        not_after,
    };
    Ok((entry, signing))
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
