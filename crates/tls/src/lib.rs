//! rustls glue for SPIFFE identities: verifiers that check X.509-SVIDs against the bundle of the
//! peer's trust domain, and config builders.
//!
//! Both verifiers do exactly what [`sigil_spiffe::verify_x509_svid`] lists (leaf rules, bundle
//! of the peer's own trust domain, path validation, signing-cert rules), plus the handshake
//! signature check; the server verifier additionally requires the peer's SPIFFE ID to be
//! accepted by its [`IdMatcher`]. Each verifier remembers the chains it verified, for as long as
//! their paths are valid, so a peer's repeated connections skip the chain's signature checks
//! (never the handshake signature, nor secure naming): see `chain_cache`.

mod chain_cache;

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use sigil_spiffe::{BundleSet, SpiffeId, Usage, VerifyError, verify_x509_svid};

/// The crypto provider Sigil uses everywhere (aws-lc-rs: fast P-256, X25519MLKEM768 first),
/// with the AES-128-GCM suites first, as BoringSSL and Go order them on CPUs with AES
/// instructions: TLS 1.3's `TLS_AES_128_GCM_SHA256` hashes its transcript and derives its keys
/// with SHA-256, which runs on the CPU's SHA extensions, where `TLS_AES_256_GCM_SHA384` (rustls'
/// first choice) runs SHA-384 in software: about 6 % of a server's CPU per new connection in
/// bench/run's handshake profile. Every suite stays offered, in rustls' order after these.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.sort_by_key(|s| !is_aes128_gcm(s.suite()));
    Arc::new(p)
}

fn is_aes128_gcm(s: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite as C;
    matches!(
        s,
        C::TLS13_AES_128_GCM_SHA256
            | C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

/// Which peer IDs a client accepts from a server.
#[derive(Clone)]
pub enum IdMatcher {
    /// Exactly this ID.
    Exact(SpiffeId),
    /// One of these IDs.
    OneOf(Vec<SpiffeId>),
    /// Any ID of the trusted bundles.
    Any,
}

impl IdMatcher {
    pub fn accepts(&self, id: &SpiffeId) -> bool {
        match self {
            IdMatcher::Exact(want) => want == id,
            IdMatcher::OneOf(ids) => ids.contains(id),
            IdMatcher::Any => true,
        }
    }
}

impl fmt::Debug for IdMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdMatcher::Exact(id) => write!(f, "{id}"),
            IdMatcher::OneOf(ids) => f
                .debug_list()
                .entries(ids.iter().map(|i| i.as_str()))
                .finish(),
            IdMatcher::Any => f.write_str("any"),
        }
    }
}

fn to_rustls(e: VerifyError) -> Error {
    use sigil_spiffe::ChainError as C;
    let ce = match &e {
        VerifyError::Chain {
            source: C::Expired { .. } | C::AuthorityExpired { .. },
            ..
        } => CertificateError::Expired,
        VerifyError::Chain {
            source: C::NotYetValid { .. } | C::AuthorityNotYetValid { .. },
            ..
        } => CertificateError::NotValidYet,
        VerifyError::Chain {
            source: C::UnknownIssuer,
            ..
        }
        | VerifyError::NoBundle(_)
        | VerifyError::EmptyBundle(_) => CertificateError::UnknownIssuer,
        _ => CertificateError::Other(rustls::OtherError(Arc::new(e))),
    };
    Error::InvalidCertificate(ce)
}

fn algs(p: &CryptoProvider) -> WebPkiSupportedAlgorithms {
    p.signature_verification_algorithms
}

/// Server side: verifies client SVIDs. With `optional`, clients without a certificate are let
/// through (the application decides, e.g. the node API's attestation call).
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    bundles: BundleSet,
    optional: bool,
    algs: WebPkiSupportedAlgorithms,
    verified: chain_cache::ChainCache,
}

impl SpiffeClientVerifier {
    pub fn new(bundles: BundleSet, optional: bool) -> Self {
        SpiffeClientVerifier {
            bundles,
            optional,
            algs: algs(&provider()),
            verified: Default::default(),
        }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.optional
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let key = chain_cache::key(end_entity, intermediates);
        if self.verified.get(&key, now).is_some() {
            return Ok(ClientCertVerified::assertion());
        }
        let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.clone())
            .chain(intermediates.iter().cloned())
            .collect();
        match verify_x509_svid(&chain, &self.bundles, now, Usage::Client) {
            Ok(v) => {
                self.verified.insert(key, &v);
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => {
                tracing::debug!(reason = %e, "client SVID rejected");
                Err(to_rustls(e))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Client side: verifies the server's SVID and that its ID is one we expect (secure naming).
/// The TLS server name is not compared: identity is the SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    bundles: BundleSet,
    expected: IdMatcher,
    algs: WebPkiSupportedAlgorithms,
    verified: chain_cache::ChainCache,
}

impl SpiffeServerVerifier {
    pub fn new(bundles: BundleSet, expected: IdMatcher) -> Self {
        SpiffeServerVerifier {
            bundles,
            expected,
            algs: algs(&provider()),
            verified: Default::default(),
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let key = chain_cache::key(end_entity, intermediates);
        let id = match self.verified.get(&key, now) {
            Some(id) => id,
            None => {
                let chain: Vec<CertificateDer<'_>> = std::iter::once(end_entity.clone())
                    .chain(intermediates.iter().cloned())
                    .collect();
                let v = verify_x509_svid(&chain, &self.bundles, now, Usage::Server)
                    .map_err(to_rustls)?;
                self.verified.insert(key, &v);
                v.id().clone()
            }
        };
        // Secure naming is checked on every handshake, cached or not.
        if !self.expected.accepts(&id) {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(UnexpectedId {
                    got: id,
                    want: self.expected.clone(),
                })),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The server presented a valid SVID with an ID we did not expect.
#[derive(Debug)]
pub struct UnexpectedId {
    pub got: SpiffeId,
    pub want: IdMatcher,
}

impl fmt::Display for UnexpectedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer presented SPIFFE ID {}, expected {:?}",
            self.got, self.want
        )
    }
}

impl std::error::Error for UnexpectedId {}
