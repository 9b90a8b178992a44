//! Harness for the outbound tests: a `Context` built in code, in-process upstream servers
//! (mesh mTLS requiring a client SVID, webpki TLS, plaintext) that record what they saw, and
//! a tiny HTTP/1.1 app client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sigil_proxy::Context;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::{AppProtocol, ProxyConfig, Upstream};
use sigil_proxy::identity::IdentitySource;
use sigil_proxy::mesh::{MeshSource, MeshView};
use sigil_proxy::stats::{ListenerStats, Stats};
use sigil_proxy::testing::{Issued, TestCa};
use sigil_spiffe::{Bundle, BundleSet, TrustDomain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";
pub const BILLING_ID: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";
pub const HOST: &str = "billing-service.payments.svc.cluster.local";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The checkout-service proxy's context, with `yaml` as mesh configuration.
pub fn context(ca: &TestCa, yaml: &str, access_log: AccessLog) -> Context {
    let cfg = ProxyConfig::parse(
        "workload:\n  name: checkout-service\n  namespace: payments\n  labels: {app: checkout-service}\nlimits:\n  handshakeTimeout: 3s\n  drainTimeout: 1s\n",
    )
    .unwrap();
    let resources = if yaml.trim().is_empty() {
        Vec::new()
    } else {
        sigil_policy::parse_documents("test.yaml", yaml).unwrap()
    };
    let view = MeshView::compile(
        1,
        resources,
        cfg.policy_workload(Some(CLIENT_ID)),
        sigil_policy::MeshContext::default(),
    );
    Context {
        cfg: Arc::new(cfg),
        identity: IdentitySource::fixed(ca.identity(CLIENT_ID).unwrap()),
        mesh: MeshSource::fixed(view),
        stats: Arc::new(Stats::new(&[], &[format!("{HOST}:8080")])),
        access_log,
    }
}

pub fn upstream(protocol: AppProtocol, address: Option<SocketAddr>) -> Upstream {
    Upstream {
        listen: "127.0.0.1:0".parse().unwrap(),
        host: HOST.into(),
        port: 8080,
        protocol,
        address,
        subset: None,
    }
}

/// A running outbound listener.
pub struct Proxy {
    pub addr: SocketAddr,
    pub ctx: Context,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Proxy {
    pub async fn start(ctx: Context, upstream: Upstream) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sigil_proxy::outbound::serve(
            listener,
            Upstream {
                listen: addr,
                ..upstream
            },
            ctx.clone(),
            rx,
        ));
        Proxy {
            addr,
            ctx,
            shutdown: tx,
            task,
        }
    }

    pub fn stats(&self) -> Arc<ListenerStats> {
        self.ctx.stats.outbound(&format!("{HOST}:8080"))
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

pub fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One HTTP/1.1 request on a new app connection: (status, body).
pub async fn get(proxy: SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(proxy).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}:8080\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .expect("request within the deadline")
}

/// What an upstream server saw.
#[derive(Default)]
pub struct Seen {
    pub accepts: AtomicUsize,
    pub handshakes: AtomicUsize,
    /// SPIFFE ID of each client certificate.
    pub client_ids: Mutex<Vec<String>>,
    /// Serial (hex) of each client certificate.
    pub client_serials: Mutex<Vec<String>>,
    pub sni: Mutex<Vec<Option<String>>>,
    pub requests: AtomicUsize,
}

pub enum Tls {
    /// Requires a client SVID chaining to `bundle_roots`; presents `cert`.
    Mesh {
        cert: Issued,
        bundle_roots: Vec<CertificateDer<'static>>,
    },
    /// No client certificate; presents `cert`.
    Simple {
        cert: Issued,
    },
    /// webpki client verification against `client_ca`.
    Mutual {
        cert: Issued,
        client_ca: CertificateDer<'static>,
    },
    Plain,
}

pub struct Upstream_ {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

fn key(i: &Issued) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(i.key_pkcs8.clone()))
}

/// An upstream server answering HTTP (`http: true`: 200 `hello` with an `x-path` echo) or
/// echoing bytes (TCP).
pub async fn server(tls: Tls, http: bool) -> Upstream_ {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let builder = rustls::ServerConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match tls {
        Tls::Mesh { cert, bundle_roots } => {
            let mut bundles = BundleSet::new();
            bundles.insert(
                Bundle::from_x509_authorities(
                    TrustDomain::new("cluster.local").unwrap(),
                    bundle_roots,
                )
                .unwrap(),
            );
            let mut c = builder
                .with_client_cert_verifier(Arc::new(sigil_tls::SpiffeClientVerifier::new(
                    bundles, false,
                )))
                .with_single_cert(cert.chain.clone(), key(&cert))
                .unwrap();
            c.alpn_protocols = vec![b"sigil-mtls".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(c))
        }
        Tls::Simple { cert } => Some(Arc::new(
            builder
                .with_no_client_auth()
                .with_single_cert(cert.chain.clone(), key(&cert))
                .unwrap(),
        )),
        Tls::Mutual { cert, client_ca } => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca).unwrap();
            let v =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), sigil_tls::provider())
                    .build()
                    .unwrap();
            Some(Arc::new(
                builder
                    .with_client_cert_verifier(v)
                    .with_single_cert(cert.chain.clone(), key(&cert))
                    .unwrap(),
            ))
        }
        Tls::Plain => None,
    };
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            s.accepts.fetch_add(1, Ordering::Relaxed);
            let s = s.clone();
            let config = config.clone();
            tokio::spawn(async move {
                match config {
                    Some(config) => {
                        let acceptor = tokio_rustls::LazyConfigAcceptor::new(
                            rustls::server::Acceptor::default(),
                            tcp,
                        );
                        let Ok(start) = acceptor.await else { return };
                        s.sni
                            .lock()
                            .unwrap()
                            .push(start.client_hello().server_name().map(str::to_owned));
                        let Ok(tls) = start.into_stream(config).await else {
                            return;
                        };
                        s.handshakes.fetch_add(1, Ordering::Relaxed);
                        if let Some(leaf) =
                            tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                        {
                            if let Ok(id) = sigil_spiffe::leaf_spiffe_id(leaf) {
                                s.client_ids.lock().unwrap().push(id.to_string());
                            }
                            let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
                            s.client_serials
                                .lock()
                                .unwrap()
                                .push(hex::encode(cert.raw_serial()));
                        }
                        respond(tls, http, s).await;
                    }
                    None => respond(tcp, http, s).await,
                }
            });
        }
    });
    Upstream_ { addr, seen }
}

async fn respond<IO>(io: IO, http: bool, seen: Arc<Seen>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if !http {
        let (mut r, mut w) = tokio::io::split(io);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        return;
    }
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        seen.requests.fetch_add(1, Ordering::Relaxed);
        let path = req.uri().path().to_owned();
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        async move {
            let status = if path == "/forbidden" { 403 } else { 200 };
            let body = if status == 403 {
                "RBAC: access denied".to_owned()
            } else {
                format!("hello path={path} host={host}")
            };
            Ok::<_, std::convert::Infallible>(
                hyper::Response::builder()
                    .status(status)
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
