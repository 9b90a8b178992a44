//! networking.istio.io kinds: the seed article's DestinationRule, full examples of every
//! kind in every apiVersion, serde round trips, and a table of webhook rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod networking_support;

use std::collections::BTreeMap;

use networking_support::{Case, check, dr, fixture, se, tls, we};
use sigil_policy::{
    ClientTlsSettings, DestinationRuleSpec, ErrorKind, H2UpgradePolicy, Location, Object,
    ObjectMeta, ProxyProtocolVersion, Resolution, Resource, SimpleLb, TlsMode, TrafficPolicy,
    parse_documents, validate,
};

const VERSIONS: [&str; 3] = [
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

#[test]
fn seed_destination_rule_parses_to_the_expected_value() {
    let docs = parse_documents(
        "seed_destination_rule.yaml",
        &fixture("seed_destination_rule.yaml"),
    )
    .unwrap();
    let expected = Resource::DestinationRule(Object::new(
        "networking.istio.io/v1beta1",
        "DestinationRule",
        ObjectMeta {
            name: "payments-mtls".into(),
            namespace: Some("payments".into()),
            ..ObjectMeta::default()
        },
        DestinationRuleSpec {
            host: "*.payments.svc.cluster.local".into(),
            traffic_policy: Some(TrafficPolicy {
                tls: Some(ClientTlsSettings {
                    mode: TlsMode::IstioMutual,
                    ..ClientTlsSettings::default()
                }),
                ..TrafficPolicy::default()
            }),
            ..DestinationRuleSpec::default()
        },
    ));
    assert_eq!(docs, vec![expected]);
}

#[test]
fn full_examples_parse_in_every_api_version() {
    let text = fixture("networking_full.yaml");
    let base = parse_documents("full.yaml", &text).unwrap();
    let kinds: Vec<&str> = base.iter().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        [
            "DestinationRule",
            "DestinationRule",
            "ServiceEntry",
            "ServiceEntry",
            "WorkloadEntry"
        ]
    );
    for version in VERSIONS {
        let other = text.replace(
            "apiVersion: networking.istio.io/v1\n",
            &format!("apiVersion: {version}\n"),
        );
        let docs = parse_documents("full.yaml", &other).unwrap();
        assert_eq!(docs.len(), base.len());
        for (doc, base) in docs.iter().zip(&base) {
            assert_eq!(doc.api_version(), version);
            assert_eq!(doc.kind(), base.kind());
            assert_eq!(doc.metadata(), base.metadata());
        }
        // Only the apiVersion differs: the JSON bodies are equal once it is aligned.
        let mut left = serde_json::to_value(&docs).unwrap();
        let right = serde_json::to_value(&base).unwrap();
        for item in left.as_array_mut().unwrap() {
            item["apiVersion"] = "networking.istio.io/v1".into();
        }
        assert_eq!(left, right, "{version}");
    }
}

#[test]
fn every_field_of_the_full_examples_is_kept() {
    let docs = parse_documents("full.yaml", &fixture("networking_full.yaml")).unwrap();
    let Resource::DestinationRule(dr) = &docs[0] else {
        panic!("{:?}", docs[0])
    };
    assert_eq!(
        dr.metadata.creation_timestamp.as_deref(),
        Some("2024-05-01T10:00:00Z")
    );
    let tp = dr.spec.traffic_policy.as_ref().unwrap();
    let lb = tp.load_balancer.as_ref().unwrap();
    let ch = lb.consistent_hash.as_ref().unwrap();
    let cookie = ch.http_cookie.as_ref().unwrap();
    assert_eq!(
        (cookie.name.as_str(), cookie.ttl.as_deref()),
        ("user", Some("0s"))
    );
    assert_eq!(cookie.attributes[1].name, "Secure");
    assert_eq!(ch.maglev.unwrap().table_size, Some(65537));
    let locality = lb.locality_lb_setting.as_ref().unwrap();
    assert_eq!(locality.distribute[0].to["us-west/zone2/*"], 20);
    assert_eq!(locality.enabled, Some(true));
    assert_eq!(lb.warmup_duration_secs.as_deref(), Some("30s"));
    let warmup = lb.warmup.as_ref().unwrap();
    assert_eq!(
        (warmup.minimum_percent, warmup.aggression),
        (Some(10.0), Some(1.5))
    );
    let pool = tp.connection_pool.as_ref().unwrap();
    let tcp = pool.tcp.as_ref().unwrap();
    assert_eq!(tcp.max_connections, Some(100));
    assert_eq!(tcp.tcp_keepalive.as_ref().unwrap().probes, Some(9));
    assert_eq!(tcp.idle_timeout.as_deref(), Some("0s"));
    let http = pool.http.as_ref().unwrap();
    assert_eq!(http.h2_upgrade_policy, Some(H2UpgradePolicy::DoNotUpgrade));
    assert_eq!(http.use_client_protocol, Some(false));
    assert_eq!(http.max_concurrent_streams, Some(100));
    let outlier = tp.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_errors, Some(0));
    assert_eq!(outlier.consecutive_5xx_errors, Some(7));
    assert_eq!(outlier.min_health_percent, Some(0));
    let tls = tp.tls.as_ref().unwrap();
    assert_eq!(tls.mode, TlsMode::IstioMutual);
    assert_eq!(tls.insecure_skip_verify, Some(false));
    let port = &tp.port_level_settings[0];
    assert_eq!(port.port.unwrap().number, 9080);
    assert_eq!(
        port.load_balancer.as_ref().unwrap().simple,
        Some(SimpleLb::LeastRequest)
    );
    assert_eq!(port.tls.as_ref().unwrap().ca_crl, "/etc/certs/ca.crl");
    assert_eq!(
        tp.proxy_protocol.unwrap().version,
        Some(ProxyProtocolVersion::V2)
    );
    let budget = tp.retry_budget.as_ref().unwrap();
    assert_eq!(budget.percent, Some(20.0));
    assert_eq!(budget.budget_interval.as_deref(), Some("10s"));
    assert_eq!(
        dr.spec.subsets[0].labels["app.kubernetes.io/name"],
        "reviews"
    );
    let v2 = dr.spec.subsets[1].traffic_policy.as_ref().unwrap();
    assert_eq!(v2.tunnel.as_ref().unwrap().target_port, 8443);
    assert_eq!(v2.tls.as_ref().unwrap().credential_name, "reviews-client");
    assert_eq!(dr.spec.export_to, [".", "frontend"]);

    let Resource::DestinationRule(egress) = &docs[1] else {
        panic!()
    };
    assert_eq!(
        egress.spec.workload_selector.as_ref().unwrap().match_labels["app"],
        "ratings"
    );

    let Resource::ServiceEntry(se) = &docs[2] else {
        panic!()
    };
    assert_eq!(se.spec.location, Location::MeshExternal);
    assert_eq!(se.spec.resolution, Resolution::Dns);
    assert_eq!(se.spec.ports[0].target_port, Some(8443));
    assert_eq!(se.spec.ports[0].protocol, "tls");
    let ep = &se.spec.endpoints[0];
    assert_eq!(
        (ep.ports["tls"], ep.weight, ep.service_account.as_str()),
        (9443, Some(10), "api")
    );
    assert_eq!(se.spec.subject_alt_names, ["api.example.com"]);

    let Resource::ServiceEntry(vms) = &docs[3] else {
        panic!()
    };
    assert_eq!(vms.spec.location, Location::MeshInternal);
    assert_eq!(
        vms.spec.workload_selector.as_ref().unwrap().labels["app"],
        "vm"
    );

    let Resource::WorkloadEntry(we) = &docs[4] else {
        panic!()
    };
    assert_eq!(we.spec.address, "10.10.0.5");
    assert_eq!(we.spec.locality, "us-west/zone1/rack1");
    assert_eq!(
        we.spec.labels,
        BTreeMap::from([("app".into(), "vm".into())])
    );
}

#[test]
fn parsed_resources_round_trip_through_json_and_yaml() {
    for name in ["networking_full.yaml", "seed_destination_rule.yaml"] {
        for doc in parse_documents(name, &fixture(name)).unwrap() {
            assert!(validate(&doc).is_empty());
            let json = serde_json::to_string(&doc).unwrap();
            assert_eq!(
                parse_documents("rt.json", &json).unwrap(),
                vec![doc.clone()],
                "{json}"
            );
            let yaml = serde_saphyr::to_string(&doc).unwrap();
            assert_eq!(
                parse_documents("rt.yaml", &yaml).unwrap(),
                vec![doc.clone()],
                "{yaml}"
            );
        }
    }
}

/// Things upstream's webhook accepts, which must not be errors here.
#[test]
fn what_upstream_accepts_parses() {
    for (name, body) in [
        ("short host", "  host: reviews\n"),
        ("catch-all host", "  host: \"*\"\n"),
        (
            "partial wildcard first label",
            "  host: \"*foo.example.com\"\n",
        ),
        (
            "tcp idleTimeout 0s disables it",
            "  host: r\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        idleTimeout: 0s\n",
        ),
        (
            "ISTIO_MUTUAL honours sni, SANs and insecureSkipVerify",
            "  host: r\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n      sni: x\n      subjectAltNames: [a]\n      insecureSkipVerify: true\n",
        ),
        (
            "MUTUAL via credentialName",
            "  host: r\n  trafficPolicy:\n    tls:\n      mode: MUTUAL\n      credentialName: cred\n",
        ),
        (
            "SIMPLE without CA (OS roots)",
            "  host: r\n  trafficPolicy:\n    tls:\n      mode: SIMPLE\n",
        ),
        (
            "deprecated consecutiveErrors is only a warning upstream",
            "  host: r\n  trafficPolicy:\n    outlierDetection:\n      consecutiveErrors: 5\n",
        ),
        (
            "failover without outlier detection is only a warning upstream",
            "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover:\n        - from: a\n          to: b\n",
        ),
        (
            "port-level TLS only",
            "  host: r\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: DISABLE}\n",
        ),
    ] {
        let text = dr(body);
        if let Err(e) = parse_documents("ok.yaml", &text) {
            panic!("{name}: {e:#?}");
        }
    }
    for (name, text) in [
        (
            "SE protocol in any case, empty protocol sniffed",
            se(
                "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http, protocol: hTTp}\n  - {number: 81, name: sniffed}\n",
            ),
        ),
        (
            "SE STATIC without endpoints or selector",
            se("  hosts: [a.example.com]\n  resolution: STATIC\n"),
        ),
        (
            "SE exported to no one",
            se("  hosts: [a.example.com]\n  exportTo: [\"~\"]\n"),
        ),
        (
            "SE DNS with a wildcard host when endpoints are given",
            se(
                "  hosts: [\"*.example.com\"]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints: [{address: gw.example.com}]\n",
            ),
        ),
        (
            "SE DYNAMIC_DNS with a wildcard host",
            se("  hosts: [\"*.example.com\"]\n  resolution: DYNAMIC_DNS\n"),
        ),
        (
            "SE unix socket endpoint with one port",
            se(
                "  hosts: [a.local]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints: [{address: \"unix:///var/run/a.sock\"}]\n",
            ),
        ),
        ("WE with only a network", we("  network: remote\n")),
        ("WE with a DNS name", we("  address: vm.example.com\n")),
    ] {
        if let Err(e) = parse_documents("ok.yaml", &text) {
            panic!("{name}: {e:#?}");
        }
    }
}

// --- invalid ServiceEntry and WorkloadEntry documents (DestinationRule: networking_dr_invalid.rs) ---

#[test]
fn invalid_service_and_workload_entries_report_kind_path_and_line() {
    let mut cases = service_entry_cases();
    cases.extend(workload_entry_cases());
    check(&cases);
}

fn service_entry_cases() -> Vec<Case> {
    vec![
        Case {
            name: "hosts missing",
            yaml: se("  ports: [{number: 80, name: http}]\n"),
            path: "spec",
            line: 6,
            kind: |k| matches!(k, ErrorKind::MissingField { field } if field == "hosts"),
        },
        Case {
            name: "host `*`",
            yaml: se("  hosts: [\"*\"]\n"),
            path: "spec.hosts[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidHost { .. }),
        },
        Case {
            name: "duplicate port number",
            yaml: se(
                "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  - {number: 80, name: http-alt}\n",
            ),
            path: "spec.ports[1].number",
            line: 10,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { value, .. } if value == "80"),
        },
        Case {
            name: "duplicate port name",
            yaml: se(
                "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http}\n  - {number: 81, name: http}\n",
            ),
            path: "spec.ports[1].name",
            line: 10,
            kind: |k| matches!(k, ErrorKind::DuplicateEntry { value, .. } if value == "http"),
        },
        Case {
            name: "port name not a DNS label",
            yaml: se("  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http_1}\n"),
            path: "spec.ports[0].name",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidDnsLabel { .. }),
        },
        Case {
            name: "port number zero",
            yaml: se("  hosts: [a.example.com]\n  ports:\n  - name: http\n    number: 0\n"),
            path: "spec.ports[0].number",
            line: 10,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { .. }),
        },
        Case {
            name: "unknown protocol",
            yaml: se(
                "  hosts: [a.example.com]\n  ports:\n  - name: web\n    number: 80\n    protocol: HTTP3\n",
            ),
            path: "spec.ports[0].protocol",
            line: 11,
            kind: |k| matches!(k, ErrorKind::UnknownProtocol { value, suggestion: Some(_) } if value == "HTTP3"),
        },
        Case {
            name: "resolution in lower case",
            yaml: se("  hosts: [a.example.com]\n  resolution: dns\n"),
            path: "spec.resolution",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "DNS"),
        },
        Case {
            name: "location typo",
            yaml: se("  hosts: [a.example.com]\n  location: MESH_INTERNL\n"),
            path: "spec.location",
            line: 8,
            kind: |k| matches!(k, ErrorKind::UnknownEnumValue { suggestion: Some(s), .. } if s == "MESH_INTERNAL"),
        },
        Case {
            name: "endpoints and workloadSelector together",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: STATIC\n  workloadSelector:\n    labels: {app: a}\n  endpoints: [{address: 10.0.0.1}]\n",
            ),
            path: "spec.endpoints",
            line: 11,
            kind: |k| matches!(k, ErrorKind::OnlyOneOf { .. }),
        },
        Case {
            name: "endpoints with resolution NONE",
            yaml: se("  hosts: [a.example.com]\n  endpoints: [{address: 10.0.0.1}]\n"),
            path: "spec.endpoints",
            line: 8,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { resolution, .. } if resolution == "NONE"),
        },
        Case {
            name: "STATIC endpoint with a DNS name",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: STATIC\n  endpoints:\n  - address: vm.example.com\n",
            ),
            path: "spec.endpoints[0].address",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidAddress { .. }),
        },
        Case {
            name: "STATIC endpoint without address or network",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: STATIC\n  endpoints:\n  - labels: {a: b}\n",
            ),
            path: "spec.endpoints[0]",
            line: 10,
            kind: |k| *k == ErrorKind::MissingAddress,
        },
        Case {
            name: "endpoint port not a service port",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints:\n  - address: 10.0.0.1\n    ports:\n      grpc: 9090\n",
            ),
            path: "spec.endpoints[0].ports.grpc",
            line: 13,
            kind: |k| matches!(k, ErrorKind::UndefinedPortName { name, known } if name == "grpc" && known == &["http"]),
        },
        Case {
            name: "unix endpoint with ports",
            yaml: se(
                "  hosts: [a.local]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints:\n  - address: unix:///run/a.sock\n    ports: {http: 80}\n",
            ),
            path: "spec.endpoints[0].ports",
            line: 12,
            kind: |k| matches!(k, ErrorKind::ConflictingFields { field, .. } if field == "ports"),
        },
        Case {
            name: "DNS without endpoints and a wildcard host",
            yaml: se("  hosts: [\"*.example.com\"]\n  resolution: DNS\n"),
            path: "spec.hosts[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { resolution, .. } if resolution == "DNS"),
        },
        Case {
            name: "DNS_ROUND_ROBIN with two endpoints",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints:\n  - address: a1.example.com\n  - address: a2.example.com\n",
            ),
            path: "spec.endpoints",
            line: 9,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { .. }),
        },
        Case {
            name: "DNS endpoint that is not a name",
            yaml: se(
                "  hosts: [a.example.com]\n  resolution: DNS\n  endpoints:\n  - address: \"bad host\"\n",
            ),
            path: "spec.endpoints[0].address",
            line: 10,
            kind: |k| matches!(k, ErrorKind::InvalidAddress { .. }),
        },
        Case {
            name: "CIDR address with DNS resolution",
            yaml: se("  hosts: [a.example.com]\n  addresses: [10.0.0.0/24]\n  resolution: DNS\n"),
            path: "spec.addresses",
            line: 8,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { .. }),
        },
        Case {
            name: "address not an IP",
            yaml: se("  hosts: [a.example.com]\n  addresses: [10.0.0.0/40]\n"),
            path: "spec.addresses[0]",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidAddress { .. }),
        },
        Case {
            name: "several hosts on a TCP port",
            yaml: se(
                "  hosts: [a.example.com, b.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n",
            ),
            path: "spec.hosts",
            line: 7,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { .. }),
        },
        Case {
            name: "DYNAMIC_DNS without a wildcard host",
            yaml: se("  hosts: [a.example.com]\n  resolution: DYNAMIC_DNS\n"),
            path: "spec.hosts[0]",
            line: 7,
            kind: |k| matches!(k, ErrorKind::ResolutionConflict { .. }),
        },
        Case {
            name: "exported to no one and someone",
            yaml: se("  hosts: [a.example.com]\n  exportTo: [\"~\", \".\"]\n"),
            path: "spec.exportTo",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidExportTo { .. }),
        },
        Case {
            name: "SE selector uses `labels`, not `matchLabels`",
            yaml: se("  hosts: [a.example.com]\n  workloadSelector:\n    matchLabels: {app: a}\n"),
            path: "spec.workloadSelector.matchLabels",
            line: 9,
            kind: |k| matches!(k, ErrorKind::UnknownField { expected, .. } if expected == &["labels"]),
        },
    ]
}

fn workload_entry_cases() -> Vec<Case> {
    vec![
        Case {
            name: "neither address nor network",
            yaml: we("  labels: {app: vm}\n"),
            path: "spec",
            line: 6,
            kind: |k| *k == ErrorKind::MissingAddress,
        },
        Case {
            name: "port zero",
            yaml: we("  address: 10.0.0.1\n  ports:\n    http: 0\n"),
            path: "spec.ports.http",
            line: 9,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { .. }),
        },
        Case {
            name: "port above 65535",
            yaml: we("  address: 10.0.0.1\n  ports:\n    http: 65536\n"),
            path: "spec.ports.http",
            line: 9,
            kind: |k| matches!(k, ErrorKind::PortOutOfRange { value } if value == "65536"),
        },
        Case {
            name: "port name not a DNS label",
            yaml: we("  address: 10.0.0.1\n  ports:\n    http_1: 80\n"),
            path: "spec.ports.http_1",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidDnsLabel { .. }),
        },
        Case {
            name: "address neither IP nor name",
            yaml: we("  address: \"vm 1\"\n"),
            path: "spec.address",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidAddress { .. }),
        },
        Case {
            name: "relative unix socket",
            yaml: we("  address: unix://run/a.sock\n"),
            path: "spec.address",
            line: 7,
            kind: |k| matches!(k, ErrorKind::InvalidAddress { .. }),
        },
        Case {
            name: "negative weight",
            yaml: we("  address: 10.0.0.1\n  weight: -1\n"),
            path: "spec.weight",
            line: 8,
            kind: |k| matches!(k, ErrorKind::InvalidValue { .. }),
        },
        Case {
            name: "label key invalid",
            yaml: we("  address: 10.0.0.1\n  labels:\n    \"-app\": vm\n"),
            path: "spec.labels.-app",
            line: 9,
            kind: |k| matches!(k, ErrorKind::InvalidLabel { .. }),
        },
    ]
}

#[test]
fn tls_messages_say_what_to_change() {
    let text = tls("      mode: MUTUAL\n");
    let errors = parse_documents("t.yaml", &text).unwrap_err();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].contains("needs `clientCertificate`"),
        "{messages:#?}"
    );
    assert!(messages[1].contains("needs `privateKey`"), "{messages:#?}");
    assert!(messages[0].contains("or `credentialName`"), "{messages:#?}");

    let text = tls("      mode: ISTIO_MUTUAL\n      caCertificates: /ca.pem\n");
    let e = &parse_documents("t.yaml", &text).unwrap_err()[0];
    assert!(
        e.to_string().contains("remove it, or use mode MUTUAL"),
        "{e}"
    );
}
