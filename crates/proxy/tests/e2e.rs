//! The mesh end to end, in one process with real sockets: a server, an agent, three proxies
//! (billing, checkout, frontend) and their apps. Identity from the agent's Workload API
//! (three entries for this uid, each proxy picks its SPIFFE ID), policy applied with the admin
//! API exactly as `sigil apply` sends it.
//!
//! - PERMISSIVE: checkout → billing over mTLS (XFCC names checkout), a plaintext client also
//!   reaches billing;
//! - the seed AuthorizationPolicy: checkout may POST /api/v1/charge, frontend gets 403;
//! - STRICT applied: takes effect without restarts, plaintext is refused, the 9090 health port
//!   (portLevelMtls DISABLE) still answers plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

mod mesh_support;

use mesh_support::{
    Mesh, TD, apply, client_proxy, eventually, example, free_port, http, server_proxy, start_app,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permissive_to_strict_with_the_seed_policy() {
    let Mesh {
        dir: _dir,
        server,
        mut admin,
        agent,
        socket,
    } = Mesh::start(&["billing-service", "checkout-service", "frontend"], 0).await;
    apply(&mut admin, &example("base/destination-rule.yaml")).await;
    apply(&mut admin, &example("base/authorization-policy.yaml")).await;
    apply(&mut admin, &example("permissive/peer-authentication.yaml")).await;

    let billing_app = start_app();
    let health_app = start_app();
    let (billing_port, health_port) = (free_port(), free_port());
    let billing_cfg = server_proxy(
        &socket,
        "billing-service",
        &[(billing_port, billing_app), (health_port, health_app)],
    );
    let billing = sigil_proxy::run::build(billing_cfg, None).await.unwrap();
    let client_cfg = |sa: &str| client_proxy(&socket, sa, billing_port);
    let checkout = sigil_proxy::run::build(client_cfg("checkout-service"), None)
        .await
        .unwrap();
    let frontend = sigil_proxy::run::build(client_cfg("frontend"), None)
        .await
        .unwrap();
    let checkout_out = checkout.outbound_addrs[0].1;
    let frontend_out = frontend.outbound_addrs[0].1;
    let billing_in = SocketAddr::from(([127, 0, 0, 1], billing_port));
    let health_in = SocketAddr::from(([127, 0, 0, 1], health_port));

    // PERMISSIVE: checkout reaches billing over mTLS; its identity is in the app's XFCC.
    let checkout_id = format!("spiffe://{TD}/ns/payments/sa/checkout-service");
    let body = tokio::task::spawn_blocking({
        let id = checkout_id.clone();
        move || {
            eventually("checkout → billing over mTLS", || {
                match http(checkout_out, "POST", "/api/v1/charge") {
                    Ok((200, body)) if body.contains(&format!("URI={id}")) => Some(body),
                    _ => None,
                }
            })
        }
    })
    .await
    .unwrap();
    assert!(
        !body.contains("forged"),
        "a client-sent XFCC must be replaced: {body}"
    );
    assert!(
        body.contains(&format!("By=spiffe://{TD}/ns/payments/sa/billing-service")),
        "{body}"
    );

    // The seed AuthorizationPolicy: frontend is denied, checkout's GET too.
    let (status, body) =
        tokio::task::spawn_blocking(move || http(frontend_out, "POST", "/api/v1/charge"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));
    let (status, _) =
        tokio::task::spawn_blocking(move || http(checkout_out, "GET", "/api/v1/charge"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, 403);
    // A plaintext caller has no principal: denied by the ALLOW policy, but it got through
    // the PERMISSIVE port (403 comes from authorization, not from mTLS).
    let (status, _) =
        tokio::task::spawn_blocking(move || http(billing_in, "POST", "/api/v1/charge"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, 403);

    // STRICT (with the 9090-style health exception): effective without restarts.
    apply(
        &mut admin,
        &example("base/health-authorization-policy.yaml").replace("9090", &health_port.to_string()),
    )
    .await;
    let strict = format!(
        "{}---\n{}",
        example("strict/peer-authentication.yaml"),
        example("strict/health-port-exception.yaml").replace("9090:", &format!("{health_port}:"))
    );
    let applied_at = Instant::now();
    apply(&mut admin, &strict).await;
    tokio::task::spawn_blocking(move || {
        eventually("plaintext refused once STRICT is in force", || {
            match http(billing_in, "POST", "/api/v1/charge") {
                Err(_) => Some(()),
                Ok(_) => None,
            }
        })
    })
    .await
    .unwrap();
    println!("STRICT in force after {:?}", applied_at.elapsed());
    let (status, _) = tokio::task::spawn_blocking(move || http(health_in, "GET", "/healthz"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status, 200,
        "the health port stays plaintext (portLevelMtls DISABLE)"
    );
    let (status, body) =
        tokio::task::spawn_blocking(move || http(checkout_out, "POST", "/api/v1/charge"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains(&format!("URI={checkout_id}")), "{body}");

    // The seed document's debugging command: handshake counters on billing's stats endpoint.
    let stats_addr = billing.stats_addr;
    let stats = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(stats_addr).unwrap();
        c.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    })
    .await
    .unwrap();
    let counter = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(&format!("listener.0.0.0.0_{billing_port}.{name}:")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} counter in:\n{stats}"))
    };
    assert!(counter("ssl.handshake") >= 2, "{stats}");
    assert!(counter("sigil.plaintext_to_strict") >= 1, "{stats}");

    frontend.shutdown().await;
    checkout.shutdown().await;
    billing.shutdown().await;
    agent.shutdown().await;
    server.shutdown().await;
}
