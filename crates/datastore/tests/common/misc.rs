//! Conformance: join tokens, bundles, CA journals, issued certificates, revisions, persistence.

use std::sync::Arc;

use sigil_datastore::{
    AgentSerials, Error, IssuedCert, IssuedKind, JoinToken, ListEntriesFilter, NewAgent,
};
use tokio::sync::Barrier;

use super::{NOW, TestDb, id, list_all, sels, spec, td};

fn token(value: &str, expires_at: i64) -> JoinToken {
    JoinToken {
        token: value.into(),
        spiffe_id: Some(id("spiffe://example.org/node-alias")),
        expires_at,
    }
}

pub async fn join_token_single_use(db: TestDb) {
    let store = db.open().await;
    let t = token("tok-123456", NOW + 600);
    store.create_join_token(t.clone()).await.unwrap();
    assert_eq!(
        store.get_join_token("tok-123456").await.unwrap(),
        Some(t.clone())
    );
    match store.create_join_token(t.clone()).await {
        Err(Error::AlreadyExists { what, id }) => {
            assert_eq!(what, "join token");
            assert!(!id.contains("123456"), "the secret is not echoed: {id}");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let no_alias = JoinToken {
        token: "tok-plain".into(),
        spiffe_id: None,
        expires_at: NOW + 1,
    };
    store.create_join_token(no_alias.clone()).await.unwrap();

    assert_eq!(
        store.consume_join_token("tok-123456", NOW).await.unwrap(),
        t
    );
    assert!(matches!(
        store.consume_join_token("tok-123456", NOW).await,
        Err(Error::NotFound {
            what: "join token",
            ..
        })
    ));
    assert_eq!(store.get_join_token("tok-123456").await.unwrap(), None);
    assert_eq!(
        store.consume_join_token("tok-plain", NOW).await.unwrap(),
        no_alias
    );
    assert!(matches!(
        store.consume_join_token("never", NOW).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.create_join_token(token("", NOW)).await,
        Err(Error::Invalid(_))
    ));
}

pub async fn join_token_expiry_and_prune(db: TestDb) {
    let store = db.open().await;
    store
        .create_join_token(token("expiring", NOW + 10))
        .await
        .unwrap();
    match store.consume_join_token("expiring", NOW + 10).await {
        Err(Error::Expired {
            what, expired_at, ..
        }) => {
            assert_eq!(what, "join token");
            assert_eq!(expired_at, NOW + 10);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(
        matches!(
            store.consume_join_token("expiring", NOW).await,
            Err(Error::NotFound { .. })
        ),
        "an expired token is gone after the failed use"
    );

    store
        .create_join_token(token("old", NOW - 1))
        .await
        .unwrap();
    store.create_join_token(token("edge", NOW)).await.unwrap();
    store
        .create_join_token(token("fresh", NOW + 100))
        .await
        .unwrap();
    assert_eq!(store.prune_join_tokens(NOW).await.unwrap(), 2);
    assert_eq!(store.get_join_token("old").await.unwrap(), None);
    assert_eq!(store.get_join_token("edge").await.unwrap(), None);
    assert!(store.get_join_token("fresh").await.unwrap().is_some());
    assert_eq!(store.prune_join_tokens(NOW).await.unwrap(), 0);
}

pub async fn join_token_concurrent_consume(db: TestDb) {
    let store = db.open().await;
    const CONSUMERS: usize = 12;
    for round in 0..5 {
        let value = format!("race-{round}");
        store
            .create_join_token(token(&value, NOW + 60))
            .await
            .unwrap();
        let barrier = Arc::new(Barrier::new(CONSUMERS));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONSUMERS {
            let (store, barrier, value) = (store.clone(), barrier.clone(), value.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                store.consume_join_token(&value, NOW).await
            });
        }
        let (mut won, mut lost) = (0, 0);
        while let Some(res) = tasks.join_next().await {
            match res.unwrap() {
                Ok(t) => {
                    assert_eq!(t.token, value);
                    won += 1;
                }
                Err(Error::NotFound { .. }) => lost += 1,
                Err(e) => panic!("round {round}: unexpected error {e}"),
            }
        }
        assert_eq!(
            (won, lost),
            (1, CONSUMERS - 1),
            "round {round}: exactly one consumer wins"
        );
    }
}

pub async fn bundles(db: TestDb) {
    let store = db.open().await;
    let own = td("example.org");
    let fed = td("partner.org");
    assert_eq!(store.get_bundle(&own).await.unwrap(), None);

    let b1 = store
        .set_bundle(&own, br#"{"keys":[1]}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(
        (b1.sequence, b1.updated_at, b1.trust_domain.clone()),
        (1, NOW, own.clone())
    );
    let b2 = store
        .set_bundle(&own, br#"{"keys":[2]}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(b2.sequence, 2);
    assert_eq!(store.get_bundle(&own).await.unwrap(), Some(b2.clone()));

    let b3 = store
        .update_bundle(&own, br#"{"keys":[3]}"#.to_vec(), 2)
        .await
        .unwrap();
    assert_eq!(b3.sequence, 3);
    match store
        .update_bundle(&own, br#"{"stale":true}"#.to_vec(), 2)
        .await
    {
        Err(Error::Conflict {
            what,
            id,
            expected,
            actual,
        }) => {
            assert_eq!(
                (what, id.as_str(), expected, actual),
                ("bundle", "example.org", 2, 3)
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_bundle(&own).await.unwrap(),
        Some(b3.clone()),
        "loser wrote nothing"
    );
    assert!(matches!(
        store.update_bundle(&own, b"{}".to_vec(), 0).await,
        Err(Error::Conflict {
            expected: 0,
            actual: 3,
            ..
        })
    ));
    assert!(matches!(
        store.update_bundle(&fed, b"{}".to_vec(), 5).await,
        Err(Error::NotFound { what: "bundle", .. })
    ));
    let f1 = store
        .update_bundle(&fed, br#"{"fed":1}"#.to_vec(), 0)
        .await
        .unwrap();
    assert_eq!(f1.sequence, 1);

    let listed = store.list_bundles().await.unwrap();
    assert_eq!(
        listed,
        vec![b3.clone(), f1.clone()],
        "ordered by trust domain"
    );

    assert_eq!(store.delete_bundle(&fed).await.unwrap(), f1);
    assert!(matches!(
        store.delete_bundle(&fed).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.list_bundles().await.unwrap(), vec![b3]);
    assert!(matches!(
        store.set_bundle(&fed, vec![]).await,
        Err(Error::Invalid(_))
    ));
}

pub async fn bundle_concurrent_compare_and_swap(db: TestDb) {
    let store = db.open().await;
    let own = td("example.org");
    store.set_bundle(&own, b"v1".to_vec()).await.unwrap();
    const WRITERS: usize = 10;
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, barrier, own) = (store.clone(), barrier.clone(), own.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            store
                .update_bundle(&own, format!("writer {i}").into_bytes(), 1)
                .await
        });
    }
    let (mut won, mut conflicts) = (Vec::new(), 0);
    while let Some(res) = tasks.join_next().await {
        match res.unwrap() {
            Ok(b) => won.push(b),
            Err(Error::Conflict {
                expected: 1,
                actual: 2,
                ..
            }) => conflicts += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((won.len(), conflicts), (1, WRITERS - 1));
    assert_eq!(store.get_bundle(&own).await.unwrap(), Some(won.remove(0)));
}

pub async fn ca_journal(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.get_ca_journal("server-1").await.unwrap(), None);
    store
        .set_ca_journal("server-1", br#"{"x509_cas":[]}"#.to_vec())
        .await
        .unwrap();
    store
        .set_ca_journal("server-2", b"{}".to_vec())
        .await
        .unwrap();
    store
        .set_ca_journal("server-1", br#"{"x509_cas":[1]}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.get_ca_journal("server-1").await.unwrap(),
        Some(br#"{"x509_cas":[1]}"#.to_vec())
    );
    assert_eq!(
        store.get_ca_journal("server-2").await.unwrap(),
        Some(b"{}".to_vec())
    );
    assert!(matches!(
        store.set_ca_journal("", b"{}".to_vec()).await,
        Err(Error::Invalid(_))
    ));
}

pub async fn issued_certs(db: TestDb) {
    let store = db.open().await;
    let cert = |serial: &str, kind, not_after| IssuedCert {
        serial_hex: serial.into(),
        spiffe_id: id("spiffe://example.org/web"),
        kind,
        issued_by: "server-1".into(),
        agent_id: Some(id("spiffe://example.org/spire/agent/n1")),
        entry_id: Some("entry-1".into()),
        not_after,
        issued_at: NOW,
    };
    store
        .record_issued(cert("00:AB:CD", IssuedKind::X509Svid, NOW + 10))
        .await
        .unwrap();
    store
        .record_issued(cert("01", IssuedKind::AgentSvid, NOW - 10))
        .await
        .unwrap();
    let mut ca = cert("ff", IssuedKind::Ca, NOW + 1000);
    (ca.agent_id, ca.entry_id) = (None, None);
    store.record_issued(ca.clone()).await.unwrap();

    let got = store.get_issued("abcd").await.unwrap().expect("recorded");
    assert_eq!(got.serial_hex, "abcd");
    assert_eq!(got.kind, IssuedKind::X509Svid);
    assert_eq!(got.entry_id.as_deref(), Some("entry-1"));
    assert_eq!(
        store.get_issued("FF").await.unwrap(),
        Some(IssuedCert {
            serial_hex: "ff".into(),
            ..ca
        })
    );
    assert_eq!(store.get_issued("1234").await.unwrap(), None);
    match store
        .record_issued(cert("0abcd", IssuedKind::X509Svid, NOW))
        .await
    {
        Err(Error::AlreadyExists { what, id }) => {
            assert_eq!((what, id.as_str()), ("issued certificate", "abcd"))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(
        store.get_issued("zz").await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.count_issued().await.unwrap(), 3);
    assert_eq!(store.prune_issued(NOW).await.unwrap(), 1);
    assert_eq!(store.count_issued().await.unwrap(), 2);
    assert_eq!(store.get_issued("01").await.unwrap(), None);
}

pub async fn revision_increments(db: TestDb) {
    let store = db.open().await;
    let r0 = store.revision().await.unwrap();
    let e = store
        .create_entry(spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    assert_eq!(store.revision().await.unwrap(), r0 + 1);
    assert_eq!(e.revision_number, r0 + 1);
    let u = store.update_entry(&e.id, e.spec()).await.unwrap();
    assert_eq!(
        (u.revision_number, store.revision().await.unwrap()),
        (r0 + 2, r0 + 2)
    );
    assert!(matches!(
        store.create_entry(spec("w", "agent", &["t:1"])).await,
        Err(Error::AlreadyExists { id, .. }) if id == e.id
    ));
    assert_eq!(
        store.revision().await.unwrap(),
        r0 + 2,
        "a refused write changes nothing"
    );

    let agent = NewAgent {
        spiffe_id: id("spiffe://example.org/spire/agent/n"),
        attestation_type: "join_token".into(),
        cert_serial: "1".into(),
        cert_not_after: NOW,
        selectors: sels(&["join_token:x"]),
        can_reattest: false,
    };
    store.create_agent(agent.clone()).await.unwrap();
    store
        .set_node_selectors(&agent.spiffe_id, sels(&["t:2"]))
        .await
        .unwrap();
    let serials = AgentSerials {
        cert_serial: "2".into(),
        cert_not_after: NOW,
        new_cert_serial: None,
        new_cert_not_after: None,
    };
    store
        .update_agent_serials(&agent.spiffe_id, serials)
        .await
        .unwrap();
    store
        .set_agent_banned(&agent.spiffe_id, true)
        .await
        .unwrap();
    store.delete_agent(&agent.spiffe_id).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), r0 + 7);
    store
        .set_bundle(&td("example.org"), b"{}".to_vec())
        .await
        .unwrap();
    store
        .update_bundle(&td("example.org"), b"{}".to_vec(), 1)
        .await
        .unwrap();
    store.delete_bundle(&td("example.org")).await.unwrap();
    store.delete_entry(&e.id).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), r0 + 11);

    // Tokens, journals and the issued log are not watched: no revision.
    store.create_join_token(token("t", NOW + 1)).await.unwrap();
    store.consume_join_token("t", NOW).await.unwrap();
    store.set_ca_journal("s", b"{}".to_vec()).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), r0 + 11);
}

pub async fn persistence_across_reopen(db: TestDb) {
    let store = db.open().await;
    let e = store
        .create_entry(spec("w", "agent", &["t:1", "t:2"]))
        .await
        .unwrap();
    let agent = NewAgent {
        spiffe_id: id("spiffe://example.org/spire/agent/n"),
        attestation_type: "x509pop".into(),
        cert_serial: "abc".into(),
        cert_not_after: NOW,
        selectors: sels(&["t:n"]),
        can_reattest: true,
    };
    let a = store.create_agent(agent).await.unwrap();
    let b = store
        .set_bundle(&td("example.org"), b"{\"k\":1}".to_vec())
        .await
        .unwrap();
    store
        .create_join_token(token("persist", NOW + 100))
        .await
        .unwrap();
    store
        .set_ca_journal("s1", b"journal".to_vec())
        .await
        .unwrap();
    let issued = IssuedCert {
        serial_hex: "beef".into(),
        spiffe_id: e.spiffe_id.clone(),
        kind: IssuedKind::X509Svid,
        issued_by: "s1".into(),
        agent_id: None,
        entry_id: Some(e.id.clone()),
        not_after: NOW,
        issued_at: NOW,
    };
    store.record_issued(issued.clone()).await.unwrap();
    let rev = store.revision().await.unwrap();
    store.close().await;
    match store.get_entry(&e.id).await {
        Err(Error::Unavailable { detail, .. }) => assert!(detail.contains("closed"), "{detail}"),
        other => panic!("a closed store must answer Unavailable, got {other:?}"),
    }
    drop(store);

    let store = db.open().await;
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e.clone()));
    let by_sel = ListEntriesFilter {
        by_selectors: Some((sels(&["t:1", "t:2"]), sigil_datastore::SelectorMatch::Exact)),
        ..Default::default()
    };
    let listed = list_all(&*store, &by_sel).await;
    assert_eq!(listed.items, vec![e]);
    assert_eq!(store.get_agent(&a.spiffe_id).await.unwrap(), Some(a));
    assert_eq!(store.get_bundle(&td("example.org")).await.unwrap(), Some(b));
    assert!(store.get_join_token("persist").await.unwrap().is_some());
    assert_eq!(
        store.get_ca_journal("s1").await.unwrap(),
        Some(b"journal".to_vec())
    );
    assert_eq!(store.get_issued("beef").await.unwrap(), Some(issued));
    assert_eq!(store.revision().await.unwrap(), rev);
    store.close().await;
}
