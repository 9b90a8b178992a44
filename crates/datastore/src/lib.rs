//! The control plane's datastore: registration entries, attested agents, join tokens, trust
//! bundles, CA journals and the issued-certificates log, behind small object-safe traits
//! ([`EntryStore`], [`AgentStore`], [`JoinTokenStore`], [`BundleStore`], [`CaJournalStore`],
//! [`IssuedCertStore`], [`ConfigStore`] for mesh configuration objects, all bundled in
//! [`DataStore`]), with two implementations:
//!
//! - **SQLite** (the default): a single file, WAL mode, `synchronous=FULL`, so an acknowledged
//!   write survives `kill -9` and power loss.
//! - **PostgreSQL**: for several server replicas sharing one database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sigil_datastore::Error> {
//! use sigil_datastore::{EntrySpec, OpenOptions, Selector};
//! use sigil_spiffe::SpiffeId;
//!
//! let store = sigil_datastore::open("sqlite:///var/lib/sigil/datastore.db", OpenOptions::default())
//!     .await?;
//! let spec = EntrySpec::new(
//!     SpiffeId::parse("spiffe://cluster.local/ns/payments/sa/checkout").unwrap(),
//!     SpiffeId::parse("spiffe://cluster.local/spire/agent/join_token/abc").unwrap(),
//!     vec![Selector::parse("unix:uid:1000")?],
//! );
//! let entry = store.create_entry(spec).await?;
//! # Ok(()) }
//! ```
//!
//! Both backends run the same query code (see `sql/mod.rs`) and pass one conformance suite
//! (`tests/common/mod.rs`).

mod config_model;
mod error;
mod model;
mod open;
mod selector;
mod sql;
mod store;

pub use config_model::{
    ApplyResult, ChangeOutcome, ConfigChange, ConfigKey, MAX_CONFIG_BATCH, MAX_CONFIG_BODY_BYTES,
    StoredConfig,
};
pub use error::{Backend, Error, Result};
pub use model::{
    AgentSerials, AttestedAgent, EntrySpec, IssuedCert, IssuedFilter, IssuedKind, JoinToken,
    ListAgentsFilter, ListEntriesFilter, NewAgent, Page, Pagination, RegistrationEntry, Revocation,
    StoredBundle, normalize_serial,
};
pub use open::{ACCEPTED_FORMS, Clock, Location, OpenOptions, open, open_location, system_clock};
pub use selector::{Selector, SelectorMatch, normalize_selectors};
pub use store::{
    AgentStore, BundleStore, CaJournalStore, ConfigStore, DataStore, EntryStore, IssuedCertStore,
    JoinTokenStore, ProxyStatusRecord, ProxyStatusStore, ResourceStatusStore, RevocationStore,
    StoredStatus,
};
