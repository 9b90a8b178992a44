//! The Kubernetes envelope shared by every resource, and the Istio attachment types
//! (`istio.type.v1beta1.WorkloadSelector`, `PolicyTargetReference`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of a Kubernetes object. Unknown fields are errors (kubectl strict decoding).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Object name (DNS-1123 subdomain).
    #[serde(default)]
    pub name: String,
    /// Prefix for a server-generated name; accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace (DNS-1123 label); absent means "the current namespace" at apply time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (e.g. `istio.io/dry-run: "true"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Server-populated, preserved for `get -o yaml` round trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// RFC 3339 timestamp; PeerAuthentication conflicts are resolved oldest-first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Grace period for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Opaque server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Server-assigned UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Deprecated link to the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    /// Finalizers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Owner references, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<serde_json::Value>,
    /// Server-side-apply bookkeeping, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<serde_json::Value>,
}

/// A top-level object: `apiVersion`, `kind`, `metadata`, `spec`. `status` is accepted and
/// dropped (it is written by controllers, never by users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    /// As written (`security.istio.io/v1` or `v1beta1`); kept for round trips.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The kind-specific body; absent means `{}`.
    #[serde(default)]
    pub spec: S,
    #[serde(default, skip_serializing)]
    pub(crate) status: Ignored,
}

impl<S> Object<S> {
    /// Builds an object (status empty).
    pub fn new(api_version: &str, kind: &str, metadata: ObjectMeta, spec: S) -> Self {
        Object {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            metadata,
            spec,
            status: Ignored,
        }
    }
}

/// Anything, discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

/// `selector:` — the workloads a policy applies to, by pod labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// All labels must match. Empty means "every workload" (upstream warns).
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `targetRef:` / `targetRefs:` — attach a policy to a Gateway, Service, ServiceEntry…
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// API group (`gateway.networking.k8s.io`, `""` for core).
    #[serde(default)]
    pub group: String,
    /// Kind (`Gateway`, `Service`, `ServiceEntry`, `GatewayClass`).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace; must be the policy's own when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// Spec of a core `v1` `Namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Finalizers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}
