//! The conformance suite every backend must pass.
//!
//! Each case is an `async fn(TestDb)`: it opens (and may reopen) a fresh, empty database through
//! the public `open` and checks behaviour through the public traits only. A backend's test file
//! provides a runner that makes the fresh database and calls `conformance_tests!(runner)`.

#![allow(dead_code)]

mod agents;
mod config;
mod entries;
mod misc;
mod resource_status;
mod revocations;
mod status;

use std::sync::Arc;
use std::time::Duration;

pub use agents::*;
pub use config::*;
pub use entries::*;
pub use misc::*;
pub use resource_status::*;
pub use revocations::*;
use sigil_datastore::{
    DataStore, EntrySpec, ListEntriesFilter, OpenOptions, Page, Pagination, RegistrationEntry,
    Selector, open,
};
use sigil_spiffe::{SpiffeId, TrustDomain};
pub use status::*;

/// Defines one `#[tokio::test]` per conformance case, each calling `$runner(case)`.
macro_rules! conformance_tests {
    ($runner:ident) => {
        conformance_tests!(@cases $runner;
            entry_crud,
            duplicate_entry,
            invalid_entries_and_selectors,
            list_filters_by_ids_hint_downstream,
            list_selector_matches,
            list_federates_with_matches,
            pagination,
            update_rewrites_selector_index,
            prune_entries,
            concurrent_entry_creates,
            join_token_single_use,
            join_token_expiry_and_prune,
            join_token_concurrent_consume,
            agent_lifecycle,
            agent_list_filters,
            node_selectors,
            bundles,
            bundle_concurrent_compare_and_swap,
            ca_journal,
            issued_certs,
            revision_increments,
            persistence_across_reopen,
            config_lifecycle,
            config_batches_are_atomic,
            config_list_filters_and_order,
            config_revision_tracks_config_changes,
            config_snapshot_is_consistent,
            config_concurrent_puts,
            config_persists_across_reopen,
            config_upgrade_from_0001,
            proxy_status,
            resource_status_compare_and_set,
            resource_status_lease,
            revocations,
        );
    };
    (@cases $runner:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $runner(common::$case).await;
            }
        )*
    };
}

/// The fixed "now" of the suite's clock: every created_at / updated_at equals it.
pub const NOW: i64 = 1_800_000_000;

/// A fresh database for one case.
pub struct TestDb {
    pub url: String,
}

impl TestDb {
    pub fn new(url: String) -> Self {
        TestDb { url }
    }

    pub async fn open(&self) -> Arc<dyn DataStore> {
        match open(&self.url, options()).await {
            Ok(store) => store,
            Err(e) => panic!("cannot open test datastore {}: {e}", self.url),
        }
    }
}

pub fn options() -> OpenOptions {
    OpenOptions {
        acquire_timeout: Duration::from_secs(10),
        clock: Arc::new(|| NOW),
        ..OpenOptions::default()
    }
}

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

pub fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).unwrap()
}

pub fn sels(list: &[&str]) -> Vec<Selector> {
    list.iter().map(|s| Selector::parse(s).unwrap()).collect()
}

/// An entry `spiffe://example.org/<name>` under `spiffe://example.org/<parent>`.
pub fn spec(name: &str, parent: &str, selectors: &[&str]) -> EntrySpec {
    EntrySpec::new(
        id(&format!("spiffe://example.org/{name}")),
        id(&format!("spiffe://example.org/{parent}")),
        sels(selectors),
    )
}

/// Every entry matching `filter`, in one page.
pub async fn list_all(
    store: &dyn DataStore,
    filter: &ListEntriesFilter,
) -> Page<RegistrationEntry> {
    match store.list_entries(filter, &Pagination::all()).await {
        Ok(page) => page,
        Err(e) => panic!("listing entries by {filter:?}: {e}"),
    }
}

/// The ids of a page, in page order.
pub fn ids(page: &Page<RegistrationEntry>) -> Vec<String> {
    page.items.iter().map(|e| e.id.clone()).collect()
}

/// Entry ids in creation order: `entries[i].id` for each i.
pub fn ids_of(entries: &[&RegistrationEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}
