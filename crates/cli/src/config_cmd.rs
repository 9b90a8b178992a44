//! `sigil apply`, `sigil get`, `sigil delete`: Istio and cert-manager YAML, as kubectl takes it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use sigil_proto::admin::{self as api, ConfigDocument};

use crate::admin::{connect, status};
use crate::entry::SocketArg;

/// Largest file `apply`/`delete -f` reads; the server refuses larger documents anyway.
pub const MAX_FILE: u64 = 4 << 20;
/// Largest total of one apply.
pub const MAX_TOTAL: u64 = 12 << 20;

#[derive(Debug, Args)]
pub struct FileArgs {
    /// A YAML/JSON file, a directory (read recursively: *.yaml, *.yml, *.json) or - for stdin.
    #[arg(long = "filename", short = 'f', required = true)]
    pub files: Vec<PathBuf>,
    /// Namespace for documents that name none (default: default); a document naming another
    /// namespace is then an error.
    #[arg(long = "namespace", short = 'n')]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Validate on the server and print what would be stored, without storing it.
    #[arg(long = "dry-run", num_args = 0..=1, default_missing_value = "server", value_parser = ["server", "client", "none"])]
    pub dry_run: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Kind: peerauthentications (pa), authorizationpolicies (ap), destinationrules (dr),
    /// serviceentries (se), workloadentries (we), certificates (cert), issuers, clusterissuers,
    /// namespaces (ns), requestauthentications (ra), secrets, or all (every kind but secrets).
    pub kind: String,
    /// Names (all when none).
    pub names: Vec<String>,
    /// Namespace (default: default).
    #[arg(long = "namespace", short = 'n')]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(long = "all-namespaces", short = 'A')]
    pub all_namespaces: bool,
    /// Output: table (default), wide, yaml, json or name.
    #[arg(long = "output", short = 'o', value_parser = ["wide", "yaml", "json", "name"])]
    pub output: Option<String>,
    /// Print Secrets' values (base64, as kubectl does); without it each value reads
    /// `REDACTED: N bytes`. The server logs the request.
    #[arg(long = "show-secrets")]
    pub show_secrets: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kind and names (`sigil delete pa default -n payments`), unless -f is given.
    pub args: Vec<String>,
    /// Files naming the objects to delete (as applied).
    #[arg(long = "filename", short = 'f')]
    pub files: Vec<PathBuf>,
    #[arg(long = "namespace", short = 'n')]
    pub namespace: Option<String>,
    /// Succeed when an object does not exist.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub socket: SocketArg,
}

/// Reads every file; directories recursively in name order, like kubectl.
pub fn read_documents(paths: &[PathBuf]) -> anyhow::Result<Vec<ConfigDocument>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_FILE + 1)
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            if text.len() as u64 > MAX_FILE {
                bail!(
                    "stdin is larger than {} MiB; split it into several files",
                    MAX_FILE >> 20
                );
            }
            total += text.len() as u64;
            out.push(ConfigDocument {
                file_name: "-".into(),
                text,
            });
            continue;
        }
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        let files = if meta.is_dir() {
            let mut v = Vec::new();
            collect_dir(p, &mut v)?;
            if v.is_empty() {
                bail!("{} holds no *.yaml, *.yml or *.json file", p.display());
            }
            v
        } else {
            vec![p.clone()]
        };
        for f in files {
            let size = std::fs::metadata(&f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .len();
            if size > MAX_FILE {
                bail!(
                    "{} is {} bytes, more than the {} MiB a file may hold; split it into several files",
                    f.display(),
                    size,
                    MAX_FILE >> 20
                );
            }
            total += size;
            if total > MAX_TOTAL {
                bail!(
                    "more than {} MiB of configuration in one call; apply the files in several calls",
                    MAX_TOTAL >> 20
                );
            }
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {} (is it UTF-8 text?)", f.display()))?;
            out.push(ConfigDocument {
                file_name: f.display().to_string(),
                text,
            });
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// kubectl's `kind.group/name` (`peerauthentication.security.istio.io/default`).
fn qualified(kind: &str, api_version: &str, name: &str) -> String {
    let group = group_of(api_version);
    if group.is_empty() {
        format!("{}/{name}", kind.to_ascii_lowercase())
    } else {
        format!("{}.{group}/{name}", kind.to_ascii_lowercase())
    }
}

fn report(resp: api::ApplyConfigResponse, what: &str) -> anyhow::Result<Vec<api::ConfigOutcome>> {
    if !resp.errors.is_empty() {
        for e in &resp.errors {
            eprintln!("error: {e}");
        }
        bail!(
            "{} problem(s) found; nothing was {what} (the configuration in force is unchanged)",
            resp.errors.len()
        );
    }
    Ok(resp.outcomes)
}

pub async fn apply(a: ApplyArgs) -> anyhow::Result<()> {
    let documents = read_documents(&a.files.files)?;
    let dry_run = matches!(a.dry_run.as_deref(), Some("server" | "client"));
    let mut client = connect(&a.files.socket.socket_path).await?;
    let resp = client
        .apply_config(api::ApplyConfigRequest {
            documents,
            namespace: a.files.namespace.clone().unwrap_or_default(),
            namespace_explicit: a.files.namespace.is_some(),
            dry_run,
        })
        .await
        .map_err(status)?
        .into_inner();
    for o in report(resp, "applied")? {
        println!(
            "{} {}",
            qualified(&o.kind, &o.api_version, &o.name),
            o.outcome
        );
    }
    Ok(())
}

pub async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let mut req = api::DeleteConfigRequest {
        namespace: a.namespace.clone().unwrap_or_default(),
        namespace_explicit: a.namespace.is_some(),
        ..Default::default()
    };
    match (a.files.is_empty(), a.args.as_slice()) {
        (false, []) => req.documents = read_documents(&a.files)?,
        (false, _) => bail!("give either -f FILE or KIND NAME, not both"),
        (true, [kind, names @ ..]) if !names.is_empty() => {
            req.keys = names
                .iter()
                .map(|n| api::ConfigKey {
                    kind: kind.clone(),
                    namespace: req.namespace.clone(),
                    name: n.clone(),
                })
                .collect();
        }
        (true, _) => bail!(
            "nothing to delete: use sigil delete -f FILE, or sigil delete KIND NAME -n NAMESPACE"
        ),
    }
    let mut client = connect(&a.socket.socket_path).await?;
    let resp = client
        .delete_config(req)
        .await
        .map_err(status)?
        .into_inner();
    let mut missing = 0;
    for o in report(resp, "deleted")? {
        let what = qualified(&o.kind, &o.api_version, &o.name);
        if o.outcome == "not found" {
            if !a.ignore_not_found {
                missing += 1;
                let scope = if o.namespace.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace {:?}", o.namespace)
                };
                eprintln!("error: {} {:?} not found{scope}", o.kind, o.name);
            }
        } else {
            println!("{what} deleted");
        }
    }
    if missing > 0 {
        bail!("{missing} object(s) did not exist (use --ignore-not-found to accept that)");
    }
    Ok(())
}

pub async fn get(a: GetArgs) -> anyhow::Result<()> {
    let mut client = connect(&a.socket.socket_path).await?;
    let namespace = a.namespace.clone().unwrap_or_default();
    let mut resources = Vec::new();
    if a.names.is_empty() {
        // `sigil get pa,ap` as kubectl: several kinds, comma-separated.
        for kind in a.kind.split(',').filter(|k| !k.is_empty()) {
            let resp = client
                .get_config(api::GetConfigRequest {
                    kind: kind.to_owned(),
                    name: String::new(),
                    namespace: namespace.clone(),
                    all_namespaces: a.all_namespaces,
                    show_secrets: a.show_secrets,
                })
                .await
                .map_err(status)?;
            resources.extend(resp.into_inner().resources);
        }
    } else if a.kind.contains(',') {
        bail!("names need a single kind: sigil get KIND NAME...");
    } else {
        for name in &a.names {
            let resp = client
                .get_config(api::GetConfigRequest {
                    kind: a.kind.clone(),
                    name: name.clone(),
                    namespace: namespace.clone(),
                    all_namespaces: false,
                    show_secrets: a.show_secrets,
                })
                .await
                .map_err(status)?;
            resources.extend(resp.into_inner().resources);
        }
    }
    let objects: Vec<Value> = resources
        .iter()
        .map(|r| serde_json::from_str(&r.json).context("the server sent an unreadable object"))
        .collect::<anyhow::Result<_>>()?;
    let single = !a.names.is_empty() && objects.len() == 1;
    match a.output.as_deref() {
        Some("json") | Some("yaml") => {
            let value = if single {
                objects[0].clone()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects})
            };
            if a.output.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!(
                    "{}",
                    serde_saphyr::to_string(&value).context("cannot render YAML")?
                );
            }
        }
        Some("name") => {
            for r in &resources {
                println!("{}", qualified(&r.kind, &r.api_version, &r.name));
            }
        }
        other => {
            if resources.is_empty() {
                if a.all_namespaces {
                    eprintln!("No resources found");
                } else {
                    let ns = if namespace.is_empty() {
                        "default"
                    } else {
                        &namespace
                    };
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            let multi_kind = resources.iter().any(|r| r.kind != resources[0].kind);
            print!(
                "{}",
                crate::config_table::render(
                    &resources,
                    &objects,
                    a.all_namespaces,
                    other == Some("wide"),
                    multi_kind,
                    crate::now_unix(),
                )
            );
        }
    }
    Ok(())
}
