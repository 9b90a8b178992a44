//! Conformance: mesh configuration objects.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sigil_datastore::{ChangeOutcome, ConfigChange, ConfigKey, DataStore, Error, StoredConfig};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use tokio::sync::Barrier;

use super::{TestDb, spec};

const MS: i64 = 1_800_000_000_000;

fn key(kind: &str, namespace: &str, name: &str) -> ConfigKey {
    ConfigKey::new(kind, namespace, name)
}

fn put(key: &ConfigKey, body: &str, spec_hash: &str) -> ConfigChange {
    ConfigChange::Put {
        key: key.clone(),
        api_version: "security.istio.io/v1".into(),
        body: body.into(),
        spec_hash: spec_hash.into(),
    }
}

fn delete(key: &ConfigKey) -> ConfigChange {
    ConfigChange::Delete { key: key.clone() }
}

async fn apply(
    store: &dyn DataStore,
    changes: Vec<ConfigChange>,
    now_ms: i64,
) -> (i64, Vec<ChangeOutcome>) {
    match store.apply_config(changes, now_ms).await {
        Ok(r) => (r.revision, r.outcomes.into_iter().map(|(_, o)| o).collect()),
        Err(e) => panic!("apply_config: {e}"),
    }
}

async fn get(store: &dyn DataStore, key: &ConfigKey) -> StoredConfig {
    match store.get_config(key).await {
        Ok(Some(c)) => c,
        other => panic!("get_config({key}): {other:?}"),
    }
}

fn keys(objects: &[StoredConfig]) -> Vec<String> {
    objects.iter().map(|c| c.key.to_string()).collect()
}

pub async fn config_lifecycle(db: TestDb) {
    use ChangeOutcome::*;
    let store = db.open().await;
    assert_eq!(store.config_revision().await.unwrap(), 0);
    let k = key("AuthorizationPolicy", "payments", "allow");
    let body1 = r#"{"metadata":{"name":"allow"},"spec":{"action":"ALLOW"}}"#;

    let (r1, outcomes) = apply(&*store, vec![put(&k, body1, "h1")], MS).await;
    assert_eq!(outcomes, [Created]);
    assert_eq!(r1, store.revision().await.unwrap());
    let created = get(&*store, &k).await;
    assert_eq!(
        (
            created.generation,
            created.revision,
            created.created_at_ms,
            created.updated_at_ms
        ),
        (1, r1, MS, MS)
    );
    assert_eq!(
        (
            created.body.as_str(),
            created.spec_hash.as_str(),
            created.api_version.as_str()
        ),
        (body1, "h1", "security.istio.io/v1")
    );
    assert_eq!(created.uid.len(), 36, "{}", created.uid);

    // The same object again changes nothing, not even the revision.
    let (r, outcomes) = apply(&*store, vec![put(&k, body1, "h1")], MS + 1).await;
    assert_eq!((r, outcomes), (r1, vec![Unchanged]));
    assert_eq!(store.revision().await.unwrap(), r1);
    assert_eq!(get(&*store, &k).await, created);

    // A new spec: generation 2, same uid and creation time.
    let body2 = r#"{"metadata":{"name":"allow"},"spec":{"action":"DENY"}}"#;
    let (r2, outcomes) = apply(&*store, vec![put(&k, body2, "h2")], MS + 2).await;
    assert_eq!((r2, outcomes), (r1 + 1, vec![Configured]));
    let v2 = get(&*store, &k).await;
    assert_eq!(
        (
            v2.generation,
            v2.revision,
            v2.created_at_ms,
            v2.updated_at_ms
        ),
        (2, r2, MS, MS + 2)
    );
    assert_eq!(
        (v2.uid.as_str(), v2.body.as_str()),
        (created.uid.as_str(), body2)
    );

    // A new body with the same spec (labels): configured, generation kept.
    let body3 = r#"{"metadata":{"name":"allow","labels":{"a":"b"}},"spec":{"action":"DENY"}}"#;
    let (r3, outcomes) = apply(&*store, vec![put(&k, body3, "h2")], MS + 3).await;
    assert_eq!((r3, outcomes), (r2 + 1, vec![Configured]));
    let v3 = get(&*store, &k).await;
    assert_eq!(
        (v3.generation, v3.revision, v3.body.as_str()),
        (2, r3, body3)
    );

    // The body is kept byte for byte, whitespace and key order included.
    let spaced = "{ \"spec\" : {\"b\":1, \"a\":2},\n\"metadata\":{} }";
    apply(&*store, vec![put(&k, spaced, "h2")], MS + 4).await;
    assert_eq!(get(&*store, &k).await.body, spaced);

    let before = store.revision().await.unwrap();
    let (r4, outcomes) = apply(&*store, vec![delete(&k)], MS + 5).await;
    assert_eq!((r4, outcomes), (before + 1, vec![Deleted]));
    assert_eq!(store.get_config(&k).await.unwrap(), None);
    let (r, outcomes) = apply(&*store, vec![delete(&k)], MS + 6).await;
    assert_eq!((r, outcomes), (r4, vec![NotFound]));
    assert_eq!(store.revision().await.unwrap(), r4);

    // Re-creating a deleted object starts over with a new uid.
    apply(&*store, vec![put(&k, body1, "h1")], MS + 7).await;
    let again = get(&*store, &k).await;
    assert_eq!((again.generation, again.created_at_ms), (1, MS + 7));
    assert_ne!(again.uid, created.uid);
}

pub async fn config_batches_are_atomic(db: TestDb) {
    use ChangeOutcome::*;
    let store = db.open().await;
    let (a, b, c) = (
        key("Gateway", "ns", "a"),
        key("Gateway", "ns", "b"),
        key("Gateway", "ns", "c"),
    );
    let (r1, _) = apply(&*store, vec![put(&a, "{}", "h"), put(&b, "{}", "h")], MS).await;

    // One bad change: nothing of the batch is stored, the revision stays.
    let bad = vec![
        put(&c, "{}", "h"),
        delete(&a),
        put(&key("Gateway", "ns", ""), "{}", "h"),
    ];
    match store.apply_config(bad, MS + 1).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("name \"\" is empty"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let too_big = format!(
        "{{\"x\":\"{}\"}}",
        "a".repeat(sigil_datastore::MAX_CONFIG_BODY_BYTES)
    );
    match store
        .apply_config(vec![put(&c, "{}", "h"), put(&b, &too_big, "h")], MS + 1)
        .await
    {
        Err(Error::Invalid(msg)) => assert!(msg.contains("Gateway ns/b: body is"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    for bad_body in ["", "not json", "{\"a\":"] {
        let r = store
            .apply_config(vec![put(&c, bad_body, "h")], MS + 1)
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad_body:?}: {r:?}");
    }
    assert_eq!(store.revision().await.unwrap(), r1);
    assert_eq!(store.config_revision().await.unwrap(), r1);
    assert_eq!(store.get_config(&c).await.unwrap(), None);
    assert!(store.get_config(&a).await.unwrap().is_some());

    // A mixed batch: one revision for all, outcomes in order, later changes see earlier ones.
    let result = store
        .apply_config(
            vec![
                put(&c, "{}", "h"),
                put(&a, "{}", "h"),
                delete(&b),
                delete(&key("Gateway", "ns", "never")),
                put(&c, "{\"v\":2}", "h2"),
            ],
            MS + 2,
        )
        .await
        .unwrap();
    assert_eq!(result.revision, r1 + 1);
    assert_eq!(
        result.outcomes,
        vec![
            (c.clone(), Created),
            (a.clone(), Unchanged),
            (b.clone(), Deleted),
            (key("Gateway", "ns", "never"), NotFound),
            (c.clone(), Configured),
        ]
    );
    let stored_c = get(&*store, &c).await;
    assert_eq!((stored_c.generation, stored_c.revision), (2, r1 + 1));
    assert_eq!(
        get(&*store, &a).await.revision,
        r1,
        "an unchanged object keeps its revision"
    );

    // Empty and all-unchanged batches move nothing.
    assert_eq!(apply(&*store, vec![], MS + 3).await, (r1 + 1, vec![]));
    assert_eq!(
        apply(&*store, vec![put(&a, "{}", "h"), delete(&b)], MS + 3).await,
        (r1 + 1, vec![Unchanged, NotFound])
    );
    assert_eq!(store.revision().await.unwrap(), r1 + 1);
}

pub async fn config_list_filters_and_order(db: TestDb) {
    let store = db.open().await;
    // Byte order: upper case before lower case, "" (cluster-scoped) first.
    let all = [
        key("PeerAuthentication", "istio-system", "default"),
        key("AuthorizationPolicy", "payments", "b"),
        key("AuthorizationPolicy", "payments", "B"),
        key("AuthorizationPolicy", "Payments", "a"),
        key("AuthorizationPolicy", "default", "a-1"),
        key("AuthorizationPolicy", "default", "a_1"),
        key("ClusterIssuer", "", "mesh-ca"),
        key("Certificate", "payments", "a"),
    ];
    let changes = all.iter().map(|k| put(k, "{}", "h")).collect();
    apply(&*store, changes, MS).await;
    let mut sorted = all.to_vec();
    sorted.sort();
    let want: Vec<String> = sorted.iter().map(ToString::to_string).collect();
    assert_eq!(
        want,
        [
            "AuthorizationPolicy Payments/a",
            "AuthorizationPolicy default/a-1",
            "AuthorizationPolicy default/a_1",
            "AuthorizationPolicy payments/B",
            "AuthorizationPolicy payments/b",
            "Certificate payments/a",
            "ClusterIssuer mesh-ca",
            "PeerAuthentication istio-system/default",
        ]
    );
    assert_eq!(keys(&store.list_config(None, None).await.unwrap()), want);

    let cases: [(Option<&str>, Option<&str>, &[&str]); 6] = [
        (
            Some("AuthorizationPolicy"),
            Some("payments"),
            &[
                "AuthorizationPolicy payments/B",
                "AuthorizationPolicy payments/b",
            ],
        ),
        (
            None,
            Some("payments"),
            &[
                "AuthorizationPolicy payments/B",
                "AuthorizationPolicy payments/b",
                "Certificate payments/a",
            ],
        ),
        (Some("ClusterIssuer"), None, &["ClusterIssuer mesh-ca"]),
        (None, Some(""), &["ClusterIssuer mesh-ca"]),
        (Some("authorizationpolicy"), None, &[]),
        (Some("Certificate"), Some("default"), &[]),
    ];
    for (kind, namespace, want) in cases {
        let got = keys(&store.list_config(kind, namespace).await.unwrap());
        assert_eq!(got, want, "kind {kind:?} namespace {namespace:?}");
    }
}

pub async fn config_revision_tracks_config_changes(db: TestDb) {
    let store = db.open().await;
    let k = key("Sidecar", "ns", "default");
    store
        .create_entry(spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    assert_eq!(
        store.config_revision().await.unwrap(),
        0,
        "entries are not configuration"
    );
    let mut last = 0;
    for i in 0..5 {
        let body = format!("{{\"i\":{i}}}");
        let (r, _) = apply(&*store, vec![put(&k, &body, &format!("h{i}"))], MS + i).await;
        assert!(r > last, "config revision must grow: {r} after {last}");
        assert_eq!(r, store.revision().await.unwrap());
        assert_eq!(r, store.config_revision().await.unwrap());
        assert_eq!(get(&*store, &k).await.revision, r);
        last = r;
        // Other writes move the store revision but not the config revision.
        store
            .create_entry(spec(&format!("w{i}"), "agent", &["t:1"]))
            .await
            .unwrap();
        assert_eq!(store.revision().await.unwrap(), r + 1);
        assert_eq!(store.config_revision().await.unwrap(), r);
    }
    assert_eq!(get(&*store, &k).await.generation, 5);
    let (rev, objects) = store.config_snapshot().await.unwrap();
    assert_eq!((rev, keys(&objects)), (last, vec![k.to_string()]));
}

/// Two objects always written together: every snapshot sees them in step, at its revision.
pub async fn config_snapshot_is_consistent(db: TestDb) {
    let store = db.open().await;
    let (a, b) = (
        key("ServiceEntry", "ns", "a"),
        key("ServiceEntry", "ns", "b"),
    );
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, done, a, b) = (store.clone(), done.clone(), a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                let body = format!("{{\"i\":{i}}}");
                let h = format!("h{i}");
                store
                    .apply_config(vec![put(&a, &body, &h), put(&b, &body, &h)], MS + i)
                    .await
                    .unwrap();
                // Unrelated writes in between, so the store revision runs ahead.
                store
                    .create_entry(spec(&format!("w{i}"), "agent", &["t:1"]))
                    .await
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen = HashSet::new();
    while !done.load(Ordering::SeqCst) {
        let (rev, objects) = store.config_snapshot().await.unwrap();
        match objects.as_slice() {
            [] => assert_eq!(rev, 0),
            [x, y] => {
                assert_eq!(
                    (x.body.as_str(), x.revision),
                    (y.body.as_str(), rev),
                    "torn snapshot"
                );
                assert_eq!(y.revision, rev);
                assert!(store.revision().await.unwrap() >= rev);
                seen.insert(rev);
            }
            other => panic!("a snapshot with {} objects", other.len()),
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    let (rev, objects) = store.config_snapshot().await.unwrap();
    assert_eq!(
        (rev, objects.len()),
        (store.config_revision().await.unwrap(), 2)
    );
    assert!(!seen.is_empty());
}

/// Concurrent puts of one key with different specs: each one counts (no lost generation).
pub async fn config_concurrent_puts(db: TestDb) {
    const WRITERS: usize = 12;
    let store = db.open().await;
    let k = key("DestinationRule", "ns", "shared");
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let (store, barrier, k) = (store.clone(), barrier.clone(), k.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let body = format!("{{\"writer\":{i}}}");
            store
                .apply_config(vec![put(&k, &body, &format!("h{i}"))], MS)
                .await
        });
    }
    let (mut created, mut configured, mut revisions) = (0, 0, HashSet::new());
    while let Some(res) = tasks.join_next().await {
        let result = res.unwrap().unwrap();
        match result.outcomes.as_slice() {
            [(_, ChangeOutcome::Created)] => created += 1,
            [(_, ChangeOutcome::Configured)] => configured += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
        revisions.insert(result.revision);
    }
    assert_eq!(
        (created, configured, revisions.len()),
        (1, WRITERS - 1, WRITERS)
    );
    let stored = get(&*store, &k).await;
    assert_eq!(stored.generation, i64::try_from(WRITERS).unwrap());
    assert_eq!(stored.revision, store.config_revision().await.unwrap());
    assert_eq!(Some(&stored.revision), revisions.iter().max());
}

pub async fn config_persists_across_reopen(db: TestDb) {
    let store = db.open().await;
    let (a, b) = (
        key("Certificate", "ns", "a"),
        key("ClusterIssuer", "", "ca"),
    );
    apply(
        &*store,
        vec![put(&a, "{\"a\":1}", "h"), put(&b, "{\"b\":1}", "h")],
        MS,
    )
    .await;
    apply(&*store, vec![put(&a, "{\"a\":2}", "h2")], MS + 1).await;
    let before = store.config_snapshot().await.unwrap();
    store.close().await;
    drop(store);

    let store = db.open().await;
    assert_eq!(store.config_snapshot().await.unwrap(), before);
    assert_eq!(get(&*store, &a).await.generation, 2);
    let (r, outcomes) = apply(&*store, vec![delete(&b)], MS + 2).await;
    assert_eq!((r, outcomes), (before.0 + 1, vec![ChangeOutcome::Deleted]));
    store.close().await;
}

/// A database written by a build that knew only migration 0001 upgrades in place.
pub async fn config_upgrade_from_0001(db: TestDb) {
    let backend = if db.url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let migrator = Migrator::new(std::path::Path::new(&dir)).await.unwrap();
    // The old build had written something: the revision is not 0.
    let old_writes = "UPDATE store_meta SET revision = 41 WHERE id = 1";
    // Through a pool, as the store does: sqlx's migrator on a `&mut` connection makes a future
    // that is not `Send`.
    if backend == "postgres" {
        let pool = PgPool::connect(&db.url).await.unwrap();
        migrator.run_to(1, &pool).await.unwrap();
        sqlx::query(old_writes).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let opts = SqliteConnectOptions::from_str(&db.url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(opts).await.unwrap();
        migrator.run_to(1, &pool).await.unwrap();
        sqlx::query(old_writes).execute(&pool).await.unwrap();
        pool.close().await;
    }

    let store = db.open().await;
    assert_eq!(store.revision().await.unwrap(), 41);
    assert_eq!(store.config_revision().await.unwrap(), 0);
    assert_eq!(store.config_snapshot().await.unwrap(), (0, vec![]));
    let k = key("PeerAuthentication", "istio-system", "default");
    let (r, outcomes) = apply(&*store, vec![put(&k, "{}", "h")], MS).await;
    assert_eq!((r, outcomes), (42, vec![ChangeOutcome::Created]));
    assert_eq!(get(&*store, &k).await.revision, 42);
    store.close().await;
}
