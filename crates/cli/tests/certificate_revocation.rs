//! A cert-manager Certificate signed by the trust domain's CA (the `sigil` issuer) carries the
//! server's CRL distribution point, and `sigil x509 revoke --serial` puts it on that CRL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::ServerProc;

const WAIT: Duration = Duration::from_secs(30);

fn openssl_text(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_sigil_issued_certificate_names_the_crl_and_is_revoked_onto_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = "http://127.0.0.1:18089";
    let s = ServerProc::start_with(&dir.path().join("server"), None, &["--crl-url", base]);
    let yaml = dir.path().join("cert.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: mesh-ca\nspec:\n  sigil: {}\n---\n\
         apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: edge-cert\n  namespace: edge\nspec:\n  \
         secretName: edge-tls\n  duration: 24h\n  dnsNames: [edge.example.test]\n  issuerRef:\n    name: mesh-ca\n    kind: ClusterIssuer\n",
    )
    .unwrap();
    s.ok(&["apply", "-f", yaml.to_str().unwrap()]);
    let deadline = Instant::now() + WAIT;
    while !s
        .cli(&["cert", "status", "edge-cert", "-n", "edge"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "edge-cert not Ready: {}",
            s.ok(&["describe", "certificate", "edge-cert", "-n", "edge"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let secret: serde_json::Value = serde_json::from_str(&s.ok(&[
        "get",
        "secret",
        "edge-tls",
        "-n",
        "edge",
        "-o",
        "json",
        "--show-secrets",
    ]))
    .unwrap();
    let crt = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    let crt_file = dir.path().join("edge.crt");
    std::fs::write(&crt_file, crt).unwrap();
    let text = openssl_text(&["x509", "-noout", "-text", "-in"], &crt_file);
    assert!(text.contains("CRL Distribution Points"), "{text}");
    let url_start = text.find(&format!("URI:{base}/crl/")).expect("the CRL URL");
    let url = text[url_start + 4..].lines().next().unwrap().trim();
    let ca_id = url
        .rsplit('/')
        .next()
        .unwrap()
        .strip_suffix(".crl")
        .unwrap();
    let serial = openssl_text(&["x509", "-noout", "-serial", "-in"], &crt_file)
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_owned();

    let out = s.ok(&[
        "x509",
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "keyCompromise",
    ]);
    assert!(!out.trim().is_empty());
    // The CRL the URL names lists it.
    let crl = s.data_dir.join("crl").join(format!("{ca_id}.crl"));
    let deadline = Instant::now() + WAIT;
    loop {
        let listed = crl.exists()
            && openssl_text(&["crl", "-inform", "DER", "-noout", "-text", "-in"], &crl)
                .to_ascii_uppercase()
                .contains(&serial.to_ascii_uppercase());
        if listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serial {serial} not on {}",
            crl.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
