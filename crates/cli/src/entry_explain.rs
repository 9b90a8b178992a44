//! `sigil entry explain --pid PID | --selectors A,B`: why a process gets an identity, or why
//! not, from the agent's private admin socket. Exit 0 when it gets one, 2 when it gets none
//! (or the pid does not exist), 1 when the agent cannot be asked.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;
use hyper_util::rt::TokioIo;
use serde_json::json;
use sigil_agent::config::DEFAULT_ADMIN_SOCKET;
use sigil_proto::agent_admin::agent_admin_client::AgentAdminClient;
use sigil_proto::agent_admin::explain_entries_request::Subject;
use sigil_proto::agent_admin::{
    EntryExplanation, ExplainEntriesRequest, ExplainEntriesResponse, SelectorList, SelectorMiss,
};
use sigil_proto::node::Selector;
use sigil_spiffe::SpiffeId;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::output::OutputFormat;

/// Exit code when the check finds a problem (no identity, no such process).
const EXIT_PROBLEM: u8 = 2;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["pid", "selectors"])))]
pub struct ExplainArgs {
    /// A process on the agent's host, attested as the Workload API attests its callers.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Selectors to explain instead of a process, comma-separated (or repeated):
    /// unix:uid:1000,unix:path:/usr/bin/app.
    #[arg(long, alias = "selector", value_delimiter = ',')]
    pub selectors: Vec<String>,
    /// The agent's admin socket (`sigil agent run --admin-socket-path`).
    #[arg(long = "admin-socket-path", alias = "adminSocketPath", default_value = DEFAULT_ADMIN_SOCKET)]
    pub admin_socket_path: PathBuf,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

pub async fn run(a: ExplainArgs) -> Result<(), (u8, anyhow::Error)> {
    let subject = match a.pid {
        Some(pid) => Subject::Pid(pid),
        None => Subject::Selectors(SelectorList {
            selectors: a
                .selectors
                .iter()
                .map(|s| crate::entry::parse_selector(s.trim()))
                .collect::<anyhow::Result<_>>()
                .map_err(|e| (crate::EXIT_CONFIG, e))?,
        }),
    };
    let mut client = connect(&a.admin_socket_path).await.map_err(|e| (1, e))?;
    let resp = client
        .explain_entries(ExplainEntriesRequest {
            subject: Some(subject),
        })
        .await;
    let r = match resp {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => {
            if a.output == OutputFormat::Json {
                let v = json!({"pid": a.pid, "identity": false, "spiffe_ids": [],
                               "verdict": s.message(), "fixes": []});
                println!("{v}");
            }
            return Err((EXIT_PROBLEM, anyhow!("{}", s.message())));
        }
        Err(s) => return Err((1, crate::admin::status(s))),
    };
    let v = verdict(&r);
    match a.output {
        OutputFormat::Json => println!("{}", to_json(&r, &v)),
        OutputFormat::Pretty => print!("{}", report(&r, &v)),
    }
    if v.identity {
        Ok(())
    } else {
        Err((EXIT_PROBLEM, anyhow!("{}", v.message)))
    }
}

/// A client of the agent's admin socket, with errors that say what to check.
async fn connect(socket: &Path) -> anyhow::Result<AgentAdminClient<Channel>> {
    if !socket.exists() {
        return Err(anyhow!(
            "the agent's admin socket {} does not exist: is `sigil agent run` running, and with \
             this --admin-socket-path (default <data-dir>/admin.sock)? (if it exists but you \
             cannot see it, run this as the agent's user or root)",
            socket.display()
        ));
    }
    let p = socket.to_owned();
    let channel = Endpoint::try_from("http://[::]:0")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
            }
        }))
        .await;
    match channel {
        Ok(c) => Ok(AgentAdminClient::new(c)),
        Err(e) => {
            let hint = match io_kind(&e) {
                Some(std::io::ErrorKind::PermissionDenied) => {
                    "permission denied: the agent's admin socket is private (mode 0600); run \
                     this as the agent's user or root"
                }
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    "connection refused: no agent is listening there; is `sigil agent run` \
                     running?"
                }
                _ => "is `sigil agent run` running?",
            };
            Err(anyhow!(e)).with_context(|| {
                format!(
                    "cannot connect to the agent's admin socket {}: {hint}",
                    socket.display()
                )
            })
        }
    }
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

fn sel(s: &Selector) -> String {
    format!("{}:{}", s.r#type, s.value)
}

fn sels(list: &[Selector]) -> Vec<String> {
    list.iter().map(sel).collect()
}

/// The outcome in one sentence, plus what to do about it.
#[derive(Debug)]
pub struct Verdict {
    pub identity: bool,
    pub spiffe_ids: Vec<String>,
    pub message: String,
    pub fixes: Vec<String>,
}

/// "process 1234" or "a workload with the selectors [..]", for sentences.
fn who(r: &ExplainEntriesResponse) -> String {
    if r.pid > 0 {
        format!("process {}", r.pid)
    } else {
        format!(
            "a workload with the selectors [{}]",
            sels(&r.selectors).join(", ")
        )
    }
}

/// A workload-side way to gain `wanted`, by kind of selector.
fn workload_fix(wanted: &Selector) -> String {
    let (key, v) = wanted.value.split_once(':').unwrap_or(("", &wanted.value));
    match (wanted.r#type.as_str(), key) {
        ("unix", "uid") => format!("run the workload as uid {v}"),
        ("unix", "user") => format!("run the workload as user {v}"),
        ("unix", "gid") => format!("run the workload with primary group id {v}"),
        ("unix", "group") => format!("run the workload with primary group {v}"),
        ("unix", "supplementary_gid" | "supplementary_group") => {
            format!("add the workload's user to group {v}")
        }
        ("unix", "path") => format!("run the executable {v}"),
        ("unix", "sha256") => format!(
            "run the executable whose SHA-256 is {v} (the entry pins the binary's contents: \
             was it rebuilt or upgraded?)"
        ),
        _ => format!("make the workload carry the selector {}", sel(wanted)),
    }
}

/// "wants unix:uid:1000, the process runs as uid 1001" in plain words.
fn describe_miss(m: &SelectorMiss, pid_mode: bool) -> String {
    let Some(w) = &m.wanted else {
        return String::new();
    };
    let subject = if pid_mode {
        "the process"
    } else {
        "the selectors"
    };
    let key = w.value.split_once(':').map_or("", |(k, _)| k);
    if m.have.is_empty() {
        return format!(
            "wants {}, {subject} {} no {}:{key} selector",
            sel(w),
            if pid_mode { "has" } else { "include" },
            w.r#type
        );
    }
    let values: Vec<&str> = m
        .have
        .iter()
        .map(|h| h.value.split_once(':').map_or(h.value.as_str(), |(_, v)| v))
        .collect();
    let plain = match (w.r#type.as_str(), key, pid_mode) {
        ("unix", "uid", true) => format!("the process runs as uid {}", values.join(", ")),
        ("unix", "user", true) => format!("the process runs as user {}", values.join(", ")),
        ("unix", "path", true) => format!("the process runs {}", values.join(", ")),
        _ => format!(
            "{subject} {} {}",
            if pid_mode { "has" } else { "include" },
            sels(&m.have).join(", ")
        ),
    };
    format!("wants {}, {plain}", sel(w))
}

/// `sigil entry update` with the entry's selectors, each missing one replaced by the subject's
/// only selector of the same kind (or dropped when the subject has none of that kind); `None`
/// when a replacement is ambiguous.
fn update_command(e: &EntryExplanation) -> Option<String> {
    let mut out = Vec::new();
    for s in &e.selectors {
        match e.missing.iter().find(|m| m.wanted.as_ref() == Some(s)) {
            None => out.push(sel(s)),
            Some(m) => match m.have.as_slice() {
                [] => {}
                [one] => out.push(sel(one)),
                _ => return None,
            },
        }
    }
    if out.is_empty() {
        return None;
    }
    let args: Vec<String> = out.iter().map(|s| format!("-selector {s}")).collect();
    Some(format!(
        "sigil entry update -entryID {} {}",
        e.entry_id,
        args.join(" ")
    ))
}

pub fn verdict(r: &ExplainEntriesResponse) -> Verdict {
    let who = who(r);
    let pid_mode = r.pid > 0;
    let spiffe_ids: Vec<String> = r
        .entries
        .iter()
        .filter(|e| e.served)
        .map(|e| e.spiffe_id.clone())
        .collect();
    if !spiffe_ids.is_empty() {
        return Verdict {
            identity: true,
            message: format!("{who} gets {}", spiffe_ids.join(", ")),
            spiffe_ids,
            fixes: Vec::new(),
        };
    }
    let mut fixes = Vec::new();
    let mut message = if r.selectors.is_empty() {
        fixes.push(format!(
            "check that the agent can read /proc/{} (it runs as which user?) and its log",
            r.pid
        ));
        format!("{who} gets no identity: it was attested with no selectors, so no entry can match")
    } else if let Some(e) = r.entries.iter().find(|e| e.matched) {
        format!(
            "{who} gets no identity yet: entry {} ({}) matches, but {}",
            e.entry_id, e.spiffe_id, e.not_served_reason
        )
    } else if let Some(e) = r.entries.iter().find(|e| e.entry_id == r.closest_entry_id) {
        let misses: Vec<String> = e
            .missing
            .iter()
            .map(|m| describe_miss(m, pid_mode))
            .collect();
        if let Some(cmd) = update_command(e) {
            fixes.push(cmd);
        }
        if pid_mode {
            for m in &e.missing {
                if let Some(w) = &m.wanted {
                    fixes.push(workload_fix(w));
                }
            }
        }
        format!(
            "{who} gets no identity: no entry matches; closest: entry {} ({}) {}",
            e.entry_id,
            e.spiffe_id,
            misses.join("; ")
        )
    } else {
        let td = SpiffeId::parse(&r.agent_id)
            .map(|id| id.trust_domain().id_string())
            .unwrap_or_else(|_| "spiffe://<trust domain>".to_owned());
        let parent = if r.agent_id.is_empty() {
            "<this agent's SPIFFE ID>"
        } else {
            r.agent_id.as_str()
        };
        let first = r.selectors.first().map(sel).unwrap_or_default();
        fixes.push(format!(
            "sigil entry create -parentID {parent} -spiffeID {td}/<workload> -selector {first}"
        ));
        format!("{who} gets no identity: this agent holds no registration entries")
    };
    if !r.entries_from_server {
        message.push_str(&format!(
            " (the server could not be asked: {}; only entries with a cached SVID were \
             considered)",
            r.server_error
        ));
    }
    if !r.unavailable.is_empty() {
        message.push_str(&format!(" (the agent reports: {})", r.unavailable));
    }
    Verdict {
        identity: false,
        spiffe_ids,
        message,
        fixes,
    }
}

fn expiry(e: &EntryExplanation, now: i64) -> String {
    if !e.svid_cached {
        return "none cached".to_owned();
    }
    let when = crate::fmt_time(e.svid_expires_at);
    if e.svid_expires_at <= now {
        format!("cached, EXPIRED at {when}")
    } else {
        format!("cached, expires {when}")
    }
}

/// The human report: subject, each entry, the note on unseen entries, the verdict.
pub fn report(r: &ExplainEntriesResponse, v: &Verdict) -> String {
    let mut out = String::new();
    let pid_mode = r.pid > 0;
    if pid_mode {
        out.push_str(&format!(
            "Process {} was attested with {} selector(s):\n",
            r.pid,
            r.selectors.len()
        ));
    } else {
        out.push_str(&format!("Selectors given ({}):\n", r.selectors.len()));
    }
    for s in &r.selectors {
        out.push_str(&format!("  {}\n", sel(s)));
    }
    let agent = if r.agent_id.is_empty() {
        "(not attested yet)"
    } else {
        r.agent_id.as_str()
    };
    let source = if r.entries_from_server {
        "as the server authorizes them now".to_owned()
    } else {
        format!(
            "from its cache only: the server could not be asked ({})",
            r.server_error
        )
    };
    out.push_str(&format!(
        "\nAgent {agent} holds {} entr{} ({source}):\n",
        r.entries.len(),
        if r.entries.len() == 1 { "y" } else { "ies" }
    ));
    for e in &r.entries {
        let status = if e.served {
            "MATCH"
        } else if e.matched {
            "MATCH (not served)"
        } else {
            "NO MATCH"
        };
        out.push_str(&format!(
            "\n{status}  {}  (entry {})\n",
            e.spiffe_id, e.entry_id
        ));
        let parent = if e.parent_id.is_empty() {
            "unknown (the server could not be asked)"
        } else {
            e.parent_id.as_str()
        };
        out.push_str(&format!("  parent:    {parent}\n"));
        out.push_str(&format!("  selectors: {}\n", sels(&e.selectors).join(", ")));
        for m in &e.missing {
            out.push_str(&format!("  missing:   {}\n", describe_miss(m, pid_mode)));
        }
        if !e.not_served_reason.is_empty() {
            out.push_str(&format!("  not served: {}\n", e.not_served_reason));
        }
        out.push_str(&format!("  SVID:      {}\n", expiry(e, r.now)));
    }
    out.push_str(&format!("\nNote: {}.\n", r.unseen_entries_note));
    out.push_str(&format!("\nVerdict: {}\n", v.message));
    for (i, f) in v.fixes.iter().enumerate() {
        out.push_str(&format!("{} {f}\n", if i == 0 { "Fix:" } else { "  or:" }));
    }
    out
}

/// The JSON report (stable field names; selectors as `type:value` strings).
pub fn to_json(r: &ExplainEntriesResponse, v: &Verdict) -> serde_json::Value {
    let entries: Vec<_> = r
        .entries
        .iter()
        .map(|e| {
            json!({
                "entry_id": e.entry_id,
                "spiffe_id": e.spiffe_id,
                "parent_id": e.parent_id,
                "selectors": sels(&e.selectors),
                "matched": e.matched,
                "missing": e.missing.iter().map(|m| json!({
                    "wanted": m.wanted.as_ref().map(sel),
                    "have": sels(&m.have),
                })).collect::<Vec<_>>(),
                "served": e.served,
                "not_served_reason": e.not_served_reason,
                "svid_cached": e.svid_cached,
                "svid_expires_at": e.svid_expires_at,
                "hint": e.hint,
            })
        })
        .collect();
    json!({
        "agent_id": r.agent_id,
        "pid": if r.pid > 0 { Some(r.pid) } else { None },
        "selectors": sels(&r.selectors),
        "entries": entries,
        "closest_entry_id": r.closest_entry_id,
        "entries_from_server": r.entries_from_server,
        "server_error": r.server_error,
        "unseen_entries_note": r.unseen_entries_note,
        "unavailable": r.unavailable,
        "identity": v.identity,
        "spiffe_ids": v.spiffe_ids,
        "verdict": v.message,
        "fixes": v.fixes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: &str) -> Selector {
        let (ty, v) = t.split_once(':').unwrap();
        Selector {
            r#type: ty.into(),
            value: v.into(),
        }
    }

    fn miss(wanted: &str, have: &[&str]) -> SelectorMiss {
        SelectorMiss {
            wanted: Some(s(wanted)),
            have: have.iter().map(|h| s(h)).collect(),
        }
    }

    #[test]
    fn an_ambiguous_replacement_gets_no_update_command_but_plain_words() {
        let e = EntryExplanation {
            entry_id: "e1".into(),
            spiffe_id: "spiffe://cluster.local/x".into(),
            selectors: vec![s("unix:supplementary_gid:10"), s("unix:uid:5")],
            missing: vec![miss(
                "unix:supplementary_gid:10",
                &["unix:supplementary_gid:20", "unix:supplementary_gid:30"],
            )],
            ..Default::default()
        };
        let r = ExplainEntriesResponse {
            pid: 7,
            selectors: vec![
                s("unix:uid:5"),
                s("unix:supplementary_gid:20"),
                s("unix:supplementary_gid:30"),
            ],
            entries: vec![e],
            closest_entry_id: "e1".into(),
            entries_from_server: true,
            ..Default::default()
        };
        let v = verdict(&r);
        assert!(!v.identity);
        assert_eq!(
            v.message,
            "process 7 gets no identity: no entry matches; closest: entry e1 \
             (spiffe://cluster.local/x) wants unix:supplementary_gid:10, the process has \
             unix:supplementary_gid:20, unix:supplementary_gid:30"
        );
        assert_eq!(v.fixes, ["add the workload's user to group 10"]);
    }

    #[test]
    fn a_missing_kind_is_dropped_from_the_update_and_said_plainly() {
        let e = EntryExplanation {
            entry_id: "e2".into(),
            spiffe_id: "spiffe://cluster.local/y".into(),
            selectors: vec![s("k8s:ns:payments"), s("unix:uid:5")],
            missing: vec![miss("k8s:ns:payments", &[])],
            ..Default::default()
        };
        assert_eq!(
            describe_miss(&e.missing[0], true),
            "wants k8s:ns:payments, the process has no k8s:ns selector"
        );
        assert_eq!(
            update_command(&e).unwrap(),
            "sigil entry update -entryID e2 -selector unix:uid:5"
        );
    }

    #[test]
    fn no_selectors_at_all_points_at_the_attestor() {
        let r = ExplainEntriesResponse {
            pid: 9,
            entries_from_server: true,
            ..Default::default()
        };
        let v = verdict(&r);
        assert!(
            v.message.contains("attested with no selectors"),
            "{}",
            v.message
        );
        assert!(v.fixes[0].contains("/proc/9"));
    }
}
