use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use time::Duration as TD;

use super::*;
use crate::error::KeyProblem;
use crate::files;
use crate::testutil::{T0, chains_to, csr, hours, id, td};

fn config(dir: &Path) -> CaConfig {
    CaConfig::new(td(), dir.join("keys"))
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_an_active_ca_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (m, change) = CaManager::load_or_init(cfg.clone(), None, T0).unwrap();
    let events = change.unwrap().events;
    let id0 = m.journal().active().unwrap().id.clone();
    assert_eq!(
        events,
        vec![
            CaEvent::Prepared {
                id: id0.clone(),
                not_after: T0 + TD::hours(24)
            },
            CaEvent::Activated {
                id: id0.clone(),
                previous: None
            },
        ]
    );
    assert_eq!(mode(&cfg.key_dir), 0o700);
    let key_path = cfg.key_dir.join(&m.journal().active().unwrap().key_file);
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(
        files_in(&cfg.key_dir),
        BTreeSet::from([format!("x509-ca-{id0}.key")])
    );
    assert_eq!(m.active_not_after(), Some(T0 + TD::hours(24)));
    // The bundle holds the generation's root; the server signs with its own intermediate
    // under it.
    let active = m.journal().active().unwrap();
    assert_eq!(m.bundle_roots(T0), vec![active.root_cert.clone()]);
    assert_ne!(m.active().unwrap().cert_der(), &active.root_cert);

    let leaf = m
        .sign_svid(
            &csr(&rcgen::KeyPair::generate().unwrap()),
            &SvidRequest::new(id("/w"), hours(1)),
            T0,
        )
        .unwrap();
    assert_eq!(leaf.chain.len(), 2, "leaf then this server's intermediate");
    assert_eq!(&leaf.chain[1], m.active().unwrap().cert_der());
    chains_to(&leaf.chain, &m.bundle_roots(T0), T0).unwrap();
}

/// How long a peer may go without refreshing its bundle in the lifecycle tests.
const BUNDLE_REFRESH: TD = TD::hours(1);

/// Drives the manager through several CA generations in `step`s, issuing an SVID at every
/// step, and checks at every step that
/// - every unexpired SVID ever issued chains to a root in the bundle published now, and
/// - a new SVID also chains to the bundle published `BUNDLE_REFRESH` ago (a peer that has not
///   refreshed yet still trusts it: roots are published before they sign).
fn run_without_gaps(m: &mut CaManager, until: TD, step: TD) -> Vec<(OffsetDateTime, CaEvent)> {
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let csr = csr(&leaf_key);
    let mut issued: Vec<IssuedCert> = Vec::new();
    let mut published: Vec<(OffsetDateTime, Vec<CertificateDer<'static>>)> = Vec::new();
    let mut timeline = Vec::new();
    let mut now = T0;
    while now <= T0 + until {
        if let Some(change) = m.tick(now).unwrap() {
            timeline.extend(change.events.into_iter().map(|e| (now, e)));
            // What the server would persist reads back identically.
            assert_eq!(
                &Journal::from_json(&m.journal().to_json()).unwrap(),
                m.journal()
            );
        }
        let roots = m.bundle_roots(now);
        published.push((now, roots.clone()));
        let leaf = m
            .sign_svid(&csr, &SvidRequest::new(id("/w"), hours(1)), now)
            .unwrap();
        assert!(leaf.not_after <= m.active_not_after().unwrap());
        if let Some((_, stale)) = published.iter().find(|(t, _)| *t == now - BUNDLE_REFRESH) {
            chains_to(&leaf.chain, stale, now).unwrap_or_else(|e| {
                panic!("SVID issued at {now} is unknown to a bundle one refresh old ({e})")
            });
        }
        issued.push(leaf);
        for svid in issued
            .iter()
            .filter(|c| c.not_before <= now && now < c.not_after)
        {
            chains_to(&svid.chain, &roots, now).unwrap_or_else(|e| {
                panic!("gap in trust at {now}: SVID {} ({e})", svid.serial_hex)
            });
        }
        now += step;
    }
    timeline
}

#[test]
fn self_signed_rotation_has_no_gap_in_trust() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut m, _) = CaManager::load_or_init(cfg.clone(), None, T0).unwrap();
    let a = m.journal().active().unwrap().clone();
    let a_root = a.root_cert.clone();

    // Just before A's activation threshold: A still signs, clamped to A's notAfter.
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let change = m.tick(T0 + TD::hours(12)).unwrap().unwrap();
    assert!(change.bundle_changed());
    let late = T0 + TD::hours(20) - TD::minutes(1);
    assert!(m.tick(late).unwrap().is_none(), "not yet time to activate");
    let b = m.journal().prepared().unwrap().clone();
    assert_eq!(
        b.prepared_at,
        T0 + TD::hours(12),
        "prepared at the first tick past 12h"
    );
    let roots = m.bundle_roots(late);
    assert!(
        roots.contains(&a_root) && roots.contains(&b.root_cert),
        "B published before it signs"
    );
    let by_a = m
        .sign_svid(&csr(&leaf_key), &SvidRequest::new(id("/w"), hours(8)), late)
        .unwrap();
    assert_eq!(by_a.not_after, a.not_after, "clamped to A");

    // Activation: B signs, A is old and still published; A's SVID still verifies.
    let change = m.tick(T0 + TD::hours(20)).unwrap().unwrap();
    assert_eq!(
        change.events,
        vec![CaEvent::Activated {
            id: b.id.clone(),
            previous: Some(a.id.clone())
        }]
    );
    assert!(!change.bundle_changed());
    let after = T0 + TD::hours(21);
    chains_to(&by_a.chain, &m.bundle_roots(after), after).unwrap();
    let by_b = m
        .sign_svid(
            &csr(&leaf_key),
            &SvidRequest::new(id("/w"), hours(1)),
            after,
        )
        .unwrap();
    chains_to(&by_b.chain, std::slice::from_ref(&b.root_cert), after).unwrap();

    // A leaves the bundle exactly at its notAfter, when nothing it signed is valid any more.
    let before_end = a.not_after - TD::SECOND;
    let change = m.tick(before_end).unwrap().unwrap(); // B's successor is prepared
    assert!(
        change
            .events
            .iter()
            .all(|e| matches!(e, CaEvent::Prepared { .. }))
    );
    assert!(m.bundle_roots(before_end).contains(&a_root));
    let change = m.tick(a.not_after).unwrap().unwrap();
    assert!(change.events.contains(&CaEvent::Pruned {
        id: a.id.clone(),
        key_file_error: None
    }));
    assert!(!m.bundle_roots(a.not_after).contains(&a_root));
    assert!(!cfg.key_dir.join(&a.key_file).exists(), "old key removed");

    // And the long run: four days in 10-minute steps.
    let dir = tempfile::tempdir().unwrap();
    let (mut m, _) = CaManager::load_or_init(config(dir.path()), None, T0).unwrap();
    let timeline = run_without_gaps(&mut m, TD::days(4), TD::minutes(10));
    let activations: Vec<_> = timeline
        .iter()
        .filter(|(_, e)| matches!(e, CaEvent::Activated { .. }))
        .map(|(t, _)| *t - T0)
        .collect();
    // A: 0-24h, activated at 0; B: 12h-36h at 20h; C: 24h-48h at 32h; ...
    assert_eq!(
        activations,
        [20, 32, 44, 56, 68, 80, 92].map(TD::hours).to_vec(),
        "SPIRE timing: prepare at 1/2, activate at 1/6 of the remaining life"
    );
    assert!(m.journal().entries.len() <= 3);
}

/// An upstream root valid from a day before T0 for `days`, written as a cert-manager Secret.
fn upstream_dir(dir: &Path, not_after: OffsetDateTime) -> (UpstreamFiles, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    p.not_before = T0 - TD::days(1);
    p.not_after = not_after;
    let cert = p.self_signed(&key).unwrap();
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    fs::set_permissions(dir.join("tls.key"), fs::Permissions::from_mode(0o600)).unwrap();
    (UpstreamFiles::from_dir(dir), cert.der().clone())
}

#[test]
fn upstream_rotation_keeps_one_root_and_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (files, root) = upstream_dir(&dir.path().join("upstream"), T0 + TD::days(30));
    let cfg = CaConfig {
        source: CaSource::Upstream(files),
        ..config(dir.path())
    };
    let (mut m, _) = CaManager::load_or_init(cfg, None, T0).unwrap();
    let timeline = run_without_gaps(&mut m, TD::days(3), TD::minutes(30));
    assert!(
        timeline
            .iter()
            .filter(|(_, e)| matches!(e, CaEvent::Activated { .. }))
            .count()
            >= 5
    );
    assert_eq!(m.bundle_roots(T0 + TD::days(3)), vec![root]);
    let leaf = m
        .sign_svid(
            &csr(&rcgen::KeyPair::generate().unwrap()),
            &SvidRequest::new(id("/w"), hours(1)),
            T0 + TD::days(3),
        )
        .unwrap();
    assert_eq!(leaf.chain.len(), 2, "leaf + this server's intermediate");
}

#[test]
fn an_expiring_upstream_stops_preparation_until_it_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("upstream");
    let (files, old_root) = upstream_dir(&up, T0 + TD::hours(30));
    let cfg = CaConfig {
        source: CaSource::Upstream(files),
        ..config(dir.path())
    };
    let (mut m, _) = CaManager::load_or_init(cfg, None, T0).unwrap();
    let a = m.journal().active().unwrap().id.clone();
    m.tick(T0 + TD::hours(12)).unwrap().unwrap(); // B prepared, clamped to the upstream's 30h
    assert_eq!(
        m.journal().prepared().unwrap().not_after,
        T0 + TD::hours(30)
    );
    m.tick(T0 + TD::hours(20)).unwrap().unwrap(); // B active

    // B's successor could not outlive B.
    let err = m.tick(T0 + TD::hours(24)).unwrap_err();
    assert!(
        matches!(err, CaError::UpstreamExpiresTooSoon { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("renew the upstream CA"));
    // A was pruned before the failure; signing goes on with B.
    assert!(m.journal().get(&a).is_none());
    let now = T0 + TD::hours(25);
    let spki = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .public_key_spki_der();
    assert!(
        m.sign_public_key(&spki, &SvidRequest::new(id("/w"), hours(1)), now)
            .is_ok()
    );

    // The operator renews the Secret; the next tick reports everything since the last success.
    let (_, new_root) = upstream_dir(&up, T0 + TD::days(365));
    let change = m.tick(now).unwrap().unwrap();
    assert!(matches!(change.events[0], CaEvent::Pruned { ref id, .. } if *id == a));
    assert!(matches!(change.events[1], CaEvent::Prepared { .. }));
    assert_eq!(m.bundle_roots(now), vec![old_root, new_root]);
}

#[test]
fn reloading_a_journal_reuses_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut m, _) = CaManager::load_or_init(cfg.clone(), None, T0).unwrap();
    m.tick(T0 + TD::hours(12)).unwrap();
    let json = m.journal().to_json();
    let before = files_in(&cfg.key_dir);

    let journal = Journal::from_json(&json).unwrap();
    let (m2, change) =
        CaManager::load_or_init(cfg.clone(), Some(journal), T0 + TD::hours(13)).unwrap();
    assert!(change.is_none());
    assert_eq!(files_in(&cfg.key_dir), before);
    assert_eq!(m2.active().unwrap().id(), m.active().unwrap().id());
    assert_eq!(m2.journal(), m.journal());
    let spki = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .public_key_spki_der();
    let now = T0 + TD::hours(13);
    let leaf = m2
        .sign_public_key(&spki, &SvidRequest::new(id("/w"), hours(1)), now)
        .unwrap();
    chains_to(&leaf.chain, &m.bundle_roots(now), now).unwrap();
}

/// A data dir with an active and a prepared CA, and its journal.
fn setup() -> (tempfile::TempDir, CaConfig, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut m, _) = CaManager::load_or_init(cfg.clone(), None, T0).unwrap();
    m.tick(T0 + TD::hours(12)).unwrap();
    let j = m.journal().clone();
    (dir, cfg, j)
}

#[test]
fn broken_key_files_are_named_and_never_regenerated() {
    struct Case {
        name: &'static str,
        status: CaStatus,
        break_it: fn(&Path),
        want: fn(&CaError) -> bool,
    }
    let cases = [
        Case {
            name: "missing",
            status: CaStatus::Active,
            break_it: |p| fs::remove_file(p).unwrap(),
            want: |e| matches!(e, CaError::KeyFileMissing { .. }),
        },
        Case {
            name: "group readable",
            status: CaStatus::Active,
            break_it: |p| fs::set_permissions(p, fs::Permissions::from_mode(0o640)).unwrap(),
            want: |e| matches!(e, CaError::KeyFilePermissions { mode: 0o640, .. }),
        },
        Case {
            name: "corrupt",
            status: CaStatus::Active,
            break_it: |p| fs::write(p, "garbage").unwrap(),
            want: |e| {
                matches!(
                    e,
                    CaError::Key {
                        problem: KeyProblem::NotPem,
                        ..
                    }
                )
            },
        },
        Case {
            name: "another key",
            status: CaStatus::Active,
            break_it: |p| {
                files::write_key_file(p, &PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap()
            },
            want: |e| matches!(e, CaError::KeyMismatch { .. }),
        },
        Case {
            name: "prepared missing",
            status: CaStatus::Prepared,
            break_it: |p| fs::remove_file(p).unwrap(),
            want: |e| matches!(e, CaError::KeyFileMissing { .. }),
        },
    ];
    for Case {
        name,
        status,
        break_it,
        want,
    } in cases
    {
        let (_dir, cfg, journal) = setup();
        let entry = journal
            .entries
            .iter()
            .find(|e| e.status == status)
            .unwrap()
            .clone();
        let path = cfg.key_dir.join(&entry.key_file);
        break_it(&path);
        let before = files_in(&cfg.key_dir);
        let err =
            CaManager::load_or_init(cfg.clone(), Some(journal), T0 + TD::hours(13)).unwrap_err();
        match &err {
            CaError::JournalKey {
                id,
                status: s,
                source,
                hint,
            } => {
                let want_hint = if status == CaStatus::Prepared {
                    "signed nothing"
                } else {
                    "new CA"
                };
                assert!(hint.contains(want_hint), "{name}: {hint}");
                assert_eq!(
                    (id.as_str(), *s),
                    (entry.id.as_str(), status.as_str()),
                    "{name}"
                );
                assert!(want(source), "{name}: {source:?}");
            }
            other => panic!("{name}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("Restore"),
            "{name}: {msg}"
        );
        assert_eq!(
            files_in(&cfg.key_dir),
            before,
            "{name}: nothing regenerated"
        );
    }
}

#[test]
fn journal_for_another_trust_domain_or_with_a_foreign_root_is_refused() {
    let (_dir, cfg, journal) = setup();
    let other = CaConfig {
        trust_domain: TrustDomain::new("other.org").unwrap(),
        ..cfg.clone()
    };
    assert!(matches!(
        CaManager::load_or_init(other, Some(journal.clone()), T0),
        Err(CaError::JournalTrustDomainMismatch { .. })
    ));

    let mut tampered = journal;
    let stranger = rcgen::generate_simple_self_signed(vec!["x.example".into()])
        .unwrap()
        .cert;
    tampered.entries[0].root_cert = stranger.der().clone();
    assert!(matches!(
        CaManager::load_or_init(cfg, Some(tampered), T0),
        Err(CaError::JournalMalformed(m)) if m.contains("does not chain")
    ));
}

#[test]
fn zero_ca_ttl_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CaConfig {
        ca_ttl: Duration::ZERO,
        ..config(dir.path())
    };
    let err = CaManager::load_or_init(cfg, None, T0).unwrap_err();
    assert!(matches!(err, CaError::ZeroCaTtl));
    assert_eq!(err.blame(), crate::Blame::LocalConfig);
}

#[test]
fn an_empty_journal_signs_nothing_until_the_first_tick() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (_m, _) = CaManager::load_or_init(cfg.clone(), None, T0).unwrap();
    // Reloading an empty journal gives a manager with nothing active until `tick`.
    let (mut m, change) = CaManager::load_or_init(cfg, Some(Journal::new(&td())), T0).unwrap();
    assert!(change.is_none());
    let spki = PrivateKey::generate(KeyType::EcP256)
        .unwrap()
        .public_key_spki_der();
    let req = SvidRequest::new(id("/w"), hours(1));
    assert!(matches!(
        m.sign_public_key(&spki, &req, T0),
        Err(CaError::NoActiveCa)
    ));
    m.tick(T0).unwrap().unwrap();
    assert!(m.sign_public_key(&spki, &req, T0).is_ok());
}
