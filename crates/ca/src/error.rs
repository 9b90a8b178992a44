//! One error type for the CA, its variants grouped by who has to act (see [`Blame`]).
//!
//! Messages name the file or value at fault and say what to do about it.

use std::io;
use std::path::PathBuf;

use time::OffsetDateTime;

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The signing request is unacceptable (bad CSR, weak key, ID outside the trust domain).
    /// Map to `InvalidArgument` at an API edge.
    Caller,
    /// Operator-supplied configuration or files (key type, upstream CA files).
    LocalConfig,
    /// The server's own persisted state (rotation journal, CA key files in the data dir).
    LocalState,
    /// A bug or a crypto library failure.
    Internal,
}

/// Why a private key could not be used. Carried by [`CaError::Key`] together with the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error(
        "no PEM block found; expected \"-----BEGIN PRIVATE KEY-----\" (PKCS#8), \
         \"EC PRIVATE KEY\" (SEC1) or \"RSA PRIVATE KEY\" (PKCS#1)"
    )]
    NotPem,
    #[error(
        "the PEM holds no private key (found: {found}); expected a PRIVATE KEY, \
         EC PRIVATE KEY or RSA PRIVATE KEY block"
    )]
    NoPrivateKey { found: String },
    #[error("the PEM holds {0} private keys; keep exactly one")]
    MultipleKeys(usize),
    #[error(
        "the private key is encrypted; store it unencrypted (`openssl pkey -in KEY -out KEY`) \
         and protect it with file permissions (chmod 600)"
    )]
    Encrypted,
    #[error(
        "unsupported key algorithm: {0}; supported are ec-p256, ec-p384, rsa-2048, rsa-3072, \
         rsa-4096 and ed25519"
    )]
    UnsupportedAlgorithm(String),
    #[error(
        "the key is corrupt ({0}); replace it with an unencrypted PKCS#8, SEC1 or PKCS#1 PEM \
         private key"
    )]
    Corrupt(String),
}

/// Everything that can go wrong in the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    // ---- Caller: the signing request -------------------------------------------------------
    #[error("TTL must be positive; omit it to use the default")]
    ZeroTtl,
    #[error("SPIFFE ID {id} is not in trust domain {trust_domain}; this CA signs only its own")]
    IdNotInTrustDomain { id: String, trust_domain: String },
    #[error("an X509-SVID needs a SPIFFE ID with a path; {id} names the trust domain itself")]
    IdIsTrustDomain { id: String },
    #[error("DNS name {name:?} is invalid: {reason}; fix the DNS names of the registration entry")]
    InvalidDnsName { name: String, reason: &'static str },
    #[error("certificate signing request is malformed ({0}); send one DER-encoded PKCS#10 CSR")]
    CsrMalformed(String),
    #[error(
        "certificate signing request signature does not verify with its own public key \
         (the CSR was altered or signed with another key)"
    )]
    CsrSignatureInvalid,
    #[error(
        "certificate signing request is signed with {algorithm}, which is not accepted; use \
         ECDSA with SHA-256/384, RSA PKCS#1 v1.5 or PSS with SHA-256/384/512, or Ed25519"
    )]
    CsrUnsupportedSignature { algorithm: String },
    #[error(
        "public key is malformed ({0}); send a DER SubjectPublicKeyInfo of an EC P-256/P-384 \
         (uncompressed point), RSA or Ed25519 key"
    )]
    PublicKeyMalformed(String),
    #[error(
        "public key algorithm {algorithm} is not supported; use EC P-256 or P-384, RSA with \
         2048 to 8192 bits, or Ed25519"
    )]
    UnsupportedPublicKey { algorithm: String },
    #[error("{algorithm} public key has {bits} bits; at least {min_bits} are required")]
    WeakPublicKey {
        algorithm: &'static str,
        bits: usize,
        min_bits: usize,
    },

    // ---- LocalConfig: configuration and operator-supplied files -----------------------------
    #[error("unknown key type {given:?}; valid key types are: {valid}")]
    UnknownKeyType { given: String, valid: &'static str },
    #[error("ca_ttl must be positive; set a duration such as 24h, or leave it out for the default")]
    ZeroCaTtl,
    #[error("revocation reason {given:?} is not one of RFC 5280's: {known}")]
    UnknownRevocationReason { given: String, known: String },
    #[error("certificate serial {given:?} is not hex; give it like \"3a9f01\" or \"3A:9F:01\"")]
    BadSerial { given: String },
    #[error("CRL distribution point {url:?} is not an http:// or https:// URL")]
    BadCrlUrl { url: String },
    #[error("key file {path} does not exist; check the configured path")]
    KeyFileMissing { path: PathBuf },
    #[error(
        "cannot read key file {path}: {source}; it must be a regular file the server's user can \
         read"
    )]
    KeyFileRead { path: PathBuf, source: io::Error },
    #[error(
        "key file {path} has mode {mode:04o}, open to group or others; run `chmod 600 {path}` \
         (for a Kubernetes Secret volume set defaultMode: 0400)"
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("key file {path}: {problem}")]
    Key { path: PathBuf, problem: KeyProblem },
    #[error("certificate file {path} does not exist; check the configured path")]
    CertFileMissing { path: PathBuf },
    #[error(
        "cannot read certificate file {path}: {source}; check that the server's user can read it"
    )]
    CertFileRead { path: PathBuf, source: io::Error },
    #[error(
        "certificate file {path} holds no \"-----BEGIN CERTIFICATE-----\" block; put the PEM CA \
         certificate in it"
    )]
    CertFileNoCertificates { path: PathBuf },
    #[error(
        "certificate file {path} is not valid PEM ({source}); it must hold \
         \"-----BEGIN CERTIFICATE-----\" blocks as openssl and cert-manager write them"
    )]
    CertFilePem {
        path: PathBuf,
        source: sigil_spiffe::PemError,
    },
    #[error(
        "certificate file {path}: certificate #{index} is corrupt ({detail}); replace it with the \
         CA's PEM certificate"
    )]
    CertFileCorrupt {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error(
        "cannot write {path}: {source}; check that its directory exists, is writable by the \
         server's user, and has free space"
    )]
    FileWrite { path: PathBuf, source: io::Error },
    #[error(
        "upstream certificate in {path} is not a CA (basicConstraints CA:TRUE missing); \
         tls.crt must start with the CA certificate that signs for Sigil"
    )]
    UpstreamNotCa { path: PathBuf },
    #[error(
        "upstream CA certificate in {path} has no keyCertSign key usage and may not sign \
         certificates; issue it with `cert sign` usage"
    )]
    UpstreamCannotSign { path: PathBuf },
    #[error(
        "upstream key {key_path} does not match the certificate in {cert_path}; put the CA's own \
         key in tls.key"
    )]
    UpstreamKeyMismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    #[error(
        "upstream CA certificate in {path} expired at {}; renew the upstream CA",
        rfc3339(not_after)
    )]
    UpstreamExpired {
        path: PathBuf,
        not_after: OffsetDateTime,
    },
    #[error(
        "upstream CA certificate in {path} is not valid before {}; check the clock or the \
         certificate",
        rfc3339(not_before)
    )]
    UpstreamNotYetValid {
        path: PathBuf,
        not_before: OffsetDateTime,
    },
    #[error(
        "upstream chain in {path}: certificate #{index} is not signed by the certificate after \
         it ({detail}); list the CA first, then its issuers in order"
    )]
    UpstreamChainBroken {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error(
        "upstream CA {path} expires at {}, no later than the active CA ({}); a new CA cannot \
         outlive the current one: renew the upstream CA",
        rfc3339(upstream_not_after),
        rfc3339(active_not_after)
    )]
    UpstreamExpiresTooSoon {
        path: PathBuf,
        upstream_not_after: OffsetDateTime,
        active_not_after: OffsetDateTime,
    },
    #[error(
        "upstream CA certificate in {path} cannot be used as an issuer ({detail}); check that \
         tls.crt and tls.key are the CA's own certificate and key"
    )]
    UpstreamUnusable { path: PathBuf, detail: String },

    // ---- LocalState: the server's persisted CA state ----------------------------------------
    #[error(
        "CA journal is malformed: {0}; restore it from a backup, or remove it to start a new CA \
         (agents and federated peers then need the new trust bundle)"
    )]
    JournalMalformed(String),
    #[error(
        "CA journal belongs to trust domain {journal} but the server is configured for \
         {configured}; fix the configuration or use a fresh data directory"
    )]
    JournalTrustDomainMismatch { journal: String, configured: String },
    #[error("{status} CA {id} cannot be loaded: {source}. {hint}")]
    JournalKey {
        id: String,
        status: &'static str,
        /// What the operator can do; depends on whether the CA has signed anything.
        hint: &'static str,
        source: Box<CaError>,
    },
    #[error(
        "the private key in {path} does not match the CA certificate it belongs to; restore the \
         key file that was written with it"
    )]
    KeyMismatch { path: PathBuf },

    // ---- Internal ---------------------------------------------------------------------------
    #[error(
        "no active CA: the CA manager has not prepared one yet; run its first rotation (tick) \
         before signing"
    )]
    NoActiveCa,
    #[error(
        "the signing CA expired at {}; CA rotation has not run: check the server's CA lifecycle \
         logs and the system clock",
        rfc3339(not_after)
    )]
    CaExpired { not_after: OffsetDateTime },
    #[error(
        "the signing CA is not valid before {}; check the system clock",
        rfc3339(not_before)
    )]
    CaNotYetValid { not_before: OffsetDateTime },
    #[error("CA certificate is unusable: {0}")]
    CaCertificate(String),
    #[error("crypto failure: {0}")]
    Crypto(String),
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
}

/// The advice for a CA key that cannot be loaded, by the CA's rotation status.
pub(crate) fn journal_key_hint(status: crate::rotation::CaStatus) -> &'static str {
    match status {
        crate::rotation::CaStatus::Prepared => {
            "Restore the key file from a backup, or delete this prepared entry from the server's \
             CA journal: it has signed nothing and a new CA will be prepared"
        }
        _ => {
            "Restore the key file from a backup. Otherwise remove this server's CA journal (or its \
             data directory) to start a new CA; with a self-signed CA, agents and federated \
             peers then need the new trust bundle"
        }
    }
}

impl CaError {
    /// Who has to act on this error.
    pub fn blame(&self) -> Blame {
        use CaError::*;
        match self {
            ZeroTtl
            | IdNotInTrustDomain { .. }
            | IdIsTrustDomain { .. }
            | InvalidDnsName { .. }
            | CsrMalformed(_)
            | CsrSignatureInvalid
            | CsrUnsupportedSignature { .. }
            | PublicKeyMalformed(_)
            | UnsupportedPublicKey { .. }
            | WeakPublicKey { .. }
            | UnknownRevocationReason { .. }
            | BadSerial { .. } => Blame::Caller,
            UnknownKeyType { .. }
            | ZeroCaTtl
            | BadCrlUrl { .. }
            | KeyFileMissing { .. }
            | KeyFileRead { .. }
            | KeyFilePermissions { .. }
            | Key { .. }
            | CertFileMissing { .. }
            | CertFileRead { .. }
            | CertFileNoCertificates { .. }
            | CertFilePem { .. }
            | CertFileCorrupt { .. }
            | FileWrite { .. }
            | UpstreamNotCa { .. }
            | UpstreamCannotSign { .. }
            | UpstreamKeyMismatch { .. }
            | UpstreamExpired { .. }
            | UpstreamNotYetValid { .. }
            | UpstreamChainBroken { .. }
            | UpstreamExpiresTooSoon { .. }
            | UpstreamUnusable { .. } => Blame::LocalConfig,
            JournalMalformed(_)
            | JournalTrustDomainMismatch { .. }
            | JournalKey { .. }
            | KeyMismatch { .. } => Blame::LocalState,
            NoActiveCa
            | CaExpired { .. }
            | CaNotYetValid { .. }
            | CaCertificate(_)
            | Crypto(_)
            | Encoding(_) => Blame::Internal,
        }
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}

/// Formats a timestamp for messages and logs (RFC 3339, UTC).
pub(crate) fn rfc3339(t: &OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
