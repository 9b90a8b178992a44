#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Outbound MUTUAL and SIMPLE against a real peer: `openssl s_server` (skipped, loudly, when
//! the binary is missing).

mod outbound_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outbound_support::*;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::AppProtocol;
use sigil_proxy::testing::TestCa;

struct SServer(Child);

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: `openssl` is not installed; the real-peer outbound tests did not run");
    }
    ok
}

/// `openssl s_server -www` on a free loopback port, `extra` appended.
async fn s_server(dir: &Path, extra: &[&str]) -> (SServer, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = SServer(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-www",
                "-quiet",
            ])
            .args(["-cert", "server.pem", "-key", "server.key"])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (server, addr);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("openssl s_server did not start on {addr}");
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, n: &str) -> String {
        self.dir.path().join(n).display().to_string()
    }
}

fn pki() -> Pki {
    let web = TestCa::new("example.org").unwrap();
    let dir = tempdir();
    let server = web
        .issue(
            "spiffe://example.org/billing",
            &["billing.example.org"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let client = web
        .issue(
            "spiffe://example.org/checkout",
            &["checkout.example.org"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let w = |n: &str, s: String| std::fs::write(dir.path().join(n), s).unwrap();
    w("ca.pem", web.root_pem());
    w("server.pem", server.cert_pem());
    w("server.key", server.key_pem());
    w("client.pem", client.cert_pem());
    w("client.key", client.key_pem());
    Pki { dir }
}

fn rule(mode: &str, fields: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: billing, namespace: payments}}
spec:
  host: {HOST}
  trafficPolicy:
    tls:
      mode: {mode}
      sni: billing.example.org
{fields}"
    )
}

#[tokio::test]
async fn mutual_with_files_against_openssl_s_server_requiring_a_client_certificate() {
    if !have_openssl() {
        return;
    }
    let pki = pki();
    let (_srv, addr) = s_server(
        pki.dir.path(),
        &["-CAfile", "ca.pem", "-Verify", "1", "-verify_return_error"],
    )
    .await;
    let ca = TestCa::new("cluster.local").unwrap();
    let fields = format!(
        "      clientCertificate: {}\n      privateKey: {}\n      caCertificates: {}\n",
        pki.path("client.pem"),
        pki.path("client.key"),
        pki.path("ca.pem")
    );
    let proxy = Proxy::start(
        context(&ca, &rule("MUTUAL", &fields), AccessLog::off()),
        upstream(AppProtocol::Http, Some(addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("s_server"), "{body}");
    assert_eq!(count(&proxy.stats().handshake), 1);
    proxy.stop().await;

    // SIMPLE (no client certificate) is refused by the same server.
    let fields = format!("      caCertificates: {}\n", pki.path("ca.pem"));
    let proxy = Proxy::start(
        context(&ca, &rule("SIMPLE", &fields), AccessLog::off()),
        upstream(AppProtocol::Http, Some(addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    proxy.stop().await;
}

#[tokio::test]
async fn simple_with_ca_certificates_against_openssl_s_server() {
    if !have_openssl() {
        return;
    }
    let pki = pki();
    let (_srv, addr) = s_server(pki.dir.path(), &[]).await;
    let ca = TestCa::new("cluster.local").unwrap();
    let fields = format!("      caCertificates: {}\n", pki.path("ca.pem"));
    let proxy = Proxy::start(
        context(&ca, &rule("SIMPLE", &fields), AccessLog::off()),
        upstream(AppProtocol::Http, Some(addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("s_server"), "{body}");
    proxy.stop().await;

    // A CA that did not sign the server: unknown issuer, counted.
    let other = TestCa::new("example.net").unwrap();
    std::fs::write(pki.dir.path().join("other.pem"), other.root_pem()).unwrap();
    let fields = format!("      caCertificates: {}\n", pki.path("other.pem"));
    let proxy = Proxy::start(
        context(&ca, &rule("SIMPLE", &fields), AccessLog::off()),
        upstream(AppProtocol::Http, Some(addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not signed by a trusted CA"), "{body}");
    assert_eq!(count(&proxy.stats().fail_verify_error), 1);
    proxy.stop().await;
}
