//! SG0101: a `selector` (or `workloadSelector`) that matches no known workload, so the
//! resource applies to nothing.

use std::collections::BTreeMap;

use crate::resource::Resource;

use super::{Finding, Input, Located, ResourceRef, Severity, namespace_of};

/// Label selectors that pick workloads, with their field path and whether the root namespace
/// widens them to every namespace.
fn selector_of(l: &Located) -> Option<(&BTreeMap<String, String>, &'static str, bool)> {
    match &l.resource {
        Resource::AuthorizationPolicy(o) => o
            .spec
            .selector
            .as_ref()
            .map(|s| (&s.match_labels, "spec.selector.matchLabels", true)),
        Resource::RequestAuthentication(o) => o
            .spec
            .selector
            .as_ref()
            .map(|s| (&s.match_labels, "spec.selector.matchLabels", true)),
        // Root-namespace selector policies are SG0203 (ignored), not "matches nothing".
        Resource::PeerAuthentication(o) => o
            .spec
            .selector
            .as_ref()
            .map(|s| (&s.match_labels, "spec.selector.matchLabels", false)),
        Resource::DestinationRule(o) => o
            .spec
            .workload_selector
            .as_ref()
            .map(|s| (&s.match_labels, "spec.workloadSelector.matchLabels", false)),
        Resource::ServiceEntry(o) => o
            .spec
            .workload_selector
            .as_ref()
            .map(|s| (&s.labels, "spec.workloadSelector.labels", false)),
        _ => None,
    }
}

fn render(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    if input.workloads.is_empty() {
        return;
    }
    for l in input.resources {
        let Some((labels, path, root_widens)) = selector_of(l) else {
            continue;
        };
        if labels.is_empty() {
            continue;
        }
        let ns = namespace_of(l, input.mesh);
        let in_root = ns == input.mesh.root_namespace;
        if in_root && matches!(l.resource, Resource::PeerAuthentication(_)) {
            continue;
        }
        let everywhere = in_root && root_widens;
        let scope: Vec<_> = input
            .workloads
            .iter()
            .filter(|w| everywhere || w.workload.namespace == ns)
            .collect();
        let matched = scope.iter().any(|w| {
            labels
                .iter()
                .all(|(k, v)| w.workload.labels.get(k) == Some(v))
        });
        if matched {
            continue;
        }
        let where_ = if everywhere {
            "in any namespace".to_owned()
        } else {
            format!("in namespace {ns}")
        };
        let known = if scope.is_empty() {
            format!("no workload is known {where_}")
        } else {
            let list: Vec<String> = scope
                .iter()
                .take(5)
                .map(|w| format!("{} [{}]", w.name, render(&w.workload.labels)))
                .collect();
            format!("known workloads {where_}: {}", list.join("; "))
        };
        out.push(Finding {
            code: "SG0101",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, path),
            message: format!(
                "selector {} matches no workload, so this {} applies to nothing ({known})",
                render(labels),
                l.resource.kind()
            ),
            fix: format!(
                "Change {path} to labels a workload has (a proxy config's workload.labels or a \
                 WorkloadEntry's labels), or give the intended workload the labels {}.",
                render(labels)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;

    const AP: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  selector:\n    matchLabels:\n      app: biling-service\n  rules:\n  - {}\n";

    #[test]
    fn a_misspelt_selector_is_reported_with_the_line_and_the_known_labels() {
        let f =
            Fixture::new(AP).workload("payments", "billing-service", &[("app", "billing-service")]);
        let found = f.with_code("SG0101");
        assert_eq!(found.len(), 1, "{found:?}");
        let x = &found[0];
        assert_eq!(
            x.resource.to_string(),
            "AuthorizationPolicy payments/billing test.yaml:8"
        );
        assert!(
            x.message.contains("app=biling-service matches no workload"),
            "{}",
            x.message
        );
        assert!(
            x.message.contains("billing-service [app=billing-service]"),
            "{}",
            x.message
        );
    }

    #[test]
    fn a_matching_selector_or_no_known_workloads_is_quiet() {
        let ok = AP.replace("biling", "billing");
        let f = Fixture::new(&ok).workload(
            "payments",
            "billing-service",
            &[("app", "billing-service")],
        );
        assert!(f.with_code("SG0101").is_empty());
        // Same labels in another namespace do not count.
        let f =
            Fixture::new(&ok).workload("shop", "billing-service", &[("app", "billing-service")]);
        assert_eq!(f.with_code("SG0101").len(), 1);
        // Nothing known: nothing to judge.
        assert!(Fixture::new(AP).with_code("SG0101").is_empty());
    }

    #[test]
    fn root_namespace_authorization_selectors_look_in_every_namespace() {
        let root = AP
            .replace("namespace: payments", "namespace: istio-system")
            .replace("biling", "billing");
        let f = Fixture::new(&root).workload(
            "payments",
            "billing-service",
            &[("app", "billing-service")],
        );
        assert!(f.with_code("SG0101").is_empty());
    }
}
