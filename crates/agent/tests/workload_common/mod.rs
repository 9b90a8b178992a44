//! Shared harness for the Workload API tests: an in-code PKI, cache snapshots whose entries
//! match this test process, a server on a temp-dir socket, and real tonic clients over UDS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use sigil_agent::attestor::{UnixAttestor, WorkloadAttestor};
use sigil_agent::cache::{CacheState, CachedSvid, Selector};
use sigil_agent::jwt::{JwtError, JwtSource};
use sigil_agent::workload_api::{self, WorkloadApi};
use sigil_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sigil_spiffe::{Bundle, JwtAuthority, SpiffeId, TrustDomain};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};
use tonic_health::server::HealthReporter;
use zeroize::Zeroizing;

pub const TD: &str = "example.org";
pub const FED_TD: &str = "other.org";
pub const UNRELATED_TD: &str = "unrelated.org";

/// Effective uid and gid of this process, from `/proc/self/status` (what SO_PEERCRED reports).
pub fn my_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("Gid:"))
}

/// The selector every "matching" entry uses.
pub fn my_uid_selector() -> Selector {
    Selector::new("unix", format!("uid:{}", my_ids().0))
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A CA for one trust domain that issues leaf SVIDs.
pub struct TestCa {
    pub td: TrustDomain,
    pub cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    serial: AtomicU64,
}

impl TestCa {
    pub fn new(td: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("{td} CA"));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        TestCa {
            td: TrustDomain::new(td).unwrap(),
            cert: cert.der().clone(),
            issuer: Issuer::new(p, key),
            serial: AtomicU64::new(1),
        }
    }

    pub fn bundle(&self) -> Bundle {
        Bundle::from_x509_authorities(self.td.clone(), [self.cert.clone()]).unwrap()
    }

    /// A leaf for `spiffe://<td><path>` and its PKCS#8 key; each call has a new serial.
    pub fn leaf(&self, path: &str) -> (CertificateDer<'static>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let id = format!("spiffe://{}{path}", self.td);
        p.subject_alt_names = vec![SanType::URI(id.as_str().try_into().unwrap())];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.serial_number = Some(self.serial.fetch_add(1, Ordering::Relaxed).into());
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), key.serialize_der())
    }
}

/// The PKI of a test: own CA (with a JWT key), a federated CA, an unrelated CA.
pub struct Pki {
    pub own: TestCa,
    pub fed: TestCa,
    pub unrelated: TestCa,
    pub jwt_key: KeyPair,
}

impl Pki {
    pub fn new() -> Self {
        Pki {
            own: TestCa::new(TD),
            fed: TestCa::new(FED_TD),
            unrelated: TestCa::new(UNRELATED_TD),
            jwt_key: KeyPair::generate().unwrap(),
        }
    }

    /// A cached SVID for `e`, with a freshly issued leaf (new serial, new key).
    pub fn svid(&self, e: &Entry) -> Arc<CachedSvid> {
        let (leaf, key) = self.own.leaf(e.path);
        Arc::new(CachedSvid {
            entry_id: e.entry_id.to_owned(),
            spiffe_id: SpiffeId::parse(&format!("spiffe://{TD}{}", e.path)).unwrap(),
            selectors: e.selectors.clone(),
            chain: vec![leaf],
            key_pkcs8: Zeroizing::new(key),
            not_after: e.not_after,
            hint: e.hint.to_owned(),
            federates_with: e
                .federates_with
                .iter()
                .map(|t| TrustDomain::new(t).unwrap())
                .collect(),
            jwt_svid_ttl: 0,
        })
    }

    /// A snapshot with these SVIDs, the own bundle (X.509 CA + JWT key "k1"), and the
    /// federated and unrelated trust domains' bundles.
    pub fn state(&self, svids: Vec<Arc<CachedSvid>>, revision: u64) -> Arc<CacheState> {
        let mut own = self.own.bundle();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&self.jwt_key);
        own.add_jwt_authority("k1", JwtAuthority::from_spki_der(&spki).unwrap())
            .unwrap();
        let mut federated = BTreeMap::new();
        federated.insert(self.fed.td.clone(), self.fed.bundle());
        federated.insert(self.unrelated.td.clone(), self.unrelated.bundle());
        let mut svids = svids;
        svids.sort_by(|a, b| (&a.spiffe_id, &a.entry_id).cmp(&(&b.spiffe_id, &b.entry_id)));
        Arc::new(CacheState {
            trust_domain: self.own.td.clone(),
            svids,
            own_bundle: own,
            federated,
            revision,
            unavailable: None,
        })
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// An entry description for [`Pki::svid`].
#[derive(Clone)]
pub struct Entry {
    pub entry_id: &'static str,
    pub path: &'static str,
    pub selectors: Vec<Selector>,
    pub not_after: i64,
    pub hint: &'static str,
    pub federates_with: Vec<&'static str>,
}

impl Entry {
    /// An entry matching this process (by uid), valid for an hour.
    pub fn mine(entry_id: &'static str, path: &'static str) -> Self {
        Entry {
            entry_id,
            path,
            selectors: vec![my_uid_selector()],
            not_after: now() + 3600,
            hint: "",
            federates_with: vec![],
        }
    }

    /// An entry for some other workload (a uid nobody has).
    pub fn other(entry_id: &'static str, path: &'static str) -> Self {
        Entry {
            selectors: vec![Selector::new("unix", "uid:4000000")],
            ..Entry::mine(entry_id, path)
        }
    }

    pub fn hint(mut self, h: &'static str) -> Self {
        self.hint = h;
        self
    }

    pub fn federates_with(mut self, td: &'static str) -> Self {
        self.federates_with.push(td);
        self
    }

    pub fn not_after(mut self, t: i64) -> Self {
        self.not_after = t;
        self
    }
}

/// JWT-SVIDs that say what they were minted for.
pub struct FakeJwt;

#[tonic::async_trait]
impl JwtSource for FakeJwt {
    async fn jwt_svid(&self, svid: &CachedSvid, audience: &[String]) -> Result<String, JwtError> {
        Ok(format!("jwt:{}:{}", svid.spiffe_id, audience.join(",")))
    }
}

/// One process-wide attestor, so the test binary is hashed once.
pub fn attestor() -> Arc<dyn WorkloadAttestor> {
    static A: std::sync::OnceLock<Arc<UnixAttestor>> = std::sync::OnceLock::new();
    A.get_or_init(|| Arc::new(UnixAttestor::new())).clone()
}

pub type HeaderFn = fn(Request<()>) -> Result<Request<()>, Status>;
pub type Client = SpiffeWorkloadApiClient<InterceptedService<Channel, HeaderFn>>;
pub type RawClient = SpiffeWorkloadApiClient<Channel>;

fn add_header(mut req: Request<()>) -> Result<Request<()>, Status> {
    req.metadata_mut()
        .insert("workload.spiffe.io", MetadataValue::from_static("true"));
    Ok(req)
}

/// A channel to the socket at `path` (one connection).
pub async fn channel_with(path: &Path, endpoint: Endpoint) -> Channel {
    let path = path.to_owned();
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

pub fn endpoint() -> Endpoint {
    Endpoint::try_from("http://[::]:50051").unwrap()
}

/// A running Workload API on a temp-dir socket.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub pki: Pki,
    pub cache: watch::Sender<Arc<CacheState>>,
    pub api: WorkloadApi,
    pub health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Harness {
    /// Serves `entries` (built from the harness's own PKI).
    pub async fn start(entries: &[Entry]) -> Self {
        let pki = Pki::new();
        let svids = entries.iter().map(|e| pki.svid(e)).collect();
        let state = pki.state(svids, 1);
        Self::start_with(pki, state, |api| api).await
    }

    pub async fn start_with(
        pki: Pki,
        state: Arc<CacheState>,
        tweak: impl FnOnce(WorkloadApi) -> WorkloadApi,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent").join("api.sock");
        let (cache, rx) = watch::channel(state);
        let api = tweak(WorkloadApi::new(rx, attestor(), Arc::new(FakeJwt)));
        let health = workload_api::health_reporter().await;
        let listener = workload_api::bind_workload_socket(&socket).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = {
            let api = api.clone();
            let health = health.clone();
            tokio::spawn(async move {
                workload_api::serve(listener, api, &health, async {
                    let _ = stopped.await;
                })
                .await
            })
        };
        Harness {
            dir,
            socket,
            pki,
            cache,
            api,
            health,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// A client that sends the security header.
    pub async fn client(&self) -> Client {
        let ch = channel_with(&self.socket, endpoint()).await;
        SpiffeWorkloadApiClient::with_interceptor(ch, add_header as HeaderFn)
    }

    /// A client with a custom endpoint (e.g. a small flow-control window).
    pub async fn client_with(&self, ep: Endpoint) -> Client {
        let ch = channel_with(&self.socket, ep).await;
        SpiffeWorkloadApiClient::with_interceptor(ch, add_header as HeaderFn)
    }

    /// A client that sends no security header.
    pub async fn raw_client(&self) -> RawClient {
        SpiffeWorkloadApiClient::new(channel_with(&self.socket, endpoint()).await)
    }

    /// Publishes a snapshot of these entries.
    pub fn publish(&self, entries: &[Entry], revision: u64) {
        let svids = entries.iter().map(|e| self.pki.svid(e)).collect();
        self.cache.send_replace(self.pki.state(svids, revision));
    }

    /// Asks the server to stop (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits until `f()` holds, polling, for at most `limit`.
    pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if f() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The DER chains of the SVIDs of a snapshot, by SPIFFE ID.
pub fn chains_by_id(state: &CacheState) -> BTreeMap<String, Vec<u8>> {
    state
        .svids
        .iter()
        .map(|s| {
            (
                s.spiffe_id.to_string(),
                s.chain.iter().flat_map(|c| c.to_vec()).collect(),
            )
        })
        .collect()
}
