//! `WorkloadEntry` (`networking.istio.io/{v1,v1beta1,v1alpha3}`): a non-Kubernetes workload
//! (VM, bare metal) as a mesh endpoint. The same shape is a `ServiceEntry` endpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Spec of a `WorkloadEntry`, and one `ServiceEntry.endpoints[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntrySpec {
    /// IP address, DNS name (DNS resolution only) or `unix:///path` socket, without port.
    /// May be empty only when `network` is set (reached through that network's gateway).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Service port name → this endpoint's port. Not allowed with `unix://` addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Endpoint labels (matched by workload selectors and subsets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// L3 network the endpoint lives in (multi-network meshes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// Failure domain, `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
    /// Load-balancing weight; higher gets more traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Service account of the workload's sidecar, in the entry's namespace; becomes the SAN
    /// (SPIFFE ID) expected from this endpoint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
}
