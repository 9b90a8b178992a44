//! The operator commands against a live mesh: a real server and agent, three real proxies
//! (billing, checkout, frontend) reporting through the agent, real traffic, and the `sigil`
//! binary reading it all through the server's admin socket:
//!
//! - `sigil proxy status`: every proxy, SYNCED, with its SPIFFE ID;
//! - `sigil strict-readiness`: in PERMISSIVE the plaintext caller is named and the port is not
//!   ready (exit 2); after STRICT the refused caller is listed;
//! - `sigil authz check`: checkout allowed by the seed policy's rule, frontend denied with the
//!   nearest rule and the failing field, plaintext refused by STRICT;
//! - `sigil describe workload`: entry, attested selectors, SVID, mode per port with the
//!   PeerAuthentication that set it, the DestinationRule toward its upstream, the policies.
//!
//! The harness is the proxy's own (crates/proxy/tests/mesh_support), shared, not copied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../proxy/tests/mesh_support/mod.rs"]
mod mesh_support;

use mesh_support::{
    Mesh, TD, apply, client_proxy, eventually, example, free_port, http, server_proxy, start_app,
};

/// Runs `sigil ARGS --socket-path SOCKET`: (exit code, stdout, stderr).
fn sigil(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .arg("--socket-path")
        .arg(socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(socket: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (code, out, err) = sigil(socket, &all);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

/// Calls `f` on a blocking thread (the proxies run on this runtime).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_commands_explain_the_live_mesh() {
    let Mesh {
        dir: _dir,
        server,
        mut admin,
        agent,
        socket,
    } = Mesh::start(&["billing-service", "checkout-service", "frontend"], 0).await;
    let admin_socket: PathBuf = server.admin_socket.clone();
    apply(&mut admin, &example("base/destination-rule.yaml")).await;
    apply(&mut admin, &example("base/authorization-policy.yaml")).await;
    apply(&mut admin, &example("permissive/peer-authentication.yaml")).await;

    let billing_app = start_app();
    let billing_port = free_port();
    let billing_cfg = server_proxy(&socket, "billing-service", &[(billing_port, billing_app)]);
    let billing = sigil_proxy::run::build(billing_cfg, None).await.unwrap();
    let client_cfg = |sa: &str| client_proxy(&socket, sa, billing_port);
    let checkout = sigil_proxy::run::build(client_cfg("checkout-service"), None)
        .await
        .unwrap();
    let frontend = sigil_proxy::run::build(client_cfg("frontend"), None)
        .await
        .unwrap();
    let billing_in = SocketAddr::from(([127, 0, 0, 1], billing_port));
    let checkout_out = checkout.outbound_addrs[0].1;

    // Traffic in PERMISSIVE: checkout over mTLS, and a plaintext caller straight to billing.
    let ok = blocking(move || {
        eventually("checkout reaches billing", || {
            http(checkout_out, "POST", "/api/v1/charge")
                .ok()
                .filter(|r| r.0 == 200)
        })
    })
    .await;
    assert_eq!(ok.0, 200);
    let (status, _) = blocking(move || http(billing_in, "POST", "/api/v1/charge").unwrap()).await;
    assert_eq!(
        status, 403,
        "plaintext has no principal: the seed policy denies it"
    );

    // proxy status: all three, synced, with their identities.
    let s = admin_socket.clone();
    let status = blocking(move || {
        eventually("three synced proxies", || {
            let (code, out, _) = sigil(&s, &["proxy", "status"]);
            (code == 0 && out.matches("SYNCED").count() == 3).then_some(out)
        })
    })
    .await;
    for sa in ["billing-service", "checkout-service", "frontend"] {
        assert!(status.contains(&format!("{sa}.payments")), "{status}");
        assert!(
            status.contains(&format!("spiffe://{TD}/ns/payments/sa/{sa}")),
            "{status}"
        );
    }

    // A report is a claim the agent checks against the caller's attested entries: an identity
    // the process does not hold, a namespace other than its identity's, or no identity at all
    // is refused, so no local process can pose as another workload's proxy.
    let mut status = sigil_agent::client::connect_status(&socket).await.unwrap();
    let claim = |id: &str, ns: &str| sigil_proto::status::ProxyReport {
        proxy_id: format!("forged/{id}/{ns}"),
        workload_namespace: ns.into(),
        workload_name: "billing-service".into(),
        spiffe_id: id.into(),
        ..Default::default()
    };
    let e = status
        .report(claim(
            &format!("spiffe://{TD}/ns/payments/sa/ledger"),
            "payments",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("registration entries give"), "{e:?}");
    let e = status
        .report(claim(
            &format!("spiffe://{TD}/ns/payments/sa/billing-service"),
            "default",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("workload.namespace: payments"),
        "{e:?}"
    );
    let e = status.report(claim("", "payments")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");

    // strict-readiness: the plaintext caller is named; billing is not ready (exit 2).
    let s = admin_socket.clone();
    let (code, v) = blocking(move || {
        eventually("readiness counts the plaintext caller", || {
            let (code, v) = json(&s, &["strict-readiness", "-n", "payments"]);
            let port = v["ports"]
                .as_array()?
                .iter()
                .find(|p| p["workload"] == "payments/billing-service")?
                .clone();
            (port["plaintextConnections"].as_u64()? >= 1 && port["mtlsConnections"].as_u64()? >= 1)
                .then_some((code, port))
        })
    })
    .await;
    assert_eq!(code, 2);
    assert_eq!(v["verdict"], "would_break", "{v}");
    assert_eq!(v["mode"], "PERMISSIVE");
    assert_eq!(v["plaintextSources"][0]["address"], "127.0.0.1", "{v}");
    let (code, text, _) = blocking({
        let s = admin_socket.clone();
        move || sigil(&s, &["strict-readiness", "-n", "payments"])
    })
    .await;
    assert_eq!(code, 2);
    assert!(text.contains("NOT READY"), "{text}");
    assert!(
        text.contains("127.0.0.1 (") && text.contains("would be refused"),
        "{text}"
    );

    // authz check: the seed rule allows checkout's POST, denies frontend with the reason.
    let port = billing_port.to_string();
    let s = admin_socket.clone();
    let p = port.clone();
    let (code, out, err) = blocking(move || {
        sigil(
            &s,
            &[
                "authz",
                "check",
                "--from",
                "payments/checkout-service",
                "--to",
                "payments/billing-service",
                "--port",
                &p,
                "--method",
                "POST",
                "--path",
                "/api/v1/charge",
            ],
        )
    })
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ALLOWED"), "{out}");
    assert!(
        out.contains("ALLOW policy payments/billing-service-policy rule 0"),
        "{out}"
    );
    let s = admin_socket.clone();
    let p = port.clone();
    let (code, out, _) = blocking(move || {
        sigil(
            &s,
            &[
                "authz",
                "check",
                "--from",
                &format!("spiffe://{TD}/ns/payments/sa/frontend"),
                "--to",
                "payments/billing-service",
                "--port",
                &p,
                "--method",
                "POST",
                "--path",
                "/api/v1/charge",
            ],
        )
    })
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("DENIED"), "{out}");
    assert!(out.contains("RBAC: access denied"), "{out}");
    assert!(
        out.contains("nearest:") && out.contains("principals"),
        "the nearest rule and the field that failed: {out}"
    );

    // describe workload: identity, entry, attested selectors, mode and who set it, policies.
    let s = admin_socket.clone();
    let (code, out, _) =
        blocking(move || sigil(&s, &["describe", "workload", "payments/billing-service"])).await;
    assert_eq!(
        code, 0,
        "PERMISSIVE with a plaintext caller is a note, not a warning: {out}"
    );
    assert!(!out.contains("Warnings:"), "{out}");
    for want in [
        format!("SPIFFE ID:   spiffe://{TD}/ns/payments/sa/billing-service"),
        "Entry ID:".to_owned(),
        format!("Attested:  unix:uid:{}", mesh_support::my_uid()),
        format!(
            "port {billing_port} (http): PERMISSIVE — set by PeerAuthentication payments/default (namespace-wide)"
        ),
        "ALLOW payments/billing-service-policy".to_owned(),
        "strict-readiness -n payments".to_owned(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    let s = admin_socket.clone();
    let (_, v) =
        blocking(move || json(&s, &["describe", "workload", "payments/checkout-service"])).await;
    assert_eq!(
        v["outbound"][0]["destinationRule"], "payments/payments-mtls",
        "{v}"
    );
    assert_eq!(v["outbound"][0]["tls"], "ISTIO_MUTUAL", "{v}");
    let s = admin_socket.clone();
    let (code, _, err) =
        blocking(move || sigil(&s, &["describe", "workload", "payments/nope"])).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no proxy reports workload payments/nope")
            && err.contains("payments/billing-service"),
        "{err}"
    );

    // STRICT: plaintext is refused; every command says so.
    apply(&mut admin, &example("strict/peer-authentication.yaml")).await;
    let s = admin_socket.clone();
    blocking(move || {
        eventually("billing enforces STRICT", || {
            let (_, v) = json(&s, &["strict-readiness", "-n", "payments"]);
            v["ports"]
                .as_array()?
                .iter()
                .any(|p| p["workload"] == "payments/billing-service" && p["mode"] == "STRICT")
                .then_some(())
        })
    })
    .await;
    assert!(
        blocking(move || http(billing_in, "GET", "/").is_err()).await,
        "plaintext to STRICT is refused"
    );
    let s = admin_socket.clone();
    let p = port.clone();
    let (code, out, _) = blocking(move || {
        sigil(
            &s,
            &[
                "authz",
                "check",
                "--plaintext",
                "--to",
                "payments/billing-service",
                "--port",
                &p,
            ],
        )
    })
    .await;
    assert_eq!(code, 2);
    assert!(
        out.contains("STRICT")
            && out.contains("connection termination")
            && out.contains("portLevelMtls"),
        "{out}"
    );
    let s = admin_socket.clone();
    let (code, out) = blocking(move || {
        eventually("describe reports the refused caller", || {
            let (code, out, _) = sigil(&s, &["describe", "workload", "payments/billing-service"]);
            out.contains("is STRICT and refused").then_some((code, out))
        })
    })
    .await;
    assert_eq!(code, 2, "a refused caller under STRICT is a warning: {out}");
    assert!(out.contains("Warnings:"), "{out}");
    assert!(out.contains("[127.0.0.1]"), "{out}");
    assert!(out.contains("PeerAuthentication payments/default"), "{out}");

    // analyze --live knows the workloads from their proxies' reports: the seed policy selects
    // billing (no finding); a policy for a workload no proxy reports is flagged.
    let s = admin_socket.clone();
    let (code, v) = blocking(move || json(&s, &["analyze", "--live"])).await;
    let codes = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .or_else(|| v["findings"].as_array())
            .into_iter()
            .flatten()
            .map(|f| format!("{} {}", f["code"].as_str().unwrap_or(""), f["resource"]))
            .collect()
    };
    assert!(
        !codes(&v).iter().any(|c| c.starts_with("SG0101")),
        "every selector matches a reporting proxy: {v}"
    );
    assert_eq!(code, 0, "{v}");
    apply(
        &mut admin,
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ledger-policy, namespace: payments}\nspec:\n  selector:\n    matchLabels: {app: ledger}\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/payments/sa/checkout-service\"]\n",
    )
    .await;
    let s = admin_socket.clone();
    let (_, v) = blocking(move || json(&s, &["analyze", "--live"])).await;
    let found = codes(&v);
    assert!(
        found
            .iter()
            .any(|c| c.starts_with("SG0101") && c.contains("ledger-policy")),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|c| c.contains("billing-service-policy")),
        "{found:?}"
    );

    // The agent goes away and the configuration changes: the server still holds the proxies'
    // last reports, so proxy status says they are behind (and exits 2).
    agent.shutdown().await;
    apply(&mut admin, &example("permissive/peer-authentication.yaml")).await;
    let s = admin_socket.clone();
    let (code, out, err) = blocking(move || sigil(&s, &["proxy", "status"])).await;
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(out.matches("STALE (").count(), 3, "{out}");
    assert!(
        out.contains("but the server is at") && err.contains("3 of 3 proxies need attention"),
        "{out}{err}"
    );

    frontend.shutdown().await;
    checkout.shutdown().await;
    billing.shutdown().await;
    server.shutdown().await;
}
