//! Istio security policy vocabulary for Sigil: decode users' Istio YAML verbatim and
//! validate it the way the Istio webhook does. Pure: no IO, no async.
//!
//! Entry point: [`parse_documents`] turns a multi-document YAML file into validated
//! [`Resource`]s, or returns every [`ParseError`] (file, document, line, column, field path,
//! and what to do).

mod authz;
mod de;
mod error;
mod meta;
mod node;
mod peer_authn;
mod request_authn;
mod resource;
mod validate;

pub use authz::{
    Action, AuthorizationPolicySpec, Condition, ExtensionProvider, Operation, Rule, RuleFrom,
    RuleTo, Source,
};
pub use error::{ErrorKind, ParseError};
pub use meta::{NamespaceSpec, Object, ObjectMeta, PolicyTargetReference, WorkloadSelector};
pub use node::Pos;
pub use peer_authn::{Mtls, MtlsMode, PeerAuthenticationSpec};
pub use request_authn::{ClaimToHeader, JwtHeader, JwtRule, RequestAuthenticationSpec};
pub use resource::{Resource, parse_documents, supported_kinds};
pub use validate::{Violation, is_dns1123_label, is_dns1123_subdomain, validate};
