//! Conformance: attested agents and node selectors.

use sigil_datastore::{
    AgentSerials, AttestedAgent, Error, ListAgentsFilter, NewAgent, Page, Pagination, SelectorMatch,
};

use super::{NOW, TestDb, id, sels};

fn new_agent(name: &str, attestation_type: &str, selectors: &[&str]) -> NewAgent {
    NewAgent {
        spiffe_id: id(&format!("spiffe://example.org/spire/agent/{name}")),
        attestation_type: attestation_type.into(),
        cert_serial: "01".into(),
        cert_not_after: NOW + 3600,
        selectors: sels(selectors),
        can_reattest: attestation_type == "x509pop",
    }
}

fn names(page: &Page<AttestedAgent>) -> Vec<String> {
    page.items
        .iter()
        .map(|a| a.spiffe_id.path().rsplit('/').next().unwrap().to_owned())
        .collect()
}

pub async fn agent_lifecycle(db: TestDb) {
    let store = db.open().await;
    let mut a = new_agent(
        "n1",
        "x509pop",
        &[
            "x509pop:subject:cn:n1",
            "x509pop:ca:fp:ab",
            "x509pop:subject:cn:n1",
        ],
    );
    a.cert_serial = "0A:FF".into();
    let created = store.create_agent(a.clone()).await.unwrap();
    assert_eq!(created.spiffe_id, a.spiffe_id);
    assert_eq!(created.attestation_type, "x509pop");
    assert_eq!(created.cert_serial, "aff", "serial normalized");
    assert_eq!(created.cert_not_after, NOW + 3600);
    assert_eq!(
        (created.new_cert_serial.clone(), created.new_cert_not_after),
        (None, None)
    );
    assert_eq!(
        created.selectors,
        sels(&["x509pop:ca:fp:ab", "x509pop:subject:cn:n1"])
    );
    assert!(!created.banned && created.can_reattest);
    assert_eq!((created.created_at, created.updated_at), (NOW, NOW));
    assert_eq!(
        store.get_agent(&a.spiffe_id).await.unwrap(),
        Some(created.clone())
    );

    match store.create_agent(a.clone()).await {
        Err(Error::AlreadyExists { what, id }) => {
            assert_eq!(what, "agent");
            assert_eq!(id, a.spiffe_id.to_string());
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    let serials = AgentSerials {
        cert_serial: "0aff".into(),
        cert_not_after: NOW + 3600,
        new_cert_serial: Some("BEEF".into()),
        new_cert_not_after: Some(NOW + 7200),
    };
    let rotated = store
        .update_agent_serials(&a.spiffe_id, serials)
        .await
        .unwrap();
    assert_eq!(rotated.new_cert_serial.as_deref(), Some("beef"));
    assert_eq!(rotated.new_cert_not_after, Some(NOW + 7200));
    assert_eq!(rotated.selectors, created.selectors, "selectors untouched");
    let promoted = AgentSerials {
        cert_serial: "beef".into(),
        cert_not_after: NOW + 7200,
        new_cert_serial: None,
        new_cert_not_after: None,
    };
    let promoted = store
        .update_agent_serials(&a.spiffe_id, promoted)
        .await
        .unwrap();
    assert_eq!(
        (promoted.cert_serial.as_str(), promoted.new_cert_serial),
        ("beef", None)
    );

    let banned = store.set_agent_banned(&a.spiffe_id, true).await.unwrap();
    assert!(banned.banned);
    let only_banned = ListAgentsFilter {
        by_banned: Some(true),
        ..Default::default()
    };
    let page = store
        .list_agents(&only_banned, &Pagination::all())
        .await
        .unwrap();
    assert_eq!(names(&page), ["n1"]);

    let evicted = store.delete_agent(&a.spiffe_id).await.unwrap();
    assert_eq!(evicted, banned);
    assert_eq!(store.get_agent(&a.spiffe_id).await.unwrap(), None);
    assert!(
        store
            .get_node_selectors(&a.spiffe_id)
            .await
            .unwrap()
            .is_empty(),
        "selectors evicted"
    );

    let missing = &a.spiffe_id;
    assert!(matches!(
        store.delete_agent(missing).await,
        Err(Error::NotFound { what: "agent", .. })
    ));
    assert!(matches!(
        store.set_agent_banned(missing, true).await,
        Err(Error::NotFound { .. })
    ));
    let serials = AgentSerials {
        cert_serial: "1".into(),
        cert_not_after: 0,
        new_cert_serial: None,
        new_cert_not_after: None,
    };
    assert!(matches!(
        store.update_agent_serials(missing, serials.clone()).await,
        Err(Error::NotFound { .. })
    ));

    // After eviction the same node can attest again.
    store.create_agent(a.clone()).await.unwrap();

    let bad = AgentSerials {
        cert_serial: "not hex".into(),
        ..serials
    };
    assert!(matches!(
        store.update_agent_serials(&a.spiffe_id, bad).await,
        Err(Error::Invalid(_))
    ));
    let mut no_type = new_agent("n2", "", &[]);
    no_type.attestation_type = " ".into();
    assert!(matches!(
        store.create_agent(no_type).await,
        Err(Error::Invalid(_))
    ));
}

pub async fn agent_list_filters(db: TestDb) {
    let store = db.open().await;
    store
        .create_agent(new_agent("a", "join_token", &["join_token:tok-a"]))
        .await
        .unwrap();
    store
        .create_agent(new_agent("b", "x509pop", &["t:1", "t:2"]))
        .await
        .unwrap();
    store
        .create_agent(new_agent("c", "x509pop", &["t:1", "t:2", "t:3"]))
        .await
        .unwrap();
    let mut d = new_agent("d", "x509pop", &["t:1"]);
    d.cert_not_after = NOW - 1;
    store.create_agent(d).await.unwrap();
    store
        .set_agent_banned(&id("spiffe://example.org/spire/agent/c"), true)
        .await
        .unwrap();

    use SelectorMatch::*;
    let by_sel = |s: &[&str], how| ListAgentsFilter {
        by_selector_match: Some((sels(s), how)),
        ..Default::default()
    };
    let cases: Vec<(&str, ListAgentsFilter, &[&str])> = vec![
        ("all", ListAgentsFilter::default(), &["a", "b", "c", "d"]),
        (
            "banned",
            ListAgentsFilter {
                by_banned: Some(true),
                ..Default::default()
            },
            &["c"],
        ),
        (
            "not banned",
            ListAgentsFilter {
                by_banned: Some(false),
                ..Default::default()
            },
            &["a", "b", "d"],
        ),
        (
            "join_token",
            ListAgentsFilter {
                by_attestation_type: Some("join_token".into()),
                ..Default::default()
            },
            &["a"],
        ),
        (
            "can reattest",
            ListAgentsFilter {
                by_can_reattest: Some(true),
                ..Default::default()
            },
            &["b", "c", "d"],
        ),
        (
            "expires before",
            ListAgentsFilter {
                by_expires_before: Some(NOW),
                ..Default::default()
            },
            &["d"],
        ),
        ("exact", by_sel(&["t:1", "t:2"], Exact), &["b"]),
        ("subset", by_sel(&["t:1", "t:2"], Subset), &["b", "d"]),
        ("superset", by_sel(&["t:1", "t:2"], Superset), &["b", "c"]),
        (
            "any",
            by_sel(&["t:3", "join_token:tok-a"], Any),
            &["a", "c"],
        ),
        (
            "superset and not banned",
            ListAgentsFilter {
                by_selector_match: Some((sels(&["t:1"]), Superset)),
                by_banned: Some(false),
                ..Default::default()
            },
            &["b", "d"],
        ),
    ];
    for (name, filter, want) in cases {
        let page = store
            .list_agents(&filter, &Pagination::all())
            .await
            .unwrap();
        assert_eq!(names(&page), want, "filter {name}");
    }

    // Pages keep each agent's selectors whole.
    let first = store
        .list_agents(&ListAgentsFilter::default(), &Pagination::first(2))
        .await
        .unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.items[1].selectors, sels(&["t:1", "t:2"]));
    let token = first.next_page_token.clone().expect("more agents");
    let second = store
        .list_agents(
            &ListAgentsFilter::default(),
            &Pagination {
                page_size: 2,
                page_token: Some(token),
            },
        )
        .await
        .unwrap();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(second.items[0].selectors, sels(&["t:1", "t:2", "t:3"]));
    assert!(second.items[0].banned);
    assert_eq!(second.next_page_token, None);
}

pub async fn node_selectors(db: TestDb) {
    let store = db.open().await;
    let node = id("spiffe://example.org/spire/agent/x509pop/n9");
    assert!(store.get_node_selectors(&node).await.unwrap().is_empty());

    // Set before the agent is recorded, as attestation does.
    store
        .set_node_selectors(&node, sels(&["t:b", "t:a", "t:b"]))
        .await
        .unwrap();
    assert_eq!(
        store.get_node_selectors(&node).await.unwrap(),
        sels(&["t:a", "t:b"])
    );
    store
        .set_node_selectors(&node, sels(&["t:c"]))
        .await
        .unwrap();
    assert_eq!(
        store.get_node_selectors(&node).await.unwrap(),
        sels(&["t:c"])
    );

    let mut agent = new_agent("n9", "x509pop", &["t:d"]);
    agent.spiffe_id = node.clone();
    let created = store.create_agent(agent).await.unwrap();
    assert_eq!(
        created.selectors,
        sels(&["t:d"]),
        "create replaces the node selectors"
    );
    store
        .set_node_selectors(&node, sels(&["t:e", "t:f"]))
        .await
        .unwrap();
    let got = store.get_agent(&node).await.unwrap().unwrap();
    assert_eq!(got.selectors, sels(&["t:e", "t:f"]));

    store.set_node_selectors(&node, vec![]).await.unwrap();
    assert!(store.get_node_selectors(&node).await.unwrap().is_empty());

    let mut bad = sels(&["t:ok"]);
    bad[0].value.clear();
    match store.set_node_selectors(&node, bad).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("has no value"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}
