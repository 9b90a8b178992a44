//! cert-manager Certificates: `sigil describe certificate` (like `kubectl describe`),
//! `sigil cert status` (like `cmctl status certificate`) and `sigil cert renew` (like
//! `cmctl renew`). The server's controller does the work; these read and nudge it.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sigil_proto::admin::{CertificateRef, DescribeCertificateResponse};

use crate::admin::{DEFAULT_SOCKET, connect, status};
use crate::config_table::{age, layout};
use crate::live::print_json;

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Marks a Certificate for re-issuance now (like `cmctl renew`); the controller issues it.
    Renew(CertRefArgs),
    /// A Certificate's state with its issuer, Secret and latest request (like `cmctl status
    /// certificate`); exit 2 when it is not Ready.
    Status(CertRefArgs),
}

#[derive(Debug, Args)]
pub struct CertRefArgs {
    /// Certificate name.
    pub name: String,
    /// Namespace (default "default").
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// text or json.
    #[arg(long = "output", short = 'o', default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// Path to the server's admin socket.
    #[arg(long = "socket-path", alias = "socketPath", default_value = DEFAULT_SOCKET)]
    pub socket_path: PathBuf,
}

pub async fn run(c: CertCmd) -> Result<(), (u8, anyhow::Error)> {
    match c {
        CertCmd::Renew(a) => renew(a).await.map_err(|e| (1, e)),
        CertCmd::Status(a) => cert_status(a).await,
    }
}

async fn call(a: &CertRefArgs, renew: bool) -> anyhow::Result<Described> {
    let mut client = connect(&a.socket_path).await?;
    let req = CertificateRef {
        namespace: a.namespace.clone(),
        name: a.name.clone(),
    };
    let resp = if renew {
        client.renew_certificate(req).await
    } else {
        client.describe_certificate(req).await
    }
    .map_err(status)?
    .into_inner();
    Described::parse(&resp)
}

async fn renew(a: CertRefArgs) -> anyhow::Result<()> {
    call(&a, true).await?;
    println!(
        "Manually triggered issuance of Certificate {}/{}",
        a.namespace, a.name
    );
    Ok(())
}

async fn cert_status(a: CertRefArgs) -> Result<(), (u8, anyhow::Error)> {
    let d = call(&a, false).await.map_err(|e| (1, e))?;
    if a.output == "json" {
        print_json(&d.to_json());
    } else {
        print!("{}", d.status_text(crate::now_unix()));
    }
    if d.ready() {
        Ok(())
    } else {
        Err((
            2,
            anyhow!(
                "Certificate {}/{} is not Ready: {}",
                a.namespace,
                a.name,
                d.ready_reason()
            ),
        ))
    }
}

/// `sigil describe certificate NAME -n NS`.
pub async fn describe(a: CertRefArgs) -> Result<(), (u8, anyhow::Error)> {
    let d = call(&a, false).await.map_err(|e| (1, e))?;
    if a.output == "json" {
        print_json(&d.to_json());
    } else {
        print!("{}", d.describe_text(crate::now_unix()));
    }
    Ok(())
}

/// The server's answer, parsed.
pub struct Described {
    pub cert: Value,
    pub events: Vec<Value>,
    pub requests: Vec<Value>,
    pub secret: Option<Value>,
    pub issuer: Option<Value>,
}

fn parse_opt(s: &str) -> anyhow::Result<Option<Value>> {
    if s.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(s)?))
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn list(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn conditions(v: &Value, ptr: &str) -> Vec<Value> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Described {
    pub fn parse(r: &DescribeCertificateResponse) -> anyhow::Result<Self> {
        Ok(Described {
            cert: serde_json::from_str(&r.certificate_json)?,
            events: serde_json::from_str(&r.events_json)?,
            requests: serde_json::from_str(&r.requests_json)?,
            secret: parse_opt(&r.secret_json)?,
            issuer: parse_opt(&r.issuer_json)?,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "certificate": self.cert,
            "events": self.events,
            "certificateRequests": self.requests,
            "secret": self.secret,
            "issuer": self.issuer,
        })
    }

    fn ready_condition(&self) -> Option<&Value> {
        self.cert
            .pointer("/status/conditions")
            .and_then(Value::as_array)?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
    }

    /// `Ready` is True.
    pub fn ready(&self) -> bool {
        self.ready_condition()
            .is_some_and(|c| s(c, "/status") == "True")
    }

    fn ready_reason(&self) -> String {
        match self.ready_condition() {
            Some(c) => format!("{}: {}", s(c, "/reason"), s(c, "/message")),
            None => "the controller has not reported on it yet".into(),
        }
    }

    fn events_text(&self, now: i64) -> String {
        if self.events.is_empty() {
            return "Events:  <none>\n".into();
        }
        let mut rows = vec![vec![
            "Type".to_owned(),
            "Reason".into(),
            "Age".into(),
            "Message".into(),
        ]];
        rows.push(vec![
            "----".into(),
            "------".into(),
            "----".into(),
            "-------".into(),
        ]);
        for e in &self.events {
            let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
            let mut a = age(s(e, "/lastTimestamp"), now);
            if count > 1 {
                a = format!("{a} (x{count} since {})", age(s(e, "/firstTimestamp"), now));
            }
            rows.push(vec![
                s(e, "/type").into(),
                s(e, "/reason").into(),
                a,
                s(e, "/message").into(),
            ]);
        }
        let mut out = "Events:\n".to_owned();
        for line in layout(&rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }

    fn conditions_text(conds: &[Value], indent: &str) -> String {
        if conds.is_empty() {
            return format!("{indent}<none>\n");
        }
        let mut rows = vec![vec![
            "Type".to_owned(),
            "Status".into(),
            "Reason".into(),
            "Last Transition".into(),
            "Message".into(),
        ]];
        for c in conds {
            rows.push(vec![
                s(c, "/type").into(),
                s(c, "/status").into(),
                s(c, "/reason").into(),
                s(c, "/lastTransitionTime").into(),
                s(c, "/message").into(),
            ]);
        }
        layout(&rows)
            .lines()
            .map(|l| format!("{indent}{l}\n"))
            .collect()
    }

    fn requests_text(&self, now: i64) -> String {
        if self.requests.is_empty() {
            return "CertificateRequests:  <none>\n".into();
        }
        let mut rows = vec![vec![
            "NAME".to_owned(),
            "REVISION".into(),
            "READY".into(),
            "REASON".into(),
            "AGE".into(),
        ]];
        for r in &self.requests {
            let ready = conditions(r, "/status/conditions")
                .into_iter()
                .find(|c| s(c, "/type") == "Ready")
                .unwrap_or_default();
            rows.push(vec![
                s(r, "/metadata/name").into(),
                s(
                    r,
                    "/metadata/annotations/cert-manager.io~1certificate-revision",
                )
                .into(),
                s(&ready, "/status").into(),
                s(&ready, "/reason").into(),
                age(s(r, "/metadata/creationTimestamp"), now),
            ]);
        }
        let mut out = "CertificateRequests:\n".to_owned();
        for line in layout(&rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }

    /// `kubectl describe certificate`.
    pub fn describe_text(&self, now: i64) -> String {
        let c = &self.cert;
        let mut o = String::new();
        let mut kv = |k: &str, v: &str| o.push_str(&format!("{:<26}{}\n", format!("{k}:"), v));
        kv("Name", s(c, "/metadata/name"));
        kv("Namespace", s(c, "/metadata/namespace"));
        kv("API Version", s(c, "/apiVersion"));
        kv("Kind", "Certificate");
        kv("Created", s(c, "/metadata/creationTimestamp"));
        kv(
            "Generation",
            &c.pointer("/metadata/generation")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        o.push_str("Spec:\n");
        let mut kv = |k: &str, v: &str| {
            if !v.is_empty() {
                o.push_str(&format!("  {:<26}{}\n", format!("{k}:"), v));
            }
        };
        kv("Secret Name", s(c, "/spec/secretName"));
        let kind = or_dash(s(c, "/spec/issuerRef/kind"));
        let kind = if kind == "-" { "Issuer" } else { kind };
        kv(
            "Issuer Ref",
            &format!("{kind} {}", s(c, "/spec/issuerRef/name")),
        );
        kv("Common Name", s(c, "/spec/commonName"));
        kv(
            "Subject",
            &c.pointer("/spec/subject")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        kv("DNS Names", &list(c, "/spec/dnsNames"));
        kv("IP Addresses", &list(c, "/spec/ipAddresses"));
        kv("URIs", &list(c, "/spec/uris"));
        kv("Email Addresses", &list(c, "/spec/emailAddresses"));
        let d = s(c, "/spec/duration");
        kv("Duration", if d.is_empty() { "2160h (default)" } else { d });
        let rb = s(c, "/spec/renewBefore");
        let pct = c
            .pointer("/spec/renewBeforePercentage")
            .map(Value::to_string)
            .unwrap_or_default();
        kv(
            "Renew Before",
            &if !rb.is_empty() {
                rb.to_owned()
            } else if !pct.is_empty() {
                format!("{pct}% of the lifetime")
            } else {
                "a third of the lifetime (default)".to_owned()
            },
        );
        kv(
            "Is CA",
            if c.pointer("/spec/isCA").and_then(Value::as_bool) == Some(true) {
                "true"
            } else {
                ""
            },
        );
        kv("Usages", &list(c, "/spec/usages"));
        kv(
            "Private Key",
            &c.pointer("/spec/privateKey")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        o.push_str("Status:\n  Conditions:\n");
        o.push_str(&Self::conditions_text(
            &conditions(c, "/status/conditions"),
            "    ",
        ));
        let mut kv =
            |k: &str, v: &str| o.push_str(&format!("  {:<26}{}\n", format!("{k}:"), or_dash(v)));
        kv("Not Before", s(c, "/status/notBefore"));
        kv("Not After", s(c, "/status/notAfter"));
        kv("Renewal Time", s(c, "/status/renewalTime"));
        kv(
            "Revision",
            &c.pointer("/status/revision")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        kv(
            "Failed Issuance Attempts",
            &c.pointer("/status/failedIssuanceAttempts")
                .map(Value::to_string)
                .unwrap_or_default(),
        );
        kv("Last Failure Time", s(c, "/status/lastFailureTime"));
        o.push_str(&self.requests_text(now));
        o.push_str(&self.events_text(now));
        o
    }

    /// `cmctl status certificate`.
    pub fn status_text(&self, now: i64) -> String {
        let c = &self.cert;
        let mut o = String::new();
        o.push_str(&format!("Name: {}\n", s(c, "/metadata/name")));
        o.push_str(&format!("Namespace: {}\n", s(c, "/metadata/namespace")));
        o.push_str(&format!(
            "Created at: {}\n",
            s(c, "/metadata/creationTimestamp")
        ));
        o.push_str("Conditions:\n");
        o.push_str(&condition_lines(c, "  "));
        o.push_str(&format!("DNS Names:\n{}", bullets(c, "/spec/dnsNames")));
        o.push_str(&self.events_text(now));
        o.push_str("Issuer:\n");
        match &self.issuer {
            Some(i) => {
                o.push_str(&format!(
                    "  Name: {}\n  Kind: {}\n",
                    s(i, "/metadata/name"),
                    s(i, "/kind")
                ));
                o.push_str("  Conditions:\n");
                o.push_str(&condition_lines(i, "    "));
            }
            None => o.push_str(&format!(
                "  {} {:?} does not exist\n",
                or_dash(s(c, "/spec/issuerRef/kind")),
                s(c, "/spec/issuerRef/name")
            )),
        }
        o.push_str("Secret:\n");
        match &self.secret {
            Some(sec) => {
                o.push_str(&format!("  Name: {}\n", s(sec, "/name")));
                o.push_str(&format!("  Keys: {}\n", list(sec, "/keys")));
                o.push_str(&format!("  Subject: {}\n", s(sec, "/certificate/subject")));
                o.push_str(&format!("  Issuer: {}\n", s(sec, "/certificate/issuer")));
                o.push_str(&format!(
                    "  Serial Number: {}\n",
                    s(sec, "/certificate/serialNumber")
                ));
                o.push_str(&format!(
                    "  Private Key: {}\n",
                    or_dash(s(sec, "/privateKey"))
                ));
                o.push_str(&format!(
                    "  DNS Names: {}\n",
                    list(sec, "/certificate/dnsNames")
                ));
                o.push_str(&format!("  URIs: {}\n", list(sec, "/certificate/uris")));
                o.push_str(&format!(
                    "  Not Before: {}\n",
                    s(sec, "/certificate/notBefore")
                ));
                o.push_str(&format!(
                    "  Not After: {}\n",
                    s(sec, "/certificate/notAfter")
                ));
                o.push_str(&format!(
                    "  Chain: {} certificate(s) in tls.crt, ca.crt {}\n",
                    sec.pointer("/chainLength")
                        .map(Value::to_string)
                        .unwrap_or_default(),
                    if sec.pointer("/hasCA").and_then(Value::as_bool) == Some(true) {
                        "present"
                    } else {
                        "absent"
                    }
                ));
            }
            None => o.push_str(&format!(
                "  {:?} does not exist\n",
                s(c, "/spec/secretName")
            )),
        }
        o.push_str(&format!(
            "Not Before: {}\n",
            or_dash(s(c, "/status/notBefore"))
        ));
        o.push_str(&format!(
            "Not After: {}\n",
            or_dash(s(c, "/status/notAfter"))
        ));
        o.push_str(&format!(
            "Renewal Time: {}\n",
            or_dash(s(c, "/status/renewalTime"))
        ));
        match self.requests.last() {
            Some(r) => {
                o.push_str(&format!(
                    "CertificateRequest:\n  Name: {}\n  Conditions:\n",
                    s(r, "/metadata/name")
                ));
                for cond in conditions(r, "/status/conditions") {
                    o.push_str(&format!(
                        "    {}: {}, Reason: {}, Message: {}\n",
                        s(&cond, "/type"),
                        s(&cond, "/status"),
                        s(&cond, "/reason"),
                        s(&cond, "/message")
                    ));
                }
            }
            None => o.push_str("No CertificateRequest found for this Certificate\n"),
        }
        o
    }
}

/// `cmctl status`'s condition lines (`Type: Status, Reason: …, Message: …`), indented.
fn condition_lines(v: &Value, indent: &str) -> String {
    conditions(v, "/status/conditions")
        .iter()
        .map(|cond| {
            format!(
                "{indent}{}: {}, Reason: {}, Message: {}\n",
                s(cond, "/type"),
                s(cond, "/status"),
                s(cond, "/reason"),
                s(cond, "/message")
            )
        })
        .collect()
}

fn bullets(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|x| format!("- {x}\n"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Described {
        Described {
            cert: json!({
                "apiVersion": "cert-manager.io/v1",
                "metadata": {"name": "billing-service-cert", "namespace": "payments", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
                "spec": {"secretName": "billing-service-tls", "issuerRef": {"name": "internal-ca", "kind": "ClusterIssuer"}, "dnsNames": ["a.svc", "b.svc"], "duration": "24h", "renewBefore": "8h"},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
                           "notAfter": "2026-01-02T00:00:00Z", "renewalTime": "2026-01-01T16:00:00Z", "revision": 1}
            }),
            events: vec![
                json!({"type": "Normal", "reason": "Issuing", "message": "Successfully issued certificate from ClusterIssuer \"internal-ca\"", "count": 1, "firstTimestamp": "2026-01-01T00:00:01Z", "lastTimestamp": "2026-01-01T00:00:01Z"}),
            ],
            requests: vec![
                json!({"metadata": {"name": "billing-service-cert-1", "creationTimestamp": "2026-01-01T00:00:01Z", "annotations": {"cert-manager.io/certificate-revision": "1"}},
                                  "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}]}}),
            ],
            secret: None,
            issuer: None,
        }
    }

    #[test]
    fn describe_shows_spec_conditions_requests_and_events() {
        let t = sample().describe_text(1_767_225_720);
        assert!(
            t.contains("Issuer Ref:               ClusterIssuer internal-ca"),
            "{t}"
        );
        assert!(t.contains("\n  Renew Before:             8h\n"), "{t}");
        assert!(t.contains("Ready   True     Ready"), "{t}");
        assert!(
            t.contains("billing-service-cert-1   1          True    Issued"),
            "{t}"
        );
        assert!(t.contains("Normal   Issuing   119s   Successfully issued certificate from ClusterIssuer \"internal-ca\""), "{t}");
        assert!(
            t.contains("\n  Renewal Time:             2026-01-01T16:00:00Z\n"),
            "{t}"
        );
        assert!(t.contains("\n  Failed Issuance Attempts: -\n"), "{t}");
    }

    #[test]
    fn status_reports_missing_issuer_and_secret() {
        let d = sample();
        assert!(d.ready());
        let t = d.status_text(1_767_225_720);
        assert!(t.contains("Ready: True, Reason: Ready"), "{t}");
        assert!(
            t.contains("ClusterIssuer \"internal-ca\" does not exist"),
            "{t}"
        );
        assert!(t.contains("\"billing-service-tls\" does not exist"), "{t}");
        assert!(
            t.contains("CertificateRequest:\n  Name: billing-service-cert-1"),
            "{t}"
        );
    }
}
