//! `sigil authz check`: evaluates a request against the live configuration exactly as the
//! destination's proxy would — first the PeerAuthentication mode of the port, then the
//! AuthorizationPolicies — and names the policy and rule that decided. For a denial it shows
//! the nearest ALLOW rule and the first field that did not match. (Istio's `authz check`
//! only lists policies; this evaluates.)

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sigil_policy::{
    CompiledAuthz, CompiledMtls, Denial, MtlsMode, Permit, Request, Resource, Verdict, authorize,
    explain,
};
use sigil_proto::status::ProxyReport;

use crate::admin::{DEFAULT_SOCKET, connect, status};
use crate::describe_cmd::{mode_name, origin_text};
use crate::live::{self, print_json};

#[derive(Debug, Subcommand)]
pub enum AuthzCmd {
    /// Would this request reach the workload? The decision, the policy and rule that made it,
    /// and for a denial the nearest rule that would allow and why it did not match.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The caller's SPIFFE ID (`spiffe://…`), or NAMESPACE/SERVICE-ACCOUNT for
    /// `spiffe://<trust domain>/ns/NAMESPACE/sa/SERVICE-ACCOUNT`.
    #[arg(
        long,
        conflicts_with = "plaintext",
        required_unless_present = "plaintext"
    )]
    from: Option<String>,
    /// The caller has no proxy and speaks plaintext.
    #[arg(long)]
    plaintext: bool,
    /// NAMESPACE/NAME of the destination workload.
    #[arg(long)]
    to: String,
    /// The destination port (one of the workload's inbound ports).
    #[arg(long)]
    port: u16,
    /// HTTP method (default GET on HTTP ports).
    #[arg(long)]
    method: Option<String>,
    /// HTTP path (default /).
    #[arg(long)]
    path: Option<String>,
    /// HTTP Host / :authority.
    #[arg(long)]
    host: Option<String>,
    /// A request header, `name=value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The caller's IP address (for ipBlocks rules; default 127.0.0.1).
    #[arg(long = "source-ip", default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// The workload's address the caller connects to (`destination.ip` conditions).
    #[arg(long = "destination-ip")]
    destination_ip: Option<IpAddr>,
    /// http or tcp; default from the port's protocol (an `auto` port is HTTP when the
    /// caller speaks HTTP/1, TCP otherwise).
    #[arg(long, value_parser = ["http", "tcp"])]
    protocol: Option<String>,
    /// text or json.
    #[arg(long = "output", short = 'o', default_value = "text", value_parser = ["text", "json"])]
    output: String,
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    socket_path: PathBuf,
}

pub async fn run(c: AuthzCmd) -> Result<(), (u8, anyhow::Error)> {
    match c {
        AuthzCmd::Check(a) => check(a).await,
    }
}

/// The caller's SPIFFE ID from `--from`.
pub fn peer_id(from: &str, trust_domain: &str) -> anyhow::Result<String> {
    if from.starts_with("spiffe://") {
        sigil_spiffe::SpiffeId::parse(from).map_err(|e| anyhow::anyhow!("--from {from:?}: {e}"))?;
        return Ok(from.to_owned());
    }
    match from.split_once('/') {
        Some((ns, sa)) if !ns.is_empty() && !sa.is_empty() && !sa.contains('/') => {
            Ok(format!("spiffe://{trust_domain}/ns/{ns}/sa/{sa}"))
        }
        _ => anyhow::bail!(
            "--from {from:?}: give a SPIFFE ID (spiffe://cluster.local/ns/payments/sa/checkout-service) or NAMESPACE/SERVICE-ACCOUNT"
        ),
    }
}

/// The HTTP attributes of the check, if the port speaks HTTP.
pub struct HttpParts {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
}

/// Evaluates the check (pure): the JSON the command prints, and whether it is allowed.
pub fn evaluate(
    target: &ProxyReport,
    resources: &[Resource],
    port: u16,
    peer: Option<&str>,
    source_ip: IpAddr,
    destination_ip: Option<IpAddr>,
    http: Option<&HttpParts>,
) -> (Value, bool) {
    let wl = live::workload(target);
    let ctx = live::mesh_context(target);
    let mtls = CompiledMtls::from_resources(resources, &wl, &ctx);
    let (mode, origin) = mtls.mode_for_port(port);
    let target_name = format!("{}/{}", target.workload_namespace, target.workload_name);
    let mut out = json!({
        "to": target_name,
        "port": port,
        "from": peer.unwrap_or("(plaintext)"),
        "mtlsMode": mode_name(mode),
        "mtlsSetBy": origin_text(origin),
        "protocol": if http.is_some() { "http" } else { "tcp" },
    });
    if peer.is_none() && mode == MtlsMode::Strict {
        out["allowed"] = json!(false);
        out["decidedBy"] = json!(format!("PeerAuthentication: {}", origin_text(origin)));
        out["reason"] = json!(format!(
            "port {port} is STRICT, so a caller without a proxy is refused before authorization: the connection is closed (\"upstream connect error … connection termination\")"
        ));
        out["fix"] = json!(format!(
            "run the caller with a Sigil proxy so it speaks mTLS, or add `portLevelMtls: {{{port}: {{mode: DISABLE}}}}` to a PeerAuthentication selecting {target_name} if this port must stay plaintext"
        ));
        return (out, false);
    }
    let peer = if mode == MtlsMode::Disable && peer.is_some() {
        out["note"] = json!(format!(
            "port {port} is DISABLE: the proxy does not terminate mTLS there, so the caller's identity is not known to authorization (evaluated as plaintext)"
        ));
        None
    } else {
        peer
    };
    let authz = CompiledAuthz::from_resources(resources, &wl, &ctx);
    let header_pairs: Vec<(&str, &str)> = http
        .map(|h| {
            h.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let headers: &[(&str, &str)] = &header_pairs;
    let mut req = match http {
        Some(h) => Request::http(peer, source_ip, port, &h.method, &h.path, &h.host),
        None => Request::tcp(peer, source_ip, port),
    };
    if let Some(h) = req.http.as_mut() {
        h.headers = &headers;
    }
    req.destination_ip = destination_ip;
    let decision = authorize(&authz, &req);
    let allowed = decision.is_permit();
    out["allowed"] = json!(allowed);
    out["decidedBy"] = json!(match decision.verdict {
        Verdict::Permit(Permit::Allowed(r)) | Verdict::Deny(Denial::Denied(r)) => r.to_string(),
        Verdict::Deny(Denial::Custom { rule, .. }) => rule.to_string(),
        Verdict::Permit(Permit::NoAllowPolicy) => "no ALLOW policy applies".to_owned(),
        Verdict::Deny(Denial::NoAllowMatched { .. }) => "no ALLOW rule matched".to_owned(),
    });
    out["reason"] = json!(decision.verdict.to_string());
    out["response"] = json!(match (allowed, http.is_some()) {
        (true, _) => "forwarded to the app",
        (false, true) => "HTTP 403 \"RBAC: access denied\"",
        (false, false) => "connection closed",
    });
    if let Some(a) = decision.audit {
        out["audit"] = json!(a.to_string());
    }
    if let Some(d) = decision.dry_run {
        out["dryRun"] = json!(d.to_string());
    }
    if !allowed && let Some(e) = explain(&authz, &req) {
        out["nearestAllowRule"] = json!({
            "rule": e.nearest.to_string(),
            "field": e.mismatch.field,
            "mismatch": e.mismatch.reason,
        });
    }
    (out, allowed)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn render(v: &Value) -> String {
    let mut o = String::new();
    let verdict = if v["allowed"].as_bool() == Some(true) {
        "ALLOWED"
    } else {
        "DENIED"
    };
    o.push_str(&format!(
        "{verdict}: {} → {} port {} ({})\n",
        s(&v["from"]),
        s(&v["to"]),
        s(&v["port"]),
        s(&v["protocol"])
    ));
    o.push_str(&format!(
        "  mTLS:        {} (set by {})\n",
        s(&v["mtlsMode"]),
        s(&v["mtlsSetBy"])
    ));
    if let Some(n) = v.get("note") {
        o.push_str(&format!("  note:        {}\n", s(n)));
    }
    o.push_str(&format!("  decided by:  {}\n", s(&v["decidedBy"])));
    o.push_str(&format!("  why:         {}\n", s(&v["reason"])));
    if let Some(r) = v.get("response") {
        o.push_str(&format!("  result:      {}\n", s(r)));
    }
    if let Some(n) = v.get("nearestAllowRule") {
        o.push_str(&format!(
            "  nearest:     {} — {} did not match: {}\n",
            s(&n["rule"]),
            s(&n["field"]),
            s(&n["mismatch"])
        ));
    }
    if let Some(d) = v.get("dryRun") {
        o.push_str(&format!("  dry-run:     {}\n", s(d)));
    }
    if let Some(a) = v.get("audit") {
        o.push_str(&format!("  audit:       {}\n", s(a)));
    }
    if let Some(f) = v.get("fix") {
        o.push_str(&format!("  fix:         {}\n", s(f)));
    }
    o
}

fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = h
        .split_once('=')
        .or_else(|| h.split_once(':'))
        .ok_or_else(|| anyhow::anyhow!("--header {h:?}: write name=value"))?;
    if k.trim().is_empty() {
        anyhow::bail!("--header {h:?}: the header name is empty");
    }
    Ok((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
}

async fn check(a: CheckArgs) -> Result<(), (u8, anyhow::Error)> {
    let usage = |e: anyhow::Error| (64, e);
    let op = |e: anyhow::Error| (1, e);
    let (ns, name) = live::parse_workload_ref(&a.to).map_err(usage)?;
    let headers = a
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)?;
    let list = live::proxies(&a.socket_path, 0).await.map_err(op)?;
    let mine = live::of_workload(&list.proxies, &ns, &name);
    let Some(target) = mine
        .iter()
        .max_by_key(|r| r.received_at)
        .and_then(|r| r.report.as_ref())
    else {
        return Err((2, live::no_such_workload(&list.proxies, &ns, &name)));
    };
    let Some(port) = target.inbound.iter().find(|p| p.port == u32::from(a.port)) else {
        let ports: Vec<String> = target.inbound.iter().map(|p| p.port.to_string()).collect();
        return Err((
            2,
            anyhow::anyhow!(
                "{ns}/{name} has no inbound port {} in its proxy config; its ports: {}",
                a.port,
                ports.join(", ")
            ),
        ));
    };
    let peer = match &a.from {
        Some(f) => {
            let td = if f.starts_with("spiffe://") {
                String::new()
            } else {
                let mut c = connect(&a.socket_path).await.map_err(op)?;
                c.health(sigil_proto::admin::HealthRequest {})
                    .await
                    .map_err(|e| op(status(e)))?
                    .into_inner()
                    .trust_domain
            };
            Some(peer_id(f, &td).map_err(usage)?)
        }
        None => None,
    };
    let is_http = match a.protocol.as_deref() {
        Some(p) => p == "http",
        None => port.protocol != "tcp",
    };
    if !is_http && (a.method.is_some() || a.path.is_some() || !headers.is_empty()) {
        return Err(usage(anyhow::anyhow!(
            "port {} of {ns}/{name} is TCP: HTTP attributes (--method, --path, --header) do not exist there; drop them",
            a.port
        )));
    }
    let http = is_http.then(|| HttpParts {
        method: a.method.clone().unwrap_or_else(|| "GET".into()),
        path: a.path.clone().unwrap_or_else(|| "/".into()),
        host: a
            .host
            .clone()
            .unwrap_or_else(|| format!("{name}.{ns}.svc.cluster.local:{}", a.port)),
        headers,
    });
    let (_, resources) = live::resources(&a.socket_path).await.map_err(op)?;
    let (v, allowed) = evaluate(
        target,
        &resources,
        a.port,
        peer.as_deref(),
        a.source_ip,
        a.destination_ip,
        http.as_ref(),
    );
    if a.output == "json" {
        print_json(&v);
    } else {
        print!("{}", render(&v));
    }
    if !allowed {
        return Err((2, anyhow::anyhow!("denied")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: payments}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: billing-policy, namespace: payments}
spec:
  selector:
    matchLabels: {app: billing-service}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/payments/sa/checkout-service"]
    to:
    - operation:
        methods: ["POST"]
        paths: ["/api/v1/charge"]
"#;

    fn billing() -> ProxyReport {
        ProxyReport {
            workload_namespace: "payments".into(),
            workload_name: "billing-service".into(),
            labels: [("app".to_owned(), "billing-service".to_owned())].into(),
            ..Default::default()
        }
    }

    fn http(method: &str, path: &str) -> HttpParts {
        HttpParts {
            method: method.into(),
            path: path.into(),
            host: "billing".into(),
            headers: vec![],
        }
    }

    #[test]
    fn the_seed_scenario_decides_with_the_rule_that_decided() {
        let res = sigil_policy::parse_documents("t.yaml", YAML).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let checkout = "spiffe://cluster.local/ns/payments/sa/checkout-service";
        let frontend = "spiffe://cluster.local/ns/payments/sa/frontend";
        let (v, ok) = evaluate(
            &billing(),
            &res,
            8080,
            Some(checkout),
            ip,
            None,
            Some(&http("POST", "/api/v1/charge")),
        );
        assert!(ok, "{v}");
        assert!(
            s(&v["decidedBy"]).contains("payments/billing-policy rule 0"),
            "{v}"
        );
        let (v, ok) = evaluate(
            &billing(),
            &res,
            8080,
            Some(frontend),
            ip,
            None,
            Some(&http("POST", "/api/v1/charge")),
        );
        assert!(!ok);
        assert_eq!(s(&v["response"]), "HTTP 403 \"RBAC: access denied\"");
        assert!(
            s(&v["nearestAllowRule"]["field"]).contains("principals"),
            "{v}"
        );
        let (v, ok) = evaluate(
            &billing(),
            &res,
            8080,
            Some(checkout),
            ip,
            None,
            Some(&http("GET", "/api/v1/charge")),
        );
        assert!(!ok);
        assert!(
            s(&v["nearestAllowRule"]["field"]).contains("methods"),
            "{v}"
        );
        let (v, ok) = evaluate(
            &billing(),
            &res,
            8080,
            None,
            ip,
            None,
            Some(&http("POST", "/api/v1/charge")),
        );
        assert!(!ok);
        assert!(s(&v["reason"]).contains("STRICT"), "{v}");
        assert!(s(&v["fix"]).contains("portLevelMtls"), "{v}");
    }

    #[test]
    fn from_accepts_an_id_or_namespace_and_account() {
        assert_eq!(
            peer_id("payments/checkout", "cluster.local").unwrap(),
            "spiffe://cluster.local/ns/payments/sa/checkout"
        );
        assert!(peer_id("checkout", "cluster.local").is_err());
        assert!(peer_id("spiffe://bad domain/x", "cluster.local").is_err());
        assert!(parse_header("x-user=alice").is_ok());
        assert!(parse_header("=alice").is_err());
    }
}
