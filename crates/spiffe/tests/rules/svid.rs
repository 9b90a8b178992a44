//! X.509-SVID leaf and signing-certificate rules, one generated certificate per rule.

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use sigil_spiffe::{
    CertRole, IdError, SpiffeId, SvidError, X509Svid, check_signing_cert, leaf_spiffe_id,
};

use crate::pki::{
    CaOpts, Leaf, TestCa, non_critical_digital_signature_ku, non_critical_uri_san, pkcs8,
};

const ID: &str = "spiffe://example.org/ns/default/sa/web";

fn leaf(edit: impl FnOnce(&mut Leaf)) -> Leaf {
    let mut l = Leaf::svid(ID);
    edit(&mut l);
    l
}

#[test]
fn leaf_rules_table() {
    let ca = TestCa::root("example.org");
    let cases: Vec<(&str, Leaf, Result<&str, SvidError>)> = vec![
        ("good leaf", leaf(|_| {}), Ok(ID)),
        ("good leaf without EKU", leaf(|l| l.ekus.clear()), Ok(ID)),
        (
            "good leaf without basicConstraints",
            leaf(|l| l.is_ca = IsCa::NoCa),
            Ok(ID),
        ),
        (
            "extra DNS SAN allowed",
            leaf(|l| l.dns = vec!["web.example.org".into()]),
            Ok(ID),
        ),
        (
            "keyAgreement allowed",
            leaf(|l| l.key_usages.push(KeyUsagePurpose::KeyAgreement)),
            Ok(ID),
        ),
        (
            "empty subject with critical SAN",
            leaf(|l| l.cn = None),
            Ok(ID),
        ),
        (
            "empty subject with non-critical SAN",
            leaf(|l| {
                l.cn = None;
                l.uris.clear();
                l.custom.push(non_critical_uri_san(ID));
            }),
            Err(SvidError::SanNotCriticalWithEmptySubject),
        ),
        (
            "CA leaf",
            leaf(|l| l.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
            Err(SvidError::LeafIsCa),
        ),
        (
            "keyCertSign leaf",
            leaf(|l| l.key_usages.push(KeyUsagePurpose::KeyCertSign)),
            Err(SvidError::LeafHasKeyCertSign),
        ),
        (
            "cRLSign leaf",
            leaf(|l| l.key_usages.push(KeyUsagePurpose::CrlSign)),
            Err(SvidError::LeafHasCrlSign),
        ),
        (
            "missing digitalSignature",
            leaf(|l| l.key_usages = vec![KeyUsagePurpose::KeyEncipherment]),
            Err(SvidError::LeafMissingDigitalSignature),
        ),
        (
            "non-critical keyUsage",
            leaf(|l| {
                l.key_usages.clear();
                l.custom.push(non_critical_digital_signature_ku());
            }),
            Err(SvidError::KeyUsageNotCritical(CertRole::Leaf)),
        ),
        (
            "no keyUsage",
            leaf(|l| l.key_usages.clear()),
            Err(SvidError::KeyUsageMissing(CertRole::Leaf)),
        ),
        (
            "two URI SANs",
            leaf(|l| l.uris.push("spiffe://example.org/other".into())),
            Err(SvidError::MultipleUriSans {
                role: CertRole::Leaf,
                uris: vec![ID.into(), "spiffe://example.org/other".into()],
            }),
        ),
        (
            "no URI SAN",
            leaf(|l| l.uris.clear()),
            Err(SvidError::NoUriSan),
        ),
        (
            "only a DNS SAN",
            leaf(|l| {
                l.uris.clear();
                l.dns = vec!["web.example.org".into()];
            }),
            Err(SvidError::NoUriSan),
        ),
        (
            "root-path ID in leaf",
            leaf(|l| l.uris = vec!["spiffe://example.org".into()]),
            Err(SvidError::RootIdInLeaf(
                SpiffeId::parse("spiffe://example.org").unwrap(),
            )),
        ),
        (
            "non-SPIFFE URI",
            leaf(|l| l.uris = vec!["https://example.org/web".into()]),
            Err(SvidError::InvalidSpiffeId {
                role: CertRole::Leaf,
                uri: "https://example.org/web".into(),
                source: IdError::WrongScheme,
            }),
        ),
        (
            "uppercase trust domain in URI SAN",
            leaf(|l| l.uris = vec!["spiffe://Example.org/web".into()]),
            Err(SvidError::InvalidSpiffeId {
                role: CertRole::Leaf,
                uri: "spiffe://Example.org/web".into(),
                source: IdError::UppercaseTrustDomain {
                    td: "Example.org".into(),
                    lower: "example.org".into(),
                },
            }),
        ),
        (
            "EKU with serverAuth only",
            leaf(|l| l.ekus = vec![ExtendedKeyUsagePurpose::ServerAuth]),
            Err(SvidError::LeafEkuIncomplete {
                missing: "clientAuth",
            }),
        ),
        (
            "EKU with clientAuth only",
            leaf(|l| l.ekus = vec![ExtendedKeyUsagePurpose::ClientAuth]),
            Err(SvidError::LeafEkuIncomplete {
                missing: "serverAuth",
            }),
        ),
        (
            "EKU with codeSigning only",
            leaf(|l| l.ekus = vec![ExtendedKeyUsagePurpose::CodeSigning]),
            Err(SvidError::LeafEkuIncomplete {
                missing: "serverAuth and clientAuth",
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (name, template, want) in cases {
        let (der, _) = ca.issue(&template);
        let got = leaf_spiffe_id(&der);
        let ok = match (&got, &want) {
            (Ok(id), Ok(w)) => id.as_str() == *w,
            (Err(e), Err(w)) => e == w,
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    crate::assert_rows_pass(&failures);
}

#[test]
fn garbage_is_malformed_and_trailing_bytes_are_refused() {
    assert!(matches!(
        leaf_spiffe_id(b"not a certificate"),
        Err(SvidError::Malformed(_))
    ));
    let ca = TestCa::root("example.org");
    let mut der = ca.issue_svid("/w").to_vec();
    der.extend_from_slice(&[0, 0]);
    assert_eq!(leaf_spiffe_id(&der), Err(SvidError::TrailingData(2)));
}

fn ca_opts(edit: impl FnOnce(&mut CaOpts)) -> CaOpts {
    let mut o = CaOpts::new("intermediate", "example.org");
    edit(&mut o);
    o
}

#[test]
fn signing_cert_rules_table() {
    let root = TestCa::root("example.org");
    let td_id = SpiffeId::parse("spiffe://example.org").unwrap();
    type Row = (&'static str, CaOpts, Result<Option<SpiffeId>, SvidError>);
    let cases: Vec<Row> = vec![
        (
            "good intermediate",
            ca_opts(|_| {}),
            Ok(Some(td_id.clone())),
        ),
        (
            "good intermediate without SPIFFE ID",
            ca_opts(|o| o.uri = None),
            Ok(None),
        ),
        (
            "good intermediate with keyCertSign only",
            ca_opts(|o| o.key_usages = vec![KeyUsagePurpose::KeyCertSign]),
            Ok(Some(td_id.clone())),
        ),
        (
            "intermediate without CA",
            ca_opts(|o| o.is_ca = IsCa::ExplicitNoCa),
            Err(SvidError::SigningCertNotCa),
        ),
        (
            "intermediate without basicConstraints",
            ca_opts(|o| o.is_ca = IsCa::NoCa),
            Err(SvidError::SigningCertNotCa),
        ),
        (
            "intermediate without keyCertSign",
            ca_opts(|o| {
                o.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature]
            }),
            Err(SvidError::SigningCertMissingKeyCertSign),
        ),
        (
            "intermediate without keyUsage",
            ca_opts(|o| o.key_usages.clear()),
            Err(SvidError::KeyUsageMissing(CertRole::Signing)),
        ),
        (
            "CA with pathful SPIFFE ID",
            ca_opts(|o| o.uri = Some("spiffe://example.org/ca".into())),
            Err(SvidError::SigningCertIdHasPath(
                SpiffeId::parse("spiffe://example.org/ca").unwrap(),
            )),
        ),
        (
            "CA with trailing-slash URI",
            ca_opts(|o| o.uri = Some("spiffe://example.org/".into())),
            Err(SvidError::InvalidSpiffeId {
                role: CertRole::Signing,
                uri: "spiffe://example.org/".into(),
                source: IdError::TrailingSlash,
            }),
        ),
    ];
    for (name, opts, want) in cases {
        let ca = root.child_ca(opts);
        assert_eq!(check_signing_cert(&ca.cert), want, "{name}");
    }
    // A root is a signing certificate too.
    assert_eq!(check_signing_cert(&root.cert), Ok(Some(td_id)));
}

#[test]
fn x509_svid_validates_leaf_and_intermediates() {
    let root = TestCa::root("example.org");
    let inter = root.intermediate();
    let (leaf_der, key) = inter.issue(&Leaf::svid(ID));
    let svid = X509Svid::new(
        vec![leaf_der.clone(), inter.cert.clone()],
        pkcs8(&key),
        Some("web".into()),
    )
    .unwrap();
    assert_eq!(svid.id().as_str(), ID);
    assert_eq!(svid.cert_chain().len(), 2);
    assert_eq!(svid.leaf(), &leaf_der);
    assert_eq!(svid.hint(), Some("web"));
    assert_eq!(
        svid.private_key().secret_pkcs8_der(),
        key.serialize_der().as_slice()
    );
    let copy = svid.clone();
    assert_eq!(copy.id(), svid.id());
    assert!(
        !format!("{svid:?}").contains("private_key"),
        "Debug must not print the key"
    );

    assert_eq!(
        X509Svid::new(vec![], pkcs8(&key), None).unwrap_err(),
        SvidError::EmptyChain
    );

    let (ca_leaf, _) = inter.issue(&leaf(|l| {
        l.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
    }));
    assert_eq!(
        X509Svid::new(vec![ca_leaf], pkcs8(&key), None).unwrap_err(),
        SvidError::LeafIsCa
    );

    let not_ca = root.child_ca(ca_opts(|o| o.is_ca = IsCa::ExplicitNoCa));
    let err = X509Svid::new(
        vec![leaf_der.clone(), not_ca.cert.clone()],
        pkcs8(&key),
        None,
    )
    .unwrap_err();
    match err {
        SvidError::Intermediate {
            index,
            ref subject,
            ref source,
        } => {
            assert_eq!(index, 1);
            assert_eq!(subject, "CN=intermediate");
            assert_eq!(**source, SvidError::SigningCertNotCa);
        }
        other => panic!("want Intermediate, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "chain certificate #1 (CN=intermediate) is not a valid SVID signing certificate: signing \
         certificate is not a CA (basicConstraints cA is false or absent); intermediates must \
         have cA=true"
    );

    let no_kcs = root.child_ca(ca_opts(|o| o.key_usages = vec![KeyUsagePurpose::CrlSign]));
    let err = X509Svid::new(
        vec![leaf_der.clone(), inter.cert.clone(), no_kcs.cert.clone()],
        pkcs8(&key),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, SvidError::Intermediate { index: 2, source, .. } if **source == SvidError::SigningCertMissingKeyCertSign),
        "{err:?}"
    );

    let empty_key = rustls_pki_types::PrivatePkcs8KeyDer::from(Vec::new());
    assert_eq!(
        X509Svid::new(vec![leaf_der], empty_key, None).unwrap_err(),
        SvidError::EmptyPrivateKey
    );
}

#[test]
fn messages_name_the_rule() {
    let ca = TestCa::root("example.org");
    let (der, _) = ca.issue(&leaf(|l| l.uris.push("spiffe://example.org/b".into())));
    assert_eq!(
        leaf_spiffe_id(&der).unwrap_err().to_string(),
        format!(
            "leaf has 2 URI SANs ({ID}, spiffe://example.org/b); an X.509-SVID carries exactly \
             one SPIFFE ID"
        )
    );
}
