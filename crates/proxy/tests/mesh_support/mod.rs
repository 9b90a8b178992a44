//! A real control plane for the proxy's end-to-end tests: a server and an agent on loopback,
//! registration entries for this uid (one per service account, so each proxy picks its SPIFFE
//! ID), and `apply` exactly as `sigil apply` sends it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sigil_agent::config::{AgentConfig, FileConfig as AgentFile};
use sigil_proto::admin::{self as api, admin_client::AdminClient};
use sigil_proto::node as pb;
use sigil_proxy::config::ProxyConfig;
use sigil_server::config::{FileConfig, ServerConfig};
use tonic::transport::Channel;

pub const TD: &str = "cluster.local";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A file of examples/payments/mesh.
pub fn example(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/payments/mesh")
            .join(rel),
    )
    .unwrap()
}

/// Retries `f` until it returns Some (bounded at 20 s).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Applies one YAML text through the admin API; returns the revision.
pub async fn apply(admin: &mut AdminClient<Channel>, text: &str) -> i64 {
    let r = admin
        .apply_config(api::ApplyConfigRequest {
            documents: vec![api::ConfigDocument {
                file_name: "test.yaml".into(),
                text: text.into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.revision
}

/// The proxy config of `payments/<sa>` (SVID `spiffe://cluster.local/ns/payments/sa/<sa>`,
/// label `app: <sa>`) serving each `(port, app)` on 127.0.0.1, admin and stats on free ports.
pub fn server_proxy(socket: &Path, sa: &str, inbound: &[(u16, SocketAddr)]) -> ProxyConfig {
    let ports: String = inbound
        .iter()
        .map(|(port, app)| format!("  - port: {port}\n    bind: 127.0.0.1\n    app: {app}\n"))
        .collect();
    ProxyConfig::parse(&format!(
        "workload:\n  name: {sa}\n  namespace: payments\n  labels: {{app: {sa}}}\n  spiffeId: spiffe://{TD}/ns/payments/sa/{sa}\nworkloadApi: {}\ninbound:\n{ports}admin: 127.0.0.1:0\nstats: 127.0.0.1:0\naccessLog: off\n",
        socket.display()
    ))
    .unwrap()
}

/// The proxy config of `payments/<sa>` whose one upstream is billing-service at
/// 127.0.0.1:`billing_port`, listening for its app on a free local port.
pub fn client_proxy(socket: &Path, sa: &str, billing_port: u16) -> ProxyConfig {
    ProxyConfig::parse(&format!(
        "workload:\n  name: {sa}\n  namespace: payments\n  labels: {{app: {sa}}}\n  spiffeId: spiffe://{TD}/ns/payments/sa/{sa}\nworkloadApi: {}\noutbound:\n  - listen: 127.0.0.1:{}\n    host: billing-service.payments.svc.cluster.local\n    port: {billing_port}\n    address: 127.0.0.1:{billing_port}\nadmin: 127.0.0.1:0\nstats: 127.0.0.1:0\naccessLog: off\n",
        socket.display(),
        free_port()
    ))
    .unwrap()
}

/// A running server and agent.
pub struct Mesh {
    pub dir: tempfile::TempDir,
    pub server: sigil_server::Bound,
    pub admin: AdminClient<Channel>,
    pub agent: sigil_agent::Bound,
    /// The agent's socket (Workload API and MeshConfig).
    pub socket: PathBuf,
}

impl Mesh {
    /// Starts both and registers `spiffe://cluster.local/ns/payments/sa/<sa>` for each of
    /// `accounts`, selected by this process's uid, with X.509-SVID TTL `svid_ttl` seconds (0 =
    /// the server's default).
    pub async fn start(accounts: &[&str], svid_ttl: i32) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = sigil_server::build(
            ServerConfig::resolve(FileConfig {
                data_dir: Some(dir.path().join("server")),
                bind_address: Some("127.0.0.1".parse().unwrap()),
                bind_port: Some(port),
                metrics_address: Some("off".into()),
                ..FileConfig::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
        let mut admin = sigil_server::admin_client::connect(&server.admin_socket)
            .await
            .unwrap();
        let b = admin
            .get_bundle(api::GetBundleRequest::default())
            .await
            .unwrap()
            .into_inner();
        let certs: Vec<rustls_pki_types::CertificateDer<'_>> = b
            .x509_authorities
            .iter()
            .map(|c| c.as_slice().into())
            .collect();
        let bundle = dir.path().join("bundle.pem");
        std::fs::write(&bundle, sigil_spiffe::pem::encode_certificates(&certs)).unwrap();
        let token = admin
            .generate_join_token(api::GenerateJoinTokenRequest {
                ttl: 600,
                spiffe_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        let socket = dir.path().join("agent.sock");
        let agent = sigil_agent::build(
            AgentConfig::resolve(AgentFile {
                server_address: Some(format!("127.0.0.1:{port}")),
                trust_bundle: Some(bundle),
                join_token: Some(token.clone()),
                data_dir: Some(dir.path().join("agent")),
                socket_path: Some(socket.clone()),
                sync_interval: Some("1s".into()),
                ..Default::default()
            })
            .unwrap(),
        )
        .await
        .unwrap();
        let parent = format!("spiffe://{TD}/spire/agent/join_token/{token}");
        for sa in accounts {
            admin
                .create_entry(api::CreateEntryRequest {
                    entry: Some(pb::Entry {
                        spiffe_id: format!("spiffe://{TD}/ns/payments/sa/{sa}"),
                        parent_id: parent.clone(),
                        selectors: vec![pb::Selector {
                            r#type: "unix".into(),
                            value: format!("uid:{}", my_uid()),
                        }],
                        x509_svid_ttl: svid_ttl,
                        ..Default::default()
                    }),
                })
                .await
                .unwrap();
        }
        Mesh {
            dir,
            server,
            admin,
            agent,
            socket,
        }
    }
}

/// A tiny HTTP/1.1 app: answers every request with 200 and, in the body, the
/// X-Forwarded-Client-Cert header it received (or "-").
pub fn start_app() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                // Long enough for pooled keep-alive connections of the 60 s load test.
                let _ = c.set_read_timeout(Some(Duration::from_secs(120)));
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    // One request head at a time (no bodies larger than the read).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match c.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    buf.drain(..end + len);
                    let xfcc = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("x-forwarded-client-cert")
                                .then(|| v.trim().to_owned())
                        })
                        .unwrap_or_else(|| "-".into());
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{xfcc}",
                        xfcc.len()
                    );
                    if c.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One HTTP/1.1 request on a new plaintext connection: (status, body), or the I/O error.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: billing-service.payments.svc.cluster.local\r\ncontent-length: 0\r\nconnection: close\r\nx-forwarded-client-cert: By=forged\r\n\r\n"
    );
    c.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    c.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    Ok((status, body))
}
