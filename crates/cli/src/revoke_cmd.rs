//! `sigil x509 revoke` and `sigil x509 revocations`: revocation through the server's admin
//! API (`RevokeX509`, `ListRevocations`).
//!
//! - `revoke --serial S | --entry ID | --agent SPIFFE_ID [--reason R]`: `--serial` revokes one
//!   certificate; `--entry` every unexpired certificate issued for the entry; `--agent` the
//!   agent's own SVIDs and every workload SVID it obtained. The server pushes the list to every
//!   agent and proxy (new handshakes refused, open connections closed) and re-signs its CRLs.
//! - `revocations`: the revoked certificates not yet expired, and the CRL URLs.
//!
//! Exit codes: 0 done, 1 the server refused or cannot be reached (its message says why),
//! 64 bad usage.

use anyhow::anyhow;
use clap::{ArgGroup, Args};
use serde_json::json;
use sigil_proto::admin;
use sigil_proto::config::RevokedCertificate;

use crate::entry::SocketArg;
use crate::fmt_time;
use crate::output::OutputFormat;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["serial", "entry", "agent"])))]
pub struct RevokeArgs {
    /// Serial of one certificate (hex, colons allowed), as `openssl x509 -noout -serial` prints.
    #[arg(long = "serial")]
    pub serial: Option<String>,
    /// Registration entry id: every unexpired certificate issued for it.
    #[arg(long = "entry", alias = "entryID")]
    pub entry: Option<String>,
    /// Agent SPIFFE ID: its own SVIDs and every workload SVID it obtained. Combine with
    /// `sigil agent ban` to stop it from getting new ones.
    #[arg(long = "agent", alias = "agentID")]
    pub agent: Option<String>,
    /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
    /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise.
    #[arg(long = "reason", default_value = "unspecified")]
    pub reason: String,
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RevocationsArgs {
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

fn revoked_json(r: &RevokedCertificate) -> serde_json::Value {
    json!({
        "serial": r.serial,
        "spiffe_id": r.spiffe_id,
        "reason": r.reason,
        "revoked_at": r.revoked_at,
        "not_after": r.not_after,
        "entry_id": r.entry_id,
        "agent_id": r.agent_id,
    })
}

fn revoked_line(r: &RevokedCertificate) -> String {
    let mut s = format!(
        "{}  {}  {}  revoked {}  expires {}",
        r.serial,
        r.spiffe_id,
        r.reason,
        fmt_time(r.revoked_at),
        fmt_time(r.not_after)
    );
    if !r.entry_id.is_empty() {
        s.push_str(&format!("  entry {}", r.entry_id));
    }
    s
}

pub async fn revoke(a: RevokeArgs) -> Result<(), (u8, anyhow::Error)> {
    use admin::revoke_x509_request::Target;
    let target = match (a.serial, a.entry, a.agent) {
        (Some(s), None, None) => Target::Serial(s),
        (None, Some(e), None) => Target::EntryId(e),
        (None, None, Some(g)) => Target::AgentId(g),
        _ => {
            return Err((
                crate::EXIT_CONFIG,
                anyhow!("give exactly one of --serial, --entry, --agent"),
            ));
        }
    };
    if let Err(e) = a.reason.parse::<sigil_ca::Reason>() {
        return Err((crate::EXIT_CONFIG, anyhow!("--reason: {e}")));
    }
    let mut c = crate::admin::connect(&a.socket.socket_path)
        .await
        .map_err(|e| (1, e))?;
    let r = c
        .revoke_x509(admin::RevokeX509Request {
            target: Some(target),
            reason: a.reason,
        })
        .await
        .map_err(|e| (1, crate::admin::status(e)))?
        .into_inner();
    match a.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "revoked": r.revoked.iter().map(revoked_json).collect::<Vec<_>>(),
                "already_revoked": r.already_revoked,
            })
        ),
        OutputFormat::Pretty => {
            for x in &r.revoked {
                println!("Revoked {}", revoked_line(x));
            }
            if r.already_revoked > 0 {
                println!("{} already revoked (unchanged)", r.already_revoked);
            }
            if !r.revoked.is_empty() {
                println!(
                    "Pushed to every agent and proxy; the CRLs are re-signed (`sigil x509 revocations` lists them)."
                );
            }
        }
    }
    Ok(())
}

pub async fn revocations(a: RevocationsArgs) -> Result<(), (u8, anyhow::Error)> {
    let mut c = crate::admin::connect(&a.socket.socket_path)
        .await
        .map_err(|e| (1, e))?;
    let r = c
        .list_revocations(admin::ListRevocationsRequest {})
        .await
        .map_err(|e| (1, crate::admin::status(e)))?
        .into_inner();
    match a.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "revoked": r.revoked.iter().map(revoked_json).collect::<Vec<_>>(),
                "crl_urls": r.crl_urls,
            })
        ),
        OutputFormat::Pretty => {
            if r.revoked.is_empty() {
                println!("No revoked certificate (that has not expired).");
            }
            for x in &r.revoked {
                println!("{}", revoked_line(x));
            }
            for u in &r.crl_urls {
                println!("CRL: {u}");
            }
        }
    }
    Ok(())
}
