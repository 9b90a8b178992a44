//! `sigil-proxy`, the proxy-only binary for sidecar images: the flags and exit codes of
//! `sigil proxy run` (whose run loop it shares, tested end to end in the CLI's proxy tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sigil-proxy");

fn run(args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_exits_64_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "workload:\n  namespace: Payments\n").unwrap();
    let (code, err) = run(&[], &bad);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("bad.yaml") && err.contains("not a valid namespace"),
        "{err}"
    );

    let (code, err) = run(&[], &dir.path().join("missing.yaml"));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");

    let ok = dir.path().join("proxy.yaml");
    std::fs::write(
        &ok,
        "workload:\n  namespace: payments\nadmin: 127.0.0.1:0\nstats: 127.0.0.1:0\n",
    )
    .unwrap();
    let (code, err) = run(&[], &ok);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("workloadApi") && err.contains("SPIFFE_ENDPOINT_SOCKET"),
        "{err}"
    );

    let (code, err) = run(&["--worker-threads", "0"], &ok);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--worker-threads"), "{err}");
}

#[test]
fn help_lists_the_flags_of_sigil_proxy_run() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--workload-api",
        "--log-level",
        "--log-format",
        "--worker-threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
