//! Public keys as they appear in SPIFFE bundles: JWK parameters (RFC 7518 §6) and
//! SubjectPublicKeyInfo DER (RFC 5280), with conversion both ways.
//!
//! Supported: EC P-256/P-384/P-521 (uncompressed points), RSA, Ed25519 (`OKP`).
//! The DER work is done by [`crate::der`], which covers exactly these SPKI shapes.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use crate::der::{self, BIT_STRING, INTEGER, NULL, OID, SEQUENCE, oid_to_string};

/// base64url without padding on output; padding tolerated on input (RFC 7515 §2 says none).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A NIST curve usable in a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    P256,
    P384,
    P521,
}

impl EcCurve {
    /// The JWK `crv` name.
    pub fn jwk_name(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }

    /// Length in bytes of each coordinate (and of the JWK `x`/`y` values).
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }

    fn oid(self) -> &'static [u8] {
        match self {
            EcCurve::P256 => der::oid::P256,
            EcCurve::P384 => der::oid::P384,
            EcCurve::P521 => der::oid::P521,
        }
    }

    fn from_oid(oid: &[u8]) -> Option<Self> {
        [EcCurve::P256, EcCurve::P384, EcCurve::P521]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    fn from_jwk_name(name: &str) -> Option<Self> {
        [EcCurve::P256, EcCurve::P384, EcCurve::P521]
            .into_iter()
            .find(|c| c.jwk_name() == name)
    }
}

/// Why a public key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("SubjectPublicKeyInfo is not valid DER ({0})")]
    BadSpki(&'static str),
    #[error(
        "unsupported public key algorithm (OID {0}); supported: EC P-256/P-384/P-521, RSA, Ed25519"
    )]
    UnsupportedAlgorithm(String),
    #[error("unsupported EC curve (OID {0}); supported: P-256, P-384, P-521")]
    UnsupportedCurve(String),
    #[error(
        "EC point must be uncompressed (0x04 || x || y, {expected} bytes for {curve}); got {got} \
         bytes starting with {first:#04x}"
    )]
    BadEcPoint {
        curve: &'static str,
        expected: usize,
        got: usize,
        first: u8,
    },
    #[error("RSA public key is malformed ({0})")]
    BadRsaKey(&'static str),
    #[error("Ed25519 public key must be 32 bytes, got {0}")]
    BadEd25519Len(usize),
    #[error("JWK parameter {0:?} is missing or not a string")]
    MissingParam(&'static str),
    #[error("JWK parameter {param:?} is not base64url: {reason}")]
    BadBase64 { param: &'static str, reason: String },
    #[error("JWK parameter {param:?} must be {expected} bytes for {curve}, got {got}")]
    BadLength {
        param: &'static str,
        curve: &'static str,
        expected: usize,
        got: usize,
    },
}

/// A public key of a bundle authority.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// An EC key; `x` and `y` are big-endian and exactly `curve.coordinate_len()` bytes.
    Ec {
        curve: EcCurve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// An RSA key; `n` and `e` are big-endian unsigned without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An Ed25519 key (JWK `kty: OKP`, `crv: Ed25519`), 32 bytes.
    Ed25519 { x: Vec<u8> },
}

impl PublicKey {
    /// The JWK `kty`.
    pub fn kty(&self) -> &'static str {
        match self {
            PublicKey::Ec { .. } => "EC",
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::Ed25519 { .. } => "OKP",
        }
    }

    /// The JWS `alg` values this key can verify. JWT-SVID lists RS/PS/ES only; `EdDSA` is
    /// offered for Ed25519 keys so that callers can decide.
    pub fn jws_algorithms(&self) -> &'static [&'static str] {
        match self {
            PublicKey::Ec {
                curve: EcCurve::P256,
                ..
            } => &["ES256"],
            PublicKey::Ec {
                curve: EcCurve::P384,
                ..
            } => &["ES384"],
            PublicKey::Ec {
                curve: EcCurve::P521,
                ..
            } => &["ES512"],
            PublicKey::Rsa { .. } => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
            PublicKey::Ed25519 { .. } => &["EdDSA"],
        }
    }

    /// The contents of the SPKI `subjectPublicKey` BIT STRING: the uncompressed EC point, the
    /// DER `RSAPublicKey`, or the raw Ed25519 key — the form signature verifiers take.
    pub fn subject_public_key(&self) -> Vec<u8> {
        match self {
            PublicKey::Ec { x, y, .. } => {
                let mut p = Vec::with_capacity(1 + x.len() + y.len());
                p.push(0x04);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                p
            }
            PublicKey::Rsa { n, e } => {
                let body = [der::encode_uint(n), der::encode_uint(e)].concat();
                der::encode(SEQUENCE, &body)
            }
            PublicKey::Ed25519 { x } => x.clone(),
        }
    }

    /// Encodes the key as a DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let alg = match self {
            PublicKey::Ec { curve, .. } => [
                der::encode(OID, der::oid::EC_PUBLIC_KEY),
                der::encode(OID, curve.oid()),
            ]
            .concat(),
            PublicKey::Rsa { .. } => [
                der::encode(OID, der::oid::RSA_ENCRYPTION),
                der::encode(NULL, &[]),
            ]
            .concat(),
            PublicKey::Ed25519 { .. } => der::encode(OID, der::oid::ED25519),
        };
        let mut bits = vec![0u8]; // no unused bits
        bits.extend_from_slice(&self.subject_public_key());
        let body = [der::encode(SEQUENCE, &alg), der::encode(BIT_STRING, &bits)].concat();
        der::encode(SEQUENCE, &body)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, KeyError> {
        let (outer, rest) = read_tlv(spki, SEQUENCE, "SubjectPublicKeyInfo")?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki("trailing data"));
        }
        let (alg, rest) = read_tlv(outer, SEQUENCE, "AlgorithmIdentifier")?;
        let (bits, rest) = read_tlv(rest, BIT_STRING, "subjectPublicKey")?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki("trailing data in SubjectPublicKeyInfo"));
        }
        let key = match bits.split_first() {
            Some((0, key)) => key,
            _ => return Err(KeyError::BadSpki("subjectPublicKey has unused bits")),
        };
        let (oid, params) = read_tlv(alg, OID, "algorithm OID")?;
        match oid {
            der::oid::EC_PUBLIC_KEY => {
                let (curve_oid, rest) = read_tlv(params, OID, "EC curve OID")?;
                if !rest.is_empty() {
                    return Err(KeyError::BadSpki("trailing data after the EC curve OID"));
                }
                let curve = EcCurve::from_oid(curve_oid)
                    .ok_or_else(|| KeyError::UnsupportedCurve(oid_to_string(curve_oid)))?;
                ec_from_point(curve, key)
            }
            der::oid::RSA_ENCRYPTION => {
                // Parameters must be NULL (RFC 3279 §2.3.1); tolerate their absence.
                if !params.is_empty() && params != [NULL, 0] {
                    return Err(KeyError::BadRsaKey("algorithm parameters are not NULL"));
                }
                rsa_from_der(key)
            }
            der::oid::ED25519 => {
                if !params.is_empty() {
                    return Err(KeyError::BadSpki("Ed25519 algorithm has parameters"));
                }
                if key.len() != 32 {
                    return Err(KeyError::BadEd25519Len(key.len()));
                }
                Ok(PublicKey::Ed25519 { x: key.to_vec() })
            }
            other => Err(KeyError::UnsupportedAlgorithm(oid_to_string(other))),
        }
    }

    /// Adds this key's JWK parameters (`kty` and `crv`/`x`/`y`, `n`/`e`, or `crv`/`x`).
    pub fn write_jwk_params(&self, obj: &mut Map<String, Value>) {
        obj.insert("kty".into(), self.kty().into());
        match self {
            PublicKey::Ec { curve, x, y } => {
                obj.insert("crv".into(), curve.jwk_name().into());
                obj.insert("x".into(), B64URL.encode(x).into());
                obj.insert("y".into(), B64URL.encode(y).into());
            }
            PublicKey::Rsa { n, e } => {
                obj.insert("n".into(), B64URL.encode(n).into());
                obj.insert("e".into(), B64URL.encode(e).into());
            }
            PublicKey::Ed25519 { x } => {
                obj.insert("crv".into(), "Ed25519".into());
                obj.insert("x".into(), B64URL.encode(x).into());
            }
        }
    }

    /// Reads a key from JWK parameters. `Ok(None)` means the key type (or curve) is unknown,
    /// which SPIFFE bundles must ignore rather than reject; a known type with a missing
    /// parameter is [`KeyError::MissingParam`].
    pub fn from_jwk(obj: &Map<String, Value>) -> Result<Option<Self>, KeyError> {
        let str_param = |name: &'static str| obj.get(name).and_then(Value::as_str);
        let bytes_param = |name: &'static str| -> Result<Vec<u8>, KeyError> {
            let s = str_param(name).ok_or(KeyError::MissingParam(name))?;
            B64URL.decode(s).map_err(|e| KeyError::BadBase64 {
                param: name,
                reason: e.to_string(),
            })
        };
        match str_param("kty") {
            Some("EC") => {
                let crv = str_param("crv").ok_or(KeyError::MissingParam("crv"))?;
                let Some(curve) = EcCurve::from_jwk_name(crv) else {
                    return Ok(None);
                };
                let x = bytes_param("x")?;
                let y = bytes_param("y")?;
                for (param, v) in [("x", &x), ("y", &y)] {
                    if v.len() != curve.coordinate_len() {
                        return Err(KeyError::BadLength {
                            param,
                            curve: curve.jwk_name(),
                            expected: curve.coordinate_len(),
                            got: v.len(),
                        });
                    }
                }
                Ok(Some(PublicKey::Ec { curve, x, y }))
            }
            Some("RSA") => {
                let n = strip_zeros(&bytes_param("n")?);
                let e = strip_zeros(&bytes_param("e")?);
                if n.is_empty() || e.is_empty() {
                    return Err(KeyError::BadRsaKey("modulus or exponent is zero"));
                }
                Ok(Some(PublicKey::Rsa { n, e }))
            }
            Some("OKP") => {
                if str_param("crv").ok_or(KeyError::MissingParam("crv"))? != "Ed25519" {
                    return Ok(None);
                }
                let x = bytes_param("x")?;
                if x.len() != 32 {
                    return Err(KeyError::BadEd25519Len(x.len()));
                }
                Ok(Some(PublicKey::Ed25519 { x }))
            }
            _ => Ok(None),
        }
    }
}

fn ec_from_point(curve: EcCurve, point: &[u8]) -> Result<PublicKey, KeyError> {
    let n = curve.coordinate_len();
    match point.split_first() {
        Some((0x04, xy)) if xy.len() == 2 * n => {
            let (x, y) = xy.split_at(n);
            Ok(PublicKey::Ec {
                curve,
                x: x.to_vec(),
                y: y.to_vec(),
            })
        }
        _ => Err(KeyError::BadEcPoint {
            curve: curve.jwk_name(),
            expected: 1 + 2 * n,
            got: point.len(),
            first: point.first().copied().unwrap_or(0),
        }),
    }
}

fn rsa_from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
    let (seq, rest) =
        read_tlv(der, SEQUENCE, "RSAPublicKey").map_err(|_| KeyError::BadRsaKey("not DER"))?;
    if !rest.is_empty() {
        return Err(KeyError::BadRsaKey("trailing data"));
    }
    let (n, rest) =
        read_tlv(seq, INTEGER, "modulus").map_err(|_| KeyError::BadRsaKey("bad modulus"))?;
    let (e, rest) =
        read_tlv(rest, INTEGER, "exponent").map_err(|_| KeyError::BadRsaKey("bad exponent"))?;
    if !rest.is_empty() {
        return Err(KeyError::BadRsaKey("trailing data in RSAPublicKey"));
    }
    for v in [n, e] {
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(KeyError::BadRsaKey("negative integer"));
        }
    }
    let (n, e) = (strip_zeros(n), strip_zeros(e));
    if n.is_empty() || e.is_empty() {
        return Err(KeyError::BadRsaKey("modulus or exponent is zero"));
    }
    Ok(PublicKey::Rsa { n, e })
}

fn strip_zeros(v: &[u8]) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v[first..].to_vec()
}

/// Reads one DER element with the expected tag; returns (contents, rest).
fn read_tlv<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), KeyError> {
    der::expect(input, tag).ok_or(KeyError::BadSpki(what))
}
