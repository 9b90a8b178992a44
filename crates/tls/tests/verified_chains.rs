//! The verifiers' memo of verified chains changes cost, never outcome: a remembered chain is
//! refused once its path is out of its validity window, secure naming is checked on every
//! handshake, and another chain is verified on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error};
use sigil_spiffe::{Bundle, BundleSet, SpiffeId, TrustDomain};
use sigil_tls::{IdMatcher, SpiffeClientVerifier, SpiffeServerVerifier};
use time::OffsetDateTime;

struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = OffsetDateTime::now_utc() - Duration::from_secs(7200);
    p.not_after = OffsetDateTime::now_utc() + Duration::from_secs(86400);
    let cert = p.self_signed(&key).unwrap().der().clone();
    Ca {
        cert,
        issuer: Issuer::new(p, key),
    }
}

/// A leaf for `id`, valid from a minute ago for one hour.
fn leaf(ca: &Ca, id: &str) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = OffsetDateTime::now_utc() - Duration::from_secs(60);
    p.not_after = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    p.signed_by(&key, &ca.issuer).unwrap().der().clone()
}

fn bundles(ca: &Ca) -> BundleSet {
    let mut set = BundleSet::new();
    set.insert(
        Bundle::from_x509_authorities(TrustDomain::new("example.org").unwrap(), [ca.cert.clone()])
            .unwrap(),
    );
    set
}

/// Now plus `offset_secs`.
fn at(offset_secs: i64) -> UnixTime {
    let now = UnixTime::now().as_secs();
    UnixTime::since_unix_epoch(Duration::from_secs(now.saturating_add_signed(offset_secs)))
}

/// The refusal of a certificate past its notAfter / before its notBefore.
fn expired<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidCertificate(CertificateError::Expired)))
}

fn not_yet_valid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(
        r,
        Err(Error::InvalidCertificate(CertificateError::NotValidYet))
    )
}

#[test]
fn a_remembered_client_chain_still_expires() {
    let ca = ca("example.org CA");
    let v = SpiffeClientVerifier::new(bundles(&ca), false);
    let l = leaf(&ca, "spiffe://example.org/ns/payments/sa/checkout");
    // Verified, then answered from the memo.
    v.verify_client_cert(&l, &[], at(0)).unwrap();
    v.verify_client_cert(&l, &[], at(10)).unwrap();
    // Past the leaf's notAfter, and before its notBefore: refused, memo or not.
    assert!(expired(v.verify_client_cert(&l, &[], at(7200))));
    assert!(not_yet_valid(v.verify_client_cert(&l, &[], at(-3600))));
    // Back inside the window: accepted again.
    v.verify_client_cert(&l, &[], at(20)).unwrap();
}

#[test]
fn another_chain_is_verified_on_its_own() {
    let ca = ca("example.org CA");
    let foreign = self::ca("example.org CA");
    let v = SpiffeClientVerifier::new(bundles(&ca), false);
    let id = "spiffe://example.org/ns/payments/sa/checkout";
    v.verify_client_cert(&leaf(&ca, id), &[], at(0)).unwrap();
    // Same ID, same issuer name, another key: refused however often it is presented.
    let forged = leaf(&foreign, id);
    for _ in 0..2 {
        let e = v.verify_client_cert(&forged, &[], at(0)).unwrap_err();
        assert!(matches!(e, Error::InvalidCertificate(_)), "{e:?}");
    }
}

#[test]
fn secure_naming_is_checked_on_every_handshake() {
    let ca = ca("example.org CA");
    let want = SpiffeId::parse("spiffe://example.org/ns/payments/sa/billing").unwrap();
    let v = SpiffeServerVerifier::new(bundles(&ca), IdMatcher::Exact(want.clone()));
    let name = ServerName::try_from("billing").unwrap();
    let right = leaf(&ca, want.as_str());
    let wrong = leaf(&ca, "spiffe://example.org/ns/payments/sa/impostor");
    for _ in 0..2 {
        v.verify_server_cert(&right, &[], &name, &[], at(0))
            .unwrap();
        let e = v
            .verify_server_cert(&wrong, &[], &name, &[], at(0))
            .unwrap_err();
        assert!(
            format!("{e:?}").contains("impostor"),
            "the refusal names the unexpected ID: {e:?}"
        );
    }
    assert!(expired(v.verify_server_cert(
        &right,
        &[],
        &name,
        &[],
        at(7200)
    )));
}

#[test]
fn the_provider_prefers_aes_128_gcm_and_keeps_every_suite() {
    use rustls::CipherSuite as C;
    let ours: Vec<C> = sigil_tls::provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(ours[0], C::TLS13_AES_128_GCM_SHA256);
    let mut theirs: Vec<C> = rustls::crypto::aws_lc_rs::default_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    let mut sorted = ours.clone();
    sorted.sort_by_key(|s| u16::from(*s));
    theirs.sort_by_key(|s| u16::from(*s));
    assert_eq!(sorted, theirs);
}
