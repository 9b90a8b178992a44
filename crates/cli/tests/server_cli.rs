//! The operator's view: a real `sigil server run` process driven by the `sigil` CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{PgDb, SIGIL, ServerProc};

const SEED_ID: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";
const SEED_PARENT: &str = "spiffe://cluster.local/spire/agent/k8s_sat/payments/node-1";

fn create_seed_entry(s: &ServerProc) -> String {
    // The seed document's command, with `sigil` in place of `spire-server`.
    let out = s.ok(&[
        "entry",
        "create",
        "-spiffeID",
        SEED_ID,
        "-parentID",
        SEED_PARENT,
        "-selector",
        "k8s:ns:payments",
        "-selector",
        "k8s:sa:billing-service",
    ]);
    assert!(
        out.contains(&format!("SPIFFE ID        : {SEED_ID}")),
        "{out}"
    );
    assert!(out.contains("Selector         : k8s:ns:payments"), "{out}");
    assert!(
        out.contains("Selector         : k8s:sa:billing-service"),
        "{out}"
    );
    let id_line = out.lines().find(|l| l.starts_with("Entry ID")).unwrap();
    id_line.split(": ").nth(1).unwrap().trim().to_owned()
}

fn entries_json(s: &ServerProc) -> serde_json::Value {
    let out = s.ok(&["entry", "show", "-output", "json"]);
    serde_json::from_str(&out).unwrap()
}

fn bundle_pem(s: &ServerProc) -> String {
    s.ok(&["bundle", "show"])
}

fn restart_keeps_entry_ca_and_bundle(datastore: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), datastore);
    let entry_id = create_seed_entry(&s);
    let before = entries_json(&s);
    assert_eq!(before["entries"].as_array().unwrap().len(), 1);
    assert_eq!(before["entries"][0]["id"], entry_id.as_str());
    assert_eq!(before["entries"][0]["parent_id"], SEED_PARENT);
    let pem_before = bundle_pem(&s);
    let spiffe_before = s.ok(&["bundle", "show", "-format", "spiffe"]);
    s.stop();

    let s = ServerProc::start(dir.path(), datastore);
    assert_eq!(entries_json(&s), before, "entries changed across restart");
    assert_eq!(
        bundle_pem(&s),
        pem_before,
        "CA/bundle changed across restart"
    );
    let spiffe_after = s.ok(&["bundle", "show", "-format", "spiffe"]);
    let a: serde_json::Value = serde_json::from_str(&spiffe_before).unwrap();
    let b: serde_json::Value = serde_json::from_str(&spiffe_after).unwrap();
    assert_eq!(a["keys"], b["keys"], "bundle keys changed across restart");
    s.stop();
}

#[test]
fn seed_entry_survives_restart_sqlite() {
    restart_keeps_entry_ca_and_bundle(None);
}

#[test]
fn seed_entry_survives_restart_postgres() {
    let Some(db) = PgDb::create() else { return };
    restart_keeps_entry_ca_and_bundle(Some(&db.url));
}

#[test]
fn bundle_pem_is_read_by_openssl_and_spiffe_format_is_a_jwk_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), None);
    let pem = bundle_pem(&s);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-ext", "basicConstraints"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CA:TRUE"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["bundle", "show", "-format", "spiffe"])).unwrap();
    let keys = json["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["use"] == "x509-svid" && k["x5c"].as_array().unwrap().len() == 1)
    );
    assert!(json["spiffe_sequence"].as_u64().unwrap() >= 1);
    s.stop();
}

#[test]
fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), None);
    create_seed_entry(&s);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://Cluster.local/x",
                "-parentID",
                SEED_PARENT,
                "-selector",
                "unix:uid:1",
            ],
            "lowercase",
        ),
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://cluster.local/x/",
                "-parentID",
                SEED_PARENT,
                "-selector",
                "unix:uid:1",
            ],
            "trailing slash",
        ),
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://cluster.local/x",
                "-parentID",
                SEED_PARENT,
                "-selector",
                "payments",
            ],
            "type:value",
        ),
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://cluster.local/x",
                "-parentID",
                SEED_PARENT,
            ],
            "-selector",
        ),
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                SEED_ID,
                "-parentID",
                SEED_PARENT,
                "-selector",
                "k8s:sa:billing-service",
                "-selector",
                "k8s:ns:payments",
            ],
            "already exists",
        ),
        (
            &[
                "entry",
                "create",
                "-spiffeID",
                "spiffe://other.org/x",
                "-parentID",
                SEED_PARENT,
                "-selector",
                "unix:uid:1",
            ],
            "trust domain",
        ),
        (
            &["entry", "delete", "-entryID", "no-such-entry"],
            "not found",
        ),
        (
            &[
                "agent",
                "show",
                "-spiffeID",
                "spiffe://cluster.local/spire/agent/join_token/nope",
            ],
            "not found",
        ),
        (&["token", "generate", "-ttl", "0"], "positive"),
        (&["bundle", "show", "-format", "der"], "pem or spiffe"),
    ];
    for (args, want) in cases {
        let out = s.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: expected {want:?} in: {err}");
    }
    let j = entries_json(&s);
    assert_eq!(
        j["entries"].as_array().unwrap().len(),
        1,
        "a refused call changed state: {j}"
    );
    s.stop();
}

#[test]
fn cli_without_a_server_says_what_to_check() {
    let out = Command::new(SIGIL)
        .args(["entry", "show", "-socketPath", "/nonexistent/admin.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/admin.sock") && err.contains("sigil server run"),
        "{err}"
    );
}

#[test]
fn server_with_unreachable_datastore_fails_fast_and_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = server_fails(
        dir.path(),
        &["--datastore", "postgres://postgres@127.0.0.1:1/sigil"],
    );
    assert!(
        err.contains("127.0.0.1:1") && err.to_lowercase().contains("postgres"),
        "{err}"
    );
}

#[test]
fn bad_config_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.yaml");
    std::fs::write(&cfg, "trust_domain: cluster.local\nbind_prot: 8081\n").unwrap();
    let out = Command::new(SIGIL)
        .args(["server", "run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bind_prot") && err.contains("server.yaml"),
        "{err}"
    );
}

#[test]
fn corrupt_ca_key_stops_the_server_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), None);
    s.stop();
    let keys: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    assert!(!keys.is_empty(), "no CA key file found in the data dir");
    for k in &keys {
        std::fs::write(
            k,
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
    }
    let err = server_fails(dir.path(), &[]);
    assert!(
        keys.iter().any(|k| err.contains(k.to_str().unwrap())),
        "{err}"
    );
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(dir.path(), None);
    let sock = s.socket.clone();
    // A writer creates entries one by one; every success printed is acknowledged.
    let writer = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..400 {
            let id = format!("spiffe://cluster.local/w/{i}");
            let out = Command::new(SIGIL)
                .args([
                    "entry",
                    "create",
                    "-spiffeID",
                    &id,
                    "-parentID",
                    SEED_PARENT,
                ])
                .args(["-selector", &format!("unix:uid:{i}"), "-socketPath"])
                .arg(&sock)
                .output()
                .unwrap();
            if !out.status.success() {
                break;
            }
            acked.push(id);
        }
        acked
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.kill9();
    let acked = writer.join().unwrap();
    assert!(
        !acked.is_empty(),
        "no write was acknowledged before the kill"
    );
    let s = ServerProc::start(dir.path(), None);
    let j = entries_json(&s);
    let stored: std::collections::BTreeSet<String> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["spiffe_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &acked {
        assert!(
            stored.contains(id),
            "acknowledged entry {id} lost after kill -9"
        );
    }
    s.stop();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// An upstream CA in cert-manager's `ca` issuer shape (`tls.crt` + `tls.key`), made by openssl.
fn openssl_upstream(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", "/O=Example/CN=upstream root", "-days", "30"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

#[test]
fn upstream_ca_from_disk_is_the_bundle_root_and_its_key_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let pki = tempfile::tempdir().unwrap();
    let (crt, key) = openssl_upstream(pki.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--upstream-ca-cert",
        crt.to_str().unwrap(),
        "--upstream-ca-key",
        key.to_str().unwrap(),
    ];
    let err = server_fails(dir.path(), &args);
    assert!(
        err.contains("chmod 600") && err.contains(key.to_str().unwrap()),
        "{err}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = ServerProc::start_with(dir.path(), None, &args);
    let upstream_pem = std::fs::read_to_string(&crt).unwrap();
    let norm = |p: &str| p.split_whitespace().collect::<String>();
    assert_eq!(
        norm(&bundle_pem(&s)),
        norm(&upstream_pem),
        "the bundle must be the upstream root"
    );
    s.stop();
}

/// Runs `sigil server run` expecting it to refuse to start; returns its stderr.
fn server_fails(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(SIGIL)
        .args(["server", "run", "--data-dir"])
        .arg(data_dir)
        .args(["--bind-port", "0", "--metrics-address", "off"])
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "server started with {extra:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
