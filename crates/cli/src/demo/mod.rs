//! `sigil demo`: the seed document's `payments` scenario end to end, with real processes and
//! real sockets, ending in a table of checks (exit 0 only when every check passes).
//!
//! - [`procs`]: the child processes (all registered, all reaped on every path, Ctrl-C too);
//! - [`mesh`]: the example YAML compiled in, the ports, the proxy configs from the templates;
//! - [`setup`]: server, agent, entries, apps and proxies, each a child `sigil` process;
//! - [`story`]: PERMISSIVE → STRICT → the three debugging errors → rotation → admin views;
//! - [`certificate`]: the cert-manager section (ClusterIssuer `internal-ca`, Certificate
//!   `billing-service-cert`) as one check;
//! - [`app`]: the demo app (`sigil demo app`, hidden) and the demo's HTTP client.

mod app;
mod certificate;
mod mesh;
mod procs;
mod setup;
mod story;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DemoArgs {
    #[command(subcommand)]
    sub: Option<DemoSub>,
    /// After the checks, leave the mesh running until Ctrl-C (then clean up).
    #[arg(long = "keep-running")]
    keep_running: bool,
    /// Write every address, socket and certificate path of the running mesh to FILE (JSON).
    #[arg(long = "endpoints-file")]
    endpoints_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DemoSub {
    /// The demo's payments app (run by `sigil demo`).
    #[command(hide = true)]
    App(app::AppArgs),
}

/// One row of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub check: String,
    pub expected: String,
    pub got: String,
    pub pass: bool,
}

/// The checks so far, printed as they complete and as a table at the end.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
    /// Every check of the story ran.
    pub finished: bool,
}

impl Table {
    pub fn add(&mut self, check: &str, expected: &str, got: String, pass: bool) {
        println!("  {}  {check}", if pass { "PASS" } else { "FAIL" });
        self.rows.push(Row {
            check: check.to_owned(),
            expected: expected.to_owned(),
            got: one_line(&got),
            pass,
        });
    }

    pub fn all_pass(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.pass)
    }

    pub fn render(&self) -> String {
        let head = ["CHECK", "EXPECTED", "GOT", "RESULT"];
        let cells: Vec<[String; 4]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.check.clone(),
                    r.expected.clone(),
                    r.got.clone(),
                    if r.pass { "PASS" } else { "FAIL" }.to_owned(),
                ]
            })
            .collect();
        let mut w = head.map(|h| h.chars().count());
        for c in &cells {
            for i in 0..4 {
                w[i] = w[i].max(c[i].chars().count());
            }
        }
        let line = |c: [&str; 4]| {
            format!(
                "{:<a$}  {:<b$}  {:<d$}  {}\n",
                c[0],
                c[1],
                c[2],
                c[3],
                a = w[0],
                b = w[1],
                d = w[2]
            )
        };
        let mut out = line(head);
        for c in &cells {
            out.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
        }
        out
    }
}

/// Long answers cut to one readable line for the table.
fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 90 {
        format!("{}…", s.chars().take(89).collect::<String>())
    } else {
        s
    }
}

pub async fn run(a: DemoArgs) -> Result<(), (u8, anyhow::Error)> {
    if let Some(DemoSub::App(app)) = a.sub {
        return tokio::task::spawn_blocking(move || app::serve(app))
            .await
            .map_err(|e| (1, e.into()))?
            .map_err(|e| (1, e));
    }
    let started = std::time::Instant::now();
    let dir = tempdir().map_err(|e| (1, e))?;
    let _dir_guard = DirGuard(dir.clone());
    let procs = Arc::new(procs::Procs::default());
    let mut table = Table::default();
    let mut wrote_endpoints = false;
    // The signal branch is polled first, so its handlers are installed before the demo
    // starts anything.
    let outcome = tokio::select! {
        biased;
        _ = crate::shutdown_signal() => None,
        r = demo(&a, &dir, &procs, &mut table, &mut wrote_endpoints) => Some(r),
    };
    let failed_logs = match &outcome {
        Some(Ok(())) if table.all_pass() => None,
        Some(_) => Some(procs.log_tails(8)),
        None => None,
    };
    procs.shutdown();
    let removed = std::fs::remove_dir_all(&dir);
    if let Some(p) = a.endpoints_file.as_ref().filter(|_| wrote_endpoints) {
        let _ = std::fs::remove_file(p);
    }
    match outcome {
        None if a.keep_running && table.finished && table.all_pass() => {
            println!("stopped: every process ended and {} removed", dir.display());
            Ok(())
        }
        None => {
            eprintln!(
                "interrupted: every process stopped and {} removed",
                dir.display()
            );
            Err((130, anyhow::anyhow!("interrupted")))
        }
        Some(Err(e)) => {
            eprintln!("{}", failed_logs.unwrap_or_default());
            Err((1, e.context("sigil demo could not complete")))
        }
        Some(Ok(())) => {
            println!("\n{}", table.render());
            let cleaned = match removed {
                Ok(()) => format!("every process stopped, {} removed", dir.display()),
                Err(e) => format!("could not remove {}: {e}", dir.display()),
            };
            let secs = started.elapsed().as_secs_f64();
            if table.all_pass() {
                println!(
                    "All {} checks passed in {secs:.1}s; {cleaned}.",
                    table.rows.len()
                );
                Ok(())
            } else {
                eprintln!("{}", failed_logs.unwrap_or_default());
                let n = table.rows.iter().filter(|r| !r.pass).count();
                println!(
                    "{n} of {} checks FAILED ({secs:.1}s); {cleaned}.",
                    table.rows.len()
                );
                Err((
                    crate::x509_cmd::EXIT_PROBLEM,
                    anyhow::anyhow!("{n} demo checks failed (see the table)"),
                ))
            }
        }
    }
}

/// A fresh directory, world-traversable (0755) so workloads under other uids reach the
/// agent's socket and their configs; nothing secret is readable by them (keys are 0600).
fn tempdir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let d = std::env::temp_dir().join(format!(
        "sigil-demo-{}-{}",
        std::process::id(),
        crate::now_unix()
    ));
    // A new directory only: an existing one (or a symlink planted there) is refused.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&d)
        .with_context(|| format!("cannot create {}", d.display()))?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    Ok(d.canonicalize()?)
}

/// Removes the demo's directory however `run` ends (a panic included).
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn demo(
    a: &DemoArgs,
    dir: &std::path::Path,
    procs: &Arc<procs::Procs>,
    table: &mut Table,
    wrote_endpoints: &mut bool,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the sigil binary")?;
    println!(
        "sigil demo: the payments scenario (examples/payments), in {}",
        dir.display()
    );
    let mesh = setup::Mesh::start(&exe, dir, procs).await?;
    if let Some(p) = &a.endpoints_file {
        *wrote_endpoints = true;
        mesh.write_endpoints(p)?;
        println!("endpoints: {}", p.display());
    }
    story::run(&mesh, table).await?;
    certificate::run(&mesh, table).await?;
    table.finished = true;
    if a.keep_running {
        println!("\n{}", table.render());
        println!(
            "The mesh keeps running (--keep-running){}; Ctrl-C stops it and removes {}.",
            a.endpoints_file
                .as_ref()
                .map(|p| format!(", endpoints in {}", p.display()))
                .unwrap_or_default(),
            dir.display()
        );
        std::future::pending::<()>().await;
    }
    Ok(())
}
