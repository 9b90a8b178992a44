//! Effective inbound mTLS (PeerAuthentication) — every rule of reference §2.2, as YAML users write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sigil_policy::{
    CompiledMtls, IgnoredPolicy, IgnoredReason, Level, MeshContext, MtlsMode, Origin, PolicyId,
    Workload, parse_documents,
};

use MtlsMode::{Disable, Permissive, Strict};

/// A PeerAuthentication document. `selector` is a flow mapping of labels or "" for none.
fn pa(ns: &str, name: &str, created: &str, selector: &str, mode: &str, ports: &str) -> String {
    let mut s = format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
    );
    if !created.is_empty() {
        s += &format!("  creationTimestamp: \"{created}\"\n");
    }
    s += "spec:\n";
    if !selector.is_empty() {
        s += &format!("  selector:\n    matchLabels: {selector}\n");
    }
    if !mode.is_empty() {
        s += &format!("  mtls:\n    mode: {mode}\n");
    }
    if !ports.is_empty() {
        s += &format!("  portLevelMtls: {ports}\n");
    }
    if selector.is_empty() && mode.is_empty() && ports.is_empty() {
        s += "  {}\n";
    }
    s
}

fn compile(docs: &[String]) -> CompiledMtls {
    let text = docs.join("---\n");
    let resources = parse_documents("mtls.yaml", &text).unwrap_or_else(|e| panic!("{e:#?}"));
    let workload = Workload::new("payments", [("app", "billing"), ("version", "v1")]);
    CompiledMtls::from_resources(&resources, &workload, &MeshContext::default())
}

fn id(ns: &str, name: &str) -> PolicyId {
    PolicyId {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn from(ns: &str, name: &str, level: Level) -> Origin {
    Origin::Policy {
        id: id(ns, name),
        level,
    }
}

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-06-01T00:00:00Z";
const ROOT: &str = "istio-system";

#[test]
fn table_of_workload_modes() {
    struct Case {
        name: &'static str,
        docs: Vec<String>,
        want: (MtlsMode, Origin),
    }
    let cases = [
        Case {
            name: "nothing set: PERMISSIVE by default",
            docs: vec![],
            want: (Permissive, Origin::Default),
        },
        Case {
            name: "mesh STRICT",
            docs: vec![pa(ROOT, "default", T1, "", "STRICT", "")],
            want: (Strict, from(ROOT, "default", Level::Mesh)),
        },
        Case {
            name: "namespace UNSET inherits the mesh mode",
            docs: vec![
                pa(ROOT, "default", T1, "", "STRICT", ""),
                pa("payments", "ns", T1, "", "UNSET", ""),
            ],
            want: (Strict, from(ROOT, "default", Level::Mesh)),
        },
        Case {
            name: "namespace without mtls block inherits too",
            docs: vec![
                pa(ROOT, "default", T1, "", "DISABLE", ""),
                pa("payments", "ns", T1, "", "", ""),
            ],
            want: (Disable, from(ROOT, "default", Level::Mesh)),
        },
        Case {
            name: "namespace overrides mesh",
            docs: vec![
                pa(ROOT, "default", T1, "", "STRICT", ""),
                pa("payments", "ns", T1, "", "DISABLE", ""),
            ],
            want: (Disable, from("payments", "ns", Level::Namespace)),
        },
        Case {
            name: "workload overrides namespace",
            docs: vec![
                pa("payments", "ns", T1, "", "STRICT", ""),
                pa("payments", "wl", T1, "{app: billing}", "PERMISSIVE", ""),
            ],
            want: (Permissive, from("payments", "wl", Level::Workload)),
        },
        Case {
            name: "workload UNSET inherits namespace",
            docs: vec![
                pa("payments", "ns", T1, "", "STRICT", ""),
                pa("payments", "wl", T1, "{app: billing}", "UNSET", ""),
            ],
            want: (Strict, from("payments", "ns", Level::Namespace)),
        },
        Case {
            name: "selector that does not match has no effect",
            docs: vec![pa("payments", "wl", T1, "{app: other}", "STRICT", "")],
            want: (Permissive, Origin::Default),
        },
        Case {
            name: "selector must match every label",
            docs: vec![pa(
                "payments",
                "wl",
                T1,
                "{app: billing, version: v2}",
                "STRICT",
                "",
            )],
            want: (Permissive, Origin::Default),
        },
        Case {
            name: "policies of other namespaces have no effect",
            docs: vec![pa("shipping", "ns", T1, "", "STRICT", "")],
            want: (Permissive, Origin::Default),
        },
        Case {
            name: "root-namespace selector policy is ignored even when labels match",
            docs: vec![pa(ROOT, "sel", T1, "{app: billing}", "STRICT", "")],
            want: (Permissive, Origin::Default),
        },
        Case {
            name: "empty matchLabels counts as namespace level",
            docs: vec![pa("payments", "ns", T1, "{}", "STRICT", "")],
            want: (Strict, from("payments", "ns", Level::Namespace)),
        },
        Case {
            name: "empty matchLabels in the root namespace is the mesh policy",
            docs: vec![pa(ROOT, "m", T1, "{}", "DISABLE", "")],
            want: (Disable, from(ROOT, "m", Level::Mesh)),
        },
        Case {
            name: "oldest namespace policy wins, whatever the document order",
            docs: vec![
                pa("payments", "newer", T2, "", "DISABLE", ""),
                pa("payments", "older", T1, "", "STRICT", ""),
            ],
            want: (Strict, from("payments", "older", Level::Namespace)),
        },
        Case {
            name: "equal timestamps: smaller name wins",
            docs: vec![
                pa("payments", "b", T1, "", "DISABLE", ""),
                pa("payments", "a", T1, "", "STRICT", ""),
            ],
            want: (Strict, from("payments", "a", Level::Namespace)),
        },
        Case {
            name: "timestamps compare as instants, not text",
            docs: vec![
                pa("payments", "a", "2024-01-01T09:00:00Z", "", "DISABLE", ""),
                pa(
                    "payments",
                    "b",
                    "2024-01-01T10:00:00+02:00",
                    "",
                    "STRICT",
                    "",
                ),
            ],
            want: (Strict, from("payments", "b", Level::Namespace)),
        },
        Case {
            name: "missing creationTimestamp sorts oldest (Go zero time)",
            docs: vec![
                pa("payments", "a", T1, "", "DISABLE", ""),
                pa("payments", "z", "", "", "STRICT", ""),
            ],
            want: (Strict, from("payments", "z", Level::Namespace)),
        },
        Case {
            name: "oldest workload policy wins",
            docs: vec![
                pa("payments", "w1", T2, "{app: billing}", "DISABLE", ""),
                pa("payments", "w2", T1, "{version: v1}", "STRICT", ""),
            ],
            want: (Strict, from("payments", "w2", Level::Workload)),
        },
        Case {
            name: "oldest mesh policy wins",
            docs: vec![
                pa(ROOT, "m2", T2, "", "DISABLE", ""),
                pa(ROOT, "m1", T1, "", "STRICT", ""),
            ],
            want: (Strict, from(ROOT, "m1", Level::Mesh)),
        },
        Case {
            name: "winner UNSET does not fall back to the shadowed sibling",
            docs: vec![
                pa("payments", "old", T1, "", "UNSET", ""),
                pa("payments", "new", T2, "", "STRICT", ""),
            ],
            want: (Permissive, Origin::Default),
        },
    ];
    for case in cases {
        let c = compile(&case.docs);
        let (mode, origin) = c.workload_mode();
        assert_eq!((mode, origin.clone()), case.want, "{}", case.name);
        assert_eq!(c.mode_for_port(8080), (mode, origin), "{}", case.name);
    }
}

#[test]
fn port_level_mtls_comes_from_the_workload_policy() {
    let c = compile(&[
        pa(ROOT, "default", T1, "", "STRICT", ""),
        pa(
            "payments",
            "wl",
            T1,
            "{app: billing}",
            "",
            "{8080: {mode: DISABLE}, 9090: {mode: UNSET}, 9443: {mode: PERMISSIVE}}",
        ),
    ]);
    let port = |p| Origin::Policy {
        id: id("payments", "wl"),
        level: Level::Port(p),
    };
    assert_eq!(c.mode_for_port(8080), (Disable, &port(8080)));
    assert_eq!(c.mode_for_port(9443), (Permissive, &port(9443)));
    // UNSET port inherits the resolved workload mode, here from the mesh.
    assert_eq!(
        c.mode_for_port(9090),
        (Strict, &from(ROOT, "default", Level::Mesh))
    );
    // A port not listed has the workload mode.
    assert_eq!(
        c.mode_for_port(15000),
        (Strict, &from(ROOT, "default", Level::Mesh))
    );
    let report = c.report(&[8080, 15000]);
    assert_eq!(report.ports[0].mode, Disable);
    assert_eq!(report.ports[1].mode, Strict);
    assert_eq!(
        report.selected,
        vec![
            (Level::Mesh, id(ROOT, "default")),
            (Level::Workload, id("payments", "wl"))
        ]
    );
}

#[test]
fn port_level_of_a_shadowed_workload_policy_is_ignored() {
    let c = compile(&[
        pa("payments", "old", T1, "{app: billing}", "STRICT", ""),
        pa(
            "payments",
            "new",
            T2,
            "{app: billing}",
            "STRICT",
            "{8080: {mode: DISABLE}}",
        ),
    ]);
    assert_eq!(c.mode_for_port(8080).0, Strict);
    assert_eq!(
        c.ignored(),
        &[IgnoredPolicy {
            id: id("payments", "new"),
            reason: IgnoredReason::Shadowed {
                by: id("payments", "old"),
                level: Level::Workload
            },
        }]
    );
}

#[test]
fn port_level_in_root_namespace_selector_policy_is_ignored_and_reported() {
    let c = compile(&[pa(
        ROOT,
        "sel",
        T1,
        "{app: billing}",
        "STRICT",
        "{8080: {mode: DISABLE}}",
    )]);
    assert_eq!(c.mode_for_port(8080).0, Permissive);
    assert_eq!(
        c.ignored(),
        &[IgnoredPolicy {
            id: id(ROOT, "sel"),
            reason: IgnoredReason::SelectorInRootNamespace,
        }]
    );
}

#[test]
fn port_level_unset_inherits_the_workload_policy_mode() {
    let c = compile(&[
        pa("payments", "ns", T1, "", "DISABLE", ""),
        pa(
            "payments",
            "wl",
            T1,
            "{app: billing}",
            "STRICT",
            "{8080: {mode: UNSET}}",
        ),
    ]);
    assert_eq!(
        c.mode_for_port(8080),
        (Strict, &from("payments", "wl", Level::Workload))
    );
}

#[test]
fn custom_root_namespace_is_honoured() {
    let docs = [pa("mesh-root", "default", T1, "", "STRICT", "")];
    let resources = parse_documents("m.yaml", &docs.join("---\n")).unwrap();
    let workload = Workload::new("payments", []);
    let mut mesh = MeshContext::default();
    assert_eq!(
        CompiledMtls::from_resources(&resources, &workload, &mesh)
            .mode_for_port(1)
            .0,
        Permissive
    );
    mesh.root_namespace = "mesh-root".into();
    assert_eq!(
        CompiledMtls::from_resources(&resources, &workload, &mesh)
            .mode_for_port(1)
            .0,
        Strict
    );
}

#[test]
fn shadowed_policies_are_reported_per_level() {
    let c = compile(&[
        pa(ROOT, "m1", T1, "", "STRICT", ""),
        pa(ROOT, "m2", T2, "", "STRICT", ""),
        pa("payments", "n1", T1, "", "", ""),
        pa("payments", "n2", T2, "", "STRICT", ""),
    ]);
    let mut ignored: Vec<_> = c
        .ignored()
        .iter()
        .map(|i| (i.id.to_string(), i.reason.clone()))
        .collect();
    ignored.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ignored,
        vec![
            (
                "istio-system/m2".to_owned(),
                IgnoredReason::Shadowed {
                    by: id(ROOT, "m1"),
                    level: Level::Mesh
                }
            ),
            (
                "payments/n2".to_owned(),
                IgnoredReason::Shadowed {
                    by: id("payments", "n1"),
                    level: Level::Namespace
                }
            ),
        ]
    );
    assert_eq!(c.workload_mode().0, Strict);
}
