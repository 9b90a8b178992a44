//! `sigil`: one binary for the server, the node agent, the proxy and the operator commands.

mod admin;
mod agent_cmd;
mod analyze_cmd;
mod authz_cmd;
mod cert_cmd;
mod config_cmd;
mod config_table;
mod create_cmd;
mod demo;
mod describe_cmd;
mod diagnose;
mod entry;
mod entry_explain;
mod live;
mod ops;
mod output;
mod proxy_cmd;
mod revoke_cmd;
mod spire_flags;
mod status_cmd;
mod x509_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sigil_proxy::cli::shutdown_signal;

/// Exit code for bad configuration or usage (sysexits EX_USAGE), as linkerd does.
pub const EXIT_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "sigil",
    version,
    about = "Zero-trust workload identity and mTLS mesh"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The control-plane server.
    #[command(subcommand)]
    Server(ServerCmd),
    /// Registration entries.
    #[command(subcommand)]
    Entry(entry::EntryCmd),
    /// Join tokens for agent attestation.
    #[command(subcommand)]
    Token(ops::TokenCmd),
    /// The node agent, and the attested agents known to the server.
    #[command(subcommand)]
    Agent(ops::AgentCmd),
    /// The trust bundle.
    #[command(subcommand)]
    Bundle(ops::BundleCmd),
    /// Applies Istio and cert-manager YAML (all or nothing) and delivers it to every agent.
    Apply(config_cmd::ApplyArgs),
    /// Lists or shows mesh configuration: sigil get KIND [NAME] [-n NS|-A] [-o yaml|json|wide|name].
    Get(config_cmd::GetArgs),
    /// Deletes mesh configuration: sigil delete -f FILE, or sigil delete KIND NAME -n NS.
    Delete(config_cmd::DeleteArgs),
    /// Creates an object from local files: sigil create secret tls NAME --cert F --key F -n NS.
    #[command(subcommand)]
    Create(create_cmd::CreateCmd),
    /// The mTLS proxy beside a workload.
    #[command(subcommand)]
    Proxy(proxy_cmd::ProxyCmd),
    /// Per workload and port, whether switching to STRICT mTLS would break a plaintext caller
    /// (from the proxies' counters over a window).
    StrictReadiness(status_cmd::ReadinessArgs),
    /// Explains a workload: identity, entry, SVID, mTLS per port, DestinationRules and the
    /// AuthorizationPolicies that apply, with warnings.
    #[command(subcommand)]
    Describe(describe_cmd::DescribeCmd),
    /// Authorization: evaluate a request against the live policy.
    #[command(subcommand)]
    Authz(authz_cmd::AuthzCmd),
    /// Finds configuration that is valid but will not do what was meant (like istioctl analyze).
    Analyze(analyze_cmd::AnalyzeArgs),
    /// Explains why a connection fails: sigil diagnose tls HOST:PORT.
    #[command(subcommand)]
    Diagnose(diagnose::DiagnoseCmd),
    /// Certificates: inspect, verify against a bundle, mint an X.509-SVID.
    #[command(subcommand)]
    X509(x509_cmd::X509Cmd),
    /// cert-manager Certificates: status (like cmctl status), renew (like cmctl renew).
    #[command(subcommand)]
    Cert(cert_cmd::CertCmd),
    /// Runs the payments example (examples/payments) end to end: server, agent, three apps and
    /// their proxies as real processes, then a table of checks; exit 0 when all pass.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum ServerCmd {
    /// Runs the server.
    Run(ServerRunArgs),
    /// Checks that a running server is live and ready (exit 0) or not (exit 1).
    Healthcheck(entry::SocketArg),
}

#[derive(Debug, clap::Args)]
struct ServerRunArgs {
    /// YAML file with the same settings as the flags (flags win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Trust domain (default cluster.local).
    #[arg(long = "trust-domain", alias = "trustDomain")]
    trust_domain: Option<String>,
    /// Directory for the SQLite datastore, CA keys and the admin socket.
    #[arg(long = "data-dir", alias = "dataDir")]
    data_dir: Option<PathBuf>,
    /// `postgres://user@host:port/db` for PostgreSQL; default an SQLite file in the data dir.
    #[arg(long)]
    datastore: Option<String>,
    /// Address of the node API (default 0.0.0.0).
    #[arg(long = "bind-address", alias = "bindAddress")]
    bind_address: Option<std::net::IpAddr>,
    /// Port of the node API (default 8081).
    #[arg(long = "bind-port", alias = "serverPort")]
    bind_port: Option<u16>,
    /// Admin socket (default <data-dir>/admin.sock, mode 0600).
    #[arg(long = "socket-path", alias = "socketPath")]
    socket_path: Option<PathBuf>,
    /// Prometheus metrics address (default 127.0.0.1:9988; "off" disables).
    #[arg(long = "metrics-address")]
    metrics_address: Option<String>,
    /// CA key type: ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
    #[arg(long = "ca-key-type")]
    ca_key_type: Option<String>,
    /// CA lifetime (default 24h).
    #[arg(long = "ca-ttl")]
    ca_ttl: Option<String>,
    /// Default X.509-SVID lifetime (default 1h).
    #[arg(long = "default-x509-svid-ttl")]
    default_x509_svid_ttl: Option<String>,
    /// Default JWT-SVID lifetime (default 5m).
    #[arg(long = "default-jwt-svid-ttl")]
    default_jwt_svid_ttl: Option<String>,
    /// Agent SVID lifetime (default 1h).
    #[arg(long = "agent-svid-ttl")]
    agent_svid_ttl: Option<String>,
    /// Upstream CA certificate (cert-manager `tls.crt` shape); needs --upstream-ca-key.
    #[arg(long = "upstream-ca-cert")]
    upstream_ca_cert: Option<PathBuf>,
    /// Upstream CA private key (`tls.key`).
    #[arg(long = "upstream-ca-key")]
    upstream_ca_key: Option<PathBuf>,
    /// PEM bundle of CAs whose certificates agents may attest with (x509pop).
    #[arg(long = "x509pop-ca-bundle")]
    x509pop_ca_bundle: Option<PathBuf>,
    /// Stable name of this server replica (default: generated once and kept in the data dir).
    #[arg(long = "server-id")]
    server_id: Option<String>,
    /// Namespace whose Secrets ClusterIssuers use (default cert-manager).
    #[arg(long = "cluster-resource-namespace")]
    cluster_resource_namespace: Option<String>,
    /// Serve the CRLs over plain HTTP on HOST:PORT (`GET /crl/<ca>.crl`, `.pem`,
    /// `/crl/all.pem`); off by default. Keep it on 127.0.0.1 unless peers fetch it.
    #[arg(long = "crl-listen")]
    crl_listen: Option<String>,
    /// Directory the CRLs are written to, DER and PEM (default <data-dir>/crl).
    #[arg(long = "crl-dir")]
    crl_dir: Option<PathBuf>,
    /// Base URL put in issued certificates' CRL distribution point (<url>/crl/<ca>.crl);
    /// none unless given.
    #[arg(long = "crl-url")]
    crl_url: Option<String>,
    /// Lifetime of each CRL (nextUpdate; re-signed at half of it; default 1h).
    #[arg(long = "crl-validity")]
    crl_validity: Option<String>,
    /// Log filter (error, warn, info, debug, trace or a tracing directive).
    #[arg(long = "log-level", default_value = "info")]
    log_level: String,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text")]
    log_format: String,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats unix seconds as RFC 3339 UTC.
pub fn fmt_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

fn init_logs(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("--log-level {level:?}: {e}"))?;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => b.json().init(),
        "text" => b.init(),
        f => anyhow::bail!("--log-format {f:?}: use text or json"),
    }
    Ok(())
}

async fn server_run(a: ServerRunArgs) -> Result<(), (u8, anyhow::Error)> {
    use sigil_server::config::{FileConfig, ServerConfig};
    let cfg_err = |e: anyhow::Error| (EXIT_CONFIG, e);
    init_logs(&a.log_level, &a.log_format).map_err(cfg_err)?;
    let file = match &a.config {
        Some(p) => FileConfig::load(p).map_err(|e| cfg_err(e.into()))?,
        None => FileConfig::default(),
    };
    let flags = FileConfig {
        trust_domain: a.trust_domain,
        data_dir: a.data_dir,
        datastore: a.datastore,
        bind_address: a.bind_address,
        bind_port: a.bind_port,
        socket_path: a.socket_path,
        metrics_address: a.metrics_address,
        ca_key_type: a.ca_key_type,
        ca_ttl: a.ca_ttl,
        default_x509_svid_ttl: a.default_x509_svid_ttl,
        default_jwt_svid_ttl: a.default_jwt_svid_ttl,
        agent_svid_ttl: a.agent_svid_ttl,
        upstream_ca_cert: a.upstream_ca_cert,
        upstream_ca_key: a.upstream_ca_key,
        x509pop_ca_bundle: a.x509pop_ca_bundle,
        server_id: a.server_id,
        cluster_resource_namespace: a.cluster_resource_namespace,
        crl_listen: a.crl_listen,
        crl_dir: a.crl_dir,
        crl_url: a.crl_url,
        crl_validity: a.crl_validity,
    };
    let cfg = ServerConfig::resolve(file.merge(flags)).map_err(|e| cfg_err(e.into()))?;
    let mut bound = sigil_server::build(cfg).await.map_err(|e| (1, e))?;
    let failed = tokio::select! {
        r = bound.wait() => Some(r),
        _ = shutdown_signal() => None,
    };
    match failed {
        Some(r) => r.map_err(|e| (1, e)),
        None => {
            tracing::info!("shutting down");
            bound.shutdown().await;
            Ok(())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), (u8, anyhow::Error)> {
    let op = |r: anyhow::Result<()>| r.map_err(|e| (1, e));
    match cli.cmd {
        Cmd::Server(ServerCmd::Run(a)) => server_run(a).await,
        Cmd::Server(ServerCmd::Healthcheck(s)) => op(ops::healthcheck(&s.socket_path).await),
        Cmd::Entry(entry::EntryCmd::Explain(a)) => entry_explain::run(a).await,
        Cmd::Entry(c) => op(entry::run(c).await),
        Cmd::Token(c) => op(ops::token(c).await),
        Cmd::Agent(ops::AgentCmd::Run(a)) => agent_cmd::run(a).await,
        Cmd::Agent(c) => op(ops::agent(c).await),
        Cmd::Bundle(c) => op(ops::bundle(c).await),
        Cmd::Apply(a) => op(config_cmd::apply(a).await),
        Cmd::Get(a) => op(config_cmd::get(a).await),
        Cmd::Delete(a) => op(config_cmd::delete(a).await),
        Cmd::Create(c) => op(create_cmd::run(c).await),
        Cmd::Proxy(c) => proxy_cmd::run(c).await,
        Cmd::StrictReadiness(a) => status_cmd::strict_readiness(a).await,
        Cmd::Describe(c) => describe_cmd::run(c).await,
        Cmd::Authz(c) => authz_cmd::run(c).await,
        Cmd::Analyze(a) => analyze_cmd::run(a).await,
        Cmd::Diagnose(c) => diagnose::run(c).await,
        Cmd::X509(c) => x509_cmd::run(c).await,
        Cmd::Cert(c) => cert_cmd::run(c).await,
        Cmd::Demo(a) => demo::run(a).await,
    }
}

fn main() -> ExitCode {
    let cmd = Cli::command();
    let args = spire_flags::rewrite(&cmd, std::env::args_os());
    let cli = match cmd
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Cmd::Proxy(p) = &cli.cmd
        && let Some(n) = p.worker_threads()
    {
        runtime.worker_threads(n);
    }
    let rt = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
