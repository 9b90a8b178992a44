use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use sigil_spiffe::jwt::{JwtError, validate};
use sigil_spiffe::{Bundle, JwtAuthority};
use time::Duration as TD;

use super::*;
use crate::files;
use crate::testutil::{T0, hours, id, td};

fn config(dir: &Path) -> JwtKeyConfig {
    JwtKeyConfig::new(td(), dir.join("keys"))
}

fn bundle(m: &JwtKeyManager, now: OffsetDateTime) -> Bundle {
    let mut b = Bundle::new(td());
    for k in m.public_keys(now) {
        b.add_jwt_authority(k.kid, JwtAuthority::from_spki_der(&k.spki_der).unwrap())
            .unwrap();
    }
    b
}

fn aud(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn unix(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_an_active_key_in_a_0600_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (m, change) = JwtKeyManager::load_or_init(cfg.clone(), None, T0).unwrap();
    let kid = m.journal().active().unwrap().kid.clone();
    assert_eq!(kid.len(), 32);
    assert!(kid.chars().all(|c| c.is_ascii_alphanumeric()), "{kid}");
    assert_eq!(
        change.unwrap().events,
        vec![
            JwtKeyEvent::Prepared {
                kid: kid.clone(),
                not_after: T0 + TD::hours(24)
            },
            JwtKeyEvent::Activated {
                kid: kid.clone(),
                previous: None
            },
        ]
    );
    assert_eq!(mode(&cfg.key_dir), 0o700);
    assert_eq!(mode(&cfg.key_dir.join(format!("jwt-{kid}.key"))), 0o600);
    let published = m.public_keys(T0);
    assert_eq!(published.len(), 1);
    assert_eq!(
        (published[0].kid.as_str(), published[0].alg),
        (kid.as_str(), JwtAlg::Es256)
    );
    assert_eq!(m.next_deadline(), Some(T0 + TD::hours(12)));
}

#[test]
fn signed_tokens_validate_against_the_published_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (key_type, alg) in [
        (KeyType::EcP256, "ES256"),
        (KeyType::EcP384, "ES384"),
        (KeyType::Rsa2048, "RS256"),
    ] {
        let mut cfg = config(dir.path());
        cfg.key_dir = dir.path().join(key_type.name());
        cfg.key_type = key_type;
        let (m, _) = JwtKeyManager::load_or_init(cfg, None, T0).unwrap();
        let b = bundle(&m, T0);
        let sub = id("/ns/payments/sa/billing");
        let now = T0 + TD::minutes(1);
        let svid = m
            .sign_jwt_svid(&sub, &aud(&["reports"]), Duration::from_secs(300), now)
            .unwrap();
        assert_eq!(svid.expires_at, now + TD::minutes(5));
        assert_eq!(svid.issued_at, now);
        let v = validate(&svid.token, "reports", &b, unix(now)).unwrap();
        assert_eq!(v.id, sub);
        assert_eq!(
            v.claims["aud"],
            json!("reports"),
            "one audience is a string"
        );
        assert_eq!(v.claims["exp"], json!(unix(svid.expires_at)));
        assert_eq!(v.claims["iat"], json!(unix(now)));
        let (h, _) = sigil_spiffe::jwt::parse_unverified(&svid.token).unwrap();
        assert_eq!(h.alg.as_deref(), Some(alg));
        assert_eq!(h.kid.as_deref(), Some(svid.kid.as_str()));
        assert_eq!(h.typ.as_deref(), Some("JWT"));

        let two = m
            .sign_jwt_svid(&sub, &aud(&["a", "b"]), Duration::from_secs(60), now)
            .unwrap();
        let v = validate(&two.token, "b", &b, unix(now)).unwrap();
        assert_eq!(v.claims["aud"], json!(["a", "b"]));
        assert!(matches!(
            validate(&two.token, "c", &b, unix(now)),
            Err(JwtError::AudienceMismatch { .. })
        ));
    }
}

#[test]
fn exp_is_clamped_to_the_key_and_requests_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = JwtKeyManager::load_or_init(config(dir.path()), None, T0).unwrap();
    let sub = id("/w");
    let late = T0 + TD::hours(24) - TD::seconds(30);
    let svid = m
        .sign_jwt_svid(&sub, &aud(&["x"]), Duration::from_secs(300), late)
        .unwrap();
    assert_eq!(svid.expires_at, T0 + TD::hours(24));

    let ttl = Duration::from_secs(60);
    let other_td = sigil_spiffe::SpiffeId::parse("spiffe://other.org/w").unwrap();
    type Case = (&'static str, Result<JwtSvid, CaError>, fn(&CaError) -> bool);
    let cases: [Case; 6] = [
        (
            "other trust domain",
            m.sign_jwt_svid(&other_td, &aud(&["x"]), ttl, T0),
            |e| matches!(e, CaError::IdNotInTrustDomain { .. }),
        ),
        (
            "trust domain ID",
            m.sign_jwt_svid(&td().id("").unwrap(), &aud(&["x"]), ttl, T0),
            |e| matches!(e, CaError::IdIsTrustDomain { .. }),
        ),
        (
            "zero TTL",
            m.sign_jwt_svid(&sub, &aud(&["x"]), Duration::ZERO, T0),
            |e| matches!(e, CaError::ZeroTtl),
        ),
        ("no audience", m.sign_jwt_svid(&sub, &[], ttl, T0), |e| {
            e.to_string().contains("audience")
        }),
        (
            "empty audience",
            m.sign_jwt_svid(&sub, &aud(&[""]), ttl, T0),
            |e| e.to_string().contains("audience"),
        ),
        (
            "key expired",
            m.sign_jwt_svid(&sub, &aud(&["x"]), ttl, T0 + TD::hours(25)),
            |e| matches!(e, CaError::CaExpired { .. }),
        ),
    ];
    for (name, got, check) in cases {
        match got {
            Err(e) if check(&e) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn ed25519_is_refused_and_rsa_signs_rs256() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.key_type = KeyType::Ed25519;
    let e = JwtKeyManager::load_or_init(cfg, None, T0).unwrap_err();
    assert!(e.to_string().contains("no EdDSA"), "{e}");
    for k in [KeyType::Rsa2048, KeyType::Rsa3072, KeyType::Rsa4096] {
        assert_eq!(JwtAlg::for_key_type(k).unwrap(), JwtAlg::Rs256);
    }
}

/// Walks three key lifetimes in 10-minute steps. At every step: tick, publish, sign a token
/// with a long TTL (clamped to its key), and check every token signed so far still validates
/// against the current bundle until its own `exp` — no gap at activation or pruning — and that
/// the signing key had been published at an earlier step.
#[test]
fn rotation_never_leaves_a_valid_token_without_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (mut m, _) = JwtKeyManager::load_or_init(cfg.clone(), None, T0).unwrap();
    let sub = id("/w");
    let mut tokens: Vec<JwtSvid> = Vec::new();
    let mut published_before: BTreeSet<String> = BTreeSet::new();
    let mut seen_events = Vec::new();
    let mut now = T0;
    while now < T0 + TD::hours(72) {
        if let Some(change) = m.tick(now).unwrap() {
            seen_events.extend(change.events);
        }
        let b = bundle(&m, now);
        let svid = m.sign_jwt_svid(&sub, &aud(&["x"]), hours(6), now).unwrap();
        assert!(
            now == T0 || published_before.contains(&svid.kid),
            "{now}: key {} signs without having been published first",
            svid.kid
        );
        tokens.push(svid);
        for t in tokens.iter().filter(|t| t.expires_at > now) {
            if let Err(e) = validate(&t.token, "x", &b, unix(now)) {
                panic!(
                    "{now}: token of key {} (exp {}) fails: {e}",
                    t.kid, t.expires_at
                );
            }
        }
        published_before.extend(b.jwt_authorities().keys().cloned());
        assert!(m.public_keys(now).len() <= 3, "{now}: too many keys");
        now += TD::minutes(10);
    }
    let count = |f: fn(&JwtKeyEvent) -> bool| seen_events.iter().filter(|e| f(e)).count();
    assert!(count(|e| matches!(e, JwtKeyEvent::Activated { .. })) >= 3);
    assert!(count(|e| matches!(e, JwtKeyEvent::Pruned { .. })) >= 2);
    // Pruned keys lose their files and wait on the retired list for the bundle to drop them.
    let files: BTreeSet<String> = fs::read_dir(&cfg.key_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let live: BTreeSet<String> = m
        .journal()
        .keys
        .iter()
        .map(|k| format!("jwt-{}.key", k.kid))
        .collect();
    assert_eq!(files, live);
    let retired = m.retired().to_vec();
    assert!(retired.len() >= 2);
    assert!(m.forget_retired(&retired));
    assert!(!m.forget_retired(&retired));
    assert!(m.journal().to_json().find("retired").is_none());
}

#[test]
fn timing_matches_the_x509_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, _) = JwtKeyManager::load_or_init(config(dir.path()), None, T0).unwrap();
    let first = m.journal().active().unwrap().kid.clone();
    // 24h keys: prepare at 12h left, activate at 4h left.
    assert_eq!(m.tick(T0 + TD::hours(12) - TD::seconds(1)).unwrap(), None);
    let change = m.tick(T0 + TD::hours(12)).unwrap().unwrap();
    assert!(change.bundle_changed());
    let second = m.journal().prepared().unwrap().kid.clone();
    assert_eq!(m.active().unwrap().kid(), first);
    assert_eq!(m.next_deadline(), Some(T0 + TD::hours(20)));
    let change = m.tick(T0 + TD::hours(20)).unwrap().unwrap();
    assert_eq!(
        change.events,
        vec![JwtKeyEvent::Activated {
            kid: second.clone(),
            previous: Some(first.clone())
        }]
    );
    assert!(!change.bundle_changed());
    let kids: Vec<String> = m
        .public_keys(T0 + TD::hours(20))
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, vec![second.clone(), first.clone()]);
    let change = m.tick(T0 + TD::hours(24)).unwrap().unwrap();
    // The first key expires just as the second reaches its own prepare threshold (36h - 12h).
    assert!(
        matches!(&change.events[..], [
            JwtKeyEvent::Pruned { kid, key_file_error: None },
            JwtKeyEvent::Prepared { .. },
        ] if *kid == first),
        "{change:?}"
    );
    assert_eq!(m.retired(), &[first]);
}

#[test]
fn reload_keeps_keys_and_refuses_tampered_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (m, _) = JwtKeyManager::load_or_init(cfg.clone(), None, T0).unwrap();
    let json = m.journal().to_json();
    let before = bundle(&m, T0);
    drop(m);

    let journal = JwtJournal::from_json(&json).unwrap();
    let (m2, change) = JwtKeyManager::load_or_init(cfg.clone(), Some(journal.clone()), T0).unwrap();
    assert_eq!(change, None);
    let svid = m2
        .sign_jwt_svid(&id("/w"), &aud(&["x"]), Duration::from_secs(60), T0)
        .unwrap();
    validate(&svid.token, "x", &before, unix(T0)).unwrap();

    // Another key in the file: refused, naming the key and the file.
    let kid = journal.active().unwrap().kid.clone();
    let path = cfg.key_dir.join(format!("jwt-{kid}.key"));
    files::write_key_file(&path, &PrivateKey::generate(KeyType::EcP256).unwrap()).unwrap();
    let e = JwtKeyManager::load_or_init(cfg.clone(), Some(journal.clone()), T0).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&kid) && msg.contains("does not match"),
        "{msg}"
    );

    fs::remove_file(&path).unwrap();
    let e = JwtKeyManager::load_or_init(cfg.clone(), Some(journal.clone()), T0).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");

    let mut other = cfg;
    other.trust_domain = TrustDomain::new("other.org").unwrap();
    assert!(matches!(
        JwtKeyManager::load_or_init(other, Some(journal), T0),
        Err(CaError::JournalTrustDomainMismatch { .. })
    ));
}

#[test]
fn malformed_journals_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = JwtKeyManager::load_or_init(config(dir.path()), None, T0).unwrap();
    let good = m.journal().clone();
    let mut dup = good.clone();
    dup.keys.push(dup.keys[0].clone());
    let mut version = good.clone();
    version.version = 9;
    let mut two_active = good.clone();
    let mut second = good.keys[0].clone();
    second.kid = "other".into();
    two_active.keys.push(second);
    let mut bad_key = good.clone();
    bad_key.keys[0].public_key = "not pem".into();
    let mut empty_kid = good.clone();
    empty_kid.keys[0].kid = String::new();
    for (name, j) in [
        ("empty kid", empty_kid),
        ("duplicate kid", dup),
        ("version", version),
        ("two active", two_active),
        ("public key", bad_key),
    ] {
        let e = JwtJournal::from_json(&j.to_json()).unwrap_err();
        assert!(matches!(e, CaError::JournalMalformed(_)), "{name}: {e:?}");
    }
    assert!(JwtJournal::from_json("{\"version\":1}").is_err());
}
