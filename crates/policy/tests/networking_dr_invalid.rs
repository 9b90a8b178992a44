//! DestinationRule webhook rules: one row per rule, with the field path and line reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod networking_support;

use networking_support::{Case, check, dr, lb, policy, pool, tls};
use sigil_policy::ErrorKind;

#[test]
fn invalid_destination_rules_report_kind_path_and_line() {
    check(&destination_rule_cases());
}

fn destination_rule_cases() -> Vec<Case> {
    vec![
        Case {
            name: "host missing",
            yaml: dr("  exportTo: [\"*\"]\n"),
            path: "spec",
            line: 6,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "host"),
        },
        Case {
            name: "wildcard in the middle of the host",
            yaml: dr("  host: a.*.com\n"),
            path: "spec.host",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidHost { value, .. } if value == "a.*.com"),
        },
        Case {
            name: "subset name not a DNS label",
            yaml: dr("  host: r\n  subsets:\n  - name: v_1\n"),
            path: "spec.subsets[0].name",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidDnsLabel { value, .. } if value == "v_1"),
        },
        Case {
            name: "duplicate subset name",
            yaml: dr("  host: r\n  subsets:\n  - name: v1\n  - name: v1\n"),
            path: "spec.subsets[1].name",
            line: 10,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { field, value } if field == "subsets" && value == "v1"),
        },
        Case {
            name: "subset without name",
            yaml: dr("  host: r\n  subsets:\n  - labels: {a: b}\n"),
            path: "spec.subsets[0]",
            line: 9,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "name"),
        },
        Case {
            name: "subset label value invalid",
            yaml: dr("  host: r\n  subsets:\n  - name: v1\n    labels:\n      version: \"-v1\"\n"),
            path: "spec.subsets[0].labels.version",
            line: 11,
            kind: |k| matches!(k, ErrorKind::InvalidLabel { .. }),
        },
        Case {
            name: "empty traffic policy",
            yaml: dr("  host: r\n  trafficPolicy: {}\n"),
            path: "spec.trafficPolicy",
            line: 8,
            kind: |k| matches!(k, ErrorKind::EmptyBlock { field } if field == "trafficPolicy"),
        },
        Case {
            name: "tls mode typo",
            yaml: tls("      mode: ISTIO_MUTAL\n"),
            path: "spec.trafficPolicy.tls.mode",
            line: 10,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "ISTIO_MUTUAL"),
        },
        Case {
            name: "tls field typo",
            yaml: tls("      mdoe: SIMPLE\n"),
            path: "spec.trafficPolicy.tls.mdoe",
            line: 10,
            kind: |k| matches!(k, ErrorKind::UnknownField { suggestion: Some(s), .. } if s == "mode"),
        },
        Case {
            name: "MUTUAL without a client certificate",
            yaml: tls("      mode: MUTUAL\n      privateKey: /etc/key.pem\n"),
            path: "spec.trafficPolicy.tls",
            line: 9,
            kind: |k| matches!(k, ErrorKind::TlsMissingClientCert { field } if field == "clientCertificate"),
        },
        Case {
            name: "MUTUAL with credentialName and a CA file",
            yaml: tls(
                "      mode: MUTUAL\n      credentialName: c\n      caCertificates: /ca.pem\n",
            ),
            path: "spec.trafficPolicy.tls.caCertificates",
            line: 12,
            kind: |k| matches!(k, ErrorKind::TlsFieldWithCredentialName { field } if field == "caCertificates"),
        },
        Case {
            name: "ISTIO_MUTUAL with a client certificate",
            yaml: tls("      mode: ISTIO_MUTUAL\n      clientCertificate: /cert.pem\n"),
            path: "spec.trafficPolicy.tls.clientCertificate",
            line: 11,
            kind: |k| matches!(k, ErrorKind::TlsFieldWithMode { field, mode, .. } if field == "clientCertificate" && mode == "ISTIO_MUTUAL"),
        },
        Case {
            name: "ISTIO_MUTUAL with credentialName",
            yaml: tls("      mode: ISTIO_MUTUAL\n      credentialName: c\n"),
            path: "spec.trafficPolicy.tls.credentialName",
            line: 11,
            kind: |k| matches!(k, ErrorKind::TlsFieldWithMode { field, .. } if field == "credentialName"),
        },
        Case {
            name: "DISABLE with credentialName",
            yaml: tls("      credentialName: c\n"),
            path: "spec.trafficPolicy.tls.credentialName",
            line: 10,
            kind: |k| matches!(k, ErrorKind::TlsFieldWithMode { mode, .. } if mode == "DISABLE"),
        },
        Case {
            name: "SIMPLE skipping verification but naming a CA",
            yaml: tls(
                "      mode: SIMPLE\n      insecureSkipVerify: true\n      caCertificates: /ca.pem\n",
            ),
            path: "spec.trafficPolicy.tls.caCertificates",
            line: 12,
            kind: |k| matches!(k, ErrorKind::TlsFieldWithInsecureSkipVerify { field } if field == "caCertificates"),
        },
        Case {
            name: "configmap credential in another namespace",
            yaml: tls("      mode: SIMPLE\n      credentialName: configmap://other/ca\n"),
            path: "spec.trafficPolicy.tls.credentialName",
            line: 11,
            kind: |k| matches!(k, ErrorKind::ConflictingFields { field, .. } if field == "credentialName"),
        },
        Case {
            name: "insecureSkipVerify yes",
            yaml: tls("      mode: SIMPLE\n      insecureSkipVerify: yes\n"),
            path: "spec.trafficPolicy.tls.insecureSkipVerify",
            line: 11,
            kind: |k| *k == ErrorKind::NotBoolean,
        },
        Case {
            name: "port-level settings without a port",
            yaml: policy("    portLevelSettings:\n    - tls: {mode: DISABLE}\n"),
            path: "spec.trafficPolicy.portLevelSettings[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "port"),
        },
        Case {
            name: "port-level settings twice for one port",
            yaml: policy(
                "    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: DISABLE}\n    - port:\n        number: 80\n      tls: {mode: SIMPLE}\n",
            ),
            path: "spec.trafficPolicy.portLevelSettings[1].port.number",
            line: 13,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { value, .. } if value == "80"),
        },
        Case {
            name: "port-level port out of range",
            yaml: policy(
                "    portLevelSettings:\n    - port:\n        number: 70000\n      tls: {mode: DISABLE}\n",
            ),
            path: "spec.trafficPolicy.portLevelSettings[0].port.number",
            line: 11,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { value } if value == "70000"),
        },
        Case {
            name: "port-level entry with only a port",
            yaml: policy("    portLevelSettings:\n    - port: {number: 80}\n"),
            path: "spec.trafficPolicy.portLevelSettings[0]",
            line: 10,
            kind: |k| matches!(k, ErrorKind::EmptyBlock { .. }),
        },
        Case {
            name: "simple and consistentHash together",
            yaml: lb("      simple: RANDOM\n      consistentHash:\n        useSourceIp: true\n"),
            path: "spec.trafficPolicy.loadBalancer.consistentHash",
            line: 11,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { fields } if fields.len() == 2),
        },
        Case {
            name: "two hash keys",
            yaml: lb(
                "      consistentHash:\n        useSourceIp: true\n        httpHeaderName: x-user\n",
            ),
            path: "spec.trafficPolicy.loadBalancer.consistentHash",
            line: 10,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { fields } if fields == &["httpHeaderName", "useSourceIp"]),
        },
        Case {
            name: "maglev table size not prime",
            yaml: lb(
                "      consistentHash:\n        useSourceIp: true\n        maglev:\n          tableSize: 1000\n",
            ),
            path: "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            line: 13,
            kind: |k| *k == ErrorKind::InvalidMaglevTableSize { value: 1000 },
        },
        Case {
            name: "cookie without name",
            yaml: lb("      consistentHash:\n        httpCookie:\n          ttl: 10s\n"),
            path: "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie",
            line: 11,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "name"),
        },
        Case {
            name: "simple LB typo",
            yaml: lb("      simple: ROUND_ROBBIN\n"),
            path: "spec.trafficPolicy.loadBalancer.simple",
            line: 10,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "ROUND_ROBIN"),
        },
        Case {
            name: "locality weights not adding to 100",
            yaml: lb(
                "      localityLbSetting:\n        distribute:\n        - from: a/*\n          to: {\"a/*\": 50, \"b/*\": 40}\n",
            ),
            path: "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            line: 13,
            kind: |k| *k == ErrorKind::LocalityWeightTotal { total: 90 },
        },
        Case {
            name: "distribute and failover together",
            yaml: lb(
                "      localityLbSetting:\n        distribute: [{from: a, to: {b: 100}}]\n        failover: [{from: a, to: b}]\n",
            ),
            path: "spec.trafficPolicy.loadBalancer.localityLbSetting",
            line: 10,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { .. }),
        },
        Case {
            name: "failover to the same region",
            yaml: lb(
                "      localityLbSetting:\n        failover:\n        - from: us-east\n          to: us-east\n",
            ),
            path: "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            line: 12,
            kind: |k| matches!(k, ErrorKind::InvalidLocality { .. }),
        },
        Case {
            name: "warmup without duration",
            yaml: lb("      warmup:\n        aggression: 2\n"),
            path: "spec.trafficPolicy.loadBalancer.warmup",
            line: 10,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "duration"),
        },
        Case {
            name: "warmup aggression below 1",
            yaml: lb("      warmup:\n        duration: 10s\n        aggression: 0.5\n"),
            path: "spec.trafficPolicy.loadBalancer.warmup.aggression",
            line: 12,
            kind: |k| matches!(k, ErrorKind::OutOfRange { .. }),
        },
        Case {
            name: "negative max connections",
            yaml: pool("      tcp:\n        maxConnections: -1\n"),
            path: "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            line: 11,
            kind: |k| matches!(k, ErrorKind::OutOfRange { value, .. } if value == "-1"),
        },
        Case {
            name: "max connections beyond int32",
            yaml: pool("      tcp:\n        maxConnections: 3000000000\n"),
            path: "spec.trafficPolicy.connectionPool.tcp.maxConnections",
            line: 11,
            kind: |k| matches!(k, ErrorKind::InvalidValue { .. }),
        },
        Case {
            name: "duration without unit",
            yaml: pool("      tcp:\n        connectTimeout: \"5\"\n"),
            path: "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            line: 11,
            kind: |k| matches!(k, ErrorKind::InvalidDuration { value } if value == "5"),
        },
        Case {
            name: "duration below 1ms",
            yaml: pool("      http:\n        idleTimeout: 500us\n"),
            path: "spec.trafficPolicy.connectionPool.http.idleTimeout",
            line: 11,
            kind: |k| matches!(k, ErrorKind::InvalidDuration { .. }),
        },
        Case {
            name: "duration not whole milliseconds",
            yaml: pool("      tcp:\n        tcpKeepalive:\n          time: 1500us\n"),
            path: "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time",
            line: 12,
            kind: |k| matches!(k, ErrorKind::DurationNotWholeMs { .. }),
        },
        Case {
            name: "empty connection pool",
            yaml: pool("      {}\n"),
            path: "spec.trafficPolicy.connectionPool",
            line: 9,
            kind: |k| matches!(k, ErrorKind::EmptyBlock { .. }),
        },
        Case {
            name: "client protocol with forced upgrade",
            yaml: pool(
                "      http:\n        h2UpgradePolicy: UPGRADE\n        useClientProtocol: true\n",
            ),
            path: "spec.trafficPolicy.connectionPool.http.useClientProtocol",
            line: 12,
            kind: |k| matches!(k, ErrorKind::ConflictingFields { .. }),
        },
        Case {
            name: "ejection percent above 100",
            yaml: policy("    outlierDetection:\n      maxEjectionPercent: 150\n"),
            path: "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
            line: 10,
            kind: |k| matches!(k, ErrorKind::OutOfRange { value, .. } if value == "150"),
        },
        Case {
            name: "local origin failures without the split",
            yaml: policy("    outlierDetection:\n      consecutiveLocalOriginFailures: 3\n"),
            path: "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            line: 10,
            kind: |k| matches!(k, ErrorKind::RequiresField { .. }),
        },
        Case {
            name: "tunnel and proxy protocol together",
            yaml: policy(
                "    tunnel: {targetHost: a.example.com, targetPort: 443}\n    proxyProtocol: {version: V1}\n",
            ),
            path: "spec.trafficPolicy.proxyProtocol",
            line: 10,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { .. }),
        },
        Case {
            name: "tunnel protocol unknown",
            yaml: policy(
                "    tunnel:\n      protocol: connect\n      targetHost: a.example.com\n      targetPort: 443\n",
            ),
            path: "spec.trafficPolicy.tunnel.protocol",
            line: 10,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "CONNECT"),
        },
        Case {
            name: "tunnel without target port",
            yaml: policy("    tunnel:\n      targetHost: 10.0.0.1\n"),
            path: "spec.trafficPolicy.tunnel",
            line: 9,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "targetPort"),
        },
        Case {
            name: "proxy protocol version unknown",
            yaml: policy("    proxyProtocol:\n      version: V3\n"),
            path: "spec.trafficPolicy.proxyProtocol.version",
            line: 10,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { .. }),
        },
        Case {
            name: "retry budget percent above 100",
            yaml: policy("    retryBudget:\n      percent: 120\n"),
            path: "spec.trafficPolicy.retryBudget.percent",
            line: 10,
            kind: |k| matches!(k, ErrorKind::OutOfRange { .. }),
        },
        Case {
            name: "exportTo listed twice via `.`",
            yaml: dr("  host: r\n  exportTo: [\".\", foo]\n"),
            path: "spec.exportTo[1]",
            line: 8,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { value, .. } if value == "foo"),
        },
        Case {
            name: "exportTo not a namespace",
            yaml: dr("  host: r\n  exportTo: [Foo_Bar]\n"),
            path: "spec.exportTo[0]",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidDnsLabel { .. }),
        },
        Case {
            name: "exportTo `*` with other entries",
            yaml: dr("  host: r\n  exportTo: [\"*\", bar]\n"),
            path: "spec.exportTo",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidExportTo { .. }),
        },
        Case {
            name: "exportTo `~` on a DestinationRule",
            yaml: dr("  host: r\n  exportTo: [\"~\"]\n"),
            path: "spec.exportTo[0]",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidExportTo { value, .. } if value == "~"),
        },
        Case {
            name: "selector rule exported elsewhere",
            yaml: dr(
                "  host: r\n  workloadSelector:\n    matchLabels: {app: a}\n  exportTo: [bar]\n",
            ),
            path: "spec.exportTo",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidExportTo { .. }),
        },
        Case {
            name: "selector with a wildcard",
            yaml: dr("  host: r\n  workloadSelector:\n    matchLabels:\n      app: \"*\"\n"),
            path: "spec.workloadSelector.matchLabels.app",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidSelectorLabel { .. }),
        },
        Case {
            name: "unsupported apiVersion of a known kind",
            yaml:
                "apiVersion: networking.istio.io/v2\nkind: DestinationRule\nmetadata:\n  name: x\n"
                    .into(),
            path: "apiVersion",
            line: 1,
            kind: |k| matches!(k, ErrorKind::UnsupportedKind { .. }),
        },
    ]
}
