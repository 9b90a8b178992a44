//! Semantic checks for the `networking.istio.io` kinds, equivalent to the Istio validating
//! webhook (istio/istio `pkg/config/validation`: `ValidateDestinationRule`,
//! `ValidateServiceEntry`, `ValidateWorkloadEntry`, and `agent.ValidateTLS`).
//!
//! Upstream *warnings* (deprecated `consecutiveErrors`/`minimumRingSize`, failover without
//! outlier detection, partial wildcards in ServiceEntry hosts, an endpoint without address but
//! with a network) are not errors here either.
//!
//! Stricter than upstream, on purpose (each is a setting Istio silently ignores, so the
//! message says what to remove):
//! - ISTIO_MUTUAL with `clientCertificate`, `privateKey`, `caCertificates`, `caCrl` or
//!   `credentialName` (the proto says these "should be empty"; Istio ignores them);
//! - `credentialName` with mode DISABLE;
//! - two `portLevelSettings` entries for the same port (Istio uses the first).

mod checks;
mod load_balancer;
mod service_entry;

use std::collections::BTreeSet;

use crate::error::ErrorKind;
use crate::meta::Object;
use crate::networking::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRuleSpec, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, PortTrafficPolicy, ServiceEntrySpec, TlsMode,
    TrafficPolicy, TunnelSettings, WorkloadEntrySpec,
};
use crate::validate::Violation;

#[derive(Default)]
struct Out(Vec<Violation>);

impl Out {
    fn push(&mut self, path: impl Into<String>, kind: ErrorKind) {
        self.0.push(Violation {
            path: path.into(),
            kind,
        });
    }
}

/// Spec checks of a `DestinationRule` (metadata is checked by the caller).
pub(crate) fn destination_rule(o: &Object<DestinationRuleSpec>) -> Vec<Violation> {
    let mut out = Out::default();
    let namespace = o.metadata.namespace.as_deref().unwrap_or_default();
    let spec = &o.spec;
    if spec.host.is_empty() {
        out.push(
            "spec",
            ErrorKind::MissingField {
                field: "host".into(),
            },
        );
    } else if let Err(reason) = checks::wildcard_domain(&spec.host) {
        out.push(
            "spec.host",
            ErrorKind::InvalidHost {
                value: spec.host.clone(),
                reason,
            },
        );
    }
    if let Some(tp) = &spec.traffic_policy {
        traffic_policy(tp, "spec.trafficPolicy", namespace, &mut out);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in spec.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            out.push(
                path.as_str(),
                ErrorKind::MissingField {
                    field: "name".into(),
                },
            );
        } else if !checks::is_label(&subset.name) {
            out.push(
                format!("{path}.name"),
                ErrorKind::InvalidDnsLabel {
                    what: "subset name".into(),
                    value: subset.name.clone(),
                },
            );
        } else if !names.insert(subset.name.as_str()) {
            out.push(
                format!("{path}.name"),
                ErrorKind::DuplicateEntry {
                    field: "subsets".into(),
                    value: subset.name.clone(),
                },
            );
        }
        checks::labels(&subset.labels, &format!("{path}.labels"), &mut out);
        if let Some(tp) = &subset.traffic_policy {
            traffic_policy(tp, &format!("{path}.trafficPolicy"), namespace, &mut out);
        }
    }
    let selector = spec.workload_selector.as_ref();
    checks::export_to(
        namespace,
        &spec.export_to,
        checks::ExportOwner::DestinationRule {
            selector: selector.is_some(),
        },
        &mut out,
    );
    if let Some(sel) = selector {
        checks::selector_labels(
            &sel.match_labels,
            "spec.workloadSelector.matchLabels",
            &mut out,
        );
    }
    out.0
}

/// Spec checks of a `ServiceEntry`.
pub(crate) fn service_entry(o: &Object<ServiceEntrySpec>) -> Vec<Violation> {
    let mut out = Out::default();
    let namespace = o.metadata.namespace.as_deref().unwrap_or_default();
    service_entry::service_entry(&o.spec, namespace, &mut out);
    out.0
}

/// Spec checks of a `WorkloadEntry`.
pub(crate) fn workload_entry(o: &Object<WorkloadEntrySpec>) -> Vec<Violation> {
    let mut out = Out::default();
    service_entry::workload_entry(&o.spec, "spec", &mut out);
    out.0
}

fn traffic_policy(tp: &TrafficPolicy, path: &str, namespace: &str, out: &mut Out) {
    if tp.is_empty() {
        out.push(
            path,
            ErrorKind::EmptyBlock {
                field: "trafficPolicy".into(),
            },
        );
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        out.push(
            format!("{path}.proxyProtocol"),
            ErrorKind::OnlyOneOf {
                fields: vec!["tunnel".into(), "proxyProtocol".into()],
            },
        );
    }
    policy_fields(
        tp.load_balancer.as_ref(),
        tp.connection_pool.as_ref(),
        tp.outlier_detection.as_ref(),
        tp.tls.as_ref(),
        path,
        namespace,
        out,
    );
    port_level_settings(&tp.port_level_settings, path, namespace, out);
    if let Some(t) = &tp.tunnel {
        tunnel(t, &format!("{path}.tunnel"), out);
    }
    if let Some(rb) = &tp.retry_budget {
        let rp = format!("{path}.retryBudget");
        if let Some(p) = rb.percent
            && !(0.0..=100.0).contains(&p)
        {
            out.push(
                format!("{rp}.percent"),
                ErrorKind::OutOfRange {
                    value: p.to_string(),
                    expected: "0..100".into(),
                },
            );
        }
        if let Some(d) = &rb.budget_interval {
            checks::duration(d, &format!("{rp}.budgetInterval"), out);
        }
    }
}

/// The four fields a rule-level and a port-level policy share.
fn policy_fields(
    lb: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
    path: &str,
    namespace: &str,
    out: &mut Out,
) {
    if let Some(o) = outlier {
        outlier_detection(o, &format!("{path}.outlierDetection"), out);
    }
    if let Some(p) = pool {
        connection_pool(p, &format!("{path}.connectionPool"), out);
    }
    if let Some(lb) = lb {
        load_balancer::load_balancer(lb, &format!("{path}.loadBalancer"), out);
    }
    if let Some(t) = tls {
        client_tls(t, &format!("{path}.tls"), namespace, out);
    }
}

fn port_level_settings(list: &[PortTrafficPolicy], path: &str, namespace: &str, out: &mut Out) {
    let mut seen = BTreeSet::new();
    for (i, p) in list.iter().enumerate() {
        let pp = format!("{path}.portLevelSettings[{i}]");
        match p.port {
            None => out.push(
                pp.as_str(),
                ErrorKind::MissingField {
                    field: "port".into(),
                },
            ),
            Some(sel) if sel.number == 0 || sel.number > 65535 => {
                checks::port(sel.number, &format!("{pp}.port.number"), out);
            }
            Some(sel) => {
                if !seen.insert(sel.number) {
                    out.push(
                        format!("{pp}.port.number"),
                        ErrorKind::DuplicateEntry {
                            field: "portLevelSettings".into(),
                            value: sel.number.to_string(),
                        },
                    );
                }
            }
        }
        if p.load_balancer.is_none()
            && p.connection_pool.is_none()
            && p.outlier_detection.is_none()
            && p.tls.is_none()
        {
            out.push(
                pp,
                ErrorKind::EmptyBlock {
                    field: format!("portLevelSettings[{i}]"),
                },
            );
            continue;
        }
        policy_fields(
            p.load_balancer.as_ref(),
            p.connection_pool.as_ref(),
            p.outlier_detection.as_ref(),
            p.tls.as_ref(),
            &pp,
            namespace,
            out,
        );
    }
}

fn outlier_detection(o: &OutlierDetection, path: &str, out: &mut Out) {
    if let Some(d) = &o.base_ejection_time {
        checks::duration(d, &format!("{path}.baseEjectionTime"), out);
    }
    if let Some(d) = &o.interval {
        checks::duration(d, &format!("{path}.interval"), out);
    }
    if o.consecutive_local_origin_failures.unwrap_or(0) > 0
        && !o.split_external_local_origin_errors.unwrap_or(false)
    {
        out.push(
            format!("{path}.consecutiveLocalOriginFailures"),
            ErrorKind::RequiresField {
                field: "consecutiveLocalOriginFailures".into(),
                requires: "splitExternalLocalOriginErrors: true".into(),
            },
        );
    }
    checks::percent(
        o.max_ejection_percent,
        &format!("{path}.maxEjectionPercent"),
        out,
    );
    checks::percent(
        o.min_health_percent,
        &format!("{path}.minHealthPercent"),
        out,
    );
}

fn connection_pool(p: &ConnectionPoolSettings, path: &str, out: &mut Out) {
    if p.http.is_none() && p.tcp.is_none() {
        out.push(
            path,
            ErrorKind::EmptyBlock {
                field: "connectionPool".into(),
            },
        );
        return;
    }
    if let Some(h) = &p.http {
        let hp = format!("{path}.http");
        for (name, value) in [
            ("http1MaxPendingRequests", h.http1_max_pending_requests),
            ("http2MaxRequests", h.http2_max_requests),
            ("maxRequestsPerConnection", h.max_requests_per_connection),
            ("maxRetries", h.max_retries),
            ("maxConcurrentStreams", h.max_concurrent_streams),
        ] {
            checks::non_negative(value, &format!("{hp}.{name}"), out);
        }
        if let Some(d) = &h.idle_timeout {
            checks::duration(d, &format!("{hp}.idleTimeout"), out);
        }
        if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && h.use_client_protocol == Some(true)
        {
            out.push(
                format!("{hp}.useClientProtocol"),
                ErrorKind::ConflictingFields {
                    field: "useClientProtocol".into(),
                    other: "h2UpgradePolicy: UPGRADE".into(),
                    hint: "keeping the client's protocol prevents the HTTP/2 upgrade; remove one of them".into(),
                },
            );
        }
    }
    if let Some(t) = &p.tcp {
        let tp = format!("{path}.tcp");
        checks::non_negative(t.max_connections, &format!("{tp}.maxConnections"), out);
        for (name, value) in [
            ("connectTimeout", &t.connect_timeout),
            ("maxConnectionDuration", &t.max_connection_duration),
        ] {
            if let Some(d) = value {
                checks::duration(d, &format!("{tp}.{name}"), out);
            }
        }
        if let Some(d) = &t.idle_timeout {
            // Upstream skips the check when the timeout truncates to 0ms (`0s` disables it).
            let disabled =
                checks::parse_duration_ns(d).is_some_and(|ns| (0..1_000_000).contains(&ns));
            if !disabled {
                checks::duration(d, &format!("{tp}.idleTimeout"), out);
            }
        }
        if let Some(ka) = &t.tcp_keepalive {
            for (name, value) in [("time", &ka.time), ("interval", &ka.interval)] {
                if let Some(d) = value {
                    checks::duration(d, &format!("{tp}.tcpKeepalive.{name}"), out);
                }
            }
        }
    }
}

fn client_tls(t: &ClientTlsSettings, path: &str, namespace: &str, out: &mut Out) {
    let file_fields = [
        ("clientCertificate", !t.client_certificate.is_empty()),
        ("privateKey", !t.private_key.is_empty()),
        ("caCertificates", !t.ca_certificates.is_empty()),
        ("caCrl", !t.ca_crl.is_empty()),
    ];
    let has_credential = !t.credential_name.is_empty();
    match t.mode {
        TlsMode::IstioMutual => {
            for (field, set) in file_fields
                .iter()
                .copied()
                .chain([("credentialName", has_credential)])
            {
                if set {
                    out.push(
                        format!("{path}.{field}"),
                        ErrorKind::TlsFieldWithMode {
                            field: field.into(),
                            mode: "ISTIO_MUTUAL".into(),
                            hint: "Istio supplies the workload certificate and the mesh CA, so it would be ignored; remove it, or use mode MUTUAL to present your own certificate".into(),
                        },
                    );
                }
            }
        }
        TlsMode::Disable => {
            if has_credential {
                out.push(
                    format!("{path}.credentialName"),
                    ErrorKind::TlsFieldWithMode {
                        field: "credentialName".into(),
                        mode: "DISABLE".into(),
                        hint: "`credentialName` only applies to modes SIMPLE and MUTUAL; remove it or change the mode".into(),
                    },
                );
            }
        }
        TlsMode::Simple | TlsMode::Mutual => simple_or_mutual(t, path, namespace, out),
    }
}

fn simple_or_mutual(t: &ClientTlsSettings, path: &str, namespace: &str, out: &mut Out) {
    let has_credential = !t.credential_name.is_empty();
    if let Some(rest) = t.credential_name.strip_prefix("configmap://") {
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [name] if !name.is_empty() => {}
            [ns, name] if !ns.is_empty() && !name.is_empty() => {
                if *ns != namespace || namespace.is_empty() {
                    out.push(
                        format!("{path}.credentialName"),
                        ErrorKind::ConflictingFields {
                            field: "credentialName".into(),
                            other: "metadata.namespace".into(),
                            hint: format!(
                                "a `configmap://` credential must be in the rule's own namespace; write `configmap://{name}`"
                            ),
                        },
                    );
                }
            }
            _ => out.push(
                format!("{path}.credentialName"),
                ErrorKind::InvalidAddress {
                    value: t.credential_name.clone(),
                    expected: "`configmap://<name>` or `configmap://<namespace>/<name>`".into(),
                },
            ),
        }
    }
    if t.insecure_skip_verify == Some(true) {
        let mut conflicting = vec![("caCertificates", !t.ca_certificates.is_empty())];
        if t.mode == TlsMode::Simple {
            conflicting.push(("credentialName", has_credential));
        }
        conflicting.push(("subjectAltNames", !t.subject_alt_names.is_empty()));
        for (field, set) in conflicting {
            if set {
                out.push(
                    format!("{path}.{field}"),
                    ErrorKind::TlsFieldWithInsecureSkipVerify {
                        field: field.into(),
                    },
                );
            }
        }
    }
    if has_credential {
        for (field, set) in [
            ("clientCertificate", !t.client_certificate.is_empty()),
            ("caCertificates", !t.ca_certificates.is_empty()),
            ("privateKey", !t.private_key.is_empty()),
            ("caCrl", !t.ca_crl.is_empty()),
        ] {
            if set {
                out.push(
                    format!("{path}.{field}"),
                    ErrorKind::TlsFieldWithCredentialName {
                        field: field.into(),
                    },
                );
            }
        }
        return;
    }
    if t.mode == TlsMode::Mutual {
        for (field, set) in [
            ("clientCertificate", !t.client_certificate.is_empty()),
            ("privateKey", !t.private_key.is_empty()),
        ] {
            if !set {
                out.push(
                    path,
                    ErrorKind::TlsMissingClientCert {
                        field: field.into(),
                    },
                );
            }
        }
    }
}

fn tunnel(t: &TunnelSettings, path: &str, out: &mut Out) {
    if !matches!(t.protocol.as_str(), "" | "CONNECT" | "POST") {
        out.push(
            format!("{path}.protocol"),
            ErrorKind::UnknownEnumValue {
                value: t.protocol.clone(),
                allowed: vec!["CONNECT".into(), "POST".into()],
                suggestion: crate::error::closest(&t.protocol, ["CONNECT", "POST"]),
            },
        );
    }
    if t.target_host.is_empty() {
        out.push(
            path,
            ErrorKind::MissingField {
                field: "targetHost".into(),
            },
        );
    } else if !checks::is_ip(&t.target_host)
        && let Err(reason) = checks::fqdn(&t.target_host)
    {
        out.push(
            format!("{path}.targetHost"),
            ErrorKind::InvalidHost {
                value: t.target_host.clone(),
                reason: format!("{reason}, and it is not an IP address"),
            },
        );
    }
    if t.target_port == 0 {
        out.push(
            path,
            ErrorKind::MissingField {
                field: "targetPort".into(),
            },
        );
    } else {
        checks::port(t.target_port, &format!("{path}.targetPort"), out);
    }
}
