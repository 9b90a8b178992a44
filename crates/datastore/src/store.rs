//! The datastore seams: one small trait per kind of record, and [`DataStore`] that bundles them.
//!
//! All traits are object safe; the server holds an `Arc<dyn DataStore>` and may hand out
//! `Arc<dyn EntryStore>` and friends (trait upcasting) to components that need only one part.
//!
//! Conventions: `get_*` returns `Ok(None)` for a missing record; updates and deletes of a missing
//! record return [`Error::NotFound`](crate::Error::NotFound); deletes return the deleted record.
//! Every write that touches several rows runs in one transaction.

use async_trait::async_trait;
use sigil_spiffe::{SpiffeId, TrustDomain};

use crate::config_model::{ApplyResult, ConfigChange, ConfigKey, StoredConfig};
use crate::error::{Backend, Result};
use crate::model::{
    AgentSerials, AttestedAgent, EntrySpec, IssuedCert, IssuedFilter, JoinToken, ListAgentsFilter,
    ListEntriesFilter, NewAgent, Page, Pagination, RegistrationEntry, Revocation, StoredBundle,
};
use crate::selector::Selector;

/// Registration entries.
#[async_trait]
pub trait EntryStore: Send + Sync {
    /// Creates an entry with a new id. Fails with `AlreadyExists` (carrying the existing entry's
    /// id) when an entry with the same SPIFFE ID, parent ID and selector set exists, and with
    /// `Invalid` for an entry without selectors, with a bad selector, or for a trust domain ID.
    async fn create_entry(&self, spec: EntrySpec) -> Result<RegistrationEntry>;

    async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>>;

    /// Replaces every caller-settable field of entry `id`; the same checks as create apply.
    async fn update_entry(&self, id: &str, spec: EntrySpec) -> Result<RegistrationEntry>;

    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry>;

    /// Lists entries matching `filter` in creation order, a page at a time (SPIRE's ListEntries).
    async fn list_entries(
        &self,
        filter: &ListEntriesFilter,
        page: &Pagination,
    ) -> Result<Page<RegistrationEntry>>;

    async fn count_entries(&self) -> Result<u64>;

    /// Deletes entries whose `expires_at` is before `expires_before`; returns how many.
    async fn prune_entries(&self, expires_before: i64) -> Result<u64>;
}

/// Attested agents and node selectors.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Records a newly attested agent and replaces its node selectors. `AlreadyExists` if an
    /// agent with this SPIFFE ID is recorded.
    async fn create_agent(&self, agent: NewAgent) -> Result<AttestedAgent>;

    async fn get_agent(&self, id: &SpiffeId) -> Result<Option<AttestedAgent>>;

    async fn list_agents(
        &self,
        filter: &ListAgentsFilter,
        page: &Pagination,
    ) -> Result<Page<AttestedAgent>>;

    /// Replaces the agent's SVID serials (renewal and rotation).
    async fn update_agent_serials(
        &self,
        id: &SpiffeId,
        serials: AgentSerials,
    ) -> Result<AttestedAgent>;

    /// Bans (or unbans) an agent. A banned agent keeps its record so that it cannot renew or
    /// re-attest until it is deleted (evicted).
    async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<AttestedAgent>;

    /// Evicts an agent: deletes its record and its node selectors.
    async fn delete_agent(&self, id: &SpiffeId) -> Result<AttestedAgent>;

    /// Replaces the node selectors of `id` (the agent need not be recorded yet).
    async fn set_node_selectors(&self, id: &SpiffeId, selectors: Vec<Selector>) -> Result<()>;

    /// The node selectors of `id`, sorted; empty when none are set.
    async fn get_node_selectors(&self, id: &SpiffeId) -> Result<Vec<Selector>>;
}

/// Join tokens.
#[async_trait]
pub trait JoinTokenStore: Send + Sync {
    /// `AlreadyExists` when the token value is taken.
    async fn create_join_token(&self, token: JoinToken) -> Result<()>;

    async fn get_join_token(&self, token: &str) -> Result<Option<JoinToken>>;

    /// Uses a token up: deletes it and returns it, in one atomic statement, so of two concurrent
    /// consumers exactly one succeeds. `NotFound` if there is no such token (never existed or
    /// already used); `Expired` if `now >= expires_at` (the token is deleted all the same).
    async fn consume_join_token(&self, token: &str, now: i64) -> Result<JoinToken>;

    /// Deletes tokens with `expires_at <= now`; returns how many.
    async fn prune_join_tokens(&self, now: i64) -> Result<u64>;
}

/// Trust bundles, own and federated.
#[async_trait]
pub trait BundleStore: Send + Sync {
    /// Creates or replaces the bundle of `trust_domain`; the sequence becomes 1 or grows by one.
    async fn set_bundle(&self, trust_domain: &TrustDomain, data: Vec<u8>) -> Result<StoredBundle>;

    /// Replaces the bundle only if its stored sequence is `expected_sequence` (compare and swap);
    /// `Conflict` otherwise. `expected_sequence == 0` means "create, it must not exist yet".
    /// `NotFound` when there is no bundle and `expected_sequence != 0`.
    async fn update_bundle(
        &self,
        trust_domain: &TrustDomain,
        data: Vec<u8>,
        expected_sequence: u64,
    ) -> Result<StoredBundle>;

    async fn get_bundle(&self, trust_domain: &TrustDomain) -> Result<Option<StoredBundle>>;

    /// Every bundle, ordered by trust domain.
    async fn list_bundles(&self) -> Result<Vec<StoredBundle>>;

    async fn delete_bundle(&self, trust_domain: &TrustDomain) -> Result<StoredBundle>;
}

/// The CA journal of each server: an opaque JSON blob.
#[async_trait]
pub trait CaJournalStore: Send + Sync {
    async fn get_ca_journal(&self, server_id: &str) -> Result<Option<Vec<u8>>>;

    async fn set_ca_journal(&self, server_id: &str, data: Vec<u8>) -> Result<()>;
}

/// The log of issued certificates.
#[async_trait]
pub trait IssuedCertStore: Send + Sync {
    /// Records a certificate (serial normalized, see [`crate::normalize_serial`]);
    /// `AlreadyExists` when that serial is already recorded.
    async fn record_issued(&self, cert: IssuedCert) -> Result<()>;

    /// Looks a serial up (in any hex form `normalize_serial` accepts).
    async fn get_issued(&self, serial_hex: &str) -> Result<Option<IssuedCert>>;

    async fn count_issued(&self) -> Result<u64>;

    /// Deletes records of certificates that expired before `before` (`not_after < before`).
    async fn prune_issued(&self, before: i64) -> Result<u64>;

    /// The recorded certificates matching `filter` with `not_after >= not_after_from`, ordered
    /// by issue time then serial.
    async fn list_issued(
        &self,
        filter: &IssuedFilter,
        not_after_from: i64,
    ) -> Result<Vec<IssuedCert>>;
}

/// Revoked certificates. Revocations are part of what the data plane receives, so every write
/// that changes the set moves the configuration revision (see [`ConfigStore`]) in the same
/// transaction: agents' configuration streams then carry the new set.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records revocations in one transaction and returns those that were new. A serial
    /// already revoked keeps its first record (reason and time). When nothing is new, the
    /// revision does not move. `Invalid` for a bad serial or an empty reason or issuer;
    /// nothing is stored then.
    async fn revoke(&self, revocations: Vec<Revocation>) -> Result<Vec<Revocation>>;

    /// Every revocation, ordered by `revoked_at` then serial.
    async fn list_revocations(&self) -> Result<Vec<Revocation>>;

    /// Deletes revocations of certificates that expired before `before` (`not_after <
    /// before`); moves the configuration revision when any was deleted. Returns how many.
    async fn prune_revocations(&self, before: i64) -> Result<u64>;
}

/// Mesh configuration objects (Istio, cert-manager resources): opaque JSON under a
/// `(kind, namespace, name)` key.
///
/// Every change moves the store-wide revision ([`DataStore::revision`]); the *config revision*
/// is the store-wide revision of the last change to configuration, so the two are comparable.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// Applies every change in one transaction: all or nothing. Changes apply in order (a later
    /// change of the same key sees the earlier one). A `Put` creates the object (generation 1, a
    /// new uid, `created_at_ms = now_ms`) or, if its API version, body or spec hash differ from
    /// the stored ones, replaces them (`Configured`; the generation grows by one only when the
    /// spec hash changed); otherwise it is `Unchanged`. If nothing changes at all, the revision
    /// does not move and the result carries the current config revision.
    ///
    /// `Invalid` (naming the key) for an empty kind or name, a key part with whitespace, control
    /// characters or `/`, an empty API version or spec hash, a body that is not one JSON object
    /// or is larger than [`crate::MAX_CONFIG_BODY_BYTES`], or more than
    /// [`crate::MAX_CONFIG_BATCH`] changes; nothing is stored then.
    async fn apply_config(&self, changes: Vec<ConfigChange>, now_ms: i64) -> Result<ApplyResult>;

    /// `Invalid` for a key that `apply_config` would refuse.
    async fn get_config(&self, key: &ConfigKey) -> Result<Option<StoredConfig>>;

    /// Objects ordered by kind, namespace, name (byte order). `kind` and `namespace` filter by
    /// exact match when given (`Some("")` is the cluster-scoped objects).
    async fn list_config(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<StoredConfig>>;

    /// The store-wide revision at the last configuration change (0 if none ever).
    async fn config_revision(&self) -> Result<i64>;

    /// The config revision and every object (ordered as [`ConfigStore::list_config`]), read in one
    /// snapshot: the objects are exactly those as of that revision.
    async fn config_snapshot(&self) -> Result<(i64, Vec<StoredConfig>)>;
}

/// One proxy's status as a server replica stored it; `data` is opaque to the datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatusRecord {
    pub agent_id: String,
    pub proxy_id: String,
    pub data: Vec<u8>,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The proxies' status reports, shared by the server replicas (any replica answers `sigil
/// proxy status`, whichever one the agent talks to). Not configuration: writes do not move
/// the store revision.
#[async_trait]
pub trait ProxyStatusStore: Send + Sync {
    /// Replaces every record of `agent_id` with `records` (proxy id, data), in one transaction.
    async fn put_proxy_status(
        &self,
        agent_id: &str,
        records: Vec<(String, Vec<u8>)>,
        now: i64,
    ) -> Result<()>;
    /// The records of `agent_id` (or of every agent) updated at or after `since`, ordered by
    /// agent and proxy id.
    async fn list_proxy_status(
        &self,
        agent_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ProxyStatusRecord>>;
    /// Deletes the records updated before `before`; returns how many.
    async fn prune_proxy_status(&self, before: i64) -> Result<u64>;
}

/// The status of a cert-manager resource (or a CertificateRequest record) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStatus {
    pub key: ConfigKey,
    /// Opaque JSON object (the server's encoding).
    pub body: String,
    /// Grows by one with every [`ResourceStatusStore::put_status`]; 0 for a row that only a
    /// lease created.
    pub version: i64,
    /// The replica holding the issuing lease (empty: none).
    pub lease_owner: String,
    /// Unix milliseconds until which the lease holds.
    pub lease_until_ms: i64,
    pub updated_at_ms: i64,
}

/// Status the Certificate controller keeps for cert-manager resources, shared by the server
/// replicas. Not configuration: writes do not move the store revision.
#[async_trait]
pub trait ResourceStatusStore: Send + Sync {
    async fn get_status(&self, key: &ConfigKey) -> Result<Option<StoredStatus>>;

    /// The rows of `kind` (in `namespace` when given), ordered by namespace and name.
    async fn list_status(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<StoredStatus>>;

    /// Writes `body` if the stored version is `expected_version` (0: no status yet, or a row
    /// only a lease created); returns the new version. `Conflict` when another writer got there
    /// first; `Invalid` for a bad key or a body that is not a JSON object.
    async fn put_status(
        &self,
        key: &ConfigKey,
        body: String,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<i64>;

    /// Takes (or extends) the issuing lease of `key` for `owner` until `until_ms` when nobody
    /// else holds it at `now_ms`; returns whether `owner` holds it now. Of two replicas racing,
    /// exactly one wins.
    async fn acquire_status_lease(
        &self,
        key: &ConfigKey,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool>;

    /// Gives the lease up if `owner` holds it.
    async fn release_status_lease(&self, key: &ConfigKey, owner: &str) -> Result<()>;

    /// Deletes the row; returns whether there was one.
    async fn delete_status(&self, key: &ConfigKey) -> Result<bool>;
}

/// The whole datastore.
#[async_trait]
pub trait DataStore:
    EntryStore
    + AgentStore
    + JoinTokenStore
    + BundleStore
    + CaJournalStore
    + IssuedCertStore
    + RevocationStore
    + ConfigStore
    + ProxyStatusStore
    + ResourceStatusStore
{
    fn backend(&self) -> Backend;

    /// The store-wide revision: grows by one with every change to an entry, agent (including
    /// node selectors), bundle or configuration batch, in the same transaction as the change.
    async fn revision(&self) -> Result<i64>;

    /// Closes every connection (SQLite checkpoints its WAL). Later calls fail with `Unavailable`.
    async fn close(&self);
}
