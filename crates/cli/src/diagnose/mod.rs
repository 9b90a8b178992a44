//! `sigil diagnose tls HOST:PORT`: connects and explains the outcome in plain words, with the
//! evidence and the command that fixes it.
//!
//! Split so the decisions are testable without sockets:
//! - [`probe`]: the IO (TCP, rustls, one plaintext request), recording facts;
//! - [`classify`]: facts → [`finding::Finding`] (code, summary, evidence, fix), pure;
//! - [`explain`]: certificate verification failures (shared with `sigil x509 verify`), pure;
//! - [`certinfo`]: certificate fields and SVID rules (shared with `sigil x509 inspect`), pure.

pub mod certinfo;
pub mod classify;
pub mod explain;
pub mod finding;
mod probe;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::json;
use sigil_spiffe::{SpiffeId, TrustDomain};

use crate::EXIT_CONFIG;
use crate::entry::SocketArg;
use crate::output::OutputFormat;
use crate::x509_cmd::{self, EXIT_PROBLEM};
use classify::{Expectation, Observation, Outcome};

#[derive(Debug, Subcommand)]
pub enum DiagnoseCmd {
    /// Connects to HOST:PORT and explains why TLS / mTLS works or fails: unknown authority,
    /// client certificate rejected (CERTIFICATE_VERIFY_FAILED), expired or not yet valid,
    /// SPIFFE ID mismatch, STRICT mTLS without a client certificate (connection termination),
    /// TLS to a plaintext port (SSL_ERROR_RX_RECORD_TOO_LONG) and the reverse, ALPN mismatch,
    /// refused or timed-out connections. Each with its evidence and the command that fixes it.
    #[command(
        after_help = "Exit codes: 0 the connection works; 2 it fails (the report says why); \
                            1 a file or the server's admin socket cannot be read; 64 bad usage."
    )]
    Tls(TlsArgs),
}

#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Where to connect, HOST:PORT.
    pub target: String,
    /// Client certificate chain to present (PEM, leaf first); needs --key.
    #[arg(long = "cert", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long = "key", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Roots to verify the server with (PEM, or SPIFFE bundle JSON). Without --ca or --as the
    /// server's chain is shown but not verified.
    #[arg(long = "ca")]
    pub ca: Option<PathBuf>,
    /// Probe as this identity: a SPIFFE ID or NS/SA (spiffe://<server's trust domain>/ns/NS/sa/SA).
    /// Mints a short-lived SVID through the server's admin socket and trusts the server's bundle.
    #[arg(long = "as", conflicts_with_all = ["cert", "key"])]
    pub as_id: Option<String>,
    /// The SPIFFE ID the server must present.
    #[arg(long = "expect-id")]
    pub expect_id: Option<String>,
    /// TLS server name (SNI); default the host of HOST:PORT (none for IP addresses).
    #[arg(long = "sni")]
    pub sni: Option<String>,
    /// ALPN protocols to offer, comma-separated (e.g. h2,http/1.1); default none.
    #[arg(long = "alpn", value_delimiter = ',')]
    pub alpn: Vec<String>,
    /// Speak plaintext HTTP instead of TLS (does this port accept clients without a sidecar?).
    #[arg(long = "plaintext", conflicts_with_all = ["cert", "key", "as_id", "alpn", "sni"])]
    pub plaintext: bool,
    /// Bound on connecting and on each answer (e.g. 2s, 500ms).
    #[arg(long = "timeout", default_value = "5s", value_parser = sigil_proxy::config::parse_duration)]
    pub timeout: Duration,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub socket: SocketArg,
}

pub async fn run(cmd: DiagnoseCmd) -> Result<(), (u8, anyhow::Error)> {
    let DiagnoseCmd::Tls(a) = cmd;
    tls(a).await
}

fn usage(e: anyhow::Error) -> (u8, anyhow::Error) {
    (EXIT_CONFIG, e)
}

fn op(e: anyhow::Error) -> (u8, anyhow::Error) {
    (1, e)
}

fn server_name(a: &TlsArgs) -> anyhow::Result<ServerName<'static>> {
    let host = match &a.sni {
        Some(s) => s.as_str(),
        None => a
            .target
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| anyhow!("{:?} is not HOST:PORT", a.target))?,
    };
    ServerName::try_from(host.to_owned()).map_err(|e| anyhow!("--sni / host {host:?}: {e}"))
}

/// Loads `--cert/--key`: the chain, the key, and the leaf described.
fn load_client(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (chain, _) = x509_cmd::read_chain(&cert.to_string_lossy())?;
    let pem = std::fs::read(key).with_context(|| format!("cannot read --key {}", key.display()))?;
    let k = sigil_ca::PrivateKey::from_pem(&pem)
        .map_err(|e| anyhow!("--key {}: {e}", key.display()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("--cert {} holds no certificate", cert.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| anyhow!("--cert {}: {e}", cert.display()))?;
    if parsed.public_key().raw != k.public_key_spki_der().as_slice() {
        anyhow::bail!(
            "--key {} does not belong to --cert {} (their public keys differ); pass the key the \
             certificate was issued for",
            key.display(),
            cert.display()
        );
    }
    let der = k
        .to_pkcs8_der()
        .map_err(|e| anyhow!("--key {}: {e}", key.display()))?;
    Ok((
        chain,
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec())),
    ))
}

/// `--as`: a SPIFFE ID, or NS/SA in the server's trust domain.
async fn as_identity(a: &TlsArgs, s: &str) -> Result<SpiffeId, (u8, anyhow::Error)> {
    if s.starts_with("spiffe://") {
        return SpiffeId::parse(s).map_err(|e| usage(anyhow!("--as {s:?}: {e}")));
    }
    let Some((ns, sa)) = s
        .split_once('/')
        .filter(|(n, s)| !n.is_empty() && !s.is_empty() && !s.contains('/'))
    else {
        return Err(usage(anyhow!(
            "--as {s:?}: give a SPIFFE ID (spiffe://cluster.local/ns/payments/sa/checkout) or NAMESPACE/SERVICEACCOUNT (payments/checkout)"
        )));
    };
    let mut c = crate::admin::connect(&a.socket.socket_path)
        .await
        .map_err(op)?;
    let h = c
        .health(sigil_proto::admin::HealthRequest {})
        .await
        .map_err(|e| op(crate::admin::status(e)))?
        .into_inner();
    let td = TrustDomain::new(&h.trust_domain).map_err(|e| op(anyhow!(e)))?;
    td.id(&format!("/ns/{ns}/sa/{sa}"))
        .map_err(|e| usage(anyhow!("--as {s:?}: {e}")))
}

async fn tls(a: TlsArgs) -> Result<(), (u8, anyhow::Error)> {
    if !a.target.contains(':') {
        return Err(usage(anyhow!(
            "{:?} is not HOST:PORT (e.g. billing.payments:8080, 127.0.0.1:8443)",
            a.target
        )));
    }
    let expect_id = match &a.expect_id {
        Some(s) => Some(SpiffeId::parse(s).map_err(|e| usage(anyhow!("--expect-id {s:?}: {e}")))?),
        None => None,
    };
    let server_name = server_name(&a).map_err(usage)?;
    let mut client = None;
    let mut client_src = String::new();
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    let mut trust_source = None;
    let mut trust_domain = expect_id.as_ref().map(|i| i.trust_domain().clone());
    if let (Some(c), Some(k)) = (&a.cert, &a.key) {
        client = Some(load_client(c, k).map_err(op)?);
        client_src = format!("--cert {}", c.display());
    }
    if let Some(s) = &a.as_id {
        let id = as_identity(&a, s).await?;
        let ttl = Duration::from_secs(300);
        let m = x509_cmd::mint_svid(&a.socket.socket_path, &id, Some(ttl), &[])
            .await
            .map_err(|e| op(e.context(format!("--as {s}: cannot mint an SVID for {id}"))))?;
        client = Some((
            m.chain,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(m.key_pkcs8.to_vec())),
        ));
        client_src = format!("--as (minted, serial {})", m.serial);
        roots = m.bundle;
        trust_source = Some(format!(
            "the bundle of {} from the server (--as)",
            id.trust_domain()
        ));
        trust_domain = trust_domain.or_else(|| Some(id.trust_domain().clone()));
    }
    if let Some(ca) = &a.ca {
        roots = x509_cmd::read_roots(ca, trust_domain.as_ref()).map_err(op)?;
        trust_source = Some(format!("--ca {}", ca.display()));
    }
    let root_info = x509_cmd::describe_all(&roots).map_err(op)?;
    let trust_domain = trust_domain
        .map(|t| t.to_string())
        .or_else(|| x509_cmd::common_td(&root_info));
    let client_info = match &client {
        Some((chain, _)) => match chain.first() {
            Some(leaf) => Some((
                certinfo::describe(0, leaf).map_err(|e| op(anyhow!(e)))?,
                client_src,
            )),
            None => return Err(op(anyhow!("--cert holds no certificate"))),
        },
        None => None,
    };
    let p = probe::Probe {
        target: a.target.clone(),
        server_name,
        alpn: a.alpn.clone(),
        timeout: a.timeout,
        plaintext: a.plaintext,
        client,
        roots,
        expect_id,
    };
    let seen = probe::run(&p).await;
    let server_chain = x509_cmd::describe_all(&seen.server_chain).unwrap_or_default();
    let obs = Observation {
        target: a.target.clone(),
        now: crate::now_unix(),
        timeout: a.timeout,
        expect: Expectation {
            trust_source,
            roots: root_info,
            trust_domain,
            expect_id: a.expect_id.clone(),
            alpn: a.alpn.clone(),
            client: client_info,
        },
        outcome: seen.outcome,
        server_chain,
        check: seen.check,
    };
    let finding = classify::classify(&obs);
    let tls_json = match &obs.outcome {
        Outcome::Tls(classify::Handshake::Completed { params, .. }) => {
            serde_json::to_value(params).unwrap_or_default()
        }
        _ => serde_json::Value::Null,
    };
    let peer_id = obs.server_chain.first().and_then(|c| c.spiffe_id.clone());
    x509_cmd::print_finding(
        &finding,
        &format!("sigil diagnose tls {}", a.target),
        a.output,
        json!({
            "target": a.target,
            "mode": if a.plaintext { "plaintext" } else { "tls" },
            "tls": tls_json,
            "peer": {"spiffe_id": peer_id, "chain": obs.server_chain},
        }),
    );
    if finding.ok {
        Ok(())
    } else {
        Err((EXIT_PROBLEM, anyhow!("{}: {}", a.target, finding.code)))
    }
}
