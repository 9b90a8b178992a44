//! `sigil diagnose tls` against real broken situations on 127.0.0.1: rustls servers with a test
//! CA and a foreign CA, expired and not-yet-valid certificates, a plaintext HTTP server, a real
//! Sigil proxy (STRICT, and STRICT with a DISABLE health port), and a real Sigil server for
//! `--as`. Each test asserts the words a user reads and the exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use common::{SIGIL, ServerProc};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sigil_policy::{MeshContext, Workload};
use sigil_proxy::Context;
use sigil_proxy::access_log::AccessLog;
use sigil_proxy::config::{AppProtocol, InboundPort, ProxyConfig};
use sigil_proxy::identity::IdentitySource;
use sigil_proxy::mesh::{MeshSource, MeshView};
use sigil_proxy::stats::Stats;
use sigil_proxy::testing::{Issued, TestCa};
use sigil_spiffe::{Bundle, BundleSet, TrustDomain};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

const TD: &str = "cluster.local";
const BILLING: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";
const CHECKOUT: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";

const STRICT: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n";
/// The seed document's fix: STRICT, with the health port exempted.
const STRICT_HEALTH_DISABLE: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  selector:\n    matchLabels:\n      app: billing-service\n  mtls:\n    mode: STRICT\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The test PKI, written to files as a user would have them.
struct Pki {
    ca: TestCa,
    foreign: TestCa,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let p = Pki {
            ca: TestCa::new(TD).unwrap(),
            foreign: TestCa::new("other.org").unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(p.path("ca.pem"), p.ca.root_pem()).unwrap();
        p
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Writes `issued` as NAME.pem and NAME.key (0600); returns the `--cert/--key` arguments.
    fn client_files(&self, name: &str, issued: &Issued) -> Vec<String> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::write(self.path(&format!("{name}.pem")), issued.cert_pem()).unwrap();
        let key = self.path(&format!("{name}.key"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(&mut f, issued.key_pem().as_bytes()).unwrap();
        vec![
            "--cert".into(),
            self.path(&format!("{name}.pem")),
            "--key".into(),
            key,
        ]
    }

    fn svid(&self, id: &str) -> Issued {
        self.ca.issue(id, &[], now() - 60, now() + 3600).unwrap()
    }
}

/// Runs `sigil diagnose tls TARGET ARGS…` without blocking the servers' runtime.
async fn diagnose(target: SocketAddr, args: &[String]) -> (i32, String) {
    let mut all = vec!["diagnose".to_owned(), "tls".to_owned(), target.to_string()];
    if !args.iter().any(|a| a == "--timeout") {
        all.extend(["--timeout".to_owned(), "5s".to_owned()]);
    }
    all.extend(args.iter().cloned());
    let o: Output = tokio::task::spawn_blocking(move || Command::new(SIGIL).args(&all).output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (
        o.status.code().unwrap(),
        format!("{text}\n--- stderr ---\n{err}"),
    )
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

/// Some evidence line names `label` and shows `value`.
fn assert_evidence(text: &str, label: &str, value: &str) {
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with(label) && l.contains(&format!(" : {value}"))),
        "no evidence {label:?} = {value:?} in\n{text}"
    );
}

fn assert_has(text: &str, wants: &[&str]) {
    for w in wants {
        assert!(text.contains(w), "missing {w:?} in\n{text}");
    }
}

/// A rustls server presenting `issued`; with `clients_of`, it requires client SVIDs of that
/// CA (as a STRICT mesh port does). Every accepted connection is held until the client leaves.
async fn tls_server(
    issued: &Issued,
    clients_of: Option<Vec<CertificateDer<'static>>>,
    alpn: &[&str],
) -> SocketAddr {
    let b = rustls::ServerConfig::builder_with_provider(sigil_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match clients_of {
        None => b.with_no_client_auth(),
        Some(roots) => {
            let mut set = BundleSet::new();
            set.insert(
                Bundle::from_x509_authorities(TrustDomain::new(TD).unwrap(), roots).unwrap(),
            );
            b.with_client_cert_verifier(Arc::new(sigil_tls::SpiffeClientVerifier::new(set, false)))
        }
    };
    let mut cfg = b
        .with_single_cert(
            issued.chain.clone(),
            PrivateKeyDer::Pkcs8(issued.key_pkcs8.clone().into()),
        )
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A plaintext HTTP/1.1 application (hyper): 200 to requests, 400 to anything unparsable.
async fn http_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"healthy\n"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

/// A Sigil proxy's inbound listener for workload port 8080 of payments/billing-service, with
/// a fixed identity (BILLING, from `ca`) and the mesh configuration `yaml`, in front of `app`.
struct Proxy {
    addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn proxy(ca: &TestCa, yaml: &str, app: SocketAddr) -> Proxy {
    let mut cfg = ProxyConfig::parse(
        "workload:\n  name: billing-service\n  namespace: payments\n  labels: {app: billing-service}\n",
    )
    .unwrap();
    let port = InboundPort {
        port: 8080,
        bind: None,
        app,
        protocol: AppProtocol::Http,
    };
    cfg.inbound = vec![port.clone()];
    cfg.limits.handshake_timeout = Duration::from_secs(5);
    let docs = sigil_policy::parse_documents("mesh.yaml", yaml).unwrap();
    let view = MeshView::compile(
        1,
        docs,
        Workload::new("payments", [("app", "billing-service")]),
        MeshContext::default(),
    );
    let ctx = Context {
        cfg: Arc::new(cfg),
        identity: IdentitySource::fixed(ca.identity(BILLING).unwrap()),
        mesh: MeshSource::fixed(view),
        stats: Arc::new(Stats::new(&[8080], &[])),
        access_log: AccessLog::off(),
    };
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(sigil_proxy::inbound::serve(l, port, ctx, rx));
    Proxy { addr, _stop: tx }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_mtls_shows_peer_id_chain_version_cipher_and_alpn() {
    let pki = Pki::new();
    let server = tls_server(&pki.svid(BILLING), Some(vec![pki.ca.root.clone()]), &["h2"]).await;
    let mut args = pki.client_files("checkout", &pki.svid(CHECKOUT));
    args.extend(s(&[
        "--ca",
        &pki.path("ca.pem"),
        "--expect-id",
        BILLING,
        "--alpn",
        "h2",
    ]));
    let (code, text) = diagnose(server, &args).await;
    assert_eq!(code, 0, "{text}");
    assert_has(
        &text,
        &[
            &format!("sigil diagnose tls {server}: OK"),
            &format!("mTLS to {server} works: the server is {BILLING}, verified against --ca"),
            "issued by CN=cluster.local test root",
            "valid, expires in ",
        ],
    );
    assert_evidence(&text, "peer SPIFFE ID", BILLING);
    assert_evidence(&text, "TLS version", "TLSv1.3");
    assert_evidence(&text, "cipher suite", "TLS13_");
    assert_evidence(&text, "ALPN", "h2");

    args.extend(s(&["-o", "json"]));
    let (code, text) = diagnose(server, &args).await;
    assert_eq!(code, 0);
    let v: serde_json::Value =
        serde_json::from_str(text.split("\n--- stderr").next().unwrap()).unwrap();
    assert_eq!(v["code"], "ok");
    assert_eq!(v["tls"]["version"], "TLSv1.3");
    assert_eq!(v["tls"]["alpn"], "h2");
    assert_eq!(v["peer"]["spiffe_id"], BILLING);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_ca_is_an_unknown_authority() {
    let pki = Pki::new();
    let server = tls_server(
        &pki.foreign
            .issue(
                "spiffe://other.org/ns/payments/sa/billing-service",
                &[],
                now() - 60,
                now() + 3600,
            )
            .unwrap(),
        None,
        &[],
    )
    .await;
    let (code, text) = diagnose(server, &s(&["--ca", &pki.path("ca.pem")])).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [unknown-authority]",
            "CERTIFICATE_VERIFY_FAILED (unknown authority): the server's certificate chain is not signed by a root you trust; it was issued by CN=other.org test root",
            "expected trust domain",
            ": cluster.local",
            "CN=cluster.local test root (trust domain cluster.local)",
            "presented issuer",
            "no trusted root has this key",
            "sigil bundle show --format pem > ca.pem",
            "sigil x509 verify --bundle ca.pem server.pem",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_certificate_verify_failed() {
    let pki = Pki::new();
    let app = http_app().await;
    let p = proxy(&pki.ca, STRICT, app).await;
    let foreign_client = pki
        .foreign
        .issue(
            "spiffe://other.org/ns/payments/sa/checkout-service",
            &[],
            now() - 60,
            now() + 3600,
        )
        .unwrap();
    let mut args = pki.client_files("foreign-client", &foreign_client);
    args.extend(s(&["--ca", &pki.path("ca.pem")]));
    let (code, text) = diagnose(p.addr, &args).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [client-cert-rejected]",
            "CERTIFICATE_VERIFY_FAILED: the server does not trust the CA that signed your client certificate (TLS alert unknown_ca",
            "ssl3_read_bytes:certificate verify failed",
            "spiffe://other.org/ns/payments/sa/checkout-service from --cert",
            "issued by CN=other.org test root",
            &format!(
                "sigil x509 verify --bundle ca.pem {}",
                pki.path("foreign-client.pem")
            ),
        ],
    );

    // Our own CA, but the client certificate expired: the server says so.
    let expired = pki
        .ca
        .issue(CHECKOUT, &[], now() - 7200, now() - 3600)
        .unwrap();
    let mut args = pki.client_files("expired-client", &expired);
    args.extend(s(&["--ca", &pki.path("ca.pem")]));
    let (code, text) = diagnose(p.addr, &args).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [client-cert-rejected]",
            "rejected your client certificate as expired (TLS alert certificate_expired",
        ],
    );
    assert_evidence(&text, "client certificate validity", "EXPIRED 1h 0m ago");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid_server_certificates_say_by_how_much() {
    let pki = Pki::new();
    let ca_arg = s(&["--ca", &pki.path("ca.pem")]);
    let long_expired = pki
        .ca
        .issue(BILLING, &[], now() - 9 * 3600, now() - 3 * 3600 - 20)
        .unwrap();
    let server = tls_server(&long_expired, None, &[]).await;
    let (code, text) = diagnose(server, &ca_arg).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [expired]",
            &format!(
                "certificate expired: the leaf {BILLING} in the server's certificate chain expired 3h 0m ago"
            ),
            "expired 3h 0m ago",
            "sigil agent healthcheck",
        ],
    );
    assert!(!text.contains("clock skew"), "{text}");

    let just_expired = pki
        .ca
        .issue(BILLING, &[], now() - 3600, now() - 100)
        .unwrap();
    let server = tls_server(&just_expired, None, &[]).await;
    let (code, text) = diagnose(server, &ca_arg).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &["FAILED [expired]", "expired 1m ", "clock skew", "date -u"],
    );

    let early = pki
        .ca
        .issue(BILLING, &[], now() + 240, now() + 3600)
        .unwrap();
    let server = tls_server(&early, None, &[]).await;
    let (code, text) = diagnose(server, &ca_arg).await;
    assert_eq!(code, 2, "{text}");
    assert_has(&text, &["FAILED [not-yet-valid]", "clock skew"]);
    assert!(
        text.contains("becomes valid only in 3m ") || text.contains("becomes valid only in 4m 0s"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workload_behind_the_address_is_a_spiffe_id_mismatch() {
    let pki = Pki::new();
    let server = tls_server(&pki.svid(BILLING), None, &[]).await;
    let want = "spiffe://cluster.local/ns/payments/sa/ledger";
    let (code, text) = diagnose(
        server,
        &s(&["--ca", &pki.path("ca.pem"), "--expect-id", want]),
    )
    .await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [spiffe-id-mismatch]",
            &format!("SPIFFE ID mismatch: {server} presented {BILLING}, but you expected {want}"),
            "sigil get destinationrule -A -o yaml",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rejects_a_client_without_a_sidecar_with_tls_and_with_plaintext() {
    let pki = Pki::new();
    let app = http_app().await;
    let p = proxy(&pki.ca, STRICT, app).await;

    // TLS without a client certificate: TLS 1.3 certificate_required after the handshake.
    let (code, text) = diagnose(p.addr, &s(&["--ca", &pki.path("ca.pem")])).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [client-cert-required]",
            "connection termination: STRICT mTLS rejected a client without a sidecar",
            "requires a client certificate and none was sent (TLS alert certificate_required",
            "portLevelMtls:",
            "mode: DISABLE",
            "sigil get peerauthentication -A -o yaml",
            &format!(
                "sigil diagnose tls {} --as <namespace>/<serviceaccount>",
                p.addr
            ),
        ],
    );
    assert_evidence(&text, "client certificate", "none");

    // Plaintext (curl from a debug pod): the proxy drops it.
    let (code, text) = diagnose(p.addr, &s(&["--plaintext"])).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [plaintext-rejected]",
            "upstream connect error, reset reason: connection termination",
            "the port requires mTLS (STRICT)",
            "portLevelMtls:",
        ],
    );

    // With a mesh identity it works.
    let mut args = pki.client_files("checkout", &pki.svid(CHECKOUT));
    args.extend(s(&["--ca", &pki.path("ca.pem"), "--expect-id", BILLING]));
    let (code, text) = diagnose(p.addr, &args).await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_port_exception_takes_plaintext_and_tls_to_it_is_rx_record_too_long() {
    let pki = Pki::new();
    let app = http_app().await;
    let p = proxy(&pki.ca, STRICT_HEALTH_DISABLE, app).await;

    let (code, text) = diagnose(p.addr, &s(&["--plaintext"])).await;
    assert_eq!(code, 0, "{text}");
    assert_has(
        &text,
        &[": OK", "accepts plaintext; it answered \"HTTP/1.1 200 OK\""],
    );

    // TLS reaches the plaintext app through the DISABLE port; the app answers HTTP 400.
    let (code, text) = diagnose(p.addr, &s(&["--ca", &pki.path("ca.pem")])).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [not-tls]",
            "SSL_ERROR_RX_RECORD_TOO_LONG: you spoke TLS to a plaintext port",
            "sigil get destinationrule -A -o yaml",
        ],
    );
    assert_evidence(&text, "first bytes received", "\"HTTP/1.1 400 Bad Request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plain_http_server_shows_its_first_bytes() {
    let app = http_app().await;
    let (code, text) = diagnose(app, &[]).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [not-tls]",
            "answered with plaintext HTTP",
            "\"HTTP/1.1 400 Bad Request\\r\\n",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_a_tls_port_without_client_auth_is_answered_with_a_tls_alert() {
    let pki = Pki::new();
    let server = tls_server(&pki.svid(BILLING), None, &[]).await;
    let (code, text) = diagnose(server, &s(&["--plaintext"])).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &["FAILED [plaintext-to-tls]", "speaks TLS", "\"\\x15\\x03"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_mismatch_with_the_proxy() {
    let pki = Pki::new();
    let app = http_app().await;
    let p = proxy(&pki.ca, STRICT, app).await;
    let mut args = pki.client_files("checkout", &pki.svid(CHECKOUT));
    args.extend(s(&["--ca", &pki.path("ca.pem"), "--alpn", "imap,pop3"]));
    let (code, text) = diagnose(p.addr, &args).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [alpn-mismatch]",
            "ALPN mismatch: ",
            "supports none of the application protocols offered (imap, pop3) (TLS alert no_application_protocol)",
            "--alpn h2,http/1.1",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_and_bad_usage() {
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (code, text) = diagnose(free, &[]).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [connection-refused]",
            &format!("nothing listens on {free}"),
        ],
    );

    let o = Command::new(SIGIL)
        .args(["diagnose", "tls", "no-port-here"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not HOST:PORT"));
    let o = Command::new(SIGIL)
        .args([
            "diagnose",
            "tls",
            "127.0.0.1:1",
            "--plaintext",
            "--alpn",
            "h2",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));

    // A key that does not belong to the certificate is refused before connecting.
    let pki = Pki::new();
    let a = pki.client_files("a", &pki.svid(CHECKOUT));
    let b = pki.client_files("b", &pki.svid(CHECKOUT));
    let mismatched = [a[0].clone(), a[1].clone(), b[2].clone(), b[3].clone()];
    let (code, text) = diagnose(free, &mismatched).await;
    assert_eq!(code, 1, "{text}");
    assert_has(
        &text,
        &["does not belong to --cert", "their public keys differ"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_mints_a_short_lived_identity_and_trusts_the_servers_bundle() {
    let pki = Pki::new();
    let sdir = pki.dir.path().join("server");
    let server = tokio::task::spawn_blocking(move || ServerProc::start(&sdir, None))
        .await
        .unwrap();
    let sock = server.socket.to_str().unwrap().to_owned();
    // The billing workload's SVID, minted by the Sigil server.
    let out_dir = pki.path("billing");
    let o = server.cli(&[
        "x509",
        "mint",
        "--spiffe-id",
        BILLING,
        "--out-dir",
        &out_dir,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |f: &str| std::fs::read_to_string(Path::new(&out_dir).join(f)).unwrap();
    let chain = sigil_spiffe::pem::decode_certificates(&read("svid.pem")).unwrap();
    let roots = sigil_spiffe::pem::decode_certificates(&read("bundle.pem")).unwrap();
    let key = sigil_ca::PrivateKey::from_pem(read("svid.key").as_bytes()).unwrap();
    let billing = Issued {
        chain,
        key_pkcs8: key.to_pkcs8_der().unwrap().to_vec(),
    };
    let addr = tls_server(&billing, Some(roots), &[]).await;

    let (code, text) = diagnose(
        addr,
        &s(&[
            "--as",
            "payments/checkout-service",
            "--expect-id",
            BILLING,
            "--socket-path",
            &sock,
        ]),
    )
    .await;
    assert_eq!(code, 0, "{text}\n{}", server.log_text());
    assert_has(
        &text,
        &[
            &format!(
                "the server is {BILLING}, verified against the bundle of cluster.local from the server (--as)"
            ),
            &format!("{CHECKOUT} from --as (minted, serial"),
        ],
    );
    assert!(server.log_text().contains(CHECKOUT));

    let (code, text) = diagnose(addr, &s(&["--as", "payments", "--socket-path", &sock])).await;
    assert_eq!(code, 64, "{text}");
    assert_has(&text, &["NAMESPACE/SERVICEACCOUNT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_closing_servers_are_told_apart() {
    // Accepts and never answers (a server-first or stuck service).
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    // Accepts, reads the first bytes, and closes without a word.
    let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_addr = closing.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = closing.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
        }
    });

    let quick = s(&["--timeout", "700ms"]);
    let (code, text) = diagnose(silent_addr, &quick).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [no-tls-answer]",
            "accepted the TCP connection but did not answer the TLS ClientHello within 700ms",
            "--plaintext",
        ],
    );
    let mut plain = quick.clone();
    plain.push("--plaintext".into());
    let (code, text) = diagnose(silent_addr, &plain).await;
    assert_eq!(code, 2, "{text}");
    assert_has(&text, &["FAILED [no-answer]"]);

    let (code, text) = diagnose(closing_addr, &quick).await;
    assert_eq!(code, 2, "{text}");
    assert_has(
        &text,
        &[
            "FAILED [connection-terminated]",
            "the connection during the TLS handshake, without a TLS alert",
        ],
    );
}
