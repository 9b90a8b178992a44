use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P521_SHA512_ASN1_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};

use sigil_spiffe::pem::encode_block;

use super::*;
use crate::testutil::{pkcs8_inner, secret_of, secret_shown};

#[test]
fn key_type_names_round_trip_through_from_str_display_and_serde() {
    for k in KeyType::ALL {
        assert_eq!(k.name().parse::<KeyType>().unwrap(), k);
        assert_eq!(k.to_string(), k.name());
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{}\"", k.name()));
        assert_eq!(serde_json::from_str::<KeyType>(&json).unwrap(), k);
    }
    assert_eq!(KeyType::default(), KeyType::EcP256);
    let names: Vec<&str> = KeyType::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.join(", "), VALID_KEY_TYPES);
}

#[test]
fn unknown_key_type_lists_the_valid_names() {
    for given in ["rsa-1024", "EC-P256", "p256", ""] {
        let err = given.parse::<KeyType>().unwrap_err();
        assert!(
            matches!(&err, CaError::UnknownKeyType { given: g, .. } if g == given),
            "{err:?}"
        );
        assert!(err.to_string().contains(VALID_KEY_TYPES), "{err}");
    }
}

fn verifier(k: KeyType) -> &'static dyn VerificationAlgorithm {
    match k {
        KeyType::EcP256 => &ECDSA_P256_SHA256_ASN1,
        KeyType::EcP384 => &ECDSA_P384_SHA384_ASN1,
        KeyType::Ed25519 => &ED25519,
        _ => &RSA_PKCS1_2048_8192_SHA256,
    }
}

#[test]
fn every_key_type_generates_signs_exports_and_reloads() {
    for k in KeyType::ALL {
        let key = PrivateKey::generate(k).unwrap();
        assert_eq!(key.key_type(), k);

        let sig = key.sign(b"hello").unwrap();
        UnparsedPublicKey::new(verifier(k), key.public_key_raw())
            .verify(b"hello", &sig)
            .unwrap_or_else(|_| panic!("{k}: signature does not verify"));

        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{k}");
        let back = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(back.key_type(), k);
        assert_eq!(back.public_key_raw(), key.public_key_raw(), "{k}");
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(
            PrivateKey::from_pkcs8_der(&der).unwrap().public_key_raw(),
            key.public_key_raw()
        );

        // The SPKI parses and carries the same key.
        let spki = key.public_key_spki_der();
        let (_, parsed) =
            <x509_parser::x509::SubjectPublicKeyInfo<'_> as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(&spki)
            .unwrap();
        assert_eq!(
            parsed.subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }
}

#[test]
fn pkcs1_rsa_private_key_pem_loads() {
    let key = PrivateKey::generate(KeyType::Rsa2048).unwrap();
    let pkcs1 = pkcs8_inner(&key.to_pkcs8_der().unwrap());
    let pem = encode_block("RSA PRIVATE KEY", &pkcs1);
    let back = PrivateKey::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(back.key_type(), KeyType::Rsa2048);
    assert_eq!(back.public_key_raw(), key.public_key_raw());
    // Exported again as PKCS#8, whatever the input form.
    assert!(back.to_pkcs8_pem().unwrap().contains("BEGIN PRIVATE KEY"));
}

#[test]
fn sec1_ec_private_key_pem_loads_with_and_without_curve_parameters() {
    let kp = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let sec1 = kp.private_key().as_der().unwrap();
    let pem = encode_block("EC PRIVATE KEY", sec1.as_ref());
    let back = PrivateKey::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(back.key_type(), KeyType::EcP384);
    assert_eq!(back.public_key_raw(), kp.public_key().as_ref());

    // The SEC1 inside aws-lc's PKCS#8 omits the curve (it is in the algorithm identifier).
    let p256 = PrivateKey::generate(KeyType::EcP256).unwrap();
    let bare = pkcs8_inner(&p256.to_pkcs8_der().unwrap());
    let back = PrivateKey::from_pem(encode_block("EC PRIVATE KEY", &bare).as_bytes()).unwrap();
    assert_eq!(back.key_type(), KeyType::EcP256);
    assert_eq!(back.public_key_raw(), p256.public_key_raw());
}

#[test]
fn pem_problems_are_told_apart() {
    let key_pem = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["x.example".into()])
        .unwrap()
        .cert;

    assert_eq!(
        PrivateKey::from_pem(b"just some text").unwrap_err(),
        KeyProblem::NotPem
    );
    assert_eq!(
        PrivateKey::from_pem(cert.pem().as_bytes()).unwrap_err(),
        KeyProblem::NoPrivateKey {
            found: "CERTIFICATE".into()
        }
    );
    let two = format!("{}{}", *key_pem, *key_pem);
    assert_eq!(
        PrivateKey::from_pem(two.as_bytes()).unwrap_err(),
        KeyProblem::MultipleKeys(2)
    );
    // A certificate next to the key is fine (a combined PEM).
    assert!(PrivateKey::from_pem(format!("{}{}", cert.pem(), *key_pem).as_bytes()).is_ok());

    let encrypted = encode_block("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]);
    assert_eq!(
        PrivateKey::from_pem(encrypted.as_bytes()).unwrap_err(),
        KeyProblem::Encrypted
    );
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                  DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(
        PrivateKey::from_pem(legacy.as_bytes()).unwrap_err(),
        KeyProblem::Encrypted
    );

    let garbage = encode_block("PRIVATE KEY", b"definitely not DER");
    assert!(matches!(
        PrivateKey::from_pem(garbage.as_bytes()),
        Err(KeyProblem::Corrupt(_))
    ));
    let mut der = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .to_pkcs8_der()
        .unwrap()
        .to_vec();
    der.truncate(der.len() - 4);
    let truncated = encode_block("PRIVATE KEY", &der);
    assert!(matches!(
        PrivateKey::from_pem(truncated.as_bytes()),
        Err(KeyProblem::Corrupt(_))
    ));
}

#[test]
fn unsupported_algorithms_are_named() {
    let rng = SystemRandom::new();
    let p521 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P521_SHA512_ASN1_SIGNING, &rng).unwrap();
    let pem = encode_block("PRIVATE KEY", p521.as_ref());
    match PrivateKey::from_pem(pem.as_bytes()) {
        Err(KeyProblem::UnsupportedAlgorithm(a)) => assert!(a.contains("secp521r1"), "{a}"),
        other => panic!("{other:?}"),
    }
    // An RSA-PSS-only key (algorithm OID 1.2.840.113549.1.1.10), structure only.
    let pss: &[u8] = &[
        0x30, 0x14, 0x02, 0x01, 0x00, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
        0x01, 0x01, 0x0a, 0x04, 0x02, 0x30, 0x00,
    ];
    match PrivateKey::from_pkcs8_der(pss) {
        Err(KeyProblem::UnsupportedAlgorithm(a)) => assert!(a.contains("RSASSA-PSS"), "{a}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_output_never_shows_private_material() {
    // One key per structure the secret is found in (SEC1, raw seed, PKCS#1).
    for k in [KeyType::EcP256, KeyType::Ed25519, KeyType::Rsa2048] {
        let key = PrivateKey::generate(k).unwrap();
        for debug in [format!("{key:?}"), format!("{key:#?}")] {
            assert!(debug.contains(&format!("{k:?}")), "{debug}");
            assert!(debug.contains(&key.fingerprint()), "{debug}");
            assert_eq!(secret_shown(&debug, &key), None, "{debug}");
        }
    }
}

#[test]
fn the_secret_check_sees_a_leak() {
    let key = PrivateKey::generate(KeyType::EcP256).unwrap();
    let secret = secret_of(&key);
    let cases = [
        ("byte list", format!("{secret:?}")),
        ("hex", hex::encode(&secret)),
        ("pem", key.to_pkcs8_pem().unwrap().to_string()),
    ];
    for (name, leaked) in cases {
        assert!(secret_shown(&leaked, &key).is_some(), "{name}: {leaked}");
    }
}

#[test]
fn oid_names_are_readable() {
    assert_eq!(
        oid_name(&[0x2b, 0x81, 0x04, 0x00, 0x23]),
        "EC curve secp521r1 (1.3.132.0.35)"
    );
    assert_eq!(oid_name(&[0x2a, 0x03]), "OID 1.2.3");
}
