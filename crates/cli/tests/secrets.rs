//! `v1` Secrets as an operator uses them, against a real `sigil server run`: `sigil create
//! secret tls` checks the pair, values are sealed at rest and redacted by `get`, and a server
//! without the shared key refuses the datastore.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::ServerProc;
use common::pki::{b64, make_ca, p, pem_body_line};

/// Every wait here is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

fn fails(s: &ServerProc, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        !out.status.success(),
        "sigil {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// The base64 body of a PEM file (what a leak of it would contain), one line.
#[test]
fn create_secret_tls_is_checked_sealed_at_rest_and_redacted_by_get() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&dir.path().join("server"), None);
    let ca = make_ca(dir.path(), "internal-ca");
    let other = make_ca(dir.path(), "other-ca");

    let out = s.ok(&[
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
    assert_eq!(out.trim(), "secret/ca-key-pair created");
    let e = fails(
        &s,
        &[
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
        ],
    );
    assert!(
        e.contains("already exists") && e.contains("sigil apply -f -"),
        "{e}"
    );
    // A key that is not the certificate's: refused before anything is sent.
    let e = fails(
        &s,
        &[
            "create",
            "secret",
            "tls",
            "mismatch",
            "--cert",
            p(&ca.0),
            "--key",
            p(&other.1),
            "-n",
            "cert-manager",
        ],
    );
    assert!(e.contains("private key does not match"), "{e}");
    let e = fails(&s, &["get", "secret", "mismatch", "-n", "cert-manager"]);
    assert!(e.contains("not found"), "{e}");
    let e = fails(
        &s,
        &[
            "create",
            "secret",
            "tls",
            "nokey",
            "--cert",
            p(&ca.0),
            "--key",
            p(&ca.0),
            "-n",
            "cert-manager",
        ],
    );
    assert!(e.contains("--key") && e.contains("CERTIFICATE"), "{e}");

    // kubectl's columns; values never in clear without --show-secrets.
    let table = s.ok(&["get", "secrets", "-n", "cert-manager"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..3],
        ["ca-key-pair", "kubernetes.io/tls", "2"],
        "{table}"
    );
    let yaml = s.ok(&[
        "get",
        "secret",
        "ca-key-pair",
        "-n",
        "cert-manager",
        "-o",
        "yaml",
    ]);
    let key_line = pem_body_line(&ca.1);
    assert!(
        yaml.contains("REDACTED: ") && !yaml.contains(&b64(&ca.1)),
        "{yaml}"
    );
    assert!(!yaml.contains("sealedData"), "{yaml}");
    let shown: serde_json::Value = serde_json::from_str(&s.ok(&[
        "get",
        "secret",
        "ca-key-pair",
        "-n",
        "cert-manager",
        "-o",
        "json",
        "--show-secrets",
    ]))
    .unwrap();
    assert_eq!(shown["data"]["tls.key"], b64(&ca.1));
    assert_eq!(shown["data"]["tls.crt"], b64(&ca.0));
    // `get all` leaves Secrets out, as kubectl does.
    let all = s.ok(&["get", "all", "-n", "cert-manager", "-o", "name"]);
    assert!(!all.contains("ca-key-pair"), "{all}");

    // Sealed at rest: neither the datastore nor the log holds the key.
    let key_file = s.data_dir.join("secrets.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut at_rest = Vec::new();
    for e in std::fs::read_dir(&s.data_dir).unwrap() {
        let e = e.unwrap();
        if e.file_name()
            .to_string_lossy()
            .starts_with("datastore.sqlite3")
        {
            at_rest.extend(std::fs::read(e.path()).unwrap());
        }
    }
    assert!(!at_rest.is_empty());
    let at_rest = String::from_utf8_lossy(&at_rest);
    assert!(
        at_rest.contains("sealedData"),
        "the Secret row should be in the datastore"
    );
    assert!(!at_rest.contains(&key_line) && !at_rest.contains(&b64(&ca.1)[..40]));
    let log = s.log_text();
    assert!(!log.contains(&key_line) && !log.contains(&b64(&ca.1)[..40]));
    assert!(
        log.contains("--show-secrets"),
        "the clear-text read is logged: {log}"
    );

    // Bad YAML Secrets: the line and the fix.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\n  namespace: cert-manager\ntype: kubernetes.io/tls\ndata:\n  tls.crt: \"not base64!\"\n",
    )
    .unwrap();
    let e = fails(&s, &["apply", "-f", p(&bad)]);
    assert!(
        e.contains("base64") && e.contains("`tls.key`") && e.contains("bad.yaml:"),
        "{e}"
    );
    // Re-applying redacted output is refused with the way to export real values.
    let redacted = dir.path().join("redacted.yaml");
    std::fs::write(&redacted, &yaml).unwrap();
    let e = fails(&s, &["apply", "-f", p(&redacted)]);
    assert!(e.contains("--show-secrets"), "{e}");
    // Re-applying the real values is a no-op; stringData works.
    let real = dir.path().join("real.yaml");
    std::fs::write(
        &real,
        s.ok(&[
            "get",
            "secret",
            "ca-key-pair",
            "-n",
            "cert-manager",
            "-o",
            "yaml",
            "--show-secrets",
        ]),
    )
    .unwrap();
    assert_eq!(
        s.ok(&["apply", "-f", p(&real)]).trim(),
        "secret/ca-key-pair unchanged"
    );
    let sd = dir.path().join("sd.yaml");
    std::fs::write(&sd, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: jobs\nstringData:\n  token: s3cr3t-value\nimmutable: true\n").unwrap();
    assert_eq!(
        s.ok(&["apply", "-f", p(&sd)]).trim(),
        "secret/token created"
    );
    std::fs::write(&sd, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: jobs\nstringData:\n  token: changed\nimmutable: true\n").unwrap();
    let e = fails(&s, &["apply", "-f", p(&sd)]);
    assert!(e.contains("immutable") && e.contains("delete"), "{e}");

    // A second server on the same datastore without the shared key file refuses to start and
    // leaves no key of its own behind.
    let store = s.data_dir.join("datastore.sqlite3");
    s.stop();
    let other = dir.path().join("replica");
    std::fs::create_dir_all(&other).unwrap();
    let log = other.join("server.log");
    let mut child = common::spawn_server(&other, Some(p(&store)), &[], &log);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the replica should refuse to start"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("secrets.key") && text.contains("sealed with key"),
        "{text}"
    );
    assert!(!other.join("secrets.key").exists());
}
