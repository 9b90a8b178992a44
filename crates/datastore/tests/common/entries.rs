//! Conformance: registration entries.

use std::collections::BTreeSet;

use sigil_datastore::{Error, ListEntriesFilter, Pagination, Selector, SelectorMatch};

use super::{NOW, TestDb, id, ids, ids_of, list_all, sels, spec, td};

pub async fn entry_crud(db: TestDb) {
    let store = db.open().await;
    let mut s = spec(
        "web",
        "agent",
        &["unix:uid:1000", "k8s:ns:payments", "unix:uid:1000"],
    );
    s.x509_svid_ttl = 3600;
    s.jwt_svid_ttl = 300;
    s.dns_names = vec!["web.example.org".into(), "web".into()];
    s.federates_with = vec![td("b.org"), td("a.org"), td("b.org")];
    s.admin = true;
    s.downstream = false;
    s.expires_at = Some(NOW + 86_400);
    s.hint = "frontend".into();
    s.store_svid = true;

    let created = store.create_entry(s.clone()).await.unwrap();
    assert_eq!(created.id.len(), 36, "uuid-like id: {}", created.id);
    assert_eq!(created.spiffe_id, id("spiffe://example.org/web"));
    assert_eq!(created.parent_id, id("spiffe://example.org/agent"));
    assert_eq!(
        created.selectors,
        sels(&["k8s:ns:payments", "unix:uid:1000"])
    );
    assert_eq!(created.federates_with, vec![td("a.org"), td("b.org")]);
    assert_eq!(
        created.dns_names,
        vec!["web.example.org".to_string(), "web".to_string()]
    );
    assert_eq!((created.x509_svid_ttl, created.jwt_svid_ttl), (3600, 300));
    assert!(created.admin && !created.downstream && created.store_svid);
    assert_eq!(created.expires_at, Some(NOW + 86_400));
    assert_eq!(created.hint, "frontend");
    assert_eq!(created.created_at, NOW);
    assert!(created.revision_number > 0);

    let got = store
        .get_entry(&created.id)
        .await
        .unwrap()
        .expect("entry just created");
    assert_eq!(got, created);
    assert_eq!(store.count_entries().await.unwrap(), 1);

    let mut changed = created.spec();
    changed.selectors = sels(&["unix:uid:2000"]);
    changed.dns_names = vec![];
    changed.x509_svid_ttl = 60;
    changed.expires_at = None;
    let updated = store.update_entry(&created.id, changed).await.unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.selectors, sels(&["unix:uid:2000"]));
    assert_eq!(updated.x509_svid_ttl, 60);
    assert_eq!(updated.expires_at, None);
    assert!(updated.dns_names.is_empty());
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.revision_number > created.revision_number);
    assert_eq!(
        store.get_entry(&created.id).await.unwrap(),
        Some(updated.clone())
    );

    let deleted = store.delete_entry(&created.id).await.unwrap();
    assert_eq!(deleted, updated);
    assert_eq!(store.get_entry(&created.id).await.unwrap(), None);
    assert_eq!(store.count_entries().await.unwrap(), 0);
    match store.delete_entry(&created.id).await {
        Err(Error::NotFound { what, id }) => {
            assert_eq!(what, "registration entry");
            assert_eq!(id, created.id);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store
        .update_entry("no-such-id", spec("x", "agent", &["unix:uid:1"]))
        .await
    {
        Err(Error::NotFound { id, .. }) => assert_eq!(id, "no-such-id"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.get_entry("no-such-id").await.unwrap(), None);
}

pub async fn duplicate_entry(db: TestDb) {
    let store = db.open().await;
    let a = store
        .create_entry(spec("web", "agent", &["unix:uid:1", "k8s:ns:a"]))
        .await
        .unwrap();

    // Same SPIFFE ID, parent and selector set, in another order and with a repeat.
    let dup = spec("web", "agent", &["k8s:ns:a", "unix:uid:1", "k8s:ns:a"]);
    match store.create_entry(dup).await {
        Err(Error::AlreadyExists { what, id }) => {
            assert_eq!(what, "registration entry");
            assert_eq!(id, a.id, "the error names the existing entry");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // Other fields do not matter for uniqueness.
    let mut dup_other_fields = spec("web", "agent", &["unix:uid:1", "k8s:ns:a"]);
    dup_other_fields.hint = "different".into();
    assert!(matches!(
        store.create_entry(dup_other_fields).await,
        Err(Error::AlreadyExists { id, .. }) if id == a.id
    ));

    // Differing in any one of the three makes a distinct entry.
    let b = store
        .create_entry(spec("web", "agent", &["unix:uid:1"]))
        .await
        .unwrap();
    store
        .create_entry(spec("web", "agent2", &["unix:uid:1", "k8s:ns:a"]))
        .await
        .unwrap();
    store
        .create_entry(spec("api", "agent", &["unix:uid:1", "k8s:ns:a"]))
        .await
        .unwrap();
    assert_eq!(store.count_entries().await.unwrap(), 4);

    // Updating b into a's key collides with a; updating a onto itself does not.
    match store.update_entry(&b.id, a.spec()).await {
        Err(Error::AlreadyExists { id, .. }) => assert_eq!(id, a.id),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_entry(&b.id).await.unwrap(),
        Some(b.clone()),
        "b unchanged"
    );
    let mut a2 = a.spec();
    a2.hint = "same key, new hint".into();
    assert_eq!(
        store.update_entry(&a.id, a2).await.unwrap().hint,
        "same key, new hint"
    );
}

pub async fn invalid_entries_and_selectors(db: TestDb) {
    let store = db.open().await;
    let rev = store.revision().await.unwrap();

    match store.create_entry(spec("web", "agent", &[])).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("no selectors"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut bad = spec("web", "agent", &["unix:uid:1"]);
    bad.selectors.push(Selector {
        r#type: "k8s".into(),
        value: String::new(),
    });
    match store.create_entry(bad).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("has no value"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut bad = spec("web", "agent", &["unix:uid:1"]);
    bad.selectors.push(Selector {
        r#type: String::new(),
        value: "uid:1".into(),
    });
    match store.create_entry(bad).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("has no type"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    for text in ["k8s", "unix:", ":uid:1"] {
        assert!(
            matches!(Selector::parse(text), Err(Error::Invalid(_))),
            "{text}"
        );
    }
    let mut root = spec("web", "agent", &["unix:uid:1"]);
    root.spiffe_id = id("spiffe://example.org");
    match store.create_entry(root).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("trust domain ID"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut dns = spec("web", "agent", &["unix:uid:1"]);
    dns.dns_names = vec!["".into()];
    assert!(matches!(
        store.create_entry(dns).await,
        Err(Error::Invalid(_))
    ));

    let filter = ListEntriesFilter {
        by_selectors: Some((vec![], SelectorMatch::Any)),
        ..Default::default()
    };
    match store.list_entries(&filter, &Pagination::all()).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("empty selector set"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    assert_eq!(
        store.count_entries().await.unwrap(),
        0,
        "nothing half-written"
    );
    assert_eq!(
        store.revision().await.unwrap(),
        rev,
        "failed writes do not bump the revision"
    );
}

pub async fn list_filters_by_ids_hint_downstream(db: TestDb) {
    let store = db.open().await;
    let mut s1 = spec("a", "agent1", &["unix:uid:1"]);
    s1.hint = "h1".into();
    let e1 = store.create_entry(s1).await.unwrap();
    let mut s2 = spec("b", "agent1", &["unix:uid:2"]);
    s2.downstream = true;
    let e2 = store.create_entry(s2).await.unwrap();
    let mut s3 = spec("a", "agent2", &["unix:uid:3"]);
    s3.hint = "h1".into();
    s3.downstream = true;
    let e3 = store.create_entry(s3).await.unwrap();

    let cases = [
        (
            "none",
            ListEntriesFilter::default(),
            ids_of(&[&e1, &e2, &e3]),
        ),
        (
            "spiffe id",
            ListEntriesFilter {
                by_spiffe_id: Some(id("spiffe://example.org/a")),
                ..Default::default()
            },
            ids_of(&[&e1, &e3]),
        ),
        (
            "parent id",
            ListEntriesFilter {
                by_parent_id: Some(id("spiffe://example.org/agent1")),
                ..Default::default()
            },
            ids_of(&[&e1, &e2]),
        ),
        (
            "hint",
            ListEntriesFilter {
                by_hint: Some("h1".into()),
                ..Default::default()
            },
            ids_of(&[&e1, &e3]),
        ),
        (
            "downstream",
            ListEntriesFilter {
                by_downstream: Some(true),
                ..Default::default()
            },
            ids_of(&[&e2, &e3]),
        ),
        (
            "not downstream",
            ListEntriesFilter {
                by_downstream: Some(false),
                ..Default::default()
            },
            ids_of(&[&e1]),
        ),
        (
            "spiffe id and parent id",
            ListEntriesFilter {
                by_spiffe_id: Some(id("spiffe://example.org/a")),
                by_parent_id: Some(id("spiffe://example.org/agent2")),
                ..Default::default()
            },
            ids_of(&[&e3]),
        ),
        (
            "no match",
            ListEntriesFilter {
                by_spiffe_id: Some(id("spiffe://example.org/zzz")),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (name, filter, want) in cases {
        let page = list_all(&*store, &filter).await;
        assert_eq!(ids(&page), want, "filter {name}");
        assert_eq!(page.next_page_token, None, "filter {name}");
    }
}

pub async fn list_selector_matches(db: TestDb) {
    let store = db.open().await;
    let e1 = store
        .create_entry(spec("e1", "agent", &["t:a"]))
        .await
        .unwrap();
    let e2 = store
        .create_entry(spec("e2", "agent", &["t:a", "t:b"]))
        .await
        .unwrap();
    let e3 = store
        .create_entry(spec("e3", "agent", &["t:a", "t:b", "t:c"]))
        .await
        .unwrap();
    let e4 = store
        .create_entry(spec("e4", "agent", &["t:b"]))
        .await
        .unwrap();
    let e5 = store
        .create_entry(spec("e5", "other", &["t:d"]))
        .await
        .unwrap();

    use SelectorMatch::*;
    let cases = [
        (&["t:a", "t:b"][..], Exact, ids_of(&[&e2])),
        (&["t:a", "t:b"], Subset, ids_of(&[&e1, &e2, &e4])),
        (&["t:a", "t:b"], Superset, ids_of(&[&e2, &e3])),
        (&["t:a", "t:b"], Any, ids_of(&[&e1, &e2, &e3, &e4])),
        (&["t:a"], Exact, ids_of(&[&e1])),
        (&["t:a"], Subset, ids_of(&[&e1])),
        (&["t:a"], Superset, ids_of(&[&e1, &e2, &e3])),
        (&["t:b", "t:a", "t:b"], Exact, ids_of(&[&e2])),
        (
            &["t:a", "t:b", "t:c", "t:d"],
            Subset,
            ids_of(&[&e1, &e2, &e3, &e4, &e5]),
        ),
        (&["t:a", "t:b", "t:c", "t:d"], Superset, vec![]),
        (&["t:d", "t:x"], Any, ids_of(&[&e5])),
        (&["t:x"], Any, vec![]),
        // A value with colons is one selector, not a prefix match.
        (&["t:a:b"], Any, vec![]),
    ];
    for (given, how, want) in cases {
        let filter = ListEntriesFilter {
            by_selectors: Some((sels(given), how)),
            ..Default::default()
        };
        let page = list_all(&*store, &filter).await;
        assert_eq!(ids(&page), want, "{given:?} {how:?}");
    }

    // Combined with another filter (AND).
    let filter = ListEntriesFilter {
        by_parent_id: Some(id("spiffe://example.org/agent")),
        by_selectors: Some((sels(&["t:a", "t:b", "t:c", "t:d"]), Subset)),
        ..Default::default()
    };
    let page = list_all(&*store, &filter).await;
    assert_eq!(ids(&page), ids_of(&[&e1, &e2, &e3, &e4]));
}

pub async fn list_federates_with_matches(db: TestDb) {
    let store = db.open().await;
    let mut s1 = spec("f1", "agent", &["t:1"]);
    s1.federates_with = vec![td("a.org")];
    let f1 = store.create_entry(s1).await.unwrap();
    let mut s2 = spec("f2", "agent", &["t:2"]);
    s2.federates_with = vec![td("a.org"), td("b.org")];
    let f2 = store.create_entry(s2).await.unwrap();
    store
        .create_entry(spec("none", "agent", &["t:3"]))
        .await
        .unwrap();

    use SelectorMatch::*;
    let cases = [
        (&["a.org"][..], Exact, ids_of(&[&f1])),
        (&["a.org"], Superset, ids_of(&[&f1, &f2])),
        (&["a.org", "b.org"], Exact, ids_of(&[&f2])),
        (&["a.org", "b.org", "c.org"], Subset, ids_of(&[&f1, &f2])),
        (&["b.org"], Subset, vec![]),
        (&["b.org", "c.org"], Any, ids_of(&[&f2])),
    ];
    for (given, how, want) in cases {
        let tds = given.iter().map(|s| td(s)).collect();
        let filter = ListEntriesFilter {
            by_federates_with: Some((tds, how)),
            ..Default::default()
        };
        let page = list_all(&*store, &filter).await;
        assert_eq!(ids(&page), want, "{given:?} {how:?}");
    }
    let filter = ListEntriesFilter {
        by_federates_with: Some((vec![], Any)),
        ..Default::default()
    };
    assert!(matches!(
        store.list_entries(&filter, &Pagination::all()).await,
        Err(Error::Invalid(_))
    ));
}

pub async fn pagination(db: TestDb) {
    let store = db.open().await;
    let mut all = Vec::new();
    for i in 0..7 {
        let parent = if i % 2 == 0 { "even" } else { "odd" };
        all.push(
            store
                .create_entry(spec(&format!("w{i}"), parent, &["t:x"]))
                .await
                .unwrap()
                .id,
        );
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut page = Pagination::first(3);
    for _ in 0..10 {
        let got = store
            .list_entries(&ListEntriesFilter::default(), &page)
            .await
            .unwrap();
        sizes.push(got.items.len());
        seen.extend(ids(&got));
        match got.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, all, "every entry exactly once, in creation order");

    // An exact multiple ends without an empty page.
    let filter = ListEntriesFilter {
        by_parent_id: Some(id("spiffe://example.org/odd")),
        ..Default::default()
    };
    let first = store
        .list_entries(&filter, &Pagination::first(3))
        .await
        .unwrap();
    assert_eq!(
        ids(&first),
        [all[1].clone(), all[3].clone(), all[5].clone()]
    );
    assert_eq!(first.next_page_token, None);
    let first = store
        .list_entries(&filter, &Pagination::first(2))
        .await
        .unwrap();
    assert_eq!(ids(&first), [all[1].clone(), all[3].clone()]);
    let token = first.next_page_token.expect("one more page");
    let second = store
        .list_entries(
            &filter,
            &Pagination {
                page_size: 2,
                page_token: Some(token),
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&second), [all[5].clone()]);
    assert_eq!(second.next_page_token, None);

    let everything = list_all(&*store, &ListEntriesFilter::default()).await;
    assert_eq!(ids(&everything), all);
    assert_eq!(everything.next_page_token, None);

    let bad = Pagination {
        page_size: 2,
        page_token: Some("not-a-token".into()),
    };
    match store
        .list_entries(&ListEntriesFilter::default(), &bad)
        .await
    {
        Err(Error::Invalid(msg)) => assert!(msg.contains("page token"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub async fn update_rewrites_selector_index(db: TestDb) {
    let store = db.open().await;
    let mut s = spec("w", "agent", &["t:old"]);
    s.federates_with = vec![td("old.org")];
    let e = store.create_entry(s).await.unwrap();
    let mut changed = e.spec();
    changed.selectors = sels(&["t:new"]);
    changed.federates_with = vec![td("new.org")];
    store.update_entry(&e.id, changed).await.unwrap();

    let by = |s: &str| ListEntriesFilter {
        by_selectors: Some((sels(&[s]), SelectorMatch::Any)),
        ..Default::default()
    };
    let by_td = |s: &str| ListEntriesFilter {
        by_federates_with: Some((vec![td(s)], SelectorMatch::Any)),
        ..Default::default()
    };
    let none: Vec<String> = vec![];
    assert_eq!(ids(&list_all(&*store, &by("t:old")).await), none);
    assert_eq!(
        ids(&list_all(&*store, &by("t:new")).await),
        vec![e.id.clone()]
    );
    assert_eq!(ids(&list_all(&*store, &by_td("old.org")).await), none);
    assert_eq!(
        ids(&list_all(&*store, &by_td("new.org")).await),
        vec![e.id.clone()]
    );

    // Deleting removes the index rows too: a new entry with the old key is not a duplicate.
    store.delete_entry(&e.id).await.unwrap();
    assert_eq!(ids(&list_all(&*store, &by("t:new")).await), none);
    store
        .create_entry(spec("w", "agent", &["t:new"]))
        .await
        .unwrap();
}

pub async fn prune_entries(db: TestDb) {
    let store = db.open().await;
    let mut old = spec("old", "agent", &["t:1"]);
    old.expires_at = Some(NOW - 10);
    let old = store.create_entry(old).await.unwrap();
    let mut later = spec("later", "agent", &["t:2"]);
    later.expires_at = Some(NOW + 10);
    let later = store.create_entry(later).await.unwrap();
    let forever = store
        .create_entry(spec("forever", "agent", &["t:3"]))
        .await
        .unwrap();

    let rev = store.revision().await.unwrap();
    assert_eq!(store.prune_entries(NOW).await.unwrap(), 1);
    assert_eq!(store.revision().await.unwrap(), rev + 1);
    assert_eq!(store.get_entry(&old.id).await.unwrap(), None);
    assert!(store.get_entry(&later.id).await.unwrap().is_some());
    assert!(store.get_entry(&forever.id).await.unwrap().is_some());
    assert_eq!(store.prune_entries(NOW).await.unwrap(), 0);
    assert_eq!(
        store.revision().await.unwrap(),
        rev + 1,
        "nothing pruned, no new revision"
    );
}

pub async fn concurrent_entry_creates(db: TestDb) {
    let store = db.open().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .create_entry(spec(&format!("w{i}"), "agent", &["t:x"]))
                .await
        });
    }
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move { store.create_entry(spec("same", "agent", &["t:x"])).await });
    }
    let (mut ok, mut dup) = (BTreeSet::new(), 0);
    while let Some(res) = tasks.join_next().await {
        match res.unwrap() {
            Ok(e) => assert!(ok.insert(e.id)),
            Err(Error::AlreadyExists { .. }) => dup += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(
        (ok.len(), dup),
        (13, 7),
        "12 distinct + exactly one of the 8 duplicates"
    );
    assert_eq!(store.count_entries().await.unwrap(), 13);
    let listed = list_all(&*store, &ListEntriesFilter::default()).await;
    let revisions: BTreeSet<i64> = listed.items.iter().map(|e| e.revision_number).collect();
    assert_eq!(revisions.len(), 13, "each create got its own revision");
}
