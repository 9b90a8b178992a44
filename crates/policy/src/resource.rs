//! The document envelope: which `apiVersion`/`kind` pairs are understood, and
//! [`parse_documents`] for multi-document YAML.

use serde::Serialize;

use crate::authz::AuthorizationPolicySpec;
use crate::certmanager::{CertificateSpec, IssuerSpec};
use crate::de::{DeError, from_node};
use crate::error::{ErrorKind, ParseError};
use crate::limits::{ParseLimits, check_size, limit_error, yaml_options};
use crate::meta::{NamespaceSpec, Object, ObjectMeta};
use crate::networking::{DestinationRuleSpec, ServiceEntrySpec, WorkloadEntrySpec};
use crate::node::{Node, Pos, Value};
use crate::peer_authn::PeerAuthenticationSpec;
use crate::request_authn::RequestAuthenticationSpec;
use crate::secret::Secret;
use crate::validate::{Violation, validate};

/// One decoded, validated document.
///
/// Serializes back to the Kubernetes shape (`apiVersion`, `kind`, `metadata`, `spec`), so
/// `parse_documents(serde_json::to_string(r))` gives the same value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Resource {
    /// `security.istio.io/{v1,v1beta1}` `PeerAuthentication`.
    PeerAuthentication(Object<PeerAuthenticationSpec>),
    /// `security.istio.io/{v1,v1beta1}` `AuthorizationPolicy`.
    AuthorizationPolicy(Object<AuthorizationPolicySpec>),
    /// `security.istio.io/{v1,v1beta1}` `RequestAuthentication`.
    RequestAuthentication(Object<RequestAuthenticationSpec>),
    /// Core `v1` `Namespace`.
    Namespace(Object<NamespaceSpec>),
    /// `networking.istio.io/{v1,v1beta1,v1alpha3}` `DestinationRule`.
    DestinationRule(Object<DestinationRuleSpec>),
    /// `networking.istio.io/{v1,v1beta1,v1alpha3}` `ServiceEntry`.
    ServiceEntry(Object<ServiceEntrySpec>),
    /// `networking.istio.io/{v1,v1beta1,v1alpha3}` `WorkloadEntry`.
    WorkloadEntry(Object<WorkloadEntrySpec>),
    /// `cert-manager.io/v1` `Certificate`.
    Certificate(Object<CertificateSpec>),
    /// `cert-manager.io/v1` `Issuer` (namespaced).
    Issuer(Object<IssuerSpec>),
    /// `cert-manager.io/v1` `ClusterIssuer` (cluster-scoped).
    ClusterIssuer(Object<IssuerSpec>),
    /// Core `v1` `Secret` (for issuers and issued certificates).
    Secret(Secret),
}

impl Resource {
    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Resource::PeerAuthentication(o) => &o.metadata,
            Resource::AuthorizationPolicy(o) => &o.metadata,
            Resource::RequestAuthentication(o) => &o.metadata,
            Resource::Namespace(o) => &o.metadata,
            Resource::DestinationRule(o) => &o.metadata,
            Resource::ServiceEntry(o) => &o.metadata,
            Resource::WorkloadEntry(o) => &o.metadata,
            Resource::Certificate(o) => &o.metadata,
            Resource::Issuer(o) | Resource::ClusterIssuer(o) => &o.metadata,
            Resource::Secret(o) => &o.metadata,
        }
    }

    /// The kind, e.g. `AuthorizationPolicy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::PeerAuthentication(_) => "PeerAuthentication",
            Resource::AuthorizationPolicy(_) => "AuthorizationPolicy",
            Resource::RequestAuthentication(_) => "RequestAuthentication",
            Resource::Namespace(_) => "Namespace",
            Resource::DestinationRule(_) => "DestinationRule",
            Resource::ServiceEntry(_) => "ServiceEntry",
            Resource::WorkloadEntry(_) => "WorkloadEntry",
            Resource::Certificate(_) => "Certificate",
            Resource::Issuer(_) => "Issuer",
            Resource::ClusterIssuer(_) => "ClusterIssuer",
            Resource::Secret(_) => "Secret",
        }
    }

    /// The `apiVersion` as written.
    pub fn api_version(&self) -> &str {
        match self {
            Resource::PeerAuthentication(o) => &o.api_version,
            Resource::AuthorizationPolicy(o) => &o.api_version,
            Resource::RequestAuthentication(o) => &o.api_version,
            Resource::Namespace(o) => &o.api_version,
            Resource::DestinationRule(o) => &o.api_version,
            Resource::ServiceEntry(o) => &o.api_version,
            Resource::WorkloadEntry(o) => &o.api_version,
            Resource::Certificate(o) => &o.api_version,
            Resource::Issuer(o) | Resource::ClusterIssuer(o) => &o.api_version,
            Resource::Secret(o) => &o.api_version,
        }
    }
}

type Decode = fn(&Node) -> Result<Resource, DeError>;

/// One supported kind. New kinds (DestinationRule, ServiceEntry, cert-manager types) are
/// added by appending a row here and a variant to [`Resource`].
struct KindEntry {
    api_versions: &'static [&'static str],
    kind: &'static str,
    decode: Decode,
}

const ISTIO_SECURITY: &[&str] = &["security.istio.io/v1", "security.istio.io/v1beta1"];
const ISTIO_NETWORKING: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];
const CERT_MANAGER: &[&str] = &["cert-manager.io/v1"];

const KINDS: &[KindEntry] = &[
    KindEntry {
        api_versions: ISTIO_SECURITY,
        kind: "PeerAuthentication",
        decode: |n| from_node(n, "").map(Resource::PeerAuthentication),
    },
    KindEntry {
        api_versions: ISTIO_SECURITY,
        kind: "AuthorizationPolicy",
        decode: |n| from_node(n, "").map(Resource::AuthorizationPolicy),
    },
    KindEntry {
        api_versions: ISTIO_SECURITY,
        kind: "RequestAuthentication",
        decode: |n| from_node(n, "").map(Resource::RequestAuthentication),
    },
    KindEntry {
        api_versions: &["v1"],
        kind: "Namespace",
        decode: |n| from_node(n, "").map(Resource::Namespace),
    },
    KindEntry {
        api_versions: ISTIO_NETWORKING,
        kind: "DestinationRule",
        decode: |n| from_node(n, "").map(Resource::DestinationRule),
    },
    KindEntry {
        api_versions: ISTIO_NETWORKING,
        kind: "ServiceEntry",
        decode: |n| from_node(n, "").map(Resource::ServiceEntry),
    },
    KindEntry {
        api_versions: ISTIO_NETWORKING,
        kind: "WorkloadEntry",
        decode: |n| from_node(n, "").map(Resource::WorkloadEntry),
    },
    KindEntry {
        api_versions: CERT_MANAGER,
        kind: "Certificate",
        decode: |n| from_node(n, "").map(Resource::Certificate),
    },
    KindEntry {
        api_versions: CERT_MANAGER,
        kind: "Issuer",
        decode: |n| from_node(n, "").map(Resource::Issuer),
    },
    KindEntry {
        api_versions: CERT_MANAGER,
        kind: "ClusterIssuer",
        decode: |n| from_node(n, "").map(Resource::ClusterIssuer),
    },
    KindEntry {
        api_versions: &["v1"],
        kind: "Secret",
        decode: |n| from_node(n, "").map(Resource::Secret),
    },
];

/// `apiVersion kind` pairs accepted, for error messages.
pub fn supported_kinds() -> Vec<(String, String)> {
    KINDS
        .iter()
        .flat_map(|k| {
            k.api_versions
                .iter()
                .map(|v| ((*v).to_owned(), k.kind.to_owned()))
        })
        .collect()
}

pub(crate) fn supported_kinds_text() -> String {
    KINDS
        .iter()
        .map(|k| format!("{} ({})", k.kind, k.api_versions.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a multi-document YAML file into validated resources.
///
/// All-or-nothing: if any document has a problem, every problem found (in every document)
/// is returned and no resource is. Each error names `file_name`, the 0-based document index,
/// the line and column, and the field path. Empty documents are skipped, like kubectl.
/// Hostile input is bounded by [`ParseLimits::default`]; see [`parse_documents_with_limits`].
pub fn parse_documents(file_name: &str, text: &str) -> Result<Vec<Resource>, Vec<ParseError>> {
    parse_documents_with_limits(file_name, text, &ParseLimits::default())
}

/// [`parse_documents`] with explicit [`ParseLimits`]. Input over `max_bytes` is refused
/// before parsing; depth, document, node and alias-expansion limits stop the parser early.
pub fn parse_documents_with_limits(
    file_name: &str,
    text: &str,
    limits: &ParseLimits,
) -> Result<Vec<Resource>, Vec<ParseError>> {
    if let Some((pos, kind)) = check_size(text, limits) {
        return Err(vec![ParseError::new(
            file_name,
            0,
            pos,
            String::new(),
            kind,
        )]);
    }
    let nodes: Vec<Node> =
        match serde_saphyr::from_multiple_with_options(text, yaml_options(limits)) {
            Ok(nodes) => nodes,
            Err(e) => return Err(vec![yaml_error(file_name, text, &e, limits)]),
        };
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    for node in &nodes {
        if matches!(node.value, Value::Null) {
            continue;
        }
        let document = document_index(text, node.pos.line);
        match decode_document(node) {
            Ok(resource) => {
                let violations = validate(&resource);
                if violations.is_empty() {
                    resources.push(resource);
                }
                for Violation { path, kind } in violations {
                    let pos = node.locate(&path);
                    errors.push(ParseError::new(file_name, document, pos, path, kind));
                }
            }
            Err(e) => {
                let (path, pos) = e.at.unwrap_or_else(|| (String::new(), node.pos));
                errors.push(ParseError::new(file_name, document, pos, path, e.kind));
            }
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

fn decode_document(node: &Node) -> Result<Resource, DeError> {
    let Value::Map(_) = node.value else {
        return Err(DeError {
            kind: ErrorKind::WrongType {
                expected: "a Kubernetes object (a mapping with apiVersion, kind, metadata, spec)"
                    .into(),
                found: node.value.describe(),
            },
            at: Some((String::new(), node.pos)),
        });
    };
    let field = |name: &str| -> Result<(String, Pos), DeError> {
        match node.get(name) {
            Some(Node {
                value: Value::Str(s),
                pos,
            }) => Ok((s.clone(), *pos)),
            Some(other) => Err(DeError {
                kind: ErrorKind::WrongType {
                    expected: "a string".into(),
                    found: other.value.describe(),
                },
                at: Some((name.to_owned(), other.pos)),
            }),
            None => Err(DeError {
                kind: ErrorKind::MissingField {
                    field: name.to_owned(),
                },
                at: Some((String::new(), node.pos)),
            }),
        }
    };
    let (api_version, api_pos) = field("apiVersion")?;
    let (kind, kind_pos) = field("kind")?;
    let entry = KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_versions.contains(&api_version.as_str()));
    match entry {
        Some(entry) => (entry.decode)(node),
        None => {
            let known_kind = KINDS.iter().any(|k| k.kind == kind);
            let (path, pos) = if known_kind {
                ("apiVersion", api_pos)
            } else {
                ("kind", kind_pos)
            };
            Err(DeError {
                kind: ErrorKind::UnsupportedKind { api_version, kind },
                at: Some((path.to_owned(), pos)),
            })
        }
    }
}

fn yaml_error(
    file_name: &str,
    text: &str,
    e: &serde_saphyr::Error,
    limits: &ParseLimits,
) -> ParseError {
    let pos = e
        .location()
        .map(|l| Pos {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or_default();
    let kind = limit_error(e, limits).unwrap_or_else(|| match e.without_snippet() {
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => ErrorKind::DuplicateKey {
            key: key.clone().unwrap_or_default(),
        },
        serde_saphyr::Error::InvalidBooleanStrict { .. } => ErrorKind::NotBoolean,
        other => ErrorKind::Syntax {
            message: first_line(&other.to_string()),
        },
    });
    let path = match kind {
        ErrorKind::DuplicateKey { .. } => duplicate_key_path(text, pos, limits).unwrap_or_default(),
        _ => String::new(),
    };
    ParseError::new(file_name, document_index(text, pos.line), pos, path, kind)
}

/// Re-reads the stream keeping repeated keys, to name the field path of the duplicate.
fn duplicate_key_path(text: &str, pos: Pos, limits: &ParseLimits) -> Option<String> {
    let mut options = yaml_options(limits);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    let nodes: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options).ok()?;
    nodes.iter().find_map(|n| n.path_of_key(pos, ""))
}

/// The message without the snippet and without the trailing position (we report it apart).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    match line.rfind(" at line ") {
        Some(i) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// 0-based index of the document containing 1-based `line`: every `---` starts a new
/// document (empty ones count), except a leading `---` with only comments before it.
fn document_index(text: &str, line: u64) -> usize {
    let mut index = 0;
    let mut started = false;
    for (i, l) in text.lines().enumerate() {
        if i as u64 + 1 >= line.max(1) {
            break;
        }
        if l.starts_with("---") {
            if started {
                index += 1;
            }
            started = true;
        } else {
            let t = l.trim();
            if !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
                started = true;
            }
        }
    }
    index
}
