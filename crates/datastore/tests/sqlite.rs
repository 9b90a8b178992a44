//! The conformance suite on SQLite: each case gets a database file in its own temporary directory.

#[macro_use]
mod common;

use std::future::Future;

use common::TestDb;

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

/// The other accepted forms reach the same file.
#[tokio::test]
async fn plain_path_and_relative_url_forms_open_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forms.db");
    let store = sigil_datastore::open(path.to_str().unwrap(), common::options())
        .await
        .unwrap();
    let e = store
        .create_entry(common::spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    store.close().await;
    let url = format!("sqlite://{}", path.display());
    let store = sigil_datastore::open(&url, common::options())
        .await
        .unwrap();
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e));
    assert_eq!(store.backend(), sigil_datastore::Backend::Sqlite);
    store.close().await;
}

/// `sqlite::memory:` works for tests of other crates (one private database per open).
#[tokio::test]
async fn in_memory_database() {
    let store = sigil_datastore::open("sqlite::memory:", common::options())
        .await
        .unwrap();
    let e = store
        .create_entry(common::spec("w", "agent", &["t:1"]))
        .await
        .unwrap();
    assert_eq!(store.get_entry(&e.id).await.unwrap(), Some(e));
    let other = sigil_datastore::open("sqlite::memory:", common::options())
        .await
        .unwrap();
    assert_eq!(other.count_entries().await.unwrap(), 0);
}
