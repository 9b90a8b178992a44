//! Test helpers: fixed times, CSRs, and a small chain checker (signatures, names, validity).

use rustls_pki_types::CertificateDer;
use sigil_spiffe::{SpiffeId, TrustDomain};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::x509;

pub(crate) const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

pub(crate) fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

pub(crate) fn id(path: &str) -> SpiffeId {
    td().id(path).unwrap()
}

pub(crate) fn hours(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n * 3600)
}

/// A CSR for a fresh P-256 key with whatever params the test wants to smuggle in.
pub(crate) fn csr_with(params: rcgen::CertificateParams, key: &rcgen::KeyPair) -> Vec<u8> {
    params.serialize_request(key).unwrap().der().to_vec()
}

pub(crate) fn csr(key: &rcgen::KeyPair) -> Vec<u8> {
    csr_with(rcgen::CertificateParams::default(), key)
}

fn valid_at(der: &CertificateDer<'_>, now: OffsetDateTime) -> Result<(), String> {
    let c = x509::parse(der)?;
    let (nb, na) = x509::validity(&c);
    if now < nb || now >= na {
        return Err(format!("{} not valid at {now} ({nb} .. {na})", c.subject()));
    }
    Ok(())
}

/// Checks `chain` (leaf first) links by name and signature, every certificate is valid at
/// `now`, and the top is, or is issued by, a valid certificate in `roots`.
pub(crate) fn chains_to(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    now: OffsetDateTime,
) -> Result<(), String> {
    for c in chain {
        valid_at(c, now)?;
    }
    for pair in chain.windows(2) {
        x509::check_issued_by(&x509::parse(&pair[0])?, &x509::parse(&pair[1])?)?;
    }
    let top_der = chain.last().ok_or("empty chain")?;
    let top = x509::parse(top_der)?;
    for root in roots {
        if root == top_der
            || (x509::check_issued_by(&top, &x509::parse(root)?).is_ok()
                && valid_at(root, now).is_ok())
        {
            return valid_at(root, now);
        }
    }
    Err(format!(
        "{} chains to none of {} roots",
        top.subject(),
        roots.len()
    ))
}
