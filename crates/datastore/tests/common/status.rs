//! Conformance: the proxies' status reports shared by server replicas.

use sigil_datastore::Error;

use super::TestDb;

fn rec(id: &str, data: &[u8]) -> (String, Vec<u8>) {
    (id.to_owned(), data.to_vec())
}

pub async fn proxy_status(db: TestDb) {
    let store = db.open().await;
    let before = store.revision().await.unwrap();
    let (a, b) = (
        "spiffe://example.org/spire/agent/a",
        "spiffe://example.org/spire/agent/b",
    );
    store
        .put_proxy_status(a, vec![rec("p1", b"one"), rec("p2", b"two")], 100)
        .await
        .unwrap();
    store
        .put_proxy_status(b, vec![rec("p1", &[0, 255, 7])], 150)
        .await
        .unwrap();
    // A put replaces the agent's whole set: p1 goes, p2 changes.
    store
        .put_proxy_status(a, vec![rec("p2", b"two again")], 200)
        .await
        .unwrap();
    let all = store.list_proxy_status(None, 0).await.unwrap();
    let got: Vec<_> = all
        .iter()
        .map(|r| {
            (
                r.agent_id.as_str(),
                r.proxy_id.as_str(),
                r.data.clone(),
                r.updated_at,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (a, "p2", b"two again".to_vec(), 200),
            (b, "p1", vec![0, 255, 7], 150),
        ]
    );
    let only_a = store.list_proxy_status(Some(a), 0).await.unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(store.list_proxy_status(None, 160).await.unwrap().len(), 1);
    // Status is not configuration: the store revision does not move.
    assert_eq!(store.revision().await.unwrap(), before);
    assert_eq!(store.prune_proxy_status(160).await.unwrap(), 1);
    assert_eq!(store.list_proxy_status(None, 0).await.unwrap().len(), 1);
    store.put_proxy_status(a, vec![], 300).await.unwrap();
    assert!(store.list_proxy_status(None, 0).await.unwrap().is_empty());
    assert!(matches!(
        store.put_proxy_status(" ", vec![], 300).await,
        Err(Error::Invalid(_))
    ));
}
