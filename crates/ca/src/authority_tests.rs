use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::keys::{KeyType, PrivateKey};
use crate::testutil::{T0, chains_to, csr, csr_with, hours, id, td};

fn self_signed(k: KeyType, ttl: Duration) -> X509Authority {
    let key: Arc<dyn Signer> = Arc::new(PrivateKey::generate(k).unwrap());
    X509Authority::self_signed(td(), &CaSubject::default(), key, ttl, T0).unwrap()
}

fn p256() -> X509Authority {
    self_signed(KeyType::EcP256, hours(24))
}

/// Asserts the X509-SVID profile: one URI SAN (the ID), CA:false, critical keyUsage with
/// digitalSignature and without keyCertSign/cRLSign, EKU serverAuth+clientAuth.
fn assert_svid_shape(der: &[u8], want_id: &str) {
    let c = x509::parse(der).unwrap();
    let mut uris = Vec::new();
    let (mut bc_seen, mut ku_seen, mut eku_seen) = (false, false, false);
    for ext in c.iter_extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    if let GeneralName::URI(u) = n {
                        uris.push(u.to_string());
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => {
                assert!(!bc.ca && ext.critical);
                bc_seen = true;
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(ext.critical, "keyUsage must be critical");
                assert!(ku.digital_signature() && ku.key_encipherment() && ku.key_agreement());
                assert!(!ku.key_cert_sign() && !ku.crl_sign());
                ku_seen = true;
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth);
                eku_seen = true;
            }
            _ => {}
        }
    }
    assert_eq!(uris, vec![want_id.to_string()]);
    assert!(bc_seen && ku_seen && eku_seen);
}

#[test]
fn every_ca_key_type_signs_a_leaf_with_the_svid_profile() {
    for k in KeyType::ALL {
        let ca = self_signed(k, hours(24));
        let root = x509::parse(ca.cert_der()).unwrap();
        assert!(x509::is_ca(&root), "{k}");
        let ku = root.key_usage().unwrap().unwrap();
        assert!(
            ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign(),
            "{k}"
        );
        assert!(ku.value.digital_signature(), "{k}");
        let san = root.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::URI("spiffe://example.org")]
        );

        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let req = SvidRequest::new(id("/workload"), hours(1))
            .with_dns_names(["web.example.org".to_string()]);
        let issued = ca.sign_csr(&csr(&leaf_key), &req, T0).unwrap();
        assert_svid_shape(&issued.cert_der, "spiffe://example.org/workload");
        assert_eq!(
            issued.chain,
            vec![issued.cert_der.clone()],
            "self-signed: no intermediates"
        );
        chains_to(&issued.chain, &[ca.cert_der().clone()], T0).unwrap();

        let leaf = x509::parse(&issued.cert_der).unwrap();
        assert_eq!(leaf.raw_serial().len(), 16);
        assert_eq!(hex::encode(leaf.raw_serial()), issued.serial_hex);
        assert_eq!(
            leaf.public_key().raw,
            leaf_key.subject_public_key_info().as_slice()
        );
        let cn: Vec<_> = leaf
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["web.example.org"]);
        assert_eq!(x509::validity(&leaf), (issued.not_before, issued.not_after));
        assert_eq!(issued.not_after, T0 + time::Duration::hours(1));
        assert_eq!(issued.not_before, T0 - time::Duration::seconds(10));
    }
}

#[test]
fn leaf_keys_of_every_accepted_algorithm_are_signed() {
    let ca = p256();
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let issued = ca
            .sign_csr(&csr(&key), &SvidRequest::new(id("/w"), hours(1)), T0)
            .unwrap();
        let leaf = x509::parse(&issued.cert_der).unwrap();
        assert_eq!(
            leaf.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
    }
}

#[test]
fn csr_identity_fields_are_ignored() {
    let ca = p256();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["evil.example.org".to_string()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://evil.org/admin".try_into().unwrap(),
    ));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admin");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let issued = ca
        .sign_csr(
            &csr_with(params, &key),
            &SvidRequest::new(id("/w"), hours(1)),
            T0,
        )
        .unwrap();
    assert_svid_shape(&issued.cert_der, "spiffe://example.org/w");
    let leaf = x509::parse(&issued.cert_der).unwrap();
    assert_eq!(leaf.subject().iter_common_name().count(), 0);
    let names = &leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(names.len(), 1, "no DNS SAN from the CSR");
}

#[test]
fn tampered_or_garbage_csrs_are_rejected() {
    let ca = p256();
    let req = SvidRequest::new(id("/w"), hours(1));
    let good = csr(&rcgen::KeyPair::generate().unwrap());

    let mut bad_sig = good.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01;
    assert!(matches!(
        ca.sign_csr(&bad_sig, &req, T0),
        Err(CaError::CsrSignatureInvalid)
    ));

    // A CSR signed by one key but carrying another key's SPKI.
    let spki_other = rcgen::KeyPair::generate()
        .unwrap()
        .subject_public_key_info();
    let spki_good = find_spki(&good);
    let mut swapped = good.clone();
    swapped.splice(spki_good.0..spki_good.1, spki_other.iter().copied());
    assert_eq!(swapped.len(), good.len());
    assert!(matches!(
        ca.sign_csr(&swapped, &req, T0),
        Err(CaError::CsrSignatureInvalid)
    ));

    assert!(matches!(
        ca.sign_csr(b"nonsense", &req, T0),
        Err(CaError::CsrMalformed(_))
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        ca.sign_csr(&trailing, &req, T0),
        Err(CaError::CsrMalformed(_))
    ));
}

/// Byte range of the SubjectPublicKeyInfo inside a CSR.
fn find_spki(csr_der: &[u8]) -> (usize, usize) {
    let (_, req) = X509CertificationRequest::from_der(csr_der).unwrap();
    let raw = req.certification_request_info.subject_pki.raw;
    let start = raw.as_ptr() as usize - csr_der.as_ptr() as usize;
    (start, start + raw.len())
}

/// DER SPKI for an RSA key with a `bits`-bit modulus (structure only).
fn rsa_spki(bits: usize) -> Vec<u8> {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    let mut modulus = vec![0x00, 0xc0];
    modulus.extend(std::iter::repeat_n(0x35, bits / 8 - 1));
    let rsa_pub = tlv(0x30, &[tlv(0x02, &modulus), tlv(0x02, &[1, 0, 1])].concat());
    let mut bitstring = vec![0u8];
    bitstring.extend(rsa_pub);
    let alg = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    tlv(0x30, &[&alg[..], &tlv(0x03, &bitstring)].concat())
}

#[test]
fn weak_unsupported_and_malformed_public_keys_are_rejected() {
    let ca = p256();
    let req = SvidRequest::new(id("/w"), hours(1));
    assert!(matches!(
        ca.sign_public_key(&rsa_spki(1024), &req, T0),
        Err(CaError::WeakPublicKey {
            algorithm: "RSA",
            bits: 1024,
            min_bits: 2048
        })
    ));
    assert!(matches!(
        ca.sign_public_key(&rsa_spki(16384), &req, T0),
        Err(CaError::UnsupportedPublicKey { .. })
    ));

    let p521 = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_ASN1_SIGNING).unwrap();
    let spki = p521.public_key().as_der().unwrap();
    match ca.sign_public_key(spki.as_ref(), &req, T0) {
        Err(CaError::UnsupportedPublicKey { algorithm }) => {
            assert!(algorithm.contains("secp521r1"), "{algorithm}")
        }
        other => panic!("{other:?}"),
    }

    // Compress a P-256 point: same curve, but not the uncompressed form we certify.
    let p256 = PrivateKey::generate(KeyType::EcP256).unwrap();
    let mut spki = p256.public_key_spki_der();
    let point_at = spki.len() - 65;
    spki[point_at] = 0x02;
    spki.truncate(spki.len() - 32);
    spki[1] -= 32;
    spki[point_at - 2] -= 32;
    assert!(matches!(
        ca.sign_public_key(&spki, &req, T0),
        Err(CaError::PublicKeyMalformed(_))
    ));

    assert!(matches!(
        ca.sign_public_key(b"junk", &req, T0),
        Err(CaError::PublicKeyMalformed(_))
    ));
}

#[test]
fn request_and_validity_checks() {
    let ca = self_signed(KeyType::EcP256, hours(2));
    let spki = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .public_key_spki_der();
    let sign =
        |path: &str, ttl, now| ca.sign_public_key(&spki, &SvidRequest::new(id(path), ttl), now);

    let other_td = SpiffeId::parse("spiffe://other.org/w").unwrap();
    assert!(matches!(
        ca.sign_public_key(&spki, &SvidRequest::new(other_td, hours(1)), T0),
        Err(CaError::IdNotInTrustDomain { .. })
    ));
    assert!(matches!(
        sign("", hours(1), T0),
        Err(CaError::IdIsTrustDomain { .. })
    ));
    assert!(matches!(
        sign("/w", Duration::ZERO, T0),
        Err(CaError::ZeroTtl)
    ));
    assert!(matches!(
        sign("/w", hours(1), T0 + hours(2)),
        Err(CaError::CaExpired { .. })
    ));
    assert!(matches!(
        sign("/w", hours(1), T0 - hours(1)),
        Err(CaError::CaNotYetValid { .. })
    ));
    let bad_dns = SvidRequest::new(id("/w"), hours(1)).with_dns_names(["a..b".to_string()]);
    assert!(matches!(
        ca.sign_public_key(&spki, &bad_dns, T0),
        Err(CaError::InvalidDnsName { .. })
    ));

    // TTL is clamped to the CA's notAfter.
    let late = sign("/w", hours(1), T0 + time::Duration::minutes(90)).unwrap();
    assert_eq!(late.not_after, ca.not_after());
    assert_eq!(ca.not_after(), T0 + time::Duration::hours(2));
}

#[test]
fn intermediates_chain_to_the_root_and_clamp_to_it() {
    let root = self_signed(KeyType::EcP384, hours(10));
    let child: Arc<dyn Signer> = Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap());
    let inter = root
        .mint_intermediate(&CaSubject::default(), child, hours(24), T0)
        .unwrap();
    assert_eq!(inter.not_after(), root.not_after(), "clamped to the parent");
    assert_eq!(inter.chain_tail(), &[inter.cert_der().clone()]);

    let c = x509::parse(inter.cert_der()).unwrap();
    let bc = c.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    let aki = c
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert_eq!(aki.as_deref(), Some(root.subject_key_id()));

    let spki = PrivateKey::generate(KeyType::Ed25519)
        .unwrap()
        .public_key_spki_der();
    let issued = inter
        .sign_public_key(&spki, &SvidRequest::new(id("/w"), hours(1)), T0)
        .unwrap();
    assert_eq!(issued.chain.len(), 2);
    chains_to(&issued.chain, &[root.cert_der().clone()], T0).unwrap();
    let without_intermediate = chains_to(&issued.chain[..1], &[root.cert_der().clone()], T0);
    assert!(
        matches!(&without_intermediate, Err(e) if e.contains("chains to none of 1 roots")),
        "{without_intermediate:?}"
    );
}

#[test]
fn an_authority_refuses_a_key_that_is_not_its_own() {
    let ca = p256();
    let wrong: Arc<dyn Signer> = Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap());
    let err = X509Authority::new(td(), ca.cert_der().clone(), vec![], wrong).unwrap_err();
    assert!(
        matches!(&err, CaError::CaCertificate(m) if m.contains("does not match")),
        "{err}"
    );
}

#[test]
fn debug_shows_no_key_material() {
    let key = Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap());
    let ca =
        X509Authority::self_signed(td(), &CaSubject::default(), key.clone(), hours(1), T0).unwrap();
    let debug = format!("{ca:?}");
    assert!(debug.contains(&ca.id()), "{debug}");
    assert_eq!(crate::testutil::secret_shown(&debug, &key), None, "{debug}");
}
