//! From the files a user hands `sigil apply` / `sigil delete -f` to the changes the datastore
//! stores, all or nothing. Pure: no IO.
//!
//! Every document is parsed and validated by `sigil_policy` (strict decoding, the upstream
//! webhooks' rules); then namespaces are resolved as kubectl resolves them and duplicates are
//! refused. Any problem anywhere means no change at all.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_datastore::{ConfigChange, ConfigKey};
use sigil_policy::Resource;

use crate::mesh::kinds;

/// One input file.
pub struct Document<'a> {
    pub file_name: &'a str,
    pub text: &'a str,
}

/// How namespaces are filled in.
pub struct NamespaceRule<'a> {
    /// For documents that name none; `default` when empty.
    pub default: &'a str,
    /// Given with `-n`: a document naming another namespace is an error.
    pub explicit: bool,
}

/// Metadata only the server writes; dropped from what users send so that re-applying the
/// output of `sigil get -o yaml` is a no-op.
const SERVER_FIELDS: &[&str] = &[
    "generation",
    "creationTimestamp",
    "resourceVersion",
    "uid",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A validated object ready to store.
#[derive(Debug, Clone)]
pub struct Planned {
    pub key: ConfigKey,
    pub api_version: String,
    /// The object as JSON, namespace filled in, server fields removed.
    pub body: Value,
    /// Digest of `spec`: a change bumps `metadata.generation`.
    pub spec_hash: String,
}

/// Parses and validates every document; returns the objects, or every problem (one line each).
pub fn plan(docs: &[Document<'_>], ns: &NamespaceRule<'_>) -> Result<Vec<Planned>, Vec<String>> {
    let default_ns = if ns.default.is_empty() {
        "default"
    } else {
        ns.default
    };
    let mut errors = Vec::new();
    let mut planned: Vec<Planned> = Vec::new();
    let mut seen: BTreeMap<ConfigKey, String> = BTreeMap::new();
    for doc in docs {
        let resources = match sigil_policy::parse_documents(doc.file_name, doc.text) {
            Ok(r) => r,
            Err(errs) => {
                errors.extend(errs.iter().map(ToString::to_string));
                continue;
            }
        };
        for (index, resource) in resources.iter().enumerate() {
            let at = format!("{} (object {} of the file)", doc.file_name, index + 1);
            match plan_one(resource, default_ns, ns.explicit) {
                Ok(p) => {
                    if let Some(first) = seen.get(&p.key) {
                        errors.push(format!(
                            "{at}: {} is defined twice in this apply (first in {first}); keep one definition",
                            p.key
                        ));
                        continue;
                    }
                    seen.insert(p.key.clone(), at);
                    planned.push(p);
                }
                Err(e) => errors.push(format!("{at}: {e}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(planned)
    } else {
        Err(errors)
    }
}

/// The datastore changes for `planned` (apply).
pub fn puts(planned: Vec<Planned>) -> Vec<ConfigChange> {
    planned
        .into_iter()
        .map(|p| ConfigChange::Put {
            key: p.key,
            api_version: p.api_version,
            body: p.body.to_string(),
            spec_hash: p.spec_hash,
        })
        .collect()
}

fn plan_one(r: &Resource, default_ns: &str, explicit: bool) -> Result<Planned, String> {
    let kind = r.kind();
    let info = kinds::info(kind)
        .ok_or_else(|| format!("kind {kind} cannot be stored by this server version"))?;
    let meta = r.metadata();
    if meta.name.is_empty() {
        return Err(format!(
            "{kind} has metadata.generateName but no metadata.name; apply needs a fixed name"
        ));
    }
    let namespace = if info.namespaced {
        match meta.namespace.as_deref() {
            Some(doc_ns) if explicit && doc_ns != default_ns => {
                return Err(format!(
                    "the namespace of {kind} {:?} is {doc_ns:?}, which does not match the namespace {default_ns:?} given with -n; \
                     drop -n or use -n {doc_ns}",
                    meta.name
                ));
            }
            Some(doc_ns) => doc_ns.to_owned(),
            None => default_ns.to_owned(),
        }
    } else {
        if let Some(doc_ns) = &meta.namespace {
            return Err(format!(
                "{kind} {:?} is cluster-scoped but sets metadata.namespace {doc_ns:?}; remove metadata.namespace",
                meta.name
            ));
        }
        String::new()
    };
    let mut body = serde_json::to_value(r).map_err(|e| format!("cannot encode {kind}: {e}"))?;
    let Some(obj) = body.as_object_mut() else {
        return Err(format!("{kind} did not encode as an object"));
    };
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        for f in SERVER_FIELDS {
            m.remove(*f);
        }
        if info.namespaced {
            m.insert("namespace".into(), Value::String(namespace.clone()));
        }
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let spec_hash = hex::encode(Sha256::digest(spec.to_string().as_bytes()));
    Ok(Planned {
        key: ConfigKey {
            kind: kind.to_owned(),
            namespace,
            name: meta.name.clone(),
        },
        api_version: r.api_version().to_owned(),
        body,
        spec_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: &str = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\nspec:\n  mtls:\n    mode: STRICT\n";
    const NO_NS: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-all\nspec: {}\n";

    fn rule(default: &str, explicit: bool) -> NamespaceRule<'_> {
        NamespaceRule { default, explicit }
    }

    fn doc<'a>(file_name: &'a str, text: &'a str) -> Document<'a> {
        Document { file_name, text }
    }

    #[test]
    fn namespace_comes_from_the_document_else_the_flag_else_default() {
        let p = plan(
            &[doc("a.yaml", STRICT), doc("b.yaml", NO_NS)],
            &rule("", false),
        )
        .unwrap();
        assert_eq!(p[0].key.namespace, "payments");
        assert_eq!(p[1].key.namespace, "default");
        assert_eq!(p[1].body["metadata"]["namespace"], "default");
        let p = plan(&[doc("b.yaml", NO_NS)], &rule("shop", true)).unwrap();
        assert_eq!(p[0].key.namespace, "shop");
    }

    #[test]
    fn explicit_namespace_conflict_is_an_error() {
        let e = plan(&[doc("a.yaml", STRICT)], &rule("shop", true)).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("\"payments\"") && e[0].contains("-n payments"),
            "{e:?}"
        );
    }

    #[test]
    fn duplicates_and_invalid_documents_fail_the_whole_batch() {
        let e = plan(
            &[doc("a.yaml", STRICT), doc("b.yaml", STRICT)],
            &rule("", false),
        )
        .unwrap_err();
        assert!(
            e[0].contains("defined twice") && e[0].contains("a.yaml"),
            "{e:?}"
        );
        let bad = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: x\nspec:\n  mtls:\n    mode: STRICTER\n";
        let e = plan(
            &[doc("a.yaml", STRICT), doc("bad.yaml", bad)],
            &rule("", false),
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("bad.yaml:7:"), "{e:?}");
    }

    #[test]
    fn server_fields_are_dropped_and_spec_hash_ignores_metadata() {
        let with_server = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: payments\n  generation: 7\n  uid: abc\n  resourceVersion: \"12\"\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  labels:\n    team: pay\nspec:\n  mtls:\n    mode: STRICT\n";
        let a = plan(&[doc("a.yaml", STRICT)], &rule("", false)).unwrap();
        let b = plan(&[doc("b.yaml", with_server)], &rule("", false)).unwrap();
        assert_eq!(a[0].spec_hash, b[0].spec_hash);
        let m = &b[0].body["metadata"];
        assert!(m.get("generation").is_none() && m.get("uid").is_none());
        assert_eq!(m["labels"]["team"], "pay");
    }

    #[test]
    fn cluster_scoped_kinds_take_no_namespace() {
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n";
        let p = plan(&[doc("ns.yaml", ns)], &rule("shop", true)).unwrap();
        assert_eq!(p[0].key.namespace, "");
        assert!(p[0].body["metadata"].get("namespace").is_none());
    }
}
