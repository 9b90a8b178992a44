//! SPIFFE vocabulary for Sigil. Pure: no IO, no async runtime.
//!
//! - [`id`]: [`SpiffeId`] and [`TrustDomain`], parsed strictly (go-spiffe rules).
//! - [`svid`]: X.509-SVID leaf and signing-certificate rules ([`leaf_spiffe_id`],
//!   [`check_signing_cert`]) and the [`X509Svid`] credential.
//! - [`bundle`]: [`Bundle`] (SPIFFE JSON and PEM) and [`BundleSet`].
//! - [`verify`]: [`verify_x509_svid`] and its path-validation core [`verify_chain_to_anchors`].
//! - [`jwk`]: bundle public keys (JWK ⇄ SubjectPublicKeyInfo); [`pem`]: the PEM codec;
//!   [`der`]: the small DER reader and writer both are built on (also used by `sigil-ca`).
//! - [`jwt`]: JWT-SVID validation ([`jwt::validate`]).

pub mod bundle;
pub mod der;
pub mod id;
pub mod jwk;
pub mod jwt;
pub mod pem;
pub mod svid;
pub mod verify;

pub use bundle::{AuthorityError, Bundle, BundleError, BundleSet, BundleSource, JwtAuthority};
pub use id::{IdError, SpiffeId, TrustDomain};
pub use jwk::{EcCurve, KeyError, PublicKey};
pub use jwt::{JwtError, ValidatedJwt};
pub use pem::PemError;
pub use svid::{CertRole, SvidError, X509Svid, check_signing_cert, leaf_spiffe_id};
pub use verify::{
    CertName, ChainError, ChainPosition, Usage, VerifiedChain, VerifiedSvid, VerifyError,
    verify_chain_to_anchors, verify_x509_svid,
};
