//! Public keys as they appear in SPIFFE bundles: JWK parameters (RFC 7518 §6) and
//! SubjectPublicKeyInfo DER (RFC 5280), with conversion both ways.
//!
//! Supported: EC P-256/P-384/P-521 (uncompressed points), RSA, Ed25519 (`OKP`).
//! The DER reading and writing here covers exactly these SPKI shapes and nothing more.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

/// base64url without padding on output; padding tolerated on input (RFC 7515 §2 says none).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// OID contents (DER without tag and length).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

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
            EcCurve::P256 => OID_P256,
            EcCurve::P384 => OID_P384,
            EcCurve::P521 => OID_P521,
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
                let body = [der_uint(n), der_uint(e)].concat();
                tlv(TAG_SEQUENCE, &body)
            }
            PublicKey::Ed25519 { x } => x.clone(),
        }
    }

    /// Encodes the key as a DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let alg = match self {
            PublicKey::Ec { curve, .. } => {
                [tlv(TAG_OID, OID_EC_PUBLIC_KEY), tlv(TAG_OID, curve.oid())].concat()
            }
            PublicKey::Rsa { .. } => {
                [tlv(TAG_OID, OID_RSA_ENCRYPTION), tlv(TAG_NULL, &[])].concat()
            }
            PublicKey::Ed25519 { .. } => tlv(TAG_OID, OID_ED25519),
        };
        let mut bits = vec![0u8]; // no unused bits
        bits.extend_from_slice(&self.subject_public_key());
        let body = [tlv(TAG_SEQUENCE, &alg), tlv(TAG_BIT_STRING, &bits)].concat();
        tlv(TAG_SEQUENCE, &body)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, KeyError> {
        let (outer, rest) = read_tlv(spki, TAG_SEQUENCE, "SubjectPublicKeyInfo")?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki("trailing data"));
        }
        let (alg, rest) = read_tlv(outer, TAG_SEQUENCE, "AlgorithmIdentifier")?;
        let (bits, rest) = read_tlv(rest, TAG_BIT_STRING, "subjectPublicKey")?;
        if !rest.is_empty() {
            return Err(KeyError::BadSpki("trailing data in SubjectPublicKeyInfo"));
        }
        let key = match bits.split_first() {
            Some((0, key)) => key,
            _ => return Err(KeyError::BadSpki("subjectPublicKey has unused bits")),
        };
        let (oid, params) = read_tlv(alg, TAG_OID, "algorithm OID")?;
        match oid {
            OID_EC_PUBLIC_KEY => {
                let (curve_oid, rest) = read_tlv(params, TAG_OID, "EC curve OID")?;
                if !rest.is_empty() {
                    return Err(KeyError::BadSpki("trailing data after the EC curve OID"));
                }
                let curve = EcCurve::from_oid(curve_oid)
                    .ok_or_else(|| KeyError::UnsupportedCurve(oid_string(curve_oid)))?;
                ec_from_point(curve, key)
            }
            OID_RSA_ENCRYPTION => {
                // Parameters must be NULL (RFC 3279 §2.3.1); tolerate their absence.
                if !params.is_empty() && params != [TAG_NULL, 0] {
                    return Err(KeyError::BadRsaKey("algorithm parameters are not NULL"));
                }
                rsa_from_der(key)
            }
            OID_ED25519 => {
                if !params.is_empty() {
                    return Err(KeyError::BadSpki("Ed25519 algorithm has parameters"));
                }
                if key.len() != 32 {
                    return Err(KeyError::BadEd25519Len(key.len()));
                }
                Ok(PublicKey::Ed25519 { x: key.to_vec() })
            }
            other => Err(KeyError::UnsupportedAlgorithm(oid_string(other))),
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
        read_tlv(der, TAG_SEQUENCE, "RSAPublicKey").map_err(|_| KeyError::BadRsaKey("not DER"))?;
    if !rest.is_empty() {
        return Err(KeyError::BadRsaKey("trailing data"));
    }
    let (n, rest) =
        read_tlv(seq, TAG_INTEGER, "modulus").map_err(|_| KeyError::BadRsaKey("bad modulus"))?;
    let (e, rest) =
        read_tlv(rest, TAG_INTEGER, "exponent").map_err(|_| KeyError::BadRsaKey("bad exponent"))?;
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

/// Dotted form of an OID's contents, for messages.
pub(crate) fn oid_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Reads one DER TLV with the expected tag; returns (contents, rest).
fn read_tlv<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), KeyError> {
    let bad = || KeyError::BadSpki(what);
    let (&t, rest) = input.split_first().ok_or_else(bad)?;
    if t != tag {
        return Err(bad());
    }
    let (&l0, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let (len_bytes, r) = rest.split_at(n);
        rest = r;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        // DER: minimal length encoding.
        if len < 0x80 || len_bytes[0] == 0 {
            return Err(bad());
        }
        len
    };
    if rest.len() < len {
        return Err(bad());
    }
    Ok(rest.split_at(len))
}

/// Encodes one DER TLV.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// DER INTEGER of an unsigned big-endian value.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let v = strip_zeros(v);
    let mut body = Vec::with_capacity(v.len() + 1);
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(&v);
    tlv(TAG_INTEGER, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let data = vec![7u8; len];
            let enc = tlv(TAG_SEQUENCE, &data);
            let (body, rest) = read_tlv(&enc, TAG_SEQUENCE, "t").unwrap();
            assert_eq!(body, &data[..]);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn non_minimal_length_is_rejected() {
        // Length 5 written in long form.
        let enc = [TAG_SEQUENCE, 0x81, 0x05, 1, 2, 3, 4, 5];
        assert_eq!(
            read_tlv(&enc, TAG_SEQUENCE, "t"),
            Err(KeyError::BadSpki("t"))
        );
    }

    #[test]
    fn der_uint_adds_sign_byte() {
        assert_eq!(der_uint(&[0x80]), vec![TAG_INTEGER, 2, 0, 0x80]);
        assert_eq!(
            der_uint(&[0x00, 0x01, 0x00, 0x01]),
            vec![TAG_INTEGER, 3, 1, 0, 1]
        );
    }

    #[test]
    fn oid_strings() {
        assert_eq!(oid_string(OID_P256), "1.2.840.10045.3.1.7");
        assert_eq!(oid_string(OID_ED25519), "1.3.101.112");
    }
}
