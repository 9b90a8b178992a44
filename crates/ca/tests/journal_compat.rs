//! Journals written before the rotation logic was shared between X.509 CAs and JWT keys
//! (fixtures captured from that code) still load, re-serialise byte for byte, and plan the
//! same steps.

use sigil_ca::rotation::{self, Action, CaStatus};
use sigil_ca::{Journal, JwtJournal, jwt};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn hours(h: i64) -> OffsetDateTime {
    T0 + time::Duration::hours(h)
}

const X509_PREPARED: &str = include_str!("fixtures/x509-journal-v1-prepared.json");
const X509_OLD: &str = include_str!("fixtures/x509-journal-v1-old.json");
const JWT_PREPARED: &str = include_str!("fixtures/jwt-journal-v1-prepared.json");
const JWT_OLD: &str = include_str!("fixtures/jwt-journal-v1-old.json");

#[test]
fn x509_journals_from_before_the_refactor_load_and_plan_the_same() {
    let j = Journal::from_json(X509_PREPARED).unwrap();
    assert_eq!(j.to_json(), X509_PREPARED);
    let statuses: Vec<CaStatus> = j.entries.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [CaStatus::Active, CaStatus::Prepared]);
    let prepared = "d827cb256b2bee958c88f35f441a638391a24043";
    assert_eq!(j.prepared().unwrap().id, prepared);
    assert_eq!(rotation::plan(&j, hours(12)), Action::None);
    assert_eq!(
        rotation::plan(&j, hours(20)),
        Action::Activate(prepared.into())
    );
    assert_eq!(
        rotation::next_deadline(&j),
        Some(datetime!(2030-01-01 19:59:58.333333334 UTC))
    );
    assert_eq!(rotation::bundle_roots(&j, hours(12)).len(), 2);

    let j = Journal::from_json(X509_OLD).unwrap();
    assert_eq!(j.to_json(), X509_OLD);
    let statuses: Vec<CaStatus> = j.entries.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [CaStatus::Old, CaStatus::Active]);
    assert_eq!(
        rotation::next_deadline(&j),
        Some(datetime!(2030-01-02 11:59:55 UTC))
    );
    assert_eq!(rotation::plan(&j, hours(32)), Action::None);
    assert_eq!(
        rotation::plan(&j, datetime!(2030-01-02 11:59:55 UTC)),
        Action::Prepare
    );
    assert_eq!(
        rotation::plan(&j, hours(36)),
        Action::Prune(vec![prepared.into()])
    );
}

#[test]
fn jwt_journals_from_before_the_refactor_load_and_plan_the_same() {
    let j = JwtJournal::from_json(JWT_PREPARED).unwrap();
    assert_eq!(j.to_json(), JWT_PREPARED);
    let statuses: Vec<CaStatus> = j.keys.iter().map(|k| k.status).collect();
    assert_eq!(statuses, [CaStatus::Active, CaStatus::Prepared]);
    assert!(j.retired.is_empty());
    let prepared = "QVzBIC6FgrNoMyXgHuxIGARn5vT8ZHp5";
    assert_eq!(j.prepared().unwrap().kid, prepared);
    assert_eq!(jwt::plan(&j, hours(12)), Action::None);
    assert_eq!(jwt::next_deadline(&j), Some(hours(20)));
    assert_eq!(jwt::plan(&j, hours(20)), Action::Activate(prepared.into()));

    let j = JwtJournal::from_json(JWT_OLD).unwrap();
    assert_eq!(j.to_json(), JWT_OLD);
    let statuses: Vec<CaStatus> = j.keys.iter().map(|k| k.status).collect();
    assert_eq!(statuses, [CaStatus::Old, CaStatus::Active]);
    assert_eq!(j.retired, ["IDiQ80ItvuwTZh59MaDME7IRl1TMtXlc"]);
    assert_eq!(jwt::plan(&j, hours(32)), Action::None);
    assert_eq!(jwt::next_deadline(&j), Some(hours(36)));
    assert_eq!(
        jwt::plan(&j, hours(36)),
        Action::Prune(vec![prepared.into()])
    );
}
