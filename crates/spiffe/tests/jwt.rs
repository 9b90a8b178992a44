//! JWT-SVID validation, table-driven: every token is built here with real keys (aws-lc-rs),
//! each case names the rule it exercises and the error it must produce.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
    RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sigil_spiffe::jwt::{self, JwtError};
use sigil_spiffe::{Bundle, BundleSet, JwtAuthority, PublicKey, TrustDomain};

const NOW: u64 = 1_700_000_000;
const AUD: &str = "spiffe://example.org/reports";
const SUB: &str = "spiffe://example.org/ns/payments/sa/billing";

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ed(Ed25519KeyPair),
}

/// A signing key with its key ID and the alg it puts in headers.
struct Issuer {
    kid: &'static str,
    alg: &'static str,
    key: Key,
}

impl Issuer {
    fn ec(kid: &'static str, alg: &'static str, a: &'static EcdsaSigningAlgorithm) -> Self {
        Issuer {
            kid,
            alg,
            key: Key::Ec(EcdsaKeyPair::generate(a).unwrap()),
        }
    }

    fn rsa(kid: &'static str, alg: &'static str, enc: &'static dyn RsaEncoding) -> Self {
        Issuer {
            kid,
            alg,
            key: Key::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap(), enc),
        }
    }

    fn public(&self) -> PublicKey {
        let spki = match &self.key {
            Key::Ec(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Key::Rsa(k, _) => k.public_key().as_der().unwrap().as_ref().to_vec(),
            Key::Ed(k) => k.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        PublicKey::from_spki_der(&spki).unwrap()
    }

    fn authority(&self) -> JwtAuthority {
        JwtAuthority {
            key: self.public(),
            alg: None,
        }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.key {
            Key::Ec(k) => k.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec(),
            Key::Rsa(k, enc) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(*enc, &SystemRandom::new(), msg, &mut sig).unwrap();
                sig
            }
            Key::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }

    fn header(&self) -> Value {
        json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"})
    }

    /// A token with this issuer's standard header and `claims`.
    fn token(&self, claims: Value) -> String {
        self.token_with(&self.header(), &claims)
    }

    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn claims() -> Value {
    json!({"sub": SUB, "aud": [AUD], "exp": NOW + 300, "iat": NOW})
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

struct Keys {
    es256: Issuer,
    es384: Issuer,
    es512: Issuer,
    rs256: Issuer,
    rs384: Issuer,
    ps256: Issuer,
    /// Signs with ASN.1 DER ECDSA signatures instead of JWS's raw r || s.
    es256_der: Issuer,
    /// Not in any bundle.
    stranger: Issuer,
    /// In the bundle of other.org only.
    other_td: Issuer,
    ed25519: Issuer,
}

fn keys() -> Keys {
    Keys {
        es256: Issuer::ec("es256", "ES256", &ECDSA_P256_SHA256_FIXED_SIGNING),
        es384: Issuer::ec("es384", "ES384", &ECDSA_P384_SHA384_FIXED_SIGNING),
        es512: Issuer::ec("es512", "ES512", &ECDSA_P521_SHA512_FIXED_SIGNING),
        rs256: Issuer::rsa("rs256", "RS256", &RSA_PKCS1_SHA256),
        rs384: Issuer::rsa("rs384", "RS384", &RSA_PKCS1_SHA384),
        ps256: Issuer::rsa("ps256", "PS256", &RSA_PSS_SHA256),
        es256_der: Issuer::ec("es256-der", "ES256", &ECDSA_P256_SHA256_ASN1_SIGNING),
        stranger: Issuer::ec("stranger", "ES256", &ECDSA_P256_SHA256_FIXED_SIGNING),
        other_td: Issuer::ec("other", "ES256", &ECDSA_P256_SHA256_FIXED_SIGNING),
        ed25519: Issuer {
            kid: "ed",
            alg: "EdDSA",
            key: Key::Ed(Ed25519KeyPair::generate().unwrap()),
        },
    }
}

fn bundles(k: &Keys) -> BundleSet {
    let mut own = Bundle::new(TrustDomain::new("example.org").unwrap());
    for i in [
        &k.es256,
        &k.es384,
        &k.es512,
        &k.rs256,
        &k.rs384,
        &k.ps256,
        &k.es256_der,
        &k.ed25519,
    ] {
        own.add_jwt_authority(i.kid, i.authority()).unwrap();
    }
    let mut other = Bundle::new(TrustDomain::new("other.org").unwrap());
    other
        .add_jwt_authority(k.other_td.kid, k.other_td.authority())
        .unwrap();
    [own, other].into_iter().collect()
}

type Check = fn(&JwtError) -> bool;

struct Case {
    name: &'static str,
    token: String,
    /// `None`: the token must validate.
    err: Option<Check>,
}

fn ok(name: &'static str, token: String) -> Case {
    Case {
        name,
        token,
        err: None,
    }
}

fn bad(name: &'static str, token: String, err: Check) -> Case {
    Case {
        name,
        token,
        err: Some(err),
    }
}

fn tamper_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let n = sig.len();
    sig[n - 1] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn swap_claims(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims);
    parts.join(".")
}

#[test]
fn jwt_svid_rules() {
    let k = keys();
    let set = bundles(&k);
    let c = claims;
    let es = &k.es256;
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "es256"})),
        b64(&c())
    );
    let cases = vec![
        // ---- Good tokens, one per algorithm family and audience form -------------------------
        ok("ES256", es.token(c())),
        ok("ES384", k.es384.token(c())),
        ok("ES512", k.es512.token(c())),
        ok("RS256", k.rs256.token(c())),
        ok("RS384", k.rs384.token(c())),
        ok("PS256", k.ps256.token(c())),
        ok("aud as a string", es.token(with(c(), "aud", json!(AUD)))),
        ok(
            "aud array with several values",
            es.token(with(c(), "aud", json!(["other", AUD]))),
        ),
        ok(
            "typ JOSE",
            es.token_with(&with(es.header(), "typ", json!("JOSE")), &c()),
        ),
        ok("no typ", es.token_with(&without(es.header(), "typ"), &c())),
        ok("no iat", es.token(without(c(), "iat"))),
        ok(
            "nbf in the past",
            es.token(with(c(), "nbf", json!(NOW - 10))),
        ),
        ok(
            "iat a little ahead (issuer clock skew)",
            es.token(with(c(), "iat", json!(NOW + 30))),
        ),
        ok(
            "fractional exp",
            es.token(with(c(), "exp", json!(NOW as f64 + 1.5))),
        ),
        ok(
            "extra private claims are allowed",
            es.token(with(c(), "x-team", json!("payments"))),
        ),
        // ---- Form ----------------------------------------------------------------------------
        bad("two parts", "a.b".into(), |e| {
            matches!(e, JwtError::NotCompact { parts: 2 })
        }),
        bad("JWE (five parts)", "a.b.c.d.e".into(), |e| {
            matches!(e, JwtError::NotCompact { parts: 5 }) && e.to_string().contains("JWE")
        }),
        bad("unsigned (alg none, empty signature)", unsigned, |e| {
            matches!(e, JwtError::EmptyPart { part: "signature" })
        }),
        bad(
            "padding in a part",
            {
                let t = es.token(c());
                let (h, rest) = t.split_once('.').unwrap();
                format!("{h}==.{rest}")
            },
            |e| matches!(e, JwtError::NotBase64Url { part: "header" }),
        ),
        bad(
            "header is not JSON",
            format!("{}.{}.AAAA", URL_SAFE_NO_PAD.encode("alg"), b64(&c())),
            |e| matches!(e, JwtError::NotJsonObject { part: "header", .. }),
        ),
        bad(
            "duplicate header member",
            {
                let header = r#"{"alg":"ES256","kid":"es256","alg":"ES256"}"#;
                let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), b64(&c()));
                let sig = es.sign(input.as_bytes());
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
            },
            |e| matches!(e, JwtError::NotJsonObject { part: "header", reason } if reason.contains("more than once")),
        ),
        // ---- Header --------------------------------------------------------------------------
        bad(
            "alg none with a signature",
            es.token_with(&with(es.header(), "alg", json!("none")), &c()),
            |e| matches!(e, JwtError::UnsupportedAlg { alg } if alg == "none"),
        ),
        bad(
            "alg HS256",
            es.token_with(&with(es.header(), "alg", json!("HS256")), &c()),
            |e| matches!(e, JwtError::UnsupportedAlg { alg } if alg == "HS256"),
        ),
        bad(
            "alg EdDSA",
            k.ed25519.token(c()),
            |e| matches!(e, JwtError::UnsupportedAlg { alg } if alg == "EdDSA"),
        ),
        bad(
            "no alg",
            es.token_with(&without(es.header(), "alg"), &c()),
            |e| matches!(e, JwtError::MissingAlg),
        ),
        bad(
            "typ JWS",
            es.token_with(&with(es.header(), "typ", json!("JWS")), &c()),
            |e| matches!(e, JwtError::BadTyp { typ } if typ == "JWS"),
        ),
        bad(
            "no kid",
            es.token_with(&without(es.header(), "kid"), &c()),
            |e| matches!(e, JwtError::MissingKid),
        ),
        bad(
            "kid not a string",
            es.token_with(&with(es.header(), "kid", json!(7)), &c()),
            |e| matches!(e, JwtError::BadHeaderParam { name: "kid", .. }),
        ),
        bad(
            "forbidden header jku",
            es.token_with(&with(es.header(), "jku", json!("https://evil")), &c()),
            |e| matches!(e, JwtError::ForbiddenHeader { name } if name == "jku"),
        ),
        // ---- Subject -------------------------------------------------------------------------
        bad("no sub", es.token(without(c(), "sub")), |e| {
            matches!(e, JwtError::MissingSub)
        }),
        bad(
            "sub not a SPIFFE ID",
            es.token(with(c(), "sub", json!("https://example.org/x"))),
            |e| matches!(e, JwtError::BadSub { .. }),
        ),
        bad(
            "sub is a trust domain",
            es.token(with(c(), "sub", json!("spiffe://example.org"))),
            |e| matches!(e, JwtError::SubWithoutPath { .. }),
        ),
        // ---- Key -----------------------------------------------------------------------------
        bad(
            "no bundle for the sub's trust domain",
            es.token(with(c(), "sub", json!("spiffe://unknown.org/w"))),
            |e| matches!(e, JwtError::NoBundle { trust_domain, .. } if trust_domain.as_str() == "unknown.org"),
        ),
        bad(
            "unknown kid",
            k.stranger.token(c()),
            |e| matches!(e, JwtError::UnknownKeyId { kid, .. } if kid == "stranger"),
        ),
        bad(
            "key of another trust domain (kid lookup is per sub's trust domain)",
            k.other_td.token(c()),
            |e| {
                matches!(e, JwtError::UnknownKeyId { kid, trust_domain, .. }
                    if kid == "other" && trust_domain.as_str() == "example.org")
            },
        ),
        bad(
            "ES256 header on a P-384 key",
            k.es384
                .token_with(&with(k.es384.header(), "alg", json!("ES256")), &c()),
            |e| {
                matches!(
                    e,
                    JwtError::KeyAlgMismatch {
                        key: "EC P-384",
                        ..
                    }
                )
            },
        ),
        bad(
            "RS256 header on an EC key",
            es.token_with(&with(es.header(), "alg", json!("RS256")), &c()),
            |e| {
                matches!(
                    e,
                    JwtError::KeyAlgMismatch {
                        key: "EC P-256",
                        ..
                    }
                )
            },
        ),
        bad(
            "PS256 header on an RS256 signature",
            k.rs256
                .token_with(&with(k.rs256.header(), "alg", json!("PS256")), &c()),
            |e| matches!(e, JwtError::BadSignature { .. }),
        ),
        // ---- Signature -----------------------------------------------------------------------
        bad(
            "tampered signature",
            tamper_signature(&es.token(c())),
            |e| matches!(e, JwtError::BadSignature { kid, .. } if kid == "es256"),
        ),
        bad(
            "tampered claims",
            swap_claims(
                &es.token(c()),
                &with(c(), "sub", json!("spiffe://example.org/admin")),
            ),
            |e| matches!(e, JwtError::BadSignature { .. }),
        ),
        bad(
            "tampered RSA signature",
            tamper_signature(&k.rs256.token(c())),
            |e| matches!(e, JwtError::BadSignature { .. }),
        ),
        bad("DER-encoded ECDSA signature", k.es256_der.token(c()), |e| {
            matches!(e, JwtError::BadSignatureLength { expected: 64, .. })
        }),
        // ---- Claims --------------------------------------------------------------------------
        bad("no aud", es.token(without(c(), "aud")), |e| {
            matches!(e, JwtError::MissingAud)
        }),
        bad(
            "wrong aud",
            es.token(with(c(), "aud", json!(["billing"]))),
            |e| matches!(e, JwtError::AudienceMismatch { got, .. } if got == &["billing"]),
        ),
        bad(
            "empty aud array",
            es.token(with(c(), "aud", json!([]))),
            |e| matches!(e, JwtError::BadClaim { claim: "aud", .. }),
        ),
        bad(
            "aud with a number",
            es.token(with(c(), "aud", json!([AUD, 1]))),
            |e| matches!(e, JwtError::BadClaim { claim: "aud", .. }),
        ),
        bad("no exp", es.token(without(c(), "exp")), |e| {
            matches!(e, JwtError::MissingExp)
        }),
        bad(
            "exp a string",
            es.token(with(c(), "exp", json!("soon"))),
            |e| matches!(e, JwtError::BadClaim { claim: "exp", .. }),
        ),
        bad("expired", es.token(with(c(), "exp", json!(NOW - 1))), |e| {
            matches!(e, JwtError::Expired { .. })
        }),
        bad(
            "exp equal to now",
            es.token(with(c(), "exp", json!(NOW))),
            |e| matches!(e, JwtError::Expired { .. }),
        ),
        bad(
            "nbf in the future",
            es.token(with(c(), "nbf", json!(NOW + 120))),
            |e| matches!(e, JwtError::NotYetValid { .. }),
        ),
        bad(
            "iat far in the future",
            es.token(with(c(), "iat", json!(NOW + 120))),
            |e| matches!(e, JwtError::IssuedInFuture { .. }),
        ),
    ];
    let mut failures = Vec::new();
    for case in cases {
        let got = jwt::validate(&case.token, AUD, &set, NOW);
        match (&got, case.err) {
            (Ok(v), None) => assert_eq!(v.id.as_str(), SUB, "{}", case.name),
            (Err(e), Some(check)) if check(e) => {}
            _ => failures.push(format!("{}: got {got:?}", case.name)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn claims_are_returned_and_the_single_bundle_answers_for_its_own_trust_domain() {
    let k = keys();
    let set = bundles(&k);
    let own = set
        .get(&TrustDomain::new("example.org").unwrap())
        .unwrap()
        .clone();
    let token = k.es256.token(with(claims(), "x-team", json!("payments")));
    let v = jwt::validate(&token, AUD, &own, NOW).unwrap();
    assert_eq!(v.claims["x-team"], json!("payments"));
    assert_eq!(v.claims["exp"], json!(NOW + 300));
    // Works through a trait object too (the Workload API holds `dyn BundleSource`).
    let dynamic: &dyn sigil_spiffe::BundleSource = &set;
    assert!(jwt::validate(&token, AUD, dynamic, NOW).is_ok());
}

#[test]
fn pinned_alg_and_weak_rsa_keys_are_refused() {
    let k = keys();
    let mut b = Bundle::new(TrustDomain::new("example.org").unwrap());
    b.add_jwt_authority(
        "rs256",
        JwtAuthority {
            key: k.rs256.public(),
            alg: Some("PS256".into()),
        },
    )
    .unwrap();
    let PublicKey::Rsa { n, e } = k.rs256.public() else {
        unreachable!()
    };
    b.add_jwt_authority(
        "weak",
        JwtAuthority {
            key: PublicKey::Rsa {
                n: n[..128].to_vec(),
                e,
            },
            alg: None,
        },
    )
    .unwrap();
    let e = jwt::validate(&k.rs256.token(claims()), AUD, &b, NOW).unwrap_err();
    assert!(matches!(e, JwtError::AlgNotPinned { .. }), "{e:?}");
    let weak = Issuer::rsa("weak", "RS256", &RSA_PKCS1_SHA256);
    let e = jwt::validate(&weak.token(claims()), AUD, &b, NOW).unwrap_err();
    assert!(
        matches!(e, JwtError::WeakRsaKey { bits: 1024, .. }),
        "{e:?}"
    );
}

#[test]
fn empty_expected_audience_is_a_caller_error() {
    let k = keys();
    let e = jwt::validate(&k.es256.token(claims()), "", &bundles(&k), NOW).unwrap_err();
    assert_eq!(e, JwtError::NoExpectedAudience);
}

#[test]
fn parse_unverified_shows_header_and_claims() {
    let k = keys();
    let (h, c) = jwt::parse_unverified(&k.es256.token(claims())).unwrap();
    assert_eq!(h.alg.as_deref(), Some("ES256"));
    assert_eq!(h.kid.as_deref(), Some("es256"));
    assert_eq!(h.typ.as_deref(), Some("JWT"));
    assert_eq!(c["sub"], json!(SUB));
    assert!(jwt::parse_unverified("not-a-token").is_err());
}

#[test]
fn error_messages_name_the_rule() {
    let k = keys();
    let set = bundles(&k);
    let cases: [(String, &str); 4] = [
        (
            k.es256
                .token_with(&with(k.es256.header(), "alg", json!("HS256")), &claims()),
            "\"HS256\" is not allowed",
        ),
        (k.stranger.token(claims()), "\"stranger\""),
        (
            k.es256.token(with(claims(), "aud", json!("x"))),
            "not \"spiffe://example.org/reports\"",
        ),
        (
            k.es256.token(with(claims(), "exp", json!(NOW - 60))),
            "expired at 2023-11-14T22:12:20Z",
        ),
    ];
    for (token, needle) in cases {
        let msg = jwt::validate(&token, AUD, &set, NOW)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
}
