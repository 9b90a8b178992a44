//! The seed document's cert-manager scenario through the `sigil` binary, as an operator runs
//! it: `sigil create secret tls ca-key-pair` from an openssl-made CA, the example
//! ClusterIssuer and Certificate applied verbatim, `sigil get certificate` printing READY True,
//! the Secret's certificate checked with openssl (24h, the two DNS names and the SPIFFE URI,
//! chained to ca.crt), `describe`, `cert status`, `cert renew`, and a bad input's reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::ServerProc;
use common::pki::{make_ca, p};

const WAIT: Duration = Duration::from_secs(30);

fn example(rel: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "examples",
        "payments",
        rel,
    ]
    .iter()
    .collect();
    p.to_str().unwrap().to_owned()
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Secret's values, decoded (`--show-secrets`).
fn secret_value(s: &ServerProc, ns: &str, name: &str, key: &str) -> Option<Vec<u8>> {
    let out = s.cli(&[
        "get",
        "secret",
        name,
        "-n",
        ns,
        "-o",
        "json",
        "--show-secrets",
    ]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b64 = v["data"][key].as_str()?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

#[test]
fn seed_cluster_issuer_and_certificate_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&dir.path().join("server"), None);
    let ca = make_ca(dir.path(), "internal-ca");
    s.ok(&[
        "create",
        "secret",
        "tls",
        "ca-key-pair",
        "--cert",
        p(&ca.0),
        "--key",
        p(&ca.1),
        "-n",
        "cert-manager",
    ]);
    let out = s.ok(&[
        "apply",
        "-f",
        &example("mesh/base/cluster-issuer.yaml"),
        "-f",
        &example("mesh/base/certificate.yaml"),
    ]);
    assert!(
        out.contains("certificate.cert-manager.io/billing-service-cert created"),
        "{out}"
    );

    // cert-manager's columns, READY True.
    let mut table = String::new();
    wait_for("READY True", || {
        table = s.ok(&["get", "certificate", "-n", "payments"]);
        table.lines().nth(1).is_some_and(|l| {
            l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["billing-service-cert", "True", "billing-service-tls"]
        })
    });
    assert!(
        table.starts_with("NAME                   READY   SECRET                AGE\n"),
        "{table}"
    );
    let issuers = s.ok(&["get", "clusterissuers"]);
    assert!(
        issuers
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(2)
            .eq(["internal-ca", "True"]),
        "{issuers}"
    );

    // The Secret holds a 24h certificate for the two DNS names and the SPIFFE URI, chained
    // to ca.crt; tls.crt does not carry the root.
    let crt = secret_value(&s, "payments", "billing-service-tls", "tls.crt").unwrap();
    let ca_crt = secret_value(&s, "payments", "billing-service-tls", "ca.crt").unwrap();
    assert_eq!(ca_crt, std::fs::read(&ca.0).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&crt)
            .matches("BEGIN CERTIFICATE")
            .count(),
        1
    );
    let crt_path = dir.path().join("tls.crt");
    std::fs::write(&crt_path, &crt).unwrap();
    let out = openssl(&["verify", "-CAfile", p(&ca.0), p(&crt_path)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = openssl(&[
        "x509",
        "-in",
        p(&crt_path),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    let sans = String::from_utf8_lossy(&out.stdout);
    assert!(
        sans.contains(
            "DNS:billing-service.payments.svc.cluster.local, DNS:billing-service.payments.svc, \
             URI:spiffe://cluster.local/ns/payments/sa/billing-service"
        ),
        "{sans}"
    );
    // Valid for 24h from now (give or take the seconds this test took).
    assert!(
        openssl(&["x509", "-in", p(&crt_path), "-noout", "-checkend", "86000"])
            .status
            .success()
    );
    assert!(
        !openssl(&["x509", "-in", p(&crt_path), "-noout", "-checkend", "86401"])
            .status
            .success()
    );

    // describe and cert status.
    let d = s.ok(&[
        "describe",
        "certificate",
        "billing-service-cert",
        "-n",
        "payments",
    ]);
    assert!(
        d.contains("Successfully issued certificate from ClusterIssuer \"internal-ca\""),
        "{d}"
    );
    assert!(d.contains("billing-service-cert-1"), "{d}");
    let st = s.ok(&["cert", "status", "billing-service-cert", "-n", "payments"]);
    assert!(st.contains("Ready: True, Reason: Ready"), "{st}");
    assert!(
        st.contains("Issuer:\n  Name: internal-ca\n  Kind: ClusterIssuer"),
        "{st}"
    );

    // cert renew: a new certificate (another serial) shortly after.
    let serial = |pem: &[u8]| {
        let f = dir.path().join("s.crt");
        std::fs::write(&f, pem).unwrap();
        String::from_utf8(openssl(&["x509", "-in", p(&f), "-noout", "-serial"]).stdout).unwrap()
    };
    let before = serial(&crt);
    let out = s.ok(&["cert", "renew", "billing-service-cert", "-n", "payments"]);
    assert!(out.contains("Manually triggered issuance"), "{out}");
    wait_for("the renewed certificate", || {
        secret_value(&s, "payments", "billing-service-tls", "tls.crt")
            .is_some_and(|c| serial(&c) != before)
    });
    wait_for("READY True after renewal", || {
        s.cli(&["cert", "status", "billing-service-cert", "-n", "payments"])
            .status
            .success()
    });

    // A bad input: an unknown issuer is READY False with the reason, and cert status exits 2.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: orphan\n  \
         namespace: payments\nspec:\n  secretName: orphan-tls\n  dnsNames: [orphan.payments.svc]\n  \
         issuerRef:\n    name: missing-ca\n    kind: ClusterIssuer\n",
    )
    .unwrap();
    s.ok(&["apply", "-f", p(&bad)]);
    let mut out = s.cli(&["cert", "status", "orphan", "-n", "payments"]);
    wait_for("orphan READY False", || {
        out = s.cli(&["cert", "status", "orphan", "-n", "payments"]);
        String::from_utf8_lossy(&out.stdout).contains("Ready: False")
    });
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IssuerNotFound") && err.contains("ClusterIssuer \"missing-ca\" not found"),
        "{err}"
    );
    let table = s.ok(&["get", "certificates", "-n", "payments"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["orphan", "False"])),
        "{table}"
    );
    s.stop();
}
