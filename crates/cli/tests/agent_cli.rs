//! The node agent as a new user meets it: real `sigil server run` and `sigil agent run`
//! processes, an entry for the current uid, `sigil agent api fetch`, another uid refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SIGIL, ServerProc};

fn uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct AgentProc {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(dir: &Path, server: &ServerProc, port: u16) -> AgentProc {
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
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let a = AgentProc { child, socket, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(SIGIL)
            .args(["agent", "healthcheck", "-socketPath"])
            .arg(&a.socket)
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "Agent is healthy."
            );
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "agent not healthy: {}",
            std::fs::read_to_string(&a.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fetch(socket: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(SIGIL)
        .args(["agent", "api", "fetch"])
        .args(extra)
        .arg("-socketPath")
        .arg(socket)
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn fetch_as_this_user_refuse_another_and_survive_the_server_stopping() {
    let dir = tempfile::tempdir().unwrap();
    // World-traversable, so that another uid can reach the socket (attestation decides).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let server = ServerProc::start_with(
        &dir.path().join("server"),
        None,
        &["--bind-port", &port.to_string()],
    );
    let agent = start_agent(dir.path(), &server, port);
    let agent_id = {
        let v: serde_json::Value =
            serde_json::from_str(&server.ok(&["agent", "list", "-output", "json"])).unwrap();
        v["agents"][0]["spiffe_id"].as_str().unwrap().to_owned()
    };
    let id = "spiffe://cluster.local/ns/payments/sa/billing-service";
    let sel = format!("unix:uid:{}", uid());
    server.ok(&[
        "entry",
        "create",
        "-spiffeID",
        id,
        "-parentID",
        &agent_id,
        "-selector",
        &sel,
    ]);

    let deadline = Instant::now() + Duration::from_secs(15);
    let out = loop {
        let out = fetch(&agent.socket, &["x509"]);
        if out.status.success() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no SVID: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("SPIFFE ID:\t\t{id}")), "{text}");

    // -write: the certificate, a 0600 key and the bundle, readable by openssl.
    let w = dir.path().join("written");
    assert!(
        fetch(&agent.socket, &["x509", "-write", w.to_str().unwrap()])
            .status
            .success()
    );
    let mode = std::fs::metadata(w.join("svid.0.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let v = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(w.join("bundle.0.pem"))
        .arg("-untrusted")
        .arg(w.join("svid.0.pem"))
        .arg(w.join("svid.0.pem"))
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );

    // A JWT-SVID for an audience.
    let jwt = fetch(
        &agent.socket,
        &["jwt", "-audience", "billing", "-output", "json"],
    );
    assert!(
        jwt.status.success(),
        "{}",
        String::from_utf8_lossy(&jwt.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&jwt.stdout).unwrap();
    assert_eq!(j["svids"][0]["spiffe_id"], id);
    assert_eq!(
        j["svids"][0]["svid"].as_str().unwrap().split('.').count(),
        3
    );

    // Another uid: PermissionDenied naming the selectors it was attested with.
    if uid() == 0 {
        let out = Command::new(SIGIL)
            .args(["agent", "api", "fetch", "x509", "-socketPath"])
            .arg(&agent.socket)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("permission denied") && err.contains("unix:uid:65534"),
            "{err}"
        );
    } else {
        eprintln!("SKIPPED (not root): fetching as another uid");
    }

    // The server stops; fetches go on from the agent's cache.
    server.stop();
    std::thread::sleep(Duration::from_millis(1500));
    let out = fetch(&agent.socket, &["x509"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(id));
}

#[test]
fn agent_without_a_way_to_attest_exits_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SIGIL)
        .args([
            "agent",
            "run",
            "--server-address",
            "127.0.0.1:1",
            "--data-dir",
        ])
        .arg(dir.path().join("agent"))
        .arg("--socket-path")
        .arg(dir.path().join("api.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--trust-bundle") || err.contains("--join-token"),
        "{err}"
    );
    let out = Command::new(SIGIL).args(["agent", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server-address"));
}

/// Two server replicas share PostgreSQL; the agent talks to replica B. Configuration applied
/// through replica A reaches the agent, and the agent serves it to proxies.
#[test]
fn configuration_applied_on_one_replica_reaches_agents_of_another() {
    let Some(db) = common::PgDb::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port_a = free_port().to_string();
    let port_b = free_port();
    let port_b_text = port_b.to_string();
    let a = ServerProc::start_with(
        &dir.path().join("a"),
        Some(&db.url),
        &["--bind-port", &port_a, "--server-id", "replica-a"],
    );
    let b = ServerProc::start_with(
        &dir.path().join("b"),
        Some(&db.url),
        &["--bind-port", &port_b_text, "--server-id", "replica-b"],
    );
    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    let agent = start_agent(&node, &b, port_b);
    let config = |fmt: &str| {
        Command::new(SIGIL)
            .args(["agent", "api", "fetch", "config", "-o", fmt, "-socketPath"])
            .arg(&agent.socket)
            .output()
            .unwrap()
    };

    let policy = dir.path().join("strict.yaml");
    std::fs::write(
        &policy,
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n",
    )
    .unwrap();
    let applied_at = Instant::now();
    let out = a.ok(&["apply", "-f", policy.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        "peerauthentication.security.istio.io/default created"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        let out = config("json");
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if let Some(o) = v["objects"].as_array().and_then(|o| o.first()) {
                break o.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agent behind replica B never got the configuration: {}",
            std::fs::read_to_string(&agent.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("apply on A → agent on B: {:?}", applied_at.elapsed());
    assert_eq!(seen["kind"], "PeerAuthentication");
    assert_eq!(seen["spec"]["mtls"]["mode"], "STRICT");
    assert_eq!(seen["metadata"]["generation"], 1);
    let text = String::from_utf8(config("pretty").stdout).unwrap();
    assert!(
        text.contains("PeerAuthentication payments/default (generation 1)"),
        "{text}"
    );
    drop(agent);
    a.stop();
    b.stop();
}
