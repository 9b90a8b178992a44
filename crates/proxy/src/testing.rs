//! A generated test CA issuing X.509-SVIDs, for the proxy's tests and benchmarks (and for
//! anyone embedding the proxy in a harness). Never used by `sigil proxy run`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use sigil_proto::workload::{X509svid, X509svidResponse};

use crate::identity::Identity;

/// A self-signed root for one trust domain.
pub struct TestCa {
    pub trust_domain: String,
    pub root: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn ts(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A certificate and its PKCS#8 key, DER.
pub struct Issued {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

impl Issued {
    /// PEM of the chain (leaf first).
    pub fn cert_pem(&self) -> String {
        sigil_spiffe::pem::encode_certificates(&self.chain)
    }

    /// PEM of the key (`PRIVATE KEY`).
    pub fn key_pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.key_pkcs8);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out
    }
}

impl TestCa {
    /// A new root for `trust_domain`, valid a year around now.
    pub fn new(trust_domain: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{trust_domain} test root"));
        p.distinguished_name = dn;
        p.subject_alt_names = vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = ts(now() - 3600);
        p.not_after = ts(now() + 365 * 86400);
        let cert = p.self_signed(&key)?;
        let root = cert.der().clone();
        Ok(TestCa {
            trust_domain: trust_domain.to_owned(),
            root,
            issuer: Issuer::new(p, key),
        })
    }

    /// A leaf X.509-SVID for `spiffe_id` valid in `[not_before, not_after]` (unix seconds),
    /// with extra DNS SANs (for non-mesh peers such as curl checking a host name).
    pub fn issue(
        &self,
        spiffe_id: &str,
        dns: &[&str],
        not_before: i64,
        not_after: i64,
    ) -> Result<Issued, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        let mut sans = vec![SanType::URI(spiffe_id.try_into()?)];
        for d in dns {
            sans.push(SanType::DnsName((*d).try_into()?));
        }
        p.subject_alt_names = sans;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.not_before = ts(not_before);
        p.not_after = ts(not_after);
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            chain: vec![cert.der().clone()],
            key_pkcs8: key.serialize_der(),
        })
    }

    /// An SVID valid for an hour, as the Workload API would answer.
    pub fn svid_response(&self, spiffe_id: &str) -> Result<X509svidResponse, rcgen::Error> {
        let issued = self.issue(spiffe_id, &[], now() - 60, now() + 3600)?;
        Ok(self.response_for(spiffe_id, &issued))
    }

    /// The Workload API answer carrying `issued`.
    pub fn response_for(&self, spiffe_id: &str, issued: &Issued) -> X509svidResponse {
        X509svidResponse {
            svids: vec![X509svid {
                spiffe_id: spiffe_id.to_owned(),
                x509_svid: issued.chain.iter().flat_map(|c| c.to_vec()).collect(),
                x509_svid_key: issued.key_pkcs8.clone(),
                bundle: self.root.to_vec(),
                hint: String::new(),
            }],
            ..Default::default()
        }
    }

    /// A ready [`Identity`] for `spiffe_id` (valid an hour).
    pub fn identity(&self, spiffe_id: &str) -> Result<Identity, String> {
        let resp = self.svid_response(spiffe_id).map_err(|e| e.to_string())?;
        Identity::from_response(&resp, None)
    }

    /// The root as PEM.
    pub fn root_pem(&self) -> String {
        sigil_spiffe::pem::encode_certificates(std::slice::from_ref(&self.root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_identity_carries_id_serial_and_bundle() {
        let ca = TestCa::new("cluster.local").unwrap();
        let id = ca
            .identity("spiffe://cluster.local/ns/payments/sa/checkout-service")
            .unwrap();
        assert_eq!(
            id.id.as_str(),
            "spiffe://cluster.local/ns/payments/sa/checkout-service"
        );
        assert_eq!(id.chain.len(), 1);
        assert!(!id.serial_hex.is_empty());
        assert!(id.not_after > id.not_before);
        assert_eq!(id.bundles.len(), 1);
    }
}
