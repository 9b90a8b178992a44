//! `sigil x509 inspect|verify|mint` as a user runs them: real certificate files, the real
//! binary, a real server for `mint`; `openssl verify` as the reference where installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{SIGIL, ServerProc};
use sigil_proxy::testing::{Issued, TestCa};

const TD: &str = "cluster.local";
const BILLING: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sigil(args: &[&str]) -> Output {
    Command::new(SIGIL).args(args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn svid(ca: &TestCa, id: &str, nb: i64, na: i64) -> Issued {
    ca.issue(id, &[], nb, na).unwrap()
}

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED PART: `openssl` is not installed; no cross-check with openssl verify");
    }
    ok
}

#[test]
fn inspect_shows_every_field_of_an_svid_from_a_file_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(TD).unwrap();
    let leaf = ca
        .issue(BILLING, &["billing.payments.svc"], now() - 60, now() + 3600)
        .unwrap();
    let pem = format!("{}{}", leaf.cert_pem(), ca.root_pem());
    let file = write(dir.path(), "chain.pem", &pem);

    let o = sigil(&["x509", "inspect", &file]);
    let text = out(&o);
    assert_eq!(code(&o), 0, "{text}{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "Certificate #0 (leaf)",
        &format!("SPIFFE ID:           {BILLING}"),
        "DNS SAN:             billing.payments.svc",
        "Issuer:              CN=cluster.local test root",
        "ECDSA P-256 (signed with ecdsa-with-SHA256)",
        "digitalSignature, keyEncipherment, keyAgreement (critical)",
        "serverAuth, clientAuth",
        "not a CA",
        "valid, expires in ",
        "Authority key ID:",
        "Certificate #1 (root CA)",
        "CA (no pathlen limit)",
        "keyCertSign, cRLSign",
        &format!("X.509-SVID rules: OK ({BILLING} is a valid X.509-SVID)"),
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    // The same from stdin, as JSON.
    let mut child = Command::new(SIGIL)
        .args(["x509", "inspect", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), pem.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["certificates"][0]["spiffe_id"], BILLING);
    assert_eq!(v["certificates"][0]["key"], "ECDSA P-256");
    assert_eq!(v["certificates"][1]["is_ca"], true);
    assert_eq!(v["svid"]["violations"].as_array().unwrap().len(), 0);

    // DER works too.
    let der = dir.path().join("leaf.der");
    std::fs::write(&der, leaf.chain[0].as_ref()).unwrap();
    let o = sigil(&["x509", "inspect", der.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    assert!(out(&o).contains(BILLING));
}

#[test]
fn inspect_names_broken_svid_rules_and_exits_2_unless_no_svid() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(TD).unwrap();
    // A certificate whose only URI SAN is not a SPIFFE ID (an ordinary web certificate).
    let web = ca
        .issue(
            "https://billing.example.org/",
            &["billing.example.org"],
            now() - 60,
            now() + 60,
        )
        .unwrap();
    let file = write(dir.path(), "web.pem", &web.cert_pem());
    let o = sigil(&["x509", "inspect", &file]);
    let text = out(&o);
    assert_eq!(code(&o), 2, "{text}");
    assert!(text.contains("X.509-SVID rule violations:"), "{text}");
    assert!(
        text.contains(
            "#0: leaf's URI SAN \"https://billing.example.org/\" is not a valid SPIFFE ID"
        ),
        "{text}"
    );
    let o = sigil(&["x509", "inspect", "--no-svid", &file]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert!(out(&o).contains("not checked (--no-svid)"));

    // Garbage input is a clear error, exit 1.
    let bad = write(dir.path(), "notes.txt", "hello");
    let o = sigil(&["x509", "inspect", &bad]);
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("neither PEM"), "{err}");
}

#[test]
fn verify_agrees_with_openssl_on_a_good_and_a_foreign_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(TD).unwrap();
    let foreign = TestCa::new("other.org").unwrap();
    let root = write(dir.path(), "ca.pem", &ca.root_pem());
    let good = write(
        dir.path(),
        "good.pem",
        &svid(&ca, BILLING, now() - 60, now() + 3600).cert_pem(),
    );
    let bad = write(
        dir.path(),
        "foreign.pem",
        &svid(
            &foreign,
            "spiffe://other.org/ns/x/sa/y",
            now() - 60,
            now() + 3600,
        )
        .cert_pem(),
    );

    let o = sigil(&["x509", "verify", "--bundle", &root, &good]);
    let text = out(&o);
    assert_eq!(code(&o), 0, "{text}");
    assert!(text.starts_with(&format!("{good}: OK\n")), "{text}");
    assert!(
        text.contains(&format!("{BILLING} chains to a trusted root")),
        "{text}"
    );

    let o = sigil(&["x509", "verify", "--bundle", &root, &bad]);
    let text = out(&o);
    assert_eq!(code(&o), 2, "{text}");
    assert!(
        text.starts_with(&format!("{bad}: FAILED [unknown-authority]")),
        "{text}"
    );
    for want in [
        "CERTIFICATE_VERIFY_FAILED (unknown authority)",
        "it was issued by CN=other.org test root",
        "trust domain other.org, not to the expected cluster.local",
        "CN=cluster.local test root (trust domain cluster.local)",
        "sigil bundle show --format pem > ca.pem",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    if have_openssl() {
        let ossl = |cert: &str| {
            Command::new("openssl")
                .args(["verify", "-CAfile", &root, cert])
                .output()
                .unwrap()
        };
        let o = ossl(&good);
        assert!(
            o.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(out(&o), format!("{good}: OK\n"));
        let o = ossl(&bad);
        assert!(!o.status.success());
    }
}

#[test]
fn verify_explains_expiry_clock_skew_and_wrong_id() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(TD).unwrap();
    let root = write(dir.path(), "ca.pem", &ca.root_pem());
    let long_ago = write(
        dir.path(),
        "old.pem",
        &svid(&ca, BILLING, now() - 7 * 3600, now() - 2 * 3600 - 30).cert_pem(),
    );
    let o = sigil(&["x509", "verify", "--bundle", &root, &long_ago]);
    let text = out(&o);
    assert_eq!(code(&o), 2, "{text}");
    assert!(text.contains("FAILED [expired]"), "{text}");
    assert!(text.contains("expired 2h 0m ago"), "{text}");
    assert!(!text.contains("clock skew"), "{text}");

    let just_now = write(
        dir.path(),
        "recent.pem",
        &svid(&ca, BILLING, now() - 3600, now() - 90).cert_pem(),
    );
    let text = out(&sigil(&["x509", "verify", "--bundle", &root, &just_now]));
    assert!(text.contains("expired 1m "), "{text}");
    assert!(text.contains("clock skew"), "{text}");

    let future = write(
        dir.path(),
        "future.pem",
        &svid(&ca, BILLING, now() + 300, now() + 3600).cert_pem(),
    );
    let o = sigil(&["x509", "verify", "--bundle", &root, &future]);
    let text = out(&o);
    assert_eq!(code(&o), 2);
    assert!(text.contains("FAILED [not-yet-valid]"), "{text}");
    assert!(
        text.contains("becomes valid only in 4m") || text.contains("becomes valid only in 5m"),
        "{text}"
    );
    assert!(text.contains("clock skew"), "{text}");

    // A SPIFFE bundle (JSON) works as --bundle; a wrong --expect-id is a mismatch.
    let good = write(
        dir.path(),
        "good.pem",
        &svid(&ca, BILLING, now() - 60, now() + 3600).cert_pem(),
    );
    let td = sigil_spiffe::TrustDomain::new(TD).unwrap();
    let b = sigil_spiffe::Bundle::from_x509_authorities(td, [ca.root.clone()]).unwrap();
    let json = dir.path().join("bundle.json");
    std::fs::write(&json, b.to_spiffe_json()).unwrap();
    let json = json.to_str().unwrap();
    let o = sigil(&["x509", "verify", "--bundle", json, &good]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let o = sigil(&[
        "x509",
        "verify",
        "--bundle",
        json,
        &good,
        "--expect-id",
        "spiffe://cluster.local/ns/payments/sa/checkout",
        "-o",
        "json",
    ]);
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["code"], "spiffe-id-mismatch");
    assert_eq!(v["ok"], false);
    assert!(v["summary"].as_str().unwrap().contains(BILLING));
}

#[test]
fn mint_writes_a_verifiable_svid_and_a_0600_key_and_the_server_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(&dir.path().join("server"), None);
    let out_dir = dir.path().join("svid");
    let id = "spiffe://cluster.local/ns/payments/sa/checkout";
    let o = server.cli(&[
        "x509",
        "mint",
        "-spiffeID",
        id,
        "--ttl",
        "10m",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    let text = out(&o);
    assert_eq!(code(&o), 0, "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains(&format!("SPIFFE ID:  {id}")), "{text}");
    assert!(text.contains("(mode 0600)"), "{text}");
    let key = out_dir.join("svid.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"));

    let svid = out_dir.join("svid.pem");
    let bundle = out_dir.join("bundle.pem");
    let o = sigil(&[
        "x509",
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        svid.to_str().unwrap(),
        "--expect-id",
        id,
    ]);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let o = sigil(&["x509", "inspect", svid.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let leaf = &v["certificates"][0];
    assert_eq!(leaf["spiffe_id"], id);
    let life = leaf["not_after"].as_i64().unwrap() - now();
    assert!((500..=610).contains(&life), "TTL 10m, got {life}s");
    let serial = leaf["serial"].as_str().unwrap().to_owned();

    // The server logged who minted which ID and serial, and never the key.
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("X509-SVID minted"))
        .unwrap_or_else(|| panic!("no mint log line in\n{log}"));
    assert!(line.contains(id), "{line}");
    assert!(line.contains(&serial), "{line}");
    assert!(line.contains("uid="), "{line}");
    let key_body: String = key_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!log.contains(&key_body[..40]));
    assert!(!log.contains("PRIVATE KEY"));

    // Reserved and foreign IDs are refused with the reason; nothing is written.
    let refused = dir.path().join("refused");
    for (bad, why) in [
        ("spiffe://cluster.local/spire/server", "never minted"),
        (
            "spiffe://other.org/ns/a/sa/b",
            "not in this server's trust domain cluster.local",
        ),
    ] {
        let o = server.cli(&[
            "x509",
            "mint",
            "--spiffe-id",
            bad,
            "--out-dir",
            refused.to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{err}");
        assert!(!refused.join("svid.key").exists());
    }
}
