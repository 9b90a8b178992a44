//! The conformance suite on SQLite: each case gets a database file in its own temporary directory.

// Test helpers outside #[test] functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::future::Future;
use std::sync::Arc;

use common::TestDb;
use sigil_datastore::DataStore;

async fn run<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    // An absolute path, so this is the sqlite:///abs/path form.
    let url = format!("sqlite://{}", dir.path().join("sigil.db").display());
    case(TestDb::new(url)).await;
}

conformance_tests!(run);

/// Opens `location` with the suite's options.
async fn open(location: &str) -> Arc<dyn DataStore> {
    TestDb::new(location.to_owned()).open().await
}

/// The other accepted forms reach the same file.
#[tokio::test]
async fn plain_path_and_relative_url_forms_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forms.db");
    let store = open(path.to_str().unwrap()).await;
    let e = store
        .create_entry(common::spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    store.close().await;
    let url = format!("sqlite://{}", path.display());
    let store = open(&url).await;
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e));
    assert_eq!(store.backend(), sigil_datastore::Backend::Sqlite);
    store.close().await;
}

/// `sqlite::memory:` works for tests of other crates (one private database per open).
#[tokio::test]
async fn in_memory_database() {
    let store = open("sqlite::memory:").await;
    let e = store
        .create_entry(common::spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e));
    let other = open("sqlite::memory:").await;
    assert_eq!(other.count_entries().await.unwrap(), 0);
}

/// Join tokens are bearer secrets: the database file holds only their hash.
#[tokio::test]
async fn join_tokens_are_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let store = open(path.to_str().unwrap()).await;
    let secret = "canary-7f3a9c2e-join-token";
    let token = sigil_datastore::JoinToken {
        token: secret.into(),
        spiffe_id: None,
        expires_at: i64::MAX,
    };
    store.create_join_token(token.clone()).await.unwrap();
    assert_eq!(store.get_join_token(secret).await.unwrap(), Some(token));
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "token found in clear"
        );
    }
}

/// Components that need one part of the store can hold just that trait object.
#[tokio::test]
async fn a_datastore_upcasts_to_its_parts() {
    use sigil_datastore::{EntryStore, JoinTokenStore};
    let store: Arc<dyn DataStore> = open("sqlite::memory:").await;
    let entries: Arc<dyn EntryStore> = store.clone();
    let tokens: Arc<dyn JoinTokenStore> = store.clone();
    let e = entries
        .create_entry(common::spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e));
    assert_eq!(tokens.get_join_token("none").await.unwrap(), None);
}
