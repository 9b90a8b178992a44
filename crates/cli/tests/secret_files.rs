//! Secrets written as files by an agent (`--secret-dir`, `--secret`, `--secret-reload-command`),
//! with real `sigil server run` / `sigil agent run` processes and nginx serving the files: a new
//! version, and a Certificate renewed with `sigil cert renew`, reach nginx with no failed request;
//! a Secret re-addressed to another agent is withdrawn.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::pki::{b64, file_serial, make_ca, make_leaf, p, pem_body_line};
use common::{SIGIL, ServerProc};

/// Every wait here is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start_agent(dir: &Path, server: &ServerProc, port: u16, extra: &[&str]) -> Proc {
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, server.ok(&["bundle", "show"])).unwrap();
    let token = server
        .ok(&["token", "generate"])
        .trim()
        .strip_prefix("Token: ")
        .unwrap()
        .to_owned();
    let socket = dir.join("public").join("api.sock");
    let log = dir.join("agent.log");
    let child = Command::new(SIGIL)
        .args([
            "agent",
            "run",
            "--server-address",
            &format!("127.0.0.1:{port}"),
            "--join-token",
            &token,
        ])
        .arg("--trust-bundle")
        .arg(&bundle)
        .arg("--data-dir")
        .arg(dir.join("agent"))
        .arg("--socket-path")
        .arg(&socket)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Proc { child, log }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool, diag: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nginx, looked up in PATH and the sbin directories; `None` after SKIPPED unless CI is set.
fn nginx_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    let found = dirs
        .into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is not installed and CI is set (.ci/run installs it)"
        );
        eprintln!("SKIPPED: nginx is not installed; the Secret delivery test did not run");
    }
    found
}

/// The serial presented on `port` for `host`, as openssl prints it (`1001`).
fn served_serial(port: u16, host: &str, ca: &Path) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {host} -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ca.display()
        ))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    text.strip_prefix("serial=").map(str::to_owned)
}

/// nginx serving `<secret_dir>/tls.crt|tls.key` on 127.0.0.1:`port`, its prefix in `web`.
fn start_nginx(nginx: &Path, web: &Path, secret_dir: &Path, port: u16) -> Proc {
    std::fs::create_dir_all(web.join("tmp")).unwrap();
    let d = web.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/tmp;\n    proxy_temp_path {d}/tmp;\n    fastcgi_temp_path {d}/tmp;\n    uwsgi_temp_path {d}/tmp;\n    scgi_temp_path {d}/tmp;\n    server {{\n        listen 127.0.0.1:{port} ssl;\n        ssl_certificate {c};\n        ssl_certificate_key {k};\n        location / {{ return 200 \"ok\\n\"; }}\n    }}\n}}\n",
        c = secret_dir.join("tls.crt").display(),
        k = secret_dir.join("tls.key").display(),
    );
    std::fs::write(web.join("nginx.conf"), conf).unwrap();
    Proc {
        child: Command::new(nginx)
            .arg("-p")
            .arg(web)
            .arg("-c")
            .arg(web.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(web.join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
        log: web.join("error.log"),
    }
}

/// The reload command for nginx with its prefix in `web` (once nginx runs), recording every run.
fn nginx_reload(nginx: &Path, web: &Path, record: &Path) -> String {
    format!(
        "echo \"$SIGIL_CHANGED_SECRETS\" >> {r} && if [ -f {w}/nginx.pid ]; then {n} -p {w} -c {w}/nginx.conf -s reload; fi",
        r = record.display(),
        w = web.display(),
        n = nginx.display()
    )
}

/// HTTPS requests one after another (curl, a new connection each) until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
    thread: std::thread::JoinHandle<()>,
}

impl Load {
    fn start(port: u16, host: &str, ca: &Path) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let thread = {
            let (stop, ok, failed, ca) = (stop.clone(), ok.clone(), failed.clone(), ca.to_owned());
            let (url, resolve) = (
                format!("https://{host}:{port}/"),
                format!("{host}:{port}:127.0.0.1"),
            );
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let out = Command::new("curl")
                        .args(["-sS", "--max-time", "5", "--cacert"])
                        .arg(&ca)
                        .arg(&url)
                        .args(["--resolve", &resolve])
                        .output()
                        .unwrap();
                    if out.status.success() && out.stdout == b"ok\n" {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        eprintln!("request failed: {}", String::from_utf8_lossy(&out.stderr));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let load = Load {
            stop,
            ok,
            failed,
            thread,
        };
        load.wait_more(5);
        load
    }

    fn wait_more(&self, n: u32) {
        let seen = self.ok.load(Ordering::Relaxed);
        wait_for(
            "more successful requests",
            || self.ok.load(Ordering::Relaxed) >= seen + n,
            String::new,
        );
    }

    /// A few more requests, then stop; no request may have failed.
    fn finish(self) {
        self.wait_more(5);
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        assert_eq!(
            self.failed.load(Ordering::Relaxed),
            0,
            "no request may fail across the reload"
        );
    }
}

fn secret_yaml(
    name: &str,
    ns: &str,
    deliver_to: Option<&str>,
    leaf: &(PathBuf, PathBuf),
    ca: &Path,
) -> String {
    let ann = deliver_to
        .map(|d| format!("  annotations:\n    sigil.io/deliver-to: \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n{ann}type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n",
        b64(&leaf.0),
        b64(&leaf.1),
        b64(ca)
    )
}

fn example(rel: &str) -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "examples",
        "payments",
        rel,
    ]
    .iter()
    .collect()
}

#[test]
fn an_agent_writes_a_secret_as_files_and_nginx_reloads_without_a_failed_request() {
    let Some(nginx) = nginx_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = ServerProc::start_with(
        &dir.path().join("server"),
        None,
        &["--bind-port", &port.to_string()],
    );
    let ca = make_ca(dir.path(), "edge-ca");
    let leaf1 = make_leaf(dir.path(), &ca, "0x1001");
    let leaf2 = make_leaf(dir.path(), &ca, "0x1002");
    let files = dir.path().join("secrets");
    let web = dir.path().join("nginx");
    let reloads = dir.path().join("reloads.log");
    let reload = nginx_reload(&nginx, &web, &reloads);
    let agent = start_agent(
        dir.path(),
        &s,
        port,
        &[
            "--secret-dir",
            p(&files),
            "--secret",
            "edge/web-tls",
            "--secret-reload-command",
            &reload,
        ],
    );

    // Without the annotation the Secret stays on the server, and the agent says why.
    let yaml = dir.path().join("web-tls.yaml");
    std::fs::write(&yaml, secret_yaml("web-tls", "edge", None, &leaf1, &ca.0)).unwrap();
    s.ok(&["apply", "-f", p(&yaml)]);
    wait_for(
        "the agent to report the missing annotation",
        || agent.log_text().contains("sigil.io/deliver-to annotation"),
        || agent.log_text(),
    );
    assert!(!files.join("edge/web-tls/tls.key").exists());

    // Named for every agent: written, key 0600.
    std::fs::write(
        &yaml,
        secret_yaml("web-tls", "edge", Some("*"), &leaf1, &ca.0),
    )
    .unwrap();
    s.ok(&["apply", "-f", p(&yaml)]);
    let secret_dir = files.join("edge/web-tls");
    wait_for(
        "the Secret's files",
        || secret_dir.join("tls.key").exists(),
        || agent.log_text(),
    );
    assert_eq!(
        std::fs::read(secret_dir.join("tls.crt")).unwrap(),
        std::fs::read(&leaf1.0).unwrap()
    );
    assert_eq!(
        std::fs::read(secret_dir.join("tls.key")).unwrap(),
        std::fs::read(&leaf1.1).unwrap()
    );
    assert_eq!(
        std::fs::read(secret_dir.join("ca.crt")).unwrap(),
        std::fs::read(&ca.0).unwrap()
    );
    assert_eq!(
        std::fs::metadata(secret_dir.join("tls.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    wait_for(
        "the first reload",
        || std::fs::read_to_string(&reloads).is_ok_and(|r| r.contains("edge/web-tls")),
        || agent.log_text(),
    );

    // nginx serves the files.
    let https = free_port();
    let ngx = start_nginx(&nginx, &web, &secret_dir, https);
    wait_for(
        "nginx to serve serial 1001",
        || served_serial(https, "localhost", &ca.0).as_deref() == Some("1001"),
        || ngx.log_text(),
    );

    // Requests run throughout the change; none may fail.
    let load = Load::start(https, "localhost", &ca.0);
    std::fs::write(
        &yaml,
        secret_yaml("web-tls", "edge", Some("*"), &leaf2, &ca.0),
    )
    .unwrap();
    s.ok(&["apply", "-f", p(&yaml)]);
    wait_for(
        "nginx to serve serial 1002 after the reload",
        || served_serial(https, "localhost", &ca.0).as_deref() == Some("1002"),
        || format!("{}\n{}", agent.log_text(), ngx.log_text()),
    );
    load.finish();
    assert_eq!(
        std::fs::read(secret_dir.join("tls.key")).unwrap(),
        std::fs::read(&leaf2.1).unwrap()
    );
    let log = agent.log_text();
    assert!(log.contains("reload command succeeded"), "{log}");
    assert!(
        !log.contains(&pem_body_line(&leaf2.1)),
        "the agent log must not hold the key"
    );
    assert!(
        !s.log_text().contains(&pem_body_line(&leaf2.1)),
        "the server log must not hold the key"
    );
    drop(ngx);
}

/// The seed's `Certificate billing-service-cert`, issued by the seed's `ClusterIssuer internal-ca`
/// from a `ca-key-pair` Secret made with `sigil create secret tls`, reaches nginx through an
/// agent's files; `sigil cert renew` gives nginx the new certificate with no failed request.
#[test]
fn a_certificate_reaches_nginx_through_the_agent_and_a_forced_renewal_reloads_it() {
    let Some(nginx) = nginx_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = ServerProc::start_with(
        &dir.path().join("server"),
        None,
        &["--bind-port", &port.to_string()],
    );
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
    s.ok(&["apply", "-f", p(&example("mesh/base/cluster-issuer.yaml"))]);
    // The seed Certificate, with the annotation that lets agents write its Secret.
    let seed = std::fs::read_to_string(example("mesh/base/certificate.yaml")).unwrap();
    let with_template = seed.replace(
        "  secretName: billing-service-tls\n",
        "  secretName: billing-service-tls\n  secretTemplate:\n    annotations:\n      sigil.io/deliver-to: \"*\"\n",
    );
    assert_ne!(
        seed, with_template,
        "the seed Certificate names its secretName"
    );
    let cert_yaml = dir.path().join("certificate.yaml");
    std::fs::write(&cert_yaml, with_template).unwrap();
    s.ok(&["apply", "-f", p(&cert_yaml)]);
    wait_for(
        "the Certificate to be Ready",
        || {
            s.cli(&["cert", "status", "billing-service-cert", "-n", "payments"])
                .status
                .success()
        },
        || {
            String::from_utf8_lossy(
                &s.cli(&["cert", "status", "billing-service-cert", "-n", "payments"])
                    .stdout,
            )
            .into_owned()
        },
    );

    let files = dir.path().join("secrets");
    let web = dir.path().join("nginx");
    let reloads = dir.path().join("reloads.log");
    let reload = nginx_reload(&nginx, &web, &reloads);
    let agent = start_agent(
        dir.path(),
        &s,
        port,
        &[
            "--secret-dir",
            p(&files),
            "--secret",
            "payments/billing-service-tls",
            "--secret-reload-command",
            &reload,
        ],
    );
    let secret_dir = files.join("payments/billing-service-tls");
    wait_for(
        "the Secret's files",
        || secret_dir.join("tls.key").exists(),
        || agent.log_text(),
    );
    // The issued certificate: the seed's names, the root only in ca.crt.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(secret_dir.join("tls.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for name in [
        "DNS:billing-service.payments.svc.cluster.local",
        "DNS:billing-service.payments.svc",
        "URI:spiffe://cluster.local/ns/payments/sa/billing-service",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert_eq!(
        std::fs::read(secret_dir.join("ca.crt")).unwrap(),
        std::fs::read(&ca.0).unwrap()
    );
    let first = file_serial(&secret_dir.join("tls.crt"));

    let https = free_port();
    let host = "billing-service.payments.svc";
    let ngx = start_nginx(&nginx, &web, &secret_dir, https);
    wait_for(
        "nginx to serve the issued certificate",
        || served_serial(https, host, &ca.0).as_deref() == Some(first.as_str()),
        || ngx.log_text(),
    );
    let load = Load::start(https, host, &ca.0);
    let out = s.ok(&["cert", "renew", "billing-service-cert", "-n", "payments"]);
    assert!(out.contains("billing-service-cert"), "{out}");
    wait_for(
        "nginx to serve the renewed certificate",
        || {
            let served = served_serial(https, host, &ca.0);
            served.is_some() && served.as_deref() != Some(first.as_str())
        },
        || format!("{}\n{}", agent.log_text(), ngx.log_text()),
    );
    load.finish();
    let renewed = file_serial(&secret_dir.join("tls.crt"));
    assert_ne!(renewed, first);
    assert_eq!(
        served_serial(https, host, &ca.0).as_deref(),
        Some(renewed.as_str())
    );
    assert!(agent.log_text().contains("reload command succeeded"));
    drop(ngx);
}
