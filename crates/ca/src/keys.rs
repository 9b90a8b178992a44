//! Key types, key generation, and private-key import/export.
//!
//! Keys live in aws-lc-rs key objects (freed with cleansing by AWS-LC); every serialised copy of
//! the private key we hand out is a [`Zeroizing`] buffer. `Debug` shows the key type and a
//! fingerprint of the public key, never private material.
//!
//! Import accepts the PEM forms openssl and cert-manager write: PKCS#8 `PRIVATE KEY`,
//! SEC1 `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE KEY`. Export is always PKCS#8.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use sha2::{Digest, Sha256};
use sigil_spiffe::der::{self, oid};
use zeroize::Zeroizing;

use crate::error::{CaError, KeyProblem};

/// The key algorithms Sigil generates and accepts for CA keys.
///
/// Names follow SPIRE's `ca_key_type` (`ec-p256`, `ec-p384`, `rsa-2048`, `rsa-4096`), plus
/// `rsa-3072` and `ed25519`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (SPIRE's default).
    #[default]
    EcP256,
    /// ECDSA on P-384 with SHA-384.
    EcP384,
    /// RSA 2048 bits, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
    /// RSA 3072 bits, PKCS#1 v1.5 signatures with SHA-256.
    Rsa3072,
    /// RSA 4096 bits, PKCS#1 v1.5 signatures with SHA-256.
    Rsa4096,
    /// Ed25519.
    Ed25519,
}

/// The accepted key type names, for error messages.
pub const VALID_KEY_TYPES: &str = "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519";

impl KeyType {
    /// Every key type, in the order of [`VALID_KEY_TYPES`].
    pub const ALL: [KeyType; 6] = [
        KeyType::EcP256,
        KeyType::EcP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::Ed25519,
    ];

    /// The configuration name, e.g. `ec-p256`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcP256 => "ec-p256",
            KeyType::EcP384 => "ec-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// The signature algorithm certificates signed by this key use.
    pub(crate) fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    fn rsa_from_bits(bits: usize) -> Option<KeyType> {
        match bits {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| CaError::UnknownKeyType {
                given: s.to_owned(),
                valid: VALID_KEY_TYPES,
            })
    }
}

impl serde::Serialize for KeyType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for KeyType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A human name for an algorithm or curve OID (DER content bytes), for error messages.
pub(crate) fn oid_name(oid: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (oid::P521, "EC curve secp521r1"),
        (&[0x2b, 0x81, 0x04, 0x00, 0x0a], "EC curve secp256k1"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
            "RSASSA-PSS",
        ),
        (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01], "DSA"),
        (&[0x2b, 0x65, 0x6e], "X25519"),
        (&[0x2b, 0x65, 0x71], "Ed448"),
    ];
    let dotted = der::oid_to_string(oid);
    match known.iter().find(|(k, _)| *k == oid) {
        Some((_, name)) => format!("{name} ({dotted})"),
        None => format!("OID {dotted}"),
    }
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key held in memory.
pub struct PrivateKey {
    key_type: KeyType,
    inner: Inner,
}

fn corrupt(e: impl fmt::Display) -> KeyProblem {
    KeyProblem::Corrupt(e.to_string())
}

fn crypto(e: impl fmt::Debug) -> CaError {
    CaError::Crypto(format!("{e:?}"))
}

impl PrivateKey {
    /// Generates a fresh key of the given type.
    pub fn generate(key_type: KeyType) -> Result<Self, CaError> {
        let inner = match key_type {
            KeyType::EcP256 => Inner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(crypto)?,
            ),
            KeyType::EcP384 => Inner::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).map_err(crypto)?,
            ),
            KeyType::Rsa2048 => Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(crypto)?),
            KeyType::Rsa3072 => Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa3072).map_err(crypto)?),
            KeyType::Rsa4096 => Inner::Rsa(RsaKeyPair::generate(KeySize::Rsa4096).map_err(crypto)?),
            KeyType::Ed25519 => Inner::Ed25519(Ed25519KeyPair::generate().map_err(crypto)?),
        };
        Ok(PrivateKey { key_type, inner })
    }

    /// Parses exactly one unencrypted private key from PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyProblem> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(KeyProblem::Encrypted);
        }
        let mut keys = Vec::new();
        for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            let (kind, der) = item.map_err(|e| KeyProblem::Corrupt(format!("PEM: {e}")))?;
            let der = Zeroizing::new(der);
            if matches!(
                kind,
                SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey
            ) {
                keys.push((kind, der));
            }
        }
        match keys.len() {
            1 => {}
            0 => {
                let labels: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
                    .filter_map(|l| l.strip_suffix("-----"))
                    .collect();
                return Err(if labels.is_empty() {
                    KeyProblem::NotPem
                } else {
                    KeyProblem::NoPrivateKey {
                        found: labels.join(", "),
                    }
                });
            }
            n => return Err(KeyProblem::MultipleKeys(n)),
        }
        let (kind, der) = keys.remove(0);
        match kind {
            SectionKind::EcPrivateKey => Self::from_sec1_der(&der),
            SectionKind::RsaPrivateKey => Self::from_pkcs1_der(&der),
            _ => Self::from_pkcs8_der(&der),
        }
    }

    /// Parses an unencrypted PKCS#8 `PrivateKeyInfo` (RFC 5208/5958).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyProblem> {
        let bad = || KeyProblem::Corrupt("not a PKCS#8 PrivateKeyInfo structure".into());
        let (seq, trailing) = der::expect(der, der::SEQUENCE).ok_or_else(bad)?;
        if !trailing.is_empty() {
            return Err(KeyProblem::Corrupt("trailing bytes after the key".into()));
        }
        let (_version, rest) = der::expect(seq, der::INTEGER).ok_or_else(bad)?;
        let (alg_id, _) = der::expect(rest, der::SEQUENCE).ok_or_else(bad)?;
        let (alg, params) = der::expect(alg_id, der::OID).ok_or_else(bad)?;
        match alg {
            oid::RSA_ENCRYPTION => Self::rsa(RsaKeyPair::from_pkcs8(der).map_err(corrupt)?),
            oid::ED25519 => Ok(PrivateKey {
                key_type: KeyType::Ed25519,
                inner: Inner::Ed25519(
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(corrupt)?,
                ),
            }),
            oid::EC_PUBLIC_KEY => {
                let (curve, _) = der::expect(params, der::OID)
                    .ok_or_else(|| KeyProblem::Corrupt("EC key without a named curve".into()))?;
                let (key_type, alg) = ec_curve(curve)?;
                let kp = EcdsaKeyPair::from_pkcs8(alg, der).map_err(corrupt)?;
                Ok(PrivateKey {
                    key_type,
                    inner: Inner::Ecdsa(kp),
                })
            }
            other => Err(KeyProblem::UnsupportedAlgorithm(oid_name(other))),
        }
    }

    /// Parses a SEC1 `ECPrivateKey` (RFC 5915), as in `EC PRIVATE KEY` PEM blocks.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyProblem> {
        let bad = || KeyProblem::Corrupt("not a SEC1 ECPrivateKey structure".into());
        let (seq, _) = der::expect(der, der::SEQUENCE).ok_or_else(bad)?;
        let (_version, rest) = der::expect(seq, der::INTEGER).ok_or_else(bad)?;
        let (scalar, rest) = der::expect(rest, der::OCTET_STRING).ok_or_else(bad)?;
        let curve = match der::expect(rest, der::CONTEXT_0) {
            Some((params, _)) => der::expect(params, der::OID).ok_or_else(bad)?.0,
            // Without parameters the curve follows from the scalar's length.
            None => match scalar.len() {
                32 => oid::P256,
                48 => oid::P384,
                n => {
                    return Err(KeyProblem::UnsupportedAlgorithm(format!(
                        "EC key with a {n}-byte private scalar"
                    )));
                }
            },
        };
        let (key_type, alg) = ec_curve(curve)?;
        let kp = EcdsaKeyPair::from_private_key_der(alg, der).map_err(corrupt)?;
        Ok(PrivateKey {
            key_type,
            inner: Inner::Ecdsa(kp),
        })
    }

    /// Parses a PKCS#1 `RSAPrivateKey` (RFC 8017), as in `RSA PRIVATE KEY` PEM blocks.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyProblem> {
        Self::rsa(RsaKeyPair::from_der(der).map_err(corrupt)?)
    }

    fn rsa(kp: RsaKeyPair) -> Result<Self, KeyProblem> {
        let bits = kp.public_modulus_len() * 8;
        let key_type = KeyType::rsa_from_bits(bits)
            .ok_or_else(|| KeyProblem::UnsupportedAlgorithm(format!("RSA {bits}-bit")))?;
        Ok(PrivateKey {
            key_type,
            inner: Inner::Rsa(kp),
        })
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The public key as carried in a SubjectPublicKeyInfo's BIT STRING (EC point, PKCS#1
    /// `RSAPublicKey`, or the 32 Ed25519 bytes).
    pub fn public_key_raw(&self) -> &[u8] {
        match &self.inner {
            Inner::Ecdsa(kp) => kp.public_key().as_ref(),
            Inner::Ed25519(kp) => kp.public_key().as_ref(),
            Inner::Rsa(kp) => kp.public_key().as_ref(),
        }
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&crate::signer::RcgenKey(self))
    }

    /// Serialises the private key as PKCS#8 DER.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, CaError> {
        let der = match &self.inner {
            Inner::Ecdsa(kp) => Zeroizing::new(kp.to_pkcs8v1().map_err(crypto)?.as_ref().to_vec()),
            Inner::Ed25519(kp) => {
                Zeroizing::new(kp.to_pkcs8v1().map_err(crypto)?.as_ref().to_vec())
            }
            Inner::Rsa(kp) => Zeroizing::new(AsDer::as_der(kp).map_err(crypto)?.as_ref().to_vec()),
        };
        Ok(der)
    }

    /// Serialises the private key as a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, CaError> {
        // `encode_block` writes into the string it returns and nowhere else (see its docs), so
        // the zeroizing wrapper holds the only copy of the encoding.
        let der = self.to_pkcs8_der()?;
        Ok(Zeroizing::new(sigil_spiffe::pem::encode_block(
            "PRIVATE KEY",
            &der,
        )))
    }

    /// Serialises the private key in its algorithm's traditional PEM form, as cert-manager's
    /// `PKCS1` encoding does: `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1 with the
    /// curve). Ed25519 has no such form and is written as PKCS#8.
    pub fn to_pkcs1_pem(&self) -> Result<Zeroizing<String>, CaError> {
        match &self.inner {
            Inner::Ecdsa(kp) => {
                let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
                    AsDer::as_der(&kp.private_key()).map_err(crypto)?;
                Ok(Zeroizing::new(sigil_spiffe::pem::encode_block(
                    "EC PRIVATE KEY",
                    der.as_ref(),
                )))
            }
            Inner::Rsa(_) => {
                // PKCS#8's privateKey OCTET STRING holds the PKCS#1 RSAPrivateKey.
                let pkcs8 = self.to_pkcs8_der()?;
                let bad = || CaError::Crypto("PKCS#8 encoding of an RSA key is malformed".into());
                let (seq, _) = der::expect(&pkcs8, der::SEQUENCE).ok_or_else(bad)?;
                let (_version, rest) = der::expect(seq, der::INTEGER).ok_or_else(bad)?;
                let (_alg, rest) = der::expect(rest, der::SEQUENCE).ok_or_else(bad)?;
                let (inner, _) = der::expect(rest, der::OCTET_STRING).ok_or_else(bad)?;
                Ok(Zeroizing::new(sigil_spiffe::pem::encode_block(
                    "RSA PRIVATE KEY",
                    inner,
                )))
            }
            Inner::Ed25519(_) => self.to_pkcs8_pem(),
        }
    }

    /// Signs `message` with this key's signature algorithm (see [`KeyType`]).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        match &self.inner {
            Inner::Ecdsa(kp) => Ok(kp
                .sign(&SystemRandom::new(), message)
                .map_err(crypto)?
                .as_ref()
                .to_vec()),
            Inner::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Inner::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(crypto)?;
                Ok(sig)
            }
        }
    }

    /// The first 8 bytes of SHA-256 over the public key, hex: safe to log.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.public_key_raw())[..8])
    }
}

fn ec_curve(curve: &[u8]) -> Result<(KeyType, &'static EcdsaSigningAlgorithm), KeyProblem> {
    match curve {
        oid::P256 => Ok((KeyType::EcP256, &ECDSA_P256_SHA256_ASN1_SIGNING)),
        oid::P384 => Ok((KeyType::EcP384, &ECDSA_P384_SHA384_ASN1_SIGNING)),
        other => Err(KeyProblem::UnsupportedAlgorithm(oid_name(other))),
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .field("public_key_sha256", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
