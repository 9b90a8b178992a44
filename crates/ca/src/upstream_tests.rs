use std::fs;
use std::os::unix::fs::PermissionsExt;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::*;
use crate::authority::SvidRequest;
use crate::keys::{KeyType, PrivateKey};
use crate::testutil::{T0, chains_to, hours, id, td};

/// A CA made with plain rcgen, standing in for cert-manager's output.
struct Pki {
    key: KeyPair,
    params: CertificateParams,
    der: CertificateDer<'static>,
}

fn ca_params(cn: &str, nb: OffsetDateTime, na: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = nb;
    p.not_after = na;
    p
}

fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

fn root_with(params: CertificateParams) -> Pki {
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().clone();
    Pki { key, params, der }
}

fn root() -> Pki {
    root_with(ca_params("Example Root", T0 - days(1), T0 + days(365)))
}

fn child_of(parent: &Pki, params: CertificateParams) -> Pki {
    let key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&parent.params, &parent.key);
    let der = params.signed_by(&key, &issuer).unwrap().der().clone();
    Pki { key, params, der }
}

fn intermediate(parent: &Pki) -> Pki {
    child_of(
        parent,
        ca_params("Example Issuing CA", T0 - days(1), T0 + days(90)),
    )
}

fn write(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn pem_of(certs: &[&Pki]) -> String {
    sigil_spiffe::pem::encode_certificates(certs.iter().map(|p| &p.der))
}

/// Writes `tls.crt`, `tls.key` (0600) and optionally `ca.crt` into `dir`.
fn secret_dir(dir: &Path, certs: &[&Pki], key: &KeyPair, ca: Option<&Pki>) -> UpstreamFiles {
    write(&dir.join("tls.crt"), &pem_of(certs), 0o644);
    write(&dir.join("tls.key"), &key.serialize_pem(), 0o600);
    if let Some(ca) = ca {
        write(&dir.join("ca.crt"), &pem_of(&[ca]), 0o644);
    }
    UpstreamFiles::from_dir(dir)
}

fn child_signer() -> Arc<dyn Signer> {
    Arc::new(PrivateKey::generate(KeyType::EcP256).unwrap())
}

/// Mints this server's intermediate and a leaf under it; returns the leaf chain.
fn leaf_chain(up: &UpstreamCa) -> Vec<CertificateDer<'static>> {
    let ours = up
        .mint_intermediate(&CaSubject::default(), child_signer(), hours(24), T0)
        .unwrap();
    let spki = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .public_key_spki_der();
    ours.sign_public_key(&spki, &SvidRequest::new(id("/w"), hours(1)), T0)
        .unwrap()
        .chain
}

#[test]
fn self_signed_upstream_root_mints_a_pathlen_zero_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let files = secret_dir(dir.path(), &[&root], &root.key, None);
    assert_eq!(files.bundle, None);
    let up = UpstreamCa::load(&files, &td(), T0).unwrap();
    assert_eq!(up.root(), &root.der);

    let ours = up
        .mint_intermediate(&CaSubject::default(), child_signer(), hours(24), T0)
        .unwrap();
    assert_eq!(
        ours.chain_tail(),
        &[ours.cert_der().clone()],
        "the root is never in the chain"
    );
    let c = x509::parse(ours.cert_der()).unwrap();
    assert_eq!(
        c.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    let san = c.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![x509_parser::extensions::GeneralName::URI(
            "spiffe://example.org"
        )]
    );
    chains_to(&leaf_chain(&up), std::slice::from_ref(&root.der), T0).unwrap();
}

#[test]
fn intermediate_upstream_in_every_secret_layout() {
    let root = root();
    let int = intermediate(&root);
    // (tls.crt, ca.crt, expected anchor, expected length of a leaf chain)
    struct Layout<'a> {
        name: &'static str,
        tls_crt: Vec<&'a Pki>,
        ca_crt: Option<&'a Pki>,
        anchor: &'a Pki,
        chain_len: usize,
    }
    let layouts = [
        Layout {
            name: "issuer + ca.crt",
            tls_crt: vec![&int],
            ca_crt: Some(&root),
            anchor: &root,
            chain_len: 3,
        },
        Layout {
            name: "issuer and root in tls.crt",
            tls_crt: vec![&int, &root],
            ca_crt: None,
            anchor: &root,
            chain_len: 3,
        },
        Layout {
            name: "root in both",
            tls_crt: vec![&int, &root],
            ca_crt: Some(&root),
            anchor: &root,
            chain_len: 3,
        },
        Layout {
            name: "issuer alone is the anchor",
            tls_crt: vec![&int],
            ca_crt: None,
            anchor: &int,
            chain_len: 2,
        },
    ];
    for Layout {
        name,
        tls_crt: certs,
        ca_crt: ca,
        anchor,
        chain_len: len,
    } in layouts
    {
        let dir = tempfile::tempdir().unwrap();
        let files = secret_dir(dir.path(), &certs, &int.key, ca);
        let up = UpstreamCa::load(&files, &td(), T0).unwrap();
        assert_eq!(up.root(), &anchor.der, "{name}");
        let chain = leaf_chain(&up);
        assert_eq!(chain.len(), len, "{name}");
        assert!(
            !chain.contains(&anchor.der),
            "{name}: anchor must not be sent"
        );
        chains_to(&chain, std::slice::from_ref(&anchor.der), T0)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn missing_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let files = secret_dir(dir.path(), &[&root], &root.key, None);
    fs::remove_file(&files.key).unwrap();
    match UpstreamCa::load(&files, &td(), T0) {
        Err(e @ CaError::KeyFileMissing { .. }) => assert!(e.to_string().contains("tls.key")),
        other => panic!("{other:?}"),
    }
    fs::remove_file(&files.cert).unwrap();
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::CertFileMissing { .. })
    ));
}

#[test]
fn corrupt_or_exposed_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let files = secret_dir(dir.path(), &[&root], &root.key, None);

    write(
        &files.key,
        &sigil_spiffe::pem::encode_block("PRIVATE KEY", b"\x30\x03garbage"),
        0o600,
    );
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::Key {
            problem: crate::KeyProblem::Corrupt(_),
            ..
        })
    ));
    write(&files.key, "not pem at all", 0o600);
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::Key {
            problem: crate::KeyProblem::NotPem,
            ..
        })
    ));
    write(&files.key, &root.key.serialize_pem(), 0o644);
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::KeyFilePermissions { mode: 0o644, .. })
    ));
}

#[test]
fn key_not_matching_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let files = secret_dir(dir.path(), &[&root], &KeyPair::generate().unwrap(), None);
    let err = UpstreamCa::load(&files, &td(), T0).unwrap_err();
    assert!(
        matches!(err, CaError::UpstreamKeyMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("tls.key") && err.to_string().contains("tls.crt"));
}

#[test]
fn certificates_that_cannot_sign() {
    let root = root();
    let mut leaf_params = ca_params("not a CA", T0 - days(1), T0 + days(30));
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf = child_of(&root, leaf_params);
    let dir = tempfile::tempdir().unwrap();
    let files = secret_dir(dir.path(), &[&leaf, &root], &leaf.key, None);
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::UpstreamNotCa { .. })
    ));

    let mut no_sign = ca_params("CA without keyCertSign", T0 - days(1), T0 + days(30));
    no_sign.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let no_sign = root_with(no_sign);
    let files = secret_dir(dir.path(), &[&no_sign], &no_sign.key, None);
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::UpstreamCannotSign { .. })
    ));
}

#[test]
fn expired_and_not_yet_valid_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let expired = root_with(ca_params("old", T0 - days(10), T0 - days(1)));
    let files = secret_dir(dir.path(), &[&expired], &expired.key, None);
    match UpstreamCa::load(&files, &td(), T0) {
        Err(e @ CaError::UpstreamExpired { .. }) => {
            assert!(
                e.to_string().contains("expired at 2029-12-31T00:00:00Z"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    let future = root_with(ca_params("future", T0 + days(1), T0 + days(10)));
    let files = secret_dir(dir.path(), &[&future], &future.key, None);
    assert!(matches!(
        UpstreamCa::load(&files, &td(), T0),
        Err(CaError::UpstreamNotYetValid { .. })
    ));

    // An expired root in ca.crt is as fatal as an expired issuer.
    let old_root = root_with(ca_params("old root", T0 - days(10), T0 - days(1)));
    let int = child_of(&old_root, ca_params("int", T0 - days(5), T0 + days(5)));
    let files = secret_dir(dir.path(), &[&int], &int.key, Some(&old_root));
    match UpstreamCa::load(&files, &td(), T0) {
        Err(CaError::UpstreamExpired { path, .. }) => assert!(path.ends_with("ca.crt")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_chains_are_reported_with_the_file() {
    let root = root();
    let int = intermediate(&root);
    let stranger = root_with(ca_params("Someone Else", T0 - days(1), T0 + days(365)));
    let dir = tempfile::tempdir().unwrap();
    let files = secret_dir(dir.path(), &[&int, &stranger], &int.key, None);
    match UpstreamCa::load(&files, &td(), T0) {
        Err(CaError::UpstreamChainBroken { path, index: 0, .. }) => {
            assert!(path.ends_with("tls.crt"))
        }
        other => panic!("{other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let files = secret_dir(dir.path(), &[&int], &int.key, Some(&stranger));
    match UpstreamCa::load(&files, &td(), T0) {
        Err(CaError::UpstreamChainBroken { path, .. }) => assert!(path.ends_with("ca.crt")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn minted_intermediates_never_outlive_the_upstream_chain() {
    let root = root_with(ca_params(
        "short root",
        T0 - days(1),
        T0 + time::Duration::hours(30),
    ));
    let int = child_of(&root, ca_params("int", T0 - days(1), T0 + days(90)));
    let dir = tempfile::tempdir().unwrap();
    let files = secret_dir(dir.path(), &[&int], &int.key, Some(&root));
    let up = UpstreamCa::load(&files, &td(), T0).unwrap();
    assert_eq!(
        up.not_after(),
        T0 + time::Duration::hours(30),
        "the root in ca.crt counts"
    );
    let ours = up
        .mint_intermediate(&CaSubject::default(), child_signer(), hours(48), T0)
        .unwrap();
    assert_eq!(ours.not_after(), T0 + time::Duration::hours(30));
}
