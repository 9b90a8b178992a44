//! cert-manager's certificate metrics (`certmanager_certificate_*`), set from the stored
//! status after every controller round.

use std::collections::BTreeSet;

use sigil_datastore::StoredConfig;

use super::controller::cert_spec;
use super::status::StatusRecord;
use crate::metrics::{CertLabels, CertReadyLabels};
use crate::state::Shared;

/// Sets cert-manager's gauges from the stored status; removes the series of deleted
/// Certificates.
pub async fn publish(s: &Shared, certs: &[StoredConfig], series: &mut BTreeSet<CertLabels>) {
    let m = &s.metrics.certmanager;
    let mut now_series = BTreeSet::new();
    for stored in certs {
        let Ok(spec) = cert_spec(stored) else {
            continue;
        };
        let labels = CertLabels {
            name: stored.key.name.clone(),
            namespace: stored.key.namespace.clone(),
            issuer_name: spec.issuer_ref.name.clone(),
            issuer_kind: spec.issuer_ref.effective_kind().to_owned(),
            issuer_group: spec.issuer_ref.effective_group().to_owned(),
        };
        let rec = match s.ds.get_status(&stored.key).await {
            Ok(Some(r)) => StatusRecord::parse(&r.body),
            _ => StatusRecord::default(),
        };
        let ts = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339).unwrap_or(0);
        m.expiration
            .get_or_create(&labels)
            .set(ts(&rec.status.not_after));
        m.renewal
            .get_or_create(&labels)
            .set(ts(&rec.status.renewal_time));
        let current = rec
            .status
            .condition("Ready")
            .map_or("Unknown", |c| c.status.as_str())
            .to_owned();
        for cond in ["True", "False", "Unknown"] {
            m.ready
                .get_or_create(&ready_labels(&labels, cond))
                .set(i64::from(cond == current));
        }
        now_series.insert(labels);
    }
    for gone in series.difference(&now_series) {
        m.expiration.remove(gone);
        m.renewal.remove(gone);
        for cond in ["True", "False", "Unknown"] {
            m.ready.remove(&ready_labels(gone, cond));
        }
    }
    *series = now_series;
}

fn ready_labels(l: &CertLabels, condition: &str) -> CertReadyLabels {
    CertReadyLabels {
        name: l.name.clone(),
        namespace: l.namespace.clone(),
        condition: condition.to_owned(),
        issuer_name: l.issuer_name.clone(),
        issuer_kind: l.issuer_kind.clone(),
        issuer_group: l.issuer_group.clone(),
    }
}

/// Unix seconds of an RFC 3339 time.
pub fn parse_rfc3339(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
