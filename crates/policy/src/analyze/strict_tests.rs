//! Unit tests of [`super`] (SG0201, SG0202).

use super::super::testing::Fixture;
use crate::view::Protocol;

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n";
const DR: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: plain\n  namespace: payments\nspec:\n  host: billing.payments.svc.cluster.local\n  trafficPolicy:\n    tls:\n      mode: DISABLE\n";
const BILLING: &str = "billing.payments.svc.cluster.local";

fn mesh(yaml: &str) -> Fixture {
    Fixture::new(yaml)
        .workload("payments", "billing", &[("app", "billing")])
        .port(8080, Some(Protocol::Http))
        .workload("payments", "checkout", &[("app", "checkout")])
        .calls(BILLING, 8080)
}

#[test]
fn a_disable_rule_toward_a_strict_port_names_the_rule_line_and_clients() {
    let found = mesh(&format!("{STRICT}{DR}")).with_code("SG0202");
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(
        f.resource.to_string(),
        "DestinationRule payments/plain test.yaml:19"
    );
    assert!(f.message.contains("payments/checkout"), "{}", f.message);
    assert!(
        f.message.contains("PeerAuthentication payments/default"),
        "{}",
        f.message
    );
    assert!(f.fix.contains("ISTIO_MUTUAL"));
}

#[test]
fn disable_toward_a_permissive_port_or_mutual_toward_strict_is_fine() {
    let permissive = STRICT.replace("STRICT", "PERMISSIVE");
    assert!(mesh(&format!("{permissive}{DR}")).run().is_empty());
    let mutual = DR.replace("DISABLE", "ISTIO_MUTUAL");
    assert!(mesh(&format!("{STRICT}{mutual}")).run().is_empty());
}

const SE: &str = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: billing-vm\n  namespace: payments\nspec:\n  hosts: [billing.vm.internal]\n  ports:\n  - {number: 80, name: http, targetPort: 8080}\n  workloadSelector:\n    labels: {app: billing}\n";

#[test]
fn a_mesh_external_entry_without_a_rule_sends_plaintext_to_strict() {
    let f = mesh(&format!("{STRICT}{SE}")).calls("billing.vm.internal", 80);
    let found = f.with_code("SG0201");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].resource.name, "billing-vm");
    assert!(
        found[0].message.contains("MESH_EXTERNAL"),
        "{}",
        found[0].message
    );
    let internal = SE.replace(
        "  workloadSelector",
        "  location: MESH_INTERNAL\n  workloadSelector",
    );
    let f = mesh(&format!("{STRICT}{internal}")).calls("billing.vm.internal", 80);
    assert!(f.run().is_empty(), "{:?}", f.run());
}

const ALLOW: &str = "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/payments/sa/legacy]\n";

#[test]
fn an_admitted_caller_without_a_proxy_is_refused_by_strict() {
    let f = mesh(&format!("{STRICT}{ALLOW}"))
        .workload("payments", "legacy", &[("app", "legacy")])
        .without_proxy();
    let found = f.with_code("SG0201");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].resource.to_string(),
        "PeerAuthentication payments/default test.yaml:8"
    );
    assert!(
        found[0].message.contains("payments/legacy"),
        "{}",
        found[0].message
    );
    // With a proxy it originates mTLS; not named, it is not a caller.
    let f = mesh(&format!("{STRICT}{ALLOW}")).workload("payments", "legacy", &[]);
    assert!(f.with_code("SG0201").is_empty());
    let f = mesh(&format!("{STRICT}{}", ALLOW.replace("legacy", "other")))
        .workload("payments", "legacy", &[])
        .without_proxy();
    assert!(f.with_code("SG0201").is_empty());
}
