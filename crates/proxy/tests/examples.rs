//! The proxy configurations shipped in examples/ parse and say what the README says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use sigil_proxy::config::ProxyConfig;

#[test]
fn payments_proxy_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments/proxies");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let cfg = ProxyConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.workload.namespace, "payments");
        let id = cfg.workload.spiffe_id.clone().unwrap();
        assert!(id.ends_with(&format!("/sa/{}", cfg.workload.name)), "{id}");
        names.push(cfg.workload.name.clone());
        if cfg.workload.name == "billing-service" {
            let ports: Vec<u16> = cfg.inbound.iter().map(|i| i.port).collect();
            assert_eq!(ports, [8080, 9090]);
        } else {
            assert_eq!(
                cfg.outbound[0].host,
                "billing-service.payments.svc.cluster.local"
            );
        }
    }
    names.sort();
    assert_eq!(names, ["billing-service", "checkout-service", "frontend"]);
}
