//! Identity findings: authorization values that name no registered workload (SG0102,
//! SG0103), and entries whose SVID lifetime the CA cannot honour (SG0501, SG0502).
//!
//! Values are compiled with the proxy's own rule compiler and matched with its matchers, so
//! `*` patterns, `serviceAccounts` and `/ns/<ns>/` extraction behave exactly as at runtime.

use std::collections::BTreeSet;

use crate::authz::Action;
use crate::resource::Resource;
use crate::view::{
    Attr, Matcher, any_namespace, compile_rule, service_account_matches, strip_scheme,
};

use super::{
    Finding, Input, Located, RegisteredEntry, ResourceRef, Severity, human_duration, namespace_of,
    rfc3339,
};

/// `from[0].source.principals` → `spec.rules[r].from[0].source.principals[i]`;
/// `when[1][source.principal].values` → `spec.rules[r].when[1].values[i]`.
fn value_path(rule: usize, label: &str, i: usize) -> String {
    let field = if label.starts_with("when[") {
        let head = label.split(']').next().unwrap_or("when[0");
        let tail = label.rsplit('.').next().unwrap_or("values");
        format!("{head}].{tail}")
    } else {
        label.to_owned()
    };
    format!("spec.rules[{rule}].{field}[{i}]")
}

/// The namespace segment of an ID or pattern (`cluster.local/ns/payments/sa/x` → `payments`).
fn namespace_in(id: &str) -> Option<String> {
    let mut found = None;
    any_namespace(id, |ns| {
        found = Some(ns.to_owned());
        true
    });
    found
}

fn matches(attr: &Attr, m: &Matcher, id: &str) -> bool {
    match (attr, m) {
        (Attr::Principal, Matcher::Str(s)) => s.matches(strip_scheme(id)),
        (Attr::Namespace, Matcher::Str(s)) => any_namespace(id, |ns| s.matches(ns)),
        (Attr::ServiceAccount, Matcher::ServiceAccount { ns, sa }) => {
            service_account_matches(id, ns, sa)
        }
        _ => true,
    }
}

fn shown(m: &Matcher) -> String {
    match m {
        Matcher::Str(s) => s.pattern(),
        Matcher::ServiceAccount { ns, sa } => format!("{ns}/{sa}"),
        _ => String::new(),
    }
}

struct Value<'a> {
    policy: &'a Located,
    action: Action,
    rule: usize,
    attr: &'a Attr,
    negated: bool,
    text: String,
    path: String,
}

fn report(input: &Input<'_>, entries: &[RegisteredEntry], v: &Value<'_>) -> Finding {
    let (code, what) = match v.attr {
        Attr::Namespace => ("SG0103", "namespace"),
        Attr::ServiceAccount => ("SG0102", "service account"),
        _ => ("SG0102", "principal"),
    };
    let field = v.path.rsplit('.').next().unwrap_or_default();
    let field = field.split('[').next().unwrap_or_default();
    let effect = match (v.action, v.negated) {
        (Action::Allow, false) => "so this ALLOW rule never admits a caller through it: \
                                   the workload it was meant for is denied"
            .to_owned(),
        (_, true) => format!("so `{field}` excludes nobody through it"),
        (a, false) => format!("so this {} rule never matches through it", a.as_str()),
    };
    let severity = if v.action == Action::Allow && !v.negated {
        Severity::Error
    } else {
        Severity::Warning
    };
    let ids: Vec<&str> = entries.iter().map(|e| e.spiffe_id.as_str()).collect();
    let namespaces: BTreeSet<String> = ids.iter().filter_map(|id| namespace_in(id)).collect();
    let mut hint = String::new();
    let ns_hint = match v.attr {
        Attr::Namespace => None,
        Attr::ServiceAccount => v.text.split_once('/').map(|(ns, _)| ns.to_owned()),
        _ => namespace_in(&v.text),
    };
    if let Some(ns) = ns_hint {
        let near: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| namespace_in(id).as_deref() == Some(ns.as_str()))
            .take(5)
            .collect();
        if !near.is_empty() {
            hint = format!(" Registered IDs in namespace {ns}: {}.", near.join(", "));
        }
    }
    if matches!(v.attr, Attr::Principal) {
        let td = v.text.split('/').next().unwrap_or_default();
        if !td.contains('*') && td != input.trust_domain {
            hint.push_str(&format!(
                " Its trust domain {td:?} is not this mesh's {:?}.",
                input.trust_domain
            ));
        }
    }
    if matches!(v.attr, Attr::Namespace) && !namespaces.is_empty() {
        let list: Vec<&str> = namespaces.iter().map(String::as_str).take(10).collect();
        hint = format!(" Namespaces with registered entries: {}.", list.join(", "));
    }
    let create = match v.attr {
        Attr::Principal if !v.text.contains('*') => format!(
            " or register it: sigil entry create -spiffeID spiffe://{} -parentID <agent SPIFFE ID> \
             -selector <type:value>",
            v.text
        ),
        _ => String::new(),
    };
    Finding {
        code,
        severity,
        resource: ResourceRef::of(v.policy, &v.path),
        message: format!(
            "{what} {:?} in rule {} matches no registered entry ({} entries), {effect}",
            v.text,
            v.rule,
            entries.len()
        ),
        fix: format!("Correct the {what} in {}{create}.{hint}", v.path),
    }
}

fn check_values(input: &Input<'_>, entries: &[RegisteredEntry], out: &mut Vec<Finding>) {
    for l in input.resources {
        let Resource::AuthorizationPolicy(o) = &l.resource else {
            continue;
        };
        let ns = namespace_of(l, input.mesh);
        for (r, rule) in o.spec.rules.iter().flatten().enumerate() {
            let compiled = compile_rule(rule, ns);
            let clauses = compiled
                .from
                .iter()
                .flat_map(|es| es.iter())
                .flat_map(|e| e.clauses.iter())
                .chain(compiled.when.iter());
            for c in clauses {
                if !matches!(
                    c.attr,
                    Attr::Principal | Attr::Namespace | Attr::ServiceAccount
                ) {
                    continue;
                }
                for (i, m) in c.matchers.iter().enumerate() {
                    if entries.iter().any(|e| matches(&c.attr, m, &e.spiffe_id)) {
                        continue;
                    }
                    out.push(report(
                        input,
                        entries,
                        &Value {
                            policy: l,
                            action: o.spec.action,
                            rule: r,
                            attr: &c.attr,
                            negated: c.negated,
                            text: shown(m),
                            path: value_path(r, &c.label, i),
                        },
                    ));
                }
            }
        }
    }
}

fn check_lifetimes(input: &Input<'_>, entries: &[RegisteredEntry], out: &mut Vec<Finding>) {
    let Some(not_after) = input.ca_not_after else {
        return;
    };
    let left = not_after - input.now;
    if left <= 0 {
        out.push(Finding {
            code: "SG0502",
            severity: Severity::Error,
            resource: ResourceRef::other("CA", None, input.trust_domain),
            message: format!(
                "the CA of trust domain {} expired at {}: no new SVID chains to a valid \
                 authority, and peers refuse the ones already issued",
                input.trust_domain,
                rfc3339(not_after)
            ),
            fix: "Rotate the CA now: restart the server with a fresh CA (or renew the upstream \
                  CA given with --upstream-ca-cert), then let agents renew their SVIDs."
                .to_owned(),
        });
        return;
    }
    for e in entries {
        let ttl = i64::try_from(e.x509_svid_ttl).unwrap_or(i64::MAX);
        if ttl == 0 || ttl <= left {
            continue;
        }
        let ns = namespace_in(&e.spiffe_id);
        out.push(Finding {
            code: "SG0501",
            severity: Severity::Warning,
            resource: ResourceRef::other("Entry", ns.as_deref(), &e.spiffe_id),
            message: format!(
                "entry {} asks for X.509-SVIDs valid {} but the CA expires in {} (at {}): every \
                 SVID is cut to the CA's notAfter, so workloads get shorter certificates than \
                 configured and all of them expire together with the CA",
                e.id,
                human_duration(ttl),
                human_duration(left),
                rfc3339(not_after)
            ),
            fix: format!(
                "Lower the TTL below {}: sigil entry update -entryID {} -x509SVIDTTL {}; or give \
                 the CA a longer life (server --ca-ttl) so it outlives the SVIDs it signs.",
                human_duration(left),
                e.id,
                (left / 2).max(1)
            ),
        });
    }
}

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    let Some(entries) = input.entries else {
        return;
    };
    check_values(input, entries, out);
    check_lifetimes(input, entries, out);
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::super::testing::Fixture;

    const AP: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  rules:\n  - from:\n    - source:\n        principals:\n        - cluster.local/ns/payments/sa/checkout-service\n        - cluster.local/ns/payments/sa/checkout\n        namespaces: [paymnts]\n";
    const CHECKOUT: &str = "spiffe://cluster.local/ns/payments/sa/checkout-service";

    #[test]
    fn a_principal_and_a_namespace_nobody_has_are_errors_with_the_line() {
        let f = Fixture::new(AP).entries(&[(CHECKOUT, 0)]);
        let p = f.with_code("SG0102");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].severity, Severity::Error);
        assert_eq!(p[0].resource.line, Some(12));
        assert!(
            p[0].message
                .contains("\"cluster.local/ns/payments/sa/checkout\""),
            "{}",
            p[0].message
        );
        assert!(p[0].fix.contains(CHECKOUT), "{}", p[0].fix);
        let n = f.with_code("SG0103");
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].resource.line, Some(13));
        assert!(n[0].fix.contains("payments"), "{}", n[0].fix);
    }

    #[test]
    fn registered_and_wildcard_values_and_unknown_entries_are_quiet() {
        let f = Fixture::new(AP).entries(&[
            (CHECKOUT, 0),
            ("spiffe://cluster.local/ns/payments/sa/checkout", 0),
            ("spiffe://cluster.local/ns/paymnts/sa/x", 0),
        ]);
        assert!(f.run().is_empty(), "{:?}", f.run());
        let wild = AP
            .replace("sa/checkout\n", "sa/*\n")
            .replace("[paymnts]", "[\"pay*\"]");
        assert!(
            Fixture::new(&wild)
                .entries(&[(CHECKOUT, 0)])
                .run()
                .is_empty()
        );
        // Entries not known (no server, no --entries): skipped, not "none registered".
        assert!(Fixture::new(AP).run().is_empty());
    }

    #[test]
    fn a_deny_value_nobody_has_is_a_warning() {
        let deny = AP.replace("spec:\n", "spec:\n  action: DENY\n");
        let f = Fixture::new(&deny).entries(&[(CHECKOUT, 0)]);
        let all = f.run();
        assert!(
            all.iter().all(|x| x.severity == Severity::Warning),
            "{all:?}"
        );
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn ttl_longer_than_the_ca_has_left_is_reported() {
        let f = Fixture::new("")
            .entries(&[(CHECKOUT, 7200), ("spiffe://cluster.local/ns/a/sa/b", 1800)]);
        let now = f.now;
        let f = f.ca_not_after(now + 3600);
        let found = f.with_code("SG0501");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].resource.name, CHECKOUT);
        assert!(
            found[0]
                .message
                .contains("valid 2h but the CA expires in 1h"),
            "{}",
            found[0].message
        );
        let expired = Fixture::new("").entries(&[]);
        let now = expired.now;
        let expired = expired.ca_not_after(now - 1);
        assert_eq!(expired.with_code("SG0502").len(), 1);
    }
}
