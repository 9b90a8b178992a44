//! `ServiceEntry` (`networking.istio.io/{v1,v1beta1,v1alpha3}`): adds a service (external, or
//! internal but outside Kubernetes) to the mesh's registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload_entry::WorkloadEntrySpec;

/// Spec of a `ServiceEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntrySpec {
    /// Hosts (DNS names, `*.` wildcard prefix allowed) of the service. Required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh; default `MESH_EXTERNAL`.
    #[serde(default)]
    pub location: Location,
    /// How endpoint addresses are found; default `NONE`.
    #[serde(default)]
    pub resolution: Resolution,
    /// Static endpoints (exclusive with `workloadSelector`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Pods/WorkloadEntries in this namespace backing the service (exclusive with `endpoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<ServiceEntryWorkloadSelector>,
    /// Namespaces that see this service: `.` (own), `*` (all), `~` (none) or names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// SANs the server certificate must carry (overridden by a DestinationRule's TLS SANs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// One port of a `ServiceEntry`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Port number, 1..65535.
    #[serde(default)]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TCP`, `TLS`, `MONGO`…, any case; empty = sniffed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Port name (DNS-1123 label), unique within the entry. Required.
    #[serde(default)]
    pub name: String,
    /// Port on the endpoints; default `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `ServiceEntry.workloadSelector` — note `labels`, not `matchLabels` as in security kinds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntryWorkloadSelector {
    /// All labels must match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Whether the service is part of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Location {
    /// Outside the mesh: no mesh mTLS towards it.
    #[default]
    #[serde(rename = "MESH_EXTERNAL")]
    MeshExternal,
    /// Part of the mesh (e.g. VMs with sidecars): mesh mTLS applies.
    #[serde(rename = "MESH_INTERNAL")]
    MeshInternal,
}

/// How the proxy finds endpoint addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Resolution {
    /// Forward to the original destination IP.
    #[default]
    #[serde(rename = "NONE")]
    None,
    /// Use the addresses in `endpoints` (or selected workloads).
    #[serde(rename = "STATIC")]
    Static,
    /// Resolve `hosts` (or endpoint addresses) through DNS.
    #[serde(rename = "DNS")]
    Dns,
    /// DNS, but connect to the first address returned only.
    #[serde(rename = "DNS_ROUND_ROBIN")]
    DnsRoundRobin,
    /// Resolve the name from the request (Host/SNI) matching a wildcard host.
    #[serde(rename = "DYNAMIC_DNS")]
    DynamicDns,
}

impl Resolution {
    /// Spelling as in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}
