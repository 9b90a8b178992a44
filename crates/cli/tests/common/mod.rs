//! Real-process harness: runs the `sigil` binary as a user would.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");

/// A `sigil server run` child process with its own data dir and admin socket.
pub struct ServerProc {
    pub child: Child,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub datastore: Option<String>,
    pub log: PathBuf,
}

impl ServerProc {
    pub fn start(data_dir: &Path, datastore: Option<&str>) -> ServerProc {
        Self::start_with(data_dir, datastore, &[])
    }

    pub fn start_with(data_dir: &Path, datastore: Option<&str>, extra: &[&str]) -> ServerProc {
        let socket = data_dir.join("admin.sock");
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.join(format!("server-{}.log", unique()));
        let child = spawn_server(data_dir, datastore, extra, &log);
        let mut s = ServerProc {
            child,
            data_dir: data_dir.to_owned(),
            socket,
            datastore: datastore.map(str::to_owned),
            log,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited early with {status}: {}", self.log_text());
            }
            let out = self.cli(&["server", "healthcheck"]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not healthy after 60s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `sigil ARGS -socketPath <socket>` (SPIRE's spelling, on purpose).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let sock = self.socket.to_str().unwrap().to_owned();
        all.push("-socketPath");
        all.push(&sock);
        Command::new(SIGIL).args(&all).output().unwrap()
    }

    /// Like [`cli`], asserting success and returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "sigil {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Graceful stop (SIGTERM), waiting for exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_server(data_dir: &Path, datastore: Option<&str>, extra: &[&str], log: &Path) -> Child {
    let socket = data_dir.join("admin.sock");
    let mut cmd = Command::new(SIGIL);
    cmd.args(["server", "run", "--data-dir"])
        .arg(data_dir)
        .arg("--socket-path")
        .arg(&socket)
        .args(["--bind-address", "127.0.0.1", "--metrics-address", "off"]);
    if !extra.contains(&"--bind-port") {
        cmd.args(["--bind-port", "0"]);
    }
    if let Some(ds) = datastore {
        cmd.args(["--datastore", ds]);
    }
    cmd.args(extra);
    let logf = std::fs::File::create(log).unwrap();
    cmd.stdout(Stdio::null()).stderr(logf).spawn().unwrap()
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh PostgreSQL database for one test, dropped at the end. `None` (with a loud message)
/// when PostgreSQL is unreachable outside CI; under `CI` it panics instead.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub fn create() -> Option<PgDb> {
        let name = format!("sigil_cli_{}", unique().replace('-', "_"));
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {name}"))
            .output();
        match out {
            Ok(o) if o.status.success() => Some(PgDb {
                url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
                name,
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "PostgreSQL at 127.0.0.1:5432 is required under CI: {why}"
                );
                eprintln!("SKIPPED: PostgreSQL not reachable at 127.0.0.1:5432 ({why})");
                None
            }
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}
