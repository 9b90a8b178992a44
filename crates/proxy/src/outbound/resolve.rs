//! Where an upstream host lives and who it must prove to be, from the mesh view: the
//! `ServiceEntry` whose hosts match (exactly or by `*.` wildcard), its static `endpoints` or
//! the `WorkloadEntry`s its `workloadSelector` picks in its namespace, the port mapping
//! (number → name → endpoint port or `targetPort`), and the identities the server may present
//! (the entry's `subjectAltNames`, the endpoints' service accounts).
//!
//! Pure: computed once per mesh revision; DNS names are looked up at dial time.

use std::net::{IpAddr, SocketAddr};

use sigil_policy::{Location, Object, Resolution, ServiceEntrySpec, WorkloadEntrySpec};

use crate::config::Upstream;
use crate::mesh::MeshView;

/// One place to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Addr(SocketAddr),
    /// Looked up with `tokio::net::lookup_host` at dial time.
    Dns(String, u16),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Dns(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// The resolved destination of one upstream under one mesh revision.
#[derive(Debug, Clone, Default)]
pub(crate) struct Destination {
    /// Endpoints, in round-robin order. Empty: no address known.
    pub targets: Vec<Target>,
    /// The ServiceEntry that matched (`namespace/name`), if any.
    pub service_entry: Option<String>,
    /// The matching ServiceEntry is `MESH_EXTERNAL` (no automatic mTLS).
    pub mesh_external: bool,
    /// SANs the server may present, from the ServiceEntry `subjectAltNames`.
    pub entry_sans: Vec<String>,
    /// `(namespace, serviceAccount)` of the endpoints.
    pub service_accounts: Vec<(String, String)>,
    /// Why some endpoints were skipped (logged once per revision).
    pub notes: Vec<String>,
}

/// `namespace` and cluster domain of a `<svc>.<ns>.svc.<domain>` host.
pub(crate) fn service_namespace(host: &str) -> Option<(&str, &str)> {
    let mut parts = host.splitn(4, '.');
    let (_svc, ns, svc, domain) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (svc == "svc" && !ns.is_empty() && !domain.is_empty()).then_some((ns, domain))
}

/// The DestinationRule lookup of a client in `client_ns` with `labels` toward `host:port`
/// (subset optional), as the proxy makes it: `<svc>.<ns>.svc.<domain>` hosts name their
/// service namespace and cluster domain.
pub fn destination_query<'a>(
    client_ns: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    root_namespace: &'a str,
    host: &'a str,
    port: u16,
    subset: Option<&'a str>,
) -> sigil_policy::DestinationQuery<'a> {
    let mut q = sigil_policy::DestinationQuery::new(client_ns, host, u32::from(port))
        .client_labels(labels)
        .root_namespace(root_namespace);
    if let Some((ns, domain)) = service_namespace(host) {
        q = q.service_namespace(ns).cluster_domain(domain);
    }
    if let Some(s) = subset {
        q = q.subset(s);
    }
    q
}

/// Whether ServiceEntry host `pattern` covers `host` (exact, or `*.suffix` / `*`).
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case(host) || pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
        }
        None => false,
    }
}

fn visible(entry: &Object<ServiceEntrySpec>, client_ns: &str) -> bool {
    let own = entry.metadata.namespace.as_deref().unwrap_or("default");
    let export = &entry.spec.export_to;
    export.is_empty()
        || export
            .iter()
            .any(|e| e == "*" || e == client_ns || (e == "." && own == client_ns))
}

/// Resolves `upstream` against `view` for a client in `client_ns`.
pub(crate) fn destination(view: &MeshView, upstream: &Upstream, client_ns: &str) -> Destination {
    let mut d = Destination::default();
    // The most specific visible ServiceEntry host wins: exact, else the longest wildcard.
    let entry = view
        .service_entries
        .iter()
        .filter(|e| visible(e, client_ns))
        .filter_map(|e| {
            e.spec
                .hosts
                .iter()
                .filter(|h| host_matches(h, &upstream.host))
                .map(|h| {
                    (
                        if h.starts_with('*') {
                            h.len()
                        } else {
                            usize::MAX
                        },
                        e,
                    )
                })
                .max_by_key(|(score, _)| *score)
        })
        .max_by_key(|(score, _)| *score)
        .map(|(_, e)| e);

    if let Some(entry) = entry {
        let ns = entry.metadata.namespace.as_deref().unwrap_or("default");
        d.service_entry = Some(format!("{ns}/{}", entry.metadata.name));
        d.mesh_external = entry.spec.location == Location::MeshExternal;
        d.entry_sans = entry.spec.subject_alt_names.clone();
        let port = entry
            .spec
            .ports
            .iter()
            .find(|p| p.number == u32::from(upstream.port));
        if port.is_none() && !entry.spec.ports.is_empty() {
            d.notes.push(format!(
                "ServiceEntry {ns}/{} has no port {}; using the port as is",
                entry.metadata.name, upstream.port
            ));
        }
        let port_name = port.map(|p| p.name.as_str());
        let default_port = port
            .and_then(|p| p.target_port)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(upstream.port);
        let add = |we: &WorkloadEntrySpec, we_ns: &str, d: &mut Destination| {
            if !we.service_account.is_empty() {
                let sa = (we_ns.to_owned(), we.service_account.clone());
                if !d.service_accounts.contains(&sa) {
                    d.service_accounts.push(sa);
                }
            }
            let p = port_name
                .and_then(|n| we.ports.get(n))
                .and_then(|p| u16::try_from(*p).ok())
                .unwrap_or(default_port);
            match endpoint_target(&we.address, p) {
                Ok(t) => d.targets.push(t),
                Err(why) => d.notes.push(why),
            }
        };
        if let Some(sel) = &entry.spec.workload_selector {
            for we in &view.workload_entries {
                let we_ns = we.metadata.namespace.as_deref().unwrap_or("default");
                if we_ns == ns
                    && sel
                        .labels
                        .iter()
                        .all(|(k, v)| we.spec.labels.get(k) == Some(v))
                {
                    add(&we.spec, we_ns, &mut d);
                }
            }
        } else {
            for we in &entry.spec.endpoints {
                add(we, ns, &mut d);
            }
        }
        if d.targets.is_empty()
            && entry.spec.workload_selector.is_none()
            && entry.spec.endpoints.is_empty()
            && matches!(
                entry.spec.resolution,
                Resolution::Dns | Resolution::DnsRoundRobin
            )
            && !upstream.host.starts_with('*')
        {
            d.targets
                .push(Target::Dns(upstream.host.clone(), default_port));
        }
    }
    if let Some(a) = upstream.address {
        d.targets = vec![Target::Addr(a)];
    }
    d
}

fn endpoint_target(address: &str, port: u16) -> Result<Target, String> {
    if address.is_empty() {
        return Err("an endpoint without address (another network) was skipped".into());
    }
    if address.starts_with("unix://") {
        return Err(format!(
            "endpoint {address} is a Unix socket, which the outbound proxy does not dial; skipped"
        ));
    }
    match address.parse::<IpAddr>() {
        Ok(ip) => Ok(Target::Addr(SocketAddr::new(ip, port))),
        Err(_) => Ok(Target::Dns(address.to_owned(), port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(host_matches("a.example.com", "A.example.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*", "x"));
        assert!(!host_matches("b.example.com", "a.example.com"));
        assert_eq!(
            service_namespace("billing.payments.svc.cluster.local"),
            Some(("payments", "cluster.local"))
        );
        assert_eq!(service_namespace("api.example.com"), None);
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_target("10.0.0.1", 80),
            Ok(Target::Addr("10.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            endpoint_target("db.internal", 5432),
            Ok(Target::Dns("db.internal".into(), 5432))
        );
        assert!(endpoint_target("unix:///x", 1).is_err());
    }
}
