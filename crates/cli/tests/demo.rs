//! `sigil demo` as README's first command runs it: the real binary starts a server, an agent,
//! three apps and their proxies as processes, walks through the seed document's story and
//! prints a table. Asserted: exit 0 with every row PASS (each check of the issue present), and
//! nothing left behind (every component's process gone, the temp dir and the endpoints file
//! removed), also when the run is interrupted with SIGINT half-way.
//!
//! Both runs need port 9090 (the example's health-port exception names it): they take turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");

static PORT_9090: Mutex<()> = Mutex::new(());

/// Every process id in the endpoints file (server, agent, apps, proxies).
fn pids(endpoints: &serde_json::Value) -> Vec<u64> {
    let mut v = vec![
        endpoints["server"]["pid"].as_u64().unwrap(),
        endpoints["agent"]["pid"].as_u64().unwrap(),
    ];
    for w in endpoints["workloads"].as_array().unwrap() {
        v.push(w["app_pid"].as_u64().unwrap());
        v.push(w["proxy"]["pid"].as_u64().unwrap());
    }
    v
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn assert_cleaned_up(pids: &[u64], dir: &Path, endpoints_file: &Path) {
    for p in pids {
        assert!(!alive(*p), "process {p} of the demo is still running");
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(
        !endpoints_file.exists(),
        "the endpoints file {} was not removed",
        endpoints_file.display()
    );
}

/// Polls for the endpoints file the demo writes once the mesh is up; it and the pids.
fn wait_endpoints(file: &Path, child: &mut std::process::Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
        {
            return v;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "sigil demo exited before writing {}",
            file.display()
        );
        assert!(Instant::now() < deadline, "no endpoints file after 120s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_passes_every_check_and_leaves_nothing_behind() {
    let _turn = PORT_9090.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("endpoints.json");
    let mut child = Command::new(SIGIL)
        .args(["demo", "--endpoints-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let endpoints = wait_endpoints(&file, &mut child);
    let all = pids(&endpoints);
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|p| alive(*p)));
    let dir = PathBuf::from(endpoints["dir"].as_str().unwrap());
    assert!(dir.join("bundle.pem").exists());
    for c in ["mesh_client", "foreign_client"] {
        let cert = endpoints["certs"][c]["cert"].as_str().unwrap();
        assert!(Path::new(cert).exists(), "{c}: {cert}");
    }
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    // The table: header, then one row per check, each PASS.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("CHECK "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        table[0].contains("EXPECTED") && table[0].ends_with("RESULT"),
        "{stdout}"
    );
    let rows = &table[1..];
    for r in rows {
        assert!(r.ends_with("  PASS"), "a failed row: {r}\n{stdout}");
    }
    for check in [
        "PERMISSIVE: checkout → billing over mTLS",
        "PERMISSIVE: plaintext client → billing",
        "strict-readiness names the plaintext client",
        "STRICT: checkout → billing POST /api/v1/charge",
        "STRICT: frontend → billing",
        "STRICT: plaintext client → billing",
        "STRICT: plaintext GET /healthz on :9090",
        "diagnose: client cert from a foreign CA",
        "diagnose: plaintext to STRICT :8080",
        "diagnose: TLS to plaintext port :9090",
        "rotation: SVID serials change",
        "rotation: requests during",
        "billing proxy /certs",
        "billing proxy /stats ssl.handshake",
        "cert-manager: billing-service-cert from ClusterIssuer internal-ca",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(check)),
            "no row {check:?} in:\n{stdout}"
        );
    }
    let xfcc = rows
        .iter()
        .find(|r| r.starts_with("STRICT: checkout"))
        .unwrap();
    assert!(
        xfcc.contains("200, XFCC URI=spiffe://cluster.local/ns/payments/sa/checkout-service"),
        "{xfcc}"
    );
    assert!(
        stdout.contains(&format!("All {} checks passed", rows.len())),
        "{stdout}"
    );
    eprintln!(
        "demo finished {:?} after its mesh was up",
        started.elapsed()
    );
    assert_cleaned_up(&all, &dir, &file);
}

#[test]
fn an_interrupted_demo_stops_every_process_and_removes_its_files() {
    let _turn = PORT_9090.lock().unwrap_or_else(|p| p.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("endpoints.json");
    let mut child = Command::new(SIGIL)
        .args(["demo", "--endpoints-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let endpoints = wait_endpoints(&file, &mut child);
    let all = pids(&endpoints);
    let dir = PathBuf::from(endpoints["dir"].as_str().unwrap());
    // Mid-way: the mesh is up and the checks are running.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the demo ended too early"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "sigil demo ignored SIGINT for 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: every process stopped"),
        "{stderr}"
    );
    assert_cleaned_up(&all, &dir, &file);
}
