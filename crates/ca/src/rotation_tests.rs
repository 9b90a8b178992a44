use time::Duration as TD;

use super::*;
use crate::testutil::{T0, td};

fn cert(tag: u8) -> CertificateDer<'static> {
    // Opaque bytes are enough for the pure planner; JSON tests use real certificates.
    CertificateDer::from(vec![0x30, 0x01, tag])
}

fn entry(id: &str, status: CaStatus, nb: OffsetDateTime, na: OffsetDateTime) -> JournalEntry {
    JournalEntry {
        id: id.into(),
        status,
        key_type: KeyType::EcP256,
        key_file: format!("x509-ca-{id}.key").into(),
        ca_cert: cert(id.as_bytes()[0]),
        intermediates: vec![],
        root_cert: cert(id.as_bytes()[0]),
        not_before: nb,
        not_after: na,
        prepared_at: nb,
        activated_at: None,
        root_crl_pem: None,
    }
}

fn journal(entries: Vec<JournalEntry>) -> Journal {
    Journal {
        version: JOURNAL_VERSION,
        trust_domain: "example.org".into(),
        entries,
    }
}

#[test]
fn thresholds_follow_spire() {
    // (lifetime, prepare when remaining <=, activate when remaining <=)
    let cases = [
        (TD::hours(24), TD::hours(12), TD::hours(4)),
        (TD::days(90), TD::days(30), TD::days(7)),
        (TD::days(30), TD::days(15), TD::days(5)),
        (TD::days(365), TD::days(30), TD::days(7)),
    ];
    for (lifetime, prepare_left, activate_left) in cases {
        let na = T0 + lifetime;
        assert_eq!(prepare_threshold(T0, na), na - prepare_left, "{lifetime}");
        assert_eq!(activate_threshold(T0, na), na - activate_left, "{lifetime}");
    }
}

#[test]
fn plan_table() {
    let day = TD::hours(24);
    let a = |s| entry("a", s, T0, T0 + day);
    let b = |s, from: TD| entry("b", s, T0 + from, T0 + from + day);
    let cases: Vec<(&str, Journal, OffsetDateTime, Action)> = vec![
        ("empty journal", journal(vec![]), T0, Action::Prepare),
        (
            "fresh active",
            journal(vec![a(CaStatus::Active)]),
            T0 + TD::hours(1),
            Action::None,
        ),
        (
            "just before prepare",
            journal(vec![a(CaStatus::Active)]),
            T0 + TD::hours(12) - TD::SECOND,
            Action::None,
        ),
        (
            "prepare due",
            journal(vec![a(CaStatus::Active)]),
            T0 + TD::hours(12),
            Action::Prepare,
        ),
        (
            "prepared, not yet due",
            journal(vec![
                a(CaStatus::Active),
                b(CaStatus::Prepared, TD::hours(12)),
            ]),
            T0 + TD::hours(19),
            Action::None,
        ),
        (
            "activate due",
            journal(vec![
                a(CaStatus::Active),
                b(CaStatus::Prepared, TD::hours(12)),
            ]),
            T0 + TD::hours(20),
            Action::Activate("b".into()),
        ),
        (
            "activate due but nothing prepared: prepare",
            journal(vec![a(CaStatus::Active)]),
            T0 + TD::hours(21),
            Action::Prepare,
        ),
        (
            "old still valid",
            journal(vec![a(CaStatus::Old), b(CaStatus::Active, TD::hours(12))]),
            T0 + TD::hours(23),
            Action::None,
        ),
        (
            "old expired",
            journal(vec![a(CaStatus::Old), b(CaStatus::Active, TD::hours(12))]),
            T0 + day,
            Action::Prune(vec!["a".into()]),
        ),
        (
            "active expired, nothing prepared",
            journal(vec![a(CaStatus::Active)]),
            T0 + day,
            Action::Prepare,
        ),
        (
            "active expired, prepared ready",
            journal(vec![
                a(CaStatus::Active),
                b(CaStatus::Prepared, TD::hours(12)),
            ]),
            T0 + day,
            Action::Activate("b".into()),
        ),
        (
            "only a prepared CA",
            journal(vec![a(CaStatus::Prepared)]),
            T0,
            Action::Activate("a".into()),
        ),
        (
            "prepared from the future is not activated",
            journal(vec![b(CaStatus::Prepared, TD::hours(1))]),
            T0,
            Action::None,
        ),
        (
            "expired prepared is pruned",
            journal(vec![a(CaStatus::Prepared)]),
            T0 + day,
            Action::Prune(vec!["a".into()]),
        ),
    ];
    for (name, j, now, want) in cases {
        assert_eq!(plan(&j, now), want, "{name}");
    }
}

#[test]
fn transitions_keep_the_invariants() {
    let day = TD::hours(24);
    let mut j = journal(vec![entry("a", CaStatus::Active, T0, T0 + day)]);
    j.add_prepared(entry(
        "b",
        CaStatus::Prepared,
        T0 + TD::hours(12),
        T0 + TD::hours(36),
    ))
    .unwrap();
    // A second prepared CA is refused and not recorded.
    assert!(matches!(
        j.add_prepared(entry("c", CaStatus::Prepared, T0, T0 + day)),
        Err(CaError::JournalMalformed(m)) if m.contains("2 entries are prepared")
    ));
    assert!(matches!(
        j.add_prepared(entry("d", CaStatus::Active, T0, T0 + day)),
        Err(CaError::JournalMalformed(m)) if m.contains("new CA d is not prepared")
    ));
    assert_eq!(j.entries.len(), 2);

    assert!(
        matches!(
            j.activate("a", T0),
            Err(CaError::JournalMalformed(m)) if m.contains("CA a is not prepared")
        ),
        "only prepared CAs activate"
    );
    assert_eq!(
        j.active().unwrap().id,
        "a",
        "a failed activation changes nothing"
    );
    let now = T0 + TD::hours(20);
    assert_eq!(j.activate("b", now).unwrap(), Some("a".into()));
    assert_eq!(j.get("a").unwrap().status, CaStatus::Old);
    assert_eq!(j.active().unwrap().id, "b");
    assert_eq!(j.active().unwrap().activated_at, Some(now));

    let gone = j.prune(&["a".into()]);
    assert_eq!(gone.len(), 1);
    assert_eq!(j.entries.len(), 1);
}

#[test]
fn bundle_roots_publish_prepared_active_and_unexpired_old_once() {
    let day = TD::hours(24);
    let mut shared_root_old = entry("o", CaStatus::Old, T0 - day, T0 + TD::hours(1));
    shared_root_old.root_cert = cert(b'a');
    let j = journal(vec![
        entry("x", CaStatus::Old, T0 - day, T0), // expired
        entry("b", CaStatus::Prepared, T0, T0 + day),
        shared_root_old,
        entry("a", CaStatus::Active, T0, T0 + day),
        entry("c", CaStatus::Old, T0 - day, T0 + TD::hours(2)),
    ]);
    assert_eq!(
        bundle_roots(&j, T0),
        vec![cert(b'a'), cert(b'b'), cert(b'c')]
    );
    assert_eq!(
        bundle_roots(&j, T0 + TD::hours(2)),
        vec![cert(b'a'), cert(b'b')]
    );
}

#[test]
fn next_deadline_is_the_earliest_pending_step() {
    let day = TD::hours(24);
    assert_eq!(
        next_deadline(&journal(vec![])),
        Some(OffsetDateTime::UNIX_EPOCH)
    );
    let a = entry("a", CaStatus::Active, T0, T0 + day);
    assert_eq!(
        next_deadline(&journal(vec![a.clone()])),
        Some(T0 + TD::hours(12))
    );
    let b = entry(
        "b",
        CaStatus::Prepared,
        T0 + TD::hours(12),
        T0 + TD::hours(36),
    );
    assert_eq!(
        next_deadline(&journal(vec![a, b.clone()])),
        Some(T0 + TD::hours(20))
    );
    let old = entry("o", CaStatus::Old, T0 - day, T0 + TD::hours(3));
    let mut active_b = b;
    active_b.status = CaStatus::Active;
    assert_eq!(
        next_deadline(&journal(vec![old, active_b])),
        Some(T0 + TD::hours(3))
    );
}

#[test]
fn validate_rejects_inconsistent_journals() {
    let day = TD::hours(24);
    // (case, what the message must say, journal)
    let bad = [
        ("version", "version 2 is not supported", {
            let mut j = journal(vec![]);
            j.version = 2;
            j
        }),
        (
            "two active",
            "2 entries are active",
            journal(vec![
                entry("a", CaStatus::Active, T0, T0 + day),
                entry("b", CaStatus::Active, T0, T0 + day),
            ]),
        ),
        (
            "duplicate id",
            "CA a appears twice",
            journal(vec![
                entry("a", CaStatus::Old, T0, T0 + day),
                entry("a", CaStatus::Active, T0, T0 + day),
            ]),
        ),
        (
            "inverted validity",
            "CA a has notBefore >= notAfter",
            journal(vec![entry("a", CaStatus::Active, T0 + day, T0)]),
        ),
    ];
    for (name, says, j) in bad {
        match j.validate() {
            Err(CaError::JournalMalformed(m)) => assert!(m.contains(says), "{name}: {m}"),
            other => panic!("{name}: expected JournalMalformed, got {other:?}"),
        }
    }
}

#[test]
fn json_round_trip_with_pem_certificates() {
    let c = rcgen::generate_simple_self_signed(vec!["x.example".into()])
        .unwrap()
        .cert;
    let mut e = entry("a", CaStatus::Active, T0, T0 + TD::hours(24));
    e.ca_cert = c.der().clone();
    e.root_cert = c.der().clone();
    e.intermediates = vec![c.der().clone()];
    e.activated_at = Some(T0);
    let j = Journal {
        entries: vec![e],
        ..Journal::new(&td())
    };
    let json = j.to_json();
    assert!(json.contains("-----BEGIN CERTIFICATE-----"), "{json}");
    assert!(
        json.contains("\"not_after\": \"2030-01-02T00:00:00Z\""),
        "{json}"
    );
    assert!(json.contains("\"status\": \"active\"") && json.contains("\"key_type\": \"ec-p256\""));
    assert_eq!(Journal::from_json(&json).unwrap(), j);

    let unknown = json.replacen("\"version\"", "\"surprise\": 1, \"version\"", 1);
    assert!(matches!(
        Journal::from_json(&unknown),
        Err(CaError::JournalMalformed(m)) if m.contains("unknown field `surprise`")
    ));
    assert!(matches!(
        Journal::from_json("{"),
        Err(CaError::JournalMalformed(m)) if m.contains("EOF")
    ));
    // Certificates must be one parsable certificate each.
    let pem = sigil_spiffe::pem::encode_block("CERTIFICATE", c.der());
    let two = json.replacen(
        &pem.replace('\n', "\\n"),
        &(pem.clone() + &pem).replace('\n', "\\n"),
        1,
    );
    assert_ne!(two, json);
    assert!(matches!(
        Journal::from_json(&two),
        Err(CaError::JournalMalformed(m)) if m.contains("expected exactly one certificate, found 2")
    ));
    let junk = sigil_spiffe::pem::encode_block("CERTIFICATE", b"junk");
    let corrupt = json.replacen(&pem.replace('\n', "\\n"), &junk.replace('\n', "\\n"), 1);
    assert!(matches!(
        Journal::from_json(&corrupt),
        Err(CaError::JournalMalformed(m)) if m.contains("certificate #0 is corrupt")
    ));
}
