//! Test helpers: fixed times, CSRs, and a small chain checker (signatures, names, validity).

use rustls_pki_types::CertificateDer;
use sigil_spiffe::{SpiffeId, TrustDomain};
use time::OffsetDateTime;
use time::macros::datetime;

use sigil_spiffe::der;

use crate::keys::PrivateKey;
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

/// The privateKey OCTET STRING inside a PKCS#8 structure (PKCS#1 for RSA, SEC1 for EC, the
/// wrapped seed for Ed25519).
pub(crate) fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (info, _) = der::expect(pkcs8, der::SEQUENCE).unwrap();
    let (_version, rest) = der::expect(info, der::INTEGER).unwrap();
    let (_alg, rest) = der::expect(rest, der::SEQUENCE).unwrap();
    der::expect(rest, der::OCTET_STRING).unwrap().0.to_vec()
}

/// The secret part of a key: the EC scalar, the Ed25519 seed, or the RSA private exponent.
pub(crate) fn secret_of(key: &PrivateKey) -> Vec<u8> {
    let inner = pkcs8_inner(&key.to_pkcs8_der().unwrap());
    let secret = match der::read(&inner).unwrap() {
        // Ed25519: CurvePrivateKey, the seed itself.
        (der::OCTET_STRING, seed, _) => seed,
        // SEC1 ECPrivateKey { version, privateKey OCTET STRING, .. }.
        (der::SEQUENCE, ec, _) if der::expect(ec, der::INTEGER).unwrap().0 == [1] => {
            let (_, rest) = der::expect(ec, der::INTEGER).unwrap();
            der::expect(rest, der::OCTET_STRING).unwrap().0
        }
        // PKCS#1 RSAPrivateKey { version, n, e, d, .. }.
        (der::SEQUENCE, rsa, _) => {
            let mut rest = der::expect(rsa, der::INTEGER).unwrap().1;
            for _ in 0..2 {
                rest = der::expect(rest, der::INTEGER).unwrap().1;
            }
            der::expect(rest, der::INTEGER).unwrap().0
        }
        other => panic!("unexpected private key structure {other:?}"),
    };
    assert!(
        secret.len() >= 32,
        "secret of {:?} too short",
        key.key_type()
    );
    secret.to_vec()
}

/// The form in which `shown` (Debug or log output) carries `key`'s secret, if it does: hex
/// (either case), a Rust byte list, or base64 at any alignment.
pub(crate) fn secret_shown(shown: &str, key: &PrivateKey) -> Option<String> {
    let secret = secret_of(key);
    let head = &secret[..12];
    let mut forms = vec![
        hex::encode(head),
        hex::encode_upper(head),
        format!("{head:?}").trim_end_matches(']').to_owned(),
    ];
    for skip in 0..3 {
        let pem = sigil_spiffe::pem::encode_block("X", &secret[skip..skip + 24]);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        forms.push(body[..16].to_owned());
    }
    forms.into_iter().find(|form| shown.contains(form.as_str()))
}
