//! The admin and stats endpoints, answered from a Context built in code (test CA, fixed
//! identity, the seed document's policy); one case goes over a real loopback socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt;
use serde_json::Value;
use sigil_policy::{MeshContext, Resource};
use sigil_proxy::Context;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::admin::{self, Admin, LogControl};
use sigil_proxy::config::ProxyConfig;
use sigil_proxy::identity::IdentitySource;
use sigil_proxy::mesh::{MeshSource, MeshView};
use sigil_proxy::stats::Stats;
use sigil_proxy::testing::TestCa;

const BILLING: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";

const CONFIG: &str = "workload:
  name: billing-service
  namespace: payments
  labels: {app: billing-service}
inbound:
  - port: 8080
    app: 127.0.0.1:18080
  - port: 9090
    app: 127.0.0.1:19090
outbound:
  - listen: 127.0.0.1:15001
    host: ledger.payments.svc.cluster.local
    port: 8080
  - listen: 127.0.0.1:15002
    host: api.example.com
    port: 443
";

/// The seed document's policy: STRICT namespace-wide and for billing-service, 9090 DISABLE,
/// checkout-service allowed to POST /api/v1/charge, ISTIO_MUTUAL to *.payments.
fn seed_resources() -> Vec<Resource> {
    let files = [
        (
            "strict/peer-authentication.yaml",
            include_str!("../../../examples/payments/mesh/strict/peer-authentication.yaml"),
        ),
        (
            "strict/health-port-exception.yaml",
            include_str!("../../../examples/payments/mesh/strict/health-port-exception.yaml"),
        ),
        (
            "base/authorization-policy.yaml",
            include_str!("../../../examples/payments/mesh/base/authorization-policy.yaml"),
        ),
        (
            "base/destination-rule.yaml",
            include_str!("../../../examples/payments/mesh/base/destination-rule.yaml"),
        ),
        (
            "not-applied.yaml",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: frontend-only\n  namespace: payments\nspec:\n  selector:\n    matchLabels:\n      app: frontend\n  action: DENY\n  rules:\n  - {}\n",
        ),
    ];
    files
        .iter()
        .flat_map(|(name, text)| sigil_policy::parse_documents(name, text).unwrap())
        .collect()
}

fn context(identity: IdentitySource, mesh: Option<MeshSource>) -> (Context, TestCa) {
    let ca = TestCa::new("cluster.local").unwrap();
    let cfg = ProxyConfig::parse(CONFIG).unwrap();
    let workload = cfg.policy_workload(Some(BILLING));
    let mesh = mesh.unwrap_or_else(|| {
        MeshSource::fixed(MeshView::compile(
            7,
            seed_resources(),
            workload,
            MeshContext::default(),
        ))
    });
    let ports: Vec<u16> = cfg.inbound.iter().map(|p| p.port).collect();
    let names: Vec<String> = cfg
        .outbound
        .iter()
        .map(|u| format!("{}:{}", u.host, u.port))
        .collect();
    let ctx = Context {
        stats: Arc::new(Stats::new(&ports, &names)),
        cfg: Arc::new(cfg),
        identity,
        mesh,
        access_log: AccessLog::off(),
    };
    (ctx, ca)
}

fn ready_context() -> Context {
    let ca = TestCa::new("cluster.local").unwrap();
    let id = ca.identity(BILLING).unwrap();
    context(IdentitySource::fixed(id), None).0
}

fn admin(ctx: Context, log: Option<LogControl>) -> Admin {
    Admin {
        ctx,
        log,
        workload_api: Some("/run/sigil/agent/api.sock".into()),
    }
}

async fn body(r: http::Response<http_body_util::Full<bytes::Bytes>>) -> (StatusCode, String) {
    let status = r.status();
    let b = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(b.to_vec()).unwrap())
}

async fn get(a: &Admin, path: &str) -> (StatusCode, String) {
    body(a.handle(&Method::GET, &path.parse::<Uri>().unwrap())).await
}

#[tokio::test]
async fn certs_show_the_svid_and_bundle_but_no_key() {
    let a = admin(ready_context(), None);
    let (status, text) = get(&a, "/certs").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["spiffe_id"], BILLING);
    let id = a.ctx.identity.current().unwrap();
    assert_eq!(v["serial"], id.serial_hex.as_str());
    assert!(v["seconds_to_expiry"].as_i64().unwrap() > 0, "{v}");
    for k in ["not_before", "not_after"] {
        let t = v[k].as_str().unwrap();
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{k} {t:?} is not RFC 3339: {e}"));
    }
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 1);
    assert!(
        chain[0]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let roots = v["trust_bundles"]["cluster.local"].as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert!(roots[0].as_str().unwrap().contains("BEGIN CERTIFICATE"));
}

#[tokio::test]
async fn config_dump_names_the_policy_behind_each_port() {
    let a = admin(ready_context(), None);
    let (status, text) = get(&a, "/config_dump").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mesh"]["revision"], 7);
    assert_eq!(v["workload"]["namespace"], "payments");
    assert_eq!(v["workload"]["labels"]["app"], "billing-service");

    let port = |p: u16| {
        v["inbound"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["port"] == p)
            .unwrap_or_else(|| panic!("no port {p} in {v}"))
            .clone()
    };
    let p8080 = port(8080);
    assert_eq!(p8080["mtls_mode"], "STRICT", "{p8080}");
    assert_eq!(p8080["mtls_source"]["policy"], "payments/billing-service");
    assert_eq!(p8080["mtls_source"]["level"], "workload");
    let p9090 = port(9090);
    assert_eq!(p9090["mtls_mode"], "DISABLE", "{p9090}");
    assert_eq!(p9090["mtls_source"]["policy"], "payments/billing-service");
    assert_eq!(p9090["mtls_source"]["level"], "port 9090");

    let selected = v["peer_authentication"]["selected"].to_string();
    assert!(selected.contains("payments/default"), "{selected}");

    let policies = v["authorization"]["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "{v}");
    assert_eq!(policies[0]["policy"], "payments/billing-service-policy");
    assert_eq!(policies[0]["action"], "ALLOW");
    let not_applied = v["authorization"]["not_applied"].as_array().unwrap();
    assert_eq!(not_applied[0]["policy"], "payments/frontend-only");
    assert!(
        not_applied[0]["reason"]
            .as_str()
            .unwrap()
            .contains("selector")
    );

    let ledger = &v["outbound"][0]["tls"];
    assert_eq!(ledger["mode"], "ISTIO_MUTUAL", "{ledger}");
    assert_eq!(ledger["rule"], "payments/payments-mtls");
    assert_eq!(ledger["level"], "top level");
    let external = &v["outbound"][1]["tls"];
    assert_eq!(external["mode"], "AUTO", "{external}");
    assert!(external["rule"].is_null());
}

#[tokio::test]
async fn ignored_peer_authentications_are_listed_with_a_reason() {
    let ca = TestCa::new("cluster.local").unwrap();
    let mut resources = seed_resources();
    resources.extend(
        sigil_policy::parse_documents(
            "root-selector.yaml",
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: root-selector\n  namespace: istio-system\nspec:\n  selector:\n    matchLabels:\n      app: billing-service\n  mtls:\n    mode: DISABLE\n",
        )
        .unwrap(),
    );
    let cfg = ProxyConfig::parse(CONFIG).unwrap();
    let view = MeshView::compile(
        8,
        resources,
        cfg.policy_workload(None),
        MeshContext::default(),
    );
    let (ctx, _) = context(
        IdentitySource::fixed(ca.identity(BILLING).unwrap()),
        Some(MeshSource::fixed(view)),
    );
    let (_, text) = get(&admin(ctx, None), "/config_dump").await;
    let v: Value = serde_json::from_str(&text).unwrap();
    let ignored = v["peer_authentication"]["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), 1, "{v}");
    assert_eq!(ignored[0]["policy"], "istio-system/root-selector");
    assert!(
        ignored[0]["reason"]
            .as_str()
            .unwrap()
            .contains("root namespace")
    );
}

#[tokio::test]
async fn ready_waits_for_an_identity() {
    let (ctx, _) = context(IdentitySource::empty(), None);
    let a = admin(ctx, None);
    let (status, text) = get(&a, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(text.contains("no workload identity"), "{text}");
    assert!(text.contains("/run/sigil/agent/api.sock"), "{text}");
    let (status, _) = get(&a, "/certs").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (status, text) = get(&admin(ready_context(), None), "/ready").await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "LIVE\n"));
}

#[tokio::test]
async fn stats_have_envoy_names_and_prometheus_text() {
    let ctx = ready_context();
    ctx.stats.inbound(8080).handshake_ok();
    let (status, text) = body(admin::handle_stats(
        &ctx,
        &Method::GET,
        &"/stats".parse().unwrap(),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("listener.0.0.0.0_8080.ssl.handshake: 1\n"),
        "{text}"
    );

    let (status, text) = body(admin::handle_stats(
        &ctx,
        &Method::GET,
        &"/stats/prometheus".parse().unwrap(),
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    // The text exposition: comments, or `name{labels} value` with a numeric value.
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# TYPE ") || line.starts_with("# HELP ") || line == "# EOF",
                "{line}"
            );
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap();
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        samples += 1;
    }
    assert!(samples > 10, "{text}");
    assert!(text.contains("sigil_proxy_ssl_handshake{listener=\"listener.0.0.0.0_8080\"} 1"));

    let (status, text) = body(admin::handle_stats(
        &ctx,
        &Method::GET,
        &"/nope".parse().unwrap(),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text.contains("/stats/prometheus"), "{text}");
}

#[tokio::test]
async fn unknown_paths_list_the_endpoints() {
    let (status, text) = get(&admin(ready_context(), None), "/clusters").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for e in ["/certs", "/config_dump", "/ready", "/logging"] {
        assert!(text.contains(e), "{text}");
    }
}

#[tokio::test]
async fn logging_changes_a_reload_filter_or_says_it_cannot() {
    let (status, text) = get(&admin(ready_context(), None), "/logging?level=debug").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{text}");

    use tracing_subscriber::layer::SubscriberExt as _;
    let (layer, handle) =
        tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new("info"));
    // Not installed globally: the handle works as long as the subscriber lives.
    let _subscriber = tracing_subscriber::registry().with(layer);
    let a = admin(ready_context(), Some(LogControl::from_reload(handle)));
    let (status, text) = body(a.handle(
        &Method::POST,
        &"/logging?level=info%2Csigil_proxy%3Ddebug".parse().unwrap(),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("sigil_proxy=debug"), "{text}");
    let (status, text) = get(&a, "/logging").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("sigil_proxy=debug"), "{text}");
    let (status, text) = get(&a, "/logging?level=%3D%3D").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
}

#[tokio::test]
async fn the_servers_answer_over_loopback_and_stop_on_shutdown() {
    let ctx = ready_context();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let admin_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stats_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (admin_addr, stats_addr) = (admin_l.local_addr().unwrap(), stats_l.local_addr().unwrap());
    let a = tokio::spawn(admin::serve_admin(
        admin_l,
        admin(ctx.clone(), None),
        rx.clone(),
    ));
    let s = tokio::spawn(admin::serve_stats(stats_l, ctx.clone(), rx.clone()));
    let t = tokio::spawn(admin::track_cert_expiry(ctx.clone(), rx));

    let (status, text) = http_get(admin_addr, "/ready").await;
    assert_eq!((status, text.as_str()), (200, "LIVE\n"));
    let (status, text) = http_get(stats_addr, "/stats").await;
    assert_eq!(status, 200);
    assert!(text.contains("ssl.handshake"), "{text}");
    let not_after = ctx.identity.current().unwrap().not_after;
    assert!(
        text.contains(&format!(
            "server.cert_expiry_timestamp_seconds: {not_after}\n"
        )),
        "{text}"
    );

    tx.send(true).unwrap();
    for h in [a, s, t] {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("stops on shutdown")
            .unwrap()
            .unwrap();
    }
}

/// A one-shot HTTP/1.1 GET (Connection: close), bounded.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("admin answered in time")
}

#[tokio::test]
async fn the_runtime_binds_everything_and_is_not_ready_without_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing.sock");
    let cfg = ProxyConfig::parse(&format!(
        "workload:\n  namespace: payments\nworkloadApi: unix://{}\noutbound:\n  - listen: 127.0.0.1:0\n    host: ledger.payments.svc.cluster.local\n    port: 8080\nadmin: 127.0.0.1:0\nstats: 127.0.0.1:0\naccessLog: off\nlimits:\n  drainTimeout: 1s\n",
        socket.display()
    ))
    .unwrap();
    let mut bound = sigil_proxy::run::build(cfg, None).await.unwrap();
    assert_ne!(bound.admin_addr.port(), 0);
    assert_eq!(bound.outbound_addrs.len(), 1);
    assert_eq!(
        bound.outbound_addrs[0].0,
        "ledger.payments.svc.cluster.local:8080"
    );
    assert_ne!(bound.outbound_addrs[0].1.port(), 0);
    let (status, text) = http_get(bound.admin_addr, "/ready").await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("no workload identity") && text.contains("missing.sock"),
        "{text}"
    );
    assert!(text.contains("no mesh configuration"), "{text}");
    let (status, text) = http_get(bound.stats_addr, "/stats").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("cluster.outbound|ledger.payments.svc.cluster.local:8080.ssl.handshake: 0"),
        "{text}"
    );
    // Nothing has failed: wait() keeps waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), bound.wait())
            .await
            .is_err()
    );
    tokio::time::timeout(Duration::from_secs(10), bound.shutdown())
        .await
        .expect("shutdown within the drain timeout");
}
