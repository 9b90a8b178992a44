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
