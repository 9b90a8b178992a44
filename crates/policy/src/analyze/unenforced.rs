//! Fields Sigil parses (so `apply` accepts them, as Istio does) but its proxy does not act on,
//! checked against crates/proxy: DestinationRule traffic settings other than TLS (SG0401),
//! `caCrl` (SG0402), `credentialName` (SG0403), RequestAuthentication and JWT attributes
//! (SG0404, SG0405: the proxy never validates a JWT, so no request has a request principal),
//! CUSTOM authorization (SG0406: no external authorizer, fails closed), `when` keys the rule
//! compiler cannot evaluate (SG0407), and `targetRef` policies (SG0408: gateways only).

use crate::authz::Action;
use crate::networking::{ClientTlsSettings, DestinationRuleSpec, TlsMode, TrafficPolicy};
use crate::resource::Resource;
use crate::view::{Attr, compile_rule};

use super::{Finding, Input, Located, ResourceRef, Severity, namespace_of};

fn traffic_fields(tp: &TrafficPolicy, at: &str, out: &mut Vec<String>) {
    let top = [
        ("loadBalancer", tp.load_balancer.is_some()),
        ("connectionPool", tp.connection_pool.is_some()),
        ("outlierDetection", tp.outlier_detection.is_some()),
        ("tunnel", tp.tunnel.is_some()),
        ("proxyProtocol", tp.proxy_protocol.is_some()),
        ("retryBudget", tp.retry_budget.is_some()),
    ];
    out.extend(top.iter().filter(|f| f.1).map(|f| format!("{at}.{}", f.0)));
    for (i, p) in tp.port_level_settings.iter().enumerate() {
        let port = [
            ("loadBalancer", p.load_balancer.is_some()),
            ("connectionPool", p.connection_pool.is_some()),
            ("outlierDetection", p.outlier_detection.is_some()),
        ];
        out.extend(
            port.iter()
                .filter(|f| f.1)
                .map(|f| format!("{at}.portLevelSettings[{i}].{}", f.0)),
        );
    }
}

fn tls_of<'a>(tp: &'a TrafficPolicy, at: &str, out: &mut Vec<(String, &'a ClientTlsSettings)>) {
    if let Some(t) = &tp.tls {
        out.push((format!("{at}.tls"), t));
    }
    for (i, p) in tp.port_level_settings.iter().enumerate() {
        if let Some(t) = &p.tls {
            out.push((format!("{at}.portLevelSettings[{i}].tls"), t));
        }
    }
}

/// Every `tls` block of a rule with its field path.
fn tls_blocks(spec: &DestinationRuleSpec) -> Vec<(String, &ClientTlsSettings)> {
    let mut out = Vec::new();
    if let Some(tp) = &spec.traffic_policy {
        tls_of(tp, "spec.trafficPolicy", &mut out);
    }
    for (i, s) in spec.subsets.iter().enumerate() {
        if let Some(tp) = &s.traffic_policy {
            tls_of(tp, &format!("spec.subsets[{i}].trafficPolicy"), &mut out);
        }
    }
    out
}

fn destination_rule(l: &Located, spec: &DestinationRuleSpec, out: &mut Vec<Finding>) {
    let mut fields = Vec::new();
    if let Some(tp) = &spec.traffic_policy {
        traffic_fields(tp, "spec.trafficPolicy", &mut fields);
    }
    for (i, s) in spec.subsets.iter().enumerate() {
        if let Some(tp) = &s.traffic_policy {
            traffic_fields(tp, &format!("spec.subsets[{i}].trafficPolicy"), &mut fields);
        }
    }
    if let Some(first) = fields.first() {
        out.push(Finding {
            code: "SG0401",
            severity: Severity::Info,
            resource: ResourceRef::of(l, first),
            message: format!(
                "the Sigil proxy applies only the TLS settings of a DestinationRule; {} \
                 {} accepted but not applied (connections use round robin, no pool limits, no \
                 ejection)",
                fields.join(", "),
                if fields.len() == 1 { "is" } else { "are" }
            ),
            fix: "Remove these fields, or enforce the limits elsewhere (the application or a \
                  load balancer); keep only tls settings in rules meant for Sigil."
                .to_owned(),
        });
    }
    for (path, tls) in tls_blocks(spec) {
        if !tls.ca_crl.is_empty() {
            out.push(Finding {
                code: "SG0402",
                severity: Severity::Warning,
                resource: ResourceRef::of(l, &format!("{path}.caCrl")),
                message: format!(
                    "caCrl {:?} is not checked by the Sigil proxy: a server certificate it \
                     revokes is still accepted",
                    tls.ca_crl
                ),
                fix: "Remove caCrl and revoke by rotating the server's certificate and its CA, \
                      or pin the accepted server identities with subjectAltNames."
                    .to_owned(),
            });
        }
        if !tls.credential_name.is_empty() && matches!(tls.mode, TlsMode::Mutual | TlsMode::Simple)
        {
            out.push(Finding {
                code: "SG0403",
                severity: Severity::Error,
                resource: ResourceRef::of(l, &format!("{path}.credentialName")),
                message: format!(
                    "{} with credentialName {:?}: the Sigil proxy cannot read Kubernetes \
                     secrets, so it refuses every connection this rule governs",
                    tls.mode.as_str(),
                    tls.credential_name
                ),
                fix: "Replace credentialName with file paths: clientCertificate, privateKey and \
                      caCertificates."
                    .to_owned(),
            });
        }
    }
}

fn authorization(
    input: &Input<'_>,
    l: &Located,
    spec: &crate::AuthorizationPolicySpec,
    out: &mut Vec<Finding>,
) {
    if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
        let path = if spec.target_ref.is_some() {
            "spec.targetRef"
        } else {
            "spec.targetRefs"
        };
        out.push(Finding {
            code: "SG0408",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, path),
            message: "targetRef/targetRefs attach a policy to gateways and waypoints; Sigil \
                      proxies run beside workloads, so this policy applies to none of them"
                .to_owned(),
            fix: "Replace targetRef/targetRefs with spec.selector.matchLabels naming the \
                  workloads to protect."
                .to_owned(),
        });
    }
    if spec.action == Action::Custom {
        out.push(Finding {
            code: "SG0406",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, "spec.action"),
            message: format!(
                "CUSTOM delegates to provider {:?}, and Sigil has no external authorizer: \
                 every request its rules match is denied (fail closed)",
                spec.provider
                    .as_ref()
                    .map(|p| p.name.as_str())
                    .unwrap_or_default()
            ),
            fix: "Express the decision with ALLOW and DENY policies.".to_owned(),
        });
    }
    let ns = namespace_of(l, input.mesh);
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        let c = compile_rule(rule, ns);
        let clauses: Vec<_> = c
            .from
            .iter()
            .chain(c.to.iter())
            .flat_map(|es| es.iter())
            .flat_map(|e| e.clauses.iter())
            .chain(c.when.iter())
            .collect();
        let jwt: Vec<_> = clauses
            .iter()
            .filter(|c| matches!(c.attr, Attr::RequestPrincipal | Attr::Claim(_)))
            .collect();
        if let Some(first) = jwt.first() {
            let negated = jwt.iter().any(|c| c.negated);
            let deny_all = negated && spec.action != Action::Allow;
            let effect = match (spec.action, negated) {
                (Action::Allow, false) => "this ALLOW rule never matches".to_owned(),
                (a, true) => format!(
                    "the negated field holds for every request, so this {} rule matches \
                     requests that carry a valid token too",
                    a.as_str()
                ),
                (a, false) => format!("this {} rule never matches", a.as_str()),
            };
            out.push(Finding {
                code: "SG0405",
                severity: if deny_all {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                resource: ResourceRef::of(l, &format!("spec.rules[{r}]")),
                message: format!(
                    "rule {r} uses {} but the Sigil proxy does not validate JWTs: no request \
                     has a request principal or claims, so {effect}",
                    first.label
                ),
                fix: "Authorize by peer identity (source.principals from mTLS) instead of JWT \
                      fields, or validate tokens in the application."
                    .to_owned(),
            });
        }
        if c.unsupported {
            let effect = if spec.action == Action::Allow {
                "this ALLOW rule never matches"
            } else {
                "the condition is ignored and the rule matches more requests than written"
            };
            out.push(Finding {
                code: "SG0407",
                severity: Severity::Warning,
                resource: ResourceRef::of(l, &format!("spec.rules[{r}]")),
                message: format!(
                    "rule {r} has a key or value Sigil cannot evaluate (keys: {}; \
                     experimental.envoy.filters.* or a malformed IP/port): {effect}",
                    rule.when
                        .iter()
                        .map(|w| w.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                fix: "Use keys Sigil evaluates: source.ip, remote.ip, source.principal, \
                      source.namespace, source.serviceAccount, destination.ip, \
                      destination.port, connection.sni, request.headers[name]."
                    .to_owned(),
            });
        }
    }
}

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    for l in input.resources {
        match &l.resource {
            Resource::DestinationRule(o) => destination_rule(l, &o.spec, out),
            Resource::AuthorizationPolicy(o) => authorization(input, l, &o.spec, out),
            Resource::RequestAuthentication(_) => out.push(Finding {
                code: "SG0404",
                severity: Severity::Warning,
                resource: ResourceRef::of(l, "spec.jwtRules"),
                message: "the Sigil proxy does not validate JWTs: this RequestAuthentication \
                          neither rejects bad tokens nor gives requests a request principal"
                    .to_owned(),
                fix: "Validate tokens in the application (or a gateway in front of it), and \
                      authorize callers by their mTLS identity in AuthorizationPolicy."
                    .to_owned(),
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::super::testing::Fixture;

    const DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  host: billing\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n";

    #[test]
    fn traffic_settings_and_crl_the_proxy_ignores_are_named() {
        let lb = format!(
            "{DR}    loadBalancer:\n      simple: ROUND_ROBIN\n    outlierDetection:\n      consecutive5xxErrors: 3\n"
        );
        let found = Fixture::new(&lb).with_code("SG0401");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Info);
        assert!(
            found[0]
                .message
                .contains("spec.trafficPolicy.loadBalancer, spec.trafficPolicy.outlierDetection"),
            "{}",
            found[0].message
        );
        let crl = DR.replace(
            "ISTIO_MUTUAL",
            "SIMPLE\n      caCertificates: /etc/ca.pem\n      caCrl: /etc/crl.pem",
        );
        let found = Fixture::new(&crl).with_code("SG0402");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].resource.line, Some(12));
        assert!(Fixture::new(DR).run().is_empty());
    }

    #[test]
    fn credential_name_on_mutual_refuses_connections() {
        let cred = DR.replace(
            "ISTIO_MUTUAL",
            "MUTUAL\n      credentialName: billing-client",
        );
        let found = Fixture::new(&cred).with_code("SG0403");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
    }

    const AP: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: api\n  namespace: payments\nspec:\n";

    #[test]
    fn jwt_fields_custom_unknown_keys_and_target_refs_are_reported() {
        let deny = format!(
            "{AP}  action: DENY\n  rules:\n  - from:\n    - source:\n        notRequestPrincipals: [\"*\"]\n"
        );
        let found = Fixture::new(&deny).with_code("SG0405");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        let allow = format!(
            "{AP}  rules:\n  - from:\n    - source:\n        requestPrincipals: [\"issuer/sub\"]\n"
        );
        let found = Fixture::new(&allow).with_code("SG0405");
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(found[0].message.contains("never matches"));
        let custom =
            format!("{AP}  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - {{}}\n");
        assert_eq!(Fixture::new(&custom).with_code("SG0406").len(), 1);
        let when = format!(
            "{AP}  rules:\n  - when:\n    - key: experimental.envoy.filters.a[b]\n      values: [x]\n"
        );
        let found = Fixture::new(&when).with_code("SG0407");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("experimental.envoy.filters.a[b]"));
        let target = format!(
            "{AP}  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: gw\n"
        );
        assert_eq!(Fixture::new(&target).with_code("SG0408").len(), 1);
        let plain = format!(
            "{AP}  rules:\n  - from:\n    - source:\n        principals: [a/b]\n    when:\n    - key: source.ip\n      values: [10.0.0.0/8]\n"
        );
        assert!(Fixture::new(&plain).run().is_empty());
    }

    #[test]
    fn request_authentication_is_not_enforced() {
        let ra = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  namespace: payments\nspec:\n  jwtRules:\n  - issuer: https://issuer.example\n";
        assert_eq!(Fixture::new(ra).with_code("SG0404").len(), 1);
    }
}
