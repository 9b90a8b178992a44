//! Certificate inspection shared by the signing and loading code: validity, CA bits, key
//! identifiers, issuer/signature checks, and the policy for subject public keys we certify.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, VerificationAlgorithm,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::CaError;
use crate::keys::oid_name;
use crate::signer::Signer;

/// Parses one DER certificate, rejecting trailing bytes.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `(notBefore, notAfter)`.
pub(crate) fn validity(cert: &X509Certificate<'_>) -> (OffsetDateTime, OffsetDateTime) {
    let v = cert.validity();
    (v.not_before.to_datetime(), v.not_after.to_datetime())
}

/// True when basicConstraints says CA:TRUE.
pub(crate) fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// True when keyUsage is absent (any use allowed, RFC 5280) or includes keyCertSign.
pub(crate) fn may_sign_certs(cert: &X509Certificate<'_>) -> bool {
    match cert.key_usage() {
        Ok(Some(ku)) => ku.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The subject key identifier, or the RFC 7093 method-1 identifier (truncated SHA-256 of the
/// SubjectPublicKeyInfo) when the extension is absent.
pub(crate) fn key_id(cert: &X509Certificate<'_>) -> Vec<u8> {
    for ext in cert.iter_extensions() {
        if let x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ki) =
            ext.parsed_extension()
        {
            return ki.0.to_vec();
        }
    }
    Sha256::digest(cert.public_key().raw)[..20].to_vec()
}

/// Checks that `child` names `issuer` as its issuer and carries a valid signature by it.
pub(crate) fn check_issued_by(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    if child.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(format!(
            "issuer name \"{}\" differs from the subject \"{}\"",
            child.issuer(),
            issuer.subject()
        ));
    }
    child
        .verify_signature(Some(issuer.public_key()))
        .map_err(|e| format!("signature does not verify: {e}"))
}

/// True when `cert` carries the public key of `signer`.
pub(crate) fn key_matches(cert: &X509Certificate<'_>, signer: &dyn Signer) -> bool {
    cert.public_key().subject_public_key.data.as_ref() == signer.public_key_raw()
        && spki_algorithm_matches(cert, signer)
}

fn spki_algorithm_matches(cert: &X509Certificate<'_>, signer: &dyn Signer) -> bool {
    use crate::keys::KeyType::*;
    let alg = &cert.public_key().algorithm;
    let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
    match signer.key_type() {
        EcP256 => alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(OID_EC_P256),
        EcP384 => alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(OID_NIST_EC_P384),
        Rsa2048 | Rsa3072 | Rsa4096 => alg.algorithm == OID_PKCS1_RSAENCRYPTION,
        Ed25519 => alg.algorithm == OID_SIG_ED25519,
    }
}

/// A subject public key that passed [`SubjectKey::from_spki_der`]'s policy.
#[derive(Debug, Clone)]
pub(crate) struct SubjectKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

/// Smallest RSA modulus we certify.
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus we certify (what verifiers such as webpki accept).
pub(crate) const MAX_RSA_BITS: usize = 8192;

impl SubjectKey {
    /// Accepts EC P-256/P-384 (uncompressed points on the curve), RSA 2048–8192 bits, and
    /// Ed25519. Everything else is refused with a specific error.
    pub(crate) fn from_spki_der(spki_der: &[u8]) -> Result<Self, CaError> {
        let spki = match SubjectPublicKeyInfo::from_der(spki_der) {
            Ok(([], spki)) => spki,
            Ok(_) => return Err(CaError::PublicKeyMalformed("trailing bytes".into())),
            Err(e) => return Err(CaError::PublicKeyMalformed(e.to_string())),
        };
        Self::from_spki(&spki)
    }

    pub(crate) fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, CaError> {
        let raw = spki.subject_public_key.data.as_ref();
        let oid = &spki.algorithm.algorithm;
        let (alg, verify): (_, &'static dyn VerificationAlgorithm) =
            if *oid == OID_PKCS1_RSAENCRYPTION {
                let (_, rsa) = RSAPublicKey::from_der(raw)
                    .map_err(|_| CaError::PublicKeyMalformed("invalid RSAPublicKey".into()))?;
                let bits = rsa_bits(rsa.modulus);
                if bits < MIN_RSA_BITS {
                    return Err(CaError::WeakPublicKey {
                        algorithm: "RSA",
                        bits,
                        min_bits: MIN_RSA_BITS,
                    });
                }
                if bits > MAX_RSA_BITS {
                    return Err(CaError::UnsupportedPublicKey {
                        algorithm: format!("RSA {bits}-bit"),
                    });
                }
                (&rcgen::PKCS_RSA_SHA256, &RSA_PKCS1_2048_8192_SHA256)
            } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok());
                let (alg, verify, len): (_, &'static dyn VerificationAlgorithm, _) = match curve {
                    Some(c) if c == OID_EC_P256 => {
                        (&rcgen::PKCS_ECDSA_P256_SHA256, &ECDSA_P256_SHA256_ASN1, 65)
                    }
                    Some(c) if c == OID_NIST_EC_P384 => {
                        (&rcgen::PKCS_ECDSA_P384_SHA384, &ECDSA_P384_SHA384_ASN1, 97)
                    }
                    Some(c) => {
                        return Err(CaError::UnsupportedPublicKey {
                            algorithm: oid_name(c.as_bytes()),
                        });
                    }
                    None => {
                        return Err(CaError::PublicKeyMalformed(
                            "EC key without a named curve".into(),
                        ));
                    }
                };
                if raw.len() != len || raw.first() != Some(&4) {
                    return Err(CaError::PublicKeyMalformed(
                        "EC public key must be an uncompressed point".into(),
                    ));
                }
                (alg, verify)
            } else if *oid == OID_SIG_ED25519 {
                (&rcgen::PKCS_ED25519, &ED25519)
            } else {
                return Err(CaError::UnsupportedPublicKey {
                    algorithm: oid_name(oid.as_bytes()),
                });
            };
        ParsedPublicKey::new(verify, raw)
            .map_err(|e| CaError::PublicKeyMalformed(format!("key rejected: {e}")))?;
        Ok(SubjectKey {
            raw: raw.to_vec(),
            alg,
        })
    }
}

fn rsa_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    (trimmed.len() - 1) * 8 + (8 - trimmed[0].leading_zeros() as usize)
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bits_counts_significant_bits() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(rsa_bits(&[0x01, 0xff]), 9);
        assert_eq!(rsa_bits(&[0x00]), 0);
    }
}
