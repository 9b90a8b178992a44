//! Conformance: revocations and the issued-log queries that find what to revoke.

use sigil_datastore::{Error, IssuedCert, IssuedFilter, IssuedKind, Revocation};

use super::{NOW, TestDb, id};

fn issued(serial: &str, spiffe: &str, kind: IssuedKind, agent: Option<&str>) -> IssuedCert {
    IssuedCert {
        serial_hex: serial.into(),
        spiffe_id: id(spiffe),
        kind,
        issued_by: "server-1".into(),
        agent_id: agent.map(id),
        entry_id: (kind == IssuedKind::X509Svid).then(|| format!("entry-{spiffe}")),
        not_after: NOW + 100,
        issued_at: NOW,
    }
}

pub async fn revocations(db: TestDb) {
    let store = db.open().await;
    let agent = "spiffe://example.org/spire/agent/n1";
    let web = issued(
        "0a",
        "spiffe://example.org/web",
        IssuedKind::X509Svid,
        Some(agent),
    );
    let mut web_old = issued(
        "0b",
        "spiffe://example.org/web",
        IssuedKind::X509Svid,
        Some(agent),
    );
    web_old.not_after = NOW - 1;
    let db_svid = issued(
        "0c",
        "spiffe://example.org/db",
        IssuedKind::X509Svid,
        Some("spiffe://example.org/spire/agent/n2"),
    );
    let own = issued("0d", agent, IssuedKind::AgentSvid, None);
    for c in [&web, &web_old, &db_svid, &own] {
        store.record_issued(c.clone()).await.unwrap();
    }

    // What --entry and --agent select: unexpired only; the agent's own SVIDs and what it
    // obtained, not another agent's.
    let by_entry = store
        .list_issued(
            &IssuedFilter::Entry("entry-spiffe://example.org/web".into()),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(serials(&by_entry), ["a"]);
    let by_agent = store
        .list_issued(&IssuedFilter::Agent(id(agent)), NOW)
        .await
        .unwrap();
    assert_eq!(serials(&by_agent), ["a", "d"]);
    let none = store
        .list_issued(&IssuedFilter::Entry("nope".into()), NOW)
        .await
        .unwrap();
    assert!(none.is_empty());

    // A revocation moves the configuration revision (agents' streams carry it); repeating
    // it changes nothing and keeps the first reason.
    let r0 = store.config_revision().await.unwrap();
    let new = store
        .revoke(vec![Revocation::of(&web, "keyCompromise", NOW)])
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    let r1 = store.config_revision().await.unwrap();
    assert!(r1 > r0, "config revision {r0} -> {r1}");
    let again = store
        .revoke(vec![
            Revocation::of(&web, "superseded", NOW + 5),
            Revocation::of(&own, "superseded", NOW + 5),
        ])
        .await
        .unwrap();
    assert_eq!(serials_r(&again), ["d"]);
    let r2 = store.config_revision().await.unwrap();
    assert!(r2 > r1);
    let unchanged = store
        .revoke(vec![Revocation::of(&own, "superseded", NOW + 9)])
        .await
        .unwrap();
    assert!(unchanged.is_empty());
    assert_eq!(
        store.config_revision().await.unwrap(),
        r2,
        "no-op must not move the revision"
    );

    let all = store.list_revocations().await.unwrap();
    assert_eq!(serials_r(&all), ["a", "d"]);
    assert_eq!(all[0].reason, "keyCompromise");
    assert_eq!(all[0].revoked_at, NOW);
    assert_eq!(all[0].spiffe_id, id("spiffe://example.org/web"));
    assert_eq!(all[0].agent_id, Some(id(agent)));
    assert_eq!(
        all[0].entry_id.as_deref(),
        Some("entry-spiffe://example.org/web")
    );
    assert_eq!(all[1].agent_id, None);

    // Bad input stores nothing.
    let mut bad = Revocation::of(&db_svid, "", NOW);
    assert!(matches!(
        store
            .revoke(vec![Revocation::of(&db_svid, "x", NOW), bad.clone()])
            .await,
        Err(Error::Invalid(_))
    ));
    bad.reason = "unspecified".into();
    bad.serial_hex = "zz".into();
    assert!(matches!(
        store.revoke(vec![bad]).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.list_revocations().await.unwrap().len(), 2);
    assert_eq!(store.config_revision().await.unwrap(), r2);

    // Serials are normalized like the issued log's.
    let mut colons = Revocation::of(&db_svid, "unspecified", NOW);
    colons.serial_hex = "00:0C".into();
    assert_eq!(serials_r(&store.revoke(vec![colons]).await.unwrap()), ["c"]);

    // Pruned after notAfter, which moves the revision; nothing to prune does not.
    let r3 = store.config_revision().await.unwrap();
    assert_eq!(store.prune_revocations(NOW + 100).await.unwrap(), 0);
    assert_eq!(store.config_revision().await.unwrap(), r3);
    assert_eq!(store.prune_revocations(NOW + 101).await.unwrap(), 3);
    assert!(store.config_revision().await.unwrap() > r3);
    assert!(store.list_revocations().await.unwrap().is_empty());

    // Survives a reopen.
    store
        .revoke(vec![Revocation::of(&web, "cessationOfOperation", NOW)])
        .await
        .unwrap();
    store.close().await;
    let store = db.open().await;
    assert_eq!(serials_r(&store.list_revocations().await.unwrap()), ["a"]);
}

fn serials(c: &[IssuedCert]) -> Vec<&str> {
    c.iter().map(|c| c.serial_hex.as_str()).collect()
}

fn serials_r(r: &[Revocation]) -> Vec<&str> {
    r.iter().map(|r| r.serial_hex.as_str()).collect()
}
