//! The key-manager seam: whatever holds a CA key only has to sign bytes.
//!
//! [`PrivateKey`] (an in-memory key loaded from a 0600 file) is the one implementation today;
//! a KMS- or HSM-backed signer would implement [`Signer`] and plug into
//! [`X509Authority`](crate::X509Authority) unchanged.

use std::fmt;

use crate::error::CaError;
use crate::keys::{KeyType, PrivateKey};

/// Signs certificate bodies with a CA key that may live anywhere.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The key's algorithm; it fixes the certificate signature algorithm.
    fn key_type(&self) -> KeyType;

    /// The public key as carried in a SubjectPublicKeyInfo's BIT STRING.
    fn public_key_raw(&self) -> &[u8];

    /// Signs `message` (a DER `TBSCertificate`) with the algorithm of [`Signer::key_type`]:
    /// ECDSA-SHA256 (P-256), ECDSA-SHA384 (P-384), RSA PKCS#1 v1.5 SHA-256, or Ed25519.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError>;

    /// The DER SubjectPublicKeyInfo of the key.
    fn public_key_spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&RcgenKey(self))
    }
}

impl Signer for PrivateKey {
    fn key_type(&self) -> KeyType {
        PrivateKey::key_type(self)
    }

    fn public_key_raw(&self) -> &[u8] {
        PrivateKey::public_key_raw(self)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        PrivateKey::sign(self, message)
    }
}

/// Adapts any [`Signer`] to rcgen's signing traits.
pub(crate) struct RcgenKey<'a, S: Signer + ?Sized>(pub &'a S);

impl<S: Signer + ?Sized> rcgen::PublicKeyData for RcgenKey<'_, S> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.key_type().rcgen_algorithm()
    }
}

impl<S: Signer + ?Sized> rcgen::SigningKey for RcgenKey<'_, S> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // rcgen's error type cannot carry ours; the only failure is a crypto-library error.
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// An owning [`RcgenKey`]: lets an authority keep one parsed rcgen `Issuer` for its lifetime
/// instead of re-parsing its certificate for every signature.
#[derive(Clone)]
pub(crate) struct SharedSigner(pub std::sync::Arc<dyn Signer>);

impl rcgen::PublicKeyData for SharedSigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.key_type().rcgen_algorithm()
    }
}

impl rcgen::SigningKey for SharedSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}
