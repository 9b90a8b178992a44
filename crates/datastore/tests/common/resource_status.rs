//! Conformance: cert-manager resource status, compare and set, and the issuing lease.

use std::sync::Arc;

use sigil_datastore::{ConfigKey, Error};

use super::TestDb;

fn key(kind: &str, ns: &str, name: &str) -> ConfigKey {
    ConfigKey::new(kind, ns, name)
}

pub async fn resource_status_compare_and_set(db: TestDb) {
    let store = db.open().await;
    let before = store.revision().await.unwrap();
    let k = key("Certificate", "payments", "billing");
    assert_eq!(store.get_status(&k).await.unwrap(), None);
    assert_eq!(
        store
            .put_status(&k, r#"{"ready":false}"#.into(), 0, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .put_status(&k, r#"{"ready":true}"#.into(), 1, 20)
            .await
            .unwrap(),
        2
    );
    // A writer that read version 1 loses, and learns the actual version.
    match store
        .put_status(&k, r#"{"stale":true}"#.into(), 1, 30)
        .await
    {
        Err(Error::Conflict {
            expected: 1,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    // "Create" when it exists is a conflict too.
    assert!(matches!(
        store.put_status(&k, "{}".into(), 0, 30).await,
        Err(Error::Conflict { .. })
    ));
    let got = store.get_status(&k).await.unwrap().unwrap();
    assert_eq!(
        (got.body.as_str(), got.version, got.updated_at_ms),
        (r#"{"ready":true}"#, 2, 20)
    );
    // Status is not configuration: the store revision does not move.
    assert_eq!(store.revision().await.unwrap(), before);
    assert_eq!(store.config_revision().await.unwrap(), 0);

    // Listing by kind and namespace, ordered.
    for (ns, name) in [("payments", "a"), ("other", "z")] {
        store
            .put_status(&key("Certificate", ns, name), "{}".into(), 0, 1)
            .await
            .unwrap();
    }
    store
        .put_status(&key("ClusterIssuer", "", "ca"), "{}".into(), 0, 1)
        .await
        .unwrap();
    let names = |v: Vec<sigil_datastore::StoredStatus>| {
        v.into_iter()
            .map(|s| format!("{}/{}", s.key.namespace, s.key.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_status("Certificate", None).await.unwrap()),
        ["other/z", "payments/a", "payments/billing"]
    );
    assert_eq!(
        names(
            store
                .list_status("Certificate", Some("payments"))
                .await
                .unwrap()
        ),
        ["payments/a", "payments/billing"]
    );
    assert_eq!(
        names(store.list_status("ClusterIssuer", None).await.unwrap()),
        ["/ca"]
    );

    // Bad input is refused with the key named; nothing is stored.
    let bad = key("Certificate", "payments", "has space");
    assert!(matches!(
        store.put_status(&bad, "{}".into(), 0, 1).await,
        Err(Error::Invalid(m)) if m.contains("has space")
    ));
    assert!(matches!(
        store.put_status(&k, "[1]".into(), 2, 1).await,
        Err(Error::Invalid(_))
    ));
    assert!(store.delete_status(&k).await.unwrap());
    assert!(!store.delete_status(&k).await.unwrap());
    assert_eq!(store.get_status(&k).await.unwrap(), None);
    store.close().await;
}

pub async fn resource_status_lease(db: TestDb) {
    let store = db.open().await;
    let k = key("Certificate", "payments", "billing");
    // The lease creates a row at version 0; the first status write still expects 0.
    assert!(
        store
            .acquire_status_lease(&k, "s1", 100, 200)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_status_lease(&k, "s2", 150, 250)
            .await
            .unwrap()
    );
    // The holder extends it.
    assert!(
        store
            .acquire_status_lease(&k, "s1", 150, 300)
            .await
            .unwrap()
    );
    let row = store.get_status(&k).await.unwrap().unwrap();
    assert_eq!(
        (row.version, row.lease_owner.as_str(), row.lease_until_ms),
        (0, "s1", 300)
    );
    assert_eq!(store.put_status(&k, "{}".into(), 0, 160).await.unwrap(), 1);
    // The status write keeps the lease.
    assert!(
        !store
            .acquire_status_lease(&k, "s2", 299, 400)
            .await
            .unwrap()
    );
    // Expired: another replica takes over.
    assert!(
        store
            .acquire_status_lease(&k, "s2", 300, 400)
            .await
            .unwrap()
    );
    // Released: free for anyone; releasing someone else's lease does nothing.
    store.release_status_lease(&k, "s1").await.unwrap();
    assert!(
        !store
            .acquire_status_lease(&k, "s1", 310, 400)
            .await
            .unwrap()
    );
    store.release_status_lease(&k, "s2").await.unwrap();
    assert!(
        store
            .acquire_status_lease(&k, "s1", 310, 400)
            .await
            .unwrap()
    );
    assert!(matches!(
        store.acquire_status_lease(&k, " ", 310, 400).await,
        Err(Error::Invalid(_))
    ));

    // Racing replicas: exactly one wins a fresh lease.
    let fresh = key("Certificate", "payments", "race");
    let store: Arc<dyn sigil_datastore::DataStore> = store;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, k) = (store.clone(), fresh.clone());
        tasks.push(tokio::spawn(async move {
            s.acquire_status_lease(&k, &format!("r{i}"), 1000, 2000)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
    // And of racing compare-and-set writers from one version, exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, k) = (store.clone(), fresh.clone());
        tasks.push(tokio::spawn(async move {
            s.put_status(&k, format!(r#"{{"w":{i}}}"#), 0, 1)
                .await
                .is_ok()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
    store.close().await;
}
