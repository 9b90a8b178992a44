//! `sigil entry create | show | list | update | delete`, with SPIRE's flags as written.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sigil_proto::admin;
use sigil_proto::node::{Entry, Selector};
use sigil_spiffe::SpiffeId;

use crate::admin::{DEFAULT_SOCKET, connect, status};
use crate::output::{OutputFormat, print_entries, print_entry};

#[derive(Debug, Subcommand)]
pub enum EntryCmd {
    /// Creates a registration entry.
    Create(CreateArgs),
    /// Shows entries matching the filters (all when none given).
    Show(ShowArgs),
    /// Lists entries (same filters as show).
    List(ShowArgs),
    /// Updates an entry: the fields given replace the stored ones.
    Update(UpdateArgs),
    /// Deletes an entry.
    Delete(DeleteArgs),
    /// Explains why a process (or a set of selectors) gets an identity or none, from the
    /// agent's admin socket: exit 0 with an identity, 2 without.
    Explain(crate::entry_explain::ExplainArgs),
}

#[derive(Debug, Args)]
pub struct SocketArg {
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    pub socket_path: PathBuf,
}

#[derive(Debug, Args)]
pub struct EntryFields {
    /// The SPIFFE ID of the workload (or node alias).
    #[arg(long = "spiffeID", alias = "spiffe-id")]
    pub spiffe_id: Option<String>,
    /// The SPIFFE ID of the parent: an agent, or a node alias.
    #[arg(long = "parentID", alias = "parent-id")]
    pub parent_id: Option<String>,
    /// A selector `type:value` (repeat for several), e.g. unix:uid:1000 or k8s:ns:payments.
    #[arg(long = "selector")]
    pub selectors: Vec<String>,
    /// X.509-SVID lifetime in seconds (0 = server default).
    #[arg(long = "x509SVIDTTL", alias = "x509-svid-ttl")]
    pub x509_svid_ttl: Option<i32>,
    /// JWT-SVID lifetime in seconds (0 = server default).
    #[arg(long = "jwtSVIDTTL", alias = "jwt-svid-ttl")]
    pub jwt_svid_ttl: Option<i32>,
    /// A DNS name to put in the SVID (repeat for several).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// A trust domain whose bundle this workload receives (repeat for several).
    #[arg(long = "federatesWith", alias = "federates-with")]
    pub federates_with: Vec<String>,
    /// The workload may use the server's admin APIs.
    #[arg(long = "admin")]
    pub admin: bool,
    /// The entry is for a downstream (nested) server.
    #[arg(long = "downstream")]
    pub downstream: bool,
    /// Unix time after which the entry is no longer valid.
    #[arg(long = "entryExpiry", alias = "entry-expiry")]
    pub entry_expiry: Option<i64>,
    /// A hint for workloads that receive several SVIDs.
    #[arg(long = "hint")]
    pub hint: Option<String>,
    /// Hand the SVID to the agent's SVID store rather than a workload.
    #[arg(long = "storeSVID", alias = "store-svid")]
    pub store_svid: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub fields: EntryFields,
    /// Create a node alias: nodes whose attested selectors include these selectors get this ID
    /// (the parent is the server, `spiffe://<td>/spire/server`).
    #[arg(long = "node")]
    pub node: bool,
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long = "entryID", alias = "entry-id")]
    pub entry_id: Option<String>,
    #[arg(long = "spiffeID", alias = "spiffe-id")]
    pub spiffe_id: Option<String>,
    #[arg(long = "parentID", alias = "parent-id")]
    pub parent_id: Option<String>,
    #[arg(long = "selector")]
    pub selectors: Vec<String>,
    /// How -selector filters match: exact, subset, superset or any.
    #[arg(
        long = "matchSelectorsOn",
        alias = "match-selectors-on",
        default_value = "superset"
    )]
    pub match_selectors_on: String,
    #[arg(long = "federatesWith", alias = "federates-with")]
    pub federates_with: Option<String>,
    #[arg(long = "hint")]
    pub hint: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(long = "entryID", alias = "entry-id", required = true)]
    pub entry_id: String,
    #[command(flatten)]
    pub fields: EntryFields,
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(long = "entryID", alias = "entry-id", required = true)]
    pub entry_id: String,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Parses `type:value`; the value may itself contain ':' (`k8s:ns:payments`).
pub fn parse_selector(s: &str) -> anyhow::Result<Selector> {
    match s.split_once(':') {
        Some((t, v)) if !t.is_empty() && !v.is_empty() => Ok(Selector {
            r#type: t.to_owned(),
            value: v.to_owned(),
        }),
        _ => bail!(
            "selector {s:?} must be written type:value, e.g. unix:uid:1000 or k8s:ns:payments"
        ),
    }
}

fn check_id(flag: &str, s: &str) -> anyhow::Result<String> {
    SpiffeId::parse(s).with_context(|| format!("-{flag} {s:?} is not a valid SPIFFE ID"))?;
    Ok(s.to_owned())
}

pub async fn run(cmd: EntryCmd) -> anyhow::Result<()> {
    match cmd {
        EntryCmd::Create(a) => create(a).await,
        EntryCmd::Show(a) | EntryCmd::List(a) => show(a).await,
        EntryCmd::Update(a) => update(a).await,
        EntryCmd::Delete(a) => {
            let mut c = connect(&a.socket.socket_path).await?;
            c.delete_entry(admin::DeleteEntryRequest {
                id: a.entry_id.clone(),
            })
            .await
            .map_err(status)?;
            println!("Deleted entry with ID: {}", a.entry_id);
            Ok(())
        }
        EntryCmd::Explain(_) => {
            bail!("sigil entry explain is dispatched by main (it exits 2 on a finding)")
        }
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let f = a.fields;
    let Some(spiffe_id) = f.spiffe_id.as_deref() else {
        bail!(
            "-spiffeID is required: the SPIFFE ID this entry issues, e.g. spiffe://cluster.local/ns/payments/sa/billing-service"
        );
    };
    let spiffe_id = check_id("spiffeID", spiffe_id)?;
    let parent_id = match (f.parent_id.as_deref(), a.node) {
        (Some(_), true) => bail!(
            "-parentID and -node cannot be used together: a node alias is parented to the server"
        ),
        (None, true) => {
            let td = SpiffeId::parse(&spiffe_id)?.trust_domain().clone();
            td.id_string() + "/spire/server"
        }
        (Some(p), false) => check_id("parentID", p)?,
        (None, false) => bail!(
            "-parentID is required (the agent's SPIFFE ID, or a node alias), or use -node to create a node alias"
        ),
    };
    if f.selectors.is_empty() {
        bail!("at least one -selector is required, e.g. -selector unix:uid:1000");
    }
    let selectors = f
        .selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<anyhow::Result<_>>()?;
    let entry = Entry {
        spiffe_id,
        parent_id,
        selectors,
        x509_svid_ttl: f.x509_svid_ttl.unwrap_or(0),
        jwt_svid_ttl: f.jwt_svid_ttl.unwrap_or(0),
        federates_with: f.federates_with,
        admin: f.admin,
        downstream: f.downstream,
        expires_at: f.entry_expiry.unwrap_or(0),
        dns_names: f.dns,
        store_svid: f.store_svid,
        hint: f.hint.unwrap_or_default(),
        ..Default::default()
    };
    let mut c = connect(&a.socket.socket_path).await?;
    let created = c
        .create_entry(admin::CreateEntryRequest { entry: Some(entry) })
        .await
        .map_err(status)?
        .into_inner();
    print_entry(&created, a.output);
    Ok(())
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.socket.socket_path).await?;
    if let Some(id) = a.entry_id {
        let e = c
            .get_entry(admin::GetEntryRequest { id })
            .await
            .map_err(status)?
            .into_inner();
        print_entries(&[e], a.output);
        return Ok(());
    }
    if let Some(s) = &a.spiffe_id {
        check_id("spiffeID", s)?;
    }
    if let Some(p) = &a.parent_id {
        check_id("parentID", p)?;
    }
    let by_selectors = a
        .selectors
        .iter()
        .map(|s| parse_selector(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let selector_match = match a.match_selectors_on.as_str() {
        m @ ("exact" | "subset" | "superset" | "any") => m.to_owned(),
        m => bail!("-matchSelectorsOn {m:?} is not one of exact, subset, superset, any"),
    };
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = c
            .list_entries(admin::ListEntriesRequest {
                by_spiffe_id: a.spiffe_id.clone().unwrap_or_default(),
                by_parent_id: a.parent_id.clone().unwrap_or_default(),
                by_selectors: by_selectors.clone(),
                selector_match: selector_match.clone(),
                by_federates_with: a.federates_with.clone().unwrap_or_default(),
                by_hint: a.hint.clone().unwrap_or_default(),
                page_size: 1000,
                page_token,
            })
            .await
            .map_err(status)?
            .into_inner();
        entries.extend(resp.entries);
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    print_entries(&entries, a.output);
    Ok(())
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let mut c = connect(&a.socket.socket_path).await?;
    let mut e = c
        .get_entry(admin::GetEntryRequest {
            id: a.entry_id.clone(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let f = a.fields;
    if let Some(s) = f.spiffe_id {
        e.spiffe_id = check_id("spiffeID", &s)?;
    }
    if let Some(p) = f.parent_id {
        e.parent_id = check_id("parentID", &p)?;
    }
    if !f.selectors.is_empty() {
        e.selectors = f
            .selectors
            .iter()
            .map(|s| parse_selector(s))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(t) = f.x509_svid_ttl {
        e.x509_svid_ttl = t;
    }
    if let Some(t) = f.jwt_svid_ttl {
        e.jwt_svid_ttl = t;
    }
    if !f.dns.is_empty() {
        e.dns_names = f.dns;
    }
    if !f.federates_with.is_empty() {
        e.federates_with = f.federates_with;
    }
    if f.admin {
        e.admin = true;
    }
    if f.downstream {
        e.downstream = true;
    }
    if let Some(x) = f.entry_expiry {
        e.expires_at = x;
    }
    if let Some(h) = f.hint {
        e.hint = h;
    }
    if f.store_svid {
        e.store_svid = true;
    }
    let updated = c
        .update_entry(admin::UpdateEntryRequest { entry: Some(e) })
        .await
        .map_err(status)?
        .into_inner();
    print_entry(&updated, a.output);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_keep_colons_in_values() {
        let s = parse_selector("k8s:ns:payments").unwrap();
        assert_eq!(
            (s.r#type.as_str(), s.value.as_str()),
            ("k8s", "ns:payments")
        );
        for bad in ["payments", ":x", "k8s:", ""] {
            let e = parse_selector(bad).unwrap_err().to_string();
            assert!(e.contains("type:value"), "{bad}: {e}");
        }
    }
}
