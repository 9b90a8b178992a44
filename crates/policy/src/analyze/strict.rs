//! STRICT ports that some caller reaches in plaintext: a DestinationRule `DISABLE` (SG0202),
//! a `MESH_EXTERNAL` ServiceEntry without a DestinationRule (no automatic mTLS), or a caller
//! that runs without a proxy (SG0201). The client side is decided by
//! [`destination_tls`](crate::destination_tls) and the proxy's automatic mTLS rule: no rule →
//! ISTIO_MUTUAL, unless the host's ServiceEntry is `MESH_EXTERNAL`.

use std::collections::{BTreeMap, BTreeSet};

use crate::meta::Object;
use crate::networking::{DestinationRuleSpec, Location, ServiceEntrySpec, TlsMode};
use crate::peer_authn::MtlsMode;
use crate::resource::Resource;
use crate::view::{Attr, CompiledAuthz, CompiledMtls, Matcher, Origin, Workload};
use crate::view::{any_namespace, service_account_matches, strip_scheme};
use crate::view_destination::{DestinationQuery, TlsLevel, destination_tls};

use super::mtls::peer_authentications;
use super::{Finding, Input, KnownWorkload, Located, ResourceRef, Severity, find, namespace_of};

fn rules<'a>(input: &Input<'a>) -> Vec<Object<DestinationRuleSpec>> {
    input
        .resources
        .iter()
        .filter_map(|l| match &l.resource {
            Resource::DestinationRule(o) => {
                let mut o = o.clone();
                o.metadata.namespace = Some(namespace_of(l, input.mesh).to_owned());
                Some(o)
            }
            _ => None,
        })
        .collect()
}

fn service_entries<'a>(input: &Input<'a>) -> Vec<(&'a Located, &'a Object<ServiceEntrySpec>)> {
    input
        .resources
        .iter()
        .filter_map(|l| match &l.resource {
            Resource::ServiceEntry(o) => Some((l, o)),
            _ => None,
        })
        .collect()
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case(host) || pattern == "*" {
        return true;
    }
    pattern.strip_prefix('*').is_some_and(|suffix| {
        host.len() > suffix.len()
            && host
                .get(host.len() - suffix.len()..)
                .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
    })
}

/// The hosts (and service ports) that reach `port` of `w`: its Kubernetes-style service name,
/// and the hosts of ServiceEntries whose `workloadSelector` picks it.
fn hosts(
    input: &Input<'_>,
    ses: &[(&Located, &Object<ServiceEntrySpec>)],
    w: &KnownWorkload,
    port: u16,
) -> Vec<(String, u16)> {
    let ns = &w.workload.namespace;
    let mut out = Vec::new();
    if !w.name.is_empty() {
        out.push((format!("{}.{ns}.svc.cluster.local", w.name), port));
    }
    for (l, se) in ses {
        let Some(sel) = &se.spec.workload_selector else {
            continue;
        };
        if namespace_of(l, input.mesh) != ns
            || !sel
                .labels
                .iter()
                .all(|(k, v)| w.workload.labels.get(k) == Some(v))
        {
            continue;
        }
        let ports: Vec<u16> = if se.spec.ports.is_empty() {
            vec![port]
        } else {
            se.spec
                .ports
                .iter()
                .filter(|p| p.target_port.unwrap_or(p.number) == u32::from(port))
                .filter_map(|p| u16::try_from(p.number).ok())
                .collect()
        };
        for h in &se.spec.hosts {
            out.extend(ports.iter().map(|p| (h.clone(), *p)));
        }
    }
    out
}

/// The ServiceEntry the proxy resolves `host` with for a client in `client_ns`.
fn entry_for<'a>(
    ses: &[(&'a Located, &'a Object<ServiceEntrySpec>)],
    input: &Input<'_>,
    host: &str,
    client_ns: &str,
) -> Option<&'a Located> {
    ses.iter()
        .filter(|(l, se)| {
            let own = namespace_of(l, input.mesh);
            let ex = &se.spec.export_to;
            ex.is_empty()
                || ex
                    .iter()
                    .any(|e| e == "*" || e == client_ns || (e == "." && own == client_ns))
        })
        .filter_map(|(l, se)| {
            se.spec
                .hosts
                .iter()
                .filter(|h| host_matches(h, host))
                .map(|h| {
                    (
                        if h.starts_with('*') {
                            h.len()
                        } else {
                            usize::MAX
                        },
                        *l,
                    )
                })
                .max_by_key(|(s, _)| *s)
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, l)| l)
}

fn level_path(level: TlsLevel) -> &'static str {
    match level {
        TlsLevel::TopLevel => "spec.trafficPolicy.tls.mode",
        TlsLevel::PortLevel => "spec.trafficPolicy.portLevelSettings",
        TlsLevel::Subset | TlsLevel::SubsetPortLevel => "spec.subsets",
        TlsLevel::Unset => "spec.host",
    }
}

/// Whether an ALLOW rule of `authz` names `id` by principal, service account or namespace.
fn named_by_allow(authz: &CompiledAuthz, id: &str) -> bool {
    authz.allow.policies.iter().any(|p| {
        p.rules.iter().any(|r| {
            r.from
                .iter()
                .flat_map(|es| es.iter())
                .flat_map(|e| e.clauses.iter())
                .filter(|c| !c.negated)
                .any(|c| {
                    c.matchers.iter().any(|m| match (&c.attr, m) {
                        (Attr::Principal, Matcher::Str(s)) => s.matches(strip_scheme(id)),
                        (Attr::Namespace, Matcher::Str(s)) => any_namespace(id, |n| s.matches(n)),
                        (Attr::ServiceAccount, Matcher::ServiceAccount { ns, sa }) => {
                            service_account_matches(id, ns, sa)
                        }
                        _ => false,
                    })
                })
        })
    })
}

fn strict_origin(origin: &Origin) -> String {
    match origin {
        Origin::Policy { id, .. } => format!("PeerAuthentication {id}"),
        Origin::Default => "the default".to_owned(),
    }
}

/// (rule namespace, rule name, field path of the deciding level).
type Key = (String, String, &'static str);
/// (workload and host, port, what made it STRICT).
type Target = (String, u16, String);

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    let drs = rules(input);
    let ses = service_entries(input);
    let pas: Vec<_> = peer_authentications(input).collect();
    // (rule ns, rule name, level) → (workload, port, origin) → clients
    let mut disabled: BTreeMap<Key, BTreeMap<Target, BTreeSet<String>>> = BTreeMap::new();
    for w in input.workloads {
        let mtls = CompiledMtls::compile(pas.iter().copied(), &w.workload, input.mesh);
        for p in &w.ports {
            let (mode, origin) = mtls.mode_for_port(p.port);
            if mode != MtlsMode::Strict {
                continue;
            }
            let origin = strict_origin(origin);
            let wname = super::workload_name(w);
            for (host, sport) in hosts(input, &ses, w, p.port) {
                // Clients: every proxy that calls this host, and a client with no particular
                // labels in each namespace that holds a rule or the workload.
                let mut clients: Vec<(String, Option<&Workload>, String)> = Vec::new();
                for c in input.workloads.iter().filter(|c| c.proxy == Some(true)) {
                    if c.outbound
                        .iter()
                        .any(|u| u.host.eq_ignore_ascii_case(&host) && u.port == sport)
                    {
                        clients.push((
                            c.workload.namespace.clone(),
                            Some(&c.workload),
                            super::workload_name(c),
                        ));
                    }
                }
                let mut spaces: BTreeSet<String> = drs
                    .iter()
                    .filter_map(|d| d.metadata.namespace.clone())
                    .collect();
                spaces.insert(w.workload.namespace.clone());
                for ns in spaces {
                    clients.push((ns.clone(), None, format!("any client in namespace {ns}")));
                }
                for (cns, labels, who) in clients {
                    let mut q = DestinationQuery::new(&cns, &host, u32::from(sport))
                        .root_namespace(&input.mesh.root_namespace)
                        .service_namespace(&w.workload.namespace);
                    if let Some(wl) = labels {
                        q = q.client_labels(&wl.labels);
                    }
                    match destination_tls(&drs, &q) {
                        Some(d) if d.tls.is_some_and(|t| t.mode == TlsMode::Disable) => {
                            disabled
                                .entry((
                                    d.rule.namespace.clone(),
                                    d.rule.name.clone(),
                                    level_path(d.level),
                                ))
                                .or_default()
                                .entry((format!("{wname} ({host})"), p.port, origin.clone()))
                                .or_default()
                                .insert(who);
                        }
                        Some(d) if d.tls.is_some() => {}
                        _ if labels.is_some() => {
                            let se = entry_for(&ses, input, &host, &cns);
                            if let Some(l) = se
                                && let Resource::ServiceEntry(o) = &l.resource
                                && o.spec.location == Location::MeshExternal
                            {
                                out.push(plaintext_entry(l, &who, &wname, &host, p.port, &origin));
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Callers without a proxy that the workload's ALLOW rules name.
            let authz = CompiledAuthz::compile(
                input.resources.iter().filter_map(|l| match &l.resource {
                    Resource::AuthorizationPolicy(o) => Some(o),
                    _ => None,
                }),
                &w.workload,
                input.mesh,
            );
            for k in input.workloads.iter().filter(|k| k.proxy == Some(false)) {
                let Some(id) = &k.workload.spiffe_id else {
                    continue;
                };
                if !named_by_allow(&authz, id) {
                    continue;
                }
                out.push(no_proxy(input, w, k, p.port, &origin));
            }
        }
    }
    for ((ns, name, path), hits) in disabled {
        let Some(l) = find(input, "DestinationRule", &ns, &name) else {
            continue;
        };
        for ((target, port, origin), clients) in hits {
            let clients: Vec<String> = clients.into_iter().collect();
            out.push(Finding {
                code: "SG0202",
                severity: Severity::Error,
                resource: ResourceRef::of(l, path),
                message: format!(
                    "tls mode DISABLE sends plaintext to {target} port {port}, which requires \
                     STRICT mTLS ({origin}): connections from {} are refused",
                    clients.join(", ")
                ),
                fix: format!(
                    "Set tls.mode: ISTIO_MUTUAL in DestinationRule {ns}/{name} (or remove its \
                     tls block to use automatic mTLS), or set port {port} to PERMISSIVE in \
                     {origin} while clients migrate."
                ),
            });
        }
    }
}

fn plaintext_entry(
    l: &Located,
    who: &str,
    wname: &str,
    host: &str,
    port: u16,
    origin: &str,
) -> Finding {
    Finding {
        code: "SG0201",
        severity: Severity::Error,
        resource: ResourceRef::of(l, "spec.location"),
        message: format!(
            "{who} calls {host} in plaintext: this ServiceEntry is MESH_EXTERNAL (the default \
             location), so there is no automatic mTLS and no DestinationRule sets tls; \
             {wname} port {port} requires STRICT mTLS ({origin}), so the calls are refused"
        ),
        fix: format!(
            "Set spec.location: MESH_INTERNAL on this ServiceEntry, or add a DestinationRule for \
             host {host} with trafficPolicy.tls.mode: ISTIO_MUTUAL."
        ),
    }
}

fn no_proxy(
    input: &Input<'_>,
    w: &KnownWorkload,
    k: &KnownWorkload,
    port: u16,
    origin: &str,
) -> Finding {
    let resource = match origin.strip_prefix("PeerAuthentication ") {
        Some(id) => id
            .split_once('/')
            .and_then(|(ns, name)| find(input, "PeerAuthentication", ns, name))
            .map(|l| ResourceRef::of(l, "spec.mtls.mode")),
        None => None,
    }
    .unwrap_or_else(|| ResourceRef::other("Workload", Some(&w.workload.namespace), &w.name));
    Finding {
        code: "SG0201",
        severity: Severity::Error,
        resource,
        message: format!(
            "workload {} requires STRICT mTLS on port {port} ({origin}), but {} ({}), which its \
             ALLOW rules admit, runs without a proxy: it cannot present a client certificate, \
             so its calls are refused",
            super::workload_name(w),
            super::workload_name(k),
            k.origin
        ),
        fix: format!(
            "Run a Sigil proxy beside {} (sigil proxy run --config …) and let it originate mTLS, \
             or set port {port} of {} to PERMISSIVE (portLevelMtls) until it has one.",
            super::workload_name(k),
            super::workload_name(w)
        ),
    }
}

#[cfg(test)]
#[path = "strict_tests.rs"]
mod tests;
