//! JWT-SVID validation (`JWT-SVID.md`): pure, no IO, time passed in.
//!
//! [`validate`] checks, in this order, and fails with the first rule broken:
//!
//! 1. **Form**: JWS Compact Serialization — three non-empty base64url parts without padding;
//!    header and claims are JSON objects in which no member appears twice.
//! 2. **Header**: `alg` is one of RS256/384/512, ES256/384/512, PS256/384/512 (`none`, HMAC
//!    and everything else are refused by name); `typ` is absent, `JWT` or `JOSE`; `kid` is
//!    present (the spec makes it optional, but SPIFFE bundles key JWT authorities by it); no
//!    other header parameter is present (JWT-SVID §2 forbids them).
//! 3. **Subject**: `sub` is a SPIFFE ID with a path.
//! 4. **Key**: the bundle of the `sub`'s trust domain exists and has a JWT authority `kid`;
//!    the key can do `alg` (an EC key only its curve's ES alg, RSA keys RS and PS with at
//!    least 2048 bits) and, if the bundle pins an `alg` for the key, it is that one.
//! 5. **Signature**: verified over `header.claims` with rustls-webpki's aws-lc-rs
//!    algorithms. ES signatures are the raw `r || s` of RFC 7518 §3.4 (converted to DER for
//!    the verifier); a DER-encoded ECDSA signature is refused.
//! 6. **Claims**: `aud` (a string or an array of strings) contains the expected audience;
//!    `exp` is present and `now < exp` (no leeway: an expired credential is never accepted);
//!    `nbf` and `iat`, when present, are not later than `now` plus [`FUTURE_LEEWAY_SECS`]
//!    (tolerating an issuer whose clock runs slightly ahead). NumericDates may be fractional;
//!    the fraction is dropped.
//!
//! Signing lives in `sigil-ca`, which holds the keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::SignatureVerificationAlgorithm;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use webpki::aws_lc_rs as algs;

use crate::bundle::BundleSource;
use crate::der;
use crate::id::{IdError, SpiffeId, TrustDomain};
use crate::jwk::PublicKey;
use crate::verify::Rfc3339;

/// How far in the future `nbf` and `iat` may lie (seconds), for issuers whose clock runs
/// ahead of ours. `exp` gets no leeway.
pub const FUTURE_LEEWAY_SECS: u64 = 60;

/// The `alg` values JWT-SVID allows (RFC 7518 §3.3–3.5).
pub const ALLOWED_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
];

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

const ALLOWED_HEADERS: [&str; 3] = ["alg", "kid", "typ"];

/// The claims of a token, as JSON.
pub type Claims = Map<String, Value>;

/// A JWT-SVID that passed [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedJwt {
    /// The authenticated SPIFFE ID (`sub`).
    pub id: SpiffeId,
    /// Every claim of the token.
    pub claims: Claims,
}

/// The JOSE header of a token, decoded but not checked against the JWT-SVID rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// Every header parameter, as JSON.
    pub raw: Map<String, Value>,
}

/// Why a token is not a valid JWT-SVID. Each variant names the rule that failed.
///
/// All variants blame the token (its issuer or presenter) except [`JwtError::NoBundle`] and
/// [`JwtError::UnknownKeyId`], which may also mean our bundles are missing or stale, and
/// [`JwtError::NoExpectedAudience`], which blames the caller of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    // ---- Form ---------------------------------------------------------------------------------
    #[error(
        "token has {parts} dot-separated part(s); a JWT-SVID is a JWS in compact form: \
         header.claims.signature{}",
        if *.parts == 5 { " (5 parts is an encrypted JWE, which JWT-SVID does not allow)" } else { "" }
    )]
    NotCompact { parts: usize },
    #[error("the token's {part} is empty")]
    EmptyPart { part: &'static str },
    #[error("the token's {part} is not base64url without padding (RFC 7515 §2)")]
    NotBase64Url { part: &'static str },
    #[error("the token's {part} is not a JSON object: {reason}")]
    NotJsonObject { part: &'static str, reason: String },

    // ---- Header -------------------------------------------------------------------------------
    #[error("header has no \"alg\"; a JWT-SVID names its signature algorithm")]
    MissingAlg,
    #[error(
        "algorithm {alg:?} is not allowed for JWT-SVIDs; use RS256/384/512, ES256/384/512 or \
         PS256/384/512 (\"none\" and HMAC algorithms are always refused)"
    )]
    UnsupportedAlg { alg: String },
    #[error("header \"typ\" is {typ:?}; JWT-SVIDs allow only \"JWT\", \"JOSE\" or no typ")]
    BadTyp { typ: String },
    #[error(
        "header has no \"kid\"; the key ID is needed to find the signing key in the trust bundle"
    )]
    MissingKid,
    #[error("header parameter {name:?} must be {expected}")]
    BadHeaderParam {
        name: &'static str,
        expected: &'static str,
    },
    #[error(
        "header parameter {name:?} is not allowed in a JWT-SVID (only alg, kid and typ are, \
         JWT-SVID §2)"
    )]
    ForbiddenHeader { name: String },

    // ---- Subject ------------------------------------------------------------------------------
    #[error("claim \"sub\" is missing; a JWT-SVID's subject is the workload's SPIFFE ID")]
    MissingSub,
    #[error("claim \"sub\" {sub:?} is not a SPIFFE ID: {source}")]
    BadSub {
        sub: String,
        #[source]
        source: IdError,
    },
    #[error(
        "claim \"sub\" {sub} names a trust domain, not a workload; a JWT-SVID subject has a path"
    )]
    SubWithoutPath { sub: SpiffeId },

    // ---- Key ----------------------------------------------------------------------------------
    #[error(
        "no trust bundle for trust domain {trust_domain} (of subject {sub}); federate with it or \
         add its bundle"
    )]
    NoBundle {
        trust_domain: TrustDomain,
        sub: SpiffeId,
    },
    #[error(
        "key ID {kid:?} is not a JWT authority of trust domain {trust_domain} (the bundle has \
         {known} JWT key(s)); the token was signed by another trust domain's key, by a key not \
         yet published, or our copy of the bundle is stale"
    )]
    UnknownKeyId {
        kid: String,
        trust_domain: TrustDomain,
        known: usize,
    },
    #[error("algorithm {alg} cannot be used with key {kid:?}, which is an {key} key")]
    KeyAlgMismatch {
        kid: String,
        alg: String,
        key: &'static str,
    },
    #[error("key {kid:?} is pinned to algorithm {pinned} by the bundle, but the token uses {alg}")]
    AlgNotPinned {
        kid: String,
        alg: String,
        pinned: String,
    },
    #[error("key {kid:?} is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required")]
    WeakRsaKey { kid: String, bits: usize },

    // ---- Signature ----------------------------------------------------------------------------
    #[error(
        "{alg} signature is {got} bytes; it must be exactly {expected} (raw r || s, RFC 7518 \
         §3.4; a DER-encoded ECDSA signature is not a JWS signature)"
    )]
    BadSignatureLength {
        alg: String,
        expected: usize,
        got: usize,
    },
    #[error(
        "signature does not verify with key {kid:?} of trust domain {trust_domain}: the token \
         was altered or signed with another key"
    )]
    BadSignature {
        kid: String,
        trust_domain: TrustDomain,
    },

    // ---- Claims -------------------------------------------------------------------------------
    #[error("claim {claim:?} must be {expected}")]
    BadClaim {
        claim: &'static str,
        expected: &'static str,
    },
    #[error("claim \"aud\" is missing; a JWT-SVID names the audience it is meant for")]
    MissingAud,
    #[error("the token is for audience {got:?}, not {expected:?}")]
    AudienceMismatch { expected: String, got: Vec<String> },
    #[error("claim \"exp\" is missing; a JWT-SVID must expire")]
    MissingExp,
    #[error("the token expired at {} (now {})", Rfc3339(*.exp), Rfc3339(*.now))]
    Expired { exp: u64, now: u64 },
    #[error(
        "the token is not valid before {} (now {}); check the clocks of issuer and validator",
        Rfc3339(*.nbf), Rfc3339(*.now)
    )]
    NotYetValid { nbf: u64, now: u64 },
    #[error(
        "the token was issued in the future, at {} (now {}); check the clocks of issuer and \
         validator",
        Rfc3339(*.iat), Rfc3339(*.now)
    )]
    IssuedInFuture { iat: u64, now: u64 },

    // ---- Caller -------------------------------------------------------------------------------
    #[error("no audience to validate against; name the audience this service accepts")]
    NoExpectedAudience,
}

/// Decodes a compact JWS into its header and claims, checking only the form (three
/// base64url parts, JSON objects without duplicate members). Nothing is verified: use it to
/// show a token, never to trust one.
pub fn parse_unverified(token: &str) -> Result<(Header, Claims), JwtError> {
    let parts = split(token)?;
    Ok((parts.header, parts.claims))
}

/// Validates a JWT-SVID for `audience` against the bundle of its subject's trust domain, at
/// `now_unix_secs`. The checks and their order are listed in the [module docs](self).
pub fn validate(
    token: &str,
    audience: &str,
    bundles: &(impl BundleSource + ?Sized),
    now_unix_secs: u64,
) -> Result<ValidatedJwt, JwtError> {
    if audience.is_empty() {
        return Err(JwtError::NoExpectedAudience);
    }
    let parts = split(token)?;
    let (alg, kid) = check_header(&parts.header)?;
    let id = subject(&parts.claims)?;

    let td = id.trust_domain();
    let bundle = bundles.bundle_for(td).ok_or_else(|| JwtError::NoBundle {
        trust_domain: td.clone(),
        sub: id.clone(),
    })?;
    let authority = bundle
        .jwt_authority(kid)
        .ok_or_else(|| JwtError::UnknownKeyId {
            kid: kid.to_owned(),
            trust_domain: td.clone(),
            known: bundle.jwt_authorities().len(),
        })?;
    if let Some(pinned) = &authority.alg
        && pinned != alg
    {
        return Err(JwtError::AlgNotPinned {
            kid: kid.to_owned(),
            alg: alg.to_owned(),
            pinned: pinned.clone(),
        });
    }
    verify_signature(&authority.key, alg, kid, &parts).map_err(|e| {
        e.unwrap_or_else(|| JwtError::BadSignature {
            kid: kid.to_owned(),
            trust_domain: td.clone(),
        })
    })?;

    check_audience(&parts.claims, audience)?;
    check_times(&parts.claims, now_unix_secs)?;
    Ok(ValidatedJwt {
        id,
        claims: parts.claims,
    })
}

struct Parts<'a> {
    header: Header,
    claims: Claims,
    /// `base64url(header) || '.' || base64url(claims)`: what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let pieces: Vec<&str> = token.split('.').collect();
    let [h, c, s] = pieces[..] else {
        return Err(JwtError::NotCompact {
            parts: pieces.len(),
        });
    };
    let decode = |text: &str, part: &'static str| -> Result<Vec<u8>, JwtError> {
        if text.is_empty() {
            return Err(JwtError::EmptyPart { part });
        }
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| JwtError::NotBase64Url { part })
    };
    let header_json = decode(h, "header")?;
    let claims_json = decode(c, "claims")?;
    let signature = decode(s, "signature")?;
    let raw = json_object(&header_json, "header")?;
    let str_param = |name: &'static str| -> Result<Option<String>, JwtError> {
        match raw.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError::BadHeaderParam {
                name,
                expected: "a string",
            }),
        }
    };
    let header = Header {
        alg: str_param("alg")?,
        kid: str_param("kid")?,
        typ: str_param("typ")?,
        raw: raw.clone(),
    };
    let claims = json_object(&claims_json, "claims")?;
    Ok(Parts {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

/// Parses a JSON object, refusing members that appear twice (RFC 7515 §5.2 allows refusing;
/// taking "the last one" lets two parsers disagree about what a token says).
fn json_object(bytes: &[u8], part: &'static str) -> Result<Map<String, Value>, JwtError> {
    serde_json::from_slice::<UniqueObject>(bytes)
        .map(|o| o.0)
        .map_err(|e| JwtError::NotJsonObject {
            part,
            reason: e.to_string(),
        })
}

struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom(format!(
                            "member {key:?} appears more than once"
                        )));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

fn check_header(h: &Header) -> Result<(&str, &str), JwtError> {
    let alg = h.alg.as_deref().ok_or(JwtError::MissingAlg)?;
    if !ALLOWED_ALGORITHMS.contains(&alg) {
        return Err(JwtError::UnsupportedAlg {
            alg: alg.to_owned(),
        });
    }
    if let Some(typ) = h.typ.as_deref()
        && typ != "JWT"
        && typ != "JOSE"
    {
        return Err(JwtError::BadTyp {
            typ: typ.to_owned(),
        });
    }
    let kid = match h.kid.as_deref() {
        None | Some("") => return Err(JwtError::MissingKid),
        Some(kid) => kid,
    };
    if let Some(name) = h
        .raw
        .keys()
        .find(|k| !ALLOWED_HEADERS.contains(&k.as_str()))
    {
        return Err(JwtError::ForbiddenHeader { name: name.clone() });
    }
    Ok((alg, kid))
}

fn subject(claims: &Claims) -> Result<SpiffeId, JwtError> {
    let sub = match claims.get("sub") {
        None => return Err(JwtError::MissingSub),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: "sub",
                expected: "a string (a SPIFFE ID)",
            });
        }
    };
    let id = SpiffeId::parse(sub).map_err(|source| JwtError::BadSub {
        sub: sub.clone(),
        source,
    })?;
    if id.is_root() {
        return Err(JwtError::SubWithoutPath { sub: id });
    }
    Ok(id)
}

/// The webpki verifier for `alg`, given that `key` can do it; `Err` names the mismatch.
fn verifier_for(
    key: &PublicKey,
    alg: &str,
    kid: &str,
) -> Result<&'static dyn SignatureVerificationAlgorithm, JwtError> {
    let mismatch = || JwtError::KeyAlgMismatch {
        kid: kid.to_owned(),
        alg: alg.to_owned(),
        key: key_name(key),
    };
    if !key.jws_algorithms().contains(&alg) {
        return Err(mismatch());
    }
    if let PublicKey::Rsa { n, .. } = key {
        let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
        if bits < MIN_RSA_BITS {
            return Err(JwtError::WeakRsaKey {
                kid: kid.to_owned(),
                bits,
            });
        }
    }
    Ok(match alg {
        "RS256" => algs::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => algs::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => algs::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        "PS384" => algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        "PS512" => algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        "ES256" => algs::ECDSA_P256_SHA256,
        "ES384" => algs::ECDSA_P384_SHA384,
        "ES512" => algs::ECDSA_P521_SHA512,
        _ => return Err(mismatch()),
    })
}

fn key_name(key: &PublicKey) -> &'static str {
    match key {
        PublicKey::Ec { curve, .. } => match curve {
            crate::jwk::EcCurve::P256 => "EC P-256",
            crate::jwk::EcCurve::P384 => "EC P-384",
            crate::jwk::EcCurve::P521 => "EC P-521",
        },
        PublicKey::Rsa { .. } => "RSA",
        PublicKey::Ed25519 { .. } => "Ed25519",
    }
}

/// `Err(Some(e))` for a named problem, `Err(None)` when the signature simply does not verify.
fn verify_signature(
    key: &PublicKey,
    alg: &str,
    kid: &str,
    parts: &Parts<'_>,
) -> Result<(), Option<JwtError>> {
    let verifier = verifier_for(key, alg, kid).map_err(Some)?;
    let der_sig;
    let signature: &[u8] = match key {
        PublicKey::Ec { curve, .. } => {
            let n = curve.coordinate_len();
            if parts.signature.len() != 2 * n {
                return Err(Some(JwtError::BadSignatureLength {
                    alg: alg.to_owned(),
                    expected: 2 * n,
                    got: parts.signature.len(),
                }));
            }
            der_sig = ecdsa_raw_to_der(&parts.signature);
            &der_sig
        }
        _ => &parts.signature,
    };
    verifier
        .verify_signature(
            &key.subject_public_key(),
            parts.signing_input.as_bytes(),
            signature,
        )
        .map_err(|_| None)
}

/// `r || s` (each half the length) as the DER `ECDSA-Sig-Value` webpki verifies.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    der::encode(
        der::SEQUENCE,
        &[der::encode_uint(r), der::encode_uint(s)].concat(),
    )
}

/// A DER `ECDSA-Sig-Value` as the raw `r || s` a JWS carries, each half `coordinate_len`
/// bytes (32 for P-256, 48 for P-384, 66 for P-521). `None` if it is not such a DER value or an
/// integer does not fit.
pub fn ecdsa_der_to_raw(der_sig: &[u8], coordinate_len: usize) -> Option<Vec<u8>> {
    let (body, rest) = der::expect(der_sig, der::SEQUENCE)?;
    let (r, after_r) = der::expect(body, der::INTEGER)?;
    let (s, after_s) = der::expect(after_r, der::INTEGER)?;
    if !rest.is_empty() || !after_s.is_empty() {
        return None;
    }
    let mut raw = vec![0u8; 2 * coordinate_len];
    for (int, half) in [r, s].into_iter().zip(raw.chunks_mut(coordinate_len)) {
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        if int.len() > coordinate_len {
            return None;
        }
        half[coordinate_len - int.len()..].copy_from_slice(int);
    }
    Some(raw)
}

fn check_audience(claims: &Claims, expected: &str) -> Result<(), JwtError> {
    let bad = JwtError::BadClaim {
        claim: "aud",
        expected: "a non-empty string or a non-empty array of strings",
    };
    let got: Vec<String> = match claims.get("aud") {
        None => return Err(JwtError::MissingAud),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(bad)?,
        Some(_) => return Err(bad),
    };
    if got.iter().any(|a| a == expected) {
        Ok(())
    } else {
        Err(JwtError::AudienceMismatch {
            expected: expected.to_owned(),
            got,
        })
    }
}

fn numeric_date(claims: &Claims, claim: &'static str) -> Result<Option<u64>, JwtError> {
    let bad = JwtError::BadClaim {
        claim,
        expected: "a non-negative number of seconds since the Unix epoch (NumericDate)",
    };
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                // RFC 7519 allows fractions; drop them as go-jose does.
                Ok(Some(f.trunc() as u64))
            }
            _ => Err(bad),
        },
        Some(_) => Err(bad),
    }
}

fn check_times(claims: &Claims, now: u64) -> Result<(), JwtError> {
    let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingExp)?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    if now >= exp {
        return Err(JwtError::Expired { exp, now });
    }
    let horizon = now.saturating_add(FUTURE_LEEWAY_SECS);
    if let Some(nbf) = nbf
        && nbf > horizon
    {
        return Err(JwtError::NotYetValid { nbf, now });
    }
    if let Some(iat) = iat
        && iat > horizon
    {
        return Err(JwtError::IssuedInFuture { iat, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der_integers() {
        // High bit set in r: a sign byte is added; leading zeros in s are dropped.
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0, 31));
        raw.push(0x05);
        let der_sig = ecdsa_raw_to_der(&raw);
        let (body, rest) = der::expect(&der_sig, der::SEQUENCE).unwrap();
        assert!(rest.is_empty());
        let (r, rest) = der::expect(body, der::INTEGER).unwrap();
        let (s, rest) = der::expect(rest, der::INTEGER).unwrap();
        assert!(rest.is_empty());
        assert_eq!(r.len(), 33);
        assert_eq!(r[0], 0);
        assert_eq!(s, &[0x05]);
    }

    #[test]
    fn der_and_raw_ecdsa_forms_round_trip() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0xff;
        raw[40] = 0x01;
        raw[63] = 0x7f;
        let der_sig = ecdsa_raw_to_der(&raw);
        assert_eq!(ecdsa_der_to_raw(&der_sig, 32), Some(raw.clone()));
        assert_eq!(ecdsa_der_to_raw(&der_sig, 16), None, "r does not fit");
        assert_eq!(ecdsa_der_to_raw(&raw, 32), None, "not DER");
    }

    #[test]
    fn numeric_dates_accept_integers_and_fractions_only() {
        let claims: Claims =
            serde_json::from_str(r#"{"a": 10, "b": 10.9, "c": -1, "d": "10", "e": 1e300}"#)
                .unwrap();
        assert_eq!(numeric_date(&claims, "a"), Ok(Some(10)));
        assert_eq!(numeric_date(&claims, "b"), Ok(Some(10)));
        assert!(numeric_date(&claims, "c").is_err());
        assert!(numeric_date(&claims, "d").is_err());
        assert!(numeric_date(&claims, "e").is_err());
        assert_eq!(numeric_date(&claims, "missing"), Ok(None));
    }

    #[test]
    fn duplicate_members_are_refused() {
        let e = json_object(br#"{"alg":"ES256","alg":"none"}"#, "header").unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        assert!(json_object(b"[1]", "header").is_err());
        assert!(json_object(br#"{"a":{"b":1}}"#, "claims").is_ok());
    }
}
