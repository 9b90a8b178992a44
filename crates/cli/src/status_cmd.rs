//! `sigil proxy status` (like `istioctl proxy-status`) and `sigil strict-readiness` (the seed
//! document's STRICT rollout checklist as a command), both from the proxies' reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use sigil_proto::admin::ProxyRecord;
use sigil_proto::status::PortTraffic;

use crate::admin::DEFAULT_SOCKET;
use crate::live::{self, human_duration, print_json};

/// A proxy not heard from for this long is reported as stale.
const STALE_AFTER: i64 = 60;
/// An SVID with less than this share of its life left is flagged (the agent renews at half).
const EXPIRY_WARN_FRACTION: f64 = 1.0 / 6.0;

#[derive(Debug, Args)]
pub struct ProxyStatusArgs {
    /// Only this namespace.
    #[arg(long = "namespace", short = 'n')]
    namespace: Option<String>,
    /// text (a table) or json.
    #[arg(long = "output", short = 'o', default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    socket_path: PathBuf,
}

/// One proxy's health as `proxy status` judges it.
#[derive(Debug, PartialEq, Eq)]
pub struct Health {
    pub config: String,
    pub problems: Vec<String>,
}

/// Judges one report against the server's revision and clock (pure).
pub fn judge(r: &ProxyRecord, server_revision: i64, now: i64) -> Health {
    let mut problems = Vec::new();
    let Some(p) = &r.report else {
        return Health {
            config: "UNKNOWN".into(),
            problems: vec!["empty report".into()],
        };
    };
    let config = if p.config_revision == 0 {
        problems.push("has no mesh configuration yet".into());
        "NOT RECEIVED".to_owned()
    } else if p.config_revision < server_revision {
        problems.push(format!(
            "enforces configuration revision {} but the server is at {server_revision}",
            p.config_revision
        ));
        format!("STALE ({}/{server_revision})", p.config_revision)
    } else {
        "SYNCED".to_owned()
    };
    if p.spiffe_id.is_empty() {
        problems.push("has no SVID".into());
    } else if p.svid_not_after <= now {
        problems.push(format!(
            "SVID expired {} ago",
            human_duration(now - p.svid_not_after)
        ));
    } else if let Some(leaf) = p.svid_chain.first()
        && let Ok((_, c)) = x509_parser::parse_x509_certificate(leaf)
    {
        let nb = c.validity().not_before.timestamp();
        let life = (p.svid_not_after - nb).max(1) as f64;
        if ((p.svid_not_after - now) as f64) < life * EXPIRY_WARN_FRACTION {
            problems.push(format!(
                "SVID expires in {} and was not renewed at half its life: is the agent reaching the server?",
                human_duration(p.svid_not_after - now)
            ));
        }
    }
    if now - r.received_at > STALE_AFTER {
        problems.push(format!(
            "not heard from for {}",
            human_duration(now - r.received_at)
        ));
    }
    Health { config, problems }
}

pub async fn proxy_status(a: ProxyStatusArgs) -> Result<(), (u8, anyhow::Error)> {
    let resp = live::proxies(&a.socket_path, 0).await.map_err(|e| (1, e))?;
    let rows: Vec<&ProxyRecord> = resp
        .proxies
        .iter()
        .filter(|r| {
            a.namespace.as_deref().is_none_or(|ns| {
                r.report
                    .as_ref()
                    .is_some_and(|p| p.workload_namespace == ns)
            })
        })
        .collect();
    let judged: Vec<Health> = rows
        .iter()
        .map(|r| judge(r, resp.config_revision, resp.now))
        .collect();
    let bad = judged.iter().filter(|h| !h.problems.is_empty()).count();
    if a.output == "json" {
        let items: Vec<_> = rows
            .iter()
            .zip(&judged)
            .filter_map(|(r, h)| {
                let p = r.report.as_ref()?;
                Some(json!({
                    "workload": format!("{}/{}", p.workload_namespace, p.workload_name),
                    "proxyId": p.proxy_id,
                    "agent": r.agent_id,
                    "spiffeId": p.spiffe_id,
                    "config": h.config,
                    "configRevision": p.config_revision,
                    "serverRevision": resp.config_revision,
                    "svidSerial": p.svid_serial,
                    "svidNotAfter": p.svid_not_after,
                    "lastSeen": r.received_at,
                    "lastError": p.last_error,
                    "lastErrorAt": p.last_error_at,
                    "adminAddress": p.admin_address,
                    "problems": h.problems,
                }))
            })
            .collect();
        print_json(&json!({ "serverRevision": resp.config_revision, "proxies": items }));
    } else if rows.is_empty() {
        println!(
            "No proxies reported{}. Proxies report through their node agent every few seconds: check that `sigil proxy run` is running beside the workload and that its agent is connected to this server (`sigil agent list`).",
            a.namespace
                .as_deref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        );
    } else {
        let mut table = vec![vec![
            "NAME".to_owned(),
            "SPIFFE ID".into(),
            "CONFIG".into(),
            "SVID EXPIRES".into(),
            "LAST SEEN".into(),
            "AGENT".into(),
            "LAST ERROR".into(),
        ]];
        for (r, h) in rows.iter().zip(&judged) {
            let Some(p) = &r.report else { continue };
            table.push(vec![
                format!("{}.{}", p.workload_name, p.workload_namespace),
                if p.spiffe_id.is_empty() {
                    "(none)".into()
                } else {
                    p.spiffe_id.clone()
                },
                h.config.clone(),
                if p.svid_not_after == 0 {
                    "-".into()
                } else if p.svid_not_after <= resp.now {
                    "EXPIRED".into()
                } else {
                    format!("in {}", human_duration(p.svid_not_after - resp.now))
                },
                format!("{} ago", human_duration(resp.now - r.received_at)),
                r.agent_id.clone(),
                if p.last_error.is_empty() {
                    "-".into()
                } else if p.last_error_at > 0 {
                    format!(
                        "{} ago: {}",
                        human_duration(resp.now - p.last_error_at),
                        p.last_error
                    )
                } else {
                    p.last_error.clone()
                },
            ]);
        }
        print!("{}", crate::config_table::layout(&table));
        for (r, h) in rows.iter().zip(&judged) {
            if let Some(p) = &r.report {
                for problem in &h.problems {
                    println!(
                        "warning: {}.{} ({}) {problem}",
                        p.workload_name, p.workload_namespace, p.proxy_id
                    );
                }
            }
        }
    }
    if bad > 0 {
        return Err((
            2,
            anyhow::anyhow!("{bad} of {} proxies need attention", rows.len()),
        ));
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// Only this namespace.
    #[arg(long = "namespace", short = 'n')]
    namespace: Option<String>,
    /// How far back to look: 30m, 1h, 1d… (at most 24h; counters older than the proxy's
    /// start are not known).
    #[arg(long, default_value = "1h")]
    window: String,
    /// text or json.
    #[arg(long = "output", short = 'o', default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    socket_path: PathBuf,
}

/// One workload port, summed over the workload's proxies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortReadiness {
    pub namespace: String,
    pub workload: String,
    pub port: u32,
    pub mode: String,
    pub mtls: u64,
    pub plaintext: u64,
    pub refused: u64,
    /// (address, connections, last seen, refused)
    pub sources: Vec<(String, u64, i64, bool)>,
    pub covered: i64,
    pub verdict: Verdict,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// PERMISSIVE and only mTLS seen.
    #[default]
    Safe,
    /// PERMISSIVE with plaintext callers: switching would break them.
    WouldBreak,
    /// PERMISSIVE and no traffic at all in the window: nothing proves it safe.
    NoTraffic,
    /// Already STRICT.
    Strict,
    /// DISABLE: a port exception; STRICT elsewhere does not change it.
    Exception,
}

impl Verdict {
    fn text(self) -> &'static str {
        match self {
            Verdict::Safe => "safe to switch to STRICT",
            Verdict::WouldBreak => "NOT READY: plaintext callers would break",
            Verdict::NoTraffic => "no traffic seen: cannot tell",
            Verdict::Strict => "already STRICT",
            Verdict::Exception => "DISABLE (port exception, stays plaintext)",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::WouldBreak => "would_break",
            Verdict::NoTraffic => "no_traffic",
            Verdict::Strict => "strict",
            Verdict::Exception => "exception",
        }
    }
}

/// Sums the windowed counters per (workload, port) and judges each (pure).
pub fn readiness(records: &[ProxyRecord], namespace: Option<&str>) -> Vec<PortReadiness> {
    let mut by: BTreeMap<(String, String, u32), PortReadiness> = BTreeMap::new();
    for r in records {
        let Some(p) = &r.report else { continue };
        if namespace.is_some_and(|ns| ns != p.workload_namespace) {
            continue;
        }
        for t in &r.window {
            let e = by
                .entry((
                    p.workload_namespace.clone(),
                    p.workload_name.clone(),
                    t.port,
                ))
                .or_insert_with(|| PortReadiness {
                    namespace: p.workload_namespace.clone(),
                    workload: p.workload_name.clone(),
                    port: t.port,
                    mode: t.mtls_mode.clone(),
                    covered: r.window_covered_seconds,
                    ..Default::default()
                });
            if e.mode != t.mtls_mode {
                // Replicas disagree (a rollout, or one behind on configuration).
                e.mode = "MIXED".into();
            }
            add(e, t);
            e.covered = e.covered.min(r.window_covered_seconds);
        }
    }
    let mut out: Vec<PortReadiness> = by.into_values().collect();
    for e in &mut out {
        e.sources
            .sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        // Plaintext is only ever accepted by a non-STRICT proxy, so with MIXED modes any
        // plaintext still means someone would break.
        e.verdict = match e.mode.as_str() {
            "STRICT" => Verdict::Strict,
            "DISABLE" => Verdict::Exception,
            _ if e.plaintext > 0 => Verdict::WouldBreak,
            _ if e.mtls == 0 => Verdict::NoTraffic,
            _ => Verdict::Safe,
        };
    }
    out
}

fn add(e: &mut PortReadiness, t: &PortTraffic) {
    e.mtls += t.mtls;
    e.plaintext += t.plaintext;
    e.refused += t.plaintext_refused;
    for s in &t.plaintext_sources {
        match e.sources.iter_mut().find(|x| x.0 == s.address) {
            Some(x) => {
                x.1 += s.connections;
                if s.last_seen > x.2 {
                    x.2 = s.last_seen;
                    x.3 = s.refused;
                }
            }
            None => e
                .sources
                .push((s.address.clone(), s.connections, s.last_seen, s.refused)),
        }
    }
}

pub async fn strict_readiness(a: ReadinessArgs) -> Result<(), (u8, anyhow::Error)> {
    let window = live::parse_window(&a.window).map_err(|e| (64, e))?;
    let resp = live::proxies(&a.socket_path, window)
        .await
        .map_err(|e| (1, e))?;
    let rows = readiness(&resp.proxies, a.namespace.as_deref());
    let not_ready = rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::WouldBreak | Verdict::NoTraffic))
        .count();
    if a.output == "json" {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "workload": format!("{}/{}", r.namespace, r.workload),
                    "port": r.port,
                    "mode": r.mode,
                    "mtlsConnections": r.mtls,
                    "plaintextConnections": r.plaintext,
                    "plaintextRefused": r.refused,
                    "plaintextSources": r.sources.iter().map(|s| json!({
                        "address": s.0, "connections": s.1, "lastSeen": s.2, "refused": s.3,
                    })).collect::<Vec<_>>(),
                    "windowSeconds": window,
                    "coveredSeconds": r.covered,
                    "verdict": r.verdict.code(),
                })
            })
            .collect();
        print_json(&json!({ "ready": not_ready == 0 && !rows.is_empty(), "ports": items }));
    } else if rows.is_empty() {
        println!(
            "No proxy reports traffic{}: nothing can be judged. Start `sigil proxy run` beside each workload and let traffic flow in PERMISSIVE mode first.",
            a.namespace
                .as_deref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        );
    } else {
        print_readiness(&rows, window, resp.now);
    }
    if rows.is_empty() {
        return Err((2, anyhow::anyhow!("no proxy reports traffic")));
    }
    if not_ready > 0 {
        return Err((
            2,
            anyhow::anyhow!("{not_ready} port(s) are not ready for STRICT"),
        ));
    }
    Ok(())
}

fn print_readiness(rows: &[PortReadiness], window: i64, now: i64) {
    let mut table = vec![vec![
        "WORKLOAD".to_owned(),
        "PORT".into(),
        "MODE".into(),
        "MTLS".into(),
        "PLAINTEXT".into(),
        "VERDICT".into(),
    ]];
    for r in rows {
        table.push(vec![
            format!("{}/{}", r.namespace, r.workload),
            r.port.to_string(),
            r.mode.clone(),
            r.mtls.to_string(),
            if r.mode == "STRICT" {
                format!("{} refused", r.refused)
            } else {
                r.plaintext.to_string()
            },
            r.verdict.text().into(),
        ]);
    }
    print!("{}", crate::config_table::layout(&table));
    println!();
    for r in rows {
        let who = |only_refused: bool| {
            r.sources
                .iter()
                .filter(|s| s.3 == only_refused)
                .map(|s| {
                    format!(
                        "    {} ({} connection{} since the proxy started, last {} ago)",
                        s.0,
                        s.1,
                        if s.1 == 1 { "" } else { "s" },
                        human_duration(now - s.2)
                    )
                })
                .collect::<Vec<_>>()
        };
        match r.verdict {
            Verdict::WouldBreak => {
                println!(
                    "{}/{} port {}: {} plaintext connection(s) in the last {}; under STRICT these callers would be refused (\"connection termination\"):",
                    r.namespace,
                    r.workload,
                    r.port,
                    r.plaintext,
                    human_duration(r.covered)
                );
                for l in who(false) {
                    println!("{l}");
                }
                println!(
                    "  fix: run each caller with a Sigil proxy (`sigil proxy run`) so it speaks mTLS, or keep this port PERMISSIVE / add a portLevelMtls DISABLE exception for it"
                );
            }
            Verdict::NoTraffic => println!(
                "{}/{} port {}: no connection in the last {}: send representative traffic in PERMISSIVE mode before switching",
                r.namespace,
                r.workload,
                r.port,
                human_duration(r.covered)
            ),
            Verdict::Strict if r.refused > 0 => {
                println!(
                    "{}/{} port {}: STRICT refused {} plaintext connection(s) in the last {}:",
                    r.namespace,
                    r.workload,
                    r.port,
                    r.refused,
                    human_duration(r.covered)
                );
                for l in who(true) {
                    println!("{l}");
                }
            }
            _ => {}
        }
        if r.covered < window && !matches!(r.verdict, Verdict::Strict | Verdict::Exception) {
            println!(
                "  note: {}/{} port {}: only {} of the {} window is known (the proxy or the server started since)",
                r.namespace,
                r.workload,
                r.port,
                human_duration(r.covered),
                human_duration(window)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::status::{ProxyReport, TrafficSource};

    fn rec(name: &str, port: u32, mode: &str, mtls: u64, plain: u64, src: &[&str]) -> ProxyRecord {
        ProxyRecord {
            agent_id: "spiffe://cluster.local/spire/agent/join_token/x".into(),
            report: Some(ProxyReport {
                proxy_id: format!("h/{name}"),
                workload_namespace: "payments".into(),
                workload_name: name.into(),
                ..Default::default()
            }),
            received_at: 100,
            window: vec![PortTraffic {
                port,
                mtls_mode: mode.into(),
                mtls,
                plaintext: plain,
                plaintext_sources: src
                    .iter()
                    .map(|a| TrafficSource {
                        address: (*a).into(),
                        connections: 1,
                        last_seen: 90,
                        refused: false,
                    })
                    .collect(),
                ..Default::default()
            }],
            window_covered_seconds: 3600,
        }
    }

    #[test]
    fn verdicts_follow_mode_and_traffic() {
        let rows = readiness(
            &[
                rec("billing", 8080, "PERMISSIVE", 10, 2, &["10.1.1.1"]),
                rec(
                    "billing",
                    8080,
                    "PERMISSIVE",
                    5,
                    1,
                    &["10.1.1.1", "10.1.1.2"],
                ),
                rec("billing", 9090, "DISABLE", 0, 7, &["10.9.9.9"]),
                rec("checkout", 8080, "PERMISSIVE", 4, 0, &[]),
                rec("frontend", 8080, "PERMISSIVE", 0, 0, &[]),
                rec("ledger", 8080, "STRICT", 4, 0, &[]),
                rec("orders", 8080, "STRICT", 4, 0, &[]),
                rec("orders", 8080, "PERMISSIVE", 4, 1, &["10.2.2.2"]),
            ],
            None,
        );
        let v: Vec<_> = rows
            .iter()
            .map(|r| (r.workload.as_str(), r.port, r.verdict))
            .collect();
        assert_eq!(
            v,
            [
                ("billing", 8080, Verdict::WouldBreak),
                ("billing", 9090, Verdict::Exception),
                ("checkout", 8080, Verdict::Safe),
                ("frontend", 8080, Verdict::NoTraffic),
                ("ledger", 8080, Verdict::Strict),
                ("orders", 8080, Verdict::WouldBreak),
            ]
        );
        assert_eq!(rows[5].mode, "MIXED");
        // Two replicas of billing are summed, their callers merged.
        assert_eq!((rows[0].mtls, rows[0].plaintext), (15, 3));
        assert_eq!(rows[0].sources.len(), 2);
        assert_eq!(
            rows[0]
                .sources
                .iter()
                .find(|s| s.0 == "10.1.1.1")
                .unwrap()
                .1,
            2
        );
    }

    #[test]
    fn a_proxy_behind_on_config_or_without_svid_needs_attention() {
        let mut r = rec("billing", 8080, "PERMISSIVE", 0, 0, &[]);
        let h = judge(&r, 5, 100);
        assert_eq!(h.config, "NOT RECEIVED");
        assert!(h.problems.iter().any(|p| p.contains("no SVID")), "{h:?}");
        let p = r.report.as_mut().unwrap();
        p.config_revision = 4;
        p.spiffe_id = "spiffe://cluster.local/ns/payments/sa/billing".into();
        p.svid_not_after = 1000;
        let h = judge(&r, 5, 100);
        assert_eq!(h.config, "STALE (4/5)");
        r.report.as_mut().unwrap().config_revision = 5;
        assert_eq!(judge(&r, 5, 100).problems, Vec::<String>::new());
        assert!(judge(&r, 5, 1000 + 1).problems[0].contains("expired"));
        assert!(judge(&r, 5, 100 + STALE_AFTER + 1).problems[0].contains("not heard from"));
    }
}
