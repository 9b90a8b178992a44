//! `ServiceEntry` and `WorkloadEntry` checks (upstream `ValidateServiceEntry`,
//! `validateWorkloadEntry`).

use std::collections::BTreeSet;

use super::Out;
use super::checks::{self, ExportOwner, Protocol};
use crate::error::{ErrorKind, closest};
use crate::networking::{Location, Resolution, ServiceEntrySpec, WorkloadEntrySpec};

pub(super) fn service_entry(spec: &ServiceEntrySpec, namespace: &str, out: &mut Out) {
    if let Some(sel) = &spec.workload_selector {
        checks::selector_labels(&sel.labels, "spec.workloadSelector.labels", out);
        if !spec.endpoints.is_empty() {
            out.push(
                "spec.endpoints",
                ErrorKind::OnlyOneOf {
                    fields: vec!["workloadSelector".into(), "endpoints".into()],
                },
            );
        }
    }
    hosts(spec, out);
    addresses(spec, out);
    let port_names = ports(spec, out);
    let resolution = spec.resolution;
    let conflict = |hint: String| ErrorKind::ResolutionConflict {
        resolution: resolution.as_str().into(),
        hint,
    };
    match resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                out.push(
                    "spec.endpoints",
                    conflict(
                        "endpoints are not used; remove them or choose resolution STATIC or DNS"
                            .into(),
                    ),
                );
            }
        }
        Resolution::Static => {
            for (i, ep) in spec.endpoints.iter().enumerate() {
                endpoint(
                    ep,
                    &format!("spec.endpoints[{i}]"),
                    Some(&port_names),
                    false,
                    out,
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if spec.endpoints.is_empty() {
                for (i, h) in spec.hosts.iter().enumerate() {
                    if checks::fqdn(h).is_err() && checks::wildcard_domain(h).is_ok() {
                        out.push(
                            format!("spec.hosts[{i}]"),
                            conflict(format!(
                                "without endpoints the hosts themselves are resolved through DNS, so `{h}` must be a fully qualified name without `*`; add endpoints or use resolution NONE"
                            )),
                        );
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
                out.push(
                    "spec.endpoints",
                    conflict("use at most one endpoint".into()),
                );
            }
            for (i, ep) in spec.endpoints.iter().enumerate() {
                dns_endpoint(ep, &format!("spec.endpoints[{i}]"), &port_names, out);
            }
        }
        Resolution::DynamicDns => {
            for (i, h) in spec.hosts.iter().enumerate() {
                if !h.starts_with("*.") {
                    out.push(
                        format!("spec.hosts[{i}]"),
                        conflict(format!(
                            "names are resolved from requests matching a wildcard host; write `{h}` as a wildcard such as `*.example.com`"
                        )),
                    );
                }
            }
            if spec.location != Location::MeshExternal {
                out.push(
                    "spec.location",
                    conflict("only supported for `location: MESH_EXTERNAL`".into()),
                );
            }
        }
    }
    if resolution != Resolution::None && spec.hosts.len() > 1 {
        let plain = spec.ports.iter().any(|p| {
            let proto = Protocol::parse(&p.protocol);
            !proto.is_http() && !proto.is_tls()
        });
        if plain {
            out.push(
                "spec.hosts",
                conflict("several hosts share non-HTTP, non-TLS ports, and plain TCP cannot tell them apart; use one host per ServiceEntry, or HTTP/TLS ports".into()),
            );
        }
    }
    checks::export_to(namespace, &spec.export_to, ExportOwner::ServiceEntry, out);
}

fn hosts(spec: &ServiceEntrySpec, out: &mut Out) {
    if spec.hosts.is_empty() {
        out.push(
            "spec",
            ErrorKind::MissingField {
                field: "hosts".into(),
            },
        );
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        let reason = if h == "*" {
            Err("a ServiceEntry cannot claim every host".to_owned())
        } else {
            checks::wildcard_domain(h)
        };
        if let Err(reason) = reason {
            out.push(
                format!("spec.hosts[{i}]"),
                ErrorKind::InvalidHost {
                    value: h.clone(),
                    reason,
                },
            );
        }
    }
}

fn addresses(spec: &ServiceEntrySpec, out: &mut Out) {
    let mut cidr = false;
    for (i, a) in spec.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        if !checks::is_ip_or_cidr(a) {
            out.push(
                format!("spec.addresses[{i}]"),
                ErrorKind::InvalidAddress {
                    value: a.clone(),
                    expected: "an IP address or CIDR, e.g. `10.0.0.1` or `10.0.0.0/16`".into(),
                },
            );
        }
    }
    if cidr && !matches!(spec.resolution, Resolution::None | Resolution::Static) {
        out.push(
            "spec.addresses",
            ErrorKind::ResolutionConflict {
                resolution: spec.resolution.as_str().into(),
                hint: "CIDR addresses are only allowed with resolution NONE or STATIC; list single IPs or change the resolution".into(),
            },
        );
    }
}

/// Checks `ports` and returns the port names.
fn ports(spec: &ServiceEntrySpec, out: &mut Out) -> Vec<String> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if p.name.is_empty() {
            out.push(
                pp.as_str(),
                ErrorKind::MissingField {
                    field: "name".into(),
                },
            );
        } else if !checks::is_label(&p.name) {
            out.push(
                format!("{pp}.name"),
                ErrorKind::InvalidDnsLabel {
                    what: "port name".into(),
                    value: p.name.clone(),
                },
            );
        } else if !names.insert(p.name.as_str()) {
            out.push(
                format!("{pp}.name"),
                ErrorKind::DuplicateEntry {
                    field: "ports".into(),
                    value: p.name.clone(),
                },
            );
        }
        if p.number == 0 || p.number > 65535 {
            checks::port(p.number, &format!("{pp}.number"), out);
        } else if !numbers.insert(p.number) {
            out.push(
                format!("{pp}.number"),
                ErrorKind::DuplicateEntry {
                    field: "ports".into(),
                    value: p.number.to_string(),
                },
            );
        }
        if let Some(t) = p.target_port
            && t != 0
        {
            checks::port(t, &format!("{pp}.targetPort"), out);
        }
        if !p.protocol.is_empty() && Protocol::parse(&p.protocol) == Protocol::Unsupported {
            out.push(
                format!("{pp}.protocol"),
                ErrorKind::UnknownProtocol {
                    value: p.protocol.clone(),
                    suggestion: closest(&p.protocol, checks::PROTOCOLS.iter().copied()),
                },
            );
        }
    }
    spec.ports.iter().map(|p| p.name.clone()).collect()
}

/// Standalone `WorkloadEntry`: FQDN addresses allowed, no service ports to check against.
pub(super) fn workload_entry(we: &WorkloadEntrySpec, path: &str, out: &mut Out) {
    endpoint(we, path, None, true, out);
}

/// Upstream `validateWorkloadEntry` (STATIC endpoints and WorkloadEntry objects).
fn endpoint(
    we: &WorkloadEntrySpec,
    path: &str,
    service_ports: Option<&[String]>,
    allow_fqdn: bool,
    out: &mut Out,
) {
    let addr = we.address.as_str();
    if addr.is_empty() && we.network.is_empty() {
        out.push(path, ErrorKind::MissingAddress);
        return;
    }
    let ap = format!("{path}.address");
    let unix = addr.strip_prefix("unix://");
    if let Some(socket) = unix {
        if !checks::unix_path_ok(socket) {
            out.push(
                ap.as_str(),
                ErrorKind::InvalidAddress {
                    value: addr.into(),
                    expected: "`unix://` followed by an absolute file path or `@abstract` name"
                        .into(),
                },
            );
        }
        if !we.ports.is_empty() {
            out.push(
                format!("{path}.ports"),
                ErrorKind::ConflictingFields {
                    field: "ports".into(),
                    other: "address".into(),
                    hint: "a unix socket endpoint has no ports; remove `ports`".into(),
                },
            );
        }
    } else if !addr.is_empty() && !checks::is_ip(addr) {
        if !allow_fqdn {
            out.push(
                ap.as_str(),
                ErrorKind::InvalidAddress {
                    value: addr.into(),
                    expected: "an IP address (resolution STATIC); for DNS names use resolution DNS"
                        .into(),
                },
            );
        } else if checks::fqdn(addr).is_err() {
            out.push(
                ap.as_str(),
                ErrorKind::InvalidAddress {
                    value: addr.into(),
                    expected: "an IP address, a fully qualified DNS name or `unix:///path`".into(),
                },
            );
        }
    }
    endpoint_ports(we, path, service_ports, out);
    checks::labels(&we.labels, &format!("{path}.labels"), out);
    if unix.is_some()
        && let Some(sp) = service_ports
        && sp.len() != 1
    {
        out.push(
            ap,
            ErrorKind::ConflictingFields {
                field: "address".into(),
                other: "spec.ports".into(),
                hint: format!(
                    "a unix socket endpoint needs exactly one service port, the ServiceEntry has {}",
                    sp.len()
                ),
            },
        );
    }
}

/// DNS endpoints: upstream checks only the address, labels and ports.
fn dns_endpoint(we: &WorkloadEntrySpec, path: &str, service_ports: &[String], out: &mut Out) {
    if !checks::is_ip(&we.address) && checks::fqdn(&we.address).is_err() {
        out.push(
            format!("{path}.address"),
            ErrorKind::InvalidAddress {
                value: we.address.clone(),
                expected: "an IP address or a fully qualified DNS name".into(),
            },
        );
    }
    checks::labels(&we.labels, &format!("{path}.labels"), out);
    endpoint_ports(we, path, Some(service_ports), out);
}

fn endpoint_ports(
    we: &WorkloadEntrySpec,
    path: &str,
    service_ports: Option<&[String]>,
    out: &mut Out,
) {
    for (name, port) in &we.ports {
        let pp = checks::key_path(&format!("{path}.ports"), name);
        if let Some(sp) = service_ports
            && !sp.iter().any(|s| s == name)
        {
            out.push(
                pp.as_str(),
                ErrorKind::UndefinedPortName {
                    name: name.clone(),
                    known: sp.to_vec(),
                },
            );
        } else if !checks::is_label(name) {
            out.push(
                pp.as_str(),
                ErrorKind::InvalidDnsLabel {
                    what: "port name".into(),
                    value: name.clone(),
                },
            );
        }
        checks::port(*port, &pp, out);
    }
}
