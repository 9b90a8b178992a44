//! Builders for the analyzer's unit tests: YAML in, findings out.

use super::*;

pub(crate) struct Fixture {
    pub resources: Vec<Located>,
    pub workloads: Vec<KnownWorkload>,
    pub entries: Option<Vec<RegisteredEntry>>,
    pub ca_not_after: Option<i64>,
    pub now: i64,
    pub mesh: MeshContext,
}

impl Fixture {
    pub fn new(yaml: &str) -> Self {
        let resources = match parse_located("test.yaml", yaml) {
            Ok(r) => r,
            Err(e) => panic!("fixture does not parse: {e:?}"),
        };
        Fixture {
            resources,
            workloads: Vec::new(),
            entries: None,
            ca_not_after: None,
            now: 1_000_000,
            mesh: MeshContext::default(),
        }
    }

    /// A workload with a proxy, SPIFFE ID `spiffe://cluster.local/ns/<ns>/sa/<name>`.
    pub fn workload(mut self, ns: &str, name: &str, labels: &[(&str, &str)]) -> Self {
        let mut workload = Workload::new(ns, labels.iter().copied());
        workload.spiffe_id = Some(format!("spiffe://cluster.local/ns/{ns}/sa/{name}"));
        self.workloads.push(KnownWorkload {
            name: name.to_owned(),
            workload,
            ports: Vec::new(),
            proxy: Some(true),
            outbound: Vec::new(),
            origin: format!("proxy config {name}.yaml"),
        });
        self
    }

    fn last(&mut self) -> &mut KnownWorkload {
        match self.workloads.last_mut() {
            Some(w) => w,
            None => panic!("add a workload first"),
        }
    }

    /// The last workload serves `port` with `protocol`.
    pub fn port(mut self, port: u16, protocol: Option<Protocol>) -> Self {
        self.last().ports.push(WorkloadPort { port, protocol });
        self
    }

    /// The last workload runs without a proxy.
    pub fn without_proxy(mut self) -> Self {
        self.last().proxy = Some(false);
        self
    }

    /// The last workload's proxy calls `host:port`.
    pub fn calls(mut self, host: &str, port: u16) -> Self {
        self.last().outbound.push(Upstream {
            host: host.to_owned(),
            port,
            subset: None,
        });
        self
    }

    /// Registered entries with these SPIFFE IDs and TTL.
    pub fn entries(mut self, ids: &[(&str, u64)]) -> Self {
        self.entries = Some(
            ids.iter()
                .enumerate()
                .map(|(i, (id, ttl))| RegisteredEntry {
                    id: format!("entry-{i}"),
                    spiffe_id: (*id).to_owned(),
                    x509_svid_ttl: *ttl,
                })
                .collect(),
        );
        self
    }

    pub fn ca_not_after(mut self, t: i64) -> Self {
        self.ca_not_after = Some(t);
        self
    }

    pub fn run(&self) -> Vec<Finding> {
        analyze(&Input {
            resources: &self.resources,
            workloads: &self.workloads,
            entries: self.entries.as_deref(),
            ca_not_after: self.ca_not_after,
            now: self.now,
            mesh: &self.mesh,
            trust_domain: "cluster.local",
        })
    }

    /// The findings with `code`.
    pub fn with_code(&self, code: &str) -> Vec<Finding> {
        self.run().into_iter().filter(|f| f.code == code).collect()
    }
}
