//! Revocation with real processes and real relying parties: `sigil server run` with an
//! upstream CA, its CRL directory and HTTP endpoint; SVIDs minted with `sigil x509 mint`; one
//! revoked with `sigil x509 revoke`; then
//! - `openssl crl -verify` accepts every CRL the server wrote (signed by its CA) and the
//!   revoked serial is listed with its reason; the HTTP endpoint serves the same bytes; the
//!   SVIDs point to it (CRL distribution point);
//! - nginx (`ssl_crl`) and HAProxy (`crl-file`) using the server's `all.pem` reject the revoked
//!   client certificate and accept the unrevoked one (curl as the client).
//!
//! A missing nginx or haproxy is reported as SKIPPED, and fails the test when `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProc;

fn find(bin: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(bin)).find(|p| p.is_file())
}

/// The binary, or `None` after a loud SKIPPED (a panic when `CI` is set).
fn require(bin: &str) -> Option<PathBuf> {
    let found = find(bin);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{bin}` is not installed and CI is set"
        );
        eprintln!("SKIPPED: `{bin}` is not installed; this revocation test did not run");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// An upstream CA in cert-manager's `ca` issuer shape, made by openssl (key 0600).
fn openssl_upstream(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let (ok, text) = run(Command::new("openssl")
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
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    assert!(ok, "{text}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (crt, key)
}

/// `sigil x509 mint` into `<dir>/<name>/`; returns the directory and the serial (lowercase,
/// no leading zeros).
fn mint(s: &ServerProc, dir: &Path, name: &str, dns: Option<&str>) -> (PathBuf, String) {
    let out = dir.join(name);
    let id = format!("spiffe://cluster.local/ns/edge/sa/{name}");
    let mut args = vec![
        "x509",
        "mint",
        "--spiffe-id",
        &id,
        "--ttl",
        "10m",
        "--out-dir",
    ];
    let out_s = out.to_str().unwrap().to_owned();
    args.push(&out_s);
    if let Some(d) = dns {
        args.extend(["--dns", d]);
    }
    s.ok(&args);
    let (ok, text) = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(out.join("svid.pem")));
    assert!(ok, "{text}");
    let serial = text
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_owned();
    // haproxy's crt: certificate chain then key.
    let full = format!(
        "{}{}",
        std::fs::read_to_string(out.join("svid.pem")).unwrap(),
        std::fs::read_to_string(out.join("svid.key")).unwrap()
    );
    std::fs::write(out.join("full.pem"), full).unwrap();
    (out, serial)
}

/// Every CRL of `all.pem`, as `openssl crl -text` prints it (for failure messages).
fn all_pem_text(dir: &Path) -> String {
    let all = std::fs::read_to_string(dir.join("all.pem")).unwrap_or_default();
    let mut out = String::new();
    for (i, block) in all.split_inclusive("-----END X509 CRL-----\n").enumerate() {
        let f = dir.join(format!("block-{i}.txt"));
        std::fs::write(&f, block).unwrap();
        out.push_str(
            &run(Command::new("openssl")
                .args(["crl", "-noout", "-text", "-in"])
                .arg(&f))
            .1,
        );
    }
    out
}

/// `sigil x509 inspect -o json` of a file.
fn common_inspect(file: &Path) -> serde_json::Value {
    let o = Command::new(common::SIGIL)
        .args(["x509", "inspect", "--no-svid", "-o", "json"])
        .arg(file)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A relying party process, killed on drop.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn start(name: &str, cmd: &mut Command, dir: &Path, port: u16) -> Peer {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        let mut p = Peer { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("{name} exited ({st}):\n{}", p.output());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen:\n{}",
                p.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl with a client certificate: the HTTP status, or None when the TLS handshake failed.
fn curl(port: u16, bundle: &Path, client: &Path) -> (Option<u16>, String) {
    let (ok, text) = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(bundle)
        .arg("--cert")
        .arg(client.join("svid.pem"))
        .arg("--key")
        .arg(client.join("svid.key"))
        .arg(format!("https://localhost:{port}/")));
    let code = text
        .get(..3)
        .and_then(|c| c.parse().ok())
        .filter(|c| *c != 0);
    (if ok { code } else { code.filter(|_| false) }, text)
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    server: ServerProc,
    crl_dir: PathBuf,
    crl_port: u16,
    good: PathBuf,
    bad: PathBuf,
    bad_serial: String,
    web: PathBuf,
}

/// A server with CRLs (under an upstream CA, or self-signed), three SVIDs, one of them
/// revoked.
fn setup(upstream: bool) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let (crt, key) = openssl_upstream(&dir);
    let crl_dir = dir.join("crl");
    let crl_port = free_port();
    let listen = format!("127.0.0.1:{crl_port}");
    let url = format!("http://127.0.0.1:{crl_port}");
    let mut args = vec![
        "--crl-dir".to_owned(),
        crl_dir.to_str().unwrap().to_owned(),
        "--crl-listen".to_owned(),
        listen,
        "--crl-url".to_owned(),
        url,
    ];
    if upstream {
        args.extend([
            "--upstream-ca-cert".to_owned(),
            crt.to_str().unwrap().to_owned(),
            "--upstream-ca-key".to_owned(),
            key.to_str().unwrap().to_owned(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProc::start_with(&dir.join("server"), None, &args);
    // Signing CA and upstream; or intermediate and its self-signed root.
    let cas = 2;
    let (good, _) = mint(&server, &dir, "good", None);
    let (bad, bad_serial) = mint(&server, &dir, "bad", None);
    let (web, _) = mint(&server, &dir, "web", Some("localhost"));
    let out = server.ok(&[
        "x509",
        "revoke",
        "--serial",
        &bad_serial,
        "--reason",
        "keyCompromise",
    ]);
    assert!(
        out.contains("Revoked") && out.contains("keyCompromise"),
        "{out}"
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("certificate revoked") && l.contains(&bad_serial)),
        "{log}"
    );
    // The CRL directory lists the serial: it is re-signed on the revocation (the bound is
    // generous for a loaded CI machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // `openssl crl` reads one CRL per file: look at each CA's.
        // `all.pem` (what nginx and HAProxy read) is written last: it must hold these.
        let all = std::fs::read_to_string(crl_dir.join("all.pem")).unwrap_or_default();
        let mut text = String::new();
        let mut in_all = 0;
        for e in std::fs::read_dir(&crl_dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pem") && !p.ends_with("all.pem") {
                let pem = std::fs::read_to_string(&p).unwrap_or_default();
                if !pem.is_empty() && all.contains(&pem) {
                    in_all += 1;
                }
                text.push_str(
                    &run(Command::new("openssl")
                        .args(["crl", "-noout", "-text", "-in"])
                        .arg(&p))
                    .1,
                );
            }
        }
        if text
            .to_ascii_lowercase()
            .replace(':', "")
            .contains(&bad_serial)
            && in_all == cas
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "all.pem does not list {bad_serial}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Setup {
        _dir: tmp,
        dir,
        server,
        crl_dir,
        crl_port,
        good,
        bad,
        bad_serial,
        web,
    }
}

#[test]
fn the_server_publishes_signed_crls_that_openssl_verifies() {
    let s = setup(true);
    // Every certificate the CRLs can be signed by: the upstream root and the intermediate.
    let cas = s.dir.join("cas.pem");
    std::fs::write(
        &cas,
        format!(
            "{}{}",
            std::fs::read_to_string(s.good.join("svid.pem")).unwrap(),
            std::fs::read_to_string(s.good.join("bundle.pem")).unwrap()
        ),
    )
    .unwrap();
    let mut ders = Vec::new();
    for e in std::fs::read_dir(&s.crl_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "crl") {
            ders.push(p);
        }
    }
    assert_eq!(
        ders.len(),
        2,
        "one CRL per CA (intermediate, upstream): {ders:?}"
    );
    let mut listed = 0;
    for der in &ders {
        let (ok, text) = run(Command::new("openssl")
            .args([
                "crl", "-inform", "DER", "-noout", "-text", "-verify", "-CAfile",
            ])
            .arg(&cas)
            .arg("-in")
            .arg(der));
        assert!(
            ok && text.contains("verify OK"),
            "{}: {text}",
            der.display()
        );
        assert!(text.contains("Version 2"), "{text}");
        assert!(text.contains("X509v3 CRL Number"), "{text}");
        assert!(text.contains("Next Update"), "{text}");
        if text
            .to_ascii_lowercase()
            .replace(':', "")
            .contains(&s.bad_serial)
        {
            listed += 1;
            assert!(text.contains("Key Compromise"), "{text}");
        }
        // The PEM twin and the HTTP endpoint serve the same CRL.
        let id = der.file_stem().unwrap().to_str().unwrap();
        let (ok, body) = run(Command::new("curl")
            .args(["-sS", "--max-time", "5", "-o"])
            .arg(s.dir.join("fetched.crl"))
            .arg(format!("http://127.0.0.1:{}/crl/{id}.crl", s.crl_port)));
        assert!(ok, "{body}");
        assert_eq!(
            std::fs::read(s.dir.join("fetched.crl")).unwrap(),
            std::fs::read(der).unwrap()
        );
        let pem = std::fs::read_to_string(s.crl_dir.join(format!("{id}.pem"))).unwrap();
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
    }
    assert_eq!(listed, 1, "only the intermediate's CRL lists the SVID");

    // The SVIDs point to their issuer's CRL.
    let (ok, text) = run(Command::new("openssl")
        .args(["x509", "-noout", "-ext", "crlDistributionPoints", "-in"])
        .arg(s.good.join("svid.pem")));
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("URI:http://127.0.0.1:{}/crl/", s.crl_port)),
        "{text}"
    );

    // The CLI lists it; bad input is a usage error or the server's plain refusal.
    let list = s.server.ok(&["x509", "revocations"]);
    assert!(
        list.contains(&s.bad_serial) && list.contains("keyCompromise"),
        "{list}"
    );
    assert!(list.contains("CRL: http://127.0.0.1:"), "{list}");
    let o = s
        .server
        .cli(&["x509", "revoke", "--serial", "ab", "--entry", "x"]);
    assert_eq!(o.status.code(), Some(64), "usage error");
    let o = s
        .server
        .cli(&["x509", "revoke", "--serial", "ab", "--reason", "stolen"]);
    assert_eq!(o.status.code(), Some(64));
    // This replica's intermediate (under the upstream CA) can be revoked too: the upstream
    // CA's CRL lists it.
    let o = common_inspect(&s.good.join("svid.pem"));
    let inter = o["certificates"][1]["serial"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    let inter = inter.replace(':', "");
    let inter = inter.trim_start_matches('0').to_owned();
    let out = s.server.ok(&[
        "x509",
        "revoke",
        "--serial",
        &inter,
        "--reason",
        "cACompromise",
    ]);
    assert!(out.contains("spiffe://cluster.local "), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = ders.iter().any(|der| {
            let (_, text) = run(Command::new("openssl")
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(der));
            text.contains("CA Compromise")
                && text.to_ascii_lowercase().replace(':', "").contains(&inter)
                && !text.contains("Key Compromise")
        });
        if listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CRL lists the intermediate {inter}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let o = s.server.cli(&["x509", "revoke", "--serial", "abcdef"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("issued-certificates log"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn nginx_ssl_crl_rejects_the_revoked_client_and_accepts_the_other() {
    // nginx checks the whole chain (X509_V_FLAG_CRL_CHECK_ALL): it needs a CRL from the root
    // too, signed by the upstream CA's key, or in self-signed mode kept from the moment the
    // root was created.
    for upstream in [true, false] {
        nginx_case(upstream);
    }
}

fn nginx_case(upstream: bool) {
    let Some(bin) = require("nginx") else { return };
    let s = setup(upstream);
    let port = free_port();
    let d = s.dir.join("nginx");
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let dd = d.display();
    let conf = format!(
        "worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dd}/tmp;
    proxy_temp_path {dd}/tmp;
    fastcgi_temp_path {dd}/tmp;
    uwsgi_temp_path {dd}/tmp;
    scgi_temp_path {dd}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {web}/full.pem;
        ssl_certificate_key {web}/svid.key;
        ssl_client_certificate {web}/bundle.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;
        ssl_crl {crl};
        location / {{ return 200 \"ok\"; }}
    }}
}}
",
        web = s.web.display(),
        crl = s.crl_dir.join("all.pem").display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let nginx = Peer::start(
        "nginx",
        Command::new(bin)
            .args(["-e", "stderr", "-p"])
            .arg(&d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-g")
            .arg(format!(
                "daemon off; pid {dd}/nginx.pid; error_log stderr info;"
            )),
        &d,
        port,
    );
    let bundle = s.web.join("bundle.pem");
    // What nginx will decide, asked of OpenSSL directly with the same files.
    let verify = |client: &Path| {
        run(Command::new("openssl")
            .args(["verify", "-crl_check_all", "-CRLfile"])
            .arg(s.crl_dir.join("all.pem"))
            .arg("-CAfile")
            .arg(&bundle)
            .arg("-untrusted")
            .arg(client.join("svid.pem"))
            .arg(client.join("svid.pem")))
    };
    let (ok, text) = verify(&s.good);
    assert!(ok, "openssl verify of the unrevoked client: {text}");
    let (ok, text) = verify(&s.bad);
    assert!(
        !ok && text.contains("certificate revoked"),
        "openssl verify of the revoked client: {text}\n{}",
        all_pem_text(&s.crl_dir)
    );
    let (code, text) = curl(port, &bundle, &s.good);
    assert_eq!(
        code,
        Some(200),
        "unrevoked client: {text}\n{}",
        nginx.output()
    );
    let (code, text) = curl(port, &bundle, &s.bad);
    assert_eq!(
        code,
        Some(400),
        "revoked client {} (upstream CA: {upstream}): {text}\n{}\n{}",
        s.bad_serial,
        nginx.output(),
        all_pem_text(&s.crl_dir)
    );
    let log = nginx.output();
    assert!(log.contains("certificate revoked"), "{log}");
}

#[test]
fn haproxy_crl_file_rejects_the_revoked_client_and_accepts_the_other() {
    let Some(bin) = require("haproxy") else {
        return;
    };
    let s = setup(true);
    let port = free_port();
    let d = s.dir.join("haproxy");
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global
    log stderr format raw local0 info
defaults
    log global
    mode http
    option httplog
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{port} ssl crt {web}/full.pem ca-file {web}/bundle.pem verify required crl-file {crl}
    http-request return status 200 content-type text/plain string ok
",
            web = s.web.display(),
            crl = s.crl_dir.join("all.pem").display()
        ),
    )
    .unwrap();
    let haproxy = Peer::start(
        "haproxy",
        Command::new(bin).arg("-f").arg(&cfg).arg("-db"),
        &d,
        port,
    );
    let bundle = s.web.join("bundle.pem");
    let (code, text) = curl(port, &bundle, &s.good);
    assert_eq!(
        code,
        Some(200),
        "unrevoked client: {text}\n{}",
        haproxy.output()
    );
    let (code, text) = curl(port, &bundle, &s.bad);
    assert_eq!(
        code,
        None,
        "revoked client must fail the handshake: {text}\n{}",
        haproxy.output()
    );
    assert!(
        text.contains("revoked") || text.contains("alert"),
        "curl should report the TLS alert: {text}"
    );
}
