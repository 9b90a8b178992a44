//! The agent's one upstream loop: attest (or reuse the persisted SVID), then every sync
//! interval renew the agent SVID at half-life, refresh bundles and authorized entries, mint and
//! rotate workload SVIDs in batches, withdraw deleted ones, publish the snapshot and persist it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls_pki_types::CertificateDer;
use sigil_proto::node::node_client::NodeClient;
use sigil_proto::node::{self as pb};
use sigil_server::node_client::{self, Identity};
use sigil_spiffe::{Bundle, SpiffeId, TrustDomain};
use tokio::sync::{Mutex, watch};
use tonic::transport::Channel;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use crate::cache::{CacheState, CachedSvid, Selector};
use crate::config::{AgentConfig, NodeAttestation};
use crate::plan::{self, Held, Wanted};
use crate::store::{self, AgentIdentityFile, CacheFile, Paths, SvidFile};

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Why the agent must stop (it cannot recover by itself).
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("the server refused this agent: {0}")]
    Refused(String),
    #[error("{0}")]
    Config(String),
}

struct Inner {
    identity: Option<AgentIdentityFile>,
    client: Option<NodeClient<Channel>>,
    held: BTreeMap<String, SvidFile>,
    own_bundle: Bundle,
    federated: BTreeMap<TrustDomain, Bundle>,
    revision: u64,
    /// Set while the server cannot be reached.
    unreachable_since: Option<i64>,
}

/// The agent's upstream state and the sender side of the published snapshot.
pub struct Manager {
    cfg: AgentConfig,
    paths: Paths,
    tx: watch::Sender<Arc<CacheState>>,
    inner: Mutex<Inner>,
    /// Revoked serials (lowercase hex, no leading zeros), from the mesh configuration.
    revoked: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Wakes the sync loop (a revocation: replace the SVID now).
    wake: tokio::sync::Notify,
}

fn identity_of(f: &AgentIdentityFile) -> Identity {
    Identity {
        chain: f
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect(),
        key_pkcs8: f.key_pkcs8.clone(),
    }
}

fn cert_times(der: &[u8]) -> anyhow::Result<(i64, i64)> {
    let (_, c) =
        x509_parser::parse_x509_certificate(der).map_err(|e| anyhow!("bad certificate: {e}"))?;
    Ok((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

fn is_fatal(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::PermissionDenied
        && ["banned", "not attested", "evicted", "cannot re-attest"]
            .iter()
            .any(|w| s.message().contains(w))
}

impl Manager {
    /// Loads the persisted state (serving it at once) without contacting the server.
    pub fn load(cfg: AgentConfig) -> anyhow::Result<(Arc<Self>, watch::Receiver<Arc<CacheState>>)> {
        let paths = Paths::new(&cfg.data_dir);
        let identity: Option<AgentIdentityFile> = store::load(&paths.agent)?;
        let cache: CacheFile = store::load(&paths.cache)?.unwrap_or_default();
        let td = cfg.trust_domain.clone();
        let own_bundle = if cache.own_bundle.is_empty() {
            match &cfg.trust_bundle {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read --trust-bundle {}", p.display()))?;
                    Bundle::from_pem(td.clone(), &text)
                        .map_err(|e| anyhow!("--trust-bundle {}: {e}", p.display()))?
                }
                None => Bundle::new(td.clone()),
            }
        } else {
            Bundle::from_spiffe_json(td.clone(), &cache.own_bundle).map_err(|e| {
                anyhow!(
                    "cached bundle in {} is unreadable: {e}",
                    paths.cache.display()
                )
            })?
        };
        let mut federated = BTreeMap::new();
        for (name, json) in &cache.federated {
            let ftd = TrustDomain::new(name)?;
            if let Ok(b) = Bundle::from_spiffe_json(ftd.clone(), json.as_bytes()) {
                federated.insert(ftd, b);
            }
        }
        let held = cache
            .svids
            .into_iter()
            .map(|s| (s.entry_id.clone(), s))
            .collect();
        let inner = Inner {
            identity,
            client: None,
            held,
            own_bundle,
            federated,
            revision: 0,
            unreachable_since: None,
        };
        let (tx, rx) = watch::channel(Arc::new(CacheState::empty(td)));
        let m = Arc::new(Manager {
            cfg,
            paths,
            tx,
            inner: Mutex::new(inner),
            revoked: Default::default(),
            wake: tokio::sync::Notify::new(),
        });
        Ok((m, rx))
    }

    /// Publishes the current state (call once after [`Manager::load`]).
    pub async fn publish_initial(&self) {
        let mut inner = self.inner.lock().await;
        self.publish(&mut inner);
    }

    fn publish(&self, inner: &mut Inner) {
        inner.revision += 1;
        let mut svids: Vec<Arc<CachedSvid>> = inner
            .held
            .values()
            .filter_map(|s| {
                Some(Arc::new(CachedSvid {
                    entry_id: s.entry_id.clone(),
                    spiffe_id: SpiffeId::parse(&s.spiffe_id).ok()?,
                    selectors: s
                        .selectors
                        .iter()
                        .filter_map(|x| x.split_once(':').map(|(t, v)| Selector::new(t, v)))
                        .collect(),
                    chain: s
                        .chain
                        .iter()
                        .map(|c| CertificateDer::from(c.clone()))
                        .collect(),
                    key_pkcs8: Zeroizing::new(s.key_pkcs8.clone()),
                    not_after: s.not_after,
                    hint: s.hint.clone(),
                    federates_with: s
                        .federates_with
                        .iter()
                        .filter_map(|t| TrustDomain::new(t).ok())
                        .collect(),
                    jwt_svid_ttl: s.jwt_svid_ttl,
                }))
            })
            .collect();
        svids.sort_by(|a, b| {
            (a.spiffe_id.as_str(), &a.entry_id).cmp(&(b.spiffe_id.as_str(), &b.entry_id))
        });
        let unavailable = inner.unreachable_since.map(|t| {
            format!("the agent cannot reach the Sigil server at {} (since unix time {t}); cached SVIDs are served until they expire", self.cfg.server_address)
        });
        let state = CacheState {
            trust_domain: self.cfg.trust_domain.clone(),
            svids,
            own_bundle: inner.own_bundle.clone(),
            federated: inner.federated.clone(),
            revision: inner.revision,
            unavailable,
        };
        self.tx.send_replace(Arc::new(state));
    }

    fn persist(&self, inner: &Inner) -> anyhow::Result<()> {
        let cache = CacheFile {
            own_bundle: inner.own_bundle.to_spiffe_json(),
            federated: inner
                .federated
                .iter()
                .map(|(td, b)| {
                    (
                        td.to_string(),
                        String::from_utf8_lossy(&b.to_spiffe_json()).into_owned(),
                    )
                })
                .collect(),
            svids: inner.held.values().cloned().collect(),
        };
        store::save(&self.paths.cache, &cache)
    }

    fn roots(inner: &Inner) -> Vec<CertificateDer<'static>> {
        inner.own_bundle.x509_authorities().to_vec()
    }

    async fn server_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        tokio::net::lookup_host(&self.cfg.server_address)
            .await
            .with_context(|| {
                format!(
                    "cannot resolve --server-address {}",
                    self.cfg.server_address
                )
            })?
            .next()
            .ok_or_else(|| {
                anyhow!(
                    "--server-address {} resolves to nothing",
                    self.cfg.server_address
                )
            })
    }

    /// Attests with the configured method.
    async fn attest(&self, inner: &mut Inner) -> anyhow::Result<()> {
        let roots = Self::roots(inner);
        if roots.is_empty() {
            bail!(Fatal::Config(
                "no trust bundle to verify the server with: give --trust-bundle (the PEM from `sigil bundle show`)".into()
            ));
        }
        let addr = self.server_addr().await?;
        let mut anon = node_client::connect(addr, &self.cfg.trust_domain, roots, None).await?;
        let attested = match &self.cfg.attestation {
            NodeAttestation::JoinToken(t) => node_client::attest_join_token(&mut anon, t).await,
            NodeAttestation::X509Pop { cert, key } => {
                let chain_pem = std::fs::read_to_string(cert)
                    .with_context(|| format!("cannot read the x509pop certificate {}", cert.display()))?;
                let chain: Vec<Vec<u8>> = sigil_spiffe::pem::decode_certificates(&chain_pem)
                    .map_err(|e| anyhow!("x509pop certificate {}: {e}", cert.display()))?
                    .into_iter()
                    .map(|c| c.to_vec())
                    .collect();
                let key_pem = store::read_private(key)?
                    .ok_or_else(|| anyhow!("x509pop key {} does not exist", key.display()))?;
                let kp = rcgen::KeyPair::from_pem(&String::from_utf8_lossy(&key_pem))
                    .map_err(|e| anyhow!("x509pop key {}: {e}", key.display()))?;
                node_client::attest_x509pop(&mut anon, chain, &kp).await
            }
            NodeAttestation::None => bail!(Fatal::Config(
                "the agent has no SVID yet and no way to attest: give --join-token (sigil token generate) or --x509pop-cert/--x509pop-key".into()
            )),
        };
        let a = match attested {
            Ok(a) => a,
            Err(s)
                if s.code() == tonic::Code::PermissionDenied
                    || s.code() == tonic::Code::InvalidArgument =>
            {
                bail!(Fatal::Refused(s.message().to_owned()))
            }
            Err(s) => bail!("attestation failed: {}", s.message()),
        };
        let leaf = a
            .identity
            .chain
            .first()
            .ok_or_else(|| anyhow!("empty agent SVID"))?;
        let (nb, na) = cert_times(leaf)?;
        let file = AgentIdentityFile {
            spiffe_id: a.id.to_string(),
            attestation_type: match self.cfg.attestation {
                NodeAttestation::X509Pop { .. } => "x509pop".into(),
                _ => "join_token".into(),
            },
            chain: a.identity.chain.iter().map(|c| c.to_vec()).collect(),
            key_pkcs8: a.identity.key_pkcs8.clone(),
            not_before: nb,
            not_after: na,
        };
        store::save(&self.paths.agent, &file)?;
        info!(agent = %a.id, "attested to the server");
        inner.identity = Some(file);
        inner.client = None;
        Ok(())
    }

    async fn client(&self, inner: &mut Inner) -> anyhow::Result<NodeClient<Channel>> {
        if let Some(c) = &inner.client {
            return Ok(c.clone());
        }
        let id = inner
            .identity
            .as_ref()
            .ok_or_else(|| anyhow!("not attested"))?;
        let addr = self.server_addr().await?;
        let c = node_client::connect(
            addr,
            &self.cfg.trust_domain,
            Self::roots(inner),
            Some(&identity_of(id)),
        )
        .await?;
        inner.client = Some(c.clone());
        Ok(c)
    }

    /// One round of synchronisation with the server.
    pub async fn sync(&self) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let now = now_unix();
        let usable = inner.identity.as_ref().is_some_and(|i| i.not_after > now);
        if !usable {
            if inner.identity.is_some() {
                warn!("the agent SVID expired; attesting again");
            }
            self.attest(&mut inner).await?;
        }
        let result = self.sync_with_server(&mut inner).await;
        match &result {
            Ok(()) => {
                if inner.unreachable_since.take().is_some() {
                    info!(server = %self.cfg.server_address, "server reachable again");
                    self.publish(&mut inner);
                }
            }
            Err(e) => {
                if let Some(s) = e.downcast_ref::<tonic::Status>()
                    && is_fatal(s)
                {
                    return Err(anyhow!(Fatal::Refused(s.message().to_owned())));
                }
                inner.client = None;
                if inner.unreachable_since.is_none() {
                    inner.unreachable_since = Some(now);
                    self.publish(&mut inner);
                }
            }
        }
        result
    }

    async fn sync_with_server(&self, inner: &mut Inner) -> anyhow::Result<()> {
        let now = now_unix();
        let mut client = self.client(inner).await?;
        // The agent's own SVID at half-life.
        if let Some(id) = &inner.identity
            && plan::past_half_life(id.not_before, id.not_after, now)
        {
            let (renewed, _) = node_client::renew(&mut client).await?;
            let leaf = renewed
                .chain
                .first()
                .ok_or_else(|| anyhow!("empty renewed SVID"))?;
            let (nb, na) = cert_times(leaf)?;
            let mut file = id.clone();
            file.chain = renewed.chain.iter().map(|c| c.to_vec()).collect();
            file.key_pkcs8 = renewed.key_pkcs8.clone();
            file.not_before = nb;
            file.not_after = na;
            store::save(&self.paths.agent, &file)?;
            info!(agent = %file.spiffe_id, not_after = na, "agent SVID renewed");
            inner.identity = Some(file);
            inner.client = None;
            client = self.client(inner).await?;
        }
        let mut changed = false;
        let bundles = client
            .get_bundles(pb::GetBundlesRequest {})
            .await?
            .into_inner();
        if !bundles.own.is_empty() {
            let b = Bundle::from_spiffe_json(self.cfg.trust_domain.clone(), &bundles.own)
                .map_err(|e| anyhow!("server sent an unreadable bundle: {e}"))?;
            if b != inner.own_bundle {
                inner.own_bundle = b;
                inner.client = None; // new roots: verify the server with them from now on
                changed = true;
            }
        }
        let mut federated = BTreeMap::new();
        for (name, json) in bundles.federated {
            let td = TrustDomain::new(&name)?;
            if let Ok(b) = Bundle::from_spiffe_json(td.clone(), &json) {
                federated.insert(td, b);
            }
        }
        if federated != inner.federated {
            inner.federated = federated;
            changed = true;
        }

        let entries = client
            .get_authorized_entries(pb::GetAuthorizedEntriesRequest {})
            .await?
            .into_inner()
            .entries;
        let wanted: Vec<Wanted> = entries
            .iter()
            .map(|e| Wanted {
                entry_id: e.id.clone(),
                revision: e.revision_number,
            })
            .collect();
        let held: BTreeMap<String, Held> = inner
            .held
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    Held {
                        entry_revision: s.entry_revision,
                        not_before: s.not_before,
                        not_after: s.not_after,
                        revoked: self.is_revoked(&s.chain),
                    },
                )
            })
            .collect();
        let p = plan::plan(&wanted, &held, now);
        for gone in &p.drop {
            if let Some(s) = inner.held.remove(gone) {
                info!(entry = %gone, spiffe_id = %s.spiffe_id, "entry withdrawn; SVID no longer served");
                changed = true;
            }
        }
        if !p.sign.is_empty() {
            let by_id: BTreeMap<&str, &pb::Entry> =
                entries.iter().map(|e| (e.id.as_str(), e)).collect();
            for batch in p.sign.chunks(100) {
                let mut keys = BTreeMap::new();
                let mut params = Vec::new();
                for id in batch {
                    let kc = node_client::new_key_and_csr()?;
                    params.push(pb::NewX509svidParams {
                        entry_id: id.clone(),
                        csr: kc.csr_der,
                    });
                    keys.insert(id.clone(), kc.key);
                }
                let results = client
                    .batch_new_x509svid(pb::BatchNewX509svidRequest { params })
                    .await?
                    .into_inner()
                    .results;
                for r in results {
                    if r.error_code != 0 {
                        warn!(entry = %r.entry_id, reason = %r.error_message, "server refused an SVID");
                        continue;
                    }
                    let (Some(e), Some(key)) =
                        (by_id.get(r.entry_id.as_str()), keys.remove(&r.entry_id))
                    else {
                        continue;
                    };
                    let leaf = r
                        .cert_chain
                        .first()
                        .ok_or_else(|| anyhow!("empty SVID chain"))?;
                    let (nb, na) = cert_times(leaf)?;
                    info!(spiffe_id = %e.spiffe_id, not_after = na, "SVID minted");
                    inner.held.insert(
                        e.id.clone(),
                        SvidFile {
                            entry_id: e.id.clone(),
                            entry_revision: e.revision_number,
                            spiffe_id: e.spiffe_id.clone(),
                            selectors: e
                                .selectors
                                .iter()
                                .map(|s| format!("{}:{}", s.r#type, s.value))
                                .collect(),
                            hint: e.hint.clone(),
                            federates_with: e.federates_with.clone(),
                            jwt_svid_ttl: u32::try_from(e.jwt_svid_ttl).unwrap_or(0),
                            chain: r.cert_chain,
                            key_pkcs8: key.serialize_der(),
                            not_before: nb,
                            not_after: na,
                        },
                    );
                    changed = true;
                }
            }
        }
        if changed {
            self.publish(inner);
            if let Err(e) = self.persist(inner) {
                error!(error = %format!("{e:#}"), "cannot persist the agent cache");
            }
        }
        Ok(())
    }

    /// Runs sync rounds until `shutdown` or a fatal refusal.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            match self.sync().await {
                Ok(()) => failures = 0,
                Err(e) if e.downcast_ref::<Fatal>().is_some() => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(30) {
                        warn!(error = %format!("{e:#}"), server = %self.cfg.server_address, "cannot sync with the server; serving cached SVIDs");
                    }
                }
            }
            let wait = if failures == 0 {
                self.cfg.sync_interval
            } else {
                (self.cfg.sync_interval * failures.min(5)).min(Duration::from_secs(5))
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
        }
    }

    /// Replaces the revoked serials; when one of them is a held SVID (or a CA above it), the
    /// sync loop runs now and replaces that SVID.
    pub fn set_revoked(&self, serials: std::collections::HashSet<String>) {
        let changed = {
            let mut r = self.revoked.write().unwrap_or_else(|p| p.into_inner());
            let changed = *r != serials;
            *r = serials;
            changed && !r.is_empty()
        };
        if changed {
            self.wake.notify_one();
        }
    }

    /// Whether any certificate of `chain` (DER) is revoked.
    fn is_revoked(&self, chain: &[Vec<u8>]) -> bool {
        let r = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        if r.is_empty() {
            return false;
        }
        chain.iter().any(|der| {
            x509_parser::parse_x509_certificate(der).is_ok_and(|(_, c)| {
                let hex = hex::encode(c.raw_serial());
                let t = hex.trim_start_matches('0');
                r.contains(if t.is_empty() { "0" } else { t })
            })
        })
    }

    /// How often the agent syncs with the server.
    pub fn sync_interval(&self) -> Duration {
        self.cfg.sync_interval
    }

    /// The agent's SPIFFE ID, once attested.
    pub async fn agent_id(&self) -> Option<String> {
        self.inner
            .lock()
            .await
            .identity
            .as_ref()
            .map(|i| i.spiffe_id.clone())
    }

    /// A connected node API client, for JWT minting.
    pub async fn node_client(&self) -> anyhow::Result<NodeClient<Channel>> {
        let mut inner = self.inner.lock().await;
        self.client(&mut inner).await
    }
}
