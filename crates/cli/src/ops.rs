//! `sigil token`, `sigil agent list|show|evict|ban`, `sigil bundle show`, `sigil server healthcheck`.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;
use sigil_proto::admin;
use sigil_spiffe::SpiffeId;

use crate::admin::{connect, status};
use crate::entry::SocketArg;
use crate::output::{OutputFormat, agent_json, agent_text};

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Generates a single-use join token for agent attestation.
    Generate {
        /// Also create an entry with this SPIFFE ID, parented to the agent that uses the token.
        #[arg(long = "spiffeID", alias = "spiffe-id")]
        spiffe_id: Option<String>,
        /// Token lifetime in seconds (default 600).
        #[arg(long = "ttl", default_value_t = 600)]
        ttl: i32,
        #[command(flatten)]
        socket: SocketArg,
        #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Runs the node agent: attests to the server and serves the Workload API.
    Run(crate::agent_cmd::AgentRunArgs),
    /// Calls the Workload API as the current process.
    #[command(subcommand)]
    Api(crate::agent_cmd::ApiCmd),
    /// Checks that the local agent serves the Workload API (exit 0) or not (exit 1).
    Healthcheck(crate::agent_cmd::WorkloadSocketArg),
    /// Lists attested agents.
    List {
        /// Only banned (true) or not banned (false) agents.
        #[arg(long = "banned")]
        banned: Option<bool>,
        /// Only agents attested with this method (join_token, x509pop).
        #[arg(long = "attestationType", alias = "attestation-type")]
        attestation_type: Option<String>,
        #[command(flatten)]
        socket: SocketArg,
        #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
        output: OutputFormat,
    },
    /// Shows one agent.
    Show(AgentIdArgs),
    /// Evicts an agent: it must attest again (a new join token, or its x509pop certificate).
    Evict(AgentIdArgs),
    /// Bans an agent: it cannot renew or attest again until evicted by an operator.
    Ban(AgentIdArgs),
}

#[derive(Debug, clap::Args)]
pub struct AgentIdArgs {
    /// The agent's SPIFFE ID.
    #[arg(long = "spiffeID", alias = "spiffe-id", required = true)]
    spiffe_id: String,
    #[command(flatten)]
    socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum BundleCmd {
    /// Prints the trust domain's bundle.
    Show {
        /// pem (X.509 authorities, for openssl) or spiffe (SPIFFE bundle JSON).
        #[arg(long = "format", default_value = "pem")]
        format: String,
        #[command(flatten)]
        socket: SocketArg,
    },
}

pub async fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    let TokenCmd::Generate {
        spiffe_id,
        ttl,
        socket,
        output,
    } = cmd;
    if let Some(s) = &spiffe_id {
        SpiffeId::parse(s).map_err(|e| anyhow::anyhow!("-spiffeID {s:?}: {e}"))?;
    }
    if ttl <= 0 {
        bail!("-ttl must be a positive number of seconds (got {ttl})");
    }
    let mut c = connect(&socket.socket_path).await?;
    let t = c
        .generate_join_token(admin::GenerateJoinTokenRequest {
            ttl,
            spiffe_id: spiffe_id.unwrap_or_default(),
        })
        .await
        .map_err(status)?
        .into_inner();
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({"value": t.token, "expires_at": t.expires_at})
        ),
        OutputFormat::Pretty => println!("Token: {}", t.token),
    }
    Ok(())
}

pub async fn agent(cmd: AgentCmd) -> anyhow::Result<()> {
    match cmd {
        AgentCmd::List {
            banned,
            attestation_type,
            socket,
            output,
        } => {
            let mut c = connect(&socket.socket_path).await?;
            let list = c
                .list_agents(admin::ListAgentsRequest {
                    by_banned: banned.map(|b| b.to_string()).unwrap_or_default(),
                    by_attestation_type: attestation_type.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .agents;
            match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::json!({"agents": list.iter().map(agent_json).collect::<Vec<_>>()})
                ),
                OutputFormat::Pretty => {
                    if list.is_empty() {
                        println!("No attested agents found");
                    } else {
                        println!(
                            "Found {} attested agent{}:\n",
                            list.len(),
                            if list.len() == 1 { "" } else { "s" }
                        );
                        for a in &list {
                            println!("{}", agent_text(a));
                        }
                    }
                }
            }
            Ok(())
        }
        AgentCmd::Run(_) => unreachable_run(),
        AgentCmd::Api(c) => crate::agent_cmd::api(c).await,
        AgentCmd::Healthcheck(s) => crate::agent_cmd::healthcheck(&s.path()?).await,
        AgentCmd::Show(a) => agent_call(a, "show").await,
        AgentCmd::Evict(a) => agent_call(a, "evict").await,
        AgentCmd::Ban(a) => agent_call(a, "ban").await,
    }
}

async fn agent_call(a: AgentIdArgs, what: &str) -> anyhow::Result<()> {
    let id = SpiffeId::parse(&a.spiffe_id)
        .map_err(|e| anyhow::anyhow!("-spiffeID {:?}: {e}", a.spiffe_id))?;
    let mut c = connect(&a.socket.socket_path).await?;
    let req = admin::GetAgentRequest {
        spiffe_id: id.to_string(),
    };
    let agent = match what {
        "show" => c.get_agent(req).await,
        "evict" => c.evict_agent(req).await,
        _ => c.ban_agent(req).await,
    }
    .map_err(status)?
    .into_inner();
    match (what, a.output) {
        (_, OutputFormat::Json) => println!("{}", agent_json(&agent)),
        ("show", OutputFormat::Pretty) => print!("{}", agent_text(&agent)),
        ("evict", OutputFormat::Pretty) => println!("Agent evicted successfully"),
        (_, OutputFormat::Pretty) => println!("Agent banned successfully"),
    }
    Ok(())
}

pub async fn bundle(cmd: BundleCmd) -> anyhow::Result<()> {
    let BundleCmd::Show { format, socket } = cmd;
    if !matches!(format.as_str(), "pem" | "spiffe") {
        bail!("-format {format:?}: use pem or spiffe");
    }
    let mut c = connect(&socket.socket_path).await?;
    let b = c
        .get_bundle(admin::GetBundleRequest {
            trust_domain: String::new(),
        })
        .await
        .map_err(status)?
        .into_inner();
    if format == "spiffe" {
        let v: serde_json::Value = serde_json::from_slice(&b.spiffe_json)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let certs: Vec<rustls_pki_types::CertificateDer<'_>> = b
            .x509_authorities
            .iter()
            .map(|d| d.as_slice().into())
            .collect();
        print!("{}", sigil_spiffe::pem::encode_certificates(&certs));
    }
    Ok(())
}

pub async fn healthcheck(socket: &Path) -> anyhow::Result<()> {
    let mut c = connect(socket).await?;
    let h = c
        .health(admin::HealthRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if h.live && h.ready {
        println!("Server is healthy.");
        Ok(())
    } else {
        bail!("server is not healthy: {}", h.detail)
    }
}

/// `agent run` is dispatched by `main` (it has its own exit codes); reaching here is a bug.
fn unreachable_run() -> anyhow::Result<()> {
    bail!("internal error: `agent run` dispatched as an operator command")
}
