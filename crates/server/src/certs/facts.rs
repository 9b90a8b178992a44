//! Reading a TLS Secret's contents into the facts the decisions need, and writing issued
//! material into Secret data. Pure: bytes in, bytes out.

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sigil_ca::PrivateKey;
use zeroize::Zeroizing;

use super::decide::SecretFacts;

/// Every certificate in a PEM text, in order; unparsable blocks end the list.
pub fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .map_while(Result::ok)
        .collect()
}

/// The facts about `tls.crt` / `tls.key` and the Secret's annotations.
pub fn secret_facts(
    cert_pem: Option<&[u8]>,
    key_pem: Option<&[u8]>,
    annotations: &BTreeMap<String, String>,
) -> SecretFacts {
    let mut f = SecretFacts {
        annotations: annotations.clone(),
        ..SecretFacts::default()
    };
    let leaf = cert_pem.and_then(|p| pem_certs(p).into_iter().next());
    let key = key_pem.and_then(|k| PrivateKey::from_pem(k).ok());
    if let Some(leaf) = &leaf
        && let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf)
    {
        f.has_cert = true;
        f.not_before = cert.validity().not_before.timestamp();
        f.not_after = cert.validity().not_after.timestamp();
        if let Some(k) = &key {
            f.key_matches =
                cert.public_key().subject_public_key.data.as_ref() == k.public_key_raw();
        }
    }
    if let Some(k) = &key {
        f.has_key = true;
        f.key_type = Some(k.key_type());
    }
    f
}

/// PEM of one certificate.
pub fn cert_pem(der: &[u8]) -> String {
    sigil_spiffe::pem::encode_block("CERTIFICATE", der)
}

/// The Secret data cert-manager writes: `tls.crt` (leaf and intermediates, never a
/// self-signed root), `tls.key`, `ca.crt` (the root when known, else the topmost certificate
/// of the chain) and the optional `key.der` / `tls-combined.pem`.
pub struct TlsMaterial {
    pub tls_crt: String,
    pub tls_key: Zeroizing<String>,
    pub ca_crt: Option<String>,
    pub key_der: Option<Zeroizing<Vec<u8>>>,
    pub combined_pem: Option<Zeroizing<String>>,
}

/// Assembles the Secret data from an issued chain (leaf first, intermediates, no root) and the
/// root (if the issuer has one distinct from the leaf).
pub fn material(
    chain: &[CertificateDer<'static>],
    root: Option<&CertificateDer<'static>>,
    key_pem: Zeroizing<String>,
    key_der: Option<Zeroizing<Vec<u8>>>,
    combined: bool,
) -> TlsMaterial {
    let tls_crt: String = chain.iter().map(|c| cert_pem(c)).collect();
    let ca_crt = root
        .or_else(|| chain.last().filter(|_| chain.len() > 1))
        .map(|c| cert_pem(c));
    let combined_pem = combined.then(|| {
        let mut s = Zeroizing::new(String::with_capacity(key_pem.len() + tls_crt.len()));
        s.push_str(&key_pem);
        s.push_str(&tls_crt);
        s
    });
    TlsMaterial {
        tls_crt,
        tls_key: key_pem,
        ca_crt,
        key_der,
        combined_pem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_ca::KeyType;

    fn self_signed(key: &PrivateKey) -> CertificateDer<'static> {
        let params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        let pair = rcgen::KeyPair::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        params.self_signed(&pair).unwrap().der().clone()
    }

    #[test]
    fn facts_see_matching_and_mismatched_keys() {
        let k1 = PrivateKey::generate(KeyType::EcP256).unwrap();
        let k2 = PrivateKey::generate(KeyType::EcP256).unwrap();
        let crt = cert_pem(&self_signed(&k1));
        let none = BTreeMap::new();
        let f = secret_facts(
            Some(crt.as_bytes()),
            Some(k1.to_pkcs1_pem().unwrap().as_bytes()),
            &none,
        );
        assert!(f.has_cert && f.has_key && f.key_matches);
        assert_eq!(f.key_type, Some(KeyType::EcP256));
        assert!(f.not_after > f.not_before);
        let f = secret_facts(
            Some(crt.as_bytes()),
            Some(k2.to_pkcs8_pem().unwrap().as_bytes()),
            &none,
        );
        assert!(f.has_cert && f.has_key && !f.key_matches);
        let f = secret_facts(Some(b"garbage"), None, &none);
        assert!(!f.has_cert && !f.has_key);
    }

    #[test]
    fn the_root_never_goes_into_tls_crt() {
        let k = PrivateKey::generate(KeyType::EcP256).unwrap();
        let leaf = self_signed(&k);
        let inter = self_signed(&k);
        let root = self_signed(&k);
        let key = || Zeroizing::new("KEY\n".to_owned());
        let m = material(
            &[leaf.clone(), inter.clone()],
            Some(&root),
            key(),
            None,
            true,
        );
        assert_eq!(
            pem_certs(m.tls_crt.as_bytes()),
            [leaf.clone(), inter.clone()]
        );
        assert_eq!(pem_certs(m.ca_crt.unwrap().as_bytes()), [root]);
        assert!(
            m.combined_pem
                .unwrap()
                .starts_with("KEY\n-----BEGIN CERTIFICATE")
        );
        // Without a known root, ca.crt is the topmost certificate of the chain…
        let m = material(&[leaf.clone(), inter.clone()], None, key(), None, false);
        assert_eq!(pem_certs(m.ca_crt.unwrap().as_bytes()), [inter]);
        assert!(m.combined_pem.is_none());
        // …and absent for a lone certificate.
        assert!(material(&[leaf], None, key(), None, false).ca_crt.is_none());
    }
}
