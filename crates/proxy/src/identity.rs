//! The workload's identity, as the local agent serves it over the SPIFFE Workload API: its
//! X.509-SVID, key and the trust bundles (own and federated). A new SVID or bundle replaces
//! the [`Identity`] atomically: open connections keep the one they started with, new
//! handshakes use the new one, nothing restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sigil_proto::workload::{X509svidRequest, X509svidResponse};
use sigil_spiffe::{Bundle, BundleSet, SpiffeId, TrustDomain};
use tokio::sync::watch;
use tracing::{info, warn};

/// One SVID with its key and the bundles to verify peers with.
pub struct Identity {
    pub id: SpiffeId,
    /// Leaf first, then intermediates (never the root).
    pub chain: Vec<CertificateDer<'static>>,
    /// The key, ready for rustls (never written anywhere by the proxy).
    pub certified: Arc<CertifiedKey>,
    /// Bundles of the own trust domain and of federated ones.
    pub bundles: BundleSet,
    /// Lowercase hex serial of the leaf.
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Grows by one with every new identity (for caches keyed on it).
    pub generation: u64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id.as_str())
            .field("serial", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Identity {
    /// Picks the SVID (`want`, else the first) from a Workload API answer.
    pub fn from_response(resp: &X509svidResponse, want: Option<&SpiffeId>) -> Result<Self, String> {
        let svid = match want {
            Some(w) => resp
                .svids
                .iter()
                .find(|s| s.spiffe_id == w.as_str())
                .ok_or_else(|| {
                    format!(
                        "the Workload API offers {} but not {w}; check the registration entry or workload.spiffeId",
                        resp.svids
                            .iter()
                            .map(|s| s.spiffe_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
            None => resp
                .svids
                .first()
                .ok_or("the Workload API returned no SVID")?,
        };
        let id = SpiffeId::parse(&svid.spiffe_id).map_err(|e| e.to_string())?;
        let chain = sigil_spiffe::der::split_certificates(&svid.x509_svid)
            .map_err(|e| format!("the SVID chain is not DER certificates: {e}"))?;
        let leaf = chain.first().ok_or("empty SVID chain")?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(svid.x509_svid_key.clone()));
        let signing = sigil_tls::provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("the SVID key is unusable: {e}"))?;
        let certified = Arc::new(CertifiedKey::new(chain.clone(), signing));
        let mut bundles = BundleSet::new();
        let own_roots = sigil_spiffe::der::split_certificates(&svid.bundle)
            .map_err(|e| format!("the bundle is not DER certificates: {e}"))?;
        bundles.insert(
            Bundle::from_x509_authorities(id.trust_domain().clone(), own_roots)
                .map_err(|e| e.to_string())?,
        );
        for (td, der) in &resp.federated_bundles {
            let Ok(td) = TrustDomain::new(td.strip_prefix("spiffe://").unwrap_or(td)) else {
                warn!(trust_domain = %td, "ignoring a federated bundle with an invalid trust domain");
                continue;
            };
            let roots = sigil_spiffe::der::split_certificates(der).map_err(|e| e.to_string())?;
            bundles.insert(Bundle::from_x509_authorities(td, roots).map_err(|e| e.to_string())?);
        }
        Ok(Identity {
            id,
            serial_hex: hex::encode(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            chain,
            certified,
            bundles,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Seconds until the leaf expires (negative once expired).
    pub fn seconds_to_expiry(&self, now_unix: i64) -> i64 {
        self.not_after - now_unix
    }
}

/// The current identity, readable without a lock on the data path, plus a change signal.
#[derive(Clone)]
pub struct IdentitySource {
    current: Arc<ArcSwapOption<Identity>>,
    changed: watch::Receiver<u64>,
}

impl IdentitySource {
    /// A source holding `identity` that never changes (tests, benchmarks).
    pub fn fixed(identity: Identity) -> Self {
        let gen_ = identity.generation;
        IdentitySource {
            current: Arc::new(ArcSwapOption::from_pointee(identity)),
            changed: watch::channel(gen_).1,
        }
    }

    /// A source that holds no identity and never gets one (tests of "not ready").
    pub fn empty() -> Self {
        IdentitySource {
            current: Arc::new(ArcSwapOption::empty()),
            changed: watch::channel(0).1,
        }
    }

    pub fn current(&self) -> Option<Arc<Identity>> {
        self.current.load_full()
    }

    /// Resolves on the next change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// Replaces the identity (tests and harnesses driving rotation directly; mirrors
    /// [`crate::mesh::MeshSource::replace`]). New handshakes use it, open connections keep theirs.
    pub fn replace(&self, identity: Identity) {
        self.current.store(Some(Arc::new(identity)));
    }
}

/// Follows the Workload API at `socket`, publishing every new SVID/bundle. Runs until
/// `shutdown`; reconnects with backoff (the agent restarting costs nothing: the current
/// identity stays until a new one arrives).
pub fn watch_workload_api(
    socket: std::path::PathBuf,
    want: Option<SpiffeId>,
    mut shutdown: watch::Receiver<bool>,
) -> (IdentitySource, tokio::task::JoinHandle<()>) {
    let current = Arc::new(ArcSwapOption::empty());
    let (tx, rx) = watch::channel(0u64);
    let source = IdentitySource {
        current: current.clone(),
        changed: rx,
    };
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        let mut failing = false;
        loop {
            let attempt = async {
                let mut c = sigil_agent::client::connect(&socket).await?;
                let mut stream = c.fetch_x509svid(X509svidRequest {}).await?.into_inner();
                while let Some(resp) = stream.message().await? {
                    match Identity::from_response(&resp, want.as_ref()) {
                        Ok(identity) => {
                            info!(
                                spiffe_id = %identity.id,
                                serial = %identity.serial_hex,
                                not_after = identity.not_after,
                                "new workload identity"
                            );
                            let g = identity.generation;
                            current.store(Some(Arc::new(identity)));
                            let _ = tx.send(g);
                            failing = false;
                            delay = Duration::from_millis(100);
                        }
                        Err(e) => {
                            warn!(error = %e, "Workload API update refused; keeping the current identity")
                        }
                    }
                }
                anyhow::Ok(())
            };
            let r = tokio::select! {
                r = attempt => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Err(e) = r
                && !failing
            {
                failing = true;
                warn!(error = %format!("{e:#}"), socket = %socket.display(), "Workload API unavailable; retrying (current identity kept)");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
    (source, task)
}
