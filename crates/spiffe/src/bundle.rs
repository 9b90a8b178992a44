//! SPIFFE bundles (`SPIFFE_Trust_Domain_and_Bundle.md` §4, `X509-SVID.md` §6): the keys of
//! one trust domain, in SPIFFE JSON (a JWK Set) or PEM.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value};

use crate::id::TrustDomain;
use crate::jwk::{KeyError, PublicKey};
use crate::pem::{self, PemError};
use crate::svid::{self, SvidError};

const USE_X509: &str = "x509-svid";
const USE_JWT: &str = "jwt-svid";

/// Why a certificate cannot be an X.509 authority of a bundle.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthorityError {
    #[error("{0}")]
    Certificate(#[source] SvidError),
    #[error("its public key is not representable in a SPIFFE bundle: {0}")]
    Key(#[source] KeyError),
    #[error("webpki cannot use it as a trust anchor: {0:?}")]
    TrustAnchor(webpki::Error),
}

/// Why a bundle could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("bundle JSON must be an object (a JWK Set)")]
    NotObject,
    #[error("bundle has no \"keys\" array; a SPIFFE bundle is a JWK Set and \"keys\" is required")]
    MissingKeys,
    #[error("bundle field {field:?} must be {expected}")]
    BadField {
        field: &'static str,
        expected: &'static str,
    },
    #[error("keys[{index}] is not a JSON object")]
    KeyNotObject { index: usize },
    #[error("keys[{index}] (x509-svid): x5c[0] is not standard base64 DER: {reason}")]
    X5cNotBase64 { index: usize, reason: String },
    #[error("keys[{index}] (x509-svid): x5c[0] is not a usable CA certificate: {source}")]
    X5cCertificate {
        index: usize,
        source: AuthorityError,
    },
    #[error(
        "keys[{index}] (x509-svid): JWK parameters ({param}) do not match the public key of the \
         certificate in x5c"
    )]
    X5cKeyMismatch { index: usize, param: &'static str },
    #[error("keys[{index}] (jwt-svid): \"kid\" is missing or empty; JWT authorities need a key ID")]
    MissingKid { index: usize },
    #[error(
        "JWT authority key ID {kid:?} appears twice with different keys; key IDs must be unique"
    )]
    DuplicateKid { kid: String },
    #[error("keys[{index}] ({key_use}): {source}")]
    Key {
        index: usize,
        key_use: &'static str,
        source: KeyError,
    },
    #[error("JWT authority key ID is empty; give every JWT authority a non-empty key ID")]
    EmptyKid,
    #[error("X.509 authority is not usable: {0}")]
    Authority(#[source] AuthorityError),
    #[error("bundle PEM: {0}")]
    Pem(#[source] PemError),
    #[error("bundle PEM certificate #{index} is not usable: {source}")]
    PemCertificate {
        index: usize,
        source: AuthorityError,
    },
}

/// A JWT-SVID signing key: the public key, plus the JWK `alg` hint if the bundle had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthority {
    pub key: PublicKey,
    pub alg: Option<String>,
}

impl JwtAuthority {
    /// A JWT authority from a SubjectPublicKeyInfo DER (how SPIRE stores JWT keys).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, KeyError> {
        Ok(JwtAuthority {
            key: PublicKey::from_spki_der(spki)?,
            alg: None,
        })
    }
}

/// The keys of one trust domain. Bundles of different trust domains are never merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    trust_domain: TrustDomain,
    x509_authorities: Vec<CertificateDer<'static>>,
    jwt_authorities: BTreeMap<String, JwtAuthority>,
    sequence_number: Option<u64>,
    refresh_hint: Option<Duration>,
}

/// Checks that `cert` can serve as a trust anchor and as a bundle entry.
fn check_authority(cert: &CertificateDer<'_>) -> Result<PublicKey, AuthorityError> {
    let parsed = svid::parse_cert(cert).map_err(AuthorityError::Certificate)?;
    let key = PublicKey::from_spki_der(parsed.public_key().raw).map_err(AuthorityError::Key)?;
    webpki::anchor_from_trusted_cert(cert).map_err(AuthorityError::TrustAnchor)?;
    Ok(key)
}

impl Bundle {
    /// An empty bundle (a trust domain with no keys: every SVID of it is rejected).
    pub fn new(trust_domain: TrustDomain) -> Self {
        Bundle {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: BTreeMap::new(),
            sequence_number: None,
            refresh_hint: None,
        }
    }

    /// A bundle holding the given X.509 authorities (deduplicated, order kept).
    pub fn from_x509_authorities(
        trust_domain: TrustDomain,
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        let mut b = Bundle::new(trust_domain);
        for c in certs {
            b.add_x509_authority(c)?;
        }
        Ok(b)
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The X.509 CA certificates (trust anchors for X.509-SVIDs of this trust domain).
    pub fn x509_authorities(&self) -> &[CertificateDer<'static>] {
        &self.x509_authorities
    }

    /// JWT authorities by key ID.
    pub fn jwt_authorities(&self) -> &BTreeMap<String, JwtAuthority> {
        &self.jwt_authorities
    }

    pub fn jwt_authority(&self, kid: &str) -> Option<&JwtAuthority> {
        self.jwt_authorities.get(kid)
    }

    /// `spiffe_sequence`: increases whenever the bundle's contents change.
    pub fn sequence_number(&self) -> Option<u64> {
        self.sequence_number
    }

    pub fn set_sequence_number(&mut self, seq: Option<u64>) {
        self.sequence_number = seq;
    }

    /// `spiffe_refresh_hint`: how often consumers should poll (whole seconds on the wire).
    pub fn refresh_hint(&self) -> Option<Duration> {
        self.refresh_hint
    }

    pub fn set_refresh_hint(&mut self, hint: Option<Duration>) {
        self.refresh_hint = hint;
    }

    /// True when the bundle has no keys at all.
    pub fn is_empty(&self) -> bool {
        self.x509_authorities.is_empty() && self.jwt_authorities.is_empty()
    }

    /// Adds an X.509 authority. Returns false if the same certificate was already present.
    /// The certificate must parse, have a key a SPIFFE bundle can describe, and be usable by
    /// webpki as a trust anchor.
    pub fn add_x509_authority(
        &mut self,
        cert: CertificateDer<'static>,
    ) -> Result<bool, BundleError> {
        check_authority(&cert).map_err(BundleError::Authority)?;
        Ok(self.push_x509(cert))
    }

    fn push_x509(&mut self, cert: CertificateDer<'static>) -> bool {
        if self.x509_authorities.contains(&cert) {
            return false;
        }
        self.x509_authorities.push(cert);
        true
    }

    /// Removes an X.509 authority (compared by DER). Returns whether it was present.
    pub fn remove_x509_authority(&mut self, cert: &[u8]) -> bool {
        let before = self.x509_authorities.len();
        self.x509_authorities.retain(|c| c.as_ref() != cert);
        self.x509_authorities.len() != before
    }

    /// Adds a JWT authority. Returns false if the same key is already there under `kid`;
    /// a different key under an existing `kid` is an error.
    pub fn add_jwt_authority(
        &mut self,
        kid: impl Into<String>,
        authority: JwtAuthority,
    ) -> Result<bool, BundleError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(BundleError::EmptyKid);
        }
        match self.jwt_authorities.get(&kid) {
            Some(existing) if *existing == authority => Ok(false),
            Some(_) => Err(BundleError::DuplicateKid { kid }),
            None => {
                self.jwt_authorities.insert(kid, authority);
                Ok(true)
            }
        }
    }

    pub fn remove_jwt_authority(&mut self, kid: &str) -> Option<JwtAuthority> {
        self.jwt_authorities.remove(kid)
    }

    /// Encodes the bundle as SPIFFE bundle JSON: a JWK Set with `keys`, plus
    /// `spiffe_sequence` and `spiffe_refresh_hint` when set. X.509 entries carry
    /// `use: x509-svid`, the key parameters, and `x5c` with the one DER certificate (standard
    /// base64), and no `kid`; JWT entries carry `use: jwt-svid`, `kid`, and the key parameters.
    pub fn to_spiffe_json(&self) -> Vec<u8> {
        let mut keys = Vec::with_capacity(self.x509_authorities.len() + self.jwt_authorities.len());
        for cert in &self.x509_authorities {
            let mut obj = Map::new();
            obj.insert("use".into(), USE_X509.into());
            // Every stored authority passed `check_authority`, so its key is representable.
            if let Ok(key) = svid::parse_cert(cert)
                .map_err(AuthorityError::Certificate)
                .and_then(|c| {
                    PublicKey::from_spki_der(c.public_key().raw).map_err(AuthorityError::Key)
                })
            {
                key.write_jwk_params(&mut obj);
            }
            obj.insert(
                "x5c".into(),
                Value::Array(vec![STANDARD.encode(cert).into()]),
            );
            keys.push(Value::Object(obj));
        }
        for (kid, auth) in &self.jwt_authorities {
            let mut obj = Map::new();
            obj.insert("use".into(), USE_JWT.into());
            obj.insert("kid".into(), kid.as_str().into());
            auth.key.write_jwk_params(&mut obj);
            if let Some(alg) = &auth.alg {
                obj.insert("alg".into(), alg.as_str().into());
            }
            keys.push(Value::Object(obj));
        }
        let mut top = Map::new();
        top.insert("keys".into(), Value::Array(keys));
        if let Some(seq) = self.sequence_number {
            top.insert("spiffe_sequence".into(), seq.into());
        }
        if let Some(hint) = self.refresh_hint {
            top.insert("spiffe_refresh_hint".into(), hint.as_secs().into());
        }
        // Serializing a Value built from strings and integers cannot fail.
        serde_json::to_vec_pretty(&Value::Object(top)).unwrap_or_default()
    }

    /// Parses SPIFFE bundle JSON for trust domain `td` (the document does not name it).
    ///
    /// Rules: `keys` is required (an empty array is a valid, empty bundle). Entries with a
    /// missing or unknown `use`, or a missing or unknown `kty` (including curves we do not
    /// know), are ignored. For `x509-svid` entries a missing or empty `x5c` means the entry is
    /// ignored and only the first `x5c` value is used (X509-SVID §6.2); the certificate must
    /// be a usable trust anchor, `kty` must match its key and complete key parameters must
    /// equal it (absent ones are taken from the certificate); `kid` is ignored. For
    /// `jwt-svid` entries `kid` is required and unique. `spiffe_sequence` and
    /// `spiffe_refresh_hint` must be non-negative integers when present. Other top-level
    /// fields are ignored.
    pub fn from_spiffe_json(td: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let doc: Value = serde_json::from_slice(json).map_err(BundleError::Json)?;
        let Value::Object(top) = doc else {
            return Err(BundleError::NotObject);
        };
        let mut bundle = Bundle::new(td);
        bundle.sequence_number = opt_u64(&top, "spiffe_sequence")?;
        bundle.refresh_hint = opt_u64(&top, "spiffe_refresh_hint")?.map(Duration::from_secs);
        let Some(Value::Array(keys)) = top.get("keys") else {
            return Err(BundleError::MissingKeys);
        };
        for (index, entry) in keys.iter().enumerate() {
            let Value::Object(obj) = entry else {
                return Err(BundleError::KeyNotObject { index });
            };
            match obj.get("use").and_then(Value::as_str) {
                Some(USE_X509) => bundle.read_x509_entry(index, obj)?,
                Some(USE_JWT) => bundle.read_jwt_entry(index, obj)?,
                _ => {} // missing or unknown use: ignored (§4.2.2)
            }
        }
        Ok(bundle)
    }

    fn read_x509_entry(
        &mut self,
        index: usize,
        obj: &Map<String, Value>,
    ) -> Result<(), BundleError> {
        // Unknown key type (or curve): the whole entry is ignored (§4.2.1). Missing key
        // parameters are tolerated here: the certificate in x5c carries the key.
        let jwk_key = match PublicKey::from_jwk(obj) {
            Ok(None) => return Ok(()),
            Ok(Some(key)) => Some(key),
            Err(KeyError::MissingParam(_)) => None,
            Err(source) => {
                return Err(BundleError::Key {
                    index,
                    key_use: USE_X509,
                    source,
                });
            }
        };
        let Some(first) = obj
            .get("x5c")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        else {
            return Ok(()); // no x5c value: ignored (X509-SVID §6.2)
        };
        let b64 = first.as_str().ok_or_else(|| BundleError::X5cNotBase64 {
            index,
            reason: "x5c[0] is not a string".to_owned(),
        })?;
        let der = STANDARD
            .decode(b64)
            .map_err(|e| BundleError::X5cNotBase64 {
                index,
                reason: e.to_string(),
            })?;
        let cert = CertificateDer::from(der);
        let cert_key = check_authority(&cert)
            .map_err(|source| BundleError::X5cCertificate { index, source })?;
        let kty = obj.get("kty").and_then(Value::as_str).unwrap_or_default();
        if kty != cert_key.kty() {
            return Err(BundleError::X5cKeyMismatch {
                index,
                param: "kty",
            });
        }
        if jwk_key.is_some_and(|k| k != cert_key) {
            return Err(BundleError::X5cKeyMismatch {
                index,
                param: "key values",
            });
        }
        self.push_x509(cert);
        Ok(())
    }

    fn read_jwt_entry(
        &mut self,
        index: usize,
        obj: &Map<String, Value>,
    ) -> Result<(), BundleError> {
        let key_err = |source| BundleError::Key {
            index,
            key_use: USE_JWT,
            source,
        };
        let Some(key) = PublicKey::from_jwk(obj).map_err(key_err)? else {
            return Ok(()); // unknown key type: ignored
        };
        let kid = obj.get("kid").and_then(Value::as_str).unwrap_or_default();
        if kid.is_empty() {
            return Err(BundleError::MissingKid { index });
        }
        if self.jwt_authorities.contains_key(kid) {
            return Err(BundleError::DuplicateKid {
                kid: kid.to_owned(),
            });
        }
        let alg = obj.get("alg").and_then(Value::as_str).map(str::to_owned);
        self.jwt_authorities
            .insert(kid.to_owned(), JwtAuthority { key, alg });
        Ok(())
    }

    /// The X.509 authorities as concatenated PEM `CERTIFICATE` blocks.
    pub fn to_pem(&self) -> String {
        pem::encode_certificates(&self.x509_authorities)
    }

    /// A bundle from PEM `CERTIFICATE` blocks (X.509 authorities only). Empty input gives an
    /// empty bundle; text without any PEM block, or other block types, is an error.
    pub fn from_pem(td: TrustDomain, text: &str) -> Result<Self, BundleError> {
        let certs = pem::decode_certificates(text).map_err(BundleError::Pem)?;
        let mut bundle = Bundle::new(td);
        for (index, cert) in certs.into_iter().enumerate() {
            check_authority(&cert)
                .map_err(|source| BundleError::PemCertificate { index, source })?;
            bundle.push_x509(cert);
        }
        Ok(bundle)
    }
}

fn opt_u64(top: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, BundleError> {
    match top.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(BundleError::BadField {
            field,
            expected: "a non-negative integer",
        }),
    }
}

/// Where verifiers find the bundle of a trust domain.
pub trait BundleSource {
    fn bundle_for(&self, td: &TrustDomain) -> Option<&Bundle>;
}

impl BundleSource for Bundle {
    /// A single bundle answers only for its own trust domain.
    fn bundle_for(&self, td: &TrustDomain) -> Option<&Bundle> {
        (self.trust_domain == *td).then_some(self)
    }
}

/// Bundles keyed by their own trust domain (one bundle per trust domain, never merged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSet {
    bundles: BTreeMap<TrustDomain, Bundle>,
}

impl BundleSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `bundle` under its trust domain, returning the bundle it replaces.
    pub fn insert(&mut self, bundle: Bundle) -> Option<Bundle> {
        self.bundles.insert(bundle.trust_domain.clone(), bundle)
    }

    pub fn get(&self, td: &TrustDomain) -> Option<&Bundle> {
        self.bundles.get(td)
    }

    pub fn get_mut(&mut self, td: &TrustDomain) -> Option<&mut Bundle> {
        self.bundles.get_mut(td)
    }

    pub fn remove(&mut self, td: &TrustDomain) -> Option<Bundle> {
        self.bundles.remove(td)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bundle> {
        self.bundles.values()
    }

    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.bundles.keys()
    }

    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

impl BundleSource for BundleSet {
    fn bundle_for(&self, td: &TrustDomain) -> Option<&Bundle> {
        self.get(td)
    }
}

impl FromIterator<Bundle> for BundleSet {
    fn from_iter<I: IntoIterator<Item = Bundle>>(iter: I) -> Self {
        let mut set = BundleSet::new();
        for b in iter {
            set.insert(b);
        }
        set
    }
}
