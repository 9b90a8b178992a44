//! `PeerAuthentication` (`security.istio.io/v1`, `v1beta1`): inbound mTLS mode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::WorkloadSelector;

/// Spec of a `PeerAuthentication`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    /// Workloads this applies to; absent = the whole namespace (or mesh in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Mode for all ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<Mtls>,
    /// Per-port overrides, keyed by workload (container) port. Needs a selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_level_mtls: Option<BTreeMap<u32, Mtls>>,
}

/// `mtls:` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mtls {
    /// The mode; absent = `UNSET`.
    #[serde(default)]
    pub mode: MtlsMode,
}

/// Inbound mTLS mode, spelled as Istio spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MtlsMode {
    /// Inherit from the parent level (PERMISSIVE if none).
    #[default]
    #[serde(rename = "UNSET")]
    Unset,
    /// Plaintext only.
    #[serde(rename = "DISABLE")]
    Disable,
    /// mTLS or plaintext.
    #[serde(rename = "PERMISSIVE")]
    Permissive,
    /// mTLS with a client certificate required.
    #[serde(rename = "STRICT")]
    Strict,
}
