//! `sigil analyze`: findings about a configuration that parses and validates, yet will not do
//! what its author meant. Pure: the caller gathers the resources, workloads, registration
//! entries and CA lifetime; [`analyze`] returns [`Finding`]s in a stable order.
//!
//! Every finding reuses the decision the data plane makes ([`CompiledMtls`],
//! [`CompiledAuthz`](crate::CompiledAuthz), [`destination_tls`](crate::destination_tls), the
//! compiled authorization rules), so what it says is what the proxy will do.
//!
//! | code | severity | finding |
//! |---|---|---|
//! | SG0001 | Error | a document does not parse or validate (printed by the CLI; `sigil apply` would refuse it) |
//! | SG0101 | Warning | a `selector`/`workloadSelector` matches no known workload |
//! | SG0102 | Error (ALLOW) / Warning | a principal or service account matches no registered entry |
//! | SG0103 | Error (ALLOW) / Warning | a namespace matches no registered entry |
//! | SG0201 | Error | STRICT port, but a caller sends plaintext (no proxy, or MESH_EXTERNAL without a DestinationRule) |
//! | SG0202 | Error | a DestinationRule sends plaintext (`DISABLE`) to a STRICT port |
//! | SG0203 | Warning | PeerAuthentication with a selector in the root namespace: ignored |
//! | SG0204 | Warning | conflicting PeerAuthentications at one level: only the oldest applies |
//! | SG0301 | Warning | ALLOW rule with HTTP-only fields on a TCP port: the rule never matches there |
//! | SG0302 | Error | DENY rule with HTTP-only fields on a TCP port: those fields are dropped, it denies wider |
//! | SG0401 | Info | DestinationRule traffic settings the proxy does not apply (load balancer, pools…) |
//! | SG0402 | Warning | DestinationRule `caCrl`: not checked, revoked certificates are accepted |
//! | SG0403 | Error | DestinationRule `credentialName`: the proxy refuses every connection it governs |
//! | SG0404 | Warning | RequestAuthentication: Sigil does not validate JWTs |
//! | SG0405 | Warning / Error | AuthorizationPolicy JWT fields: no request carries a JWT principal |
//! | SG0406 | Warning | CUSTOM action: no external authorizer, matching requests are denied |
//! | SG0407 | Warning | a `when` key or value Sigil cannot evaluate |
//! | SG0408 | Warning | `targetRef`/`targetRefs`: never applies to a workload's proxy |
//! | SG0501 | Warning | an entry's X.509-SVID TTL exceeds the CA's remaining lifetime |
//! | SG0502 | Error | the CA has expired |

mod authz;
mod identity;
mod mtls;
mod selectors;
mod source;
mod strict;
mod unenforced;

use std::fmt;

use serde::Serialize;

use crate::resource::Resource;
use crate::view::{MeshContext, Protocol, Workload};

pub use source::{Located, Source, parse_located};

/// How bad a finding is (ordered: `Info < Warning < Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Worth knowing; nothing breaks.
    Info,
    /// Probably not what was meant.
    Warning,
    /// Traffic will be refused or admitted against the author's intent.
    Error,
}

impl Severity {
    /// `Info`, `Warning`, `Error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Error => "Error",
        }
    }

    /// Parses `Info`, `Warning` (or `Warn`), `Error`, ignoring case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// The object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResourceRef {
    /// Kind (`AuthorizationPolicy`, `Workload`, `Entry`, `CA`).
    pub kind: String,
    /// Namespace, when the object has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name (for entries: the SPIFFE ID).
    pub name: String,
    /// File it was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line of the offending field in `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl ResourceRef {
    /// A resource, pointing at `path` inside it when it came from a file.
    pub(crate) fn of(l: &Located, path: &str) -> Self {
        let m = l.resource.metadata();
        let (file, line) = match l.position(path) {
            Some((f, n)) => (Some(f), Some(n)),
            None => (None, None),
        };
        ResourceRef {
            kind: l.resource.kind().to_owned(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            file,
            line,
        }
    }

    /// An object that is not a resource (a workload, an entry, the CA).
    pub(crate) fn other(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ResourceRef {
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            file: None,
            line: None,
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name)?,
            None => write!(f, "{}", self.name)?,
        }
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " {file}:{line}"),
            (Some(file), None) => write!(f, " {file}"),
            _ => Ok(()),
        }
    }
}

/// One problem, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code, `SG` + family (2 digits) + number (2 digits); see the module table.
    pub code: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What it is about.
    pub resource: ResourceRef,
    /// What is wrong, in plain words.
    pub message: String,
    /// A concrete change that fixes it.
    pub fix: String,
}

/// One inbound port of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPort {
    /// The port callers dial (PeerAuthentication's workload port).
    pub port: u16,
    /// `Some(Tcp)` for opaque TCP, `Some(Http)` for HTTP, `None` when detected per connection.
    pub protocol: Option<Protocol>,
}

/// A service a workload's proxy calls (its `outbound` list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Service host, e.g. `billing-service.payments.svc.cluster.local`.
    pub host: String,
    /// Service port.
    pub port: u16,
    /// DestinationRule subset.
    pub subset: Option<String>,
}

/// A workload the analysis knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownWorkload {
    /// Its name (the Kubernetes-style service `<name>.<ns>.svc.cluster.local` is assumed).
    pub name: String,
    /// Namespace, labels, SPIFFE ID.
    pub workload: Workload,
    /// Inbound ports (empty when unknown).
    pub ports: Vec<WorkloadPort>,
    /// Whether a Sigil proxy runs beside it; `None` when not known.
    pub proxy: Option<bool>,
    /// What its proxy calls.
    pub outbound: Vec<Upstream>,
    /// Where it was learned, for messages (`proxy config billing.yaml`, `WorkloadEntry ns/vm`).
    pub origin: String,
}

/// A registration entry, as far as the analysis needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredEntry {
    /// Entry ID.
    pub id: String,
    /// `spiffe://…`.
    pub spiffe_id: String,
    /// X.509-SVID TTL in seconds; 0 = the server's default.
    pub x509_svid_ttl: u64,
}

/// Everything [`analyze`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The configuration.
    pub resources: &'a [Located],
    /// Known workloads; checks that need workloads are skipped when empty.
    pub workloads: &'a [KnownWorkload],
    /// Registration entries; `None` skips the entry checks (not known, not "none").
    pub entries: Option<&'a [RegisteredEntry]>,
    /// The CA's `notAfter` (unix seconds); `None` skips the lifetime checks.
    pub ca_not_after: Option<i64>,
    /// Now (unix seconds).
    pub now: i64,
    /// Root namespace and default namespace.
    pub mesh: &'a MeshContext,
    /// The mesh's trust domain (`cluster.local`).
    pub trust_domain: &'a str,
}

/// Runs every analyzer. Order: namespace, kind, name, line, code, message.
pub fn analyze(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    selectors::check(input, &mut out);
    identity::check(input, &mut out);
    mtls::check(input, &mut out);
    strict::check(input, &mut out);
    authz::check(input, &mut out);
    unenforced::check(input, &mut out);
    out.sort_by(|a, b| {
        (&a.resource.namespace, &a.resource.kind, &a.resource.name)
            .cmp(&(&b.resource.namespace, &b.resource.kind, &b.resource.name))
            .then_with(|| a.resource.line.cmp(&b.resource.line))
            .then_with(|| a.code.cmp(b.code))
            .then_with(|| a.message.cmp(&b.message))
    });
    out.dedup();
    out
}

/// Workloads declared by `WorkloadEntry` resources: namespace, labels, and the SPIFFE ID of
/// their service account in `trust_domain`. Whether a proxy runs beside them is unknown.
pub fn workloads_from_entries(resources: &[Located], trust_domain: &str) -> Vec<KnownWorkload> {
    resources
        .iter()
        .filter_map(|l| match &l.resource {
            Resource::WorkloadEntry(o) => Some(o),
            _ => None,
        })
        .map(|o| {
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            let mut workload = Workload::new(
                &ns,
                o.spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            if !o.spec.service_account.is_empty() {
                workload.spiffe_id = Some(format!(
                    "spiffe://{trust_domain}/ns/{ns}/sa/{}",
                    o.spec.service_account
                ));
            }
            KnownWorkload {
                name: o.metadata.name.clone(),
                workload,
                ports: o
                    .spec
                    .ports
                    .values()
                    .filter_map(|p| u16::try_from(*p).ok())
                    .map(|port| WorkloadPort {
                        port,
                        protocol: None,
                    })
                    .collect(),
                proxy: None,
                outbound: Vec::new(),
                origin: format!("WorkloadEntry {ns}/{}", o.metadata.name),
            }
        })
        .collect()
}

/// `namespace/name` of a workload, for messages.
pub(crate) fn workload_name(w: &KnownWorkload) -> String {
    format!("{}/{}", w.workload.namespace, w.name)
}

/// The namespace a resource lives in (the mesh default when absent).
pub(crate) fn namespace_of<'a>(l: &'a Located, mesh: &'a MeshContext) -> &'a str {
    l.resource
        .metadata()
        .namespace
        .as_deref()
        .unwrap_or(&mesh.default_namespace)
}

/// Finds a resource by kind, namespace and name.
pub(crate) fn find<'a>(
    input: &Input<'a>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Option<&'a Located> {
    input.resources.iter().find(|l| {
        l.resource.kind() == kind
            && l.resource.metadata().name == name
            && namespace_of(l, input.mesh) == namespace
    })
}

/// A duration in seconds as `1h30m`, `45s`, `2d3h`.
pub(crate) fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

/// Unix seconds as RFC 3339 UTC (`2026-01-02T03:04:05Z`).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_as_people_write_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(human_duration(90_061), "1d1h1m1s");
        assert_eq!(human_duration(7200), "2h");
        assert_eq!(human_duration(-5), "0s");
    }

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
        assert_eq!(Severity::parse("warn"), Some(Severity::Warning));
        assert_eq!(Severity::parse("ERROR"), Some(Severity::Error));
        assert_eq!(Severity::parse("fatal"), None);
    }
}
