//! Errors: every problem is local configuration (the user's YAML), so there is one enum of
//! kinds, each with a message that says what to change.

use std::fmt;

use crate::node::Pos;

/// One problem in one document of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name given to [`crate::parse_documents`].
    pub file: String,
    /// 0-based index of the YAML document in the file (`---` separated).
    pub document: usize,
    /// 1-based line, absolute within the file; 0 when unknown.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// Field path inside the document, e.g. `spec.rules[0].from[0].source.principals`;
    /// empty for the document itself.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl ParseError {
    pub(crate) fn new(
        file: &str,
        document: usize,
        pos: Pos,
        path: String,
        kind: ErrorKind,
    ) -> Self {
        ParseError {
            file: file.to_owned(),
            document,
            line: pos.line,
            column: pos.column,
            path,
            kind,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: document {}",
            self.file, self.line, self.column, self.document
        )?;
        if !self.path.is_empty() {
            write!(f, ", field `{}`", self.path)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for ParseError {}

/// The kinds of problem, from YAML syntax through schema to webhook-style validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    // --- YAML ---
    /// The text is not valid YAML (or exceeds the parser's safety budget).
    #[error("invalid YAML: {message}")]
    Syntax { message: String },
    /// A mapping repeats a key; YAML forbids it and the last value would silently win.
    #[error("duplicate key `{key}`: each key may appear once in a mapping; merge the two entries")]
    DuplicateKey { key: String },
    /// `yes`/`no`/`on`/`off` where a boolean is expected.
    #[error(
        "not a boolean: write `true` or `false` (YAML 1.1 words like `yes`/`no` are not accepted)"
    )]
    NotBoolean,
    /// The file is larger than [`crate::ParseLimits::max_bytes`]; refused before parsing.
    #[error(
        "input is {size} bytes, over the limit of {limit} bytes for one policy file; split it into several files"
    )]
    InputTooLarge { size: usize, limit: usize },
    /// Aliases (`*name`) expand beyond the limit: a "billion laughs" alias bomb.
    #[error(
        "YAML aliases expand too much ({detail}); this looks like an alias bomb (\"billion laughs\"): write the values out instead of repeating `*alias` references"
    )]
    AliasBomb { detail: String },
    /// Mappings and lists nested deeper than [`crate::ParseLimits::max_depth`].
    #[error(
        "nesting is deeper than {limit} levels; Kubernetes objects are never this deep: check the indentation and brackets"
    )]
    TooDeep { limit: usize },
    /// More documents than [`crate::ParseLimits::max_documents`].
    #[error("more than {limit} YAML documents in one file; split it into several files")]
    TooManyDocuments { limit: usize },
    /// Another parser budget was exhausted (node count, events, scalar bytes).
    #[error("YAML is too large to process: {detail}; split the file")]
    TooComplex { detail: String },
    /// A tab used to indent; YAML forbids it.
    #[error(
        "tab character used for indentation: YAML allows only spaces there; replace the tabs with spaces"
    )]
    TabIndentation,

    // --- schema ---
    /// The document's `apiVersion`/`kind` pair is not one Sigil understands.
    #[error(
        "unsupported apiVersion/kind `{api_version}` `{kind}`; supported: {}",
        crate::resource::supported_kinds_text()
    )]
    UnsupportedKind { api_version: String, kind: String },
    /// A field that the type does not have.
    #[error("unknown field `{field}`{}; known fields: {}", suggestion_text(.suggestion), .expected.join(", "))]
    UnknownField {
        field: String,
        expected: Vec<String>,
        suggestion: Option<String>,
    },
    /// A required field is absent.
    #[error("missing required field `{field}`")]
    MissingField { field: String },
    /// A value of the wrong YAML type.
    #[error("expected {expected}, found {found}{}", quote_hint(.found, .expected))]
    WrongType { expected: String, found: String },
    /// A value of the right YAML type that the field cannot hold (e.g. `-1` as a port).
    #[error("invalid value {found}: expected {expected}")]
    InvalidValue { expected: String, found: String },
    /// An enum value that is not one of the allowed spellings.
    #[error("unknown value `{value}`{}; allowed: {}", suggestion_text(.suggestion), .allowed.join(", "))]
    UnknownEnumValue {
        value: String,
        allowed: Vec<String>,
        suggestion: Option<String>,
    },
    /// A field given twice in one mapping (reported by the decoder).
    #[error("field `{field}` is given twice; keep one")]
    DuplicateField { field: String },
    /// Other decoding problem (value out of range for the field's type, etc.).
    #[error("{message}")]
    Decode { message: String },

    // --- metadata ---
    /// `metadata.name` is not a DNS-1123 subdomain.
    #[error(
        "invalid name {value:?}: must be a DNS-1123 subdomain (lowercase letters, digits, `-` and `.`, start and end alphanumeric, at most 253 characters)"
    )]
    InvalidName { value: String },
    /// `metadata.namespace` is not a DNS-1123 label.
    #[error(
        "invalid namespace {value:?}: must be a DNS-1123 label (lowercase letters, digits and `-`, start and end alphanumeric, at most 63 characters)"
    )]
    InvalidNamespace { value: String },

    // --- policy attachment ---
    /// `selector` together with `targetRef`/`targetRefs`.
    #[error("only one of `selector`, `targetRef` or `targetRefs` may be set; remove all but one")]
    SelectorAndTargetRef,
    /// A selector label key is empty or uses a wildcard.
    #[error(
        "invalid selector label {label:?}: keys must be non-empty and wildcards (`*`) are not supported"
    )]
    InvalidSelectorLabel { label: String },

    // --- PeerAuthentication ---
    /// `portLevelMtls` on a mesh- or namespace-wide policy.
    #[error(
        "mesh/namespace PeerAuthentication cannot have `portLevelMtls`; add a `selector` with `matchLabels` to make it a workload policy"
    )]
    PortLevelMtlsWithoutSelector,
    /// `portLevelMtls: {}`.
    #[error("`portLevelMtls`, if set, must have at least one port; remove it or add a port")]
    EmptyPortLevelMtls,
    /// A port outside 1..=65535.
    #[error("port {value} is out of range: must be 1..65535")]
    PortOutOfRange { value: String },

    // --- AuthorizationPolicy ---
    /// An empty string in a list of values.
    #[error("empty string not allowed; remove it or use `*` to match any non-empty value")]
    EmptyValue,
    /// `*` in the middle of a value, or more than one `*`.
    #[error(
        "invalid pattern {value:?}: `*` is only allowed once, as the whole value, a prefix (`*abc`) or a suffix (`abc*`)"
    )]
    InvalidWildcard { value: String },
    /// Not an IP address or CIDR.
    #[error("invalid IP address or CIDR {value:?}: use e.g. `10.0.0.1` or `10.0.0.0/16`")]
    InvalidIpBlock { value: String },
    /// Not a port number.
    #[error("invalid port {value:?}: must be a number 0..65535 written as a string, e.g. \"8080\"")]
    InvalidPort { value: String },
    /// A service account entry that is not `<ns>/<sa>` or `<sa>`.
    #[error(
        "invalid service account {value:?}: use `<namespace>/<name>` or `<name>`, no wildcards"
    )]
    InvalidServiceAccount { value: String },
    /// `serviceAccounts` combined with `principals`/`namespaces`.
    #[error(
        "`serviceAccounts`/`notServiceAccounts` cannot be combined with `principals` or `namespaces` in one source; split them into separate `from` entries"
    )]
    ServiceAccountsWithPrincipals,
    /// `from: [ {} ]` or `source: {}`.
    #[error("`source` must not be empty; add at least one field or remove the `from` entry")]
    EmptySource,
    /// `to: [ {} ]` or `operation: {}`.
    #[error("`operation` must not be empty; add at least one field or remove the `to` entry")]
    EmptyOperation,
    /// `from: []` or `to: []`.
    #[error("`{field}` must not be an empty list; remove it to match anything")]
    EmptyList { field: String },
    /// A `from` entry without `source` or a `to` entry without `operation`.
    #[error("missing `{field}`")]
    MissingEntry { field: String },
    /// A path template with unsupported syntax.
    #[error(
        "invalid or unsupported path template {value:?}: only `{{*}}` and `{{**}}` are supported"
    )]
    InvalidPathTemplate { value: String },
    /// A `when` key Istio does not know.
    #[error("unknown condition key `{key}`{}; see the Istio condition list (e.g. `source.ip`, `request.headers[<name>]`)", suggestion_text(.suggestion))]
    UnknownConditionKey {
        key: String,
        suggestion: Option<String>,
    },
    /// A `when` key that upstream rejects with advice.
    #[error("condition key `{key}` is not supported: {hint}")]
    UnsupportedConditionKey { key: String, hint: String },
    /// `request.headers` etc. without `[name]`.
    #[error("bad condition key `{key}`: should have the form `{prefix}[<name>]`")]
    MalformedConditionKey { key: String, prefix: String },
    /// A condition with neither `values` nor `notValues`.
    #[error("at least one of `values` or `notValues` must be set")]
    ConditionWithoutValues,
    /// An empty condition key.
    #[error("`key` must not be empty")]
    EmptyConditionKey,
    /// CUSTOM without a provider name.
    #[error("CUSTOM action requires `provider.name`")]
    CustomWithoutProvider,
    /// `provider` on a non-CUSTOM policy.
    #[error("`provider` is only allowed with action CUSTOM, found {action}")]
    ProviderWithoutCustom { action: String },
    /// CUSTOM/DENY without rules never triggers.
    #[error(
        "{action} action without `rules` is meaningless as it will never be triggered; add an empty rule `{{}}` to trigger it for every request"
    )]
    RulesRequired { action: String },
    /// A field CUSTOM cannot evaluate.
    #[error("`{field}` is not supported with action CUSTOM")]
    NotSupportedWithCustom { field: String },

    // --- RequestAuthentication ---
    /// Both issuer and jwksUri empty.
    #[error("`issuer` or `jwksUri` must be set")]
    JwtIssuerOrJwksUri,
    /// jwksUri with an unsupported scheme.
    #[error("invalid jwksUri {value:?}: must start with `http://` or `https://`")]
    InvalidJwksUri { value: String },
    /// `jwks` is not a JSON document.
    #[error("`jwks` is not valid JSON: {message}")]
    InvalidJwks { message: String },
    /// Empty/invalid header in `fromHeaders` or `outputClaimToHeaders`.
    #[error("invalid header name {value:?}: must be a non-empty HTTP header name")]
    InvalidHeaderName { value: String },
    /// A bad duration such as `timeout: 5`.
    #[error(
        "invalid duration {value:?}: use a number with unit, e.g. `5s` or `100ms`, at least 1ms"
    )]
    InvalidDuration { value: String },

    // --- cert-manager (Certificate, Issuer, ClusterIssuer) ---
    /// A Certificate with nothing to certify.
    #[error(
        "no name to certify: set at least one of `commonName` (or a CN in `literalSubject`), `dnsNames`, `uris`, `emailAddresses`, `ipAddresses` or `otherNames`"
    )]
    NoCertificateNames,
    /// `commonName` or `subject` next to `literalSubject`.
    #[error(
        "`{field}` cannot be combined with `literalSubject`; move its values into `literalSubject` or remove `literalSubject`"
    )]
    LiteralSubjectConflict { field: String },
    /// `literalSubject` that is not an RFC 4514 distinguished name.
    #[error(
        "invalid literalSubject {value:?}: {reason}; write an RFC 4514 string such as `CN=web,O=Example,C=DE`"
    )]
    InvalidLiteralSubject { value: String, reason: String },
    /// A common name longer than X.509 allows.
    #[error(
        "common name is {length} characters long; at most 64 fit in an X.509 CN: shorten it and put the full name in `dnsNames`"
    )]
    CommonNameTooLong { length: usize },
    /// Not Go `time.ParseDuration` syntax.
    #[error(
        "invalid duration {value:?}: use Go duration syntax, numbers with unit `h`, `m` or `s`, e.g. `2160h` or `1h30m` (there is no `d` unit)"
    )]
    InvalidGoDuration { value: String },
    /// A duration below its minimum.
    #[error("`{field}` {value} is below the minimum of {minimum}; raise it")]
    DurationBelowMinimum {
        field: String,
        value: String,
        minimum: String,
    },
    /// `renewBefore` not shorter than `duration`.
    #[error(
        "renewBefore {renew_before} must be shorter than the certificate duration {duration}; lower renewBefore or raise duration"
    )]
    RenewBeforeNotShorter {
        renew_before: String,
        duration: String,
    },
    /// `renewBeforePercentage` outside (0, 100).
    #[error("renewBeforePercentage {value} is out of range: use a whole number from 1 to 99")]
    RenewBeforePercentageOutOfRange { value: i64 },
    /// `renewBeforePercentage` that gives less than the minimum renewBefore.
    #[error(
        "renewBeforePercentage {value} of duration {duration} renews {effective} before expiry, below the minimum of {minimum}; raise the percentage or the duration"
    )]
    RenewBeforePercentageTooSmall {
        value: i64,
        duration: String,
        effective: String,
        minimum: String,
    },
    /// `issuerRef.kind` not an issuer kind of the cert-manager group.
    #[error(
        "issuerRef.kind `{value}` is not a cert-manager issuer kind: use `Issuer` or `ClusterIssuer`{}",
        if *.group_missing { " (for an external issuer, also set `issuerRef.group`)" } else { "" }
    )]
    InvalidIssuerKind { value: String, group_missing: bool },
    /// A key size the algorithm does not support.
    #[error("{algorithm} key size {size} is not allowed: use {allowed}")]
    InvalidKeySize {
        algorithm: String,
        size: i64,
        allowed: String,
    },
    /// `signatureAlgorithm` for another key algorithm.
    #[error(
        "signatureAlgorithm {signature} needs an {needs} key but the key algorithm is {key}; set `privateKey.algorithm: {needs}` or use one of: {allowed}"
    )]
    SignatureAlgorithmMismatch {
        signature: String,
        needs: String,
        key: String,
        allowed: String,
    },
    /// Not a single IP address.
    #[error(
        "invalid IP address {value:?}: write one IPv4 or IPv6 address, e.g. `10.0.0.1` or `2001:db8::1`, without a prefix length"
    )]
    InvalidIpAddress { value: String },
    /// Not an absolute URI.
    #[error(
        "invalid URI {value:?}: {reason}; write an absolute URI with a scheme, e.g. `spiffe://cluster.local/ns/default/sa/web`"
    )]
    InvalidUri { value: String, reason: String },
    /// Not a bare email address.
    #[error("invalid email address {value:?}: write only the address, e.g. `ops@example.com`")]
    InvalidEmail { value: String },
    /// Not a dotted-decimal OID.
    #[error(
        "invalid OID {value:?}: use dotted decimal with at least two arcs, e.g. `1.3.6.1.4.1.311.20.2.3`"
    )]
    InvalidOid { value: String },
    /// `revisionHistoryLimit` below 1.
    #[error(
        "revisionHistoryLimit {value} must be at least 1; remove the field to keep every revision"
    )]
    RevisionHistoryLimitTooLow { value: i64 },
    /// `nameConstraints` on a leaf certificate.
    #[error(
        "nameConstraints are only allowed on a CA certificate; set `isCA: true` or remove `nameConstraints`"
    )]
    NameConstraintsWithoutCa,
    /// `nameConstraints: {}`.
    #[error("nameConstraints needs `permitted` or `excluded`; add one or remove `nameConstraints`")]
    EmptyNameConstraints,
    /// A keystore without exactly one non-empty password source.
    #[error("{keystore} keystore: {problem}")]
    KeystorePassword { keystore: String, problem: String },
    /// A `cert-manager.io/` annotation in `secretTemplate`.
    #[error(
        "secretTemplate annotation `{key}` is reserved for cert-manager; use a key outside `cert-manager.io/`"
    )]
    ReservedAnnotation { key: String },
    /// `renewal.windows` with `policy: Disabled`.
    #[error(
        "renewal windows cannot be set when `renewal.policy` is Disabled; remove `windows` or use policy RenewBefore"
    )]
    RenewalWindowsWhenDisabled,
    /// A cron expression that is not five valid fields.
    #[error(
        "invalid cron expression {value:?}: {reason}; use five fields `minute hour day-of-month month day-of-week`, e.g. `0 2 * * 1-5`"
    )]
    InvalidCron { value: String, reason: String },
    /// Zero or several issuer types in one Issuer/ClusterIssuer.
    #[error("{}", issuer_type_text(.found))]
    IssuerTypeCount { found: Vec<String> },
    /// `metadata.namespace` on a cluster-scoped object.
    #[error("{kind} is cluster-scoped: remove `metadata.namespace`")]
    ClusterScopedNamespace { kind: String },

    // --- networking (DestinationRule, ServiceEntry, WorkloadEntry) ---
    /// A host that is not a DNS name (with an optional wildcard first label).
    #[error(
        "invalid host {value:?}: {reason}; use a DNS name such as `reviews.prod.svc.cluster.local`, or a wildcard first label such as `*.example.com`"
    )]
    InvalidHost { value: String, reason: String },
    /// The same value twice in a list that must be unique (subset names, port numbers…).
    #[error("`{value}` appears twice in `{field}`; each entry must be unique, keep one")]
    DuplicateEntry { field: String, value: String },
    /// A name that must be a DNS-1123 label (subset and port names, exportTo namespaces).
    #[error(
        "invalid {what} {value:?}: must be a DNS-1123 label (letters, digits and `-`, start and end with a letter or digit, at most 63 characters)"
    )]
    InvalidDnsLabel { what: String, value: String },
    /// MUTUAL without the client certificate or key and without `credentialName`.
    #[error(
        "TLS mode MUTUAL needs `{field}` (with `clientCertificate` and `privateKey` both set), or `credentialName` naming a secret that holds them"
    )]
    TlsMissingClientCert { field: String },
    /// A TLS field that the mode ignores or forbids.
    #[error("`{field}` cannot be used with TLS mode {mode}: {hint}")]
    TlsFieldWithMode {
        field: String,
        mode: String,
        hint: String,
    },
    /// A file-based TLS field next to `credentialName`.
    #[error(
        "`{field}` cannot be combined with `credentialName`: the secret supplies the certificate, key, CA and CRL; remove `{field}` or `credentialName`"
    )]
    TlsFieldWithCredentialName { field: String },
    /// A verification field next to `insecureSkipVerify: true`.
    #[error(
        "`{field}` would be ignored because `insecureSkipVerify` is true; remove `{field}` or set `insecureSkipVerify: false`"
    )]
    TlsFieldWithInsecureSkipVerify { field: String },
    /// A block that must set at least one field (`trafficPolicy: {}`).
    #[error("`{field}` must set at least one field; remove it if nothing is needed")]
    EmptyBlock { field: String },
    /// Two or more fields of a protobuf oneof, or otherwise exclusive fields, together.
    #[error("only one of {} may be set; remove all but one", .fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    OnlyOneOf { fields: Vec<String> },
    /// A number outside its allowed range.
    #[error("value {value} is out of range: must be {expected}")]
    OutOfRange { value: String, expected: String },
    /// A duration finer than a millisecond.
    #[error(
        "invalid duration {value:?}: only whole milliseconds are supported; round it, e.g. `1500ms`"
    )]
    DurationNotWholeMs { value: String },
    /// A Maglev table size that Envoy rejects.
    #[error(
        "maglev `tableSize` {value} must be a prime number below 5000011; the default is 65537"
    )]
    InvalidMaglevTableSize { value: u64 },
    /// A bad `region/zone/subzone` locality or locality setting.
    #[error("invalid locality {value:?}: {hint}")]
    InvalidLocality { value: String, hint: String },
    /// Weights in `distribute[].to` that do not add up to 100.
    #[error("locality weights add up to {total}; make them add up to 100")]
    LocalityWeightTotal { total: u64 },
    /// A field that only takes effect together with another one.
    #[error(
        "`{field}` only takes effect when `{requires}` is set; set `{requires}` or remove `{field}`"
    )]
    RequiresField { field: String, requires: String },
    /// Two settings that contradict each other.
    #[error("`{field}` conflicts with `{other}`: {hint}")]
    ConflictingFields {
        field: String,
        other: String,
        hint: String,
    },
    /// A port protocol Istio does not know.
    #[error(
        "unknown protocol `{value}`{}; use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-Web, HTTP_PROXY, TCP, TLS, UDP, Mongo, Redis, MySQL (any case), or leave it empty to sniff",
        suggestion_text(.suggestion)
    )]
    UnknownProtocol {
        value: String,
        suggestion: Option<String>,
    },
    /// An address that is not of the expected form.
    #[error("invalid address {value:?}: expected {expected}")]
    InvalidAddress { value: String, expected: String },
    /// An `exportTo` entry or combination Istio rejects.
    #[error("invalid exportTo {value:?}: {hint}")]
    InvalidExportTo { value: String, hint: String },
    /// A ServiceEntry setting that its `resolution` does not allow.
    #[error("not allowed with resolution {resolution}: {hint}")]
    ResolutionConflict { resolution: String, hint: String },
    /// An endpoint port name that is not a port of the ServiceEntry.
    #[error("endpoint port `{name}` is not a port name of this ServiceEntry; use one of: {}", .known.join(", "))]
    UndefinedPortName { name: String, known: Vec<String> },
    /// A label key or value Kubernetes would reject.
    #[error("invalid label {label:?}: {reason}")]
    InvalidLabel { label: String, reason: String },
    /// A WorkloadEntry/endpoint with neither `address` nor `network`.
    #[error(
        "missing `address`: set it to an IP, a DNS name or `unix:///path`, or set `network` for an endpoint reached through that network's gateway"
    )]
    MissingAddress,
}

fn issuer_type_text(found: &[String]) -> String {
    if found.is_empty() {
        "no issuer type set: add exactly one of `selfSigned: {}`, `ca`, `sigil: {}`, `acme`, `vault` or `venafi`".to_owned()
    } else {
        format!(
            "only one issuer type may be set, found {}; keep one",
            found
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

fn quote_hint(found: &str, expected: &str) -> &'static str {
    if expected.contains("string") && (found.starts_with("integer") || found.starts_with("number"))
    {
        " (quote it, e.g. \"8080\")"
    } else {
        ""
    }
}

/// The closest candidate to `input` within a small edit distance, for "did you mean".
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
