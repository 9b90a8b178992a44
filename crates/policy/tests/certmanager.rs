//! cert-manager kinds: the seed article's Certificate and ClusterIssuer, every field of a
//! full example round-tripping through serde_json, and a table of webhook rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sigil_policy::{
    CaIssuer, CertificateSpec, ErrorKind, GoDuration, IssuerRef, IssuerSpec, IssuerType, KeyUsage,
    Object, ObjectMeta, OutputFormatType, PrivateKeyAlgorithm, Resource, SignatureAlgorithm,
    X509Subject, parse_documents, supported_kinds, validate,
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn parse_one(name: &str) -> Resource {
    let mut docs = parse_documents(name, &fixture(name)).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

#[test]
fn seed_certificate() {
    let expected = Resource::Certificate(Object::new(
        "cert-manager.io/v1",
        "Certificate",
        ObjectMeta {
            name: "billing-service-cert".into(),
            namespace: Some("payments".into()),
            ..ObjectMeta::default()
        },
        CertificateSpec {
            secret_name: "billing-service-tls".into(),
            duration: Some("24h".into()),
            renew_before: Some("8h".into()),
            subject: Some(X509Subject {
                organizations: vec!["corp.example.com".into()],
                ..X509Subject::default()
            }),
            dns_names: vec![
                "billing-service.payments.svc.cluster.local".into(),
                "billing-service.payments.svc".into(),
            ],
            uris: vec!["spiffe://cluster.local/ns/payments/sa/billing-service".into()],
            issuer_ref: IssuerRef {
                name: "internal-ca".into(),
                kind: "ClusterIssuer".into(),
                group: String::new(),
            },
            ..CertificateSpec::default()
        },
    ));
    let parsed = parse_one("seed_certificate.yaml");
    assert_eq!(parsed, expected);
    let Resource::Certificate(c) = &parsed else {
        unreachable!()
    };
    assert_eq!(c.spec.duration(), Some(GoDuration::from_hours(24)));
    assert_eq!(c.spec.renew_before(), Some(GoDuration::from_hours(8)));
    assert_eq!(c.spec.issuer_ref.effective_group(), "cert-manager.io");
    assert_eq!(
        (parsed.kind(), parsed.api_version()),
        ("Certificate", "cert-manager.io/v1")
    );
}

#[test]
fn seed_cluster_issuer() {
    let expected = Resource::ClusterIssuer(Object::new(
        "cert-manager.io/v1",
        "ClusterIssuer",
        ObjectMeta {
            name: "internal-ca".into(),
            ..ObjectMeta::default()
        },
        IssuerSpec {
            ca: Some(CaIssuer {
                secret_name: "ca-key-pair".into(),
                ..CaIssuer::default()
            }),
            ..IssuerSpec::default()
        },
    ));
    let parsed = parse_one("seed_cluster_issuer.yaml");
    assert_eq!(parsed, expected);
    let Resource::ClusterIssuer(i) = &parsed else {
        unreachable!()
    };
    assert_eq!(i.spec.issuer_type(), Some(IssuerType::Ca));
    assert!(IssuerType::Ca.supported_by_sigil());
}

#[test]
fn full_example_keeps_every_field() {
    let docs = parse_documents("full.yaml", &fixture("certmanager_full.yaml")).unwrap();
    let kinds: Vec<&str> = docs.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        [
            "Certificate",
            "Certificate",
            "Issuer",
            "Issuer",
            "ClusterIssuer",
            "ClusterIssuer",
            "Issuer",
            "ClusterIssuer"
        ]
    );
    let Resource::Certificate(c) = &docs[0] else {
        unreachable!()
    };
    let s = &c.spec;
    let subject = s.subject.as_ref().unwrap();
    assert_eq!(subject.postal_codes, ["10117"]);
    assert_eq!(subject.serial_number, "42");
    assert_eq!(s.other_names[0].utf8_value, "billing@example.com");
    assert_eq!(
        s.secret_template.as_ref().unwrap().labels["team"],
        "payments"
    );
    let ks = s.keystores.as_ref().unwrap();
    assert_eq!(ks.jks.as_ref().unwrap().alias.as_deref(), Some("billing"));
    assert_eq!(
        ks.pkcs12.as_ref().unwrap().password.as_deref(),
        Some("changeit")
    );
    assert!(s.is_ca);
    assert_eq!(s.usages[2], KeyUsage::ServerAuth);
    let key = s.private_key.as_ref().unwrap();
    assert_eq!(
        (key.algorithm, key.size),
        (Some(PrivateKeyAlgorithm::Ecdsa), Some(384))
    );
    assert_eq!(s.revision_history_limit, Some(3));
    assert_eq!(
        s.additional_output_formats[1].format,
        OutputFormatType::CombinedPem
    );
    let nc = s.name_constraints.as_ref().unwrap();
    assert_eq!(nc.permitted.as_ref().unwrap().ip_ranges, ["10.0.0.0/8"]);
    assert_eq!(
        s.signature_algorithm,
        Some(SignatureAlgorithm::EcdsaWithSha384)
    );
    assert_eq!(
        s.renewal.as_ref().unwrap().windows[0].timezone,
        "Europe/Berlin"
    );
    let Resource::Certificate(lit) = &docs[1] else {
        unreachable!()
    };
    assert_eq!(lit.spec.renew_before_percentage, Some(25));
    let issuer_types: Vec<Option<IssuerType>> = docs[2..]
        .iter()
        .map(|d| match d {
            Resource::Issuer(o) | Resource::ClusterIssuer(o) => o.spec.issuer_type(),
            _ => None,
        })
        .collect();
    assert_eq!(
        issuer_types,
        [
            Some(IssuerType::Ca),
            Some(IssuerType::SelfSigned),
            Some(IssuerType::Sigil),
            Some(IssuerType::Acme),
            Some(IssuerType::Vault),
            Some(IssuerType::Venafi)
        ]
    );
    let Resource::ClusterIssuer(acme) = &docs[5] else {
        unreachable!()
    };
    assert_eq!(
        acme.spec.acme.as_ref().unwrap()["solvers"][0]["http01"]["ingress"]["ingressClassName"],
        "nginx"
    );
}

#[test]
fn full_example_round_trips_through_json() {
    let docs = parse_documents("full.yaml", &fixture("certmanager_full.yaml")).unwrap();
    for doc in docs.iter().chain(&[
        parse_one("seed_certificate.yaml"),
        parse_one("seed_cluster_issuer.yaml"),
    ]) {
        let json = serde_json::to_string(doc).unwrap();
        let again = parse_documents("json", &json).unwrap_or_else(|e| panic!("{json}\n{e:?}"));
        assert_eq!(again, vec![doc.clone()], "{json}");
        assert!(validate(doc).is_empty());
    }
    let json = serde_json::to_value(&docs[0]).unwrap();
    assert_eq!(json["spec"]["isCA"], true);
    assert_eq!(
        json["spec"]["otherNames"][0]["utf8Value"],
        "billing@example.com"
    );
    assert_eq!(json["spec"]["additionalOutputFormats"][0]["type"], "DER");
    assert_eq!(json["spec"]["usages"][0], "digital signature");
    let issuer = serde_json::to_value(&docs[2]).unwrap();
    assert_eq!(
        issuer["spec"]["ca"]["issuingCertificateURLs"][0],
        "http://ca.example.com/payments.crt"
    );
    let sigil = serde_json::to_value(&docs[4]).unwrap();
    assert_eq!(sigil["spec"], serde_json::json!({"sigil": {}}));
}

#[test]
fn cert_manager_kinds_are_listed_as_supported() {
    let kinds = supported_kinds();
    for kind in ["Certificate", "Issuer", "ClusterIssuer"] {
        assert!(kinds.contains(&("cert-manager.io/v1".into(), kind.into())));
    }
}

/// Header lines 1-6; the spec body starts on line 7.
fn doc(kind: &str, namespace: bool, body: &str) -> String {
    let ns = if namespace { "  namespace: foo\n" } else { "" };
    let pad = if namespace { "" } else { "  labels: {}\n" };
    format!(
        "apiVersion: cert-manager.io/v1\nkind: {kind}\nmetadata:\n  name: c\n{ns}{pad}spec:\n{body}"
    )
}
/// A Certificate whose required fields come after `extra` (which starts on line 7).
fn cert(extra: &str) -> String {
    doc(
        "Certificate",
        true,
        &format!(
            "{extra}  secretName: s\n  issuerRef:\n    name: ca\n  dnsNames: [a.example.com]\n"
        ),
    )
}
fn cert_raw(body: &str) -> String {
    doc("Certificate", true, body)
}
fn issuer(body: &str) -> String {
    doc("Issuer", true, body)
}

struct Case {
    name: &'static str,
    yaml: String,
    path: &'static str,
    line: u64,
    kind: fn(&ErrorKind) -> bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "no name to certify",
            yaml: cert_raw("  secretName: s\n  issuerRef:\n    name: ca\n"),
            path: "spec",
            line: 6,
            kind: |k| *k == ErrorKind::NoCertificateNames,
        },
        Case {
            name: "literalSubject with commonName",
            yaml: cert("  literalSubject: CN=a\n  commonName: a\n"),
            path: "spec.commonName",
            line: 8,
            kind: |k| matches!(k, ErrorKind::LiteralSubjectConflict { field } if field == "commonName"),
        },
        Case {
            name: "literalSubject with subject",
            yaml: cert("  literalSubject: CN=a\n  subject:\n    organizations: [x]\n"),
            path: "spec.subject",
            line: 8,
            kind: |k| matches!(k, ErrorKind::LiteralSubjectConflict { field } if field == "subject"),
        },
        Case {
            name: "literalSubject with an unknown attribute",
            yaml: cert("  literalSubject: FOO=bar\n"),
            path: "spec.literalSubject",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidLiteralSubject { reason, .. } if reason.contains("FOO")),
        },
        Case {
            name: "literalSubject CN alone is a name",
            yaml: cert_raw(&format!(
                "  literalSubject: CN={}\n  secretName: s\n  issuerRef:\n    name: ca\n",
                "x".repeat(65)
            )),
            path: "spec.literalSubject",
            line: 7,
            kind: |k| *k == ErrorKind::CommonNameTooLong { length: 65 },
        },
        Case {
            name: "commonName longer than 64",
            yaml: cert(&format!("  commonName: {}\n", "a".repeat(65))),
            path: "spec.commonName",
            line: 7,
            kind: |k| *k == ErrorKind::CommonNameTooLong { length: 65 },
        },
        Case {
            name: "duration in days",
            yaml: cert("  duration: 90d\n"),
            path: "spec.duration",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidGoDuration { value } if value == "90d"),
        },
        Case {
            name: "duration below one hour",
            yaml: cert("  duration: 30m\n"),
            path: "spec.duration",
            line: 7,
            kind: |k| {
                matches!(k, ErrorKind::DurationBelowMinimum { value, minimum, .. }
                    if value == "30m0s" && minimum == "1h0m0s")
            },
        },
        Case {
            name: "renewBefore below five minutes",
            yaml: cert("  renewBefore: 1m\n"),
            path: "spec.renewBefore",
            line: 7,
            kind: |k| matches!(k, ErrorKind::DurationBelowMinimum { minimum, .. } if minimum == "5m0s"),
        },
        Case {
            name: "renewBefore with renewBeforePercentage",
            yaml: cert("  renewBefore: 1h\n  renewBeforePercentage: 10\n"),
            path: "spec.renewBeforePercentage",
            line: 8,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { fields } if fields.len() == 2),
        },
        Case {
            name: "renewBeforePercentage 100",
            yaml: cert("  renewBeforePercentage: 100\n"),
            path: "spec.renewBeforePercentage",
            line: 7,
            kind: |k| *k == ErrorKind::RenewBeforePercentageOutOfRange { value: 100 },
        },
        Case {
            name: "renewBeforePercentage 0",
            yaml: cert("  renewBeforePercentage: 0\n"),
            path: "spec.renewBeforePercentage",
            line: 7,
            kind: |k| *k == ErrorKind::RenewBeforePercentageOutOfRange { value: 0 },
        },
        Case {
            name: "renewBeforePercentage giving under five minutes",
            yaml: cert("  duration: 1h\n  renewBeforePercentage: 5\n"),
            path: "spec.renewBeforePercentage",
            line: 8,
            kind: |k| matches!(k, ErrorKind::RenewBeforePercentageTooSmall { effective, .. } if effective == "3m0s"),
        },
        Case {
            name: "issuerRef without name",
            yaml: cert_raw("  secretName: s\n  dnsNames: [a]\n  issuerRef:\n    kind: Issuer\n"),
            path: "spec.issuerRef.name",
            line: 9,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "name"),
        },
        Case {
            name: "external issuer kind without group",
            yaml: cert_raw(
                "  secretName: s\n  dnsNames: [a]\n  issuerRef:\n    name: x\n    kind: AWSPCAClusterIssuer\n",
            ),
            path: "spec.issuerRef.kind",
            line: 11,
            kind: |k| {
                matches!(k, ErrorKind::InvalidIssuerKind { value, group_missing: true }
                    if value == "AWSPCAClusterIssuer")
            },
        },
        Case {
            name: "wrong kind with the cert-manager group",
            yaml: cert_raw(
                "  secretName: s\n  dnsNames: [a]\n  issuerRef:\n    name: x\n    kind: Issuers\n    group: cert-manager.io\n",
            ),
            path: "spec.issuerRef.kind",
            line: 11,
            kind: |k| {
                matches!(
                    k,
                    ErrorKind::InvalidIssuerKind {
                        group_missing: false,
                        ..
                    }
                )
            },
        },
        Case {
            name: "unknown key algorithm",
            yaml: cert("  privateKey:\n    algorithm: DSA\n"),
            path: "spec.privateKey.algorithm",
            line: 8,
            kind: |k| {
                matches!(k, ErrorKind::UnknownEnumValue { value, allowed, .. }
                    if value == "DSA" && allowed.len() == 3)
            },
        },
        Case {
            name: "RSA key too small",
            yaml: cert("  privateKey:\n    size: 1024\n"),
            path: "spec.privateKey.size",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidKeySize { algorithm, size: 1024, .. } if algorithm == "RSA"),
        },
        Case {
            name: "RSA key too large",
            yaml: cert("  privateKey:\n    algorithm: RSA\n    size: 16384\n"),
            path: "spec.privateKey.size",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidKeySize { size: 16384, .. }),
        },
        Case {
            name: "ECDSA curve size",
            yaml: cert("  privateKey:\n    algorithm: ECDSA\n    size: 512\n"),
            path: "spec.privateKey.size",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidKeySize { algorithm, size: 512, .. } if algorithm == "ECDSA"),
        },
        Case {
            name: "unknown key encoding",
            yaml: cert("  privateKey:\n    encoding: PKCS7\n"),
            path: "spec.privateKey.encoding",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { value, .. } if value == "PKCS7"),
        },
        Case {
            name: "rotation policy in lowercase",
            yaml: cert("  privateKey:\n    rotationPolicy: always\n"),
            path: "spec.privateKey.rotationPolicy",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "Always"),
        },
        Case {
            name: "signature algorithm for another key type",
            yaml: cert("  signatureAlgorithm: ECDSAWithSHA256\n"),
            path: "spec.signatureAlgorithm",
            line: 7,
            kind: |k| {
                matches!(k, ErrorKind::SignatureAlgorithmMismatch { key, allowed, .. }
                    if key == "RSA" && allowed.contains("SHA256WithRSA"))
            },
        },
        Case {
            name: "usage with a dash",
            yaml: cert("  usages: [server-auth]\n"),
            path: "spec.usages[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "server auth"),
        },
        Case {
            name: "CIDR as an IP SAN",
            yaml: cert("  ipAddresses:\n  - 10.0.0.1\n  - 10.0.0.0/8\n"),
            path: "spec.ipAddresses[1]",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidIpAddress { value } if value == "10.0.0.0/8"),
        },
        Case {
            name: "URI without scheme",
            yaml: cert("  uris: [cluster.local/ns/a/sa/b]\n"),
            path: "spec.uris[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidUri { .. }),
        },
        Case {
            name: "email without @",
            yaml: cert("  emailAddresses: [ops.example.com]\n"),
            path: "spec.emailAddresses[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidEmail { .. }),
        },
        Case {
            name: "email with a display name",
            yaml: cert("  emailAddresses: [\"Ops <ops@example.com>\"]\n"),
            path: "spec.emailAddresses[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidEmail { .. }),
        },
        Case {
            name: "otherName with a bad OID and no value",
            yaml: cert("  otherNames:\n  - oid: 1.3.six\n"),
            path: "spec.otherNames[0].oid",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidOid { .. }),
        },
        Case {
            name: "secretName missing",
            yaml: cert_raw("  issuerRef:\n    name: ca\n  dnsNames: [a]\n"),
            path: "spec.secretName",
            line: 6,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "secretName"),
        },
        Case {
            name: "secretName not a DNS subdomain",
            yaml: cert_raw(
                "  secretName: Billing_TLS\n  issuerRef:\n    name: ca\n  dnsNames: [a]\n",
            ),
            path: "spec.secretName",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidName { value } if value == "Billing_TLS"),
        },
        Case {
            name: "revisionHistoryLimit zero",
            yaml: cert("  revisionHistoryLimit: 0\n"),
            path: "spec.revisionHistoryLimit",
            line: 7,
            kind: |k| *k == ErrorKind::RevisionHistoryLimitTooLow { value: 0 },
        },
        Case {
            name: "output format twice",
            yaml: cert("  additionalOutputFormats:\n  - type: DER\n  - type: DER\n"),
            path: "spec.additionalOutputFormats[1].type",
            line: 9,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { value, .. } if value == "DER"),
        },
        Case {
            name: "output format unknown",
            yaml: cert("  additionalOutputFormats:\n  - type: PEM\n"),
            path: "spec.additionalOutputFormats[0].type",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { value, .. } if value == "PEM"),
        },
        Case {
            name: "nameConstraints on a leaf",
            yaml: cert("  nameConstraints:\n    permitted:\n      dnsDomains: [a]\n"),
            path: "spec.nameConstraints",
            line: 7,
            kind: |k| *k == ErrorKind::NameConstraintsWithoutCa,
        },
        Case {
            name: "keystore with both password sources",
            yaml: cert(
                "  keystores:\n    pkcs12:\n      create: true\n      password: x\n      passwordSecretRef:\n        name: p\n        key: k\n",
            ),
            path: "spec.keystores.pkcs12",
            line: 8,
            kind: |k| matches!(k, ErrorKind::KeystorePassword { keystore, .. } if keystore == "PKCS#12"),
        },
        Case {
            name: "reserved secret annotation",
            yaml: cert(
                "  secretTemplate:\n    annotations:\n      cert-manager.io/issuer-name: x\n",
            ),
            path: "spec.secretTemplate.annotations[cert-manager.io/issuer-name]",
            // `Node::locate` does not descend into bracketed keys that contain dots yet,
            // so the line is that of `annotations:`.
            line: 8,
            kind: |k| matches!(k, ErrorKind::ReservedAnnotation { .. }),
        },
        Case {
            name: "renewal windows with policy Disabled",
            yaml: cert(
                "  renewal:\n    policy: Disabled\n    windows:\n    - cron: \"0 2 * * *\"\n      windowDuration: 1h\n",
            ),
            path: "spec.renewal.windows",
            line: 9,
            kind: |k| *k == ErrorKind::RenewalWindowsWhenDisabled,
        },
        Case {
            name: "renewal window cron with six fields",
            yaml: cert(
                "  renewal:\n    windows:\n    - cron: \"0 0 2 * * *\"\n      windowDuration: 1h\n",
            ),
            path: "spec.renewal.windows[0].cron",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidCron { .. }),
        },
        Case {
            name: "misspelled spec field",
            yaml: cert("  dnsName: [x]\n"),
            path: "spec.dnsName",
            line: 7,
            kind: |k| matches!(k, ErrorKind::UnknownField { suggestion: Some(s), .. } if s == "dnsNames"),
        },
        Case {
            name: "issuer without a type",
            yaml: issuer("  {}\n"),
            path: "spec",
            line: 6,
            kind: |k| matches!(k, ErrorKind::IssuerTypeCount { found } if found.is_empty()),
        },
        Case {
            name: "issuer with two types",
            yaml: issuer("  selfSigned: {}\n  ca:\n    secretName: x\n"),
            path: "spec.selfSigned",
            line: 7,
            kind: |k| matches!(k, ErrorKind::IssuerTypeCount { found } if found == &["ca", "selfSigned"]),
        },
        Case {
            name: "CA issuer without secretName",
            yaml: issuer("  ca: {}\n"),
            path: "spec.ca.secretName",
            line: 7,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "secretName"),
        },
        Case {
            name: "CA issuer with a bad OCSP URL",
            yaml: issuer("  ca:\n    secretName: x\n    ocspServers: [\"http://\"]\n"),
            path: "spec.ca.ocspServers[0]",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidUri { reason, .. } if reason == "empty host"),
        },
        Case {
            name: "acme given as a string",
            yaml: issuer("  acme: letsencrypt\n"),
            path: "spec.acme",
            line: 7,
            kind: |k| matches!(k, ErrorKind::WrongType { expected, .. } if expected == "a mapping"),
        },
        Case {
            name: "sigil issuer with a setting",
            yaml: issuer("  sigil:\n    ttl: 1h\n"),
            path: "spec.sigil.ttl",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownField { field, .. } if field == "ttl"),
        },
        Case {
            name: "ClusterIssuer with a namespace",
            yaml: doc("ClusterIssuer", true, "  selfSigned: {}\n"),
            path: "metadata.namespace",
            line: 5,
            kind: |k| matches!(k, ErrorKind::ClusterScopedNamespace { kind } if kind == "ClusterIssuer"),
        },
    ]
}

#[test]
fn invalid_cases_name_path_line_and_kind() {
    let mut failures = Vec::new();
    for case in cases() {
        match parse_documents("case.yaml", &case.yaml) {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(errors) => {
                let found = errors
                    .iter()
                    .any(|e| e.path == case.path && e.line == case.line && (case.kind)(&e.kind));
                if !found {
                    failures.push(format!("{}: got {errors:#?}", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_messages_say_what_to_change() {
    let errors = parse_documents("c.yaml", &cert("  duration: 90d\n")).unwrap_err();
    let text = errors[0].to_string();
    assert!(
        text.starts_with("c.yaml:7:3: document 0, field `spec.duration`"),
        "{text}"
    );
    assert!(
        text.contains("`2160h`") && text.contains("no `d` unit"),
        "{text}"
    );
    let errors = parse_documents("i.yaml", &issuer("  {}\n")).unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("add exactly one of `selfSigned: {}`")
    );
}

#[test]
fn accepted_like_upstream() {
    for (name, yaml) in [
        (
            "external issuer: any kind with a foreign group",
            cert_raw(
                "  secretName: s\n  dnsNames: [a]\n  issuerRef:\n    name: x\n    kind: AWSPCAClusterIssuer\n    group: awspca.cert-manager.io\n",
            ),
        ),
        (
            "Ed25519 ignores size",
            cert(
                "  privateKey:\n    algorithm: Ed25519\n    size: 1\n  signatureAlgorithm: PureEd25519\n",
            ),
        ),
        (
            "size 0 means the default",
            cert("  privateKey:\n    size: 0\n"),
        ),
        (
            "commonName alone",
            cert_raw("  commonName: a\n  secretName: s\n  issuerRef:\n    name: ca\n"),
        ),
        (
            "email SAN alone",
            cert_raw("  emailAddresses: [a@b.c]\n  secretName: s\n  issuerRef:\n    name: ca\n"),
        ),
        (
            "renewBefore just under duration",
            cert("  duration: 1h\n  renewBefore: 59m\n"),
        ),
        (
            "renewBeforePercentage",
            cert("  renewBeforePercentage: 33\n"),
        ),
        (
            "fractional Go duration",
            cert("  duration: 1.5h\n  renewBefore: 30m\n"),
        ),
        (
            "allow-direct-injection annotation",
            cert(
                "  secretTemplate:\n    annotations:\n      cert-manager.io/allow-direct-injection: \"true\"\n",
            ),
        ),
        ("Issuer with selfSigned: {}", issuer("  selfSigned: {}\n")),
    ] {
        let r = parse_documents("ok.yaml", &yaml);
        assert!(r.is_ok(), "{name}: {r:#?}");
    }
}
