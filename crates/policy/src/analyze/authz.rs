//! AuthorizationPolicy rules that use HTTP-only fields on a port the proxy treats as TCP:
//! an ALLOW rule never matches there (SG0301); a DENY rule loses those clauses and denies
//! wider than written (SG0302). The rules are the compiled ones the proxy evaluates.

use crate::authz::Action;
use crate::resource::Resource;
use crate::view::{Attr, Clause, CompiledAuthz, Matcher, Protocol};

use super::{Finding, Input, KnownWorkload, ResourceRef, Severity, find};

/// Whether the port clauses in `clauses` admit `port`.
fn ports_admit<'a>(mut clauses: impl Iterator<Item = &'a Clause>, port: u16) -> bool {
    clauses.all(|c| {
        c.attr != Attr::DestPort || {
            let hit = c
                .matchers
                .iter()
                .any(|m| matches!(m, Matcher::Port(p) if *p == port));
            hit != c.negated
        }
    })
}

fn http_fields(clauses: &mut dyn Iterator<Item = &Clause>) -> Vec<String> {
    let mut v: Vec<String> = clauses
        .filter(|c| c.attr.http_only())
        .map(|c| c.label.rsplit('.').next().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn tcp_ports(w: &KnownWorkload) -> impl Iterator<Item = u16> + '_ {
    w.ports
        .iter()
        .filter(|p| p.protocol == Some(Protocol::Tcp))
        .map(|p| p.port)
}

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    for w in input.workloads {
        if tcp_ports(w).next().is_none() {
            continue;
        }
        let authz = CompiledAuthz::compile(
            input.resources.iter().filter_map(|l| match &l.resource {
                Resource::AuthorizationPolicy(o) => Some(o),
                _ => None,
            }),
            &w.workload,
            input.mesh,
        );
        for policy in authz.policies() {
            if !matches!(policy.action, Action::Allow | Action::Deny) {
                continue;
            }
            let Some(l) = find(
                input,
                "AuthorizationPolicy",
                &policy.id.namespace,
                &policy.id.name,
            ) else {
                continue;
            };
            for (r, rule) in policy.rules.iter().enumerate() {
                if !rule.http_only {
                    continue;
                }
                let all = || {
                    rule.from
                        .iter()
                        .chain(rule.to.iter())
                        .flat_map(|es| es.iter())
                        .flat_map(|e| e.clauses.iter())
                        .chain(rule.when.iter())
                };
                let fields = http_fields(&mut all()).join(", ");
                for port in tcp_ports(w) {
                    let to_ok = rule
                        .to
                        .as_ref()
                        .is_none_or(|es| es.iter().any(|e| ports_admit(e.clauses.iter(), port)));
                    if !to_ok || !ports_admit(rule.when.iter(), port) {
                        continue;
                    }
                    out.push(finding(l, policy.action, r, &fields, w, port));
                }
            }
        }
    }
}

fn finding(
    l: &super::Located,
    action: Action,
    rule: usize,
    fields: &str,
    w: &KnownWorkload,
    port: u16,
) -> Finding {
    let wname = super::workload_name(w);
    let path = format!("spec.rules[{rule}]");
    if action == Action::Allow {
        Finding {
            code: "SG0301",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, &path),
            message: format!(
                "ALLOW rule {rule} uses HTTP-only fields ({fields}) but port {port} of {wname} \
                 is TCP: the rule never matches there, so connections it was meant to admit on \
                 port {port} are denied"
            ),
            fix: format!(
                "Write a separate rule for port {port} without {fields} (ports and sources \
                 only), or declare port {port} as protocol: http in {} if it speaks HTTP.",
                w.origin
            ),
        }
    } else {
        Finding {
            code: "SG0302",
            severity: Severity::Error,
            resource: ResourceRef::of(l, &path),
            message: format!(
                "DENY rule {rule} uses HTTP-only fields ({fields}) but port {port} of {wname} \
                 is TCP: Sigil (like Istio) drops those fields there, so the rule denies every \
                 connection to port {port} that its other fields match (all of them if it has \
                 no other field)"
            ),
            fix: format!(
                "Limit the rule to HTTP ports (to.operation.ports or notPorts: [\"{port}\"]), \
                 or declare port {port} as protocol: http in {} if it speaks HTTP.",
                w.origin
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::super::testing::Fixture;
    use crate::view::Protocol;

    fn policy(action: &str, ports: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: db\n  namespace: payments\nspec:\n  action: {action}\n  rules:\n  - to:\n    - operation:\n        methods: [GET]\n{ports}"
        )
    }

    fn db(yaml: &str, protocol: Protocol) -> Fixture {
        Fixture::new(yaml)
            .workload("payments", "db", &[("app", "db")])
            .port(5432, Some(protocol))
    }

    #[test]
    fn allow_with_http_fields_on_tcp_is_a_warning_and_deny_an_error() {
        let allow = db(&policy("ALLOW", ""), Protocol::Tcp).with_code("SG0301");
        assert_eq!(allow.len(), 1, "{allow:?}");
        assert_eq!(allow[0].severity, Severity::Warning);
        assert_eq!(allow[0].resource.line, Some(9));
        assert!(allow[0].message.contains("(methods)") && allow[0].message.contains("port 5432"));
        let deny = db(&policy("DENY", ""), Protocol::Tcp).with_code("SG0302");
        assert_eq!(deny.len(), 1, "{deny:?}");
        assert_eq!(deny[0].severity, Severity::Error);
        assert!(
            deny[0]
                .message
                .contains("denies every connection to port 5432")
        );
    }

    #[test]
    fn http_ports_and_rules_limited_to_other_ports_are_fine() {
        assert!(db(&policy("DENY", ""), Protocol::Http).run().is_empty());
        let other = "        ports: [\"8080\"]\n";
        assert!(db(&policy("DENY", other), Protocol::Tcp).run().is_empty());
        let not_this = "        notPorts: [\"5432\"]\n";
        assert!(
            db(&policy("ALLOW", not_this), Protocol::Tcp)
                .run()
                .is_empty()
        );
    }
}
