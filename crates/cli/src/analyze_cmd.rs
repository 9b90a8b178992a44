//! `sigil analyze`: like `istioctl analyze`, findings about configuration that is valid but
//! will not do what was meant, each with a code, a severity, the resource (and `file:line`)
//! and a fix. The analysis itself is `sigil_policy::analyze` (pure); this file gathers its
//! inputs from files and/or the running server, prints, and sets the exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use sigil_policy::analyze::{
    Finding, Input, KnownWorkload, Located, RegisteredEntry, Severity, Upstream, WorkloadPort,
    analyze, parse_located, workloads_from_entries,
};
use sigil_policy::{MeshContext, Protocol};
use sigil_proto::admin as api;
use sigil_proxy::config::{AppProtocol, ProxyConfig};

use crate::admin::{connect, status};
use crate::entry::SocketArg;

/// Exit code when findings reach the failure threshold (istioctl uses 79; Sigil's check
/// commands use 2, with 1 for operational errors and 64 for usage).
pub const EXIT_FINDINGS: u8 = 2;

#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when no finding reaches --failure-threshold, 2 when one does (istioctl exits 79; \
Sigil's check commands use 2), 1 when the server cannot be read, 64 for bad usage.
Codes: SG01xx selectors and identities, SG02xx mTLS, SG03xx authorization on TCP ports, \
SG04xx fields Sigil parses but does not enforce, SG05xx SVID and CA lifetimes. The table is in \
the documentation of sigil_policy::analyze.")]
pub struct AnalyzeArgs {
    /// Configuration to analyze: a YAML/JSON file, a directory (recursive) or - for stdin
    /// (same rules as `sigil apply -f`). With --live, these are analyzed as if applied on top
    /// of the server's configuration.
    #[arg(long = "filename", short = 'f')]
    pub files: Vec<PathBuf>,
    /// Proxy config files (`sigil proxy run --config`) or directories of them: the workloads,
    /// their labels, SPIFFE IDs, ports, protocols and upstreams. When given, a WorkloadEntry no
    /// proxy config matches is taken to run without a proxy.
    #[arg(long = "workloads")]
    pub workloads: Vec<PathBuf>,
    /// Registration entries as printed by `sigil entry show -o json` (without --live).
    #[arg(long = "entries")]
    pub entries: Option<PathBuf>,
    /// Analyze the running server's configuration, entries and CA (through the admin socket).
    #[arg(long = "live")]
    pub live: bool,
    /// Report only this namespace (and cluster-scoped objects); also the namespace of
    /// documents that name none, as with `sigil apply -n`. Default: every namespace.
    #[arg(long = "namespace", short = 'n')]
    pub namespace: Option<String>,
    /// Report every namespace (the default when -n is not given).
    #[arg(long = "all-namespaces", short = 'A', conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output: human (default) or json.
    #[arg(long = "output", short = 'o', value_parser = ["json"])]
    pub output: Option<String>,
    /// Exit 2 when a finding is at or above this severity: Info, Warning or Error.
    #[arg(long = "failure-threshold", default_value = "Error", value_parser = parse_severity)]
    pub failure_threshold: Severity,
    /// Trust domain for WorkloadEntry service accounts (default cluster.local; with --live,
    /// the server's).
    #[arg(long = "trust-domain")]
    pub trust_domain: Option<String>,
    /// The mesh root namespace.
    #[arg(long = "root-namespace", default_value = "istio-system")]
    pub root_namespace: String,
    #[command(flatten)]
    pub socket: SocketArg,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("{s:?} is not one of Info, Warning, Error"))
}

/// What the server holds.
struct Live {
    resources: Vec<Located>,
    entries: Vec<RegisteredEntry>,
    ca_not_after: Option<i64>,
    trust_domain: String,
}

async fn read_live(socket: &Path) -> anyhow::Result<Live> {
    let mut c = connect(socket).await?;
    let health = c
        .health(api::HealthRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let config = c
        .get_config(api::GetConfigRequest {
            kind: "all".into(),
            name: String::new(),
            namespace: String::new(),
            all_namespaces: true,
            show_secrets: false,
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut resources = Vec::new();
    for r in &config.resources {
        let name = format!("{} {}/{}", r.kind, r.namespace, r.name);
        let parsed = sigil_policy::parse_documents(&name, &r.json).map_err(|e| {
            anyhow!(
                "the server holds an object this CLI cannot read ({name}): {}",
                e.first().map(ToString::to_string).unwrap_or_default()
            )
        })?;
        resources.extend(parsed.into_iter().map(Located::live));
    }
    let mut entries = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10_000 {
        let resp = c
            .list_entries(api::ListEntriesRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .map_err(status)?
            .into_inner();
        entries.extend(resp.entries.into_iter().map(|e| RegisteredEntry {
            id: e.id,
            spiffe_id: e.spiffe_id,
            x509_svid_ttl: u64::try_from(e.x509_svid_ttl).unwrap_or(0),
        }));
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    let bundle = c
        .get_bundle(api::GetBundleRequest {
            trust_domain: String::new(),
        })
        .await
        .map_err(status)?
        .into_inner();
    // The newest authority bounds every certificate the CA can still sign.
    let ca_not_after = bundle
        .x509_authorities
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, c)| c.validity().not_after.timestamp())
        .max();
    Ok(Live {
        resources,
        entries,
        ca_not_after,
        trust_domain: health.trust_domain,
    })
}

/// The workloads of a live mesh: those whose proxies report to the server (one per
/// namespace/name, replicas merged), then those its WorkloadEntries declare.
fn live_workloads(
    reported: &[sigil_proto::admin::ProxyRecord],
    resources: &[Located],
    trust_domain: &str,
) -> (Vec<KnownWorkload>, Vec<KnownWorkload>) {
    let mut out: Vec<KnownWorkload> = Vec::new();
    for p in reported.iter().filter_map(|r| r.report.as_ref()) {
        if out
            .iter()
            .any(|w| w.workload.namespace == p.workload_namespace && w.name == p.workload_name)
        {
            continue;
        }
        let workload = crate::live::workload(p);
        out.push(KnownWorkload {
            name: p.workload_name.clone(),
            workload,
            ports: p
                .inbound
                .iter()
                .map(|t| WorkloadPort {
                    port: t.port as u16,
                    protocol: match t.protocol.as_str() {
                        "http" | "http2" => Some(Protocol::Http),
                        "tcp" => Some(Protocol::Tcp),
                        _ => None,
                    },
                })
                .collect(),
            proxy: Some(true),
            outbound: p
                .outbound
                .iter()
                .map(|u| Upstream {
                    host: u.host.clone(),
                    port: u.port as u16,
                    subset: (!u.subset.is_empty()).then(|| u.subset.clone()),
                })
                .collect(),
            origin: format!("proxy {} reporting to the server", p.proxy_id),
        });
    }
    (out, workloads_from_entries(resources, trust_domain))
}

fn yaml_files(p: &Path, out: &mut Vec<PathBuf>, depth: usize) -> anyhow::Result<()> {
    if !p.is_dir() {
        out.push(p.to_owned());
        return Ok(());
    }
    if depth > 16 {
        bail!("{}: directories nested too deep", p.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .with_context(|| format!("cannot list {}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            yaml_files(&e, out, depth + 1)?;
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml"))
        {
            out.push(e);
        }
    }
    Ok(())
}

fn proxy_workload(path: &Path, cfg: &ProxyConfig) -> KnownWorkload {
    let name = if cfg.workload.name.is_empty() {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned()
    } else {
        cfg.workload.name.clone()
    };
    KnownWorkload {
        name,
        workload: cfg.policy_workload(cfg.workload.spiffe_id.as_deref()),
        ports: cfg
            .inbound
            .iter()
            .map(|p| WorkloadPort {
                port: p.port,
                protocol: match p.protocol {
                    AppProtocol::Http | AppProtocol::Http2 => Some(Protocol::Http),
                    AppProtocol::Tcp => Some(Protocol::Tcp),
                    AppProtocol::Auto => None,
                },
            })
            .collect(),
        proxy: Some(true),
        outbound: cfg
            .outbound
            .iter()
            .map(|u| Upstream {
                host: u.host.clone(),
                port: u.port,
                subset: u.subset.clone(),
            })
            .collect(),
        origin: format!("proxy config {}", path.display()),
    }
}

/// Proxy configs first; a WorkloadEntry they do not cover is added (without a proxy when
/// proxy configs were given, unknown otherwise).
fn merge_workloads(proxies: Vec<KnownWorkload>, entries: Vec<KnownWorkload>) -> Vec<KnownWorkload> {
    let given = !proxies.is_empty();
    let mut out = proxies;
    for mut e in entries {
        let covered = out.iter().any(|p| {
            p.workload.namespace == e.workload.namespace
                && ((p.workload.spiffe_id.is_some()
                    && p.workload.spiffe_id == e.workload.spiffe_id)
                    || (!e.workload.labels.is_empty()
                        && e.workload
                            .labels
                            .iter()
                            .all(|(k, v)| p.workload.labels.get(k) == Some(v))))
        });
        if !covered {
            if given {
                e.proxy = Some(false);
            }
            out.push(e);
        }
    }
    out
}

fn entries_file(path: &Path) -> anyhow::Result<Vec<RegisteredEntry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON; write it with: sigil entry show -o json > {}",
            path.display(),
            path.display()
        )
    })?;
    let list = match v.get("entries") {
        Some(Value::Array(a)) => a.clone(),
        _ if v.get("spiffe_id").is_some() => vec![v],
        _ => bail!(
            "{}: expected the output of `sigil entry show -o json` ({{\"entries\": [...]}})",
            path.display()
        ),
    };
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let spiffe_id = e
                .get("spiffe_id")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("{}: entries[{i}] has no spiffe_id", path.display()))?;
            Ok(RegisteredEntry {
                id: e
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                spiffe_id: spiffe_id.to_owned(),
                x509_svid_ttl: e.get("x509_svid_ttl").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect()
}

fn key(l: &Located) -> (String, String, String) {
    let m = l.resource.metadata();
    (
        l.resource.kind().to_owned(),
        m.namespace.clone().unwrap_or_default(),
        m.name.clone(),
    )
}

/// Loads `-f` files; every parse error is printed, then the command fails with exit 2.
fn read_files(a: &AnalyzeArgs) -> Result<Vec<Located>, (u8, anyhow::Error)> {
    let docs = crate::config_cmd::read_documents(&a.files).map_err(|e| (1, e))?;
    let default_ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for d in docs {
        match parse_located(&d.file_name, &d.text) {
            Ok(rs) => out.extend(rs.into_iter().map(|mut l| {
                l.default_namespace(&default_ns);
                l
            })),
            Err(es) => errors.extend(es),
        }
    }
    if !errors.is_empty() {
        if a.output.as_deref() == Some("json") {
            let findings: Vec<_> = errors
                .iter()
                .map(|e| json!({"code": "SG0001", "severity": "Error", "message": e.to_string()}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "findings": findings }))
                    .unwrap_or_else(|_| "{}".into())
            );
        } else {
            for e in &errors {
                println!("Error [SG0001] {e}");
            }
        }
        return Err((
            EXIT_FINDINGS,
            anyhow!(
                "{} document problem(s): fix them first (sigil apply would refuse these files too)",
                errors.len()
            ),
        ));
    }
    // The same object in several files is one object: the last one wins, as with apply.
    let mut seen = std::collections::BTreeSet::new();
    let mut unique: Vec<Located> = out
        .into_iter()
        .rev()
        .filter(|l| seen.insert(key(l)))
        .collect();
    unique.reverse();
    Ok(unique)
}

pub async fn run(a: AnalyzeArgs) -> Result<(), (u8, anyhow::Error)> {
    let op = |e: anyhow::Error| (1, e);
    if a.files.is_empty() && !a.live {
        return Err((
            crate::EXIT_CONFIG,
            anyhow!("nothing to analyze: give -f FILE|DIR (repeatable) and/or --live"),
        ));
    }
    let files = read_files(&a)?;
    let mut proxies = Vec::new();
    for p in &a.workloads {
        let mut paths = Vec::new();
        yaml_files(p, &mut paths, 0).map_err(op)?;
        for path in paths {
            let cfg = ProxyConfig::load(&path).map_err(|e| op(e.into()))?;
            proxies.push(proxy_workload(&path, &cfg));
        }
    }
    let (resources, entries, ca_not_after, trust_domain) = if a.live {
        let live = read_live(&a.socket.socket_path).await.map_err(op)?;
        // Files replace the live objects they name, as if applied.
        let mut by_key: BTreeMap<_, Located> =
            live.resources.into_iter().map(|l| (key(&l), l)).collect();
        for l in files {
            by_key.insert(key(&l), l);
        }
        let td = a.trust_domain.clone().unwrap_or(live.trust_domain);
        (
            by_key.into_values().collect::<Vec<_>>(),
            Some(live.entries),
            live.ca_not_after,
            td,
        )
    } else {
        let entries = a
            .entries
            .as_deref()
            .map(entries_file)
            .transpose()
            .map_err(op)?;
        let td = a
            .trust_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".into());
        (files, entries, None, td)
    };
    let (proxies, declared) = if a.live {
        let reported = crate::live::proxies(&a.socket.socket_path, 0)
            .await
            .map_err(op)?;
        let (mut live, declared) = live_workloads(&reported.proxies, &resources, &trust_domain);
        // Proxy configs given with -f/--workloads describe the same workloads: they win.
        live.retain(|l| {
            !proxies
                .iter()
                .any(|p| p.workload.namespace == l.workload.namespace && p.name == l.name)
        });
        let mut all = proxies;
        all.extend(live);
        (all, declared)
    } else {
        (proxies, workloads_from_entries(&resources, &trust_domain))
    };
    let workloads = merge_workloads(proxies, declared);
    let mesh = MeshContext {
        root_namespace: a.root_namespace.clone(),
        default_namespace: a.namespace.clone().unwrap_or_else(|| "default".into()),
    };
    let findings: Vec<Finding> = analyze(&Input {
        resources: &resources,
        workloads: &workloads,
        entries: entries.as_deref(),
        ca_not_after,
        now: crate::now_unix(),
        mesh: &mesh,
        trust_domain: &trust_domain,
    })
    .into_iter()
    .filter(|f| match &a.namespace {
        Some(ns) => f.resource.namespace.as_ref().is_none_or(|n| n == ns),
        None => true,
    })
    .collect();
    let mut skipped = Vec::new();
    if entries.is_none() {
        skipped.push(
            "no registration entries (use --live or --entries FILE): principal, namespace and \
             SVID lifetime checks skipped",
        );
    }
    if workloads.is_empty() {
        skipped.push(
            "no workloads (use --workloads PROXY_CONFIGS or WorkloadEntry resources): selector, \
             STRICT-caller and TCP-port checks skipped",
        );
    }
    print(&a, &findings, &skipped);
    let failing = findings
        .iter()
        .filter(|f| f.severity >= a.failure_threshold)
        .count();
    if failing > 0 {
        return Err((
            EXIT_FINDINGS,
            anyhow!(
                "{failing} finding(s) at or above {} (--failure-threshold)",
                a.failure_threshold.as_str()
            ),
        ));
    }
    Ok(())
}

fn print(a: &AnalyzeArgs, findings: &[Finding], skipped: &[&str]) {
    if a.output.as_deref() == Some("json") {
        let v = json!({
            "findings": findings,
            "skipped": skipped,
            "failureThreshold": a.failure_threshold.as_str(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
        );
        return;
    }
    for s in skipped {
        eprintln!("note: {s}");
    }
    if findings.is_empty() {
        match &a.namespace {
            Some(ns) => println!("✔ No validation issues found when analyzing namespace: {ns}."),
            None => println!("✔ No validation issues found when analyzing all namespaces."),
        }
        return;
    }
    for f in findings {
        println!(
            "{} [{}] ({}) {}\n    Fix: {}",
            f.severity.as_str(),
            f.code,
            f.resource,
            f.message,
            f.fix
        );
    }
}
