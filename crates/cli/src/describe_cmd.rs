//! `sigil describe workload NS/NAME` (like `istioctl x describe pod`): identity, entry,
//! attested selectors, SVID, effective mTLS per port and the PeerAuthentication that set it,
//! DestinationRules toward its upstreams, AuthorizationPolicies in evaluation order, and
//! warnings — all from the proxies' reports and the applied configuration, evaluated with the
//! same code the proxy runs.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sigil_policy::{
    Action, CompiledAuthz, CompiledMtls, IgnoredReason, Level, MtlsMode, NotAppliedReason, Origin,
    Resource, destination_tls,
};
use sigil_proto::admin::{ListEntriesRequest, ProxyRecord};
use sigil_proto::node::Entry;

use crate::admin::{DEFAULT_SOCKET, connect, status};
use crate::live::{self, human_duration, print_json};

#[derive(Debug, Subcommand)]
pub enum DescribeCmd {
    /// A workload: identity, entry, SVID, mTLS per port, DestinationRules, authorization.
    Workload(DescribeWorkloadArgs),
    /// A cert-manager Certificate: spec, status, conditions, CertificateRequests, events.
    #[command(alias = "certificates", alias = "cert")]
    Certificate(crate::cert_cmd::CertRefArgs),
}

#[derive(Debug, Args)]
pub struct DescribeWorkloadArgs {
    /// NAMESPACE/NAME of the workload (the `workload` of its proxy config).
    workload: String,
    /// text or json.
    #[arg(long = "output", short = 'o', default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    socket_path: PathBuf,
}

pub async fn run(c: DescribeCmd) -> Result<(), (u8, anyhow::Error)> {
    match c {
        DescribeCmd::Workload(a) => workload(a).await,
        DescribeCmd::Certificate(a) => crate::cert_cmd::describe(a).await,
    }
}

pub fn mode_name(m: MtlsMode) -> &'static str {
    sigil_proxy::report::mode_name(m)
}

pub fn origin_text(o: &Origin) -> String {
    match o {
        Origin::Default => "no PeerAuthentication applies (default PERMISSIVE)".into(),
        Origin::Policy { id, level } => format!("PeerAuthentication {id} ({})", level_text(*level)),
    }
}

fn level_text(l: Level) -> String {
    match l {
        Level::Mesh => "mesh-wide, root namespace".into(),
        Level::Namespace => "namespace-wide".into(),
        Level::Workload => "workload selector".into(),
        Level::Port(p) => format!("portLevelMtls {p}"),
    }
}

fn action_name(a: Action) -> &'static str {
    a.as_str()
}

/// Everything `describe workload` prints, as JSON (the text form is rendered from it).
pub fn describe(
    ns: &str,
    name: &str,
    proxies: &[&ProxyRecord],
    entries: &[Entry],
    resources: &[Resource],
    server_revision: i64,
    now: i64,
) -> Value {
    let mut warnings: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let Some(rec) = proxies.iter().max_by_key(|r| r.received_at) else {
        return json!({ "workload": format!("{ns}/{name}"), "warnings": ["no proxy reports this workload"] });
    };
    let Some(p) = rec.report.as_ref() else {
        return json!({ "workload": format!("{ns}/{name}"), "warnings": ["empty report"] });
    };
    let wl = live::workload(p);
    let ctx = live::mesh_context(p);

    // Identity and entry.
    if p.spiffe_id.is_empty() {
        warnings.push(
            "the proxy holds no SVID: no registration entry matches its process (run `sigil entry explain --pid PID` on its node)".into(),
        );
    }
    let entry_json: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "spiffeId": e.spiffe_id,
                "parentId": e.parent_id,
                "selectors": e.selectors.iter().map(|s| format!("{}:{}", s.r#type, s.value)).collect::<Vec<_>>(),
                "x509SvidTtl": e.x509_svid_ttl,
            })
        })
        .collect();
    if !p.spiffe_id.is_empty() && entries.is_empty() {
        warnings.push(format!(
            "no registration entry for {} exists any more: the SVID will not be renewed",
            p.spiffe_id
        ));
    }

    // SVID.
    let mut chain = Vec::new();
    let mut life = 0;
    for (i, der) in p.svid_chain.iter().enumerate() {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(der) {
            if i == 0 {
                life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
            }
            chain.push(json!({
                "subject": c.subject().to_string(),
                "issuer": c.issuer().to_string(),
                "serial": c.raw_serial().iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "notAfter": c.validity().not_after.timestamp(),
            }));
        }
    }
    if p.svid_not_after > 0 {
        let left = p.svid_not_after - now;
        if left <= 0 {
            warnings.push(format!("the SVID expired {} ago", human_duration(-left)));
        } else if life > 0 && left * 2 < life {
            warnings.push(format!(
                "the SVID expires in {} and is past its renewal point (half its {} life): the agent cannot renew it — check `sigil proxy status` and the agent's log",
                human_duration(left),
                human_duration(life)
            ));
        }
    }
    if p.config_revision < server_revision {
        warnings.push(format!(
            "the proxy enforces configuration revision {} but the server is at {server_revision}",
            p.config_revision
        ));
    }

    // Inbound mTLS.
    let mtls = CompiledMtls::from_resources(resources, &wl, &ctx);
    let mut ports = Vec::new();
    for t in &p.inbound {
        let port = t.port as u16;
        let (mode, origin) = mtls.mode_for_port(port);
        if mode == MtlsMode::Strict && t.plaintext_refused > 0 {
            let who: Vec<String> = t
                .plaintext_sources
                .iter()
                .filter(|s| s.refused)
                .map(|s| s.address.clone())
                .collect();
            warnings.push(format!(
                "port {port} is STRICT and refused {} plaintext connection(s) from [{}]: those callers have no proxy (\"connection termination\"); give them one, or add a portLevelMtls exception",
                t.plaintext_refused,
                who.join(", ")
            ));
        }
        if mode != MtlsMode::Strict && mode != MtlsMode::Disable && t.plaintext > 0 {
            notes.push(format!(
                "port {port} is PERMISSIVE and accepted {} plaintext connection(s): `sigil strict-readiness -n {ns}` lists the callers to fix before STRICT",
                t.plaintext
            ));
        }
        ports.push(json!({
            "port": port,
            "protocol": t.protocol,
            "mode": mode_name(mode),
            "setBy": origin_text(origin),
            "mtlsConnections": t.mtls,
            "plaintextConnections": t.plaintext,
            "plaintextRefused": t.plaintext_refused,
        }));
    }
    let ignored: Vec<String> = mtls
        .ignored()
        .iter()
        .map(|i| match &i.reason {
            IgnoredReason::SelectorInRootNamespace => format!(
                "PeerAuthentication {} is ignored: a selector in the root namespace selects nothing (move it to the workload's namespace)",
                i.id
            ),
            IgnoredReason::Shadowed { by, .. } => format!(
                "PeerAuthentication {} is ignored: {by} is older and wins at the same level",
                i.id
            ),
        })
        .collect();

    // Outbound DestinationRules.
    let rules: Vec<_> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::DestinationRule(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    let outbound: Vec<Value> = p
        .outbound
        .iter()
        .map(|u| {
            let q = sigil_proxy::outbound::destination_query(
                ns,
                &wl.labels,
                &ctx.root_namespace,
                &u.host,
                u.port as u16,
                (!u.subset.is_empty()).then_some(u.subset.as_str()),
            );
            match destination_tls(&rules, &q) {
                Some(d) => {
                    let mode = d
                        .tls
                        .map(|t| t.mode.as_str().to_owned())
                        .unwrap_or_else(|| "auto mTLS".into());
                    json!({
                        "upstream": format!("{}:{}", u.host, u.port),
                        "tls": mode,
                        "destinationRule": d.rule.to_string(),
                        "level": format!("{:?}", d.level),
                    })
                }
                None => json!({
                    "upstream": format!("{}:{}", u.host, u.port),
                    "tls": "auto mTLS",
                    "destinationRule": Value::Null,
                }),
            }
        })
        .collect();

    // Authorization.
    let authz = CompiledAuthz::from_resources(resources, &wl, &ctx);
    let order = [Action::Custom, Action::Deny, Action::Allow, Action::Audit];
    let mut policies = Vec::new();
    for action in order {
        for pol in authz.policies().filter(|p| p.action == action) {
            policies.push(json!({
                "policy": pol.id.to_string(),
                "action": action_name(action),
                "dryRun": pol.dry_run,
                "provider": pol.provider,
            }));
        }
    }
    let not_applied: Vec<String> = authz
        .not_applied()
        .iter()
        .map(|n| match n.reason {
            NotAppliedReason::TargetRef => format!(
                "{} uses targetRef(s): it applies to gateways and waypoints only",
                n.id
            ),
            NotAppliedReason::SelectorMismatch => {
                format!("{} selects other workloads (labels differ)", n.id)
            }
        })
        .collect();

    json!({
        "workload": format!("{ns}/{name}"),
        "labels": p.labels,
        "spiffeId": p.spiffe_id,
        "proxies": proxies.iter().filter_map(|r| r.report.as_ref().map(|q| json!({
            "proxyId": q.proxy_id,
            "agent": r.agent_id,
            "pid": q.pid,
            "lastSeen": r.received_at,
            "configRevision": q.config_revision,
            "adminAddress": q.admin_address,
            "lastError": q.last_error,
        }))).collect::<Vec<_>>(),
        "serverRevision": server_revision,
        "entries": entry_json,
        "attestedSelectors": p.attested_selectors,
        "svid": {
            "serial": p.svid_serial,
            "notAfter": p.svid_not_after,
            "chain": chain,
        },
        "inbound": ports,
        "peerAuthenticationsIgnored": ignored,
        "outbound": outbound,
        "authorizationPolicies": policies,
        "authorizationPoliciesNotApplied": not_applied,
        "notes": notes,
        "warnings": warnings,
    })
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

fn render(v: &Value, now: i64) -> String {
    let mut o = String::new();
    let mut line = |t: String| {
        o.push_str(&t);
        o.push('\n');
    };
    line(format!("Workload:    {}", s(&v["workload"])));
    if let Some(l) = v["labels"].as_object() {
        let labels: Vec<String> = l.iter().map(|(k, x)| format!("{k}={}", s(x))).collect();
        line(format!("Labels:      {}", labels.join(", ")));
    }
    line(format!("SPIFFE ID:   {}", s(&v["spiffeId"])));
    for p in v["proxies"].as_array().into_iter().flatten() {
        line(format!(
            "Proxy:       {} (pid {}, agent {}, last report {} ago, config revision {} of {}, admin {})",
            s(&p["proxyId"]),
            s(&p["pid"]),
            s(&p["agent"]),
            human_duration(now - p["lastSeen"].as_i64().unwrap_or(now)),
            s(&p["configRevision"]),
            s(&v["serverRevision"]),
            s(&p["adminAddress"])
        ));
    }
    line(String::new());
    line("Registration entry:".into());
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        line("  (none for this SPIFFE ID)".into());
    }
    for e in &entries {
        let sel: Vec<String> = e["selectors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        line(format!("  Entry ID:  {}", s(&e["id"])));
        line(format!("  Parent ID: {}", s(&e["parentId"])));
        line(format!("  Selectors: {}", sel.join(", ")));
        let ttl = e["x509SvidTtl"].as_i64().unwrap_or(0);
        line(format!(
            "  X509 TTL:  {}",
            if ttl == 0 {
                "server default".to_owned()
            } else {
                human_duration(ttl)
            }
        ));
    }
    let att: Vec<String> = v["attestedSelectors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    line(format!("  Attested:  {}", att.join(", ")));
    line(String::new());
    line("SVID:".into());
    line(format!("  Serial:    {}", s(&v["svid"]["serial"])));
    let na = v["svid"]["notAfter"].as_i64().unwrap_or(0);
    if na > 0 {
        line(format!(
            "  Expires:   {} ({})",
            crate::fmt_time(na),
            if na > now {
                format!("in {}", human_duration(na - now))
            } else {
                format!("{} ago", human_duration(now - na))
            }
        ));
    }
    for (i, c) in v["svid"]["chain"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        line(format!(
            "  Chain[{i}]:  {} (issuer {})",
            s(&c["subject"]),
            s(&c["issuer"])
        ));
    }
    line(String::new());
    line("Inbound mTLS (PeerAuthentication):".into());
    for p in v["inbound"].as_array().into_iter().flatten() {
        line(format!(
            "  port {} ({}): {} — set by {}",
            s(&p["port"]),
            s(&p["protocol"]),
            s(&p["mode"]),
            s(&p["setBy"])
        ));
    }
    for i in v["peerAuthenticationsIgnored"]
        .as_array()
        .into_iter()
        .flatten()
    {
        line(format!("  note: {}", s(i)));
    }
    line(String::new());
    line("Outbound (DestinationRule TLS):".into());
    let out = v["outbound"].as_array().cloned().unwrap_or_default();
    if out.is_empty() {
        line("  (no upstreams in the proxy config)".into());
    }
    for u in &out {
        match u["destinationRule"].as_str() {
            Some(dr) => line(format!(
                "  {} → {} (DestinationRule {dr}, {})",
                s(&u["upstream"]),
                s(&u["tls"]),
                s(&u["level"])
            )),
            None => line(format!(
                "  {} → auto mTLS (no DestinationRule)",
                s(&u["upstream"])
            )),
        }
    }
    line(String::new());
    line(
        "AuthorizationPolicies (evaluation order: CUSTOM, DENY, ALLOW; AUDIT never decides):"
            .into(),
    );
    let pols = v["authorizationPolicies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pols.is_empty() {
        line(
            "  (none: every authenticated or plaintext request the mTLS mode admits is allowed)"
                .into(),
        );
    }
    for p in &pols {
        let dry = if p["dryRun"].as_bool() == Some(true) {
            " (dry-run: logged, not enforced)"
        } else {
            ""
        };
        line(format!("  {} {}{dry}", s(&p["action"]), s(&p["policy"])));
    }
    for n in v["authorizationPoliciesNotApplied"]
        .as_array()
        .into_iter()
        .flatten()
    {
        line(format!("  not applied: {}", s(n)));
    }
    let notes = v["notes"].as_array().cloned().unwrap_or_default();
    if !notes.is_empty() {
        line(String::new());
        line("Notes:".into());
        for n in &notes {
            line(format!("  - {}", s(n)));
        }
    }
    let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
    if !warnings.is_empty() {
        line(String::new());
        line("Warnings:".into());
        for w in &warnings {
            line(format!("  - {}", s(w)));
        }
    }
    o
}

async fn workload(a: DescribeWorkloadArgs) -> Result<(), (u8, anyhow::Error)> {
    let (ns, name) = live::parse_workload_ref(&a.workload).map_err(|e| (64, e))?;
    let op = |e: anyhow::Error| (1, e);
    let list = live::proxies(&a.socket_path, 3600).await.map_err(op)?;
    let mine = live::of_workload(&list.proxies, &ns, &name);
    if mine.is_empty() {
        return Err((2, live::no_such_workload(&list.proxies, &ns, &name)));
    }
    let (revision, resources) = live::resources(&a.socket_path).await.map_err(op)?;
    let spiffe_id = mine
        .iter()
        .filter_map(|r| r.report.as_ref())
        .map(|p| p.spiffe_id.clone())
        .find(|s| !s.is_empty());
    let entries = match spiffe_id {
        Some(id) => {
            let mut c = connect(&a.socket_path).await.map_err(op)?;
            c.list_entries(ListEntriesRequest {
                by_spiffe_id: id,
                ..Default::default()
            })
            .await
            .map_err(|e| op(status(e)))?
            .into_inner()
            .entries
        }
        None => Vec::new(),
    };
    let v = describe(
        &ns,
        &name,
        &mine,
        &entries,
        &resources,
        revision.max(list.config_revision),
        list.now,
    );
    if a.output == "json" {
        print_json(&v);
    } else {
        print!("{}", render(&v, list.now));
    }
    let n = v["warnings"].as_array().map_or(0, Vec::len);
    if n > 0 {
        return Err((2, anyhow::anyhow!("{ns}/{name}: {n} warning(s)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::status::{PortTraffic, ProxyReport};

    fn record(not_before: i64, not_after: i64) -> ProxyRecord {
        let ca = sigil_proxy::testing::TestCa::new("cluster.local").unwrap();
        let issued = ca
            .issue(
                "spiffe://cluster.local/ns/payments/sa/billing-service",
                &[],
                not_before,
                not_after,
            )
            .unwrap();
        ProxyRecord {
            agent_id: "spiffe://cluster.local/spire/agent/x".into(),
            report: Some(ProxyReport {
                proxy_id: "h/1/1".into(),
                workload_namespace: "payments".into(),
                workload_name: "billing-service".into(),
                spiffe_id: "spiffe://cluster.local/ns/payments/sa/billing-service".into(),
                config_revision: 3,
                svid_not_after: not_after,
                svid_chain: issued.chain.iter().map(|c| c.to_vec()).collect(),
                inbound: vec![PortTraffic {
                    port: 8080,
                    protocol: "http".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            received_at: 1000,
            ..Default::default()
        }
    }

    fn warnings(v: &Value) -> Vec<String> {
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn an_svid_past_its_renewal_point_is_a_warning() {
        let now = crate::now_unix();
        let entry = Entry {
            spiffe_id: "spiffe://cluster.local/ns/payments/sa/billing-service".into(),
            ..Default::default()
        };
        // 1 h life, 10 min left: the agent should have renewed it at 30 min.
        let late = record(now - 3000, now + 600);
        let v = describe(
            "payments",
            "billing-service",
            &[&late],
            std::slice::from_ref(&entry),
            &[],
            3,
            now,
        );
        let w = warnings(&v);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("past its renewal point"), "{w:?}");
        // Fresh: no warning; behind on configuration: a warning.
        let fresh = record(now - 60, now + 3540);
        let v = describe(
            "payments",
            "billing-service",
            &[&fresh],
            std::slice::from_ref(&entry),
            &[],
            3,
            now,
        );
        assert!(warnings(&v).is_empty(), "{v}");
        let v = describe(
            "payments",
            "billing-service",
            &[&fresh],
            &[entry],
            &[],
            5,
            now,
        );
        assert!(
            warnings(&v)[0].contains("revision 3 but the server is at 5"),
            "{v}"
        );
        // No entry any more for the ID it holds.
        let v = describe("payments", "billing-service", &[&fresh], &[], &[], 3, now);
        assert!(warnings(&v)[0].contains("will not be renewed"), "{v}");
    }
}
