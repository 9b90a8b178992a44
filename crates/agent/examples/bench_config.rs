//! Benchmark: one configuration change delivered to many agents, against the real server.
//!
//! `cargo run --release -p sigil-agent --example bench_config [-- --agents 50 --changes 5]`
//!
//! A real server (SQLite datastore, its own tokio runtime with one worker) and `--agents` real
//! node agents (each attested with its own join token, each with its own Node API connection,
//! MeshConfig socket and data directory, all on a second runtime with one worker) run in this
//! process. One watcher per agent holds a `WatchConfig` stream on that agent's socket, exactly
//! what a proxy holds. Each change is an `apply` of an AuthorizationPolicy whose principal
//! differs from the previous one; the time counted is from the start of the `apply` call to the
//! moment the snapshot carrying the new revision, with the new principal in it, arrives on each
//! agent's stream: server store + push, agent persist + republish, proxy-facing stream.
//!
//! Prints one line per change (apply RPC, first agent, p50, p90, last agent) and a summary line
//! `config change to N agents: max X ms` that bench/run reads. Nothing is asserted on timings;
//! a snapshot with the wrong content, or one that does not arrive within 30 s, is an error.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use sigil_agent::config::{AgentConfig, FileConfig as AgentFile};
use sigil_proto::admin::{self as api, admin_client::AdminClient};
use sigil_proto::config::WatchConfigRequest;
use sigil_server::config::{FileConfig, ServerConfig};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use support::{arg, ms, pct};

fn policy(change: usize) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: billing-service-policy
  namespace: payments
spec:
  selector:
    matchLabels:
      app: billing-service
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - {}
",
        principal(change)
    )
}

fn principal(change: usize) -> String {
    format!("cluster.local/ns/payments/sa/checkout-{change}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_server(dir: &Path, port: u16) -> anyhow::Result<(sigil_server::Bound, PathBuf)> {
    let f = FileConfig {
        data_dir: Some(dir.to_owned()),
        bind_address: Some("127.0.0.1".parse()?),
        bind_port: Some(port),
        metrics_address: Some("off".into()),
        ..FileConfig::default()
    };
    let bound = sigil_server::build(ServerConfig::resolve(f)?).await?;
    let socket = bound.admin_socket.clone();
    Ok((bound, socket))
}

async fn bundle_file(admin: &mut AdminClient<Channel>, dir: &Path) -> anyhow::Result<PathBuf> {
    let b = admin
        .get_bundle(api::GetBundleRequest::default())
        .await?
        .into_inner();
    let certs: Vec<rustls_pki_types::CertificateDer<'_>> = b
        .x509_authorities
        .iter()
        .map(|c| c.as_slice().into())
        .collect();
    let p = dir.join("bundle.pem");
    std::fs::write(&p, sigil_spiffe::pem::encode_certificates(&certs))?;
    Ok(p)
}

async fn join_token(admin: &mut AdminClient<Channel>) -> anyhow::Result<String> {
    Ok(admin
        .generate_join_token(api::GenerateJoinTokenRequest {
            ttl: 600,
            spiffe_id: String::new(),
        })
        .await?
        .into_inner()
        .token)
}

async fn apply(admin: &mut AdminClient<Channel>, text: String) -> anyhow::Result<i64> {
    let r = admin
        .apply_config(api::ApplyConfigRequest {
            documents: vec![api::ConfigDocument {
                file_name: "bench.yaml".into(),
                text,
            }],
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(r.errors.is_empty(), "apply refused: {:?}", r.errors);
    Ok(r.revision)
}

/// What a watcher saw: agent index, revision, the principal the policy carries, when.
struct Seen {
    agent: usize,
    revision: i64,
    principal: Option<String>,
    at: Instant,
}

fn policy_principal(s: &sigil_proto::config::ConfigSnapshot) -> Option<String> {
    let r = s
        .resources
        .iter()
        .find(|r| r.kind == "AuthorizationPolicy")?;
    let v: serde_json::Value = serde_json::from_str(&r.json).ok()?;
    v["spec"]["rules"][0]["from"][0]["source"]["principals"][0]
        .as_str()
        .map(str::to_owned)
}

fn main() -> anyhow::Result<()> {
    let agents_n = arg("--agents", 50).max(1);
    let changes = arg("--changes", 5).max(1);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let agents_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-agents")
        .enable_all()
        .build()?;
    let watch_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let (server, admin_socket) =
        server_rt.block_on(start_server(&dir.path().join("server"), port))?;
    let mut admin = watch_rt.block_on(sigil_server::admin_client::connect(&admin_socket))?;
    let bundle = watch_rt.block_on(bundle_file(&mut admin, dir.path()))?;

    println!(
        "== config fan-out: {agents_n} agents, {changes} changes; machine: {cpus} CPUs; server: \
         SQLite, tokio multi-thread runtime (1 worker); agents: one tokio multi-thread runtime \
         (1 worker), one Node API connection each; watchers: current-thread runtime"
    );
    let started = Instant::now();
    let mut agents = Vec::with_capacity(agents_n);
    for i in 0..agents_n {
        let token = watch_rt.block_on(join_token(&mut admin))?;
        let a_dir = dir.path().join(format!("agent{i}"));
        let cfg = AgentConfig::resolve(AgentFile {
            server_address: Some(format!("127.0.0.1:{port}")),
            trust_bundle: Some(bundle.clone()),
            join_token: Some(token),
            data_dir: Some(a_dir.join("data")),
            socket_path: Some(a_dir.join("api.sock")),
            ..Default::default()
        })?;
        agents.push(
            agents_rt
                .block_on(sigil_agent::build(cfg))
                .with_context(|| format!("agent {i} did not start"))?,
        );
    }
    println!(
        "  {agents_n} agents attested and serving in {:.0} ms",
        ms(started.elapsed())
    );

    let result = watch_rt.block_on(async {
        // One watcher per agent, as a proxy would hold it.
        let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
        for (i, a) in agents.iter().enumerate() {
            let mut c = sigil_agent::client::connect_config(&a.socket_path).await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut s = loop {
                    // The agent answers Unavailable until it holds its first configuration.
                    match c
                        .watch_config(WatchConfigRequest { known_revision: 0 })
                        .await
                    {
                        Ok(s) => break s.into_inner(),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                while let Ok(Some(snap)) = s.message().await {
                    let seen = Seen {
                        agent: i,
                        revision: snap.revision,
                        principal: policy_principal(&snap),
                        at: Instant::now(),
                    };
                    if tx.send(seen).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);

        // Baseline: every agent holds change 0 before anything is timed.
        let base = apply(&mut admin, policy(0)).await?;
        collect(&mut rx, agents_n, base, &principal(0)).await?;

        println!(
            "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms from the start of apply)",
            "change", "apply", "first", "p50", "p90", "last"
        );
        let mut worst = Duration::ZERO;
        for c in 1..=changes {
            let t0 = Instant::now();
            let revision = apply(&mut admin, policy(c)).await?;
            let apply_done = t0.elapsed();
            let mut times: Vec<Duration> = collect(&mut rx, agents_n, revision, &principal(c))
                .await?
                .into_iter()
                .map(|at| at - t0)
                .collect();
            times.sort_unstable();
            let last = *times.last().unwrap_or(&Duration::ZERO);
            worst = worst.max(last);
            println!(
                "  {c:<10} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                ms(apply_done),
                ms(times[0]),
                ms(pct(&times, 50.0)),
                ms(pct(&times, 90.0)),
                ms(last)
            );
        }
        println!(
            "config change to {agents_n} agents: max {:.2} ms over {changes} changes",
            ms(worst)
        );
        anyhow::Ok(())
    });

    for a in agents {
        agents_rt.block_on(a.shutdown());
    }
    server_rt.block_on(server.shutdown());
    result
}

/// Waits until every agent's stream carried `revision` (or later); returns when each did.
/// A snapshot at that revision without `want` in the policy is an error.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    agents: usize,
    revision: i64,
    want: &str,
) -> anyhow::Result<Vec<Instant>> {
    let mut at: Vec<Option<Instant>> = vec![None; agents];
    let mut pending = agents;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pending > 0 {
        let seen = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| {
                anyhow!(
                    "{pending} of {agents} agents did not deliver revision {revision} within 30 s"
                )
            })?
            .ok_or_else(|| anyhow!("every watch stream ended"))?;
        if seen.revision < revision || at[seen.agent].is_some() {
            continue;
        }
        if seen.principal.as_deref() != Some(want) {
            bail!(
                "agent {} delivered revision {} with principal {:?}, expected {want}",
                seen.agent,
                seen.revision,
                seen.principal
            );
        }
        at[seen.agent] = Some(seen.at);
        pending -= 1;
    }
    Ok(at.into_iter().flatten().collect())
}
