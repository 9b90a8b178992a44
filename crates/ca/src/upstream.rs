//! An upstream CA in the shape of cert-manager's `ca` issuer Secret: `tls.crt` (the CA
//! certificate, optionally followed by its issuers) and `tls.key`, plus an optional `ca.crt`
//! holding the root. Each Sigil server mints its own intermediate under it.
//!
//! Trust anchor (the certificate published in the bundle):
//! - `ca.crt` given: the `ca.crt` certificate that is, or issued, the last certificate of
//!   `tls.crt`;
//! - otherwise the last certificate of `tls.crt` (normally a self-signed root; if it is not
//!   self-signed it still becomes the anchor, and peers trust from there).
//!
//! The anchor is never sent in chains.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use sigil_spiffe::TrustDomain;
use time::OffsetDateTime;

use crate::authority::X509Authority;
use crate::error::CaError;
use crate::files;
use crate::signer::Signer;
use crate::template::CaSubject;
use crate::x509;

/// Where the upstream CA's files are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFiles {
    /// The CA certificate first, then optionally its issuers (PEM).
    pub cert: PathBuf,
    /// The CA's private key (PEM; PKCS#8, SEC1 or PKCS#1), mode 0600 or stricter.
    pub key: PathBuf,
    /// The root (PEM), when `cert` does not end with it.
    pub bundle: Option<PathBuf>,
}

impl UpstreamFiles {
    /// The files of a mounted `kubernetes.io/tls` Secret: `tls.crt`, `tls.key`, and `ca.crt`
    /// if present.
    pub fn from_dir(dir: &Path) -> Self {
        let bundle = dir.join("ca.crt");
        UpstreamFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            bundle: bundle.exists().then_some(bundle),
        }
    }
}

/// A loaded and checked upstream CA.
#[derive(Debug, Clone)]
pub struct UpstreamCa {
    files: UpstreamFiles,
    authority: X509Authority,
    anchor: CertificateDer<'static>,
    /// Certificates above a minted intermediate: the upstream CA and its issuers, minus the
    /// anchor.
    chain_above: Vec<CertificateDer<'static>>,
    not_after: OffsetDateTime,
}

impl UpstreamCa {
    /// Loads and checks the upstream CA at `now`: the first certificate of `tls.crt` is a CA
    /// with keyCertSign whose key is in `tls.key`, every certificate is valid at `now`, and the
    /// chain links up to the anchor. Errors name the file and the fix.
    pub fn load(
        files: &UpstreamFiles,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
    ) -> Result<Self, CaError> {
        let cert_path = &files.cert;
        let certs = files::read_cert_file(cert_path)?;
        let key = files::read_key_file(&files.key)?;

        let ca = x509::parse(&certs[0]).map_err(|detail| CaError::CertFileCorrupt {
            path: cert_path.clone(),
            index: 0,
            detail,
        })?;
        if !x509::is_ca(&ca) {
            return Err(CaError::UpstreamNotCa {
                path: cert_path.clone(),
            });
        }
        if !x509::may_sign_certs(&ca) {
            return Err(CaError::UpstreamCannotSign {
                path: cert_path.clone(),
            });
        }
        if !x509::key_matches(&ca, &key) {
            return Err(CaError::UpstreamKeyMismatch {
                cert_path: cert_path.clone(),
                key_path: files.key.clone(),
            });
        }
        for der in &certs {
            check_valid(cert_path, der, now)?;
        }
        for (i, pair) in certs.windows(2).enumerate() {
            let (child, parent) = (
                parse_at(cert_path, &pair[0], i)?,
                parse_at(cert_path, &pair[1], i + 1)?,
            );
            x509::check_issued_by(&child, &parent).map_err(|detail| {
                CaError::UpstreamChainBroken {
                    path: cert_path.clone(),
                    index: i,
                    detail,
                }
            })?;
        }

        let last = certs.len() - 1;
        let (anchor, upstream_chain) = match &files.bundle {
            Some(bundle_path) => {
                let anchor = find_anchor(bundle_path, &certs[last], last, now)?;
                // A tls.crt that repeats the root keeps it out of the chain.
                let end = if anchor == certs[last] {
                    last
                } else {
                    last + 1
                };
                (anchor, certs[1..end.max(1)].to_vec())
            }
            None => (certs[last].clone(), certs[1..last.max(1)].to_vec()),
        };
        let anchor_is_ca = anchor == certs[0];
        let unusable = |detail: String| CaError::UpstreamUnusable {
            path: cert_path.clone(),
            detail,
        };

        let signer: Arc<dyn Signer> = Arc::new(key);
        let authority = X509Authority::new(
            trust_domain.clone(),
            certs[0].clone(),
            upstream_chain,
            signer,
        )
        .map_err(|e| unusable(e.to_string()))?;
        let anchor_na = x509::validity(&x509::parse(&anchor).map_err(&unusable)?).1;
        let chain_above = if anchor_is_ca {
            Vec::new()
        } else {
            let mut c = vec![certs[0].clone()];
            c.extend(authority.intermediates().iter().cloned());
            c
        };
        Ok(UpstreamCa {
            files: files.clone(),
            not_after: authority.not_after().min(anchor_na),
            authority,
            anchor,
            chain_above,
        })
    }

    /// Mints this server's intermediate CA for `child`'s key, valid for `ttl` from `now` but
    /// never past the upstream chain's `notAfter`.
    pub fn mint_intermediate(
        &self,
        subject: &CaSubject,
        child: Arc<dyn Signer>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<X509Authority, CaError> {
        let minted = self.authority.mint_child(
            subject,
            child,
            ttl,
            now,
            self.not_after,
            self.chain_above.clone(),
        )?;
        // With the upstream CA as anchor nothing above was checked by `mint_child`.
        let ours = x509::parse(minted.cert_der()).map_err(CaError::CaCertificate)?;
        let upstream = x509::parse(self.authority.cert_der()).map_err(CaError::CaCertificate)?;
        x509::check_issued_by(&ours, &upstream).map_err(|detail| CaError::UpstreamUnusable {
            path: self.files.cert.clone(),
            detail,
        })?;
        Ok(minted)
    }

    /// The trust anchor to publish in the bundle.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.anchor
    }

    /// The upstream CA certificate (first in `tls.crt`).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.authority.cert_der()
    }

    /// The earliest `notAfter` of the upstream chain including the anchor: minted
    /// intermediates never outlive it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub fn files(&self) -> &UpstreamFiles {
        &self.files
    }

    /// The upstream CA as an authority (its key signs the CRL that lists revoked
    /// intermediates; OpenSSL peers checking the whole chain need one).
    pub fn authority(&self) -> &X509Authority {
        &self.authority
    }
}

fn parse_at<'a>(
    path: &Path,
    der: &'a CertificateDer<'static>,
    index: usize,
) -> Result<x509_parser::certificate::X509Certificate<'a>, CaError> {
    x509::parse(der).map_err(|detail| CaError::CertFileCorrupt {
        path: path.to_owned(),
        index,
        detail,
    })
}

fn check_valid(
    path: &Path,
    der: &CertificateDer<'static>,
    now: OffsetDateTime,
) -> Result<(), CaError> {
    let (nb, na) = x509::validity(&parse_at(path, der, 0)?);
    if now >= na {
        return Err(CaError::UpstreamExpired {
            path: path.to_owned(),
            not_after: na,
        });
    }
    if now < nb {
        return Err(CaError::UpstreamNotYetValid {
            path: path.to_owned(),
            not_before: nb,
        });
    }
    Ok(())
}

/// The `ca.crt` certificate that is, or issued, `top`.
fn find_anchor(
    bundle_path: &Path,
    top: &CertificateDer<'static>,
    top_index: usize,
    now: OffsetDateTime,
) -> Result<CertificateDer<'static>, CaError> {
    let roots = files::read_cert_file(bundle_path)?;
    if let Some(same) = roots.iter().find(|r| *r == top) {
        return Ok(same.clone());
    }
    let top_parsed = x509::parse(top).map_err(|detail| CaError::CertFileCorrupt {
        path: bundle_path.to_owned(),
        index: top_index,
        detail,
    })?;
    let mut last_err = String::from("ca.crt is empty");
    for (i, root) in roots.iter().enumerate() {
        let parsed = parse_at(bundle_path, root, i)?;
        match x509::check_issued_by(&top_parsed, &parsed) {
            Ok(()) => {
                check_valid(bundle_path, root, now)?;
                return Ok(root.clone());
            }
            Err(e) => last_err = e,
        }
    }
    Err(CaError::UpstreamChainBroken {
        path: bundle_path.to_owned(),
        index: top_index,
        detail: format!(
            "no certificate in {} issued it: {last_err}",
            bundle_path.display()
        ),
    })
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
