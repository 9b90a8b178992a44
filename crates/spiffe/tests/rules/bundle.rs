//! SPIFFE bundle JSON and PEM: round trips, the ignore rules, and the errors.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::PublicKeyData as _;
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use sigil_spiffe::bundle::BundleSource as _;
use sigil_spiffe::{
    AuthorityError, Bundle, BundleError, BundleSet, EcCurve, JwtAuthority, KeyError, PemError,
    PublicKey, SvidError, TrustDomain,
};

use crate::pki::{CaOpts, TestCa, key_for};

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

/// A hand-written bundle in the shape SPIRE serves from its bundle endpoint: an X.509
/// authority (made with openssl: P-256, CA, keyCertSign+cRLSign, URI spiffe://example.org)
/// and a JWT authority (the EC key of RFC 7517 Appendix A.1), plus entries to be ignored.
const SPIRE_STYLE_BUNDLE: &str = r#"{
    "keys": [
        {
            "use": "x509-svid",
            "kty": "EC",
            "crv": "P-256",
            "x": "R6Z27q6xKTsq8B3SNSHd21tUGR1bmY7UJI3Q3uzD3TM",
            "y": "GMX1sz-7FIR2FC5nqC-ZiwmvwBTZDPtYIceXMJSkwmw",
            "x5c": [
                "MIIBxjCCAWygAwIBAgIUe0EYBE0wSVDey7CZtkXhLu442LkwCgYIKoZIzj0EAwIwHjELMAkGA1UEBhMCVVMxDzANBgNVBAoMBlNQSUZGRTAgFw0yNjExMjcxOTU5NDFaGA8yMTI2MTEwMzE5NTk0MVowHjELMAkGA1UEBhMCVVMxDzANBgNVBAoMBlNQSUZGRTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEemdu6usSk7KvAd0jUh3dtbVBkdW5mO1CSN0N7sw90zGMX1sz+7FIR2FC5nqC+ZiwmvwBTZDPtYIceXMJSkwmyjgYUwgYIwHQYDVR0OBBYEFBnVh8asO524f0LGFotdL3a0Y4RvMB8GA1UdIwQYMBaAFBnVh8asO524f0LGFotdL3a0Y4RvMA4GA1UdDwEB/wQEAwIBBjAPBgNVHRMBAf8EBTADAQH/MB8GA1UdEQQYMBaGFHNwaWZmZTovL2V4YW1wbGUub3JnMAoGCCqGSM49BAMCA0gAMEUCIQCKxcweg9cyl2TVnbJ1xAiuY3JDi3OiMZh6e+aWydbtZAIgFcfhAAX7I5pZ27ih6ZcgAOsGhKNJzHu9VL3lLUJ71iE="
            ]
        },
        {
            "use": "jwt-svid",
            "kty": "EC",
            "kid": "C6vs25welZOx6WksNYfbMfiw9l96pMnD",
            "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
        },
        {
            "use": "wit-svid",
            "kty": "EC",
            "kid": "future",
            "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
        },
        {
            "use": "jwt-svid",
            "kty": "oct",
            "kid": "symmetric",
            "k": "GawgguFyGrWKav7AX4VKUg"
        }
    ],
    "spiffe_refresh_hint": 300,
    "spiffe_sequence": 42,
    "vendor_extension": {"ignored": true}
}"#;

#[test]
fn parses_spire_style_bundle() {
    let b = Bundle::from_spiffe_json(td(), SPIRE_STYLE_BUNDLE.as_bytes()).unwrap();
    assert_eq!(b.trust_domain(), &td());
    assert_eq!(b.sequence_number(), Some(42));
    assert_eq!(b.refresh_hint(), Some(Duration::from_secs(300)));
    assert_eq!(b.x509_authorities().len(), 1);
    assert_eq!(
        b.jwt_authorities().len(),
        1,
        "wit-svid and oct entries are ignored"
    );
    let jwt = b.jwt_authority("C6vs25welZOx6WksNYfbMfiw9l96pMnD").unwrap();
    assert_eq!(jwt.key.kty(), "EC");
    assert_eq!(jwt.key.jws_algorithms(), &["ES256"]);
    assert!(matches!(
        jwt.key,
        PublicKey::Ec {
            curve: EcCurve::P256,
            ..
        }
    ));
    // Round trip keeps everything we understood.
    let again = Bundle::from_spiffe_json(td(), &b.to_spiffe_json()).unwrap();
    assert_eq!(again, b);
}

fn root_cert(alg: &'static rcgen::SignatureAlgorithm, name: &str) -> CertificateDer<'static> {
    TestCa::root_with_alg("example.org", CaOpts::new(name, "example.org"), alg).cert
}

fn all_kinds_bundle() -> Bundle {
    let mut b = Bundle::new(td());
    for (alg, name) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "p256"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "p384"),
        (&rcgen::PKCS_RSA_SHA256, "rsa"),
        (&rcgen::PKCS_ED25519, "ed25519"),
    ] {
        assert!(b.add_x509_authority(root_cert(alg, name)).unwrap());
        let key = key_for(alg);
        let auth = JwtAuthority::from_spki_der(&key.subject_public_key_info()).unwrap();
        assert!(b.add_jwt_authority(format!("kid-{name}"), auth).unwrap());
    }
    b.set_sequence_number(Some(7));
    b.set_refresh_hint(Some(Duration::from_secs(3600)));
    b
}

#[test]
fn json_round_trip_all_key_kinds() {
    let b = all_kinds_bundle();
    let json = b.to_spiffe_json();
    let parsed = Bundle::from_spiffe_json(td(), &json).unwrap();
    assert_eq!(parsed, b);

    // Shape of what we publish.
    let doc: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(doc["spiffe_sequence"], 7);
    assert_eq!(doc["spiffe_refresh_hint"], 3600);
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8);
    for k in keys.iter().filter(|k| k["use"] == "x509-svid") {
        assert!(
            k.get("kid").is_none(),
            "x509-svid entries must not carry kid: {k}"
        );
        let x5c = k["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        // Standard base64 (with padding), not base64url.
        STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
    }
    let kinds: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k["use"].as_str().unwrap(), k["kty"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("x509-svid", "EC"),
            ("x509-svid", "EC"),
            ("x509-svid", "RSA"),
            ("x509-svid", "OKP"),
            ("jwt-svid", "OKP"),
            ("jwt-svid", "EC"),
            ("jwt-svid", "EC"),
            ("jwt-svid", "RSA"),
        ]
    );
    let p384 = keys
        .iter()
        .find(|k| k["crv"] == "P-384" && k["use"] == "jwt-svid")
        .unwrap();
    assert_eq!(p384["kid"], "kid-p384");
    assert_eq!(
        p384["x"].as_str().unwrap().len(),
        64,
        "48 bytes, base64url without padding"
    );
    let rsa = keys
        .iter()
        .find(|k| k["kty"] == "RSA" && k["use"] == "jwt-svid")
        .unwrap();
    assert_eq!(rsa["e"], "AQAB");
}

#[test]
fn jwk_spki_round_trip() {
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ECDSA_P521_SHA512,
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_ED25519,
    ] {
        let spki = key_for(alg).subject_public_key_info();
        let key = PublicKey::from_spki_der(&spki).unwrap();
        assert_eq!(key.to_spki_der(), spki, "SPKI re-encoding for {alg:?}");
        let mut obj = serde_json::Map::new();
        key.write_jwk_params(&mut obj);
        assert_eq!(
            PublicKey::from_jwk(&obj).unwrap(),
            Some(key.clone()),
            "JWK round trip"
        );
    }
}

#[test]
fn spki_errors() {
    assert_eq!(
        PublicKey::from_spki_der(b"\x30\x00"),
        Err(KeyError::BadSpki("AlgorithmIdentifier"))
    );
    // A compressed P-256 point (0x02 || x) is refused: JWK needs both coordinates.
    let spki = key_for(&rcgen::PKCS_ECDSA_P256_SHA256).subject_public_key_info();
    let PublicKey::Ec { x, .. } = PublicKey::from_spki_der(&spki).unwrap() else {
        panic!("EC key expected")
    };
    let alg_id = &spki[2..2 + 21]; // SEQUENCE { ecPublicKey, prime256v1 }
    let mut body = alg_id.to_vec();
    body.extend_from_slice(&[0x03, 0x22, 0x00, 0x02]);
    body.extend_from_slice(&x);
    let mut compressed = vec![0x30, u8::try_from(body.len()).unwrap()];
    compressed.extend_from_slice(&body);
    assert_eq!(
        PublicKey::from_spki_der(&compressed),
        Err(KeyError::BadEcPoint {
            curve: "P-256",
            expected: 65,
            got: 33,
            first: 0x02
        })
    );
    // DSA has no JWK form in SPIFFE bundles.
    let dsa = [
        0x30, 0x0f, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01, 0x03, 0x02,
        0x00, 0x00,
    ];
    assert_eq!(
        PublicKey::from_spki_der(&dsa),
        Err(KeyError::UnsupportedAlgorithm("1.2.840.10040.4.1".into()))
    );
}

fn bundle_with(keys: Value) -> Result<Bundle, BundleError> {
    Bundle::from_spiffe_json(td(), json!({ "keys": keys }).to_string().as_bytes())
}

fn x509_entry(cert: &CertificateDer<'_>) -> Value {
    let key = PublicKey::from_spki_der(
        x509_parser::parse_x509_certificate(cert)
            .unwrap()
            .1
            .public_key()
            .raw,
    )
    .unwrap();
    let mut obj = serde_json::Map::new();
    obj.insert("use".into(), "x509-svid".into());
    key.write_jwk_params(&mut obj);
    obj.insert("x5c".into(), json!([STANDARD.encode(cert)]));
    Value::Object(obj)
}

fn jwt_entry(kid: &str) -> Value {
    json!({
        "use": "jwt-svid", "kty": "EC", "kid": kid, "crv": "P-256",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
    })
}

#[test]
fn ignore_rules() {
    let root = root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "root");
    let other = root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "other");
    let good = x509_entry(&root);
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut e = good.as_object().unwrap().clone();
        edit(&mut e);
        Value::Object(e)
    };
    let cases: Vec<(&str, Value, usize, usize)> = vec![
        ("missing use", with(&|e| drop(e.remove("use"))), 0, 0),
        (
            "unknown use",
            with(&|e| drop(e.insert("use".into(), "X509-SVID".into()))),
            0,
            0,
        ),
        (
            "unknown kty",
            with(&|e| drop(e.insert("kty".into(), "oct".into()))),
            0,
            0,
        ),
        ("missing kty", with(&|e| drop(e.remove("kty"))), 0, 0),
        (
            "unknown curve",
            with(&|e| drop(e.insert("crv".into(), "secp256k1".into()))),
            0,
            0,
        ),
        ("missing x5c", with(&|e| drop(e.remove("x5c"))), 0, 0),
        (
            "empty x5c",
            with(&|e| drop(e.insert("x5c".into(), json!([])))),
            0,
            0,
        ),
        (
            "two x5c values: first used",
            with(&|e| {
                let first = e["x5c"][0].clone();
                e.insert("x5c".into(), json!([first, STANDARD.encode(&other)]));
            }),
            1,
            0,
        ),
        (
            "x509 entry kid ignored",
            with(&|e| drop(e.insert("kid".into(), "k".into()))),
            1,
            0,
        ),
        (
            "x509 entry without key params",
            with(&|e| {
                for p in ["crv", "x", "y"] {
                    e.remove(p);
                }
            }),
            1,
            0,
        ),
        (
            "jwt unknown kty",
            json!({"use": "jwt-svid", "kty": "oct", "kid": "a", "k": "AAAA"}),
            0,
            0,
        ),
        (
            "jwt OKP X25519",
            json!({"use": "jwt-svid", "kty": "OKP", "crv": "X25519", "kid": "a", "x": "AAAA"}),
            0,
            0,
        ),
    ];
    for (name, entry, n_x509, n_jwt) in cases {
        let b = bundle_with(json!([entry])).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.x509_authorities().len(), n_x509, "{name}");
        assert_eq!(b.jwt_authorities().len(), n_jwt, "{name}");
        if n_x509 == 1 {
            assert_eq!(b.x509_authorities()[0], root, "{name}");
        }
    }
    // An empty key set is valid: the trust domain has no keys.
    let empty = bundle_with(json!([])).unwrap();
    assert!(empty.is_empty());
    // Duplicate x509 entries are deduplicated.
    assert_eq!(
        bundle_with(json!([good, good]))
            .unwrap()
            .x509_authorities()
            .len(),
        1
    );
}

#[test]
fn json_errors() {
    let root = root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "root");
    let p384 = root_cert(&rcgen::PKCS_ECDSA_P384_SHA384, "p384");
    let b = |v: Value| Bundle::from_spiffe_json(td(), v.to_string().as_bytes());
    assert!(matches!(
        Bundle::from_spiffe_json(td(), b"{"),
        Err(BundleError::Json(_))
    ));
    assert!(matches!(b(json!([])), Err(BundleError::NotObject)));
    assert!(matches!(b(json!({})), Err(BundleError::MissingKeys)));
    assert!(matches!(
        b(json!({"keys": {}})),
        Err(BundleError::MissingKeys)
    ));
    assert!(matches!(
        b(json!({"keys": [1]})),
        Err(BundleError::KeyNotObject { index: 0 })
    ));
    assert!(matches!(
        b(json!({"keys": [], "spiffe_sequence": -1})),
        Err(BundleError::BadField {
            field: "spiffe_sequence",
            ..
        })
    ));
    assert!(matches!(
        b(json!({"keys": [], "spiffe_refresh_hint": 1.5})),
        Err(BundleError::BadField {
            field: "spiffe_refresh_hint",
            ..
        })
    ));
    assert!(matches!(
        bundle_with(json!([jwt_entry("")])),
        Err(BundleError::MissingKid { index: 0 })
    ));
    let mut no_kid = jwt_entry("x");
    no_kid.as_object_mut().unwrap().remove("kid");
    assert!(matches!(
        bundle_with(json!([no_kid])),
        Err(BundleError::MissingKid { index: 0 })
    ));
    assert!(matches!(
        bundle_with(json!([jwt_entry("a"), jwt_entry("a")])),
        Err(BundleError::DuplicateKid { kid }) if kid == "a"
    ));
    let mut short = jwt_entry("a");
    short["x"] = "AAAA".into();
    assert!(matches!(
        bundle_with(json!([short])),
        Err(BundleError::Key {
            index: 0,
            key_use: "jwt-svid",
            source: KeyError::BadLength {
                param: "x",
                expected: 32,
                got: 3,
                ..
            },
        })
    ));

    // x5c must be standard base64: the url-safe alphabet is refused.
    let mut urlsafe = x509_entry(&root);
    let std_b64 = urlsafe["x5c"][0].as_str().unwrap().to_owned();
    urlsafe["x5c"][0] = std_b64.replace('+', "-").replace('/', "_").into();
    if urlsafe["x5c"][0].as_str().unwrap() != std_b64 {
        assert!(matches!(
            bundle_with(json!([urlsafe])),
            Err(BundleError::X5cNotBase64 { index: 0, .. })
        ));
    }
    let mut garbage = x509_entry(&root);
    garbage["x5c"][0] = STANDARD.encode(b"not a certificate").into();
    assert!(matches!(
        bundle_with(json!([garbage])),
        Err(BundleError::X5cCertificate {
            index: 0,
            source: AuthorityError::Certificate(SvidError::Malformed(_)),
        })
    ));
    // JWK parameters that contradict the certificate.
    let mut wrong_kty = x509_entry(&root);
    wrong_kty["kty"] = "RSA".into();
    wrong_kty["n"] = "AQAB".into();
    wrong_kty["e"] = "AQAB".into();
    assert!(matches!(
        bundle_with(json!([wrong_kty])),
        Err(BundleError::X5cKeyMismatch {
            index: 0,
            param: "kty"
        })
    ));
    let mut wrong_key = x509_entry(&root);
    wrong_key["x5c"] = json!([STANDARD.encode(root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "r2"))]);
    assert!(matches!(
        bundle_with(json!([wrong_key])),
        Err(BundleError::X5cKeyMismatch {
            index: 0,
            param: "key values"
        })
    ));
    let mut wrong_curve = x509_entry(&root);
    wrong_curve["x5c"] = json!([STANDARD.encode(&p384)]);
    assert!(matches!(
        bundle_with(json!([wrong_curve])),
        Err(BundleError::X5cKeyMismatch {
            index: 0,
            param: "key values"
        })
    ));
}

#[test]
fn pem_round_trip_and_errors() {
    let a = root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "a");
    let c = root_cert(&rcgen::PKCS_RSA_SHA256, "c");
    let b = Bundle::from_x509_authorities(td(), [a.clone(), c.clone(), a.clone()]).unwrap();
    assert_eq!(
        b.x509_authorities(),
        &[a.clone(), c.clone()],
        "deduplicated, order kept"
    );
    let pem = b.to_pem();
    assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(pem.lines().all(|l| l.len() <= 64));
    let again = Bundle::from_pem(td(), &format!("explanatory text\n{pem}\ntrailer\n")).unwrap();
    assert_eq!(again.x509_authorities(), b.x509_authorities());

    assert!(Bundle::from_pem(td(), "").unwrap().is_empty());
    assert!(Bundle::from_pem(td(), "\n  \n").unwrap().is_empty());
    assert!(matches!(
        Bundle::from_pem(td(), "hello"),
        Err(BundleError::Pem(PemError::NotPem))
    ));
    let key_block = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        Bundle::from_pem(td(), key_block),
        Err(BundleError::Pem(PemError::UnexpectedLabel { line: 1, ref label })) if label == "PRIVATE KEY"
    ));
    let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    assert!(matches!(
        Bundle::from_pem(td(), unterminated),
        Err(BundleError::Pem(PemError::Unterminated { line: 1, .. }))
    ));
    let mismatched = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n";
    assert!(matches!(
        Bundle::from_pem(td(), mismatched),
        Err(BundleError::Pem(PemError::MismatchedEnd { line: 3, .. }))
    ));
    let bad_b64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        Bundle::from_pem(td(), bad_b64),
        Err(BundleError::Pem(PemError::Base64 { line: 1, .. }))
    ));
    let corrupted = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        Bundle::from_pem(td(), corrupted),
        Err(BundleError::PemCertificate {
            index: 0,
            source: AuthorityError::Certificate(_)
        })
    ));
}

#[test]
fn authority_editing() {
    let a = root_cert(&rcgen::PKCS_ECDSA_P256_SHA256, "a");
    let mut b = Bundle::new(td());
    assert!(b.is_empty());
    assert!(b.add_x509_authority(a.clone()).unwrap());
    assert!(
        !b.add_x509_authority(a.clone()).unwrap(),
        "second add is a no-op"
    );
    assert!(matches!(
        b.add_x509_authority(CertificateDer::from(b"junk".to_vec())),
        Err(BundleError::Authority(AuthorityError::Certificate(_)))
    ));
    assert!(b.remove_x509_authority(&a));
    assert!(!b.remove_x509_authority(&a));
    assert!(b.is_empty());

    let key = key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    let auth = JwtAuthority::from_spki_der(&key.subject_public_key_info()).unwrap();
    let other = JwtAuthority::from_spki_der(
        &key_for(&rcgen::PKCS_ECDSA_P256_SHA256).subject_public_key_info(),
    )
    .unwrap();
    assert!(b.add_jwt_authority("k1", auth.clone()).unwrap());
    assert!(!b.add_jwt_authority("k1", auth.clone()).unwrap());
    assert!(matches!(
        b.add_jwt_authority("k1", other),
        Err(BundleError::DuplicateKid { .. })
    ));
    assert!(matches!(
        b.add_jwt_authority("", auth.clone()),
        Err(BundleError::EmptyKid)
    ));
    assert_eq!(b.remove_jwt_authority("k1"), Some(auth));
}

#[test]
fn bundle_set_keeps_trust_domains_apart() {
    let a = TrustDomain::new("a.org").unwrap();
    let z = TrustDomain::new("z.org").unwrap();
    let mut set: BundleSet = [Bundle::new(a.clone())].into_iter().collect();
    assert!(set.insert(Bundle::new(z.clone())).is_none());
    let mut replacement = Bundle::new(a.clone());
    replacement.set_sequence_number(Some(2));
    assert!(
        set.insert(replacement).is_some(),
        "same trust domain replaces, never merges"
    );
    assert_eq!(set.len(), 2);
    assert_eq!(set.get(&a).unwrap().sequence_number(), Some(2));
    assert_eq!(set.trust_domains().collect::<Vec<_>>(), [&a, &z]);
    assert!(
        set.bundle_for(&TrustDomain::new("other.org").unwrap())
            .is_none()
    );
    // A single bundle answers only for its own trust domain.
    let single = Bundle::new(a.clone());
    assert!(single.bundle_for(&a).is_some());
    assert!(single.bundle_for(&z).is_none());
    assert!(set.remove(&z).is_some());
    assert_eq!(set.len(), 1);
}
