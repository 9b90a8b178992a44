use std::sync::Arc;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;
use crate::authority::SvidRequest;
use crate::keys::{KeyType, PrivateKey};
use crate::signer::Signer;
use crate::template;
use crate::template::CaSubject;
use crate::testutil::{T0, csr, hours, id, td};

fn intermediate() -> X509Authority {
    let root_key: Arc<dyn Signer> = Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap());
    let root =
        X509Authority::self_signed(td(), &CaSubject::default(), root_key, hours(48), T0).unwrap();
    let key: Arc<dyn Signer> = Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap());
    root.mint_intermediate(&CaSubject::default(), key, hours(24), T0)
        .unwrap()
}

#[test]
fn reasons_parse_by_rfc_name_in_any_spelling() {
    for r in Reason::ALL {
        assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
    }
    assert_eq!(
        "key-compromise".parse::<Reason>().unwrap(),
        Reason::KeyCompromise
    );
    assert_eq!("SUPERSEDED".parse::<Reason>().unwrap(), Reason::Superseded);
    let e = "stolen".parse::<Reason>().unwrap_err().to_string();
    assert!(
        e.contains("keyCompromise") && e.contains("\"stolen\""),
        "{e}"
    );
}

#[test]
fn crl_lists_serials_with_reasons_and_verifies_against_its_ca() {
    let ca = intermediate();
    let revoked = [
        RevokedSerial {
            serial_hex: "00:0a:bc:dd".into(),
            revoked_at: T0,
            reason: Reason::KeyCompromise,
        },
        RevokedSerial {
            // Top bit set: encoded with a leading zero, still this serial.
            serial_hex: "ff01".into(),
            revoked_at: T0,
            reason: Reason::Unspecified,
        },
    ];
    let crl = sign_crl(&ca, &revoked, 7, T0, T0 + time::Duration::hours(1)).unwrap();
    assert!(
        crl.pem.starts_with("-----BEGIN X509 CRL-----"),
        "{}",
        crl.pem
    );
    let (rest, parsed) = CertificateRevocationList::from_der(&crl.der).unwrap();
    assert!(rest.is_empty());
    assert_eq!(parsed.version().map(|v| v.0), Some(1), "X.509 v2 CRL");
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert_eq!(parsed.issuer(), ca_cert.subject());
    parsed
        .verify_signature(ca_cert.public_key())
        .expect("signed by the CA's key");
    assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("7".into()));
    assert_eq!(
        parsed.next_update().map(|t| t.timestamp()),
        Some((T0 + time::Duration::hours(1)).unix_timestamp())
    );
    let serials: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect();
    assert_eq!(serials, ["0abcdd", "00ff01"]);
    let reasons: Vec<Option<u8>> = parsed
        .iter_revoked_certificates()
        .map(|r| r.reason_code().map(|(_, c)| c.0))
        .collect();
    assert_eq!(reasons, [Some(1), None]);
    // The authority key identifier names the CA's key.
    let aki = parsed
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert_eq!(aki.as_deref(), Some(ca.subject_key_id()));
}

#[test]
fn crl_refuses_bad_input() {
    let ca = intermediate();
    let bad = [RevokedSerial {
        serial_hex: "xyz".into(),
        revoked_at: T0,
        reason: Reason::Superseded,
    }];
    assert!(matches!(
        sign_crl(&ca, &bad, 1, T0, T0 + time::Duration::hours(1)),
        Err(CaError::BadSerial { .. })
    ));
    assert!(
        sign_crl(&ca, &[], 1, T0, T0).is_err(),
        "nextUpdate must follow thisUpdate"
    );
}

#[test]
fn svids_carry_the_distribution_point_of_their_issuer_when_asked() {
    let ca = intermediate();
    let key = rcgen::KeyPair::generate().unwrap();
    let req = SvidRequest::new(id("/web"), hours(1))
        .with_crl_base_url(Some("http://127.0.0.1:8089/".into()));
    let issued = ca.sign_csr(&csr(&key), &req, T0).unwrap();
    let (_, cert) = X509Certificate::from_der(&issued.cert_der).unwrap();
    let uris: Vec<String> = cert
        .iter_extensions()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(d) => Some(d),
            _ => None,
        })
        .flat_map(|d| d.points.iter())
        .filter_map(|p| match &p.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [format!("http://127.0.0.1:8089/crl/{}.crl", ca.id())]);

    let plain = ca
        .sign_csr(&csr(&key), &SvidRequest::new(id("/web"), hours(1)), T0)
        .unwrap();
    let (_, cert) = X509Certificate::from_der(&plain.cert_der).unwrap();
    assert!(
        !cert.iter_extensions().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::CRLDistributionPoints(_)
        )),
        "no distribution point unless configured"
    );
    let mut p = rcgen::CertificateParams::default();
    assert!(matches!(
        template::set_crl_distribution_point(&mut p, "ftp://x/y.crl"),
        Err(CaError::BadCrlUrl { .. })
    ));
}
