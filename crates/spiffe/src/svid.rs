//! X.509-SVID rules (SPIFFE `X509-SVID.md` §2–§5), checked on DER certificates.
//!
//! These are the SPIFFE-specific checks that RFC 5280 path validation (webpki) does not make:
//! webpki accepts a leaf that asserts `keyCertSign`, and ignores `keyUsage` entirely.

use std::fmt;

use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::id::{IdError, SpiffeId};

/// Which kind of certificate a rule applies to (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The leaf (end-entity) SVID that names a workload.
    Leaf,
    /// A signing (CA) certificate: an intermediate or a root.
    Signing,
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertRole::Leaf => "leaf",
            CertRole::Signing => "signing certificate",
        })
    }
}

/// A broken X.509-SVID rule. Each variant names the rule; the message says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SvidError {
    #[error("certificate is not valid X.509 DER: {0}")]
    Malformed(#[source] X509Error),
    #[error(
        "certificate DER is followed by {0} bytes of trailing data; pass exactly one certificate"
    )]
    TrailingData(usize),
    #[error("certificate's {extension} extension is malformed or repeated: {source}")]
    BadExtension {
        extension: &'static str,
        source: X509Error,
    },
    #[error(
        "leaf has no URI SAN; an X.509-SVID carries its SPIFFE ID as exactly one URI SAN \
         (issue it with a spiffe:// URI subjectAltName)"
    )]
    NoUriSan,
    #[error(
        "{role} has {} URI SANs ({}); an X.509-SVID carries exactly one SPIFFE ID",
        .uris.len(), .uris.join(", ")
    )]
    MultipleUriSans { role: CertRole, uris: Vec<String> },
    #[error("{role}'s URI SAN {uri:?} is not a valid SPIFFE ID: {source}")]
    InvalidSpiffeId {
        role: CertRole,
        uri: String,
        source: IdError,
    },
    #[error(
        "leaf SPIFFE ID {0} has no path; a trust domain ID names the trust domain and can never \
         identify a workload"
    )]
    RootIdInLeaf(SpiffeId),
    #[error(
        "leaf is a CA certificate (basicConstraints cA=true); an X.509-SVID leaf must have \
         cA=false, and CA certificates must never be accepted as identities"
    )]
    LeafIsCa,
    #[error("{0} has no keyUsage extension; every X.509-SVID must carry a critical keyUsage")]
    KeyUsageMissing(CertRole),
    #[error("{0}'s keyUsage extension is not marked critical; X.509-SVIDs must mark it critical")]
    KeyUsageNotCritical(CertRole),
    #[error("leaf keyUsage lacks digitalSignature; an X.509-SVID leaf must set it")]
    LeafMissingDigitalSignature,
    #[error(
        "leaf keyUsage sets keyCertSign; only signing (CA) certificates may, otherwise this leaf \
         could mint identities"
    )]
    LeafHasKeyCertSign,
    #[error("leaf keyUsage sets cRLSign; only signing (CA) certificates may")]
    LeafHasCrlSign,
    #[error(
        "leaf extendedKeyUsage lacks {missing}; when the extension is present an X.509-SVID must \
         list both serverAuth and clientAuth (or leave the extension out)"
    )]
    LeafEkuIncomplete { missing: &'static str },
    #[error(
        "leaf has an empty subject but its subjectAltName extension is not critical \
         (RFC 5280 §4.1.2.6); mark the SAN critical or set a subject"
    )]
    SanNotCriticalWithEmptySubject,
    #[error(
        "signing certificate is not a CA (basicConstraints cA is false or absent); \
         intermediates must have cA=true"
    )]
    SigningCertNotCa,
    #[error(
        "signing certificate's keyUsage lacks keyCertSign; SVID signing certificates must set it"
    )]
    SigningCertMissingKeyCertSign,
    #[error(
        "signing certificate carries SPIFFE ID {0} with a path; a signing certificate may only \
         carry a trust domain ID (spiffe://<trust-domain>)"
    )]
    SigningCertIdHasPath(SpiffeId),
    #[error("certificate chain is empty; an X.509-SVID needs at least its leaf certificate")]
    EmptyChain,
    #[error(
        "chain certificate #{index} ({subject}) is not a valid SVID signing certificate: {source}"
    )]
    Intermediate {
        index: usize,
        subject: String,
        source: Box<SvidError>,
    },
    #[error("private key is empty; an X.509-SVID needs its PKCS#8 private key")]
    EmptyPrivateKey,
}

/// Parses one DER certificate, refusing trailing bytes.
pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, SvidError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            SvidError::Malformed(e)
        }
        x509_parser::nom::Err::Incomplete(_) => SvidError::Malformed(X509Error::InvalidCertificate),
    })?;
    if !rest.is_empty() {
        return Err(SvidError::TrailingData(rest.len()));
    }
    Ok(cert)
}

/// Maps an x509-parser error about `extension` to [`SvidError::BadExtension`].
fn bad_extension(extension: &'static str) -> impl FnOnce(X509Error) -> SvidError {
    move |source| SvidError::BadExtension { extension, source }
}

/// A certificate's subject for messages ("<empty subject>" when it has none).
pub(crate) fn subject_string(cert: &X509Certificate<'_>) -> String {
    let s = cert.subject().to_string();
    if s.is_empty() {
        "<empty subject>".to_owned()
    } else {
        s
    }
}

fn uri_sans<'a>(cert: &'a X509Certificate<'_>) -> Result<(Vec<&'a str>, bool), SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(bad_extension("subjectAltName"))?;
    let Some(san) = san else {
        return Ok((Vec::new(), false));
    };
    let uris = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    Ok((uris, san.critical))
}

/// The SPIFFE ID of a certificate's only URI SAN (`None` without URI SANs): several URI SANs,
/// or one that is not a SPIFFE ID, break the rule for `role`.
fn uri_san_id(uris: &[&str], role: CertRole) -> Result<Option<SpiffeId>, SvidError> {
    let uri = match uris {
        [] => return Ok(None),
        [one] => *one,
        many => {
            return Err(SvidError::MultipleUriSans {
                role,
                uris: many.iter().map(|u| (*u).to_owned()).collect(),
            });
        }
    };
    SpiffeId::parse(uri)
        .map(Some)
        .map_err(|source| SvidError::InvalidSpiffeId {
            role,
            uri: uri.to_owned(),
            source,
        })
}

fn is_ca(cert: &X509Certificate<'_>) -> Result<bool, SvidError> {
    let bc = cert
        .basic_constraints()
        .map_err(bad_extension("basicConstraints"))?;
    Ok(bc.is_some_and(|bc| bc.value.ca))
}

/// Returns the critical keyUsage, or the rule it breaks.
fn critical_key_usage(
    cert: &X509Certificate<'_>,
    role: CertRole,
) -> Result<x509_parser::extensions::KeyUsage, SvidError> {
    let ku = cert
        .key_usage()
        .map_err(bad_extension("keyUsage"))?
        .ok_or(SvidError::KeyUsageMissing(role))?;
    if !ku.critical {
        return Err(SvidError::KeyUsageNotCritical(role));
    }
    Ok(*ku.value)
}

/// Validates `der` as an X.509-SVID leaf and returns its SPIFFE ID.
///
/// Checks, in order:
/// 1. the DER is exactly one X.509 certificate;
/// 2. exactly one URI SAN, which is a valid SPIFFE ID (strict parsing, see [`SpiffeId::parse`])
///    with a non-root path (other SAN types such as DNS are allowed);
/// 3. basicConstraints `cA` is false (an absent extension counts as false);
/// 4. keyUsage is present and critical, sets `digitalSignature`, and sets neither
///    `keyCertSign` nor `cRLSign`;
/// 5. if extendedKeyUsage is present, it lists both `serverAuth` and `clientAuth` (§4.4);
/// 6. if the subject is empty, the subjectAltName extension is critical (§3.1).
///
/// It does not check validity dates or signatures: that is path validation
/// ([`crate::verify::verify_x509_svid`]).
pub fn leaf_spiffe_id(der: &[u8]) -> Result<SpiffeId, SvidError> {
    let cert = parse_cert(der)?;
    let (uris, san_critical) = uri_sans(&cert)?;
    let id = uri_san_id(&uris, CertRole::Leaf)?.ok_or(SvidError::NoUriSan)?;
    if id.is_root() {
        return Err(SvidError::RootIdInLeaf(id));
    }
    if is_ca(&cert)? {
        return Err(SvidError::LeafIsCa);
    }
    let ku = critical_key_usage(&cert, CertRole::Leaf)?;
    if !ku.digital_signature() {
        return Err(SvidError::LeafMissingDigitalSignature);
    }
    if ku.key_cert_sign() {
        return Err(SvidError::LeafHasKeyCertSign);
    }
    if ku.crl_sign() {
        return Err(SvidError::LeafHasCrlSign);
    }
    let eku = cert
        .extended_key_usage()
        .map_err(bad_extension("extendedKeyUsage"))?;
    if let Some(eku) = eku {
        let missing = match (eku.value.server_auth, eku.value.client_auth) {
            (true, true) => None,
            (false, true) => Some("serverAuth"),
            (true, false) => Some("clientAuth"),
            (false, false) => Some("serverAuth and clientAuth"),
        };
        if let Some(missing) = missing {
            return Err(SvidError::LeafEkuIncomplete { missing });
        }
    }
    if cert.subject().iter().next().is_none() && !san_critical {
        return Err(SvidError::SanNotCriticalWithEmptySubject);
    }
    Ok(id)
}

/// Validates `der` as an X.509-SVID signing (CA) certificate.
///
/// Checks: the DER is one X.509 certificate; basicConstraints `cA` is true; keyUsage is present
/// and critical and sets `keyCertSign` (`cRLSign` is optional); at most one URI SAN, and if it
/// is there it must be a SPIFFE ID without a path, which is returned.
/// `pathLenConstraint` and name constraints are left to path validation.
pub fn check_signing_cert(der: &[u8]) -> Result<Option<SpiffeId>, SvidError> {
    let cert = parse_cert(der)?;
    if !is_ca(&cert)? {
        return Err(SvidError::SigningCertNotCa);
    }
    let ku = critical_key_usage(&cert, CertRole::Signing)?;
    if !ku.key_cert_sign() {
        return Err(SvidError::SigningCertMissingKeyCertSign);
    }
    let (uris, _) = uri_sans(&cert)?;
    let Some(id) = uri_san_id(&uris, CertRole::Signing)? else {
        return Ok(None);
    };
    if !id.is_root() {
        return Err(SvidError::SigningCertIdHasPath(id));
    }
    Ok(Some(id))
}

/// Checks every certificate after the leaf as a signing certificate, naming the first that fails.
pub(crate) fn check_intermediates(chain: &[CertificateDer<'_>]) -> Result<(), SvidError> {
    for (index, der) in chain.iter().enumerate() {
        if let Err(e) = check_signing_cert(der) {
            let subject =
                parse_cert(der).map_or_else(|_| "unparsable".to_owned(), |c| subject_string(&c));
            return Err(SvidError::Intermediate {
                index,
                subject,
                source: Box::new(e),
            });
        }
    }
    Ok(())
}

/// An X.509-SVID with its private key, as delivered by the Workload API.
///
/// Construction validates the leaf ([`leaf_spiffe_id`]) and every following certificate as a
/// signing certificate ([`check_signing_cert`]). It does not verify signatures or dates (use
/// [`crate::verify::verify_x509_svid`] against a bundle), nor that the key matches the leaf.
pub struct X509Svid {
    id: SpiffeId,
    cert_chain: Vec<CertificateDer<'static>>,
    private_key: PrivatePkcs8KeyDer<'static>,
    hint: Option<String>,
}

impl X509Svid {
    /// Builds an SVID from its chain (leaf first, then intermediates) and PKCS#8 key.
    pub fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        private_key: PrivatePkcs8KeyDer<'static>,
        hint: Option<String>,
    ) -> Result<Self, SvidError> {
        let (leaf, intermediates) = cert_chain.split_first().ok_or(SvidError::EmptyChain)?;
        let id = leaf_spiffe_id(leaf)?;
        check_intermediates(intermediates).map_err(|e| match e {
            // Number chain positions from the leaf (#0) so the index matches `cert_chain`.
            SvidError::Intermediate {
                index,
                subject,
                source,
            } => SvidError::Intermediate {
                index: index + 1,
                subject,
                source,
            },
            other => other,
        })?;
        if private_key.secret_pkcs8_der().is_empty() {
            return Err(SvidError::EmptyPrivateKey);
        }
        Ok(X509Svid {
            id,
            cert_chain,
            private_key,
            hint,
        })
    }

    /// The SPIFFE ID from the leaf's URI SAN.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The chain: leaf first, then intermediates (never empty).
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `new` refuses an empty chain.
        &self.cert_chain[0]
    }

    /// The private key (PKCS#8 DER) of the leaf.
    pub fn private_key(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.private_key
    }

    /// The Workload API hint (an operator-chosen label), if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl Clone for X509Svid {
    fn clone(&self) -> Self {
        X509Svid {
            id: self.id.clone(),
            cert_chain: self.cert_chain.clone(),
            private_key: self.private_key.clone_key(),
            hint: self.hint.clone(),
        }
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("id", &self.id)
            .field("chain_len", &self.cert_chain.len())
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}
