//! `sigil agent run`, `sigil agent api fetch x509|jwt`, `sigil agent healthcheck`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sigil_agent::client::{connect, socket_path};
use sigil_agent::config::{AgentConfig, DEFAULT_SOCKET, FileConfig};
use sigil_proto::workload as wl;

use crate::output::OutputFormat;

#[derive(Debug, Args)]
pub struct AgentRunArgs {
    /// YAML file with the same settings as the flags (flags win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HOST:PORT of the server's node API.
    #[arg(long = "server-address", alias = "serverAddress")]
    server_address: Option<String>,
    /// Trust domain (default cluster.local).
    #[arg(long = "trust-domain", alias = "trustDomain")]
    trust_domain: Option<String>,
    /// PEM bundle that verifies the server at bootstrap (`sigil bundle show` output).
    #[arg(long = "trust-bundle", alias = "trustBundle")]
    trust_bundle: Option<PathBuf>,
    /// Join token for the first attestation (`sigil token generate`).
    #[arg(long = "join-token", alias = "joinToken")]
    join_token: Option<String>,
    /// x509pop: the node's certificate (PEM, leaf first).
    #[arg(long = "x509pop-cert")]
    x509pop_cert: Option<PathBuf>,
    /// x509pop: the node's private key (PEM, mode 0600).
    #[arg(long = "x509pop-key")]
    x509pop_key: Option<PathBuf>,
    /// Where the agent keeps its SVID, key and cache (default /var/lib/sigil/agent).
    #[arg(long = "data-dir", alias = "dataDir")]
    data_dir: Option<PathBuf>,
    /// The Workload API socket (default /tmp/sigil-agent/public/api.sock).
    #[arg(long = "socket-path", alias = "socketPath")]
    socket_path: Option<PathBuf>,
    /// The agent's private admin socket for `sigil entry explain` (default
    /// <data-dir>/admin.sock, mode 0600; never in the Workload API socket's directory).
    #[arg(long = "admin-socket-path", alias = "adminSocketPath")]
    admin_socket_path: Option<PathBuf>,
    /// How often to sync with the server (default 1s).
    #[arg(long = "sync-interval")]
    sync_interval: Option<String>,
    /// Write Secrets as files under this directory: DIR/NAMESPACE/NAME/tls.crt, tls.key, ca.crt
    /// (keys 0600), swapped atomically on every change.
    #[arg(long = "secret-dir")]
    secret_dir: Option<PathBuf>,
    /// A Secret to write, NAMESPACE/NAME (repeatable). The Secret's `sigil.io/deliver-to`
    /// annotation must name this agent (its SPIFFE ID or a node selector) or `*`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Run with /bin/sh -c after Secret files changed, e.g. "nginx -s reload".
    #[arg(long = "secret-reload-command")]
    secret_reload_command: Option<String>,
    #[arg(long = "log-level", default_value = "info")]
    log_level: String,
    #[arg(long = "log-format", default_value = "text")]
    log_format: String,
}

#[derive(Debug, Subcommand)]
pub enum ApiCmd {
    /// Fetches SVIDs and bundles from the Workload API, as the calling process.
    #[command(subcommand)]
    Fetch(FetchCmd),
}

#[derive(Debug, Subcommand)]
pub enum FetchCmd {
    /// X.509-SVIDs, keys and bundles.
    X509(FetchX509Args),
    /// JWT-SVIDs for an audience.
    Jwt(FetchJwtArgs),
    /// The mesh configuration the agent serves to local proxies (its MeshConfig service).
    Config(FetchConfigArgs),
}

#[derive(Debug, Args)]
pub struct FetchConfigArgs {
    #[command(flatten)]
    socket: WorkloadSocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct WorkloadSocketArg {
    /// The agent's Workload API socket (path or unix:///path; default $SPIFFE_ENDPOINT_SOCKET,
    /// else /tmp/sigil-agent/public/api.sock).
    #[arg(long = "socket-path", alias = "socketPath")]
    pub socket_path: Option<String>,
}

impl WorkloadSocketArg {
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.socket_path {
            Some(s) => socket_path(s),
            None => match std::env::var("SPIFFE_ENDPOINT_SOCKET") {
                Ok(s) if !s.is_empty() => socket_path(&s),
                _ => Ok(PathBuf::from(DEFAULT_SOCKET)),
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct FetchX509Args {
    #[command(flatten)]
    socket: WorkloadSocketArg,
    /// Write svid.N.pem, svid.N.key, bundle.N.pem and federated_bundle.N.M.pem to this directory.
    #[arg(long = "write")]
    write: Option<PathBuf>,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct FetchJwtArgs {
    #[command(flatten)]
    socket: WorkloadSocketArg,
    /// Audience (repeat for several); required.
    #[arg(long = "audience", short = 'a')]
    audience: Vec<String>,
    /// Only the JWT-SVID of this SPIFFE ID.
    #[arg(long = "spiffeID", alias = "spiffe-id")]
    spiffe_id: Option<String>,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
}

pub async fn run(a: AgentRunArgs) -> Result<(), (u8, anyhow::Error)> {
    let cfg_err = |e: anyhow::Error| (crate::EXIT_CONFIG, e);
    crate::init_logs(&a.log_level, &a.log_format).map_err(cfg_err)?;
    let file = match &a.config {
        Some(p) => FileConfig::load(p).map_err(|e| cfg_err(e.into()))?,
        None => FileConfig::default(),
    };
    let flags = FileConfig {
        server_address: a.server_address,
        trust_domain: a.trust_domain,
        trust_bundle: a.trust_bundle,
        join_token: a.join_token,
        x509pop_cert: a.x509pop_cert,
        x509pop_key: a.x509pop_key,
        data_dir: a.data_dir,
        socket_path: a.socket_path,
        admin_socket_path: a.admin_socket_path,
        sync_interval: a.sync_interval,
        secret_dir: a.secret_dir,
        secrets: (!a.secrets.is_empty()).then_some(a.secrets),
        secret_reload_command: a.secret_reload_command,
    };
    let cfg = AgentConfig::resolve(file.merge(flags)).map_err(|e| cfg_err(e.into()))?;
    let mut bound = sigil_agent::build(cfg).await.map_err(|e| (1, e))?;
    let failed = tokio::select! {
        r = bound.wait() => Some(r),
        _ = crate::shutdown_signal() => None,
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

fn der_to_pem(label: &str, der: &[u8]) -> String {
    sigil_spiffe::pem::encode_block(label, der)
}

fn certs_pem(concatenated_der: &[u8]) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = concatenated_der;
    while !rest.is_empty() {
        let (r, _) = x509_parser::parse_x509_certificate(rest)
            .map_err(|e| anyhow::anyhow!("the agent sent a malformed certificate: {e}"))?;
        let len = rest.len() - r.len();
        out.push_str(&der_to_pem("CERTIFICATE", &rest[..len]));
        rest = r;
    }
    Ok(out)
}

fn write_file(dir: &Path, name: &str, data: &str, private: bool) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if private {
        sigil_agent::store::write_private(&p, data.as_bytes())
    } else {
        std::fs::write(&p, data)
    }
    .with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}

fn not_after(der_chain: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der_chain) {
        Ok((_, c)) => crate::fmt_time(c.validity().not_after.timestamp()),
        Err(_) => "?".into(),
    }
}

pub async fn api(cmd: ApiCmd) -> anyhow::Result<()> {
    let ApiCmd::Fetch(f) = cmd;
    match f {
        FetchCmd::X509(a) => fetch_x509(a).await,
        FetchCmd::Jwt(a) => fetch_jwt(a).await,
        FetchCmd::Config(a) => fetch_config(a).await,
    }
}

async fn fetch_config(a: FetchConfigArgs) -> anyhow::Result<()> {
    let mut c = sigil_agent::client::connect_config(&a.socket.path()?).await?;
    let s = c
        .get_config(sigil_proto::config::GetConfigRequest {})
        .await
        .map_err(crate::admin::status)?
        .into_inner();
    match a.output {
        OutputFormat::Json => {
            let objects: Vec<serde_json::Value> = s
                .resources
                .iter()
                .map(|r| serde_json::from_str(&r.json))
                .collect::<Result<_, _>>()?;
            let v = serde_json::json!({"revision": s.revision, "objects": objects});
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        OutputFormat::Pretty => {
            println!("Revision {}: {} object(s)", s.revision, s.resources.len());
            for r in &s.resources {
                let at = if r.namespace.is_empty() {
                    r.name.clone()
                } else {
                    format!("{}/{}", r.namespace, r.name)
                };
                println!("  {} {at} (generation {})", r.kind, r.generation);
            }
        }
    }
    Ok(())
}

async fn fetch_x509(a: FetchX509Args) -> anyhow::Result<()> {
    let mut c = connect(&a.socket.path()?).await?;
    let mut stream = c
        .fetch_x509svid(wl::X509svidRequest {})
        .await
        .map_err(crate::admin::status)?
        .into_inner();
    let resp = stream
        .message()
        .await
        .map_err(crate::admin::status)?
        .ok_or_else(|| anyhow::anyhow!("the agent closed the stream without an answer"))?;
    if let Some(dir) = &a.write {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (i, s) in resp.svids.iter().enumerate() {
            write_file(
                dir,
                &format!("svid.{i}.pem"),
                &certs_pem(&s.x509_svid)?,
                false,
            )?;
            let key = zeroize::Zeroizing::new(der_to_pem("PRIVATE KEY", &s.x509_svid_key));
            write_file(dir, &format!("svid.{i}.key"), &key, true)?;
            write_file(
                dir,
                &format!("bundle.{i}.pem"),
                &certs_pem(&s.bundle)?,
                false,
            )?;
        }
        for (j, (_, b)) in resp.federated_bundles.iter().enumerate() {
            write_file(
                dir,
                &format!("federated_bundle.{j}.pem"),
                &certs_pem(b)?,
                false,
            )?;
        }
    }
    match a.output {
        OutputFormat::Json => {
            let svids: Vec<_> = resp
                .svids
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "spiffe_id": s.spiffe_id,
                        "hint": s.hint,
                        "x509_svid_pem": certs_pem(&s.x509_svid).unwrap_or_default(),
                        "bundle_pem": certs_pem(&s.bundle).unwrap_or_default(),
                        "expires_at": not_after(&s.x509_svid),
                    })
                })
                .collect();
            let fed: serde_json::Map<String, serde_json::Value> = resp
                .federated_bundles
                .iter()
                .map(|(k, v)| (k.clone(), certs_pem(v).unwrap_or_default().into()))
                .collect();
            println!(
                "{}",
                serde_json::json!({"svids": svids, "federated_bundles": fed})
            );
        }
        OutputFormat::Pretty => {
            let n = resp.svids.len();
            println!("Received {n} svid{}", if n == 1 { "" } else { "s" });
            for s in &resp.svids {
                println!();
                println!("SPIFFE ID:\t\t{}", s.spiffe_id);
                if !s.hint.is_empty() {
                    println!("Hint:\t\t\t{}", s.hint);
                }
                println!("SVID Valid Until:\t{}", not_after(&s.x509_svid));
                let roots = certs_pem(&s.bundle)?.matches("BEGIN CERTIFICATE").count();
                println!("Trust bundle:\t\t{roots} CA certificate(s)");
                for td in resp.federated_bundles.keys() {
                    println!("Federated bundle:\t{td}");
                }
            }
            if let Some(dir) = &a.write {
                println!("\nWritten to {}", dir.display());
            }
        }
    }
    Ok(())
}

async fn fetch_jwt(a: FetchJwtArgs) -> anyhow::Result<()> {
    if a.audience.is_empty() {
        bail!("-audience is required: the party the JWT-SVID is for, e.g. -audience billing");
    }
    let mut c = connect(&a.socket.path()?).await?;
    let resp = c
        .fetch_jwtsvid(wl::JwtsvidRequest {
            audience: a.audience.clone(),
            spiffe_id: a.spiffe_id.unwrap_or_default(),
        })
        .await
        .map_err(crate::admin::status)?
        .into_inner();
    match a.output {
        OutputFormat::Json => {
            let svids: Vec<_> = resp
                .svids
                .iter()
                .map(|s| serde_json::json!({"spiffe_id": s.spiffe_id, "svid": s.svid, "hint": s.hint}))
                .collect();
            println!("{}", serde_json::json!({ "svids": svids }));
        }
        OutputFormat::Pretty => {
            for s in &resp.svids {
                println!("token({}):\n\t{}", s.spiffe_id, s.svid);
            }
        }
    }
    Ok(())
}

/// The standard gRPC health check on the agent's socket.
pub async fn healthcheck(socket: &Path) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let mut c = HealthClient::new(sigil_agent::client::channel(socket).await?);
    let r = c
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(crate::admin::status)?
        .into_inner();
    if r.status == ServingStatus::Serving as i32 {
        println!("Agent is healthy.");
        Ok(())
    } else {
        bail!(
            "agent is not healthy: it has not obtained its own SVID from the server yet, or lost it"
        )
    }
}
