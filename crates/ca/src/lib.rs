//! Sigil's certificate authority: what to issue, signing, and when to rotate.
//!
//! Split like SPIRE's `credtemplate` / `ca` / `ca/manager` (see STYLE.md item 3):
//!
//! - [`template`] — *what*: pure functions producing rcgen `CertificateParams` for roots,
//!   intermediates and X509-SVIDs, and [`template::clamp_lifetime`], which caps every lifetime at
//!   the issuer's `notAfter`.
//! - [`authority`] — *sign*: [`X509Authority`] signs CSRs or public keys behind the [`Signer`]
//!   seam; [`upstream`] loads a cert-manager-shaped upstream CA and mints per-server
//!   intermediates under it.
//! - [`rotation`] — *when*: the persisted [`Journal`] and the pure [`rotation::plan`] /
//!   [`rotation::bundle_roots`] functions implementing SPIRE's prepare/activate timing;
//!   [`manager::CaManager`] applies the plan (generating keys, writing 0600 key files).
//! - [`crl`] — revocation reasons and CRLs signed by an authority.
//! - [`jwt`] — JWT-SVID signing keys with the same rotation timing ([`JwtKeyManager`]).
//!
//! The only IO is reading and writing key and certificate files ([`files`]). No network, no
//! async runtime. Time is always passed in (`now`).

pub mod authority;
pub mod crl;
pub mod error;
pub mod files;
pub mod jwt;
pub mod keys;
mod lifecycle;
pub mod manager;
mod pem;
pub mod rotation;
pub mod signer;
mod slots;
pub mod template;
pub mod upstream;
mod x509;

#[cfg(test)]
mod testutil;

pub use authority::{IssuedCert, SvidRequest, X509Authority, sign_self};
pub use crl::{Crl, Reason, RevokedSerial, sign_crl};
pub use error::{Blame, CaError, KeyProblem};
pub use jwt::{JwtAlg, JwtJournal, JwtKeyConfig, JwtKeyManager, JwtSvid};
pub use keys::{KeyType, PrivateKey};
pub use manager::{CaConfig, CaEvent, CaManager, CaSource, JournalChange};
pub use rotation::{Action, CaStatus, Journal, JournalEntry};
pub use signer::Signer;
pub use template::{CaSubject, DEFAULT_CA_TTL, DEFAULT_SVID_TTL, Serial, effective_ttl};
pub use upstream::UpstreamCa;
