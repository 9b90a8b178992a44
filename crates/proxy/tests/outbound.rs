#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Outbound: DestinationRule TLS modes on real connections, secure naming, resolution through
//! ServiceEntry/WorkloadEntry, pooling and identity rotation.

mod outbound_support;

use std::sync::atomic::Ordering;

use outbound_support::*;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::{AccessLogTarget, AppProtocol};
use sigil_proxy::testing::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEED_DR: &str = "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: payments-mtls
  namespace: payments
spec:
  host: \"*.payments.svc.cluster.local\"
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
";

fn mesh_server_cert(ca: &TestCa, id: &str) -> sigil_proxy::testing::Issued {
    ca.issue(id, &[], now() - 60, now() + 3600).unwrap()
}

async fn mesh_server(ca: &TestCa, id: &str, http: bool) -> Upstream_ {
    server(
        Tls::Mesh {
            cert: mesh_server_cert(ca, id),
            bundle_roots: vec![ca.root.clone()],
        },
        http,
    )
    .await
}

#[tokio::test]
async fn istio_mutual_from_the_seed_rule_presents_the_client_svid() {
    let ca = TestCa::new("cluster.local").unwrap();
    let up = mesh_server(&ca, BILLING_ID, true).await;
    let dir = tempdir();
    let log_path = dir.path().join("access.log");
    let log = AccessLog::start(&AccessLogTarget::File(log_path.clone())).unwrap();
    let proxy = Proxy::start(
        context(&ca, SEED_DR, log),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;

    let (status, body) = get(proxy.addr, "/api/v1/charge").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("path=/api/v1/charge host={HOST}:8080")),
        "Host is preserved: {body}"
    );
    assert_eq!(
        *up.seen.client_ids.lock().unwrap(),
        vec![CLIENT_ID.to_owned()]
    );
    let st = proxy.stats();
    assert_eq!(count(&st.handshake), 1);
    assert_eq!(count(&st.rq_2xx), 1);

    // A 403 from the upstream passes through unchanged.
    let (status, body) = get(proxy.addr, "/forbidden").await;
    assert_eq!(status, 403);
    assert_eq!(body, "RBAC: access denied");
    assert_eq!(count(&st.rq_4xx), 1);

    // The access log names the mode, the rule and the server's identity.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["tls_mode"], "ISTIO_MUTUAL");
    assert_eq!(
        first["destination_rule"],
        "payments/payments-mtls (trafficPolicy.tls)"
    );
    assert_eq!(first["upstream_spiffe_id"], BILLING_ID);
    assert_eq!(first["status"], 200);
    assert_eq!(first["destination"], format!("{HOST}:8080"));
    assert_eq!(first["upstream_address"], up.addr.to_string());
    assert_eq!(first["alpn"], "sigil-mtls");
    proxy.stop().await;
}

/// A ServiceEntry pinning billing-service's SPIFFE ID; its endpoint is `addr`.
fn service_entry_with_sans(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: billing
  namespace: payments
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - number: 8080
      name: http
      protocol: HTTP
  endpoints:
    - address: 127.0.0.1
      ports: {{http: {port}}}
  subjectAltNames: [\"{BILLING_ID}\"]
"
    )
}

#[tokio::test]
async fn secure_naming_refuses_a_server_with_another_spiffe_id() {
    let ca = TestCa::new("cluster.local").unwrap();
    let impostor = mesh_server(&ca, "spiffe://cluster.local/ns/payments/sa/impostor", true).await;
    let yaml = format!(
        "{SEED_DR}---\n{}",
        service_entry_with_sans(impostor.addr.port())
    );
    let proxy = Proxy::start(
        context(&ca, &yaml, AccessLog::off()),
        upstream(AppProtocol::Http, None),
    )
    .await;

    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("secure naming"), "{body}");
    assert!(body.contains("impostor"), "{body}");
    assert_eq!(impostor.seen.requests.load(Ordering::Relaxed), 0);
    let st = proxy.stats();
    assert_eq!(count(&st.fail_verify_san), 1);
    assert_eq!(count(&st.handshake), 0);
    assert_eq!(count(&st.rq_5xx), 1);

    // The right server behind the same ServiceEntry is accepted.
    let billing = mesh_server(&ca, BILLING_ID, true).await;
    let yaml = format!(
        "{SEED_DR}---\n{}",
        service_entry_with_sans(billing.addr.port())
    );
    let proxy2 = Proxy::start(
        context(&ca, &yaml, AccessLog::off()),
        upstream(AppProtocol::Http, None),
    )
    .await;
    let (status, body) = get(proxy2.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    proxy.stop().await;
    proxy2.stop().await;
}

fn service_entry_selecting_workload_entry(port: u16, service_account: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: billing
  namespace: payments
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - number: 8080
      name: http
      protocol: HTTP
      targetPort: 1
  workloadSelector:
    labels: {{app: billing-service}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: billing-vm-1
  namespace: payments
spec:
  address: 127.0.0.1
  ports: {{http: {port}}}
  labels: {{app: billing-service, version: v1}}
  serviceAccount: {service_account}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: elsewhere
  namespace: other
spec:
  address: 127.0.0.2
  labels: {{app: billing-service}}
"
    )
}

#[tokio::test]
async fn resolution_through_service_entry_and_workload_entry_with_its_service_account() {
    let ca = TestCa::new("cluster.local").unwrap();
    let billing = mesh_server(&ca, BILLING_ID, true).await;
    // No DestinationRule: automatic mTLS, secure naming from the WorkloadEntry's account.
    let yaml = service_entry_selecting_workload_entry(billing.addr.port(), "billing-service");
    let proxy = Proxy::start(
        context(&ca, &yaml, AccessLog::off()),
        upstream(AppProtocol::Http, None),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        *billing.seen.client_ids.lock().unwrap(),
        vec![CLIENT_ID.to_owned()]
    );
    proxy.stop().await;

    // The WorkloadEntry says the endpoint runs as `ledger`: billing-service's SVID is refused.
    let yaml = service_entry_selecting_workload_entry(billing.addr.port(), "ledger");
    let proxy = Proxy::start(
        context(&ca, &yaml, AccessLog::off()),
        upstream(AppProtocol::Http, None),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("/sa/ledger"), "{body}");
    assert_eq!(count(&proxy.stats().fail_verify_san), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn a_server_from_a_foreign_ca_is_refused() {
    let ca = TestCa::new("cluster.local").unwrap();
    let foreign = TestCa::new("cluster.local").unwrap();
    let up = server(
        Tls::Mesh {
            cert: mesh_server_cert(&foreign, BILLING_ID),
            bundle_roots: vec![ca.root.clone()],
        },
        true,
    )
    .await;
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("trusted CA") || body.contains("refused"),
        "{body}"
    );
    let st = proxy.stats();
    assert_eq!(count(&st.fail_verify_error), 1);
    assert_eq!(count(&st.fail_verify_san), 0);
    proxy.stop().await;
}

#[tokio::test]
async fn no_rule_means_automatic_mtls() {
    let ca = TestCa::new("cluster.local").unwrap();
    let up = mesh_server(&ca, BILLING_ID, false).await;
    let proxy = Proxy::start(
        context(&ca, "", AccessLog::off()),
        upstream(AppProtocol::Tcp, Some(up.addr)),
    )
    .await;
    // TCP: bytes are echoed through the mTLS connection.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"ping over mtls").await.unwrap();
    let mut buf = [0u8; 14];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping over mtls");
    drop(s);
    assert_eq!(
        *up.seen.client_ids.lock().unwrap(),
        vec![CLIENT_ID.to_owned()]
    );
    assert_eq!(count(&proxy.stats().handshake), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn disable_is_plaintext_and_port_level_settings_override_the_top_level() {
    let ca = TestCa::new("cluster.local").unwrap();
    let plain = server(Tls::Plain, true).await;
    let disable = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing, namespace: payments}
spec:
  host: billing-service
  trafficPolicy:
    tls: {mode: DISABLE}
";
    let proxy = Proxy::start(
        context(&ca, disable, AccessLog::off()),
        upstream(AppProtocol::Http, Some(plain.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&proxy.stats().handshake), 0);
    proxy.stop().await;

    // Top level ISTIO_MUTUAL, port 8080 DISABLE: plaintext on 8080.
    let port_level = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing, namespace: payments}
spec:
  host: billing-service.payments.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
      - port: {number: 8080}
        tls: {mode: DISABLE}
";
    let proxy = Proxy::start(
        context(&ca, port_level, AccessLog::off()),
        upstream(AppProtocol::Http, Some(plain.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    proxy.stop().await;

    // And the reverse: top level DISABLE, port 8080 ISTIO_MUTUAL.
    let mesh = mesh_server(&ca, BILLING_ID, true).await;
    let reverse = port_level
        .replace("{mode: ISTIO_MUTUAL}", "{mode: X}")
        .replace("{mode: DISABLE}", "{mode: ISTIO_MUTUAL}")
        .replace("{mode: X}", "{mode: DISABLE}");
    let proxy = Proxy::start(
        context(&ca, &reverse, AccessLog::off()),
        upstream(AppProtocol::Http, Some(mesh.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        *mesh.seen.client_ids.lock().unwrap(),
        vec![CLIENT_ID.to_owned()]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn simple_with_ca_certificates_and_sni() {
    let ca = TestCa::new("cluster.local").unwrap();
    let web_ca = TestCa::new("example.org").unwrap();
    let cert = web_ca
        .issue(
            "spiffe://example.org/web",
            &["billing.example.org"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let up = server(Tls::Simple { cert }, true).await;
    let dir = tempdir();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, web_ca.root_pem()).unwrap();
    let dr = |extra: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: billing, namespace: payments}}
spec:
  host: {HOST}
  trafficPolicy:
    tls:
      mode: SIMPLE
{extra}"
        )
    };
    let good = dr(&format!(
        "      caCertificates: {}\n      sni: billing.example.org\n",
        ca_file.display()
    ));
    let proxy = Proxy::start(
        context(&ca, &good, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        *up.seen.sni.lock().unwrap(),
        vec![Some("billing.example.org".to_owned())]
    );
    assert!(
        up.seen.client_ids.lock().unwrap().is_empty(),
        "SIMPLE sends no client certificate"
    );
    proxy.stop().await;

    // Without sni the host is the name, which the certificate does not carry.
    let no_sni = dr(&format!("      caCertificates: {}\n", ca_file.display()));
    let proxy = Proxy::start(
        context(&ca, &no_sni, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not valid for the server name"), "{body}");
    assert_eq!(count(&proxy.stats().fail_verify_san), 1);
    proxy.stop().await;

    // No caCertificates: refused before dialing, with what to add.
    let proxy = Proxy::start(
        context(&ca, &dr(""), AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("caCertificates"), "{body}");
    proxy.stop().await;

    // insecureSkipVerify is honoured.
    let insecure = dr("      insecureSkipVerify: true\n");
    let proxy = Proxy::start(
        context(&ca, &insecure, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    proxy.stop().await;
}

#[tokio::test]
async fn mutual_with_certificate_files_and_subject_alt_names() {
    let ca = TestCa::new("cluster.local").unwrap();
    let web_ca = TestCa::new("example.org").unwrap();
    let server_cert = web_ca
        .issue(
            "spiffe://example.org/billing",
            &["billing.example.org"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let client_cert = web_ca
        .issue(
            "spiffe://example.org/checkout",
            &["checkout.example.org"],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let up = server(
        Tls::Mutual {
            cert: server_cert,
            client_ca: web_ca.root.clone(),
        },
        true,
    )
    .await;
    let dir = tempdir();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("ca.pem"), web_ca.root_pem()).unwrap();
    std::fs::write(p("client.pem"), client_cert.cert_pem()).unwrap();
    std::fs::write(p("client.key"), client_cert.key_pem()).unwrap();
    let dr = |sans: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: billing, namespace: payments}}
spec:
  host: {HOST}
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: {}
      privateKey: {}
      caCertificates: {}
      subjectAltNames: [{sans}]
",
            p("client.pem"),
            p("client.key"),
            p("ca.pem")
        )
    };
    let proxy = Proxy::start(
        context(&ca, &dr("billing.example.org"), AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        *up.seen.client_ids.lock().unwrap(),
        vec!["spiffe://example.org/checkout".to_owned()],
        "the certificate from the files, not the SVID"
    );
    proxy.stop().await;

    let proxy = Proxy::start(
        context(&ca, &dr("ledger.example.org"), AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("ledger.example.org"), "{body}");
    assert_eq!(count(&proxy.stats().fail_verify_san), 1);
    proxy.stop().await;

    // A missing key file: a clear reason, no connection.
    let missing = dr("billing.example.org").replace("client.key", "nope.key");
    let proxy = Proxy::start(
        context(&ca, &missing, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("cannot read the private key privateKey"),
        "{body}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn http_upstream_connections_are_pooled_across_app_connections() {
    let ca = TestCa::new("cluster.local").unwrap();
    let up = mesh_server(&ca, BILLING_ID, true).await;
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Http, Some(up.addr)),
    )
    .await;
    for i in 0..5 {
        let (status, body) = get(proxy.addr, &format!("/r{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(up.seen.requests.load(Ordering::Relaxed), 5);
    assert_eq!(
        up.seen.accepts.load(Ordering::Relaxed),
        1,
        "one upstream connection"
    );
    assert_eq!(count(&proxy.stats().handshake), 1);
    assert_eq!(count(&proxy.stats().cx_total), 5);
    proxy.stop().await;
}

#[tokio::test]
async fn after_rotation_new_upstream_connections_present_the_new_certificate() {
    let ca = TestCa::new("cluster.local").unwrap();
    let up = mesh_server(&ca, BILLING_ID, true).await;
    let ctx = context(&ca, SEED_DR, AccessLog::off());
    let proxy = Proxy::start(ctx.clone(), upstream(AppProtocol::Http, Some(up.addr))).await;
    let (status, _) = get(proxy.addr, "/").await;
    assert_eq!(status, 200);
    let first = ctx.identity.current().unwrap().serial_hex.clone();

    ctx.identity.replace(ca.identity(CLIENT_ID).unwrap());
    let second = ctx.identity.current().unwrap().serial_hex.clone();
    assert_ne!(first, second);
    let (status, _) = get(proxy.addr, "/").await;
    assert_eq!(status, 200);
    assert_eq!(*up.seen.client_serials.lock().unwrap(), vec![first, second]);
    assert_eq!(up.seen.accepts.load(Ordering::Relaxed), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn no_address_is_a_clear_refusal() {
    let ca = TestCa::new("cluster.local").unwrap();
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Http, None),
    )
    .await;
    let (status, body) = get(proxy.addr, "/").await;
    assert_eq!(status, 503);
    assert!(
        body.contains(&format!(
            "no address for {HOST}:8080: add `address:` to the upstream or a ServiceEntry with endpoints"
        )),
        "{body}"
    );
    proxy.stop().await;

    // TCP: the app connection is closed.
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Tcp, None),
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    proxy.stop().await;
}

#[tokio::test]
async fn auto_sends_http_through_the_pool_and_other_bytes_as_tcp() {
    let ca = TestCa::new("cluster.local").unwrap();
    let http = mesh_server(&ca, BILLING_ID, true).await;
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Auto, Some(http.addr)),
    )
    .await;
    for _ in 0..2 {
        let (status, body) = get(proxy.addr, "/").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        http.seen.accepts.load(Ordering::Relaxed),
        1,
        "HTTP is pooled"
    );
    proxy.stop().await;

    let echo = mesh_server(&ca, BILLING_ID, false).await;
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Auto, Some(echo.addr)),
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"\x16binary-ish").await.unwrap();
    let mut buf = [0u8; 11];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"\x16binary-ish");
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_drains_then_closes_open_connections() {
    let ca = TestCa::new("cluster.local").unwrap();
    let echo = mesh_server(&ca, BILLING_ID, false).await;
    let proxy = Proxy::start(
        context(&ca, SEED_DR, AccessLog::off()),
        upstream(AppProtocol::Tcp, Some(echo.addr)),
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    tokio::time::timeout(WAIT, s.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    let addr = proxy.addr;
    let started = std::time::Instant::now();
    // drainTimeout is 1s in the test config; the idle connection is closed after it.
    proxy.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
