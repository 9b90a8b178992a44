//! The admin API's configuration calls: apply, get, delete. Validation happens here, in the
//! server, so every client (the CLI, a script over gRPC) gets the same checks and messages.

use sigil_datastore::{ChangeOutcome, ConfigChange, ConfigKey};
use sigil_proto::admin as api;
use tonic::Status;
use tracing::{info, warn};

use crate::convert::ds_status;
use crate::mesh::kinds::{self, KindInfo};
use crate::mesh::plan::{self, Document, NamespaceRule};
use crate::mesh::render;
use crate::state::Shared;

fn outcome_word(o: &ChangeOutcome) -> &'static str {
    match o {
        ChangeOutcome::Created => "created",
        ChangeOutcome::Configured => "configured",
        ChangeOutcome::Unchanged => "unchanged",
        ChangeOutcome::Deleted => "deleted",
        ChangeOutcome::NotFound => "not found",
    }
}

fn documents(req: &[api::ConfigDocument]) -> Vec<Document<'_>> {
    req.iter()
        .map(|d| Document {
            file_name: &d.file_name,
            text: &d.text,
        })
        .collect()
}

fn invalid_response(errors: Vec<String>, what: &str, s: &Shared) -> api::ApplyConfigResponse {
    warn!(
        problems = errors.len(),
        first = %errors.first().map(String::as_str).unwrap_or_default(),
        "{what} refused: invalid configuration; nothing was changed"
    );
    s.metrics
        .config_applies
        .get_or_create(&result("invalid"))
        .inc();
    api::ApplyConfigResponse {
        outcomes: Vec::new(),
        revision: s.config.current().revision,
        errors,
    }
}

fn result(r: &str) -> crate::metrics::ResultLabel {
    crate::metrics::ResultLabel { result: r.into() }
}

/// Stores `changes` in one transaction and wakes the agents' streams.
async fn commit(
    s: &Shared,
    changes: Vec<ConfigChange>,
    api_versions: Vec<String>,
    what: &str,
) -> Result<api::ApplyConfigResponse, Status> {
    let now_ms = crate::state::now_unix_ms();
    let applied = s.ds.apply_config(changes, now_ms).await.map_err(|e| {
        s.metrics
            .config_applies
            .get_or_create(&result("error"))
            .inc();
        ds_status(e)
    })?;
    s.metrics.config_applies.get_or_create(&result("ok")).inc();
    if let Err(e) = s.config.refresh(s.ds.as_ref()).await {
        // The change is stored; the poll loop delivers it once the store answers again.
        warn!(error = %e, "configuration stored but not yet reloaded for delivery");
    }
    s.metrics.config_revision.set(s.config.current().revision);
    let outcomes: Vec<api::ConfigOutcome> = applied
        .outcomes
        .iter()
        .zip(
            api_versions
                .into_iter()
                .chain(std::iter::repeat(String::new())),
        )
        .map(|((key, o), api_version)| api::ConfigOutcome {
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            outcome: outcome_word(o).into(),
            api_version,
        })
        .collect();
    for o in &outcomes {
        if o.outcome != "unchanged" && o.outcome != "not found" {
            info!(kind = %o.kind, namespace = %o.namespace, name = %o.name, outcome = %o.outcome, revision = applied.revision, "{what}");
        }
    }
    Ok(api::ApplyConfigResponse {
        outcomes,
        revision: applied.revision,
        errors: Vec::new(),
    })
}

pub async fn apply(
    s: &Shared,
    req: api::ApplyConfigRequest,
) -> Result<api::ApplyConfigResponse, Status> {
    if req.documents.is_empty() {
        return Err(Status::invalid_argument(
            "no documents to apply; pass -f FILE, a directory, or - for stdin",
        ));
    }
    let rule = NamespaceRule {
        default: &req.namespace,
        explicit: req.namespace_explicit,
    };
    let planned = match plan::plan(&documents(&req.documents), &rule) {
        Ok(p) => p,
        Err(errors) => return Ok(invalid_response(errors, "apply", s)),
    };
    if req.dry_run {
        let outcomes = planned
            .iter()
            .map(|p| api::ConfigOutcome {
                kind: p.key.kind.clone(),
                namespace: p.key.namespace.clone(),
                name: p.key.name.clone(),
                outcome: "valid (dry run)".into(),
                api_version: p.api_version.clone(),
            })
            .collect();
        return Ok(api::ApplyConfigResponse {
            outcomes,
            revision: s.config.current().revision,
            errors: Vec::new(),
        });
    }
    let mut planned = planned;
    let mut errors = Vec::new();
    for p in planned.iter_mut().filter(|p| p.key.kind == "Secret") {
        let existing = s.ds.get_config(&p.key).await.map_err(ds_status)?;
        match crate::secrets::seal_for_store(&s.secrets, &p.key, &mut p.body, existing.as_ref()) {
            Ok(hash) => p.spec_hash = hash,
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Ok(invalid_response(errors, "apply", s));
    }
    let api_versions = planned.iter().map(|p| p.api_version.clone()).collect();
    commit(
        s,
        plan::puts(planned),
        api_versions,
        "configuration applied",
    )
    .await
}

pub async fn delete(
    s: &Shared,
    req: api::DeleteConfigRequest,
) -> Result<api::ApplyConfigResponse, Status> {
    let keys: Vec<(ConfigKey, String)> = if !req.documents.is_empty() {
        let rule = NamespaceRule {
            default: &req.namespace,
            explicit: req.namespace_explicit,
        };
        match plan::plan(&documents(&req.documents), &rule) {
            Ok(p) => p.into_iter().map(|p| (p.key, p.api_version)).collect(),
            Err(errors) => return Ok(invalid_response(errors, "delete", s)),
        }
    } else if !req.keys.is_empty() {
        let mut keys = Vec::new();
        for k in &req.keys {
            let info = resolve(&k.kind)?;
            if k.name.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "delete {}: a name is required (sigil delete {} NAME -n NAMESPACE)",
                    info.plural, info.plural
                )));
            }
            let key = key_for(info, &k.namespace, &k.name);
            // The stored apiVersion, so the CLI can name the object as kubectl does.
            let api_version =
                s.ds.get_config(&key)
                    .await
                    .map_err(ds_status)?
                    .map(|c| c.api_version)
                    .unwrap_or_default();
            keys.push((key, api_version));
        }
        keys
    } else {
        return Err(Status::invalid_argument(
            "nothing to delete; pass -f FILE or KIND NAME",
        ));
    };
    let (changes, versions): (Vec<_>, Vec<_>) = keys
        .into_iter()
        .map(|(key, v)| (ConfigChange::Delete { key }, v))
        .unzip();
    commit(s, changes, versions, "configuration deleted").await
}

fn resolve(kind: &str) -> Result<&'static KindInfo, Status> {
    kinds::resolve(kind).ok_or_else(|| {
        Status::invalid_argument(format!(
            "the server doesn't have a resource type {kind:?}; known: {}",
            kinds::known_names()
        ))
    })
}

fn key_for(info: &KindInfo, namespace: &str, name: &str) -> ConfigKey {
    ConfigKey {
        kind: info.kind.to_owned(),
        namespace: if !info.namespaced {
            String::new()
        } else if namespace.is_empty() {
            "default".to_owned()
        } else {
            namespace.to_owned()
        },
        name: name.to_owned(),
    }
}

pub async fn get(s: &Shared, req: api::GetConfigRequest) -> Result<api::GetConfigResponse, Status> {
    let revision = s.ds.config_revision().await.map_err(ds_status)?;
    let kinds: Vec<&KindInfo> = if req.kind.is_empty() || req.kind == "all" {
        if !req.name.is_empty() {
            return Err(Status::invalid_argument(
                "a name needs a kind: sigil get KIND NAME",
            ));
        }
        kinds::KINDS
            .iter()
            .filter(|k| kinds::in_get_all(k))
            .collect()
    } else {
        vec![resolve(&req.kind)?]
    };
    if req.show_secrets {
        warn!(
            kind = %req.kind,
            namespace = %req.namespace,
            name = %req.name,
            "Secret values requested in clear (--show-secrets) through the admin API"
        );
    }
    let mut out = Vec::new();
    for info in kinds {
        if !req.name.is_empty() {
            let key = key_for(info, &req.namespace, &req.name);
            let found = s.ds.get_config(&key).await.map_err(ds_status)?;
            let Some(found) = found else {
                let scope = if info.namespaced {
                    format!(" in namespace {:?}", key.namespace)
                } else {
                    String::new()
                };
                return Err(Status::not_found(format!(
                    "{}.{} {:?} not found{scope}",
                    info.plural, info.group, req.name
                )));
            };
            out.push(
                crate::certs::attach_status(s, render_for_get(s, &found, req.show_secrets)?).await,
            );
            continue;
        }
        let ns = if !info.namespaced || req.all_namespaces {
            None
        } else if req.namespace.is_empty() {
            Some("default")
        } else {
            Some(req.namespace.as_str())
        };
        for stored in
            s.ds.list_config(Some(info.kind), ns)
                .await
                .map_err(ds_status)?
        {
            out.push(
                crate::certs::attach_status(s, render_for_get(s, &stored, req.show_secrets)?).await,
            );
        }
    }
    Ok(api::GetConfigResponse {
        resources: out,
        revision,
    })
}

/// The object as `get` returns it; a Secret's values redacted unless `show_secrets`.
fn render_for_get(
    s: &Shared,
    stored: &sigil_datastore::StoredConfig,
    show_secrets: bool,
) -> Result<sigil_proto::config::ConfigResource, Status> {
    let mut r = render(stored).map_err(Status::internal)?;
    if stored.key.kind == "Secret" {
        let mut v: serde_json::Value =
            serde_json::from_str(&r.json).map_err(|e| Status::internal(e.to_string()))?;
        crate::secrets::render_for_get(&s.secrets, &stored.key, &mut v, show_secrets)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        r.json = v.to_string();
    }
    Ok(r)
}
