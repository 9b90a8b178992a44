#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Inbound end to end: a proxy listener from a `Context`, real sockets on loopback, rustls
//! clients in process and curl / openssl as real peers.

mod inbound_support;

use std::time::Duration;

use inbound_support::*;
use sha2::Digest;
use sigil_proxy::config::AppProtocol;
use sigil_proxy::testing::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn ca() -> TestCa {
    TestCa::new(TD).unwrap()
}

/// Reads until EOF/reset or the deadline; returns what was read.
async fn read_to_close(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the proxy did not close the connection");
    out
}

#[tokio::test]
async fn strict_with_a_client_svid_forwards_with_xfcc_replacing_the_callers() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, STRICT, http_app().await)
        .start()
        .await;
    let client = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    let tls = tls_connect(p.addr, client_config(&ca, Some(&client), &[b"sigil-mtls"]))
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let forged = "By=spiffe://evil;URI=spiffe://cluster.local/ns/payments/sa/admin";
    let (status, _, body) = call(
        &mut s,
        req("GET", "/x", &[("x-forwarded-client-cert", forged)], ""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hash = hex::encode(sha2::Sha256::digest(client.chain[0].as_ref()));
    let want = format!("xfcc=By={SERVER_ID};Hash={hash};Subject=\"\";URI={CHECKOUT}\n");
    assert!(body.contains(&want), "{body}");
    assert!(!body.contains("evil"), "{body}");
    // Keep-alive: a second request on the same connection.
    let (status, _, _) = call(&mut s, req("GET", "/y", &[], "")).await;
    assert_eq!(status, 200);
    assert_eq!(p.counter("ssl.handshake"), 1);
    assert_eq!(p.counter("downstream_rq_2xx"), 2);
}

#[tokio::test]
async fn strict_refuses_real_clients_without_a_valid_svid() {
    if !have("curl") {
        return;
    }
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, STRICT, http_app().await)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, ca.root_pem()).unwrap();
    let url = format!("https://localhost:{}/api/v1/charge", p.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", p.addr.port());
    let curl = |extra: &[&std::path::Path]| {
        let mut c = tokio::process::Command::new("curl");
        c.args(["-sS", "--max-time", "5", "--resolve", &resolve, "--cacert"])
            .arg(&root);
        if let [cert, key] = extra {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        c.arg(&url);
        c
    };

    // A valid SVID: 200 and the app sees the caller.
    let good = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    let f = write_cert(dir.path(), "good", &good);
    let (ok, out, err) = run(&mut curl(&[&f.cert, &f.key]), b"").await;
    assert!(ok, "curl failed: {err}");
    assert!(out.contains(&format!("URI={CHECKOUT}")), "{out}");

    // No certificate.
    let (ok, _, err) = run(&mut curl(&[]), b"").await;
    assert!(!ok, "curl without a certificate got through: {err}");
    p.wait_for("fail_verify_no_cert", |s| {
        s.fail_verify_no_cert
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;

    // A certificate from a foreign CA (same trust domain name, other root).
    let foreign = TestCa::new(TD).unwrap();
    let bad = foreign
        .issue(CHECKOUT, &[], now() - 60, now() + 3600)
        .unwrap();
    let f = write_cert(dir.path(), "foreign", &bad);
    let (ok, _, err) = run(&mut curl(&[&f.cert, &f.key]), b"").await;
    assert!(!ok, "{err}");
    p.wait_for("unknown CA", |s| {
        s.fail_verify_error
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;

    // An expired certificate from the right CA.
    let expired = ca.issue(CHECKOUT, &[], now() - 7200, now() - 3600).unwrap();
    let f = write_cert(dir.path(), "expired", &expired);
    let (ok, _, err) = run(&mut curl(&[&f.cert, &f.key]), b"").await;
    assert!(!ok, "{err}");
    p.wait_for("expired", |s| {
        s.expired.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(p.counter("ssl.fail_verify_error"), 2);
    assert_eq!(p.counter("ssl.handshake"), 1);
}

#[tokio::test]
async fn openssl_s_client_with_and_without_a_certificate() {
    if !have("openssl") {
        return;
    }
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, STRICT, http_app().await)
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, ca.root_pem()).unwrap();
    let good = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    let f = write_cert(dir.path(), "good", &good);
    let connect = format!("127.0.0.1:{}", p.addr.port());
    let request = b"GET /via-openssl HTTP/1.1\r\nHost: billing\r\nConnection: close\r\n\r\n";
    for tls in ["-tls1_3", "-tls1_2"] {
        let (_, out, err) = run(
            tokio::process::Command::new("openssl")
                .args(["s_client", "-quiet", "-connect", &connect, tls, "-CAfile"])
                .arg(&root)
                .arg("-cert")
                .arg(&f.cert)
                .arg("-key")
                .arg(&f.key),
            request,
        )
        .await;
        assert!(
            out.contains("GET /via-openssl") && out.contains(&format!("URI={CHECKOUT}")),
            "{tls}: {out}\n{err}"
        );
    }
    let (_, out, _) = run(
        tokio::process::Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &connect, "-CAfile"])
            .arg(&root),
        request,
    )
    .await;
    assert!(!out.contains("GET /via-openssl"), "{out}");
    p.wait_for("no cert", |s| {
        s.fail_verify_no_cert
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert_eq!(p.counter("ssl.handshake"), 2);
}

#[tokio::test]
async fn plaintext_to_strict_is_closed_and_counted() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, STRICT, http_app().await)
        .start()
        .await;
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut tcp).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    p.wait_for("plaintext_to_strict", |s| {
        s.plaintext_to_strict
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
}

#[tokio::test]
async fn permissive_takes_mesh_mtls_plaintext_and_passes_app_tls_through() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, PERMISSIVE, http_app().await)
        .start()
        .await;
    let client = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();

    // Mesh ALPN (Istio's, so Istio sidecars interoperate): mTLS, the identity reaches the app.
    for alpn in [&b"sigil-mtls"[..], b"istio-http/1.1"] {
        let tls = tls_connect(p.addr, client_config(&ca, Some(&client), &[alpn]))
            .await
            .unwrap();
        let (_, body) = {
            let mut s = h1(tls).await;
            let (st, _, body) = call(&mut s, req("GET", "/m", &[], "")).await;
            (st, body)
        };
        assert!(body.contains(&format!("URI={CHECKOUT}")), "{body}");
    }

    // Plaintext: forwarded, no principal, a forged XFCC dropped.
    let mut s = h1(TcpStream::connect(p.addr).await.unwrap()).await;
    let (st, _, body) = call(
        &mut s,
        req(
            "GET",
            "/p",
            &[("x-forwarded-client-cert", "URI=spiffe://forged")],
            "",
        ),
    )
    .await;
    assert_eq!(st, 200);
    assert!(body.contains("xfcc=none"), "{body}");
    assert_eq!(p.counter("sigil.plaintext_accepted"), 1);
    assert_eq!(p.counter("ssl.handshake"), 2);

    // The app's own TLS (no mesh ALPN): spliced untouched to a TLS backend.
    let backend = tls_app(&ca).await;
    let p2 = ProxyBuilder::new(server_identity(&ca).0, PERMISSIVE, backend)
        .start()
        .await;
    let app_tls = client_config(&ca, None, &[b"http/1.1"]);
    let mut tls = tls_connect(p2.addr, app_tls).await.unwrap();
    // The server certificate is the app's own, not the proxy's SVID.
    let app_id =
        sigil_spiffe::leaf_spiffe_id(&tls.get_ref().1.peer_certificates().unwrap()[0]).unwrap();
    assert_eq!(app_id.as_str(), "spiffe://cluster.local/app/own-tls");
    tls.write_all(b"hello").await.unwrap();
    let got = read_to_close(&mut tls).await;
    assert_eq!(got, b"app-tls:hello");
    assert_eq!(p2.counter("ssl.handshake"), 0);
}

#[tokio::test]
async fn disable_counts_tls_and_passes_it_to_the_app() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, DISABLE, echo_app().await)
        .start()
        .await;
    let client = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    // The echo app returns the ClientHello; the rustls client fails on it — the app decided.
    let r = tls_connect(p.addr, client_config(&ca, Some(&client), &[b"sigil-mtls"])).await;
    assert!(r.is_err());
    p.wait_for("tls_to_plaintext", |s| {
        s.tls_to_plaintext
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    assert_eq!(p.counter("ssl.handshake"), 0);
}

#[tokio::test]
async fn the_seed_policy_admits_checkout_and_refuses_frontend() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = format!("{STRICT}---\n{SEED_AUTHZ}");
    let p = ProxyBuilder::new(identity, &yaml, http_app().await)
        .access_log(&log)
        .start()
        .await;
    let caller = |id: &str| ca.issue(id, &[], now() - 60, now() + 3600).unwrap();

    let checkout = caller(CHECKOUT);
    let tls = tls_connect(
        p.addr,
        client_config(&ca, Some(&checkout), &[b"sigil-mtls"]),
    )
    .await
    .unwrap();
    let mut s = h1(tls).await;
    let (st, _, body) = call(&mut s, req("POST", "/api/v1/charge?amount=3", &[], "{}")).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.starts_with("POST /api/v1/charge\n"), "{body}");
    let (st, h, body) = call(&mut s, req("GET", "/api/v1/charge", &[], "")).await;
    assert_eq!(st, 403);
    assert_eq!(body, "RBAC: access denied");
    assert_eq!(h["content-type"], "text/plain");
    // A dot-segment detour is normalized before the decision.
    let (st, _, _) = call(&mut s, req("POST", "/api/v2/../v1/charge", &[], "")).await;
    assert_eq!(st, 200);

    let frontend = caller(FRONTEND);
    let tls = tls_connect(
        p.addr,
        client_config(&ca, Some(&frontend), &[b"sigil-mtls"]),
    )
    .await
    .unwrap();
    let mut s = h1(tls).await;
    let (st, _, body) = call(&mut s, req("POST", "/api/v1/charge", &[], "{}")).await;
    assert_eq!(st, 403);
    assert_eq!(body, "RBAC: access denied");

    assert_eq!(p.counter("rbac.allowed"), 2);
    assert_eq!(p.counter("rbac.denied"), 2);
    let prom = p.ctx.stats.prometheus_text();
    assert!(
        prom.contains(&format!(
            "source_principal=\"{FRONTEND}\",decision=\"deny\",response_code=\"403\""
        )),
        "{prom}"
    );

    // A caller without a certificate: refused, and the log says why in plain words.
    if let Ok(tls) = tls_connect(p.addr, client_config(&ca, None, &[b"sigil-mtls"])).await {
        let mut s = h1(tls).await;
        let r = tokio::time::timeout(WAIT, s.send_request(req("GET", "/", &[], ""))).await;
        assert!(
            matches!(r, Ok(Err(_))),
            "a caller without a certificate got an answer"
        );
    }

    // The access log names the policy and rule that decided.
    let deadline = tokio::time::Instant::now() + WAIT;
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 5 || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let allowed = entries
        .iter()
        .find(|e| e["decision"] == "allow")
        .expect("an allow line");
    assert_eq!(allowed["peer_spiffe_id"], CHECKOUT);
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["path"], "/api/v1/charge");
    assert_eq!(allowed["tls_version"], "TLSv1.3");
    assert!(
        allowed["policy"]
            .as_str()
            .unwrap()
            .contains("payments/billing-service-policy rule 0"),
        "{allowed}"
    );
    let denied = entries
        .iter()
        .find(|e| e["peer_spiffe_id"] == FRONTEND)
        .expect("a frontend line");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["decision"], "deny");
    assert!(
        denied["policy"].as_str().unwrap().contains("no rule"),
        "{denied}"
    );
    let refused = entries
        .iter()
        .find(|e| e["handshake_failure"] == "no_certificate")
        .expect("a handshake failure line");
    assert_eq!(
        refused["reason"],
        "client sent no certificate; STRICT mTLS on port 8080 requires a mesh client with a \
         valid SVID (PeerAuthentication payments/default)"
    );
    assert!(!lines.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_denied_tcp_connection_is_closed() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    // The seed policy's only rule uses HTTP fields, so it never matches TCP: deny.
    let yaml = format!("{PERMISSIVE}---\n{SEED_AUTHZ}");
    let p = ProxyBuilder::new(identity, &yaml, echo_app().await)
        .protocol(AppProtocol::Tcp)
        .start()
        .await;
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let got = read_to_close(&mut tcp).await;
    assert!(got.is_empty());
    p.wait_for("rbac denied", |s| {
        s.rbac_denied.load(std::sync::atomic::Ordering::Relaxed) == 1
    })
    .await;

    // Without the policy the same connection is echoed.
    p.mesh.replace(view(2, PERMISSIVE));
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test]
async fn switching_permissive_to_strict_applies_to_the_next_connection() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, PERMISSIVE, http_app().await)
        .start()
        .await;
    let mut open = h1(TcpStream::connect(p.addr).await.unwrap()).await;
    let (st, _, _) = call(&mut open, req("GET", "/", &[], "")).await;
    assert_eq!(st, 200);

    p.mesh.replace(view(2, STRICT));
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut tcp).await.is_empty());
    assert_eq!(p.counter("sigil.plaintext_to_strict"), 1);
    let client = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    let tls = tls_connect(
        p.addr,
        client_config(&ca, Some(&client), &[b"h2", b"sigil-mtls"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // HTTP/2 over the negotiated ALPN.
    let (mut s, c) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(c);
    let r = http::Request::builder()
        .uri("https://billing-service:8080/h2")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(WAIT, s.send_request(r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_handshake_timeout() {
    let ca = ca();
    for (yaml, reason) in [(STRICT, "strict"), (PERMISSIVE, "permissive http")] {
        let (identity, _) = server_identity(&ca);
        let p = ProxyBuilder::new(identity, yaml, http_app().await)
            .limits(|l| l.handshake_timeout = Duration::from_millis(300))
            .start()
            .await;
        let started = tokio::time::Instant::now();
        let mut tcp = TcpStream::connect(p.addr).await.unwrap();
        assert!(read_to_close(&mut tcp).await.is_empty(), "{reason}");
        assert!(started.elapsed() >= Duration::from_millis(250), "{reason}");
        assert_eq!(p.counter("ssl.handshake_timeout"), 1, "{reason}");
    }
}

#[tokio::test]
async fn oversized_and_slow_headers() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, PERMISSIVE, http_app().await)
        .limits(|l| {
            l.max_header_bytes = 16 * 1024;
            l.header_timeout = Duration::from_millis(400);
        })
        .start()
        .await;
    let big = "a".repeat(20 * 1024);
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut tcp).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");

    // 100 KB of headers against the default limit (60 KiB): 431 as well.
    let (identity, _) = server_identity(&ca);
    let defaults = ProxyBuilder::new(identity, PERMISSIVE, http_app().await)
        .start()
        .await;
    let big = "b".repeat(100 * 1024);
    let mut tcp = TcpStream::connect(defaults.addr).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    let _ = tcp.write_all(head.as_bytes()).await;
    let got = String::from_utf8_lossy(&read_to_close(&mut tcp).await).into_owned();
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");

    // Slowloris: half a head, then nothing: cut after the header timeout.
    let mut tcp = TcpStream::connect(p.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let _ = read_to_close(&mut tcp).await;
    assert!(started.elapsed() < Duration::from_secs(3));

    // An idle keep-alive connection outlives the header timeout.
    let mut s = h1(TcpStream::connect(p.addr).await.unwrap()).await;
    call(&mut s, req("GET", "/1", &[], "")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (st, _, _) = call(&mut s, req("GET", "/2", &[], "")).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn rotation_new_handshakes_see_the_new_serial_open_connections_continue() {
    let ca = ca();
    let (first, first_issued) = server_identity(&ca);
    let first_serial = first.serial_hex.clone();
    let p = ProxyBuilder::new(first, STRICT, http_app().await)
        .start()
        .await;
    let client = ca.issue(CHECKOUT, &[], now() - 60, now() + 3600).unwrap();
    let cfg = client_config(&ca, Some(&client), &[b"sigil-mtls"]);
    let serial_of = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        hex::encode(c.raw_serial())
    };
    let tls = tls_connect(p.addr, cfg.clone()).await.unwrap();
    assert_eq!(serial_of(&tls), first_serial);
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0],
        first_issued.chain[0]
    );
    let mut old = h1(tls).await;
    assert_eq!(call(&mut old, req("GET", "/a", &[], "")).await.0, 200);

    let (second, _) = server_identity(&ca);
    let second_serial = second.serial_hex.clone();
    assert_ne!(first_serial, second_serial);
    p.identity.replace(second);

    let tls = tls_connect(p.addr, cfg).await.unwrap();
    assert_eq!(serial_of(&tls), second_serial);
    let mut new = h1(tls).await;
    assert_eq!(call(&mut new, req("GET", "/b", &[], "")).await.0, 200);
    // The connection opened before the rotation keeps working.
    assert_eq!(call(&mut old, req("GET", "/c", &[], "")).await.0, 200);
}

#[tokio::test]
async fn the_connection_cap_and_the_drain() {
    let ca = ca();
    let (identity, _) = server_identity(&ca);
    let p = ProxyBuilder::new(identity, PERMISSIVE, http_app().await)
        .limits(|l| {
            l.max_connections = 1;
            l.drain_timeout = Duration::from_millis(500);
        })
        .start()
        .await;
    let mut first = h1(TcpStream::connect(p.addr).await.unwrap()).await;
    assert_eq!(call(&mut first, req("GET", "/", &[], "")).await.0, 200);
    let mut second = TcpStream::connect(p.addr).await.unwrap();
    assert!(read_to_close(&mut second).await.is_empty());
    assert_eq!(p.counter("downstream_cx_overflow"), 1);

    p.shutdown.send(true).unwrap();
    let r = tokio::time::timeout(WAIT, p.task).await.unwrap().unwrap();
    assert!(r.is_ok());
    assert!(TcpStream::connect(p.addr).await.is_err());
}

#[tokio::test]
async fn a_caller_of_a_federated_trust_domain_is_verified_against_its_own_bundle() {
    let ca = ca();
    let partner = TestCa::new("partner.example").unwrap();
    let issued = ca
        .issue(SERVER_ID, &["localhost"], now() - 60, now() + 3600)
        .unwrap();
    let mut resp = ca.response_for(SERVER_ID, &issued);
    resp.federated_bundles
        .insert("spiffe://partner.example".into(), partner.root.to_vec());
    let identity = sigil_proxy::identity::Identity::from_response(&resp, None).unwrap();
    let p = ProxyBuilder::new(identity, STRICT, http_app().await)
        .start()
        .await;
    let partner_id = "spiffe://partner.example/ns/shop/sa/checkout";
    let client = partner
        .issue(partner_id, &[], now() - 60, now() + 3600)
        .unwrap();
    let tls = tls_connect(p.addr, client_config(&ca, Some(&client), &[b"sigil-mtls"]))
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let (st, _, body) = call(&mut s, req("GET", "/", &[], "")).await;
    assert_eq!(st, 200);
    assert!(body.contains(&format!("URI={partner_id}")), "{body}");

    // The same ID signed by the wrong CA (ours, not the partner's) is refused.
    let forged = ca.issue(partner_id, &[], now() - 60, now() + 3600).unwrap();
    let r = async {
        let tls = tls_connect(p.addr, client_config(&ca, Some(&forged), &[b"sigil-mtls"])).await?;
        let mut s = h1(tls).await;
        s.ready().await.map_err(std::io::Error::other)?;
        s.send_request(req("GET", "/", &[], ""))
            .await
            .map_err(std::io::Error::other)
    }
    .await;
    assert!(r.is_err());
    p.wait_for("unknown CA", |s| {
        s.fail_verify_error
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
}
