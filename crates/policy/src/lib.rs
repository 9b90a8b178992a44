//! Istio and cert-manager resources for Sigil: decode users' YAML verbatim and
//! validate it the way the Istio webhook does. Pure: no IO, no async.
//!
//! Entry point: [`parse_documents`] turns a multi-document YAML file into validated
//! [`Resource`]s, or returns every [`ParseError`] (file, document, line, column, field path,
//! and what to do).

pub mod analyze;
mod authz;
mod certmanager;
mod de;
mod error;
mod limits;
mod meta;
mod networking;
mod node;
mod peer_authn;
mod request_authn;
mod resource;
mod secret;
mod validate;
mod validate_certmanager;
mod validate_networking;
mod view;
mod view_destination;

pub use authz::{
    Action, AuthorizationPolicySpec, Condition, ExtensionProvider, Operation, Rule, RuleFrom,
    RuleTo, Source,
};
pub use certmanager::{
    AdditionalOutputFormat, CERT_MANAGER_GROUP, CaIssuer, CertificateSpec, GoDuration, IssuerRef,
    IssuerSpec, IssuerType, JksKeystore, KeyUsage, Keystores, NameConstraintItem, NameConstraints,
    OtherName, OutputFormatType, Pkcs12Keystore, Pkcs12Profile, PrivateKey, PrivateKeyAlgorithm,
    PrivateKeyEncoding, Renewal, RenewalPolicy, RenewalWindow, RotationPolicy, SecretKeySelector,
    SecretTemplate, SelfSignedIssuer, SigilIssuer, SignatureAlgorithm, X509Subject,
};
pub use error::{ErrorKind, ParseError};
pub use limits::ParseLimits;
pub use meta::{NamespaceSpec, Object, ObjectMeta, PolicyTargetReference, WorkloadSelector};
pub use networking::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, CookieAttribute,
    DestinationRuleSpec, Distribute, Failover, H2UpgradePolicy, HttpCookie, HttpSettings,
    LoadBalancerSettings, LocalityLoadBalancerSetting, Location, MagLev, OutlierDetection,
    PortSelector, PortTrafficPolicy, ProxyProtocol, ProxyProtocolVersion, Resolution, RetryBudget,
    RingHash, ServiceEntrySpec, ServiceEntryWorkloadSelector, ServicePort, SimpleLb, Subset,
    TcpKeepalive, TcpSettings, TlsMode, TrafficPolicy, TunnelSettings, WarmupConfiguration,
    WorkloadEntrySpec,
};
pub use node::Pos;
pub use peer_authn::{Mtls, MtlsMode, PeerAuthenticationSpec};
pub use request_authn::{ClaimToHeader, JwtHeader, JwtRule, RequestAuthenticationSpec};
pub use resource::{Resource, parse_documents, parse_documents_with_limits, supported_kinds};
pub use secret::{
    MAX_SECRET_BYTES, REDACTED_PREFIX, SECRET_TYPE_OPAQUE, SECRET_TYPE_TLS, Secret, is_secret_key,
};
pub use validate::{Violation, is_dns1123_label, is_dns1123_subdomain, validate};
pub use view::{
    Cidr, Claims, CompiledAuthz, CompiledMtls, CompiledPolicy, DRY_RUN_ANNOTATION, Decision,
    Denial, Explanation, Headers, HttpRequest, IgnoredPolicy, IgnoredReason, Level, MeshContext,
    Mismatch, MtlsReport, NoHeaders, NotAppliedReason, Origin, PathTemplate, Permit, PolicyId,
    PolicyNotApplied, PortMtls, Protocol, Request, RuleRef, StringMatcher, Verdict, Workload,
    authorization_policies, authorize, explain, peer_authentications,
};
pub use view_destination::{
    DEFAULT_CLUSTER_DOMAIN, DEFAULT_ROOT_NAMESPACE, DestinationQuery, DestinationRuleRef,
    DestinationTls, LookupStep, TlsLevel, destination_tls,
};
