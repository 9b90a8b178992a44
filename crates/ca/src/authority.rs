//! Signing: an [`X509Authority`] is a CA certificate, the chain above it, and a [`Signer`].
//!
//! It issues X509-SVIDs from CSRs or bare public keys. The identity always comes from the
//! request the server built from its registration entry ([`SvidRequest`]); whatever subject or
//! SANs a CSR asks for is ignored, as in SPIRE. Only the CSR's public key is used, after its
//! self-signature verifies and the key passes the key policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, Issuer, PublicKeyData};
use rustls_pki_types::CertificateDer;
use sigil_spiffe::{SpiffeId, TrustDomain};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
use x509_parser::prelude::FromDer;

use crate::error::CaError;
use crate::signer::{RcgenKey, SharedSigner, Signer};
use crate::template::{self, CaSubject, Serial};
use crate::x509::{self, SubjectKey};

/// What to put in an X509-SVID. Built by the server from a registration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvidRequest {
    /// The SPIFFE ID; must be in the authority's trust domain and have a path.
    pub id: SpiffeId,
    /// DNS SANs; the first also becomes the subject CN.
    pub dns_names: Vec<String>,
    /// Requested lifetime; clamped to the authority's `notAfter`. Must be positive.
    pub ttl: Duration,
    /// Where CRLs are published (`http://host:port`): the certificate then carries the CRL
    /// distribution point of its issuer, [`template::crl_url`]`(base, authority id)`.
    pub crl_base_url: Option<String>,
}

impl SvidRequest {
    /// A request without DNS names.
    pub fn new(id: SpiffeId, ttl: Duration) -> Self {
        SvidRequest {
            id,
            dns_names: Vec::new(),
            ttl,
            crl_base_url: None,
        }
    }

    /// Adds the CRL distribution point extension, under `base` (see
    /// [`SvidRequest::crl_base_url`]); `None` leaves it out.
    pub fn with_crl_base_url(mut self, base: Option<String>) -> Self {
        self.crl_base_url = base;
        self
    }

    /// Adds DNS SANs.
    pub fn with_dns_names(mut self, dns_names: impl IntoIterator<Item = String>) -> Self {
        self.dns_names.extend(dns_names);
        self
    }
}

/// A freshly issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The leaf.
    pub cert_der: CertificateDer<'static>,
    /// The leaf followed by the intermediates up to, not including, the root: what a TLS peer
    /// sends and what the Workload API returns.
    pub chain: Vec<CertificateDer<'static>>,
    /// The serial number, lowercase hex.
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    /// Never later than the issuing authority's `notAfter`.
    pub not_after: OffsetDateTime,
}

/// A CA that can sign: its certificate, the certificates above it (excluding the root), and
/// its key behind [`Signer`].
#[derive(Clone)]
pub struct X509Authority {
    trust_domain: TrustDomain,
    cert: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    /// `cert` (unless it is a self-signed root) followed by `intermediates`.
    chain_tail: Vec<CertificateDer<'static>>,
    signer: Arc<dyn Signer>,
    /// `cert`'s name, key identifier and usages, parsed once for signing.
    issuer: Arc<Issuer<'static, SharedSigner>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    subject_key_id: Vec<u8>,
}

impl fmt::Debug for X509Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Authority")
            .field("id", &self.id())
            .field("trust_domain", &self.trust_domain.as_str())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("intermediates", &self.intermediates.len())
            .field("signer", &self.signer)
            .finish()
    }
}

impl X509Authority {
    /// Assembles an authority and checks it can work: `cert` is a CA allowed to sign
    /// certificates, `signer` holds its key (a probe certificate signed by `signer` verifies
    /// against `cert`), and each certificate in `intermediates` issued the one before it.
    /// Validity periods are checked when signing, not here.
    pub fn new(
        trust_domain: TrustDomain,
        cert: CertificateDer<'static>,
        intermediates: Vec<CertificateDer<'static>>,
        signer: Arc<dyn Signer>,
    ) -> Result<Self, CaError> {
        let bad = |m: String| CaError::CaCertificate(m);
        let parsed = x509::parse(&cert).map_err(|e| bad(format!("unparsable: {e}")))?;
        if !x509::is_ca(&parsed) {
            return Err(bad("basicConstraints CA:TRUE is missing".into()));
        }
        if !x509::may_sign_certs(&parsed) {
            return Err(bad("keyUsage lacks keyCertSign".into()));
        }
        if !x509::key_matches(&parsed, &*signer) {
            return Err(bad("the signing key does not match the certificate".into()));
        }
        let (mut not_before, mut not_after) = x509::validity(&parsed);
        let self_signed = x509::check_issued_by(&parsed, &parsed).is_ok();
        let subject_key_id = x509::key_id(&parsed);
        let mut child_der: &[u8] = &cert;
        for (i, der) in intermediates.iter().enumerate() {
            let child = x509::parse(child_der).map_err(CaError::CaCertificate)?;
            let up = x509::parse(der).map_err(|e| bad(format!("intermediate #{i}: {e}")))?;
            x509::check_issued_by(&child, &up)
                .map_err(|e| bad(format!("intermediate #{i}: {e}")))?;
            let (nb, na) = x509::validity(&up);
            not_before = not_before.max(nb);
            not_after = not_after.min(na);
            child_der = der;
        }
        let mut chain_tail = Vec::with_capacity(intermediates.len() + 1);
        if !self_signed {
            chain_tail.push(cert.clone());
        }
        chain_tail.extend(intermediates.iter().cloned());
        let issuer = Arc::new(Issuer::from_ca_cert_der(
            &cert,
            SharedSigner(signer.clone()),
        )?);
        let authority = X509Authority {
            trust_domain,
            cert,
            intermediates,
            chain_tail,
            signer,
            issuer,
            not_before,
            not_after,
            subject_key_id,
        };
        authority.probe()?;
        Ok(authority)
    }

    /// Signs a throwaway certificate and verifies it against our certificate: proves that the
    /// issuer name re-encodes byte-for-byte and the signer produces valid signatures.
    fn probe(&self) -> Result<(), CaError> {
        let mut params = CertificateParams::default();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[1]));
        let key = SubjectKey::from_spki_der(&self.signer.public_key_spki_der())?;
        let probe = self.sign_params(&params, &key)?;
        let probe = x509::parse(&probe).map_err(CaError::CaCertificate)?;
        let ours = x509::parse(&self.cert).map_err(CaError::CaCertificate)?;
        x509::check_issued_by(&probe, &ours).map_err(|e| {
            CaError::CaCertificate(format!("cannot issue under this certificate: {e}"))
        })
    }

    /// Mints a self-signed root CA for `trust_domain`, valid from `now` (backdated) for `ttl`.
    pub fn self_signed(
        trust_domain: TrustDomain,
        subject: &CaSubject,
        signer: Arc<dyn Signer>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Self, CaError> {
        if ttl.is_zero() {
            return Err(CaError::ZeroCaTtl);
        }
        let far = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT);
        let (nb, na) = template::clamp_lifetime(now, ttl, far);
        let params = template::root_ca_params(&trust_domain, subject, Serial::random()?, nb, na)?;
        let cert = params.self_signed(&RcgenKey(&*signer))?.der().clone();
        X509Authority::new(trust_domain, cert, Vec::new(), signer)
    }

    /// Mints an intermediate CA for `child`'s key, signed by this authority and clamped to its
    /// `notAfter`. The result chains to the same root.
    pub fn mint_intermediate(
        &self,
        subject: &CaSubject,
        child: Arc<dyn Signer>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Authority, CaError> {
        self.mint_child(
            subject,
            child,
            ttl,
            now,
            self.not_after,
            self.chain_tail.clone(),
        )
    }

    /// Mints an intermediate for `child` valid until at most `cap`, whose chain above it is
    /// `chain_above` (the caller decides where the trust anchor is).
    pub(crate) fn mint_child(
        &self,
        subject: &CaSubject,
        child: Arc<dyn Signer>,
        ttl: Duration,
        now: OffsetDateTime,
        cap: OffsetDateTime,
        chain_above: Vec<CertificateDer<'static>>,
    ) -> Result<X509Authority, CaError> {
        if ttl.is_zero() {
            return Err(CaError::ZeroCaTtl);
        }
        self.check_valid_at(now)?;
        let (nb, na) = template::clamp_lifetime(now, ttl, cap.min(self.not_after));
        let params = template::intermediate_ca_params(
            &self.trust_domain,
            subject,
            Serial::random()?,
            nb,
            na,
        )?;
        let child_key = SubjectKey::from_spki_der(&child.public_key_spki_der())?;
        let cert = self.sign_params(&params, &child_key)?;
        X509Authority::new(self.trust_domain.clone(), cert, chain_above, child)
    }

    /// Issues an X509-SVID for the public key of `csr_der` (DER PKCS#10). The CSR must verify
    /// with its own key; its subject, SANs and extensions are ignored.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        req: &SvidRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        let csr = match X509CertificationRequest::from_der(csr_der) {
            Ok(([], csr)) => csr,
            Ok(_) => return Err(CaError::CsrMalformed("trailing bytes after the CSR".into())),
            Err(e) => return Err(CaError::CsrMalformed(e.to_string())),
        };
        // Key policy first: a weak key would otherwise surface as a confusing signature error.
        let key = SubjectKey::from_spki(&csr.certification_request_info.subject_pki)?;
        let sig_alg = &csr.signature_algorithm.algorithm;
        if *sig_alg == OID_PKCS1_SHA1WITHRSA || *sig_alg == OID_SHA1_WITH_RSA {
            return Err(CaError::CsrUnsupportedSignature {
                algorithm: "RSA with SHA-1".into(),
            });
        }
        match csr.verify_signature() {
            Ok(()) => {}
            Err(X509Error::SignatureUnsupportedAlgorithm) => {
                return Err(CaError::CsrUnsupportedSignature {
                    algorithm: format!("OID {}", sig_alg.to_id_string()),
                });
            }
            Err(_) => return Err(CaError::CsrSignatureInvalid),
        }
        self.issue(&key, req, now)
    }

    /// Issues an X509-SVID for a DER SubjectPublicKeyInfo (when the caller generated the key
    /// itself, e.g. the server's own SVID).
    pub fn sign_public_key(
        &self,
        spki_der: &[u8],
        req: &SvidRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        let key = SubjectKey::from_spki_der(spki_der)?;
        self.issue(&key, req, now)
    }

    fn issue(
        &self,
        key: &SubjectKey,
        req: &SvidRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        if req.id.trust_domain() != &self.trust_domain {
            return Err(CaError::IdNotInTrustDomain {
                id: req.id.to_string(),
                trust_domain: self.trust_domain.to_string(),
            });
        }
        if req.ttl.is_zero() {
            return Err(CaError::ZeroTtl);
        }
        self.check_valid_at(now)?;
        let (not_before, not_after) = template::clamp_lifetime(now, req.ttl, self.not_after);
        let serial = Serial::random()?;
        let mut params =
            template::svid_params(&req.id, &req.dns_names, serial, not_before, not_after)?;
        if let Some(base) = &req.crl_base_url {
            template::set_crl_distribution_point(&mut params, &self.crl_url(base))?;
        }
        let cert_der = self.sign_params(&params, key)?;
        let mut chain = Vec::with_capacity(self.chain_tail.len() + 1);
        chain.push(cert_der.clone());
        chain.extend(self.chain_tail.iter().cloned());
        Ok(IssuedCert {
            cert_der,
            chain,
            serial_hex: serial.to_hex(),
            not_before,
            not_after,
        })
    }

    /// Signs a certificate whose contents the caller chose (cert-manager's `ca` and `sigil`
    /// issuers) for the key `spki_der`. The serial is replaced by a random one, `notBefore` is
    /// `now` (not backdated, as cert-manager: the lifetime is exactly `ttl`) and `notAfter` is
    /// `now + ttl` clamped to the authority's `notAfter`; everything else in `params` is kept.
    /// The chain of the result excludes the root.
    pub fn sign_leaf(
        &self,
        mut params: CertificateParams,
        spki_der: &[u8],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CaError> {
        if ttl.is_zero() {
            return Err(CaError::ZeroTtl);
        }
        self.check_valid_at(now)?;
        let key = SubjectKey::from_spki_der(spki_der)?;
        let not_before = now.replace_nanosecond(0).unwrap_or(now);
        let not_after =
            template::add(not_before, ttl).map_or(self.not_after, |t| t.min(self.not_after));
        let serial = Serial::random()?;
        params.serial_number = Some(serial.to_rcgen());
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let cert_der = self.sign_params(&params, &key)?;
        let mut chain = Vec::with_capacity(self.chain_tail.len() + 1);
        chain.push(cert_der.clone());
        chain.extend(self.chain_tail.iter().cloned());
        Ok(IssuedCert {
            cert_der,
            chain,
            serial_hex: serial.to_hex(),
            not_before,
            not_after,
        })
    }

    fn check_valid_at(&self, now: OffsetDateTime) -> Result<(), CaError> {
        if now >= self.not_after {
            return Err(CaError::CaExpired {
                not_after: self.not_after,
            });
        }
        if now < self.not_before {
            return Err(CaError::CaNotYetValid {
                not_before: self.not_before,
            });
        }
        Ok(())
    }

    /// The URL of this authority's CRL under `base` (see [`template::crl_url`]).
    pub fn crl_url(&self, base: &str) -> String {
        template::crl_url(base, &self.id())
    }

    /// Signs CRL parameters with this authority's key (see [`crate::crl::sign_crl`]).
    pub(crate) fn sign_crl_params(
        &self,
        params: &rcgen::CertificateRevocationListParams,
    ) -> Result<rcgen::CertificateRevocationList, CaError> {
        Ok(params.signed_by(&*self.issuer)?)
    }

    pub(crate) fn sign_params(
        &self,
        params: &CertificateParams,
        subject_key: &impl PublicKeyData,
    ) -> Result<CertificateDer<'static>, CaError> {
        Ok(params.signed_by(subject_key, &*self.issuer)?.der().clone())
    }

    /// The authority's ID: its subject key identifier, lowercase hex (SPIRE's authority ID).
    pub fn id(&self) -> String {
        hex::encode(&self.subject_key_id)
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificate whose key signs.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Certificates above [`X509Authority::cert_der`], excluding the root.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.intermediates
    }

    /// What follows a leaf issued by this authority in a chain: the authority's certificate
    /// (unless it is a self-signed root) and its intermediates.
    pub fn chain_tail(&self) -> &[CertificateDer<'static>] {
        &self.chain_tail
    }

    /// The latest `notBefore` along the chain.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The earliest `notAfter` along the chain; nothing issued outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub fn subject_key_id(&self) -> &[u8] {
        &self.subject_key_id
    }

    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }
}

/// Signs `params` with the subject's own key (cert-manager's `selfSigned` issuer): a random
/// serial, `notBefore = now`, `notAfter = now + ttl`. The chain is the certificate alone.
pub fn sign_self(
    mut params: CertificateParams,
    key: &dyn Signer,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<IssuedCert, CaError> {
    if ttl.is_zero() {
        return Err(CaError::ZeroTtl);
    }
    let not_before = now.replace_nanosecond(0).unwrap_or(now);
    let far = OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT);
    let not_after = template::add(not_before, ttl).unwrap_or(far);
    let serial = Serial::random()?;
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = not_before;
    params.not_after = not_after;
    let cert_der = params.self_signed(&RcgenKey(key))?.der().clone();
    Ok(IssuedCert {
        chain: vec![cert_der.clone()],
        cert_der,
        serial_hex: serial.to_hex(),
        not_before,
        not_after,
    })
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
