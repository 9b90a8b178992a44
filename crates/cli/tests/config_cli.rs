//! `sigil apply/get/delete` as an operator uses them, against a real `sigil server run`: the
//! seed document's YAML applies verbatim and comes back from `get`; bad input is refused with
//! a precise error, nothing is stored and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::ServerProc;

fn example(rel: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "examples",
        "payments",
        rel,
    ]
    .iter()
    .collect();
    p.to_str().unwrap().to_owned()
}

fn fails(s: &ServerProc, args: &[&str]) -> String {
    let out = s.cli(args);
    assert!(
        !out.status.success(),
        "sigil {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn json(s: &ServerProc, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&a)).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn seed_yaml_applies_verbatim_and_comes_back_from_get() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&dir.path().join("server"), None);

    let out = s.ok(&[
        "apply",
        "-f",
        &example("mesh/base"),
        "-f",
        &example("mesh/permissive"),
    ]);
    for line in [
        "authorizationpolicy.security.istio.io/billing-service-policy created",
        "certificate.cert-manager.io/billing-service-cert created",
        "clusterissuer.cert-manager.io/internal-ca created",
        "destinationrule.networking.istio.io/payments-mtls created",
        "peerauthentication.security.istio.io/default created",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }

    let table = s.ok(&["get", "pa", "-n", "payments"]);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("NAME      MODE         AGE"),
        "{table}"
    );
    assert!(
        lines.next().unwrap().starts_with("default   PERMISSIVE   "),
        "{table}"
    );
    let first = json(
        &s,
        &["get", "peerauthentication", "default", "-n", "payments"],
    );
    assert_eq!(first["metadata"]["generation"], 1);

    // The STRICT phase replaces the PERMISSIVE policy (same name) and adds the port exception.
    let out = s.ok(&["apply", "-f", &example("mesh/strict")]);
    assert!(
        out.contains("peerauthentication.security.istio.io/default configured"),
        "{out}"
    );
    assert!(
        out.contains("peerauthentication.security.istio.io/billing-service created"),
        "{out}"
    );
    let strict = json(
        &s,
        &[
            "get",
            "peerauthentications.security.istio.io",
            "default",
            "-n",
            "payments",
        ],
    );
    assert_eq!(strict["spec"]["mtls"]["mode"], "STRICT");
    assert_eq!(strict["metadata"]["generation"], 2);
    assert_eq!(strict["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(
        strict["metadata"]["creationTimestamp"],
        first["metadata"]["creationTimestamp"]
    );
    let exception = json(&s, &["get", "pa", "billing-service", "-n", "payments"]);
    assert_eq!(
        exception["spec"]["portLevelMtls"]["9090"]["mode"],
        "DISABLE"
    );
    assert_eq!(
        exception["spec"]["selector"]["matchLabels"]["app"],
        "billing-service"
    );

    // Applying again changes nothing.
    let out = s.ok(&["apply", "-f", &example("mesh/strict")]);
    assert!(out.lines().all(|l| l.ends_with(" unchanged")), "{out}");

    // What `get -o yaml` prints applies back as a no-op (server fields are ignored).
    let authz = s.ok(&[
        "get",
        "ap",
        "billing-service-policy",
        "-n",
        "payments",
        "-o",
        "yaml",
    ]);
    assert!(
        authz.contains("cluster.local/ns/payments/sa/checkout-service"),
        "{authz}"
    );
    assert!(authz.contains("/api/v1/charge"), "{authz}");
    let again = write(dir.path(), "authz-roundtrip.yaml", &authz);
    let out = s.ok(&["apply", "-f", &again]);
    assert_eq!(
        out.trim(),
        "authorizationpolicy.security.istio.io/billing-service-policy unchanged"
    );

    // cert-manager's columns; the cluster-scoped issuer has no namespace.
    let certs = s.ok(&["get", "certificate", "-n", "payments"]);
    assert!(
        certs.starts_with("NAME                   READY   SECRET                AGE"),
        "{certs}"
    );
    assert!(certs.contains("billing-service-cert"), "{certs}");
    let issuer = json(&s, &["get", "clusterissuer", "internal-ca"]);
    assert!(issuer["metadata"].get("namespace").is_none(), "{issuer}");
    assert_eq!(issuer["spec"]["ca"]["secretName"], "ca-key-pair");
    let dr = json(&s, &["get", "dr", "payments-mtls", "-n", "payments"]);
    assert_eq!(dr["spec"]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    assert_eq!(dr["spec"]["host"], "*.payments.svc.cluster.local");

    // Every namespace, every kind.
    let all = s.ok(&["get", "all", "-A"]);
    for name in [
        "peerauthentication.security.istio.io/default",
        "peerauthentication.security.istio.io/billing-service",
        "destinationrule.networking.istio.io/payments-mtls",
        "clusterissuer.cert-manager.io/internal-ca",
    ] {
        assert!(all.contains(name), "missing {name} in:\n{all}");
    }
    let names = s.ok(&["get", "pa,dr", "-n", "payments", "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "peerauthentication.security.istio.io/billing-service",
            "peerauthentication.security.istio.io/default",
            "destinationrule.networking.istio.io/payments-mtls",
        ]
    );
    let none = s.cli(&["get", "pa", "-n", "shop"]);
    assert!(none.status.success());
    assert_eq!(
        String::from_utf8_lossy(&none.stderr).trim(),
        "No resources found in shop namespace."
    );
    let err = fails(&s, &["get", "pa", "nope", "-n", "payments"]);
    assert!(
        err.contains("\"nope\" not found in namespace \"payments\""),
        "{err}"
    );
    let err = fails(&s, &["get", "pods"]);
    assert!(
        err.contains("doesn't have a resource type \"pods\""),
        "{err}"
    );
    s.stop();
}

const ALIAS_BOMB: &str =
    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
";

#[test]
fn bad_input_is_refused_precisely_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&dir.path().join("server"), None);
    s.ok(&["apply", "-f", &example("mesh/permissive")]);
    let before = s.ok(&["get", "all", "-A", "-o", "json"]);

    // The seed's namespace-wide port exception: refused with the reason.
    let namespace_wide = write(
        dir.path(),
        "port-exception.yaml",
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n  portLevelMtls:\n    9090:\n      mode: DISABLE\n",
    );
    let err = fails(&s, &["apply", "-f", &namespace_wide]);
    assert!(err.contains("port-exception.yaml:9:"), "{err}");
    assert!(
        err.contains("portLevelMtls") && err.contains("selector"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");

    // A valid document beside an invalid one: neither is stored.
    let good = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: new-rule\n  namespace: payments\nspec:\n  host: billing-service\n";
    let bad = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: x\n  namespace: payments\nspec:\n  action: PERMIT\n";
    let mixed = write(dir.path(), "mixed.yaml", &format!("{good}---\n{bad}"));
    let err = fails(&s, &["apply", "-f", &mixed]);
    assert!(
        err.contains("mixed.yaml:15:") && err.contains("PERMIT"),
        "{err}"
    );
    fails(&s, &["get", "dr", "new-rule", "-n", "payments"]);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "syntax.yaml",
            "apiVersion: v1\nkind: [Namespace\n".into(),
            "syntax.yaml:",
        ),
        ("bomb.yaml", ALIAS_BOMB.into(), "alias"),
        (
            "dup.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n".into(),
            "dup.yaml:5:",
        ),
        (
            "kind.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\n"
                .into(),
            "VirtualService",
        ),
        (
            "version.yaml",
            "apiVersion: security.istio.io/v2\nkind: PeerAuthentication\nmetadata:\n  name: a\n"
                .into(),
            "security.istio.io/v2",
        ),
    ];
    for (name, text, expect) in &cases {
        let f = write(dir.path(), name, text);
        let err = fails(&s, &["apply", "-f", &f]);
        assert!(err.contains(expect), "{name}: {err}");
        assert!(err.contains("nothing was applied"), "{name}: {err}");
    }

    // 50 MB: refused before anything is sent.
    let huge = dir.path().join("huge.yaml");
    let line = format!("# {}\n", "x".repeat(1022));
    std::fs::write(&huge, line.repeat(50 * 1024)).unwrap();
    let err = fails(&s, &["apply", "-f", huge.to_str().unwrap()]);
    assert!(err.contains("more than the 4 MiB"), "{err}");

    // -n against a document's own namespace, as kubectl.
    let err = fails(&s, &["apply", "-f", &example("mesh/strict"), "-n", "shop"]);
    assert!(err.contains("-n payments"), "{err}");

    // Nothing changed; the server still serves.
    s.ok(&["server", "healthcheck"]);
    assert_eq!(s.ok(&["get", "all", "-A", "-o", "json"]), before);
    s.stop();
}

#[test]
fn delete_by_file_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&dir.path().join("server"), None);
    s.ok(&[
        "apply",
        "-f",
        &example("mesh/base"),
        "-f",
        &example("mesh/strict"),
    ]);
    let out = s.ok(&["delete", "-f", &example("mesh/strict")]);
    assert!(
        out.contains("peerauthentication.security.istio.io/default deleted"),
        "{out}"
    );
    assert!(
        out.contains("peerauthentication.security.istio.io/billing-service deleted"),
        "{out}"
    );
    let err = fails(&s, &["delete", "pa", "default", "-n", "payments"]);
    assert!(
        err.contains("not found") && err.contains("--ignore-not-found"),
        "{err}"
    );
    s.ok(&[
        "delete",
        "pa",
        "default",
        "-n",
        "payments",
        "--ignore-not-found",
    ]);
    let out = s.ok(&["delete", "clusterissuer", "internal-ca"]);
    assert!(out.contains("internal-ca"), "{out}");
    let out = s.ok(&["delete", "dr", "payments-mtls", "-n", "payments"]);
    assert!(out.contains("payments-mtls deleted"), "{out}");
    let left = s.ok(&["get", "all", "-A", "-o", "name"]);
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        [
            "authorizationpolicy.security.istio.io/billing-service-health",
            "authorizationpolicy.security.istio.io/billing-service-policy",
            "serviceentry.networking.istio.io/billing-service",
            "workloadentry.networking.istio.io/billing-service",
            "workloadentry.networking.istio.io/checkout-service",
            "workloadentry.networking.istio.io/frontend",
            "certificate.cert-manager.io/billing-service-cert",
        ]
    );
    s.stop();
}
