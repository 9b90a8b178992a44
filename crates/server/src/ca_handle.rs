//! The server's side of the CA: the [`CaManager`] (pure lifecycle, key files) wired to the
//! datastore (the journal per replica, the shared own bundle) and to the node API's TLS, and
//! beside it the [`JwtKeyManager`] (JWT-SVID signing keys, journal `<server_id>/jwt`), whose
//! public keys are published as the own bundle's JWT authorities.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sigil_ca::jwt::{JwtKeyConfig, JwtKeyManager, JwtSvid};
use sigil_ca::{CaConfig, CaError, CaManager, CaSource, Journal, JwtJournal, KeyType, SvidRequest};
use sigil_datastore::{DataStore, Error as DsError};
use sigil_spiffe::{Bundle, JwtAuthority, SpiffeId, TrustDomain};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::config::{ServerConfig, UpstreamCa};
use crate::state::now_unix;

/// A certificate the server signed.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Leaf first, then intermediates (never the root), DER.
    pub chain: Vec<Vec<u8>>,
    pub serial_hex: String,
    pub not_after: i64,
}

/// How long the published bundle tells relying parties to wait before polling again.
const REFRESH_HINT: Duration = Duration::from_secs(300);

struct ServerCert {
    not_before: i64,
    not_after: i64,
}

pub struct CaHandle {
    td: TrustDomain,
    server_id: String,
    ds: Arc<dyn DataStore>,
    manager: Mutex<CaManager>,
    jwt: Mutex<JwtKeyManager>,
    /// The own trust domain's roots as published (every replica's), refreshed from the store.
    trusted: RwLock<Vec<CertificateDer<'static>>>,
    server_cert: Mutex<Option<ServerCert>>,
    /// Base URL of the CRL distribution point put in issued SVIDs (`--crl-url`).
    crl_base_url: Option<String>,
}

/// A CA whose key can sign a CRL, and which revocations that CRL lists.
pub struct CrlAuthority {
    pub authority: Arc<sigil_ca::X509Authority>,
    /// True for this replica's signing CA (it lists the SVIDs this server issued); false for
    /// the upstream CA (its CRL lists this replica's revoked intermediates; OpenSSL peers that
    /// check the whole chain, like nginx and HAProxy, need a CRL from every CA in it).
    pub signs_svids: bool,
}

fn now_odt() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl CaHandle {
    /// Loads this replica's CA from its journal (or creates the first CA), persists the
    /// journal, and publishes the roots in the own bundle.
    pub async fn init(
        cfg: &ServerConfig,
        server_id: &str,
        ds: Arc<dyn DataStore>,
    ) -> anyhow::Result<Self> {
        let key_type: KeyType = cfg
            .ca_key_type
            .parse()
            .map_err(|e: CaError| anyhow!("--ca-key-type {:?}: {e}", cfg.ca_key_type))?;
        let mut ca_cfg = CaConfig::new(
            cfg.trust_domain.clone(),
            cfg.data_dir.join("ca").join(server_id),
        );
        ca_cfg.key_type = key_type;
        ca_cfg.ca_ttl = cfg.ca_ttl;
        ca_cfg.source = match &cfg.upstream {
            UpstreamCa::SelfSigned => CaSource::SelfSigned,
            UpstreamCa::Disk { cert, key } => {
                CaSource::Upstream(sigil_ca::upstream::UpstreamFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    bundle: None,
                })
            }
        };
        let journal = match ds
            .get_ca_journal(server_id)
            .await
            .context("cannot read the CA journal")?
        {
            None => None,
            Some(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("the CA journal of {server_id} is not UTF-8"))?;
                Some(Journal::from_json(&text).with_context(|| {
                    format!("the CA journal of server {server_id} is unreadable")
                })?)
            }
        };
        let fresh = journal.is_none();
        let jwt_cfg = jwt_key_config(cfg, key_type, &ca_cfg.key_dir);
        let (manager, change) = CaManager::load_or_init(ca_cfg, journal, now_odt())
            .map_err(|e| anyhow!("cannot load the CA of server {server_id}: {e}"))?;
        let jwt_journal = load_jwt_journal(ds.as_ref(), server_id).await?;
        let jwt_fresh = jwt_journal.is_none();
        let (jwt, jwt_change) = JwtKeyManager::load_or_init(jwt_cfg, jwt_journal, now_odt())
            .map_err(|e| anyhow!("cannot load the JWT signing keys of server {server_id}: {e}"))?;
        let handle = CaHandle {
            td: cfg.trust_domain.clone(),
            server_id: server_id.to_owned(),
            ds,
            manager: Mutex::new(manager),
            jwt: Mutex::new(jwt),
            trusted: RwLock::new(Vec::new()),
            server_cert: Mutex::new(None),
            crl_base_url: cfg.crl.url.clone(),
        };
        if change.is_some() || fresh {
            handle.persist_journal().await?;
            info!(server_id, "created a new CA");
        }
        if jwt_change.is_some() || jwt_fresh {
            handle.persist_jwt_journal().await?;
            info!(server_id, "created a new JWT signing key");
        }
        // Catch up on rotations that fell due while the server was down.
        handle.rotate().await?;
        handle.rotate_jwt().await?;
        handle.publish_bundle().await?;
        Ok(handle)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaManager> {
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn persist_journal(&self) -> anyhow::Result<()> {
        let json = self.lock().journal().to_json();
        self.ds
            .set_ca_journal(&self.server_id, json.into_bytes())
            .await
            .context("cannot persist the CA journal")
    }

    fn lock_jwt(&self) -> std::sync::MutexGuard<'_, JwtKeyManager> {
        self.jwt.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn persist_jwt_journal(&self) -> anyhow::Result<()> {
        let json = self.lock_jwt().journal().to_json();
        self.ds
            .set_ca_journal(&jwt_journal_key(&self.server_id), json.into_bytes())
            .await
            .context("cannot persist the JWT key journal")
    }

    /// Applies due JWT key prepare/activate/prune steps; true when anything changed.
    async fn rotate_jwt(&self) -> anyhow::Result<bool> {
        let change = self
            .lock_jwt()
            .tick(now_odt())
            .map_err(|e| anyhow!("JWT key rotation failed: {e}"))?;
        let Some(change) = change else {
            return Ok(false);
        };
        for ev in &change.events {
            info!(server_id = %self.server_id, event = ?ev, "JWT key lifecycle");
        }
        self.persist_jwt_journal().await?;
        Ok(true)
    }

    /// Applies due prepare/activate/prune steps; true when anything changed.
    async fn rotate(&self) -> anyhow::Result<bool> {
        let change = self
            .lock()
            .tick(now_odt())
            .map_err(|e| anyhow!("CA rotation failed: {e}"))?;
        let Some(change) = change else {
            return Ok(false);
        };
        for ev in &change.events {
            info!(server_id = %self.server_id, event = ?ev, "CA lifecycle");
        }
        self.persist_journal().await?;
        Ok(true)
    }

    /// Merges this replica's roots and JWT keys into the stored own bundle (compare-and-swap,
    /// so replicas never overwrite each other), drops expired roots and this replica's retired
    /// JWT keys, and refreshes the trusted set. Returns whether the X.509 roots changed.
    async fn publish_bundle(&self) -> anyhow::Result<bool> {
        let now = now_odt();
        let mine = self.lock().bundle_roots(now);
        let (jwt_keys, retired) = {
            let jwt = self.lock_jwt();
            (jwt.public_keys(now), jwt.retired().to_vec())
        };
        for _ in 0..10 {
            let stored = self
                .ds
                .get_bundle(&self.td)
                .await
                .context("cannot read the own bundle")?;
            let (mut bundle, seq) = match &stored {
                Some(s) => (
                    Bundle::from_spiffe_json(self.td.clone(), &s.data).map_err(|e| {
                        anyhow!("the stored bundle of {} is unreadable: {e}", self.td)
                    })?,
                    s.sequence,
                ),
                None => (Bundle::new(self.td.clone()), 0),
            };
            let before: Vec<Vec<u8>> = bundle
                .x509_authorities()
                .iter()
                .map(|c| c.to_vec())
                .collect();
            for r in &mine {
                bundle
                    .add_x509_authority(r.clone())
                    .map_err(|e| anyhow!("CA root rejected: {e}"))?;
            }
            for old in before.iter().filter(|d| expired(d, now.unix_timestamp())) {
                bundle.remove_x509_authority(old);
            }
            let jwt_before = bundle.jwt_authorities().clone();
            for k in &jwt_keys {
                let key = JwtAuthority {
                    alg: Some(k.alg.name().to_owned()),
                    ..JwtAuthority::from_spki_der(&k.spki_der)
                        .map_err(|e| anyhow!("JWT key {} rejected: {e}", k.kid))?
                };
                bundle
                    .add_jwt_authority(k.kid.clone(), key)
                    .map_err(|e| anyhow!("JWT key {} rejected: {e}", k.kid))?;
            }
            for kid in &retired {
                bundle.remove_jwt_authority(kid);
            }
            let jwt_changed = *bundle.jwt_authorities() != jwt_before;
            let after: Vec<Vec<u8>> = bundle
                .x509_authorities()
                .iter()
                .map(|c| c.to_vec())
                .collect();
            *self.trusted.write().unwrap_or_else(|p| p.into_inner()) =
                bundle.x509_authorities().to_vec();
            if after == before && !jwt_changed && stored.is_some() {
                self.forget_retired(&retired).await?;
                return Ok(false);
            }
            bundle.set_sequence_number(Some(seq + 1));
            bundle.set_refresh_hint(Some(REFRESH_HINT));
            match self
                .ds
                .update_bundle(&self.td, bundle.to_spiffe_json(), seq)
                .await
            {
                Ok(_) => {
                    info!(
                        roots = after.len(),
                        jwt_keys = bundle.jwt_authorities().len(),
                        sequence = seq + 1,
                        "own trust bundle published"
                    );
                    self.forget_retired(&retired).await?;
                    return Ok(after != before);
                }
                Err(DsError::Conflict { .. }) => continue,
                Err(e) => return Err(e).context("cannot publish the own bundle"),
            }
        }
        Err(anyhow!(
            "the own bundle kept changing concurrently; will retry"
        ))
    }

    /// Retired JWT keys are gone from the stored bundle: stop tracking them.
    async fn forget_retired(&self, kids: &[String]) -> anyhow::Result<()> {
        if !kids.is_empty() && self.lock_jwt().forget_retired(kids) {
            self.persist_jwt_journal().await?;
        }
        Ok(())
    }

    /// Signs a JWT-SVID with the active JWT key; `exp` is clamped to the key's expiry.
    pub fn sign_jwt_svid(
        &self,
        id: &SpiffeId,
        audience: &[String],
        ttl: Duration,
    ) -> Result<JwtSvid, CaError> {
        let active = self.lock_jwt().active().ok_or(CaError::NoActiveCa)?;
        active.sign_jwt_svid(id, audience, ttl, now_odt())
    }

    /// Periodic upkeep; true when the node API's TLS config must be rebuilt.
    pub async fn maintain(&self) -> anyhow::Result<bool> {
        // JWT keys rotate on their own schedule; a failure there must not stop X.509 upkeep.
        if let Err(e) = self.rotate_jwt().await {
            warn!(error = %format!("{e:#}"), "JWT key maintenance failed; will retry");
        }
        let rotated = self.rotate().await?;
        let roots_changed = self.publish_bundle().await? || rotated;
        let renew = match &*self.server_cert.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(c) => now_unix() >= c.not_before + (c.not_after - c.not_before) / 2,
            None => true,
        };
        if roots_changed {
            // Other replicas' roots may have changed the trusted set too.
            return Ok(true);
        }
        Ok(renew)
    }

    /// Signs an X.509-SVID for the key in `csr` with the active CA.
    pub fn sign_svid(
        &self,
        csr: &[u8],
        id: &SpiffeId,
        dns: &[String],
        ttl: Duration,
    ) -> Result<Issued, CaError> {
        let active = self.lock().active().ok_or(CaError::NoActiveCa)?;
        let req = SvidRequest::new(id.clone(), ttl)
            .with_dns_names(dns.iter().cloned())
            .with_crl_base_url(self.crl_base_url.clone());
        let c = active.sign_csr(csr, &req, now_odt())?;
        Ok(issued(c))
    }

    /// The active signing authority (for the `sigil` cert-manager issuer).
    pub fn active_authority(&self) -> Option<Arc<sigil_ca::X509Authority>> {
        self.lock().active()
    }

    /// The CAs whose CRLs this replica publishes: its active signing CA and, with an upstream
    /// CA on disk, the upstream (read from its files now; a failure is logged and skipped).
    pub fn crl_authorities(&self) -> Vec<CrlAuthority> {
        let (active, source) = {
            let m = self.lock();
            (m.active(), m.config().source.clone())
        };
        let mut out = Vec::new();
        if let Some(a) = active {
            out.push(CrlAuthority {
                authority: a,
                signs_svids: true,
            });
        }
        if let CaSource::Upstream(files) = source {
            match sigil_ca::UpstreamCa::load(&files, &self.td, now_odt()) {
                Ok(up) => out.push(CrlAuthority {
                    authority: Arc::new(up.authority().clone()),
                    signs_svids: false,
                }),
                Err(e) => {
                    warn!(error = %e, "cannot load the upstream CA to sign its CRL; skipped")
                }
            }
        }
        out
    }

    /// The roots of the own trust domain, as published.
    pub fn trusted_roots(&self) -> Vec<CertificateDer<'static>> {
        self.trusted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Time until the next prepare/activate/prune step (zero when overdue).
    pub fn until_next_step(&self) -> Option<Duration> {
        let jwt = self.lock_jwt().next_deadline();
        let at = match (self.lock().next_deadline(), jwt) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let left = at - now_odt();
        Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
    }

    /// This replica's CA certificates that are not trust anchors (intermediates under an
    /// upstream CA), as (serial in the datastore's normal form, notAfter unix seconds).
    pub fn intermediate_serials(&self) -> Vec<(String, i64)> {
        let m = self.lock();
        m.journal()
            .entries
            .iter()
            .filter(|e| e.ca_cert != e.root_cert)
            .filter_map(|e| {
                let (_, c) = x509_parser::parse_x509_certificate(&e.ca_cert).ok()?;
                let serial =
                    sigil_datastore::normalize_serial(&hex::encode(c.raw_serial())).ok()?;
                Some((serial, e.not_after.unix_timestamp()))
            })
            .collect()
    }

    /// The roots' CRLs kept in the journal (self-signed mode), of every CA generation still in
    /// the bundle.
    pub fn root_crls(&self) -> Vec<String> {
        let now = now_odt();
        self.lock()
            .journal()
            .entries
            .iter()
            .filter(|e| e.not_after > now)
            .filter_map(|e| e.root_crl_pem.clone())
            .collect()
    }

    /// The id (subject key id, hex) of the active signing CA.
    pub fn active_id(&self) -> Option<String> {
        self.lock().active().map(|a| a.id())
    }

    pub fn active_not_after(&self) -> Option<i64> {
        self.lock().active_not_after().map(|t| t.unix_timestamp())
    }

    /// A fresh TLS config for the node API: a new server SVID
    /// (`spiffe://<td>/spire/server`) and the current roots for optional client SVIDs.
    pub fn server_tls_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let id = SpiffeId::parse(&crate::authz::server_id(&self.td))?;
        let active = self
            .lock()
            .active()
            .ok_or_else(|| anyhow!("the CA has no active key"))?;
        let req = SvidRequest::new(id, Duration::from_secs(3600));
        let c = active.sign_public_key(
            &rcgen::PublicKeyData::subject_public_key_info(&key),
            &req,
            now_odt(),
        )?;
        *self.server_cert.lock().unwrap_or_else(|p| p.into_inner()) = Some(ServerCert {
            not_before: c.not_before.unix_timestamp(),
            not_after: c.not_after.unix_timestamp(),
        });
        let bundle = Bundle::from_x509_authorities(self.td.clone(), self.trusted_roots())?;
        let mut set = sigil_spiffe::BundleSet::new();
        set.insert(bundle);
        let verifier = Arc::new(sigil_tls::SpiffeClientVerifier::new(set, true));
        let mut cfg = rustls::ServerConfig::builder_with_provider(sigil_tls::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                c.chain,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

fn issued(c: sigil_ca::IssuedCert) -> Issued {
    Issued {
        chain: c.chain.iter().map(|d| d.to_vec()).collect(),
        serial_hex: sigil_datastore::normalize_serial(&c.serial_hex).unwrap_or(c.serial_hex),
        not_after: c.not_after.unix_timestamp(),
    }
}

fn expired(der: &[u8], now: i64) -> bool {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => c.validity().not_after.timestamp() < now,
        Err(e) => {
            warn!(error = %e, "unparsable root in the own bundle; dropping it");
            true
        }
    }
}

/// The datastore key of a replica's JWT key journal (beside its CA journal).
fn jwt_journal_key(server_id: &str) -> String {
    format!("{server_id}/jwt")
}

/// JWT keys follow the CA's key type and lifetime; JWT-SVID has no EdDSA, so an `ed25519` CA
/// gets `ec-p256` (ES256) JWT keys.
fn jwt_key_config(
    cfg: &ServerConfig,
    ca_key_type: KeyType,
    key_dir: &std::path::Path,
) -> JwtKeyConfig {
    let mut c = JwtKeyConfig::new(cfg.trust_domain.clone(), key_dir);
    c.key_type = match ca_key_type {
        KeyType::Ed25519 => {
            info!("JWT-SVIDs cannot use Ed25519; JWT signing keys are ec-p256 (ES256)");
            KeyType::EcP256
        }
        k => k,
    };
    c.key_ttl = cfg.ca_ttl;
    c
}

async fn load_jwt_journal(
    ds: &dyn DataStore,
    server_id: &str,
) -> anyhow::Result<Option<JwtJournal>> {
    let key = jwt_journal_key(server_id);
    let Some(bytes) = ds
        .get_ca_journal(&key)
        .await
        .context("cannot read the JWT key journal")?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("the JWT key journal of {server_id} is not UTF-8"))?;
    let journal = JwtJournal::from_json(&text)
        .with_context(|| format!("the JWT key journal of server {server_id} is unreadable"))?;
    Ok(Some(journal))
}
