//! The live state the operator commands read from the server's admin socket: the proxies the
//! agents report, and the applied mesh configuration parsed with the same decoder the proxies
//! use (so a command evaluates exactly what the data plane enforces).

use std::path::Path;

use anyhow::Context as _;
use sigil_policy::{MeshContext, Resource, Workload};
use sigil_proto::admin::{GetConfigRequest, ListProxiesRequest, ListProxiesResponse, ProxyRecord};
use sigil_proto::status::ProxyReport;

use crate::admin::{connect, status};

/// Human durations: "3h12m", "45s", "2d4h".
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// Parses "30s", "15m", "1h", "2d" (or plain seconds).
pub fn parse_window(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        anyhow::anyhow!("--window {s:?}: write a number with s, m, h or d (e.g. 1h)")
    })?;
    let mul = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("--window {s:?}: the unit must be s, m, h or d (e.g. 30m)"),
    };
    n.checked_mul(mul)
        .filter(|w| (0..=86_400).contains(w))
        .ok_or_else(|| {
            anyhow::anyhow!("--window {s:?}: at most 24h (the history the server keeps)")
        })
}

/// Every reported proxy (counters over `window` seconds, 0 = each proxy's life).
pub async fn proxies(socket: &Path, window: i64) -> anyhow::Result<ListProxiesResponse> {
    let mut c = connect(socket).await?;
    c.list_proxies(ListProxiesRequest {
        window_seconds: window,
    })
    .await
    .map(|r| r.into_inner())
    .map_err(status)
}

/// The applied configuration, parsed, and its revision.
pub async fn resources(socket: &Path) -> anyhow::Result<(i64, Vec<Resource>)> {
    let mut c = connect(socket).await?;
    let r = c
        .get_config(GetConfigRequest {
            all_namespaces: true,
            ..Default::default()
        })
        .await
        .map_err(status)?
        .into_inner();
    let snapshot = sigil_proto::config::ConfigSnapshot {
        revision: r.revision,
        resources: r.resources,
        revoked: Vec::new(),
    };
    let parsed = sigil_proxy::mesh::MeshView::parse_snapshot(&snapshot)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the server's configuration does not parse")?;
    Ok((r.revision, parsed))
}

/// `NS/NAME` (or `NAME.NS`, istioctl's pod form) → (namespace, name).
pub fn parse_workload_ref(s: &str) -> anyhow::Result<(String, String)> {
    let (ns, name) = s
        .split_once('/')
        .or_else(|| s.rsplit_once('.').map(|(n, ns)| (ns, n)))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{s:?}: name the workload as NAMESPACE/NAME (e.g. payments/billing-service)"
            )
        })?;
    if ns.is_empty() || name.is_empty() {
        anyhow::bail!("{s:?}: name the workload as NAMESPACE/NAME (e.g. payments/billing-service)");
    }
    Ok((ns.to_owned(), name.to_owned()))
}

/// The proxies reporting as workload `ns/name`.
pub fn of_workload<'a>(list: &'a [ProxyRecord], ns: &str, name: &str) -> Vec<&'a ProxyRecord> {
    list.iter()
        .filter(|r| {
            r.report
                .as_ref()
                .is_some_and(|p| p.workload_namespace == ns && p.workload_name == name)
        })
        .collect()
}

/// The error for a workload no proxy reports, naming those that do.
pub fn no_such_workload(list: &[ProxyRecord], ns: &str, name: &str) -> anyhow::Error {
    let mut known: Vec<String> = list
        .iter()
        .filter_map(|r| r.report.as_ref())
        .map(|p| format!("{}/{}", p.workload_namespace, p.workload_name))
        .collect();
    known.sort();
    known.dedup();
    let known = if known.is_empty() {
        "no proxy reports to the server yet: is `sigil proxy run` running beside the workload, with an agent connected to this server?".to_owned()
    } else {
        format!("workloads with a reporting proxy: {}", known.join(", "))
    };
    anyhow::anyhow!("no proxy reports workload {ns}/{name}; {known}")
}

/// The policy view of a reported workload (namespace, labels, SPIFFE ID).
pub fn workload(p: &ProxyReport) -> Workload {
    let mut w = Workload::new(
        &p.workload_namespace,
        p.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    w.spiffe_id = (!p.spiffe_id.is_empty()).then(|| p.spiffe_id.clone());
    w
}

/// The mesh context the reporting proxy enforces with (its `rootNamespace`).
pub fn mesh_context(p: &ProxyReport) -> MeshContext {
    let mut ctx = MeshContext::default();
    if !p.root_namespace.is_empty() {
        ctx.root_namespace = p.root_namespace.clone();
    }
    ctx
}

/// Writes `v` as pretty JSON on stdout.
pub fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_workload_refs_parse() {
        assert_eq!(parse_window("1h").unwrap(), 3600);
        assert_eq!(parse_window("90").unwrap(), 90);
        assert!(parse_window("1w").is_err());
        assert!(parse_window("25h").is_err());
        assert!(parse_window("99999999999999999d").is_err());
        assert_eq!(
            parse_workload_ref("payments/billing").unwrap(),
            ("payments".into(), "billing".into())
        );
        assert_eq!(
            parse_workload_ref("billing.payments").unwrap(),
            ("payments".into(), "billing".into())
        );
        assert!(parse_workload_ref("billing").is_err());
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(3 * 3600 + 120), "3h2m");
    }
}
