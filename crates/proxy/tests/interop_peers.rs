#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Interop with real mTLS peers from the distribution, started as processes on loopback:
//!
//! - nginx as an mTLS upstream demanding Sigil's client SVID (outbound ISTIO_MUTUAL, secure
//!   naming on nginx's SPIFFE ID);
//! - haproxy as an mTLS client presenting a certificate of the mesh CA to the STRICT inbound
//!   (XFCC seen by the app, AuthorizationPolicy DENY answered with 403 through haproxy);
//! - haproxy as an mTLS upstream and nginx as an mTLS client, the same shapes reversed.
//!
//! A missing `nginx` / `haproxy` fails the test when `CI` is set, and is reported as SKIPPED
//! otherwise.

mod inbound_support;
mod outbound_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use inbound_support as ib;
use outbound_support as ob;
use sha2::Digest;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::AppProtocol;
use sigil_proxy::testing::{Issued, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every wait here is bounded by this.
const WAIT: Duration = Duration::from_secs(10);
const HAPROXY_ID: &str = "spiffe://cluster.local/ns/edge/sa/haproxy";
const NGINX_CLIENT_ID: &str = "spiffe://cluster.local/ns/edge/sa/nginx";
const IMPOSTOR_ID: &str = "spiffe://cluster.local/ns/payments/sa/impostor";

/// The peer binary, looked up in PATH and the sbin directories (where Debian puts both).
fn find(bin: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(bin)).find(|p| p.is_file())
}

/// The binary, or `None` after saying SKIPPED (a panic when `CI` is set).
fn require(bin: &str) -> Option<PathBuf> {
    let found = find(bin);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{bin}` is not installed and CI is set (.ci/run installs it)"
        );
        eprintln!("SKIPPED: `{bin}` is not installed; this interop test did not run");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A peer process, killed and reaped on drop.
struct Peer {
    name: &'static str,
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Peer {
    /// Starts `cmd` (output to `<dir>/<name>.log`) and waits, bounded, until `port` accepts.
    async fn start(name: &'static str, mut cmd: Command, dir: &Path, port: u16) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut peer = Peer {
            name,
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = peer.child.try_wait().unwrap() {
                panic!("{name} exited ({status}):\n{}", peer.output());
            }
            if tokio::net::TcpStream::connect(peer.addr).await.is_ok() {
                return peer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not listen on {} in time:\n{}",
                peer.addr,
                peer.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn output(&self) -> String {
        format!(
            "--- {} output ---\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in the foreground with `conf` (its `http {}` or `stream {}` part) as configuration.
async fn nginx(bin: &Path, dir: &Path, conf: &str, port: u16) -> Peer {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let full = format!(
        "worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    default_type text/plain;
{conf}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), full).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-g")
        .arg(format!("daemon off; pid {d}/nginx.pid; error_log stderr;"));
    Peer::start("nginx", cmd, dir, port).await
}

/// haproxy in the foreground (`-db`) with `conf` after common `global`/`defaults` sections.
async fn haproxy(bin: &Path, dir: &Path, conf: &str, port: u16) -> Peer {
    let full = format!(
        "global
    log stderr format raw local0 info
defaults
    log global
    mode http
    option httplog
    timeout connect 5s
    timeout client 10s
    timeout server 10s
{conf}"
    );
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, full).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-f").arg(&cfg).arg("-db");
    Peer::start("haproxy", cmd, dir, port).await
}

/// Writes `<name>.pem`, `<name>.key` and `<name>-full.pem` (cert then key, haproxy's format).
fn write_cert(dir: &Path, name: &str, i: &Issued) {
    std::fs::write(dir.join(format!("{name}.pem")), i.cert_pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), i.key_pem()).unwrap();
    std::fs::write(
        dir.join(format!("{name}-full.pem")),
        format!("{}{}", i.cert_pem(), i.key_pem()),
    )
    .unwrap();
}

fn issue(ca: &TestCa, id: &str) -> Issued {
    ca.issue(id, &["localhost"], ob::now() - 60, ob::now() + 3600)
        .unwrap()
}

/// One HTTP/1.1 request with `headers` on a new plaintext connection: (status, body).
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:8080\r\nConnection: close\r\n",
            ob::HOST
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
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

/// An ISTIO_MUTUAL DestinationRule for the billing host pinning the server to `san`.
fn istio_mutual(san: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: billing, namespace: payments}}
spec:
  host: {}
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      subjectAltNames: [\"{san}\"]
",
        ob::HOST
    )
}

/// An AuthorizationPolicy on billing-service denying `principal`.
fn deny(principal: &str) -> String {
    let p = principal.trim_start_matches("spiffe://");
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-edge, namespace: payments}}
spec:
  selector: {{matchLabels: {{app: billing-service}}}}
  action: DENY
  rules:
  - from:
    - source:
        principals: [\"{p}\"]
"
    )
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(der))
}

#[tokio::test]
async fn nginx_upstream_demanding_the_svid_verifies_it_and_secure_naming_pins_nginx() {
    let Some(bin) = require("nginx") else { return };
    let ca = TestCa::new("cluster.local").unwrap();
    let dir = ob::tempdir();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    write_cert(dir.path(), "billing", &issue(&ca, ob::BILLING_ID));
    let port = free_port();
    let conf = format!(
        "    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {d}/billing.pem;
        ssl_certificate_key {d}/billing.key;
        ssl_client_certificate {d}/root.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {{ return 200 \"verify=$ssl_client_verify\\n$ssl_client_raw_cert\\n\"; }}
    }}"
    );
    let peer = nginx(&bin, dir.path(), &conf, port).await;

    // ISTIO_MUTUAL pinned to nginx's SPIFFE ID: nginx verified Sigil's SVID, and it is the
    // SVID of the workload's identity.
    let proxy = ob::Proxy::start(
        ob::context(&ca, &istio_mutual(ob::BILLING_ID), AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 200, "{body}\n{}", peer.output());
    assert!(body.starts_with("verify=SUCCESS\n"), "{body}");
    let presented: Vec<_> = rustls_pemfile::certs(&mut body.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let own = proxy.ctx.identity.current().unwrap();
    assert_eq!(presented, vec![own.chain[0].clone()], "{body}");
    let st = proxy.stats();
    assert_eq!(ob::count(&st.handshake), 1);
    assert_eq!(ob::count(&st.rq_2xx), 1);
    proxy.stop().await;

    // The same nginx where another SPIFFE ID is expected: refused before any request.
    let proxy = ob::Proxy::start(
        ob::context(&ca, &istio_mutual(IMPOSTOR_ID), AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("secure naming"), "{body}");
    assert!(body.contains(ob::BILLING_ID), "{body}");
    let st = proxy.stats();
    assert_eq!(ob::count(&st.fail_verify_san), 1);
    assert_eq!(ob::count(&st.handshake), 0);
    proxy.stop().await;

    // Without a client certificate (SIMPLE), nginx itself refuses: it does demand one.
    let simple = format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: billing, namespace: payments}}
spec:
  host: {}
  trafficPolicy:
    tls:
      mode: SIMPLE
      sni: localhost
      caCertificates: {d}/root.pem
",
        ob::HOST
    );
    let proxy = ob::Proxy::start(
        ob::context(&ca, &simple, AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("No required SSL certificate"), "{body}");
    proxy.stop().await;
}

#[tokio::test]
async fn nginx_upstream_presenting_an_unexpected_spiffe_id_is_refused() {
    let Some(bin) = require("nginx") else { return };
    let ca = TestCa::new("cluster.local").unwrap();
    let dir = ob::tempdir();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    write_cert(dir.path(), "impostor", &issue(&ca, IMPOSTOR_ID));
    let port = free_port();
    let conf = format!(
        "    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/impostor.pem;
        ssl_certificate_key {d}/impostor.key;
        ssl_client_certificate {d}/root.pem;
        ssl_verify_client on;
        location / {{ return 200 \"verify=$ssl_client_verify\\n\"; }}
    }}"
    );
    let peer = nginx(&bin, dir.path(), &conf, port).await;
    let proxy = ob::Proxy::start(
        ob::context(&ca, &istio_mutual(ob::BILLING_ID), AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("secure naming"), "{body}");
    assert!(body.contains("impostor"), "{body}");
    let st = proxy.stats();
    assert_eq!(ob::count(&st.fail_verify_san), 1);
    assert_eq!(ob::count(&st.handshake), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn haproxy_client_with_a_mesh_certificate_reaches_the_strict_inbound() {
    let Some(bin) = require("haproxy") else {
        return;
    };
    let ca = TestCa::new(ib::TD).unwrap();
    let (identity, _) = ib::server_identity(&ca);
    let p = ib::ProxyBuilder::new(identity, ib::STRICT, ib::http_app().await)
        .start()
        .await;
    let dir = ob::tempdir();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    let client = issue(&ca, HAPROXY_ID);
    write_cert(dir.path(), "haproxy", &client);
    let port = free_port();
    let conf = format!(
        "frontend plain_in
    bind 127.0.0.1:{port}
    default_backend sigil
backend sigil
    server s1 127.0.0.1:{} ssl crt {d}/haproxy-full.pem ca-file {d}/root.pem verify required sni str(localhost) verifyhost localhost alpn http/1.1
",
        p.addr.port()
    );
    let peer = haproxy(&bin, dir.path(), &conf, port).await;

    // The app sees the XFCC built from haproxy's certificate, not the forged one.
    let forged = "By=spiffe://evil;URI=spiffe://cluster.local/ns/payments/sa/admin";
    let (status, body) = get(peer.addr, "/x", &[("x-forwarded-client-cert", forged)]).await;
    assert_eq!(status, 200, "{body}\n{}", peer.output());
    let hash = sha256_hex(client.chain[0].as_ref());
    let want = format!(
        "xfcc=By={};Hash={hash};Subject=\"\";URI={HAPROXY_ID}\n",
        ib::SERVER_ID
    );
    assert!(body.contains(&want), "{body}");
    assert!(!body.contains("evil"), "{body}");
    p.wait_for("handshake", |s| ob::count(&s.handshake) >= 1)
        .await;

    // DENY for haproxy's principal: 403 through haproxy.
    p.mesh.replace(ib::view(
        2,
        &format!("{}---\n{}", ib::STRICT, deny(HAPROXY_ID)),
    ));
    let (status, body) = get(peer.addr, "/x", &[]).await;
    assert_eq!(status, 403, "{body}\n{}", peer.output());
    assert_eq!(body, "RBAC: access denied");
    p.wait_for("rbac denied", |s| ob::count(&s.rbac_denied) == 1)
        .await;

    // A DENY for another principal lets haproxy through again.
    p.mesh.replace(ib::view(
        3,
        &format!("{}---\n{}", ib::STRICT, deny(NGINX_CLIENT_ID)),
    ));
    let (status, body) = get(peer.addr, "/x", &[]).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn haproxy_upstream_demanding_the_svid_sees_it() {
    let Some(bin) = require("haproxy") else {
        return;
    };
    let ca = TestCa::new("cluster.local").unwrap();
    let dir = ob::tempdir();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    write_cert(dir.path(), "billing", &issue(&ca, ob::BILLING_ID));
    let port = free_port();
    let conf = format!(
        "frontend mtls_in
    bind 127.0.0.1:{port} ssl crt {d}/billing-full.pem ca-file {d}/root.pem verify required alpn http/1.1
    http-request return status 200 content-type text/plain lf-string \"verify=%[ssl_c_verify] used=%[ssl_c_used] sha256=%[ssl_c_der,sha2(256),hex,lower]\\n\"
"
    );
    let peer = haproxy(&bin, dir.path(), &conf, port).await;

    let proxy = ob::Proxy::start(
        ob::context(&ca, &istio_mutual(ob::BILLING_ID), AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 200, "{body}\n{}", peer.output());
    let own = proxy.ctx.identity.current().unwrap();
    let want = format!(
        "verify=0 used=1 sha256={}",
        sha256_hex(own.chain[0].as_ref())
    );
    assert_eq!(body.trim_end(), want);
    assert_eq!(ob::count(&proxy.stats().handshake), 1);
    proxy.stop().await;

    // Pinned to another SPIFFE ID: refused, counted.
    let proxy = ob::Proxy::start(
        ob::context(&ca, &istio_mutual(IMPOSTOR_ID), AccessLog::off()),
        ob::upstream(AppProtocol::Http, Some(peer.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("secure naming"), "{body}");
    assert_eq!(ob::count(&proxy.stats().fail_verify_san), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn nginx_client_with_a_mesh_certificate_reaches_the_strict_inbound() {
    let Some(bin) = require("nginx") else { return };
    let ca = TestCa::new(ib::TD).unwrap();
    let (identity, _) = ib::server_identity(&ca);
    let p = ib::ProxyBuilder::new(identity, ib::STRICT, ib::http_app().await)
        .start()
        .await;
    let dir = ob::tempdir();
    let d = dir.path().display().to_string();
    std::fs::write(dir.path().join("root.pem"), ca.root_pem()).unwrap();
    let client = issue(&ca, NGINX_CLIENT_ID);
    write_cert(dir.path(), "nginx-client", &client);
    let port = free_port();
    let conf = format!(
        "    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass https://127.0.0.1:{};
            proxy_http_version 1.1;
            proxy_ssl_certificate {d}/nginx-client.pem;
            proxy_ssl_certificate_key {d}/nginx-client.key;
            proxy_ssl_trusted_certificate {d}/root.pem;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
        }}
    }}",
        p.addr.port()
    );
    let peer = nginx(&bin, dir.path(), &conf, port).await;

    let (status, body) = get(peer.addr, "/y", &[]).await;
    assert_eq!(status, 200, "{body}\n{}", peer.output());
    let hash = sha256_hex(client.chain[0].as_ref());
    let want = format!(
        "xfcc=By={};Hash={hash};Subject=\"\";URI={NGINX_CLIENT_ID}\n",
        ib::SERVER_ID
    );
    assert!(body.contains(&want), "{body}");

    p.mesh.replace(ib::view(
        2,
        &format!("{}---\n{}", ib::STRICT, deny(NGINX_CLIENT_ID)),
    ));
    let (status, body) = get(peer.addr, "/y", &[]).await;
    assert_eq!(status, 403, "{body}\n{}", peer.output());
    assert_eq!(body, "RBAC: access denied");
}
