//! Revocation end to end, in one process with real sockets: a server, an agent, a billing
//! proxy and two callers (checkout, frontend) over mesh mTLS.
//!
//! Revoking checkout's SVID serial through the admin API (what `sigil x509 revoke --serial`
//! sends) must, within one second: close the open mTLS connection checkout holds to billing
//! (counted as `closed`), and refuse checkout's next handshake (`refused`); frontend, not
//! revoked, keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod mesh_support;

use mesh_support::{
    Mesh, TD, apply, client_proxy, eventually, example, free_port, http, server_proxy, start_app,
};
use sigil_proto::admin as api;

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

    let serial = checkout
        .ctx
        .identity
        .current()
        .expect("checkout has an SVID")
        .serial_hex
        .clone();
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

    // A new handshake with the revoked SVID is refused: checkout's request on its long-lived
    // downstream connection needs a new upstream connection, which billing refuses.
    let status = tokio::task::spawn_blocking(move || request_on(&mut long).ok())
        .await
        .unwrap();
    assert_ne!(status, Some(200), "a revoked caller must not reach billing");
    let status = tokio::task::spawn_blocking(move || http(checkout_out, "POST", "/x").ok())
        .await
        .unwrap();
    assert!(
        !matches!(status, Some((200, _))),
        "a revoked caller must not reach billing: {status:?}"
    );
    assert!(counter(&stats.prometheus_text(), "inbound", "refused") >= 1);

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

    let _: SocketAddr = billing.stats_addr;
    frontend.shutdown().await;
    checkout.shutdown().await;
    billing.shutdown().await;
    agent.shutdown().await;
    server.shutdown().await;
}
