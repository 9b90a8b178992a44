//! X.509-SVID chain verification against bundles.

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use rustls_pki_types::CertificateDer;
use sigil_spiffe::{
    Bundle, BundleSet, CertName, ChainError, ChainPosition, SvidError, TrustDomain, Usage,
    VerifyError, verify_chain_to_anchors, verify_x509_svid,
};

use crate::pki::{CaOpts, DAY, Leaf, NOW, TestCa, at, now};

const TD: &str = "example.org";

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

fn bundles(roots: &[&CertificateDer<'static>]) -> BundleSet {
    let b = Bundle::from_x509_authorities(td(TD), roots.iter().map(|c| (*c).clone())).unwrap();
    [b].into_iter().collect()
}

fn chain_err(r: Result<sigil_spiffe::VerifiedSvid, VerifyError>) -> ChainError {
    match r {
        Err(VerifyError::Chain { td: t, source }) => {
            assert_eq!(t, td(TD));
            source
        }
        other => panic!("want a chain error, got {other:?}"),
    }
}

fn leaf_at(ca: &TestCa, path: &str, not_before: i64, not_after: i64) -> CertificateDer<'static> {
    let mut l = Leaf::svid(&format!("spiffe://{TD}{path}"));
    l.not_before = not_before;
    l.not_after = not_after;
    ca.issue(&l).0
}

#[test]
fn good_chain_root_intermediate_leaf() {
    let root = TestCa::root(TD);
    let inter = root.intermediate();
    let leaf = inter.issue_svid("/ns/default/sa/web");
    let set = bundles(&[&root.cert]);
    for usage in [Usage::Client, Usage::Server, Usage::Any] {
        let v = verify_x509_svid(&[leaf.clone(), inter.cert.clone()], &set, now(), usage).unwrap();
        assert_eq!(v.id().as_str(), "spiffe://example.org/ns/default/sa/web");
        assert_eq!(
            v.chain(),
            &[leaf.clone(), inter.cert.clone(), root.cert.clone()]
        );
        assert_eq!(v.not_after(), u64::try_from(NOW + DAY).unwrap());
        assert_eq!(v.path_not_after(), u64::try_from(NOW + DAY).unwrap());
    }
    // Intermediates may come in any order and include unused certificates.
    let stray = TestCa::root("other.org").cert;
    let v = verify_x509_svid(
        &[leaf.clone(), stray, inter.cert.clone()],
        &set,
        now(),
        Usage::Any,
    )
    .unwrap();
    assert_eq!(v.chain().len(), 3);
    // The leaf alone (without its intermediate) does not chain.
    assert_eq!(
        chain_err(verify_x509_svid(&[leaf], &set, now(), Usage::Any)),
        ChainError::UnknownIssuer
    );
}

#[test]
fn validity_window_of_the_leaf() {
    let root = TestCa::root(TD);
    let set = bundles(&[&root.cert]);
    let expired = leaf_at(&root, "/old", NOW - 2 * DAY, NOW - 1);
    let err = chain_err(verify_x509_svid(&[expired], &set, now(), Usage::Any));
    assert_eq!(
        err,
        ChainError::Expired {
            cert: CertName {
                position: ChainPosition::Leaf,
                subject: "CN=workload".into()
            },
            not_after: u64::try_from(NOW - 1).unwrap(),
            now: u64::try_from(NOW).unwrap(),
        }
    );
    assert_eq!(
        err.to_string(),
        "leaf certificate (CN=workload) expired at 2030-03-17T17:46:39Z (now 2030-03-17T17:46:40Z)"
    );
    let future = leaf_at(&root, "/new", NOW + 1, NOW + DAY);
    assert!(matches!(
        chain_err(verify_x509_svid(std::slice::from_ref(&future), &set, now(), Usage::Any)),
        ChainError::NotYetValid { cert: CertName { position: ChainPosition::Leaf, .. }, not_before, .. }
            if not_before == u64::try_from(NOW + 1).unwrap()
    ));
    // Bounds are inclusive.
    verify_x509_svid(&[future], &set, at(NOW + 1), Usage::Any).unwrap();
    let edge = leaf_at(&root, "/edge", NOW - DAY, NOW);
    verify_x509_svid(&[edge], &set, now(), Usage::Any).unwrap();
}

#[test]
fn expired_intermediate_is_named() {
    let root = TestCa::root(TD);
    let mut opts = CaOpts::new("old intermediate", TD);
    opts.not_after = NOW - DAY;
    opts.not_before = NOW - 10 * DAY;
    let inter = root.child_ca(opts);
    let leaf = inter.issue_svid("/w");
    assert!(matches!(
        chain_err(verify_x509_svid(&[leaf, inter.cert.clone()], &bundles(&[&root.cert]), now(), Usage::Any)),
        ChainError::Expired { cert: CertName { position: ChainPosition::Intermediate, ref subject }, .. }
            if subject == "CN=old intermediate"
    ));
}

#[test]
fn bundle_is_chosen_by_the_leafs_trust_domain() {
    let ours = TestCa::root(TD);
    let theirs = TestCa::root("other.org");
    // Only another trust domain's bundle: no bundle for ours.
    let only_theirs: BundleSet =
        [Bundle::from_x509_authorities(td("other.org"), [theirs.cert.clone()]).unwrap()]
            .into_iter()
            .collect();
    let leaf = ours.issue_svid("/w");
    let err =
        verify_x509_svid(std::slice::from_ref(&leaf), &only_theirs, now(), Usage::Any).unwrap_err();
    assert_eq!(err, VerifyError::NoBundle(td(TD)));
    assert_eq!(
        err.to_string(),
        "no trust bundle for trust domain example.org; federate with it or add its bundle"
    );

    // Both bundles present, but the leaf claims example.org while other.org's CA signed it:
    // other.org's roots are never tried for example.org identities.
    let mut both = bundles(&[&ours.cert]);
    both.insert(Bundle::from_x509_authorities(td("other.org"), [theirs.cert.clone()]).unwrap());
    let forged = theirs.issue(&Leaf::svid("spiffe://example.org/admin")).0;
    let err = verify_x509_svid(&[forged], &both, now(), Usage::Any).unwrap_err();
    assert!(
        matches!(
            &err,
            VerifyError::Chain {
                source: ChainError::UnknownIssuer,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("trust domain example.org: not signed by any authority in the bundle"),
        "{err}"
    );
    verify_x509_svid(&[leaf], &both, now(), Usage::Any).unwrap();
    // A single Bundle is a BundleSource for its own trust domain only.
    let single = Bundle::from_x509_authorities(td("other.org"), [theirs.cert.clone()]).unwrap();
    let their_leaf = theirs.issue_svid("/x");
    verify_x509_svid(&[their_leaf], &single, now(), Usage::Any).unwrap();
}

#[test]
fn unknown_issuer() {
    let root = TestCa::root(TD);
    let stranger = TestCa::root(TD); // same name, different key
    let leaf = stranger.issue_svid("/w");
    let err = chain_err(verify_x509_svid(
        &[leaf],
        &bundles(&[&root.cert]),
        now(),
        Usage::Any,
    ));
    // Same subject, so webpki tries the signature and reports that.
    assert_eq!(err, ChainError::BadSignature);
    let other_name = TestCa::root_with(TD, CaOpts::new("someone else", TD));
    let leaf = other_name.issue_svid("/w");
    assert_eq!(
        chain_err(verify_x509_svid(
            &[leaf],
            &bundles(&[&root.cert]),
            now(),
            Usage::Any
        )),
        ChainError::UnknownIssuer
    );
}

#[test]
fn leaf_signed_by_a_non_ca() {
    let root = TestCa::root(TD);
    let set = bundles(&[&root.cert]);
    for (name, is_ca) in [
        ("explicit cA=false", IsCa::ExplicitNoCa),
        ("no basicConstraints", IsCa::NoCa),
    ] {
        let non_ca = root.child_ca({
            let mut o = CaOpts::new("not a ca", TD);
            o.is_ca = is_ca;
            o
        });
        let leaf = non_ca.issue_svid("/victim");
        assert_eq!(
            chain_err(verify_x509_svid(
                &[leaf, non_ca.cert.clone()],
                &set,
                now(),
                Usage::Any
            )),
            ChainError::IssuerNotCa,
            "{name}"
        );
    }
}

#[test]
fn intermediate_must_be_an_svid_signing_cert() {
    let root = TestCa::root(TD);
    let set = bundles(&[&root.cert]);
    let no_kcs = root.child_ca({
        let mut o = CaOpts::new("no keyCertSign", TD);
        o.key_usages = vec![KeyUsagePurpose::CrlSign];
        o
    });
    let leaf = no_kcs.issue_svid("/w");
    assert_eq!(
        chain_err(verify_x509_svid(
            &[leaf, no_kcs.cert.clone()],
            &set,
            now(),
            Usage::Any
        )),
        ChainError::IntermediateNotSigning {
            subject: "CN=no keyCertSign".into(),
            source: SvidError::SigningCertMissingKeyCertSign,
        }
    );
    let pathful = root.child_ca({
        let mut o = CaOpts::new("pathful", TD);
        o.uri = Some("spiffe://example.org/ca".into());
        o
    });
    let leaf = pathful.issue_svid("/w");
    assert!(matches!(
        chain_err(verify_x509_svid(
            &[leaf, pathful.cert.clone()],
            &set,
            now(),
            Usage::Any
        )),
        ChainError::IntermediateNotSigning {
            source: SvidError::SigningCertIdHasPath(_),
            ..
        }
    ));
}

#[test]
fn leaf_rules_come_first() {
    let root = TestCa::root(TD);
    let mut tpl = Leaf::svid("spiffe://example.org/w");
    tpl.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let (ca_leaf, _) = root.issue(&tpl);
    assert_eq!(
        verify_x509_svid(&[ca_leaf], &bundles(&[&root.cert]), now(), Usage::Any).unwrap_err(),
        VerifyError::Leaf(SvidError::LeafIsCa)
    );
    let mut tpl = Leaf::svid("spiffe://example.org/w");
    tpl.key_usages.push(KeyUsagePurpose::KeyCertSign);
    let (kcs_leaf, _) = root.issue(&tpl);
    assert_eq!(
        verify_x509_svid(&[kcs_leaf], &bundles(&[&root.cert]), now(), Usage::Any).unwrap_err(),
        VerifyError::Leaf(SvidError::LeafHasKeyCertSign)
    );
    assert_eq!(
        verify_x509_svid(&[], &bundles(&[&root.cert]), now(), Usage::Any).unwrap_err(),
        VerifyError::EmptyChain
    );
}

#[test]
fn empty_bundle_rejects_everything() {
    let root = TestCa::root(TD);
    let set: BundleSet = [Bundle::new(td(TD))].into_iter().collect();
    let err = verify_x509_svid(&[root.issue_svid("/w")], &set, now(), Usage::Any).unwrap_err();
    assert_eq!(err, VerifyError::EmptyBundle(td(TD)));
}

#[test]
fn expired_root_in_bundle_is_not_trusted() {
    let mut opts = CaOpts::new("expired root", TD);
    opts.not_before = NOW - 100 * DAY;
    opts.not_after = NOW - DAY;
    let old = TestCa::root_with(TD, opts);
    let leaf = old.issue_svid("/w");
    let err = chain_err(verify_x509_svid(
        std::slice::from_ref(&leaf),
        &bundles(&[&old.cert]),
        now(),
        Usage::Any,
    ));
    assert_eq!(
        err,
        ChainError::AuthorityExpired {
            subject: "CN=expired root".into(),
            not_after: u64::try_from(NOW - DAY).unwrap(),
            now: u64::try_from(NOW).unwrap(),
        }
    );
    assert!(
        err.to_string()
            .contains("webpki does not check trust anchor dates"),
        "{err}"
    );
    // The same key re-minted with new dates: path building moves on to the valid copy.
    let mut fresh = CaOpts::new("expired root", TD);
    fresh.not_after = NOW + 100 * DAY;
    let reminted = old.remint(fresh);
    let set = bundles(&[&old.cert, &reminted]);
    let v = verify_x509_svid(&[leaf], &set, now(), Usage::Any).unwrap();
    assert_eq!(v.chain()[1], reminted);
    assert_eq!(v.path_not_after(), u64::try_from(NOW + DAY).unwrap());
}

#[test]
fn two_roots_during_rotation() {
    let old = TestCa::root_with(TD, CaOpts::new("root 1", TD));
    let new = TestCa::root_with(TD, CaOpts::new("root 2", TD));
    let set = bundles(&[&old.cert, &new.cert]);
    let from_new = new.issue_svid("/b");
    let inter = old.intermediate();
    let from_old = inter.issue_svid("/a");
    let v = verify_x509_svid(&[from_old, inter.cert.clone()], &set, now(), Usage::Any).unwrap();
    assert_eq!(v.chain().last(), Some(&old.cert));
    let v = verify_x509_svid(&[from_new], &set, now(), Usage::Any).unwrap();
    assert_eq!(v.chain().last(), Some(&new.cert));
    assert_eq!(v.id().path(), "/b");
}

#[test]
fn eku_follows_usage() {
    let root = TestCa::root(TD);
    let server_only = root.child_ca({
        let mut o = CaOpts::new("server-only CA", TD);
        o.ekus = vec![ExtendedKeyUsagePurpose::ServerAuth];
        o
    });
    let leaf = server_only.issue_svid("/w");
    let chain = [leaf, server_only.cert.clone()];
    let set = bundles(&[&root.cert]);
    verify_x509_svid(&chain, &set, now(), Usage::Server).unwrap();
    verify_x509_svid(&chain, &set, now(), Usage::Any).unwrap();
    let err = chain_err(verify_x509_svid(&chain, &set, now(), Usage::Client));
    assert_eq!(
        err,
        ChainError::EkuMismatch {
            usage: Usage::Client,
            present: vec!["serverAuth".into()]
        }
    );

    let code_only = root.child_ca({
        let mut o = CaOpts::new("code CA", TD);
        o.ekus = vec![ExtendedKeyUsagePurpose::CodeSigning];
        o
    });
    let chain = [code_only.issue_svid("/w"), code_only.cert.clone()];
    assert_eq!(
        chain_err(verify_x509_svid(&chain, &set, now(), Usage::Any)),
        ChainError::EkuMismatch {
            usage: Usage::Any,
            present: vec!["codeSigning".into()]
        }
    );
    // A leaf without EKU is fine for every usage.
    let mut tpl = Leaf::svid("spiffe://example.org/no-eku");
    tpl.ekus.clear();
    let (no_eku, _) = root.issue(&tpl);
    for usage in [Usage::Client, Usage::Server, Usage::Any] {
        verify_x509_svid(std::slice::from_ref(&no_eku), &set, now(), usage).unwrap();
    }
}

#[test]
fn tampered_signature() {
    let root = TestCa::root(TD);
    let mut der = root.issue_svid("/w").to_vec();
    // Flip a bit inside the signature value near the end of the certificate.
    let n = der.len();
    der[n - 3] ^= 0x01;
    let err = chain_err(verify_x509_svid(
        &[CertificateDer::from(der)],
        &bundles(&[&root.cert]),
        now(),
        Usage::Any,
    ));
    assert_eq!(err, ChainError::BadSignature);
}

#[test]
fn core_verifies_non_svid_leaves() {
    let root = TestCa::root(TD);
    let mut tpl = Leaf::svid("unused");
    tpl.uris.clear();
    tpl.dns = vec!["web.example.org".into()];
    let (leaf, _) = root.issue(&tpl);
    let anchors = [TestCa::root("x.org").cert, root.cert.clone()];
    let v = verify_chain_to_anchors(&leaf, &[], &anchors, now(), Usage::Server).unwrap();
    assert_eq!(v.anchor_index(), 1);
    assert_eq!(v.certificates(), &[leaf.clone(), root.cert.clone()]);
    assert_eq!(
        verify_chain_to_anchors(&leaf, &[], &[], now(), Usage::Server).unwrap_err(),
        ChainError::NoAnchors
    );
}
