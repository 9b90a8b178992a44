//! Authorization decisions field by field — source, operation, `when` keys, string and
//! path matching, the TCP ALLOW/DENY asymmetry — as YAML users write it, table-driven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod view_support;

use std::collections::BTreeMap;

use sigil_policy::Request;
use view_support::*;

#[test]
fn source_fields() {
    run(vec![
        Case {
            name: "principal written without spiffe:// matches the peer ID",
            docs: allow(
                "from: [{source: {principals: [cluster.local/ns/payments/sa/checkout-service]}}]",
            ),
            request: get(Some(CHECKOUT), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "principal given without scheme in the request too",
            docs: allow(
                "from: [{source: {principals: [cluster.local/ns/payments/sa/checkout-service]}}]",
            ),
            request: get(Some("cluster.local/ns/payments/sa/checkout-service"), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "principal is exact, not prefix",
            docs: allow("from: [{source: {principals: [cluster.local/ns/payments/sa/checkout]}}]"),
            request: get(Some(CHECKOUT), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "principal prefix",
            docs: allow("from: [{source: {principals: [\"cluster.local/ns/payments/*\"]}}]"),
            request: get(Some(CHECKOUT), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "principal suffix",
            docs: allow("from: [{source: {principals: [\"*/sa/checkout-service\"]}}]"),
            request: get(Some(OTHER_TD), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "principal * matches any authenticated peer",
            docs: allow("from: [{source: {principals: [\"*\"]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "principal * does not match plaintext",
            docs: allow("from: [{source: {principals: [\"*\"]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "plaintext: notPrincipals matches",
            docs: allow("from: [{source: {notPrincipals: [cluster.local/ns/web/sa/frontend]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "notPrincipals excludes",
            docs: allow("from: [{source: {notPrincipals: [\"*/sa/frontend\"]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "principals and notPrincipals both apply",
            docs: allow(
                "from: [{source: {principals: [\"cluster.local/*\"], notPrincipals: [\"*/sa/frontend\"]}}]",
            ),
            request: get(Some(FRONTEND), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "principal values are ORed",
            docs: allow("from: [{source: {principals: [a/b, cluster.local/ns/web/sa/frontend]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "namespaces from the /ns/ segment",
            docs: allow("from: [{source: {namespaces: [web]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "namespaces exact",
            docs: allow("from: [{source: {namespaces: [we]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "namespaces prefix",
            docs: allow("from: [{source: {namespaces: [\"pay*\"]}}]"),
            request: get(Some(CHECKOUT), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "namespaces: plaintext never matches",
            docs: allow("from: [{source: {namespaces: [\"*\"]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "notNamespaces: plaintext matches",
            docs: allow("from: [{source: {notNamespaces: [web]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "fields in one source are ANDed",
            docs: allow("from: [{source: {namespaces: [web], ipBlocks: [192.168.0.0/16]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "from entries are ORed",
            docs: allow(
                "from: [{source: {namespaces: [nope]}}, {source: {ipBlocks: [10.0.0.0/8]}}]",
            ),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "ipBlocks CIDR",
            docs: allow("from: [{source: {ipBlocks: [10.0.0.0/24]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "notIpBlocks single address",
            docs: allow("from: [{source: {notIpBlocks: [10.0.0.5]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "remoteIpBlocks default to the source address",
            docs: allow("from: [{source: {remoteIpBlocks: [10.0.0.0/8]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "remoteIpBlocks use the original client",
            docs: allow("from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]"),
            request: Request {
                remote_ip: Some(ip("203.0.113.9")),
                ..get(None, "/")
            },
            want: "permit:payments/p#0",
        },
        Case {
            name: "serviceAccounts ns/sa",
            docs: allow("from: [{source: {serviceAccounts: [web/frontend]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "serviceAccounts bare name = the policy's namespace",
            docs: allow("from: [{source: {serviceAccounts: [frontend]}}]"),
            request: get(Some(FRONTEND), "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "serviceAccounts bare name in the policy's namespace",
            docs: allow("from: [{source: {serviceAccounts: [checkout-service]}}]"),
            request: get(Some(CHECKOUT), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "trustDomains",
            docs: allow("from: [{source: {trustDomains: [example.org]}}]"),
            request: get(Some(OTHER_TD), "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "notTrustDomains",
            docs: allow("from: [{source: {notTrustDomains: [\"*.org\"]}}]"),
            request: get(Some(OTHER_TD), "/"),
            want: "deny:no-allow-matched",
        },
    ]);
}

#[test]
fn operation_fields() {
    run(vec![
        Case {
            name: "methods",
            docs: allow("to: [{operation: {methods: [GET, HEAD]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "methods are case-sensitive",
            docs: allow("to: [{operation: {methods: [get]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "notMethods",
            docs: allow("to: [{operation: {notMethods: [GET]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "paths exact",
            docs: allow("to: [{operation: {paths: [/api]}}]"),
            request: get(None, "/api/x"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "paths prefix",
            docs: allow("to: [{operation: {paths: [\"/api/*\"]}}]"),
            request: get(None, "/api/x"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "paths suffix",
            docs: allow("to: [{operation: {paths: [\"*.png\"]}}]"),
            request: get(None, "/img/a.png"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "query string is not part of the path",
            docs: allow("to: [{operation: {paths: [/api]}}]"),
            request: get(None, "/api?x=1"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "path template {*} is one segment",
            docs: allow("to: [{operation: {paths: [\"/users/{*}/orders\"]}}]"),
            request: get(None, "/users/42/orders"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "path template {*} does not span segments",
            docs: allow("to: [{operation: {paths: [\"/users/{*}/orders\"]}}]"),
            request: get(None, "/users/4/2/orders"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "path template {**} spans segments",
            docs: allow("to: [{operation: {paths: [\"/static/{**}\"]}}]"),
            request: get(None, "/static/css/a.css"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "notPaths",
            docs: allow("to: [{operation: {notPaths: [\"/admin*\"]}}]"),
            request: get(None, "/admin/x"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "hosts are case-insensitive",
            docs: allow("to: [{operation: {hosts: [Billing.Payments.SVC]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "hosts: a port in :authority is part of the value",
            docs: allow("to: [{operation: {hosts: [billing.payments.svc]}}]"),
            request: Request::http(
                None,
                ip("10.0.0.1"),
                8080,
                "GET",
                "/",
                "billing.payments.svc:8080",
            ),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "hosts suffix covers the port form",
            docs: allow("to: [{operation: {hosts: [\"billing.payments.svc*\"]}}]"),
            request: Request::http(
                None,
                ip("10.0.0.1"),
                8080,
                "GET",
                "/",
                "billing.payments.svc:8080",
            ),
            want: "permit:payments/p#0",
        },
        Case {
            name: "ports",
            docs: allow("to: [{operation: {ports: [\"8080\"]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "notPorts",
            docs: allow("to: [{operation: {notPorts: [\"8080\"]}}]"),
            request: get(None, "/"),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "to entries are ORed",
            docs: allow("to: [{operation: {ports: [\"1\"]}}, {operation: {methods: [GET]}}]"),
            request: get(None, "/"),
            want: "permit:payments/p#0",
        },
        Case {
            name: "from AND to",
            docs: allow(
                "from: [{source: {namespaces: [web]}}]\n  to: [{operation: {methods: [GET]}}]",
            ),
            request: get(Some(CHECKOUT), "/"),
            want: "deny:no-allow-matched",
        },
    ]);
}

#[test]
fn when_conditions() {
    let h = leak(BTreeMap::from([
        ("x-tenant".to_owned(), "acme".to_owned()),
        ("x-empty".to_owned(), String::new()),
    ]));
    let jwt = leak(serde_json::json!({
        "iss": "https://issuer.example.com", "sub": "alice",
        "aud": ["billing", "ledger"], "azp": "web-app",
        "groups": ["admin", "dev"], "org": {"team": "payments"}
    }));
    let req = with_headers(h, Some(jwt));
    let when = |key: &str, field: &str, values: &str| {
        allow(&format!("when: [{{key: \"{key}\", {field}: {values}}}]"))
    };
    run(vec![
        Case {
            name: "header value",
            docs: when("request.headers[X-Tenant]", "values", "[acme]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "header prefix",
            docs: when("request.headers[x-tenant]", "values", "[\"ac*\"]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "header * = present, even empty",
            docs: when("request.headers[x-empty]", "values", "[\"*\"]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "header absent",
            docs: when("request.headers[x-missing]", "values", "[\"*\"]"),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "header notValues, absent header",
            docs: when("request.headers[x-missing]", "notValues", "[acme]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "source.ip",
            docs: when("source.ip", "values", "[10.0.0.0/8]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "remote.ip",
            docs: when("remote.ip", "notValues", "[10.0.0.5]"),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "source.namespace",
            docs: when("source.namespace", "values", "[payments]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "source.principal",
            docs: when("source.principal", "values", "[\"*/sa/checkout-service\"]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "source.serviceAccount",
            docs: when(
                "source.serviceAccount",
                "values",
                "[payments/checkout-service]",
            ),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "source.trustDomain",
            docs: when("source.trustDomain", "values", "[cluster.local]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "destination.port",
            docs: when("destination.port", "values", "[\"8080\"]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "destination.ip absent",
            docs: when("destination.ip", "values", "[10.0.0.1]"),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "destination.ip",
            docs: when("destination.ip", "values", "[10.1.0.0/16]"),
            request: Request {
                destination_ip: Some(ip("10.1.2.3")),
                ..req
            },
            want: "permit:payments/p#0",
        },
        Case {
            name: "connection.sni",
            docs: when("connection.sni", "values", "[\"*.svc\"]"),
            request: Request {
                sni: Some("billing.svc"),
                ..req
            },
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.principal iss/sub",
            docs: when(
                "request.auth.principal",
                "values",
                "[\"https://issuer.example.com/alice\"]",
            ),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.principal iss/*",
            docs: when(
                "request.auth.principal",
                "values",
                "[\"https://issuer.example.com/*\"]",
            ),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.principal */sub",
            docs: when("request.auth.principal", "values", "[\"*/alice\"]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.principal wrong sub",
            docs: when(
                "request.auth.principal",
                "values",
                "[\"https://issuer.example.com/bob\"]",
            ),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "request.auth.audiences list claim",
            docs: when("request.auth.audiences", "values", "[ledger]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.presenter",
            docs: when("request.auth.presenter", "values", "[web-app]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.claims list",
            docs: when("request.auth.claims[groups]", "values", "[admin]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "request.auth.claims nested",
            docs: when("request.auth.claims[org][team]", "values", "[payments]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "claims without a JWT never match",
            docs: when("request.auth.claims[groups]", "values", "[admin]"),
            request: with_headers(h, None),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "requestPrincipals *: any JWT",
            docs: allow("from: [{source: {requestPrincipals: [\"*\"]}}]"),
            request: req,
            want: "permit:payments/p#0",
        },
        Case {
            name: "requestPrincipals *: no JWT",
            docs: allow("from: [{source: {requestPrincipals: [\"*\"]}}]"),
            request: with_headers(h, None),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "notRequestPrincipals *: no JWT",
            docs: allow("from: [{source: {notRequestPrincipals: [\"*\"]}}]"),
            request: with_headers(h, None),
            want: "permit:payments/p#0",
        },
        Case {
            name: "all when conditions are ANDed",
            docs: allow(
                "when: [{key: source.namespace, values: [payments]}, {key: destination.port, values: [\"1\"]}]",
            ),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "experimental keys cannot be evaluated: ALLOW rule never matches",
            docs: when(
                "experimental.envoy.filters.network.mysql_proxy[db.table]",
                "values",
                "[\"[update]\"]",
            ),
            request: req,
            want: "deny:no-allow-matched",
        },
        Case {
            name: "experimental keys: DENY drops the condition (denies more)",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- when: [{key: \"experimental.envoy.filters.a[b]\", values: [x]}]",
            )],
            request: req,
            want: "deny:payments/d#0",
        },
    ]);
}

#[test]
fn tcp_asymmetry() {
    run(vec![
        Case {
            name: "ALLOW rule with methods is dropped on TCP",
            docs: allow("to: [{operation: {methods: [GET]}}]"),
            request: tcp(Some(CHECKOUT)),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "ALLOW rule with notPaths is dropped on TCP too",
            docs: allow("to: [{operation: {notPaths: [/admin]}}]"),
            request: tcp(Some(CHECKOUT)),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "ALLOW rule with only L4 fields matches TCP",
            docs: allow(
                "from: [{source: {namespaces: [payments]}}]\n  to: [{operation: {ports: [\"8080\"]}}]",
            ),
            request: tcp(Some(CHECKOUT)),
            want: "permit:payments/p#0",
        },
        Case {
            name: "ALLOW rule with a header condition is dropped on TCP",
            docs: allow(
                "from: [{source: {namespaces: [payments]}}]\n  when: [{key: \"request.headers[x]\", values: [y]}]",
            ),
            request: tcp(Some(CHECKOUT)),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "ALLOW rule with requestPrincipals is dropped on TCP",
            docs: allow("from: [{source: {requestPrincipals: [\"*\"], namespaces: [payments]}}]"),
            request: tcp(Some(CHECKOUT)),
            want: "deny:no-allow-matched",
        },
        Case {
            name: "ALLOW: only the HTTP rule is dropped, the other rule still matches",
            docs: vec![ap(
                "payments",
                "p",
                "rules:\n- to: [{operation: {methods: [GET]}}]\n- to: [{operation: {ports: [\"8080\"]}}]",
            )],
            request: tcp(None),
            want: "permit:payments/p#1",
        },
        Case {
            name: "DENY with methods denies all TCP on the port",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- to: [{operation: {methods: [DELETE]}}]",
            )],
            request: tcp(Some(CHECKOUT)),
            want: "deny:payments/d#0",
        },
        Case {
            name: "DENY keeps its L4 fields on TCP",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- from: [{source: {namespaces: [web]}}]\n  to: [{operation: {methods: [DELETE]}}]",
            )],
            request: tcp(Some(CHECKOUT)),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "DENY keeps its L4 fields on TCP (matching peer)",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- from: [{source: {namespaces: [web]}}]\n  to: [{operation: {methods: [DELETE]}}]",
            )],
            request: tcp(Some(FRONTEND)),
            want: "deny:payments/d#0",
        },
        Case {
            name: "DENY drops HTTP-only when conditions on TCP",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- when: [{key: \"request.auth.claims[groups]\", notValues: [admin]}]",
            )],
            request: tcp(None),
            want: "deny:payments/d#0",
        },
        Case {
            name: "the same DENY on HTTP evaluates the method",
            docs: vec![ap(
                "payments",
                "d",
                "action: DENY\nrules:\n- to: [{operation: {methods: [DELETE]}}]",
            )],
            request: get(Some(CHECKOUT), "/"),
            want: "permit:no-allow-policy",
        },
        Case {
            name: "CUSTOM drops HTTP-only fields on TCP (fail closed)",
            docs: vec![ap(
                "payments",
                "c",
                "action: CUSTOM\nprovider: {name: ext}\nrules:\n- to: [{operation: {paths: [/admin]}}]",
            )],
            request: tcp(None),
            want: "custom:payments/c#0:ext",
        },
    ]);
}
