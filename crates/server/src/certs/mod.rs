//! cert-manager semantics in the control plane: Issuers and ClusterIssuers (`selfSigned`,
//! `ca`, `sigil`), the Certificate controller that keeps each Certificate's Secret issued and
//! renewed, CertificateRequest records, status and events, and cert-manager's metrics.
//!
//! - `plan` — spec → what to issue, or a refusal naming the field (pure);
//! - `decide` — readiness, triggers, renewal time, backoff (pure);
//! - `facts` — Secret bytes ↔ facts and Secret data (pure);
//! - `status` — the stored status record (pure data);
//! - `issuers`, `issue`, `controller`, `metrics` — the IO around them.

pub mod controller;
pub mod decide;
pub mod facts;
pub mod issue;
pub mod issuers;
pub mod metrics;
pub mod plan;
pub mod status;

use serde_json::{Value, json};
use sigil_datastore::ConfigKey;
use sigil_proto::admin as api;
use sigil_proto::config as pb;
use tonic::Status;

pub use controller::CertsHandle;
use status::{CERTIFICATE_REQUEST, StatusRecord, condition};

use crate::convert::ds_status;
use crate::state::{Shared, now_unix, now_unix_ms};

/// Kinds whose rendering carries a `status` from the controller.
fn has_status(kind: &str) -> bool {
    matches!(kind, "Certificate" | "Issuer" | "ClusterIssuer")
}

/// Adds the controller's `status` to a rendered Certificate, Issuer or ClusterIssuer (as
/// `kubectl get -o yaml` shows it); other kinds pass through.
pub async fn attach_status(s: &Shared, mut r: pb::ConfigResource) -> pb::ConfigResource {
    if !has_status(&r.kind) {
        return r;
    }
    let key = ConfigKey::new(r.kind.clone(), r.namespace.clone(), r.name.clone());
    let Ok(Some(row)) = s.ds.get_status(&key).await else {
        return r;
    };
    let rec = StatusRecord::parse(&row.body);
    if let (Ok(mut v), Ok(status)) = (
        serde_json::from_str::<Value>(&r.json),
        serde_json::to_value(&rec.status),
    ) && let Some(m) = v.as_object_mut()
    {
        m.insert("status".into(), status);
        r.json = v.to_string();
    }
    r
}

fn key_of(req: &api::CertificateRef) -> Result<ConfigKey, Status> {
    if req.name.is_empty() {
        return Err(Status::invalid_argument(
            "a Certificate name is required: sigil cert status NAME -n NAMESPACE",
        ));
    }
    let ns = if req.namespace.is_empty() {
        "default"
    } else {
        &req.namespace
    };
    Ok(ConfigKey::new("Certificate", ns, &req.name))
}

/// Everything `sigil describe certificate` / `sigil cert status` show.
pub async fn describe(
    s: &Shared,
    req: api::CertificateRef,
) -> Result<api::DescribeCertificateResponse, Status> {
    let key = key_of(&req)?;
    let stored =
        s.ds.get_config(&key)
            .await
            .map_err(ds_status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "certificates.cert-manager.io {:?} not found in namespace {:?}; list them with \
             sigil get certificates -n {}",
                    key.name, key.namespace, key.namespace
                ))
            })?;
    let rendered = crate::mesh::render(&stored).map_err(Status::internal)?;
    let rendered = attach_status(s, rendered).await;
    let rec = match s.ds.get_status(&key).await.map_err(ds_status)? {
        Some(row) => StatusRecord::parse(&row.body),
        None => StatusRecord::default(),
    };
    let cert: Value = serde_json::from_str(&rendered.json).unwrap_or_default();
    let spec: sigil_policy::CertificateSpec =
        serde_json::from_value(cert.get("spec").cloned().unwrap_or_default()).unwrap_or_default();
    let mut requests: Vec<Value> =
        s.ds.list_status(CERTIFICATE_REQUEST, Some(&key.namespace))
            .await
            .map_err(ds_status)?
            .into_iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter(|v| {
                v.pointer("/metadata/annotations/cert-manager.io~1certificate-name")
                    .and_then(Value::as_str)
                    == Some(key.name.as_str())
            })
            .collect();
    requests.sort_by_key(|v| {
        v.pointer("/metadata/annotations/cert-manager.io~1certificate-revision")
            .and_then(Value::as_str)
            .and_then(|r| r.parse::<i64>().ok())
            .unwrap_or(0)
    });
    let secret_json = secret_summary(s, &key.namespace, &spec.secret_name).await;
    let issuer_json = issuer_summary(s, &key.namespace, &spec.issuer_ref).await;
    Ok(api::DescribeCertificateResponse {
        certificate_json: rendered.json,
        events_json: serde_json::to_string(&rec.events).unwrap_or_else(|_| "[]".into()),
        requests_json: Value::Array(requests).to_string(),
        secret_json,
        issuer_json,
    })
}

/// The Secret's certificate facts, never its key.
async fn secret_summary(s: &Shared, ns: &str, name: &str) -> String {
    let Ok(Some(sec)) = crate::secrets::read_secret(s, ns, name).await else {
        return String::new();
    };
    let certs = sec.get("tls.crt").map(facts::pem_certs).unwrap_or_default();
    let key_type = sec
        .get("tls.key")
        .and_then(|k| sigil_ca::PrivateKey::from_pem(k).ok())
        .map(|k| k.key_type().name());
    let mut leaf = json!({});
    if let Some(der) = certs.first()
        && let Ok((_, c)) = x509_parser::parse_x509_certificate(der)
    {
        let mut dns = Vec::new();
        let mut uris = Vec::new();
        let mut ips = Vec::new();
        let mut emails = Vec::new();
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for n in &san.value.general_names {
                use x509_parser::extensions::GeneralName as G;
                match n {
                    G::DNSName(d) => dns.push(d.to_string()),
                    G::URI(u) => uris.push(u.to_string()),
                    G::RFC822Name(e) => emails.push(e.to_string()),
                    G::IPAddress(b) => ips.push(ip_text(b)),
                    _ => {}
                }
            }
        }
        leaf = json!({
            "subject": c.subject().to_string(),
            "issuer": c.issuer().to_string(),
            "serialNumber": hex::encode(c.raw_serial()),
            "notBefore": crate::mesh::rfc3339_seconds(c.validity().not_before.timestamp() * 1000),
            "notAfter": crate::mesh::rfc3339_seconds(c.validity().not_after.timestamp() * 1000),
            "dnsNames": dns,
            "uris": uris,
            "ipAddresses": ips,
            "emailAddresses": emails,
            "isCA": c.is_ca(),
        });
    }
    json!({
        "name": name,
        "namespace": ns,
        "type": sec.type_,
        "keys": sec.data.keys().collect::<Vec<_>>(),
        "annotations": sec.annotations,
        "labels": sec.labels,
        "chainLength": certs.len(),
        "hasCA": sec.get("ca.crt").is_some(),
        "privateKey": key_type,
        "certificate": leaf,
    })
    .to_string()
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or_default()).to_string(),
        _ => hex::encode(b),
    }
}

async fn issuer_summary(s: &Shared, ns: &str, r: &sigil_policy::IssuerRef) -> String {
    let kind = r.effective_kind();
    let key = match kind {
        "ClusterIssuer" => ConfigKey::new("ClusterIssuer", "", &r.name),
        _ => ConfigKey::new("Issuer", ns, &r.name),
    };
    let Ok(Some(stored)) = s.ds.get_config(&key).await else {
        return String::new();
    };
    match crate::mesh::render(&stored) {
        Ok(r) => attach_status(s, r).await.json,
        Err(_) => String::new(),
    }
}

/// `sigil cert renew`: sets `Issuing` True (reason ManuallyTriggered), as `cmctl renew` does,
/// and wakes the controller.
pub async fn renew(
    s: &Shared,
    req: api::CertificateRef,
) -> Result<api::DescribeCertificateResponse, Status> {
    let key = key_of(&req)?;
    let stored =
        s.ds.get_config(&key)
            .await
            .map_err(ds_status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "certificates.cert-manager.io {:?} not found in namespace {:?}",
                    key.name, key.namespace
                ))
            })?;
    // A few attempts: the controller may write the row at the same moment.
    for _ in 0..5 {
        let (mut rec, version) = match s.ds.get_status(&key).await.map_err(ds_status)? {
            Some(row) => (StatusRecord::parse(&row.body), row.version),
            None => (StatusRecord::default(), 0),
        };
        if rec
            .status
            .condition("Issuing")
            .is_some_and(|c| c.status == "True")
        {
            return Err(Status::failed_precondition(format!(
                "Certificate {}/{} is already being issued (Issuing is True); wait for it \
                 with sigil cert status {} -n {}",
                key.namespace, key.name, key.name, key.namespace
            )));
        }
        let now = crate::mesh::rfc3339_seconds(now_unix() * 1000);
        rec.status.set_condition(
            condition(
                "Issuing",
                true,
                "ManuallyTriggered",
                "Certificate re-issuance manually triggered",
                stored.generation,
            ),
            &now,
        );
        rec.event(
            "Normal",
            "ManuallyTriggered",
            "Certificate re-issuance manually triggered",
            &now,
        );
        let body = serde_json::to_string(&rec).map_err(|e| Status::internal(e.to_string()))?;
        match s.ds.put_status(&key, body, version, now_unix_ms()).await {
            Ok(_) => {
                s.certs.kick();
                return describe(s, req).await;
            }
            Err(sigil_datastore::Error::Conflict { .. }) => continue,
            Err(e) => return Err(ds_status(e)),
        }
    }
    Err(Status::aborted(
        "the Certificate's status kept changing; try again",
    ))
}
