//! Mesh configuration objects (Istio and cert-manager resources) as the datastore keeps them:
//! opaque JSON bodies under a `(kind, namespace, name)` key, with the bookkeeping a Kubernetes-like
//! API server needs (uid, generation, timestamps, revision). Times are unix milliseconds.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest body the store accepts, in bytes (1 MiB, the order of etcd's request limit).
pub const MAX_CONFIG_BODY_BYTES: usize = 1 << 20;

/// The most changes one [`crate::ConfigStore::apply_config`] call may carry.
pub const MAX_CONFIG_BATCH: usize = 10_000;

/// Longest `kind`, `namespace`, `name`, `api_version` and `spec_hash` accepted, in bytes.
const MAX_KIND_BYTES: usize = 63;
const MAX_NAMESPACE_BYTES: usize = 63;
const MAX_NAME_BYTES: usize = 253;
const MAX_API_VERSION_BYTES: usize = 253;
const MAX_SPEC_HASH_BYTES: usize = 256;

/// What identifies a configuration object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConfigKey {
    /// Such as `AuthorizationPolicy` or `Certificate`.
    pub kind: String,
    /// Empty for a cluster-scoped object.
    pub namespace: String,
    pub name: String,
}

impl ConfigKey {
    pub fn new(
        kind: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ConfigKey {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `Kind ns/name`, or `Kind name` for a cluster-scoped object.
impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A stored configuration object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    pub key: ConfigKey,
    pub api_version: String,
    /// The object as JSON text, exactly as the caller handed it in.
    pub body: String,
    /// The caller's digest of the parts that bump `generation` (the spec).
    pub spec_hash: String,
    /// 1 on create; grows by one whenever `spec_hash` changes.
    pub generation: i64,
    /// A random UUID v4 text assigned on create, kept across updates.
    pub uid: String,
    /// Set on create, never changed by updates.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The store-wide revision ([`crate::DataStore::revision`]) of the last change to this object.
    pub revision: i64,
}

/// One change in a [`crate::ConfigStore::apply_config`] batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Creates the object or replaces its body (create-or-update).
    Put {
        key: ConfigKey,
        api_version: String,
        body: String,
        spec_hash: String,
    },
    Delete {
        key: ConfigKey,
    },
}

impl ConfigChange {
    pub fn key(&self) -> &ConfigKey {
        match self {
            ConfigChange::Put { key, .. } | ConfigChange::Delete { key } => key,
        }
    }
}

/// What one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    Created,
    /// The body, API version or spec hash changed (the generation grows only with the spec hash).
    Configured,
    /// The object was stored exactly so already.
    Unchanged,
    Deleted,
    /// A delete of a key that is not stored.
    NotFound,
}

impl ChangeOutcome {
    /// Whether the store changed.
    pub fn changed(self) -> bool {
        matches!(
            self,
            ChangeOutcome::Created | ChangeOutcome::Configured | ChangeOutcome::Deleted
        )
    }
}

/// The result of [`crate::ConfigStore::apply_config`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// The config revision after the call: the store-wide revision of this call's transaction if
    /// anything changed, the previous config revision otherwise.
    pub revision: i64,
    /// One outcome per change, in the order given.
    pub outcomes: Vec<(ConfigKey, ChangeOutcome)>,
}

/// Checks a whole batch before anything is written, so that a bad change stores nothing.
pub(crate) fn check_changes(changes: &[ConfigChange]) -> Result<()> {
    if changes.len() > MAX_CONFIG_BATCH {
        return Err(Error::Invalid(format!(
            "{} configuration changes in one call, more than the {MAX_CONFIG_BATCH} the store \
             accepts; split the batch",
            changes.len()
        )));
    }
    for change in changes {
        check_key(change.key())?;
        if let ConfigChange::Put {
            key,
            api_version,
            body,
            spec_hash,
        } = change
        {
            check_text(key, "apiVersion", api_version, MAX_API_VERSION_BYTES, false)?;
            check_text(key, "spec hash", spec_hash, MAX_SPEC_HASH_BYTES, false)?;
            check_body(key, body)?;
        }
    }
    Ok(())
}

pub(crate) fn check_key(key: &ConfigKey) -> Result<()> {
    check_text(key, "kind", &key.kind, MAX_KIND_BYTES, true)?;
    if !key.namespace.is_empty() {
        check_text(key, "namespace", &key.namespace, MAX_NAMESPACE_BYTES, true)?;
    }
    check_text(key, "name", &key.name, MAX_NAME_BYTES, true)
}

/// A non-empty `value` of at most `max` bytes without whitespace or control characters (nor `/`
/// in a key part, which would make `Kind ns/name` ambiguous).
fn check_text(key: &ConfigKey, what: &str, value: &str, max: usize, key_part: bool) -> Result<()> {
    let problem = if value.is_empty() {
        "is empty".to_owned()
    } else if value.len() > max {
        format!("is {} bytes long, more than {max}", value.len())
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains whitespace or control characters".to_owned()
    } else if key_part && value.contains('/') {
        "contains '/'".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::Invalid(format!(
        "configuration object {key}: {what} {value:.64?} {problem}; give a Kubernetes-style {what}"
    )))
}

/// The body must be one JSON object of at most [`MAX_CONFIG_BODY_BYTES`].
pub(crate) fn check_body(key: &ConfigKey, body: &str) -> Result<()> {
    if body.len() > MAX_CONFIG_BODY_BYTES {
        return Err(Error::Invalid(format!(
            "configuration object {key}: body is {} bytes, more than the {MAX_CONFIG_BODY_BYTES} \
             the store accepts; shrink the object",
            body.len()
        )));
    }
    if !body.trim_start().starts_with('{') {
        return Err(Error::Invalid(format!(
            "configuration object {key}: body is empty or not a JSON object; give the object as \
             JSON"
        )));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(body).map_err(|e| {
        Error::Invalid(format!(
            "configuration object {key}: body is not valid JSON ({e}); give the object as JSON"
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: ConfigKey, body: &str) -> ConfigChange {
        ConfigChange::Put {
            key,
            api_version: "security.istio.io/v1".into(),
            body: body.into(),
            spec_hash: "h".into(),
        }
    }

    #[test]
    fn keys_display_like_kubectl() {
        let k = ConfigKey::new("AuthorizationPolicy", "payments", "allow-checkout");
        assert_eq!(k.to_string(), "AuthorizationPolicy payments/allow-checkout");
        let k = ConfigKey::new("ClusterIssuer", "", "mesh-ca");
        assert_eq!(k.to_string(), "ClusterIssuer mesh-ca");
    }

    #[test]
    fn keys_order_by_kind_namespace_name() {
        let mut keys = [
            ConfigKey::new("B", "a", "a"),
            ConfigKey::new("A", "b", "a"),
            ConfigKey::new("A", "a", "b"),
            ConfigKey::new("A", "", "z"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["A z", "A a/b", "A b/a", "B a/a"]);
    }

    #[test]
    fn bad_changes_are_refused_naming_the_key() {
        let ok = ConfigKey::new("Gateway", "istio-system", "ingress");
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_CONFIG_BODY_BYTES));
        let cases: Vec<(ConfigChange, &str)> = vec![
            (
                put(ConfigKey::new("", "ns", "n"), "{}"),
                "kind \"\" is empty",
            ),
            (
                put(ConfigKey::new("K", "ns", ""), "{}"),
                "name \"\" is empty",
            ),
            (put(ConfigKey::new("K", "n s", "n"), "{}"), "whitespace"),
            (put(ConfigKey::new("K", "ns", "a/b"), "{}"), "contains '/'"),
            (
                put(ok.clone(), ""),
                "Gateway istio-system/ingress: body is empty",
            ),
            (put(ok.clone(), "[1]"), "not a JSON object"),
            (put(ok.clone(), "{\"a\":"), "not valid JSON"),
            (
                put(ok.clone(), &big),
                "Gateway istio-system/ingress: body is 1048584 bytes",
            ),
            (
                ConfigChange::Delete {
                    key: ConfigKey::new("K", "", "\u{0}"),
                },
                "control",
            ),
        ];
        for (change, want) in cases {
            match check_changes(std::slice::from_ref(&change)) {
                Err(Error::Invalid(msg)) => assert!(msg.contains(want), "{want:?} not in {msg}"),
                other => panic!("{change:?}: expected Invalid, got {other:?}"),
            }
        }
        let mut no_hash = put(ok.clone(), "{}");
        if let ConfigChange::Put { spec_hash, .. } = &mut no_hash {
            spec_hash.clear();
        }
        assert!(
            matches!(check_changes(&[no_hash]), Err(Error::Invalid(m)) if m.contains("spec hash"))
        );
        assert!(check_changes(&[put(ok.clone(), " {\"spec\":{}} ")]).is_ok());
        assert!(check_changes(&[put(ConfigKey::new("ClusterIssuer", "", "ca"), "{}")]).is_ok());
        let too_many = vec![ConfigChange::Delete { key: ok }; MAX_CONFIG_BATCH + 1];
        assert!(matches!(check_changes(&too_many), Err(Error::Invalid(m)) if m.contains("split")));
    }
}
