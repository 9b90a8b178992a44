//! The in-process harness of the inbound tests: a proxy listener built from a `Context`
//! (no agent), backend apps, and clients (rustls in process, curl and openssl as processes).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use sigil_policy::{MeshContext, Workload};
use sigil_proxy::Context;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::{AppProtocol, InboundPort, Limits, ProxyConfig};
use sigil_proxy::identity::{Identity, IdentitySource};
use sigil_proxy::mesh::{MeshSource, MeshView};
use sigil_proxy::stats::{ListenerStats, Stats};
use sigil_proxy::testing::{Issued, TestCa};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub const TD: &str = "cluster.local";
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";
pub const CHECKOUT: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";
pub const FRONTEND: &str = "spiffe://cluster.local/ns/payments/sa/frontend";
/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub const STRICT: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n";
pub const PERMISSIVE: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: PERMISSIVE\n";
pub const DISABLE: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: DISABLE\n";
pub const SEED_AUTHZ: &str = include_str!("../../../policy/tests/data/seed_authz.yaml");

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Whether `bin` runs (`curl --version`, `openssl version`); tests that need it say so
/// loudly when it does not.
pub fn have(bin: &str) -> bool {
    let arg = if bin == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ok = std::process::Command::new(bin)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED PART: `{bin}` is not installed");
    }
    ok
}

pub fn view(rev: i64, yaml: &str) -> MeshView {
    let docs = if yaml.trim().is_empty() {
        Vec::new()
    } else {
        sigil_policy::parse_documents("test.yaml", yaml).unwrap()
    };
    MeshView::compile(
        rev,
        docs,
        Workload::new("payments", [("app", "billing-service")]),
        MeshContext::default(),
    )
}

/// The server identity: the billing SVID, with DNS SAN `localhost` so curl can check it.
pub fn server_identity(ca: &TestCa) -> (Identity, Issued) {
    let issued = ca
        .issue(SERVER_ID, &["localhost"], now() - 60, now() + 3600)
        .unwrap();
    let id = Identity::from_response(&ca.response_for(SERVER_ID, &issued), None).unwrap();
    (id, issued)
}

/// A running inbound listener.
pub struct Proxy {
    pub addr: SocketAddr,
    pub ctx: Context,
    pub identity: IdentitySource,
    pub mesh: MeshSource,
    pub shutdown: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub port: u16,
}

pub struct ProxyBuilder {
    pub identity: Identity,
    pub yaml: String,
    pub app: SocketAddr,
    pub protocol: AppProtocol,
    pub limits: Limits,
    pub access_log: AccessLog,
    pub port: u16,
}

impl ProxyBuilder {
    pub fn new(identity: Identity, yaml: &str, app: SocketAddr) -> Self {
        ProxyBuilder {
            identity,
            yaml: yaml.to_owned(),
            app,
            protocol: AppProtocol::Http,
            limits: Limits {
                handshake_timeout: Duration::from_secs(5),
                header_timeout: Duration::from_secs(5),
                ..Limits::default()
            },
            access_log: AccessLog::off(),
            port: 8080,
        }
    }

    pub fn protocol(mut self, p: AppProtocol) -> Self {
        self.protocol = p;
        self
    }

    pub fn limits(mut self, f: impl FnOnce(&mut Limits)) -> Self {
        f(&mut self.limits);
        self
    }

    pub fn access_log(mut self, path: &Path) -> Self {
        self.access_log =
            AccessLog::start(&sigil_proxy::config::AccessLogTarget::File(path.to_owned())).unwrap();
        self
    }

    pub async fn start(self) -> Proxy {
        let mut cfg = ProxyConfig::parse(
            "workload:\n  name: billing-service\n  namespace: payments\n  labels: {app: billing-service}\n",
        )
        .unwrap();
        let port = InboundPort {
            port: self.port,
            bind: None,
            app: self.app,
            protocol: self.protocol,
        };
        cfg.inbound = vec![port.clone()];
        cfg.limits = self.limits;
        let identity = IdentitySource::fixed(self.identity);
        let mesh = MeshSource::fixed(view(1, &self.yaml));
        let ctx = Context {
            cfg: Arc::new(cfg),
            identity: identity.clone(),
            mesh: mesh.clone(),
            stats: Arc::new(Stats::new(&[self.port], &[])),
            access_log: self.access_log,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(sigil_proxy::inbound::serve(listener, port, ctx.clone(), rx));
        Proxy {
            addr,
            ctx,
            identity,
            mesh,
            shutdown: tx,
            task,
            port: self.port,
        }
    }
}

impl Proxy {
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.ctx.stats.inbound(self.port)
    }

    /// Waits (bounded) until `f` holds on the listener's counters.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&ListenerStats) -> bool) {
        let s = self.stats();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !f(&s) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; stats:\n{}",
                self.ctx.stats.envoy_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn counter(&self, name: &str) -> i64 {
        let text = self.ctx.stats.envoy_text();
        let key = format!("listener.0.0.0.0_{}.{name}: ", self.port);
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no counter {name} in\n{text}"))
            .parse()
            .unwrap()
    }
}

/// An HTTP/1.1 app answering `<method> <path>\nxfcc=<header or none>`.
pub async fn http_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let xfcc = req
                        .headers()
                        .get("x-forwarded-client-cert")
                        .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
                    let head = format!("{} {}\nxfcc={xfcc}\n", req.method(), req.uri().path());
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let body = body.unwrap_or_default();
                    let mut out = head.into_bytes();
                    out.extend_from_slice(&body);
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(out))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// A TCP app that echoes every byte.
pub async fn echo_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A TLS app (its own certificate, not the mesh's) answering every connection with
/// `app-tls:<what it read>`.
pub async fn tls_app(ca: &TestCa) -> SocketAddr {
    let issued = ca
        .issue(
            "spiffe://cluster.local/app/own-tls",
            &["localhost"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            issued.chain.clone(),
            PrivateKeyDer::Pkcs8(issued.key_pkcs8.clone().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let mut out = b"app-tls:".to_vec();
                out.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&out).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A rustls client config: `cert` (if any) as client certificate, the server verified as
/// any SVID of `ca`'s bundle, offering `alpn`.
pub fn client_config(ca: &TestCa, cert: Option<&Issued>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let bundles = ca.identity(CHECKOUT).unwrap().bundles;
    let verifier = Arc::new(sigil_tls::SpiffeServerVerifier::new(
        bundles,
        sigil_tls::IdMatcher::Any,
    ));
    let b = ClientConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match cert {
        Some(c) => b
            .with_client_auth_cert(
                c.chain.clone(),
                PrivateKeyDer::Pkcs8(c.key_pkcs8.clone().into()),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

pub async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("billing.payments").unwrap();
    tokio::time::timeout(
        WAIT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("TLS connect timed out"))?
}

/// An HTTP/1.1 client connection over `io`.
pub async fn h1<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (s, c) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(c);
    s
}

pub fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "billing-service.payments.svc.cluster.local:8080");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

/// Sends `r`, returns status and body text.
pub async fn call(
    s: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    r: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, String) {
    let resp = tokio::time::timeout(WAIT, async {
        s.ready().await.unwrap();
        s.send_request(r).await.unwrap()
    })
    .await
    .expect("request timed out");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Files of a certificate for the real clients.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn write_cert(dir: &Path, name: &str, i: &Issued) -> CertFiles {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, i.cert_pem()).unwrap();
    std::fs::write(&key, i.key_pem()).unwrap();
    CertFiles { cert, key }
}

/// Runs a process with a deadline; returns (exit success, stdout, stderr).
pub async fn run(cmd: &mut tokio::process::Command, stdin: &[u8]) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin).await;
        // Keep stdin open briefly so s_client finishes its handshake before EOF.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(i);
    }
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("process timed out")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
