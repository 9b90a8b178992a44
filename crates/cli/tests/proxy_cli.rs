//! `sigil proxy run` as a real process: bad config exits 64; without an agent it keeps
//! running and says why it is not ready; SIGTERM stops it cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::SIGIL;

/// Kills the child if the test panics first.
struct Proxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Proxy {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_to_end(config: &Path) -> std::process::Output {
    let mut child = Command::new(SIGIL)
        .args(["proxy", "run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sigil proxy run with {} did not exit", config.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_bad_config_exits_64_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "workload:\n  namespace: Payments\n").unwrap();
    let out = run_to_end(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("not a valid namespace"), "{err}");

    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(&unknown, "workload:\n  namespace: payments\nadmn: 1\n").unwrap();
    let out = run_to_end(&unknown);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("unknown.yaml") && err.contains("admn"),
        "{err}"
    );

    let missing = dir.path().join("missing.yaml");
    let out = run_to_end(&missing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn without_a_workload_api_socket_setting_it_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(
        &cfg,
        "workload:\n  namespace: payments\nadmin: 127.0.0.1:0\nstats: 127.0.0.1:0\n",
    )
    .unwrap();
    let out = Command::new(SIGIL)
        .args(["proxy", "run", "--config"])
        .arg(&cfg)
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("workloadApi") && err.contains("SPIFFE_ENDPOINT_SOCKET"),
        "{err}"
    );
}

#[test]
fn worker_threads_must_be_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(&cfg, "workload:\n  namespace: payments\n").unwrap();
    let out = Command::new(SIGIL)
        .args(["proxy", "run", "--worker-threads", "0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("--worker-threads"), "{err}");
}

/// The address in the first log line containing `marker` (`... marker addr=HOST:PORT`).
fn logged_addr(p: &mut Proxy, marker: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!("proxy exited early with {status}: {}", p.log_text());
        }
        let text = p.log_text();
        if let Some(line) = text.lines().find(|l| l.contains(marker))
            && let Some(rest) = line.split("addr=").nth(1)
        {
            let addr = rest.split_whitespace().next().unwrap();
            return addr.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in the log: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-shot HTTP/1.1 GET with bounded waits: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

#[test]
fn without_an_agent_it_runs_not_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent").join("api.sock");
    let cfg = dir.path().join("proxy.yaml");
    std::fs::write(
        &cfg,
        format!(
            "workload:\n  name: billing-service\n  namespace: payments\n  labels: {{app: billing-service}}\nworkloadApi: unix://{}\noutbound:\n  - listen: 127.0.0.1:0\n    host: ledger.payments.svc.cluster.local\n    port: 8080\nadmin: 127.0.0.1:0\nstats: 127.0.0.1:0\naccessLog: off\nlimits:\n  drainTimeout: 1s\n",
            socket.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("proxy.log");
    let child = Command::new(SIGIL)
        .args([
            "proxy",
            "run",
            "--worker-threads",
            "1",
            "--log-level",
            "info",
        ])
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proxy { child, log };
    let admin = logged_addr(&mut p, "admin endpoint listening");
    let stats = logged_addr(&mut p, "stats endpoint listening");

    let (status, body) = http_get(admin, "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no workload identity"), "{body}");
    assert!(body.contains(socket.to_str().unwrap()), "{body}");
    let (status, body) = http_get(stats, "/stats");
    assert_eq!(status, 200);
    assert!(body.contains("ssl.handshake"), "{body}");

    // /logging works through the CLI's reload layer.
    let (status, body) = http_get(admin, "/logging?level=debug");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("debug"), "{body}");

    // Still running after retrying the missing socket for a while.
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.child.try_wait().unwrap().is_none(), "{}", p.log_text());

    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM: {}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", p.log_text());
    let text = p.log_text();
    assert!(text.contains("Workload API unavailable"), "{text}");
}
