//! PeerAuthentication findings taken from the compiled mTLS view itself: selector policies in
//! the root namespace that it ignores (SG0203), and conflicts it settles by age (SG0204).

use std::collections::{BTreeMap, BTreeSet};

use crate::meta::Object;
use crate::peer_authn::PeerAuthenticationSpec;
use crate::resource::Resource;
use crate::view::{CompiledMtls, IgnoredReason, Level, PolicyId, Workload};

use super::{Finding, Input, ResourceRef, Severity, find, namespace_of};

pub(super) fn peer_authentications<'a>(
    input: &Input<'a>,
) -> impl Iterator<Item = &'a Object<PeerAuthenticationSpec>> + Clone {
    input.resources.iter().filter_map(|l| match &l.resource {
        Resource::PeerAuthentication(o) => Some(o),
        _ => None,
    })
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Mesh => "mesh",
        Level::Namespace => "namespace",
        Level::Workload | Level::Port(_) => "workload",
    }
}

pub(super) fn check(input: &Input<'_>, out: &mut Vec<Finding>) {
    let pas = peer_authentications(input);
    if pas.clone().next().is_none() {
        return;
    }
    // The known workloads, plus a label-less one per namespace holding a PeerAuthentication
    // (so mesh- and namespace-level conflicts show without any workload).
    let mut subjects: Vec<(Option<String>, Workload)> = input
        .workloads
        .iter()
        .map(|w| (Some(super::workload_name(w)), w.workload.clone()))
        .collect();
    let namespaces: BTreeSet<&str> = input
        .resources
        .iter()
        .filter(|l| matches!(l.resource, Resource::PeerAuthentication(_)))
        .map(|l| namespace_of(l, input.mesh))
        .collect();
    for ns in namespaces {
        subjects.push((None, Workload::new(ns, [])));
    }
    let mut root_selector: BTreeSet<PolicyId> = BTreeSet::new();
    let mut shadowed: BTreeMap<(PolicyId, PolicyId, Level), BTreeSet<String>> = BTreeMap::new();
    for (name, w) in &subjects {
        let compiled = CompiledMtls::compile(pas.clone(), w, input.mesh);
        for ignored in compiled.ignored() {
            match &ignored.reason {
                IgnoredReason::SelectorInRootNamespace => {
                    root_selector.insert(ignored.id.clone());
                }
                IgnoredReason::Shadowed { by, level } => {
                    let e = shadowed
                        .entry((ignored.id.clone(), by.clone(), *level))
                        .or_default();
                    e.extend(name.clone());
                }
            }
        }
    }
    for id in root_selector {
        let Some(l) = find(input, "PeerAuthentication", &id.namespace, &id.name) else {
            continue;
        };
        out.push(Finding {
            code: "SG0203",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, "spec.selector"),
            message: format!(
                "this PeerAuthentication has a selector and sits in the root namespace {}: \
                 Istio and Sigil ignore selector policies there, so it applies to no workload",
                input.mesh.root_namespace
            ),
            fix: "Move it to the namespace of the workloads it selects (set metadata.namespace), \
                  or remove spec.selector to make it the mesh-wide default."
                .to_owned(),
        });
    }
    for ((id, by, level), workloads) in shadowed {
        let Some(l) = find(input, "PeerAuthentication", &id.namespace, &id.name) else {
            continue;
        };
        let winner_created = find(input, "PeerAuthentication", &by.namespace, &by.name)
            .and_then(|w| w.resource.metadata().creation_timestamp.clone())
            .map_or_else(
                || "no creationTimestamp, which counts as oldest".to_owned(),
                |t| format!("created {t}"),
            );
        let mine = l
            .resource
            .metadata()
            .creation_timestamp
            .clone()
            .map_or_else(
                || "no creationTimestamp".to_owned(),
                |t| format!("created {t}"),
            );
        let scope = if workloads.is_empty() {
            String::new()
        } else {
            format!(
                " for workload {}",
                workloads.into_iter().collect::<Vec<_>>().join(", ")
            )
        };
        out.push(Finding {
            code: "SG0204",
            severity: Severity::Warning,
            resource: ResourceRef::of(l, "metadata.name"),
            message: format!(
                "conflicts with PeerAuthentication {by} at {} level{scope}: only the oldest \
                 applies ({by}, {winner_created}), so this one ({mine}) has no effect",
                level_name(level)
            ),
            fix: format!(
                "Keep one PeerAuthentication per {} level: delete {id} or merge its settings \
                 into {by}.",
                level_name(level)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fixture;

    fn pa(name: &str, ns: &str, created: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\n  creationTimestamp: \"{created}\"\nspec:\n{extra}  mtls:\n    mode: STRICT\n"
        )
    }

    #[test]
    fn two_namespace_policies_name_the_oldest_as_winner() {
        let yaml = pa("b-new", "payments", "2024-02-01T00:00:00Z", "")
            + &pa("a-old", "payments", "2024-01-01T00:00:00Z", "");
        let found = Fixture::new(&yaml).with_code("SG0204");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].resource.name, "b-new");
        assert!(
            found[0]
                .message
                .contains("payments/a-old, created 2024-01-01"),
            "{}",
            found[0].message
        );
        assert!(found[0].message.contains("namespace level"));
    }

    #[test]
    fn different_namespaces_or_levels_do_not_conflict() {
        let sel = "  selector:\n    matchLabels:\n      app: billing\n";
        let yaml = pa("a", "payments", "2024-01-01T00:00:00Z", "")
            + &pa("b", "shop", "2024-01-01T00:00:00Z", "")
            + &pa("c", "payments", "2024-01-02T00:00:00Z", sel);
        let f = Fixture::new(&yaml).workload("payments", "billing", &[("app", "billing")]);
        assert!(f.run().is_empty(), "{:?}", f.run());
    }

    #[test]
    fn workload_level_conflicts_name_the_workload() {
        let sel = "  selector:\n    matchLabels:\n      app: billing\n";
        let yaml = pa("a", "payments", "2024-01-01T00:00:00Z", sel)
            + &pa("b", "payments", "2024-01-02T00:00:00Z", sel);
        let f = Fixture::new(&yaml).workload("payments", "billing", &[("app", "billing")]);
        let found = f.with_code("SG0204");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.contains("for workload payments/billing"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_selector_policy_in_the_root_namespace_is_ignored() {
        let sel = "  selector:\n    matchLabels:\n      app: billing\n";
        let f = Fixture::new(&pa("strict", "istio-system", "2024-01-01T00:00:00Z", sel));
        let found = f.with_code("SG0203");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].resource.line, Some(9));
        // Without the selector it is the mesh default: fine.
        assert!(
            Fixture::new(&pa("strict", "istio-system", "2024-01-01T00:00:00Z", ""))
                .run()
                .is_empty()
        );
    }
}
