//! A test PKI generated in code (rcgen): roots, intermediates and leaves with knobs for every
//! rule the verifier enforces.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use time::OffsetDateTime;

/// The fixed "now" of these tests: 2030-03-17T17:46:40Z.
pub const NOW: i64 = 1_900_000_000;
pub const DAY: i64 = 86_400;

pub fn now() -> UnixTime {
    at(NOW)
}

pub fn at(secs: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(secs).unwrap()))
}

pub fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// keyUsage with only digitalSignature, as a non-critical extension (rcgen always marks its
/// own keyUsage critical).
pub fn non_critical_digital_signature_ku() -> CustomExtension {
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, 0x07, 0x80]);
    ext.set_criticality(false);
    ext
}

/// Options for a CA certificate.
#[derive(Clone)]
pub struct CaOpts {
    pub cn: String,
    pub uri: Option<String>,
    pub is_ca: IsCa,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    pub not_before: i64,
    pub not_after: i64,
}

impl CaOpts {
    pub fn new(cn: &str, td: &str) -> Self {
        CaOpts {
            cn: cn.to_owned(),
            uri: Some(format!("spiffe://{td}")),
            is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            ekus: Vec::new(),
            not_before: NOW - 365 * DAY,
            not_after: NOW + 365 * DAY,
        }
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(&self.cn);
        p.subject_alt_names = self.uri.iter().map(|u| uri(u)).collect();
        p.is_ca = self.is_ca;
        p.key_usages = self.key_usages.clone();
        p.extended_key_usages = self.ekus.clone();
        p.not_before = ts(self.not_before);
        p.not_after = ts(self.not_after);
        p.use_authority_key_identifier_extension = true;
        p
    }
}

/// A CA that can issue certificates.
pub struct TestCa {
    pub td: String,
    pub cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A self-signed root for `td`, valid a year either side of [`NOW`].
    pub fn root(td: &str) -> Self {
        Self::root_with(td, CaOpts::new(&format!("{td} root"), td))
    }

    pub fn root_with(td: &str, opts: CaOpts) -> Self {
        Self::root_with_alg(td, opts, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    pub fn root_with_alg(td: &str, opts: CaOpts, alg: &'static SignatureAlgorithm) -> Self {
        let key = key_for(alg);
        let params = opts.params();
        let cert = params.self_signed(&key).unwrap().der().clone();
        TestCa {
            td: td.to_owned(),
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate signed by this CA.
    pub fn child_ca(&self, opts: CaOpts) -> TestCa {
        let key = key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
        let params = opts.params();
        let cert = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        TestCa {
            td: self.td.clone(),
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A new self-signed certificate for this CA's key (same subject if `opts.cn` is the
    /// same): how a root is re-minted with new dates.
    pub fn remint(&self, opts: CaOpts) -> CertificateDer<'static> {
        opts.params()
            .self_signed(self.issuer.key())
            .unwrap()
            .der()
            .clone()
    }

    /// An intermediate with default options.
    pub fn intermediate(&self) -> TestCa {
        self.child_ca(CaOpts::new(&format!("{} intermediate", self.td), &self.td))
    }

    /// Issues a leaf.
    pub fn issue(&self, leaf: &Leaf) -> (CertificateDer<'static>, KeyPair) {
        let key = key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
        let cert = leaf
            .params()
            .signed_by(&key, &self.issuer)
            .unwrap()
            .der()
            .clone();
        (cert, key)
    }

    /// Issues a default SVID leaf for `path` in this CA's trust domain.
    pub fn issue_svid(&self, path: &str) -> CertificateDer<'static> {
        self.issue(&Leaf::svid(&format!("spiffe://{}{path}", self.td)))
            .0
    }
}

pub fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_RSA_SHA256 {
        KeyPair::generate_rsa_for(alg, rcgen::RsaKeySize::_2048).unwrap()
    } else {
        KeyPair::generate_for(alg).unwrap()
    }
}

pub fn pkcs8(key: &KeyPair) -> PrivatePkcs8KeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.serialize_der())
}

/// Options for a leaf certificate; `Leaf::svid` gives a conforming X.509-SVID.
#[derive(Clone)]
pub struct Leaf {
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    pub cn: Option<String>,
    pub is_ca: IsCa,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub custom: Vec<CustomExtension>,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    pub not_before: i64,
    pub not_after: i64,
}

impl Leaf {
    pub fn svid(id: &str) -> Self {
        Leaf {
            uris: vec![id.to_owned()],
            dns: Vec::new(),
            cn: Some("workload".to_owned()),
            is_ca: IsCa::ExplicitNoCa,
            key_usages: vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            custom: Vec::new(),
            ekus: vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            not_before: NOW - DAY,
            not_after: NOW + DAY,
        }
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = self.cn.as_deref().map_or_else(DistinguishedName::new, dn);
        p.subject_alt_names = self.uris.iter().map(|u| uri(u)).collect();
        p.subject_alt_names.extend(
            self.dns
                .iter()
                .map(|d| SanType::DnsName(d.as_str().try_into().unwrap())),
        );
        p.is_ca = self.is_ca;
        p.key_usages = self.key_usages.clone();
        p.custom_extensions = self.custom.clone();
        p.extended_key_usages = self.ekus.clone();
        p.not_before = ts(self.not_before);
        p.not_after = ts(self.not_after);
        p.use_authority_key_identifier_extension = true;
        p
    }
}

/// A subjectAltName with one URI, as a non-critical custom extension (rcgen marks its own SAN
/// critical whenever the subject is empty).
pub fn non_critical_uri_san(uri: &str) -> CustomExtension {
    let uri = uri.as_bytes();
    assert!(uri.len() < 120, "short URIs only");
    let mut content = vec![0x30, (uri.len() + 2) as u8, 0x86, uri.len() as u8];
    content.extend_from_slice(uri);
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 17], content);
    ext.set_criticality(false);
    ext
}
