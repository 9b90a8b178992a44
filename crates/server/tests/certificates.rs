//! cert-manager Certificates end to end, in process: a real server with its controller, the
//! seed document's ClusterIssuer and Certificate applied verbatim through the admin API, the
//! issued Secret checked with x509-parser and `openssl verify`, renewal with short lifetimes,
//! `RenewCertificate` (`sigil cert renew`), every bad input ending as `Ready False` with a
//! reason, and two replicas on one PostgreSQL issuing once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use sigil_proto::admin::admin_client::AdminClient;
use sigil_proto::admin::{self as api};
use sigil_server::config::{FileConfig, ServerConfig};
use sigil_server::secrets::{self, SecretData};
use tonic::transport::Channel;
use x509_parser::extensions::GeneralName;

struct Harness {
    bound: sigil_server::Bound,
    admin: AdminClient<Channel>,
}

async fn start(data_dir: PathBuf, datastore: Option<String>) -> Harness {
    let cfg = ServerConfig::resolve(FileConfig {
        data_dir: Some(data_dir),
        datastore,
        bind_address: Some("127.0.0.1".parse().unwrap()),
        bind_port: Some(0),
        metrics_address: Some("off".into()),
        ..Default::default()
    })
    .unwrap();
    let bound = sigil_server::build(cfg).await.unwrap();
    let admin = sigil_server::admin_client::connect(&bound.admin_socket)
        .await
        .unwrap();
    Harness { bound, admin }
}

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
    std::fs::read_to_string(p).unwrap()
}

/// A CA key pair as `openssl req -x509` would make it: (cert PEM, key PEM).
fn make_ca(cn: &str, is_ca: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    if is_ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Harness {
    async fn apply(&mut self, name: &str, yaml: &str) -> api::ApplyConfigResponse {
        self.admin
            .apply_config(api::ApplyConfigRequest {
                documents: vec![api::ConfigDocument {
                    file_name: name.into(),
                    text: yaml.into(),
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn put_secret(&self, ns: &str, name: &str, cert: &str, key: &str) {
        let data = SecretData::tls(cert.as_bytes(), key.as_bytes(), None);
        secrets::write_secret(&self.bound.shared, ns, name, &data)
            .await
            .unwrap();
        // The controller hears about it through the configuration revision.
        self.bound
            .shared
            .config
            .refresh(self.bound.shared.ds.as_ref())
            .await
            .unwrap();
    }

    async fn describe(&mut self, ns: &str, name: &str) -> (Value, Vec<Value>, Vec<Value>) {
        let r = self
            .admin
            .describe_certificate(api::CertificateRef {
                namespace: ns.into(),
                name: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        (
            serde_json::from_str(&r.certificate_json).unwrap(),
            serde_json::from_str(&r.events_json).unwrap(),
            serde_json::from_str(&r.requests_json).unwrap(),
        )
    }

    /// Waits (≤ 30 s) until the Certificate's Ready condition satisfies `want`; returns it.
    async fn wait_ready(&mut self, ns: &str, name: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (cert, _, _) = self.describe(ns, name).await;
            if let Some(c) = ready_of(&cert)
                && want(&c)
            {
                return cert;
            }
            assert!(
                Instant::now() < deadline,
                "Certificate {ns}/{name} never reached the wanted state: {cert:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn secret(&self, ns: &str, name: &str) -> SecretData {
        secrets::read_secret(&self.bound.shared, ns, name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("Secret {ns}/{name} missing"))
    }
}

fn ready_of(cert: &Value) -> Option<Value> {
    cert.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

fn is_true(c: &Value) -> bool {
    c["status"] == "True"
}

fn pem_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    sigil_spiffe::pem::decode_certificates(std::str::from_utf8(pem).unwrap())
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_owned()
}

fn unix(t: &Value) -> i64 {
    time::OffsetDateTime::parse(
        t.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_certificate_is_issued_from_the_ca_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(dir.path().join("server"), None).await;
    let (ca_pem, ca_key) = make_ca("Corp Internal CA", true);
    h.put_secret("cert-manager", "ca-key-pair", &ca_pem, &ca_key)
        .await;
    let issuer = example("mesh/base/cluster-issuer.yaml");
    let cert = example("mesh/base/certificate.yaml");
    let r = h
        .apply("seed.yaml", &format!("{issuer}\n---\n{cert}"))
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    let c = h
        .wait_ready("payments", "billing-service-cert", is_true)
        .await;
    assert_eq!(c["status"]["revision"], 1);
    let (_, events, requests) = h.describe("payments", "billing-service-cert").await;
    assert!(
        events.iter().any(|e| e["message"]
            == "Successfully issued certificate from ClusterIssuer \"internal-ca\""),
        "{events:#?}"
    );
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["metadata"]["name"], "billing-service-cert-1");
    assert_eq!(requests[0]["status"]["conditions"][1]["reason"], "Issued");

    // The Secret: leaf only in tls.crt (the root is never there), the root in ca.crt.
    let s = h.secret("payments", "billing-service-tls").await;
    assert_eq!(s.type_, "kubernetes.io/tls");
    let chain = pem_certs(s.get("tls.crt").unwrap());
    assert_eq!(
        chain.len(),
        1,
        "tls.crt must hold the leaf without the root"
    );
    assert_eq!(
        pem_certs(s.get("ca.crt").unwrap()),
        pem_certs(ca_pem.as_bytes())
    );
    let key = std::str::from_utf8(s.get("tls.key").unwrap()).unwrap();
    assert!(
        key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS1 by default"
    );
    for (k, v) in [
        ("cert-manager.io/certificate-name", "billing-service-cert"),
        ("cert-manager.io/issuer-name", "internal-ca"),
        ("cert-manager.io/issuer-kind", "ClusterIssuer"),
        ("cert-manager.io/issuer-group", "cert-manager.io"),
        (
            "cert-manager.io/alt-names",
            "billing-service.payments.svc.cluster.local,billing-service.payments.svc",
        ),
        (
            "cert-manager.io/uri-sans",
            "spiffe://cluster.local/ns/payments/sa/billing-service",
        ),
    ] {
        assert_eq!(s.annotations.get(k).map(String::as_str), Some(v), "{k}");
    }

    // A 24h certificate with the two DNS names and the SPIFFE URI.
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (nb, na) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    assert_eq!(na - nb, 24 * 3600);
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::URI(u) => format!("URI:{u}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "DNS:billing-service.payments.svc.cluster.local",
            "DNS:billing-service.payments.svc",
            "URI:spiffe://cluster.local/ns/payments/sa/billing-service",
        ]
    );
    assert!(leaf.subject().to_string().contains("O=corp.example.com"));
    assert!(!leaf.is_ca());
    // Renewal 8h before expiry.
    assert_eq!(unix(&c["status"]["notAfter"]), na);
    assert_eq!(unix(&c["status"]["renewalTime"]), na - 8 * 3600);

    // An independent verifier agrees: chain to ca.crt, key matches.
    let tmp = tempfile::tempdir().unwrap();
    let ca = write(tmp.path(), "ca.crt", s.get("ca.crt").unwrap());
    let crt = write(tmp.path(), "tls.crt", s.get("tls.crt").unwrap());
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", &ca, &crt])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keyf = write(tmp.path(), "tls.key", s.get("tls.key").unwrap());
    let pub_of = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(
        pub_of(&["pkey", "-in", &keyf, "-pubout"]),
        pub_of(&["x509", "-in", &crt, "-noout", "-pubkey"])
    );

    // Metrics under cert-manager's names.
    let m = h.bound.shared.metrics.encode();
    let labels = "name=\"billing-service-cert\",namespace=\"payments\",issuer_name=\"internal-ca\",issuer_kind=\"ClusterIssuer\",issuer_group=\"cert-manager.io\"";
    assert!(
        m.contains(&format!(
            "certmanager_certificate_expiration_timestamp_seconds{{{labels}}} {na}"
        )),
        "{m}"
    );
    assert!(m.contains(&format!(
        "certmanager_certificate_renewal_timestamp_seconds{{{labels}}} {}",
        na - 8 * 3600
    )));
    assert!(m.contains("certmanager_certificate_ready_status{name=\"billing-service-cert\",namespace=\"payments\",condition=\"True\",issuer_name=\"internal-ca\",issuer_kind=\"ClusterIssuer\",issuer_group=\"cert-manager.io\"} 1"), "{m}");

    // Get shows status; the issuer is Ready.
    let got = h
        .admin
        .get_config(api::GetConfigRequest {
            kind: "clusterissuers".into(),
            name: "internal-ca".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let issuer: Value = serde_json::from_str(&got.resources[0].json).unwrap();
    assert_eq!(ready_of(&issuer).unwrap()["reason"], "KeyPairVerified");
    h.bound.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_end_as_ready_false_with_an_actionable_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(dir.path().join("server"), None).await;
    let cert = |name: &str, issuer: &str, kind: &str, extra: &str| {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: {name}\n  \
             namespace: apps\nspec:\n  secretName: {name}-tls\n  dnsNames: [a.apps.svc]\n  \
             issuerRef:\n    name: {issuer}\n    kind: {kind}\n{extra}"
        )
    };
    let r = h
        .apply(
            "bad.yaml",
            &[
                cert("no-issuer", "nobody", "ClusterIssuer", ""),
                cert("big-key", "self", "Issuer", "  privateKey:\n    size: 8192\n"),
                cert("p521", "self", "Issuer", "  privateKey:\n    algorithm: ECDSA\n    size: 521\n"),
                cert("wants-ca", "internal-ca", "ClusterIssuer", ""),
                cert("acme", "letsencrypt", "ClusterIssuer", ""),
                cert("rb", "self", "Issuer", "  duration: 1h\n  renewBefore: 2h\n"),
                "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: self\n  namespace: apps\nspec:\n  selfSigned: {}\n".into(),
                "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: internal-ca\nspec:\n  ca:\n    secretName: ca-key-pair\n".into(),
                "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\nspec:\n  acme:\n    server: https://acme.example/directory\n".into(),
            ]
            .join("---\n"),
        )
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let not_ready = |c: &Value| c["status"] == "False";
    for (name, reason, words) in [
        (
            "no-issuer",
            "IssuerNotFound",
            "ClusterIssuer \"nobody\" not found",
        ),
        ("big-key", "UnsupportedKeySize", "spec.privateKey.size 8192"),
        ("p521", "UnsupportedKeySize", "use 256 or 384"),
        (
            "wants-ca",
            "IssuerNotReady",
            "sigil create secret tls ca-key-pair --cert ca.crt --key ca.key -n cert-manager",
        ),
        (
            "acme",
            "IssuerNotReady",
            "acme issuers are not supported by Sigil",
        ),
        (
            "rb",
            "InvalidSpec",
            "spec.renewBefore 2h0m0s is not shorter than spec.duration 1h0m0s",
        ),
    ] {
        let c = h.wait_ready("apps", name, not_ready).await;
        let ready = ready_of(&c).unwrap();
        assert_eq!(ready["reason"], reason, "{name}: {ready:#}");
        assert!(
            ready["message"].as_str().unwrap().contains(words),
            "{name}: {ready:#}"
        );
        let (_, events, _) = h.describe("apps", name).await;
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "Warning" && e["reason"] == reason)
        );
    }

    // A key that does not belong to the certificate, and a certificate that is not a CA.
    let (ca_pem, _) = make_ca("CA", true);
    let (_, other_key) = make_ca("other", true);
    h.put_secret("cert-manager", "ca-key-pair", &ca_pem, &other_key)
        .await;
    let c = h
        .wait_ready("apps", "wants-ca", |c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not match"))
        })
        .await;
    assert_eq!(ready_of(&c).unwrap()["reason"], "IssuerNotReady");
    let (leaf_pem, leaf_key) = make_ca("not a CA", false);
    h.put_secret("cert-manager", "ca-key-pair", &leaf_pem, &leaf_key)
        .await;
    h.wait_ready("apps", "wants-ca", |c| {
        c["message"].as_str().is_some_and(|m| m.contains("CA:TRUE"))
    })
    .await;

    // Fixing the Secret is picked up promptly (the controller reacts to the change).
    let (ca_pem, ca_key) = make_ca("CA", true);
    h.put_secret("cert-manager", "ca-key-pair", &ca_pem, &ca_key)
        .await;
    let t = Instant::now();
    h.wait_ready("apps", "wants-ca", is_true).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    h.bound.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_and_manual_renewal_reissues() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(dir.path().join("server"), None).await;
    // 1h (the minimum) renewed 59m52s before expiry: renewal falls 8 s after issuance.
    let yaml = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: mesh-ca\nspec:\n  sigil: {}\n---\n\
apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: job\n  namespace: batch\nspec:\n  secretName: job-tls\n  duration: 1h\n  renewBefore: 59m52s\n  commonName: job.batch\n  dnsNames: [job.batch.svc]\n  privateKey:\n    algorithm: ECDSA\n    encoding: PKCS8\n  usages: [client auth, digital signature]\n  additionalOutputFormats:\n  - type: DER\n  - type: CombinedPEM\n  secretTemplate:\n    labels:\n      team: batch\n  issuerRef:\n    name: mesh-ca\n    kind: ClusterIssuer\n";
    let r = h.apply("job.yaml", yaml).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = h.wait_ready("batch", "job", is_true).await;
    let first_serial = {
        let s = h.secret("batch", "job-tls").await;
        // Signed by the trust domain's CA: leaf + intermediate in tls.crt, the root in ca.crt.
        let chain = pem_certs(s.get("tls.crt").unwrap());
        assert_eq!(chain.len(), 2);
        let roots = h.bound.shared.ca.trusted_roots();
        let ca = pem_certs(s.get("ca.crt").unwrap());
        assert_eq!(ca.len(), 1);
        assert!(roots.iter().any(|r| r.as_ref() == ca[0].as_slice()));
        assert!(
            !chain
                .iter()
                .any(|c| roots.iter().any(|r| r.as_ref() == c.as_slice()))
        );
        assert!(
            std::str::from_utf8(s.get("tls.key").unwrap())
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(s.get("key.der").is_some());
        let combined = std::str::from_utf8(s.get("tls-combined.pem").unwrap()).unwrap();
        assert!(combined.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(combined.contains("BEGIN CERTIFICATE"));
        assert_eq!(s.labels.get("team").map(String::as_str), Some("batch"));
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        assert!(leaf.subject().to_string().contains("CN=job.batch"));
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        hex::encode(leaf.raw_serial())
    };
    let rt = unix(&c["status"]["renewalTime"]);
    assert_eq!(unix(&c["status"]["notAfter"]) - rt, 59 * 60 + 52);

    // The real renewal: a new certificate (revision 2) shortly after the renewal time.
    let deadline = Instant::now() + Duration::from_secs(40);
    let c = loop {
        let (c, _, _) = h.describe("batch", "job").await;
        if c["status"]["revision"].as_i64() >= Some(2) {
            break c;
        }
        assert!(Instant::now() < deadline, "no renewal: {c:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(sigil_server::state::now_unix() >= rt);
    assert!(is_true(&ready_of(&c).unwrap()));
    let second = h.secret("batch", "job-tls").await;
    let second_chain = pem_certs(second.get("tls.crt").unwrap());
    let (_, leaf) = x509_parser::parse_x509_certificate(&second_chain[0]).unwrap();
    assert_ne!(hex::encode(leaf.raw_serial()), first_serial);
    // Only revisionHistoryLimit (default 1) CertificateRequests are kept.
    let (_, _, requests) = h.describe("batch", "job").await;
    assert_eq!(requests.len(), 1, "{requests:#?}");

    // `sigil cert renew` on a long-lived certificate re-issues at once.
    let yaml = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web\n  namespace: batch\nspec:\n  secretName: web-tls\n  dnsNames: [web.batch.svc]\n  issuerRef:\n    name: mesh-ca\n    kind: ClusterIssuer\n";
    h.apply("web.yaml", yaml).await;
    let c = h.wait_ready("batch", "web", is_true).await;
    assert_eq!(c["status"]["revision"], 1);
    // Default renewal: two thirds into the 90-day default life.
    let (nb, na) = (
        unix(&c["status"]["notBefore"]),
        unix(&c["status"]["notAfter"]),
    );
    assert_eq!(unix(&c["status"]["renewalTime"]), na - (na - nb) / 3);
    h.admin
        .renew_certificate(api::CertificateRef {
            namespace: "batch".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, events, _) = h.describe("batch", "web").await;
        if c["status"]["revision"] == 2 {
            assert!(events.iter().any(|e| e["reason"] == "ManuallyTriggered"));
            assert!(is_true(&ready_of(&c).unwrap()));
            break;
        }
        assert!(Instant::now() < deadline, "manual renewal not done: {c:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.bound.shutdown().await;
}

/// Two replicas on one PostgreSQL: the lease and compare-and-set make one issuance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_issue_once() {
    let name = format!("sigil_certs_{}", std::process::id());
    let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
    let psql = |sql: String| {
        std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(sql)
            .output()
    };
    match psql(format!("CREATE DATABASE {name}")) {
        Ok(o) if o.status.success() => {}
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL needed: {other:?}"
            );
            eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url}");
            return;
        }
    }
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    let dir = tempfile::tempdir().unwrap();
    let mut a = start(dir.path().join("a"), Some(url.clone())).await;
    // Replicas share the Secrets key, as they must.
    let key_file = sigil_server::secrets::KEY_FILE;
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::copy(
        dir.path().join("a").join(key_file),
        dir.path().join("b").join(key_file),
    )
    .unwrap();
    let mut b = start(dir.path().join("b"), Some(url.clone())).await;
    // Both replicas read the Secret the other wrote.
    assert!(
        sigil_server::secrets::read_secret(&b.bound.shared, "apps", "none")
            .await
            .unwrap()
            .is_none()
    );
    let yaml = "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: self\n  namespace: apps\nspec:\n  selfSigned: {}\n---\n\
apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: shared\n  namespace: apps\nspec:\n  secretName: shared-tls\n  commonName: shared.apps\n  issuerRef:\n    name: self\n";
    let r = a.apply("shared.yaml", yaml).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    b.wait_ready("apps", "shared", is_true).await;
    let first = b.secret("apps", "shared-tls").await;
    // Let both replicas run a few more rounds; nothing is issued twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c, events, requests) = a.describe("apps", "shared").await;
    assert_eq!(c["status"]["revision"], 1, "{c:#}");
    assert_eq!(requests.len(), 1);
    let issued = events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Successfully issued"))
        })
        .count();
    assert_eq!(issued, 1, "{events:#?}");
    // A repeat would bump the event's count rather than add one, and replace the Secret.
    let event = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Successfully issued"))
        })
        .unwrap();
    assert_eq!(event["count"], 1, "{event:#}");
    let s = b.secret("apps", "shared-tls").await;
    assert_eq!(
        s.get("tls.crt"),
        first.get("tls.crt"),
        "the Secret was issued again"
    );
    // Self-signed: the certificate is its own CA in ca.crt.
    assert_eq!(
        pem_certs(s.get("tls.crt").unwrap()),
        pem_certs(s.get("ca.crt").unwrap())
    );
    a.bound.shutdown().await;
    b.bound.shutdown().await;
    let _ = psql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
