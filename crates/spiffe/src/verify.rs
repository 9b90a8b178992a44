//! X.509-SVID verification: RFC 5280 path validation (rustls-webpki) against the bundle of the
//! SVID's own trust domain, plus the checks webpki leaves out.
//!
//! Two entry points share one path-validation core:
//! - [`verify_chain_to_anchors`]: the core — webpki path building plus trust-anchor validity.
//!   No SPIFFE rules; the x509-limbo harness runs this.
//! - [`verify_x509_svid`]: the SVID verifier — SPIFFE leaf rules, bundle selection by trust
//!   domain, the core, and SVID signing-certificate rules on every intermediate of the path.

use std::cell::RefCell;
use std::fmt;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{
    EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter, KeyUsage,
    RequiredEkuNotFoundContext, VerifiedPath,
};

use crate::bundle::BundleSource;
use crate::der;
use crate::id::{SpiffeId, TrustDomain};
use crate::svid::{self, SvidError};

const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// What the verified certificate will be used for; selects the extendedKeyUsage check.
/// In every case a certificate without the extension passes (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// We are a server verifying a client: `clientAuth` required if EKU is present.
    Client,
    /// We are a client verifying a server: `serverAuth` required if EKU is present.
    Server,
    /// Either role: `serverAuth` or `clientAuth` required if EKU is present.
    Any,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Usage::Client => "client authentication (clientAuth)",
            Usage::Server => "server authentication (serverAuth)",
            Usage::Any => "TLS authentication (serverAuth or clientAuth)",
        })
    }
}

struct UsageValidator(Usage);

impl ExtendedKeyUsageValidator for UsageValidator {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        match self.0 {
            Usage::Client => KeyUsage::client_auth().validate(iter),
            Usage::Server => KeyUsage::server_auth().validate(iter),
            Usage::Any => {
                let (server, client) = (
                    KeyPurposeId::new(OID_SERVER_AUTH),
                    KeyPurposeId::new(OID_CLIENT_AUTH),
                );
                let mut present = Vec::new();
                for id in iter {
                    let id = id?;
                    if id == server || id == client {
                        return Ok(());
                    }
                    present.push(id.to_decoded_oid());
                }
                if present.is_empty() {
                    return Ok(());
                }
                Err(webpki::Error::RequiredEkuNotFoundContext(
                    RequiredEkuNotFoundContext {
                        required: KeyUsage::server_auth(),
                        present,
                    },
                ))
            }
        }
    }
}

/// Where a certificate sits in the chain (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainPosition {
    Leaf,
    Intermediate,
    /// Not identified (webpki reports a time but not which certificate).
    Unknown,
}

/// A certificate named for a message: its position and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertName {
    pub position: ChainPosition,
    pub subject: String,
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            ChainPosition::Leaf => write!(f, "leaf certificate ({})", self.subject),
            ChainPosition::Intermediate => write!(f, "intermediate certificate ({})", self.subject),
            ChainPosition::Unknown => f.write_str("a certificate in the chain"),
        }
    }
}

/// Why path validation failed. Each webpki error maps to its own variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    #[error("no X.509 authorities to verify against")]
    NoAnchors,
    #[error("bundle authority #{index} is not a parsable certificate: {source}")]
    AnchorUnparsable { index: usize, source: SvidError },
    #[error("bundle authority #{index} cannot be used as a trust anchor: {error:?}")]
    BadAnchor { index: usize, error: webpki::Error },
    #[error("{cert} expired at {} (now {})", Rfc3339(*.not_after), Rfc3339(*.now))]
    Expired {
        cert: CertName,
        not_after: u64,
        now: u64,
    },
    #[error(
        "{cert} is not valid until {} (now {}); check the clocks of issuer and verifier",
        Rfc3339(*.not_before), Rfc3339(*.now)
    )]
    NotYetValid {
        cert: CertName,
        not_before: u64,
        now: u64,
    },
    #[error("a certificate's validity period is inverted (notBefore is after notAfter)")]
    InvalidValidityPeriod,
    #[error(
        "the chain reaches bundle authority ({subject}), which expired at {} (now {}); webpki \
         does not check trust anchor dates, Sigil does: an expired root is not trusted, so \
         rotate to the new root and reissue",
        Rfc3339(*.not_after), Rfc3339(*.now)
    )]
    AuthorityExpired {
        subject: String,
        not_after: u64,
        now: u64,
    },
    #[error(
        "the chain reaches bundle authority ({subject}), which is not valid until {} (now {})",
        Rfc3339(*.not_before), Rfc3339(*.now)
    )]
    AuthorityNotYetValid {
        subject: String,
        not_before: u64,
        now: u64,
    },
    #[error(
        "not signed by any authority in the bundle: no chain from the leaf through the \
         presented intermediates reaches a bundle certificate (missing intermediate, or issued \
         by another trust domain's CA)"
    )]
    UnknownIssuer,
    #[error(
        "a signature in the chain does not verify with its issuer's public key (the \
         certificate was altered, or the issuer with this name has a different key)"
    )]
    BadSignature,
    #[error("a certificate's signature algorithm differs from the one inside its signed part")]
    SignatureAlgorithmMismatch,
    #[error(
        "unsupported signature algorithm {algorithm}; supported: ECDSA P-256/P-384/P-521, \
         RSA PKCS#1 v1.5 and PSS with 2048+ bit keys, Ed25519, ML-DSA"
    )]
    UnsupportedSignatureAlgorithm { algorithm: String },
    #[error(
        "signature algorithm {signature} cannot be used with an issuer key of type {public_key}"
    )]
    SignatureAlgorithmForKey {
        signature: String,
        public_key: String,
    },
    #[error("a CA certificate (basicConstraints cA=true) was presented as the leaf")]
    CaUsedAsLeaf,
    #[error("an issuer in the chain is not a CA (basicConstraints cA=false or absent)")]
    IssuerNotCa,
    #[error("the chain is longer than a CA's pathLenConstraint allows")]
    PathLenExceeded,
    #[error("the chain is too deep (more intermediates than path building allows)")]
    PathTooDeep,
    #[error("a certificate violates its issuer's name constraints")]
    NameConstraintViolation,
    #[error(
        "a certificate's extendedKeyUsage does not allow {usage} (it lists: {})",
        .present.join(", ")
    )]
    EkuMismatch { usage: Usage, present: Vec<String> },
    #[error("a certificate has an extendedKeyUsage extension with no purposes")]
    EmptyEku,
    #[error("a certificate has a critical extension that the verifier does not understand")]
    UnsupportedCriticalExtension,
    #[error("a certificate is not X.509 version 3")]
    UnsupportedCertVersion,
    #[error("a certificate's public key is explicitly distrusted")]
    Distrusted,
    #[error("path building gave up: the chain is too complex ({0})")]
    TooComplex(&'static str),
    #[error("a certificate in the chain is malformed ({0:?})")]
    Malformed(webpki::Error),
    #[error("intermediate ({subject}) is not a valid SVID signing certificate: {source}")]
    IntermediateNotSigning { subject: String, source: SvidError },
    #[error("path validation failed ({0:?})")]
    Other(webpki::Error),
}

/// A chain that validated: leaf, the intermediates used (in path order), then the bundle
/// authority it ends at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    chain: Vec<CertificateDer<'static>>,
    anchor_index: usize,
}

impl VerifiedChain {
    /// Leaf, intermediates used, authority.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// Index of the authority in the `anchors` slice that was passed in.
    pub fn anchor_index(&self) -> usize {
        self.anchor_index
    }
}

struct AnchorWindow {
    subject: String,
    not_before: i64,
    not_after: i64,
}

fn secs_u64(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

impl AnchorWindow {
    fn check(&self, now: u64) -> Result<(), ChainError> {
        let now_i = i64::try_from(now).unwrap_or(i64::MAX);
        if now_i < self.not_before {
            return Err(ChainError::AuthorityNotYetValid {
                subject: self.subject.clone(),
                not_before: secs_u64(self.not_before),
                now,
            });
        }
        if now_i > self.not_after {
            return Err(ChainError::AuthorityExpired {
                subject: self.subject.clone(),
                not_after: secs_u64(self.not_after),
                now,
            });
        }
        Ok(())
    }
}

/// Path-validation core shared by [`verify_x509_svid`] and the x509-limbo harness.
///
/// Checks, and nothing else:
/// 1. webpki (`EndEntityCert::verify_for_usage` with `webpki::ALL_VERIFICATION_ALGS`, i.e.
///    aws-lc-rs): a path from `leaf` through any of `intermediates` (an unordered pool) to one
///    of `anchors`; every signature; validity of the leaf and intermediates at `now` (bounds
///    inclusive); basicConstraints (leaf not a CA, issuers CAs, pathLenConstraint); name
///    constraints; unknown critical extensions; extendedKeyUsage for `usage` on every
///    certificate of the path (required only if present);
/// 2. Sigil: the validity of the trust anchor the path ends at (webpki takes anchors as bare
///    name + key and ignores their dates). A path ending at an expired authority is rejected
///    and path building continues, so another authority (root rotation) can still succeed.
///
/// Not checked here: keyUsage, SPIFFE IDs, revocation, host names.
pub fn verify_chain_to_anchors(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
) -> Result<VerifiedChain, ChainError> {
    build_path(leaf, intermediates, anchors, now, usage, &|_| Ok(()))
}

type PathCheck<'a> = dyn Fn(&[CertificateDer<'_>]) -> Result<(), ChainError> + 'a;

fn build_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    now: UnixTime,
    usage: Usage,
    intermediate_check: &PathCheck<'_>,
) -> Result<VerifiedChain, ChainError> {
    if anchors.is_empty() {
        return Err(ChainError::NoAnchors);
    }
    let mut trust_anchors: Vec<TrustAnchor<'_>> = Vec::with_capacity(anchors.len());
    let mut windows = Vec::with_capacity(anchors.len());
    for (index, der) in anchors.iter().enumerate() {
        let cert = svid::parse_cert(der)
            .map_err(|source| ChainError::AnchorUnparsable { index, source })?;
        windows.push(AnchorWindow {
            subject: svid::subject_string(&cert),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        });
        trust_anchors.push(
            webpki::anchor_from_trusted_cert(der)
                .map_err(|error| ChainError::BadAnchor { index, error })?,
        );
    }
    let ee = EndEntityCert::try_from(leaf).map_err(ChainError::Malformed)?;
    let now_secs = now.as_secs();

    // webpki calls this for each otherwise-valid path; rejecting makes it keep searching.
    // The first rejection is remembered, because webpki can only carry its own error type.
    let rejection: RefCell<Option<ChainError>> = RefCell::new(None);
    let anchor_index = |path: &VerifiedPath<'_>| {
        trust_anchors
            .iter()
            .position(|ta| std::ptr::eq(ta, path.anchor()))
    };
    let check_path = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let outcome = anchor_index(path)
            .and_then(|i| windows.get(i))
            .map_or(Ok(()), |w| w.check(now_secs))
            .and_then(|()| {
                let ders: Vec<CertificateDer<'_>> =
                    path.intermediate_certificates().map(|c| c.der()).collect();
                intermediate_check(&ders)
            });
        outcome.map_err(|e| {
            rejection.borrow_mut().get_or_insert(e);
            webpki::Error::UnknownIssuer
        })
    };
    let result = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust_anchors,
        intermediates,
        now,
        UsageValidator(usage),
        None,
        Some(&check_path),
    );
    match result {
        Ok(path) => {
            let index = anchor_index(&path).ok_or(ChainError::UnknownIssuer)?;
            let mut chain = vec![leaf.clone().into_owned()];
            chain.extend(
                path.intermediate_certificates()
                    .map(|c| c.der().into_owned()),
            );
            chain.push(anchors[index].clone().into_owned());
            Ok(VerifiedChain {
                chain,
                anchor_index: index,
            })
        }
        Err(e) => Err(match rejection.into_inner() {
            Some(ours) => ours,
            None => map_webpki_error(e, usage, leaf, intermediates),
        }),
    }
}

/// Names the certificate whose notBefore/notAfter equals `t` (webpki reports only the time).
fn name_by_time(
    t: u64,
    before: bool,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> CertName {
    let candidates = std::iter::once((ChainPosition::Leaf, leaf)).chain(
        intermediates
            .iter()
            .map(|c| (ChainPosition::Intermediate, c)),
    );
    for (position, der) in candidates {
        let Ok(cert) = svid::parse_cert(der) else {
            continue;
        };
        let v = cert.validity();
        let ts = if before {
            v.not_before.timestamp()
        } else {
            v.not_after.timestamp()
        };
        if i64::try_from(t).is_ok_and(|t| t == ts) {
            return CertName {
                position,
                subject: svid::subject_string(&cert),
            };
        }
    }
    CertName {
        position: ChainPosition::Unknown,
        subject: String::new(),
    }
}

fn eku_name(oid: &[usize]) -> String {
    let dotted = oid
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let name = match dotted.as_str() {
        "1.3.6.1.5.5.7.3.1" => "serverAuth",
        "1.3.6.1.5.5.7.3.2" => "clientAuth",
        "1.3.6.1.5.5.7.3.3" => "codeSigning",
        "1.3.6.1.5.5.7.3.4" => "emailProtection",
        "1.3.6.1.5.5.7.3.8" => "timeStamping",
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning",
        "2.5.29.37.0" => "anyExtendedKeyUsage",
        _ => return dotted,
    };
    name.to_owned()
}

/// Describes an AlgorithmIdentifier body (OID TLV then parameters) by its OID.
fn alg_name(alg_id: &[u8]) -> String {
    match der::expect(alg_id, der::OID) {
        Some((oid, _params)) => der::oid_to_string(oid),
        None => alg_id.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn map_webpki_error(
    e: webpki::Error,
    usage: Usage,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> ChainError {
    use webpki::Error as W;
    match e {
        W::CertExpired { time, not_after } => ChainError::Expired {
            cert: name_by_time(not_after.as_secs(), false, leaf, intermediates),
            not_after: not_after.as_secs(),
            now: time.as_secs(),
        },
        W::CertNotValidYet { time, not_before } => ChainError::NotYetValid {
            cert: name_by_time(not_before.as_secs(), true, leaf, intermediates),
            not_before: not_before.as_secs(),
            now: time.as_secs(),
        },
        W::InvalidCertValidity => ChainError::InvalidValidityPeriod,
        W::UnknownIssuer => ChainError::UnknownIssuer,
        W::InvalidSignatureForPublicKey => ChainError::BadSignature,
        W::SignatureAlgorithmMismatch => ChainError::SignatureAlgorithmMismatch,
        W::UnsupportedSignatureAlgorithmContext(ctx) => ChainError::UnsupportedSignatureAlgorithm {
            algorithm: alg_name(&ctx.signature_algorithm_id),
        },
        W::UnsupportedSignatureAlgorithmForPublicKeyContext(ctx) => {
            ChainError::SignatureAlgorithmForKey {
                signature: alg_name(&ctx.signature_algorithm_id),
                public_key: alg_name(&ctx.public_key_algorithm_id),
            }
        }
        W::CaUsedAsEndEntity => ChainError::CaUsedAsLeaf,
        W::EndEntityUsedAsCa => ChainError::IssuerNotCa,
        W::PathLenConstraintViolated => ChainError::PathLenExceeded,
        W::MaximumPathDepthExceeded => ChainError::PathTooDeep,
        W::NameConstraintViolation => ChainError::NameConstraintViolation,
        W::RequiredEkuNotFoundContext(ctx) => ChainError::EkuMismatch {
            usage,
            present: ctx.present.iter().map(|oid| eku_name(oid)).collect(),
        },
        W::EmptyEkuExtension => ChainError::EmptyEku,
        W::UnsupportedCriticalExtension => ChainError::UnsupportedCriticalExtension,
        W::UnsupportedCertVersion => ChainError::UnsupportedCertVersion,
        W::CertDistrusted => ChainError::Distrusted,
        W::MaximumSignatureChecksExceeded => ChainError::TooComplex("signature checks"),
        W::MaximumPathBuildCallsExceeded => ChainError::TooComplex("path building calls"),
        W::MaximumNameConstraintComparisonsExceeded => {
            ChainError::TooComplex("name constraint comparisons")
        }
        e @ (W::BadDer
        | W::BadDerTime
        | W::TrailingData(_)
        | W::MalformedExtensions
        | W::ExtensionValueInvalid
        | W::InvalidSerialNumber
        | W::MalformedNameConstraint
        | W::MalformedDnsIdentifier
        | W::InvalidNetworkMaskConstraint) => ChainError::Malformed(e),
        other => ChainError::Other(other),
    }
}

/// Why an X.509-SVID was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("no certificates presented; an X.509-SVID chain starts with the leaf")]
    EmptyChain,
    #[error("leaf is not a valid X.509-SVID: {0}")]
    Leaf(#[source] SvidError),
    #[error("no trust bundle for trust domain {0}; federate with it or add its bundle")]
    NoBundle(TrustDomain),
    #[error(
        "the bundle of trust domain {0} has no X.509 authorities: the trust domain has withdrawn \
         all its keys (or its bundle was never filled), so none of its SVIDs can be trusted"
    )]
    EmptyBundle(TrustDomain),
    #[error("trust domain {td}: {source}")]
    Chain { td: TrustDomain, source: ChainError },
}

/// An X.509-SVID that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSvid {
    id: SpiffeId,
    not_after: u64,
    path_not_before: u64,
    path_not_after: u64,
    chain: VerifiedChain,
}

impl VerifiedSvid {
    /// The authenticated SPIFFE ID.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The leaf's notAfter (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The earliest notAfter over the verified path, authority included (Unix seconds):
    /// the verification result holds until then.
    pub fn path_not_after(&self) -> u64 {
        self.path_not_after
    }

    /// The latest notBefore over the verified path, authority included (Unix seconds): the
    /// verification result holds from then on.
    pub fn path_not_before(&self) -> u64 {
        self.path_not_before
    }

    /// Leaf, intermediates used, and the bundle authority the path ends at.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        self.chain.certificates()
    }
}

/// Verifies a presented X.509-SVID chain (leaf first, then intermediates in any order).
///
/// Checks, in order:
/// 1. the chain is not empty;
/// 2. the leaf rules of [`svid::leaf_spiffe_id`]: one URI SAN that is a SPIFFE ID with a path,
///    not a CA, critical keyUsage with digitalSignature and without keyCertSign/cRLSign,
///    EKU (if present) with serverAuth and clientAuth, critical SAN when the subject is empty;
/// 3. the bundle is the one of the leaf's own trust domain (never another's); missing →
///    [`VerifyError::NoBundle`]; no X.509 authorities → [`VerifyError::EmptyBundle`];
/// 4. [`verify_chain_to_anchors`] against that bundle's X.509 authorities: signatures,
///    validity at `now` of leaf, intermediates and the authority, basicConstraints, name
///    constraints, EKU for `usage`;
/// 5. every intermediate on the path passes [`svid::check_signing_cert`] (cA, critical
///    keyUsage with keyCertSign, no path in its SPIFFE ID); a path failing it is rejected and
///    path building continues.
///
/// Not checked: revocation (SPIFFE revokes by removing authorities from the bundle) and
/// authorization (which IDs may connect is policy's job).
pub fn verify_x509_svid(
    chain: &[CertificateDer<'_>],
    bundles: &(impl BundleSource + ?Sized),
    now: UnixTime,
    usage: Usage,
) -> Result<VerifiedSvid, VerifyError> {
    let (leaf, intermediates) = chain.split_first().ok_or(VerifyError::EmptyChain)?;
    let id = svid::leaf_spiffe_id(leaf).map_err(VerifyError::Leaf)?;
    let td = id.trust_domain();
    let bundle = bundles
        .bundle_for(td)
        .ok_or_else(|| VerifyError::NoBundle(td.clone()))?;
    if bundle.x509_authorities().is_empty() {
        return Err(VerifyError::EmptyBundle(td.clone()));
    }
    let signing_rules = |path: &[CertificateDer<'_>]| -> Result<(), ChainError> {
        for der in path {
            svid::check_signing_cert(der).map_err(|source| ChainError::IntermediateNotSigning {
                subject: svid::parse_cert(der)
                    .map_or_else(|_| "unparsable".to_owned(), |c| svid::subject_string(&c)),
                source,
            })?;
        }
        Ok(())
    };
    let verified = build_path(
        leaf,
        intermediates,
        bundle.x509_authorities(),
        now,
        usage,
        &signing_rules,
    )
    .map_err(|source| VerifyError::Chain {
        td: td.clone(),
        source,
    })?;
    // Every certificate of the path was parsed by the checks above; one more parse each
    // gives the window the result holds in: latest notBefore to earliest notAfter.
    let window = |der: &CertificateDer<'_>| {
        svid::parse_cert(der).map_or((u64::MAX, 0), |c| {
            let v = c.validity();
            (
                secs_u64(v.not_before.timestamp()),
                secs_u64(v.not_after.timestamp()),
            )
        })
    };
    let not_after = window(leaf).1;
    let (path_not_before, path_not_after) = verified
        .certificates()
        .iter()
        .map(window)
        .fold((0, not_after), |(nb, na), (b, a)| (nb.max(b), na.min(a)));
    Ok(VerifiedSvid {
        id,
        not_after,
        path_not_before,
        path_not_after,
        chain: verified,
    })
}

/// Formats Unix seconds as RFC 3339 UTC, e.g. `2024-01-01T00:00:00Z`.
pub(crate) struct Rfc3339(pub u64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = i64::try_from(self.0 / 86_400).unwrap_or(i64::MAX / 2);
        let rem = self.0 % 86_400;
        // Civil-from-days (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Rfc3339(1_704_067_200).to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(Rfc3339(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(Rfc3339(4_102_444_799).to_string(), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn alg_names() {
        // ecdsa-with-SHA256
        let alg = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert_eq!(alg_name(&alg), "1.2.840.10045.4.3.2");
        assert_eq!(alg_name(&[0x05, 0x00]), "0500");
    }
}
