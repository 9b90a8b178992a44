//! `cert-manager.io/v1` `Issuer` (namespaced) and `ClusterIssuer` (cluster-scoped): both
//! carry an [`IssuerSpec`] with exactly one issuer type.
//!
//! Sigil signs for `selfSigned`, `ca` and its own `sigil` type. `acme`, `vault` and
//! `venafi` are kept verbatim as JSON values so a cluster's issuers decode and round-trip,
//! but Sigil does not act on them.

use serde::{Deserialize, Serialize};

/// Spec of an `Issuer` or `ClusterIssuer`. Exactly one field must be set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerSpec {
    /// ACME (e.g. Let's Encrypt), kept opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<serde_json::Value>,
    /// Sign with a CA key pair stored in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// HashiCorp Vault PKI, kept opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<serde_json::Value>,
    /// Each certificate signs itself with its own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// Venafi / CyberArk, kept opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venafi: Option<serde_json::Value>,
    /// Sigil extension (not part of upstream cert-manager): sign with the Sigil server's
    /// own CA, so certificates chain to the mesh trust bundle. Written `sigil: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigil: Option<SigilIssuer>,
}

/// Which issuer type an [`IssuerSpec`] configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssuerType {
    /// `acme`.
    Acme,
    /// `ca`.
    Ca,
    /// `vault`.
    Vault,
    /// `selfSigned`.
    SelfSigned,
    /// `venafi`.
    Venafi,
    /// `sigil`.
    Sigil,
}

impl IssuerType {
    /// Every issuer type, in spec order.
    pub const ALL: [IssuerType; 6] = [
        IssuerType::Acme,
        IssuerType::Ca,
        IssuerType::Vault,
        IssuerType::SelfSigned,
        IssuerType::Venafi,
        IssuerType::Sigil,
    ];

    /// The field name in YAML.
    pub fn field(self) -> &'static str {
        match self {
            IssuerType::Acme => "acme",
            IssuerType::Ca => "ca",
            IssuerType::Vault => "vault",
            IssuerType::SelfSigned => "selfSigned",
            IssuerType::Venafi => "venafi",
            IssuerType::Sigil => "sigil",
        }
    }

    /// Whether Sigil can sign with this issuer type.
    pub fn supported_by_sigil(self) -> bool {
        matches!(
            self,
            IssuerType::Ca | IssuerType::SelfSigned | IssuerType::Sigil
        )
    }
}

impl IssuerSpec {
    /// The issuer types that are set (valid specs have exactly one).
    pub fn configured(&self) -> Vec<IssuerType> {
        IssuerType::ALL
            .into_iter()
            .filter(|t| match t {
                IssuerType::Acme => self.acme.is_some(),
                IssuerType::Ca => self.ca.is_some(),
                IssuerType::Vault => self.vault.is_some(),
                IssuerType::SelfSigned => self.self_signed.is_some(),
                IssuerType::Venafi => self.venafi.is_some(),
                IssuerType::Sigil => self.sigil.is_some(),
            })
            .collect()
    }

    /// The one configured issuer type; `None` unless exactly one is set.
    pub fn issuer_type(&self) -> Option<IssuerType> {
        match self.configured().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }
}

/// `ca:` — sign with the key pair in a Secret (`tls.crt`, `tls.key`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaIssuer {
    /// The Secret holding the CA (the Issuer's namespace, or cert-manager's cluster
    /// resource namespace for a ClusterIssuer). Required.
    #[serde(default)]
    pub secret_name: String,
    /// CRL distribution point URLs to put in issued certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_distribution_points: Vec<String>,
    /// Authority Information Access "CA Issuers" URLs.
    #[serde(
        rename = "issuingCertificateURLs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub issuing_certificate_urls: Vec<String>,
    /// OCSP responder URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ocsp_servers: Vec<String>,
}

/// `selfSigned:` — usually written `selfSigned: {}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfSignedIssuer {
    /// CRL distribution point URLs to put in issued certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_distribution_points: Vec<String>,
}

/// `sigil: {}` — Sigil-specific issuer type; has no settings yet (unknown fields are
/// rejected so future settings cannot be silently ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigilIssuer {}
