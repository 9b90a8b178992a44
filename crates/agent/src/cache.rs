//! What the agent can hand out, published as one immutable snapshot through a `watch` channel:
//! the Workload API streams hold receivers and push the whole state on every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use sigil_spiffe::{Bundle, SpiffeId, TrustDomain};
use tokio::sync::watch;
use zeroize::Zeroizing;

/// A selector `type:value` (`unix:uid:1000` is type `unix`, value `uid:1000`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    pub r#type: String,
    pub value: String,
}

impl Selector {
    pub fn new(t: impl Into<String>, v: impl Into<String>) -> Self {
        Selector {
            r#type: t.into(),
            value: v.into(),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.r#type, self.value)
    }
}

/// One registration entry the agent serves, with its current X.509-SVID.
pub struct CachedSvid {
    pub entry_id: String,
    pub spiffe_id: SpiffeId,
    /// A workload gets this SVID when all of these are among its attested selectors.
    pub selectors: Vec<Selector>,
    /// Leaf first, then intermediates (DER).
    pub chain: Vec<CertificateDer<'static>>,
    /// Unencrypted PKCS#8 DER, as the Workload API hands it out.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// Unix seconds.
    pub not_after: i64,
    pub hint: String,
    /// Trust domains whose bundles this workload also receives.
    pub federates_with: Vec<TrustDomain>,
    /// JWT-SVID lifetime for this entry in seconds (0 = default).
    pub jwt_svid_ttl: u32,
}

impl std::fmt::Debug for CachedSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSvid")
            .field("entry_id", &self.entry_id)
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CachedSvid {
    /// True when every selector of the entry is among `attested` (see [`selectors_match`]).
    pub fn matches(&self, attested: &[Selector]) -> bool {
        selectors_match(&self.selectors, attested)
    }
}

/// The Workload API's matching rule (SPIRE's subset match): an entry applies to a workload when
/// it has selectors and every one of them is among the workload's attested selectors.
pub fn selectors_match(entry: &[Selector], attested: &[Selector]) -> bool {
    !entry.is_empty() && entry.iter().all(|s| attested.contains(s))
}

/// A snapshot of everything the agent serves.
#[derive(Debug)]
pub struct CacheState {
    pub trust_domain: TrustDomain,
    /// Sorted by SPIFFE ID then entry ID, so responses are stable.
    pub svids: Vec<Arc<CachedSvid>>,
    /// The own trust domain's bundle (X.509 and JWT authorities).
    pub own_bundle: Bundle,
    /// Bundles of other trust domains, by trust domain.
    pub federated: BTreeMap<TrustDomain, Bundle>,
    /// Grows with every published change.
    pub revision: u64,
    /// Why the agent cannot serve right now, if it cannot (e.g. never reached the server).
    pub unavailable: Option<String>,
}

impl CacheState {
    pub fn empty(trust_domain: TrustDomain) -> Self {
        CacheState {
            own_bundle: Bundle::new(trust_domain.clone()),
            trust_domain,
            svids: Vec::new(),
            federated: BTreeMap::new(),
            revision: 0,
            unavailable: None,
        }
    }

    /// The SVIDs a workload with these selectors gets, unexpired at `now` (unix seconds).
    pub fn svids_for(&self, attested: &[Selector], now: i64) -> Vec<Arc<CachedSvid>> {
        self.svids
            .iter()
            .filter(|s| s.matches(attested) && s.not_after > now)
            .cloned()
            .collect()
    }
}

/// The receiving side every Workload API stream holds.
pub type CacheRx = watch::Receiver<Arc<CacheState>>;
