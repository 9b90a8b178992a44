//! Core `v1` `Secret`, as kubectl writes it: `type`, base64 `data`, plain `stringData`,
//! `immutable`. Sigil stores Secrets for cert-manager issuers (`ca.secretName`) and for the
//! certificates its controller issues.
//!
//! The values are key material: [`Secret`]'s `Debug` prints key names and sizes only, and the
//! server seals the values before they reach the datastore.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::meta::ObjectMeta;
use crate::validate::Violation;

/// `type: kubernetes.io/tls`.
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
/// The type Kubernetes gives a Secret that names none.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";
/// The largest Secret Kubernetes stores (1 MiB of decoded data).
pub const MAX_SECRET_BYTES: usize = 1 << 20;
/// What `sigil get` prints in place of a value unless `--show-secrets` is given.
pub const REDACTED_PREFIX: &str = "REDACTED:";

/// A `v1` `Secret`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// `v1`.
    pub api_version: String,
    /// `Secret`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// `kubernetes.io/tls`, `Opaque` (the default) or any other type name.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Values, base64 (standard alphabet, padded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values as plain text; merged over `data` (a key in both takes this value), as Kubernetes does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// Once true, the data may not change; delete and re-create the Secret instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.metadata)
            .field("type", &self.secret_type())
            .field(
                "keys",
                &self
                    .data
                    .keys()
                    .chain(self.string_data.keys())
                    .collect::<Vec<_>>(),
            )
            .field("immutable", &self.immutable)
            .finish()
    }
}

impl Secret {
    /// The type, `Opaque` when none is given.
    pub fn secret_type(&self) -> &str {
        self.type_.as_deref().unwrap_or(SECRET_TYPE_OPAQUE)
    }

    /// The decoded values, `stringData` merged over `data`. Fails on a value that is not base64;
    /// [`crate::validate`] has already refused such a Secret when it came from
    /// [`crate::parse_documents`].
    pub fn decoded(&self) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.data {
            let bytes = STANDARD
                .decode(v.trim())
                .map_err(|e| format!("data.{k}: not base64 ({e})"))?;
            out.insert(k.clone(), bytes);
        }
        for (k, v) in &self.string_data {
            out.insert(k.clone(), v.as_bytes().to_vec());
        }
        Ok(out)
    }
}

/// A Secret data key as Kubernetes allows it: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn is_secret_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k != "."
        && k != ".."
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn invalid(path: String, message: String) -> Violation {
    Violation {
        path,
        kind: ErrorKind::Decode { message },
    }
}

/// The Kubernetes API server's rules for a Secret, plus what Sigil needs of a TLS Secret.
pub(crate) fn validate_secret(s: &Secret) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (k, v) in &s.data {
        if !is_secret_key(k) {
            out.push(invalid(
                format!("data.{k}"),
                format!("invalid key {k:?}: keys may hold only letters, digits, `-`, `_` and `.`"),
            ));
        }
        if v.starts_with(REDACTED_PREFIX) {
            out.push(invalid(
                format!("data.{k}"),
                "this is the placeholder `sigil get` prints instead of a secret value; export the \
                 real values with `sigil get secret NAME -n NS -o yaml --show-secrets`"
                    .into(),
            ));
            continue;
        }
        match STANDARD.decode(v.trim()) {
            Ok(b) => total += b.len(),
            Err(e) => out.push(invalid(
                format!("data.{k}"),
                format!(
                    "not base64 ({e}): `data` values are base64-encoded; put plain text under \
                     `stringData` instead, or encode with `base64 -w0 FILE`"
                ),
            )),
        }
    }
    for (k, v) in &s.string_data {
        if !is_secret_key(k) {
            out.push(invalid(
                format!("stringData.{k}"),
                format!("invalid key {k:?}: keys may hold only letters, digits, `-`, `_` and `.`"),
            ));
        }
        total += v.len();
    }
    if total > MAX_SECRET_BYTES {
        out.push(invalid(
            "data".into(),
            format!("the Secret holds {total} bytes, over the limit of {MAX_SECRET_BYTES} bytes"),
        ));
    }
    if s.secret_type() == SECRET_TYPE_TLS {
        for required in ["tls.crt", "tls.key"] {
            if !s.data.contains_key(required) && !s.string_data.contains_key(required) {
                out.push(invalid(
                    "data".into(),
                    format!(
                        "a Secret of type {SECRET_TYPE_TLS} needs `{required}`; create it with \
                         `sigil create secret tls NAME --cert CERT.pem --key KEY.pem`"
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(data: &[(&str, &str)], string_data: &[(&str, &str)], ty: Option<&str>) -> Secret {
        Secret {
            api_version: "v1".into(),
            kind: "Secret".into(),
            metadata: ObjectMeta {
                name: "s".into(),
                ..Default::default()
            },
            type_: ty.map(str::to_owned),
            data: data
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            string_data: string_data
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            immutable: None,
        }
    }

    #[test]
    fn string_data_wins_over_data() {
        let s = secret(&[("a", "eA=="), ("b", "eQ==")], &[("b", "z")], None);
        let d = s.decoded().unwrap();
        assert_eq!(d["a"], b"x");
        assert_eq!(d["b"], b"z");
        assert_eq!(s.secret_type(), "Opaque");
    }

    #[test]
    fn debug_never_shows_values() {
        let s = secret(
            &[("tls.key", "c2VjcmV0LWtleQ==")],
            &[("p", "hunter2")],
            None,
        );
        let text = format!("{s:?}");
        assert!(text.contains("tls.key") && text.contains("\"p\""), "{text}");
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn tls_secrets_need_both_halves() {
        let v = validate_secret(&secret(&[("tls.crt", "eA==")], &[], Some(SECRET_TYPE_TLS)));
        assert_eq!(v.len(), 1);
        assert!(v[0].kind.to_string().contains("`tls.key`"), "{:?}", v);
        assert!(
            validate_secret(&secret(
                &[("tls.crt", "eA==")],
                &[("tls.key", "k")],
                Some(SECRET_TYPE_TLS)
            ))
            .is_empty()
        );
    }

    #[test]
    fn bad_keys_bad_base64_and_the_redaction_marker_are_refused() {
        let v = validate_secret(&secret(
            &[
                ("bad key", "eA=="),
                ("x", "!!!"),
                ("y", "REDACTED: 12 bytes"),
            ],
            &[],
            None,
        ));
        let text: Vec<String> = v
            .iter()
            .map(|v| format!("{}: {}", v.path, v.kind))
            .collect();
        assert_eq!(v.len(), 3, "{text:?}");
        assert!(text.iter().any(|t| t.contains("invalid key")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("stringData")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("--show-secrets")),
            "{text:?}"
        );
    }

    #[test]
    fn keys_follow_kubernetes() {
        for ok in ["tls.crt", "ca.crt", "a-b_c.d", "KEY1"] {
            assert!(is_secret_key(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(!is_secret_key(bad), "{bad}");
        }
    }
}
