#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sigil analyze` as an operator runs it: the real binary on YAML and proxy configs written
//! here (one broken situation per finding), on the payments example, and `--live` against a
//! real `sigil server run` with entries created through the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{SIGIL, ServerProc};

const AGENT: &str = "spiffe://cluster.local/spire/agent/join_token/abc";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sigil(args: &[&str]) -> Run {
    let out: Output = Command::new(SIGIL).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// A proxy config for workload `name` in `payments` with `inbound` (port, protocol) and
/// `outbound` (host, port).
fn proxy(dir: &Path, name: &str, inbound: &[(u16, &str)], outbound: &[(&str, u16)]) -> String {
    let mut y = format!(
        "workload:\n  name: {name}\n  namespace: payments\n  labels: {{app: {name}}}\n  \
         spiffeId: spiffe://cluster.local/ns/payments/sa/{name}\n"
    );
    if !inbound.is_empty() {
        y.push_str("inbound:\n");
        for (i, (port, proto)) in inbound.iter().enumerate() {
            y.push_str(&format!(
                "  - port: {port}\n    app: 127.0.0.1:{}\n    protocol: {proto}\n",
                20000 + i
            ));
        }
    }
    if !outbound.is_empty() {
        y.push_str("outbound:\n");
        for (i, (host, port)) in outbound.iter().enumerate() {
            y.push_str(&format!(
                "  - listen: 127.0.0.1:{}\n    host: {host}\n    port: {port}\n",
                16000 + i
            ));
        }
    }
    write(dir, &format!("proxies/{name}.yaml"), &y)
}

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n";
const BILLING_HOST: &str = "billing.payments.svc.cluster.local";

/// One case: files, extra flags, then what must be printed and the exit code.
struct Case {
    name: &'static str,
    yaml: String,
    flags: Vec<String>,
    code: &'static str,
    line: &'static str,
    words: &'static [&'static str],
    exit: i32,
}

fn run_case(dir: &Path, c: &Case) {
    let file = write(dir, &format!("{}.yaml", c.name), &c.yaml);
    let mut args = vec!["analyze".to_owned(), "-f".to_owned(), file.clone()];
    args.extend(c.flags.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = sigil(&args);
    let ctx = format!("case {}: {}\n{}", c.name, r.stdout, r.stderr);
    assert_eq!(r.code, c.exit, "{ctx}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(&format!("[{}]", c.code)))
        .unwrap_or_else(|| panic!("no {} in {ctx}", c.code));
    assert!(
        line.contains(&format!("{file}:{}", c.line)),
        "position: {ctx}"
    );
    for w in c.words {
        assert!(r.stdout.contains(w), "missing {w:?}: {ctx}");
    }
    assert!(r.stdout.contains("    Fix: "), "{ctx}");
}

#[test]
fn every_finding_is_produced_from_files_with_its_message_and_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let billing = proxy(d, "billing", &[(8080, "http"), (5432, "tcp")], &[]);
    let checkout = proxy(d, "checkout", &[], &[(BILLING_HOST, 8080)]);
    let wl = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "--workloads".into(),
            billing.clone(),
            "--workloads".into(),
            checkout.clone(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let entries = write(
        d,
        "entries.json",
        r#"{"entries":[{"id":"e1","spiffe_id":"spiffe://cluster.local/ns/payments/sa/checkout","x509_svid_ttl":0}]}"#,
    );
    let ap = |body: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n{body}"
        )
    };
    let dr = |tls: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  host: {BILLING_HOST}\n  trafficPolicy:\n{tls}"
        )
    };
    let cases = vec![
        Case {
            name: "selector",
            yaml: ap("  selector:\n    matchLabels:\n      app: biling\n  rules:\n  - {}\n"),
            flags: wl(&["--failure-threshold", "Warning"]),
            code: "SG0101",
            line: "8",
            words: &["Warning [SG0101]", "app=biling matches no workload", "billing [app=billing]"],
            exit: 2,
        },
        Case {
            name: "principal",
            yaml: ap("  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/payments/sa/checkout-svc]\n"),
            flags: vec!["--entries".into(), entries.clone()],
            code: "SG0102",
            line: "10",
            words: &["Error [SG0102]", "\"cluster.local/ns/payments/sa/checkout-svc\"", "matches no registered entry", "spiffe://cluster.local/ns/payments/sa/checkout"],
            exit: 2,
        },
        Case {
            name: "namespace",
            yaml: ap("  rules:\n  - from:\n    - source:\n        namespaces: [paymnts]\n"),
            flags: vec!["--entries".into(), entries.clone()],
            code: "SG0103",
            line: "10",
            words: &["namespace \"paymnts\"", "Namespaces with registered entries: payments"],
            exit: 2,
        },
        Case {
            name: "strict-no-proxy",
            yaml: format!("{STRICT}---\n{}---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: legacy\n  namespace: payments\nspec:\n  address: 10.0.0.9\n  serviceAccount: legacy\n", ap("  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/payments/sa/legacy]\n")),
            flags: wl(&[]),
            code: "SG0201",
            line: "8",
            words: &["payments/legacy (WorkloadEntry payments/legacy)", "runs without a proxy", "Run a Sigil proxy beside payments/legacy"],
            exit: 2,
        },
        Case {
            name: "strict-disable",
            yaml: format!("{STRICT}---\n{}", dr("    tls:\n      mode: DISABLE\n")),
            flags: wl(&[]),
            code: "SG0202",
            line: "19",
            words: &["tls mode DISABLE sends plaintext to payments/billing", "port 8080", "payments/checkout", "ISTIO_MUTUAL"],
            exit: 2,
        },
        Case {
            name: "root-selector",
            yaml: "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: strict\n  namespace: istio-system\nspec:\n  selector:\n    matchLabels:\n      app: billing\n  mtls:\n    mode: STRICT\n".into(),
            flags: vec![],
            code: "SG0203",
            line: "7",
            words: &["Warning [SG0203]", "ignore selector policies there"],
            exit: 0,
        },
        Case {
            name: "oldest-wins",
            yaml: format!(
                "{}---\n{}",
                STRICT.replace("payments\n", "payments\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n"),
                STRICT
                    .replace("name: default", "name: newer")
                    .replace("payments\n", "payments\n  creationTimestamp: \"2024-06-01T00:00:00Z\"\n")
                    .replace("STRICT", "PERMISSIVE")
            ),
            flags: vec!["--failure-threshold".into(), "warning".into()],
            code: "SG0204",
            line: "14",
            words: &["conflicts with PeerAuthentication payments/default at namespace level", "created 2024-01-01T00:00:00Z", "delete payments/newer"],
            exit: 2,
        },
        Case {
            name: "allow-http-on-tcp",
            yaml: ap("  selector:\n    matchLabels:\n      app: billing\n  rules:\n  - to:\n    - operation:\n        methods: [GET]\n"),
            flags: wl(&[]),
            code: "SG0301",
            line: "11",
            words: &["ALLOW rule 0 uses HTTP-only fields (methods) but port 5432 of payments/billing is TCP", "never matches"],
            exit: 0,
        },
        Case {
            name: "deny-http-on-tcp",
            yaml: ap("  action: DENY\n  rules:\n  - to:\n    - operation:\n        paths: [/admin]\n"),
            flags: wl(&[]),
            code: "SG0302",
            line: "9",
            words: &["Error [SG0302]", "denies every connection to port 5432"],
            exit: 2,
        },
        Case {
            name: "traffic-fields",
            yaml: dr("    tls:\n      mode: ISTIO_MUTUAL\n    connectionPool:\n      tcp:\n        maxConnections: 10\n"),
            flags: vec!["--failure-threshold".into(), "Info".into()],
            code: "SG0401",
            line: "11",
            words: &["Info [SG0401]", "spec.trafficPolicy.connectionPool is accepted but not applied"],
            exit: 2,
        },
        Case {
            name: "ca-crl",
            yaml: dr("    tls:\n      mode: SIMPLE\n      caCertificates: /etc/ca.pem\n      caCrl: /etc/crl.pem\n"),
            flags: vec![],
            code: "SG0402",
            line: "12",
            words: &["caCrl \"/etc/crl.pem\" is not checked", "revokes is still accepted"],
            exit: 0,
        },
        Case {
            name: "credential-name",
            yaml: dr("    tls:\n      mode: MUTUAL\n      credentialName: billing-client\n"),
            flags: vec![],
            code: "SG0403",
            line: "11",
            words: &["cannot read Kubernetes secrets", "clientCertificate, privateKey"],
            exit: 2,
        },
        Case {
            name: "request-authn",
            yaml: "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  namespace: payments\nspec:\n  jwtRules:\n  - issuer: https://issuer.example\n".into(),
            flags: vec![],
            code: "SG0404",
            line: "7",
            words: &["does not validate JWTs"],
            exit: 0,
        },
        Case {
            name: "jwt-deny",
            yaml: ap("  action: DENY\n  rules:\n  - from:\n    - source:\n        notRequestPrincipals: [\"*\"]\n"),
            flags: vec![],
            code: "SG0405",
            line: "9",
            words: &["Error [SG0405]", "does not validate JWTs", "holds for every request"],
            exit: 2,
        },
        Case {
            name: "custom",
            yaml: ap("  action: CUSTOM\n  provider:\n    name: ext-authz\n  rules:\n  - {}\n"),
            flags: vec![],
            code: "SG0406",
            line: "7",
            words: &["provider \"ext-authz\"", "fail closed"],
            exit: 0,
        },
        Case {
            name: "when-key",
            yaml: ap("  rules:\n  - when:\n    - key: experimental.envoy.filters.http.foo[bar]\n      values: [x]\n"),
            flags: vec![],
            code: "SG0407",
            line: "8",
            words: &["cannot evaluate", "experimental.envoy.filters.http.foo[bar]", "never matches"],
            exit: 0,
        },
        Case {
            name: "target-ref",
            yaml: ap("  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: ingress\n"),
            flags: vec![],
            code: "SG0408",
            line: "7",
            words: &["applies to none of them", "spec.selector.matchLabels"],
            exit: 0,
        },
    ];
    for c in &cases {
        run_case(d, c);
    }
}

#[test]
fn near_misses_are_clean_and_json_is_for_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let billing = proxy(d, "billing", &[(8080, "http")], &[]);
    let checkout = proxy(d, "checkout", &[], &[(BILLING_HOST, 8080)]);
    let mutual = write(
        d,
        "ok.yaml",
        &format!(
            "{STRICT}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  host: {BILLING_HOST}\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n"
        ),
    );
    let r = sigil(&[
        "analyze",
        "-f",
        &mutual,
        "--workloads",
        &billing,
        "--workloads",
        &checkout,
        "-n",
        "payments",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "✔ No validation issues found when analyzing namespace: payments.\n"
    );
    assert!(r.stderr.contains("no registration entries"), "{}", r.stderr);

    let disable = mutual.replace("ok.yaml", "bad.yaml");
    std::fs::write(
        &disable,
        std::fs::read_to_string(&mutual)
            .unwrap()
            .replace("ISTIO_MUTUAL", "DISABLE"),
    )
    .unwrap();
    let r = sigil(&[
        "analyze",
        "-f",
        &disable,
        "--workloads",
        &billing,
        "--workloads",
        &checkout,
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["code"], "SG0202");
    assert_eq!(f["severity"], "Error");
    assert_eq!(f["resource"]["kind"], "DestinationRule");
    assert_eq!(f["resource"]["namespace"], "payments");
    assert_eq!(f["resource"]["file"], disable.as_str());
    assert_eq!(f["resource"]["line"], 19);
    assert!(f["fix"].as_str().unwrap().contains("ISTIO_MUTUAL"));
    // Another namespace: nothing to report there.
    let r = sigil(&[
        "analyze",
        "-f",
        &disable,
        "--workloads",
        &billing,
        "-n",
        "shop",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "✔ No validation issues found when analyzing namespace: shop.\n"
    );

    // Invalid YAML is reported with its position; no arguments is a usage error.
    let broken = write(
        d,
        "broken.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: x\nspec:\n  mtls:\n    mode: STRCT\n",
    );
    let r = sigil(&["analyze", "-f", &broken]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains(&format!("{broken}:7:")), "{}", r.stdout);
    assert_eq!(sigil(&["analyze"]).code, 64);
}

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

#[test]
fn the_payments_example_in_strict_mode_has_no_issue_and_breaks_when_an_entry_is_missing() {
    // base + strict with the three proxies: STRICT everywhere except billing's health port
    // (DISABLE), ISTIO_MUTUAL toward *.payments, checkout admitted, health checks admitted in
    // plaintext. frontend being denied by billing-service-policy is the example's intent.
    let tmp = tempfile::tempdir().unwrap();
    let ids = ["billing-service", "checkout-service", "frontend"]
        .map(|n| format!(r#"{{"id":"{n}","spiffe_id":"spiffe://cluster.local/ns/payments/sa/{n}","x509_svid_ttl":0}}"#));
    let all = write(
        tmp.path(),
        "all.json",
        &format!(r#"{{"entries":[{}]}}"#, ids.join(",")),
    );
    let args = |entries: &str| {
        sigil(&[
            "analyze",
            "-f",
            &example("mesh/base"),
            "-f",
            &example("mesh/strict"),
            "--workloads",
            &example("proxies"),
            "--entries",
            entries,
            "--failure-threshold",
            "Info",
        ])
    };
    let r = args(&all);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "✔ No validation issues found when analyzing all namespaces.\n"
    );
    // Both phases in one call: the later `default` replaces the earlier one, as with apply.
    let r = sigil(&[
        "analyze",
        "-f",
        &example("mesh/base"),
        "-f",
        &example("mesh/permissive"),
        "-f",
        &example("mesh/strict"),
        "--workloads",
        &example("proxies"),
        "--failure-threshold",
        "Info",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "✔ No validation issues found when analyzing all namespaces.\n"
    );
    // Without checkout-service's entry, billing-service-policy admits nobody.
    let some = write(
        tmp.path(),
        "some.json",
        &format!(r#"{{"entries":[{},{}]}}"#, ids[0], ids[2]),
    );
    let r = args(&some);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with("    Fix:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(
        lines[0]
            .starts_with("Error [SG0102] (AuthorizationPolicy payments/billing-service-policy "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("authorization-policy.yaml:16)"),
        "{}",
        lines[0]
    );
}

#[test]
fn live_reads_config_entries_and_ca_from_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start_with(
        &tmp.path().join("server"),
        None,
        &["--ca-ttl", "2h", "--default-x509-svid-ttl", "10m"],
    );
    let sock = s.socket.to_str().unwrap().to_owned();
    let policy = write(
        tmp.path(),
        "policy.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: billing\n  namespace: payments\nspec:\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/payments/sa/checkout-svc]\n",
    );
    s.ok(&["apply", "-f", &policy]);
    s.ok(&[
        "entry",
        "create",
        "-spiffeID",
        "spiffe://cluster.local/ns/payments/sa/checkout",
        "-parentID",
        AGENT,
        "-selector",
        "unix:uid:1000",
        "-x509SVIDTTL",
        "86400",
    ]);
    let r = sigil(&["analyze", "--live", "--socket-path", &sock]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Error [SG0102] (AuthorizationPolicy payments/billing) principal \"cluster.local/ns/payments/sa/checkout-svc\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Warning [SG0501] (Entry payments/spiffe://cluster.local/ns/payments/sa/checkout) entry ")
            && r.stdout.contains("asks for X.509-SVIDs valid 1d but the CA expires in ")
            && (r.stdout.contains("expires in 2h (at") || r.stdout.contains("expires in 1h59m")),
        "{}",
        r.stdout
    );
    // The fix, analyzed on top of the live configuration before applying it.
    let fixed = write(
        tmp.path(),
        "fixed.yaml",
        &std::fs::read_to_string(&policy)
            .unwrap()
            .replace("checkout-svc", "checkout"),
    );
    let r = sigil(&[
        "analyze",
        "--live",
        "-f",
        &fixed,
        "--socket-path",
        &sock,
        "-o",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["SG0501"]);
    // A server that is not there is an operational error.
    let r = sigil(&[
        "analyze",
        "--live",
        "--socket-path",
        tmp.path().join("nope.sock").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    s.stop();
}
