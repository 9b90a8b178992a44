//! Revocation end to end, in one process with real sockets: a server, an agent, a billing
//! proxy and two callers (checkout, frontend) over mesh mTLS.
//!
//! Revoking checkout's SVID serial through the admin API (what `sigil x509 revoke --serial`
//! sends) must, within one second: close the open mTLS connection checkout holds to billing
//! (counted as `closed`); a new handshake presenting the revoked SVID is refused (`refused`);
//! checkout's agent replaces the revoked SVID at once, so checkout works again with a new
//! serial; frontend, never revoked, keeps working throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod mesh_support;

use mesh_support::{
    Mesh, TD, apply, client_proxy, eventually, example, free_port, http, server_proxy, start_app,
};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use sigil_proto::admin as api;
use std::sync::Arc;

#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A mesh mTLS connection to `addr` presenting `identity`'s SVID, then one request: the
/// response bytes (empty when the server closed the connection after the handshake).
async fn raw_mtls(addr: SocketAddr, identity: &sigil_proxy::identity::Identity) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let verifier = Arc::new(sigil_tls::SpiffeServerVerifier::new(
        identity.bundles.clone(),
        sigil_tls::IdMatcher::Any,
    ));
    let mut cfg = rustls::ClientConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(Present(identity.certified.clone())));
    cfg.alpn_protocols = vec![b"istio".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("billing").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return Vec::new();
    };
    let _ = tls
        .write_all(b"GET /x HTTP/1.1\r\nhost: billing\r\nconnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    out
}

/// One request on an open keep-alive connection: the status.
fn request_on(c: &mut TcpStream) -> std::io::Result<u16> {
    c.write_all(
        b"POST /api/v1/charge HTTP/1.1\r\nhost: billing-service.payments.svc.cluster.local\r\ncontent-length: 0\r\n\r\n",
    )?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = c.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before a response"));
        }
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| std::io::Error::other(format!("bad response {head:?}")));
            }
        }
    }
}

fn counter(text: &str, direction: &str, action: &str) -> u64 {
    let want =
        format!("sigil_proxy_revoked_peer_total{{direction=\"{direction}\",action=\"{action}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_client_is_cut_off_within_a_second() {
    let Mesh {
        dir: _dir,
        server,
        mut admin,
        agent,
        socket,
    } = Mesh::start(&["billing-service", "checkout-service", "frontend"], 0).await;
    apply(&mut admin, &example("base/destination-rule.yaml")).await;
    apply(&mut admin, &example("permissive/peer-authentication.yaml")).await;

    let billing_app = start_app();
    let billing_port = free_port();
    let billing = sigil_proxy::run::build(
        server_proxy(&socket, "billing-service", &[(billing_port, billing_app)]),
        None,
    )
    .await
    .unwrap();
    let checkout = sigil_proxy::run::build(
        client_proxy(&socket, "checkout-service", billing_port),
        None,
    )
    .await
    .unwrap();
    let frontend = sigil_proxy::run::build(client_proxy(&socket, "frontend", billing_port), None)
        .await
        .unwrap();
    let checkout_out = checkout.outbound_addrs[0].1;
    let frontend_out = frontend.outbound_addrs[0].1;
    let billing_in = SocketAddr::from(([127, 0, 0, 1], billing_port));

    // Both callers reach billing over mTLS.
    for (out, sa) in [
        (checkout_out, "checkout-service"),
        (frontend_out, "frontend"),
    ] {
        let id = format!("URI=spiffe://{TD}/ns/payments/sa/{sa}");
        tokio::task::spawn_blocking(move || {
            eventually("caller → billing over mTLS", || {
                match http(out, "POST", "/x") {
                    Ok((200, body)) if body.contains(&id) => Some(()),
                    _ => None,
                }
            })
        })
        .await
        .unwrap();
    }

    // A long-lived connection: keep-alive to checkout's outbound, whose pooled mTLS
    // connection to billing presents checkout's SVID.
    let mut long = TcpStream::connect(checkout_out).unwrap();
    long.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut long = tokio::task::spawn_blocking(move || {
        assert_eq!(request_on(&mut long).unwrap(), 200);
        long
    })
    .await
    .unwrap();

    let revoked_identity = checkout
        .ctx
        .identity
        .current()
        .expect("checkout has an SVID");
    let serial = revoked_identity.serial_hex.clone();
    let frontend_serial = frontend.ctx.identity.current().unwrap().serial_hex.clone();
    let stats = billing.ctx.stats.clone();
    assert_eq!(counter(&stats.prometheus_text(), "inbound", "closed"), 0);

    let r = admin
        .revoke_x509(api::RevokeX509Request {
            target: Some(api::revoke_x509_request::Target::Serial(
                serial.to_uppercase(),
            )),
            reason: "keyCompromise".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let revoked_at = Instant::now();
    assert_eq!(r.revoked.len(), 1, "{r:?}");
    assert_eq!(r.revoked[0].reason, "keyCompromise");
    assert_eq!(
        r.revoked[0].spiffe_id,
        format!("spiffe://{TD}/ns/payments/sa/checkout-service")
    );

    // The open connection is closed within a second.
    loop {
        if counter(&stats.prometheus_text(), "inbound", "closed") >= 1 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the open connection was not closed within 1 s:\n{}",
            stats.prometheus_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let closed_after = revoked_at.elapsed();
    println!("open connection closed {closed_after:?} after the revocation");

    // A new handshake presenting the revoked SVID is refused before any byte reaches the app.
    let answer = raw_mtls(billing_in, &revoked_identity).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "a revoked SVID must not reach billing: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(counter(&stats.prometheus_text(), "inbound", "refused") >= 1);
    // (The same handshake with an unrevoked SVID gets through.)
    let answer = raw_mtls(billing_in, &frontend.ctx.identity.current().unwrap()).await;
    assert!(String::from_utf8_lossy(&answer).contains("200 OK"));

    // The agent replaces the revoked SVID at once: checkout works again, with a new serial,
    // long before its half-life.
    let ctx = checkout.ctx.clone();
    let old = serial.clone();
    tokio::task::spawn_blocking(move || {
        eventually("checkout gets a fresh SVID and reaches billing", || {
            let current = ctx.identity.current()?;
            (current.serial_hex != old).then_some(())?;
            match http(checkout_out, "POST", "/x") {
                Ok((200, _)) => Some(()),
                _ => None,
            }
        })
    })
    .await
    .unwrap();
    println!("checkout re-issued after {:?}", revoked_at.elapsed());
    let _ = &mut long;

    // The unrevoked caller still works.
    let (status, body) = tokio::task::spawn_blocking(move || http(frontend_out, "POST", "/x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("sa/frontend"), "{body}");

    // Listed, and repeating the revocation changes nothing.
    let list = admin
        .list_revocations(api::ListRevocationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let serials: Vec<&str> = list.revoked.iter().map(|r| r.serial.as_str()).collect();
    let norm = serial.trim_start_matches('0').to_ascii_lowercase();
    assert_eq!(serials, [norm.as_str()]);
    assert!(!serials.contains(&frontend_serial.as_str()));
    let again = admin
        .revoke_x509(api::RevokeX509Request {
            target: Some(api::revoke_x509_request::Target::Serial(serial.clone())),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.revoked.is_empty());
    assert_eq!(again.already_revoked, 1);

    // Counted by reason on the server (the repeat is not counted again).
    let metrics = server.shared.metrics.encode();
    assert!(
        metrics.contains("sigil_server_revocations_total{reason=\"keyCompromise\"} 1\n"),
        "{metrics}"
    );

    // Bad requests say what is wrong.
    let e = admin
        .revoke_x509(api::RevokeX509Request {
            target: Some(api::revoke_x509_request::Target::Serial("abcdef".into())),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        e.message().contains("issued-certificates log"),
        "{}",
        e.message()
    );
    let e = admin
        .revoke_x509(api::RevokeX509Request {
            target: Some(api::revoke_x509_request::Target::Serial(frontend_serial)),
            reason: "stolen".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("keyCompromise"), "{}", e.message());

    frontend.shutdown().await;
    checkout.shutdown().await;
    billing.shutdown().await;
    agent.shutdown().await;
    server.shutdown().await;
}

/// The other direction: a caller's pooled HTTP connection to an upstream whose certificate is
/// revoked is closed by the caller's proxy (the pool outlives the request that opened it), and
/// the next request gets a new connection to the upstream's new SVID.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_connection_to_a_revoked_upstream_is_closed_within_a_second() {
    let Mesh {
        dir: _dir,
        server,
        mut admin,
        agent,
        socket,
    } = Mesh::start(&["billing-service", "checkout-service"], 0).await;
    apply(&mut admin, &example("base/destination-rule.yaml")).await;
    apply(&mut admin, &example("permissive/peer-authentication.yaml")).await;

    let billing_app = start_app();
    let billing_port = free_port();
    let billing = sigil_proxy::run::build(
        server_proxy(&socket, "billing-service", &[(billing_port, billing_app)]),
        None,
    )
    .await
    .unwrap();
    let checkout = sigil_proxy::run::build(
        client_proxy(&socket, "checkout-service", billing_port),
        None,
    )
    .await
    .unwrap();
    let out = checkout.outbound_addrs[0].1;
    let id = format!("URI=spiffe://{TD}/ns/payments/sa/checkout-service");
    {
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            eventually("checkout → billing over mTLS", || {
                match http(out, "POST", "/x") {
                    Ok((200, body)) if body.contains(&id) => Some(()),
                    _ => None,
                }
            })
        })
        .await
        .unwrap();
    }
    // checkout's pool now holds an idle mTLS connection to billing.
    let stats = checkout.ctx.stats.clone();
    assert_eq!(counter(&stats.prometheus_text(), "outbound", "closed"), 0);
    let billing_serial = billing.ctx.identity.current().unwrap().serial_hex.clone();
    let r = admin
        .revoke_x509(api::RevokeX509Request {
            target: Some(api::revoke_x509_request::Target::Serial(
                billing_serial.clone(),
            )),
            reason: "keyCompromise".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let revoked_at = Instant::now();
    assert_eq!(r.revoked.len(), 1, "{r:?}");
    loop {
        if counter(&stats.prometheus_text(), "outbound", "closed") >= 1 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the pooled connection to the revoked upstream was not closed within 1 s:\n{}",
            stats.prometheus_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // billing's agent replaces the revoked SVID; checkout reaches it again on a new connection.
    tokio::task::spawn_blocking(move || {
        eventually("checkout → billing after the revocation", || {
            match http(out, "POST", "/x") {
                Ok((200, body)) if body.contains(&id) => Some(()),
                _ => None,
            }
        })
    })
    .await
    .unwrap();
    assert_ne!(
        billing.ctx.identity.current().unwrap().serial_hex,
        billing_serial,
        "billing works with a new SVID"
    );
    drop((checkout, billing, agent, server));
}
