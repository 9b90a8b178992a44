//! The Certificate controller: a thin loop that, on every configuration change, on a manual
//! renewal, at the earliest renewal or expiry time, and at least every [`RESYNC`], reconciles
//! every Issuer, ClusterIssuer and Certificate. Decisions come from `decide.rs` and
//! `plan.rs`; this file reads the inputs and writes the results.
//!
//! Several replicas may share the datastore: a replica issues only while it holds the
//! object's lease in `resource_status`, and every status write is a compare-and-set on the
//! row's version, so two replicas never both issue for one revision, and a lost race just
//! means looking again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sigil_datastore::{ConfigKey, Error as DsError, StoredConfig};
use sigil_policy::{CertificateSpec, IssuerSpec};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::decide::{self, Action, Attempts, Expected, SecretFacts};
use super::facts::secret_facts;
use super::issue::{self, SecretMeta};
use super::issuers::{self, ResolvedIssuer};
use super::plan::{self, IssuePlan};
use super::status::{CERTIFICATE_REQUEST, StatusRecord, condition};
use crate::metrics::CertLabels;
use crate::secrets;
use crate::state::{Shared, now_unix, now_unix_ms};

/// Longest time between two rounds (issuer Secrets, CA changes on another replica).
pub const RESYNC: Duration = Duration::from_secs(30);
/// How long an issuing lease holds if its replica dies mid-issuance.
const LEASE_MS: i64 = 60_000;
/// Shortest pause between rounds, so a failing step cannot spin.
const MIN_WAIT: Duration = Duration::from_millis(200);

/// The controller's handle in [`Shared`]: wakes it at once (`sigil cert renew`).
#[derive(Default)]
pub struct CertsHandle {
    kick: Notify,
}

impl CertsHandle {
    /// Makes the controller run a round now.
    pub fn kick(&self) {
        self.kick.notify_one();
    }
}

fn rfc3339(unix: i64) -> String {
    crate::mesh::rfc3339_seconds(unix.saturating_mul(1000))
}

/// Runs until shutdown.
pub async fn run(s: Arc<Shared>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut config = s.config.subscribe();
    let mut series = BTreeSet::new();
    loop {
        let wake = reconcile_all(&s, &mut series).await;
        let now = now_unix();
        let until_wake = wake.map_or(RESYNC, |w| {
            Duration::from_secs(u64::try_from(w.saturating_sub(now)).unwrap_or(0))
        });
        let wait = until_wake.min(RESYNC).max(MIN_WAIT);
        tokio::select! {
            _ = config.changed() => {}
            _ = s.certs.kick.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|d| *d) => return Ok(()),
        }
    }
}

/// One round over every object; returns the earliest time something falls due.
pub async fn reconcile_all(s: &Shared, series: &mut BTreeSet<CertLabels>) -> Option<i64> {
    for kind in ["Issuer", "ClusterIssuer"] {
        match s.ds.list_config(Some(kind), None).await {
            Ok(list) => {
                for stored in list {
                    reconcile_issuer(s, &stored).await;
                }
            }
            Err(e) => warn!(error = %e, "cannot list {kind}s; retrying"),
        }
    }
    let certs = match s.ds.list_config(Some("Certificate"), None).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot list Certificates; retrying");
            return None;
        }
    };
    let mut wake: Option<i64> = None;
    let mut seen = BTreeSet::new();
    for stored in &certs {
        seen.insert((stored.key.namespace.clone(), stored.key.name.clone()));
        if let Some(w) = reconcile_certificate(s, stored).await {
            wake = Some(wake.map_or(w, |x| x.min(w)));
        }
    }
    forget_deleted(s, &seen).await;
    super::metrics::publish(s, &certs, series).await;
    wake
}

/// Reads the row of `key`: record and version (0 when none).
async fn load(s: &Shared, key: &ConfigKey) -> Option<(StatusRecord, i64)> {
    match s.ds.get_status(key).await {
        Ok(Some(row)) => Some((StatusRecord::parse(&row.body), row.version)),
        Ok(None) => Some((StatusRecord::default(), 0)),
        Err(e) => {
            warn!(object = %key, error = %e, "cannot read status; retrying");
            None
        }
    }
}

/// Writes `rec` if it changed; `false` when another writer got there first.
async fn save(
    s: &Shared,
    key: &ConfigKey,
    old: &StatusRecord,
    rec: &StatusRecord,
    version: i64,
) -> Option<i64> {
    if old == rec && version > 0 {
        return Some(version);
    }
    let body = match serde_json::to_string(rec) {
        Ok(b) => b,
        Err(e) => {
            warn!(object = %key, error = %e, "cannot encode status");
            return None;
        }
    };
    match s.ds.put_status(key, body, version, now_unix_ms()).await {
        Ok(v) => Some(v),
        Err(DsError::Conflict { .. }) => None,
        Err(e) => {
            warn!(object = %key, error = %e, "cannot write status; retrying");
            None
        }
    }
}

async fn reconcile_issuer(s: &Shared, stored: &StoredConfig) {
    let key = &stored.key;
    let Some((old, version)) = load(s, key).await else {
        return;
    };
    let mut rec = old.clone();
    let secret_ns = if key.kind == "ClusterIssuer" {
        issuers::cluster_resource_namespace(s).to_owned()
    } else {
        key.namespace.clone()
    };
    let result = match issuers::issuer_spec(&stored.body) {
        Ok(spec) => issuers::check(s, &spec, &secret_ns).await.map(|_| spec),
        Err(m) => Err(issuers::IssuerProblem {
            reason: "InvalidIssuer",
            message: m,
        }),
    };
    let now = rfc3339(now_unix());
    let c = match &result {
        Ok(spec) => condition(
            "Ready",
            true,
            ready_reason(spec),
            ready_message(s, spec, &secret_ns),
            stored.generation,
        ),
        Err(p) => condition(
            "Ready",
            false,
            p.reason,
            p.message.clone(),
            stored.generation,
        ),
    };
    let (is_ready, reason, message) = (c.status.clone(), c.reason.clone(), c.message.clone());
    if rec.status.set_condition(c, &now) {
        let kind = if is_ready == "True" {
            "Normal"
        } else {
            "Warning"
        };
        rec.event(kind, &reason, &message, &now);
        info!(issuer = %key, ready = %is_ready, %reason, %message, "issuer status");
    }
    save(s, key, &old, &rec, version).await;
}

fn ready_reason(spec: &IssuerSpec) -> &'static str {
    if spec.ca.is_some() {
        "KeyPairVerified"
    } else {
        "IsReady"
    }
}

fn ready_message(s: &Shared, spec: &IssuerSpec, secret_ns: &str) -> String {
    match &spec.ca {
        Some(ca) => format!(
            "Signing CA verified (Secret {secret_ns}/{})",
            ca.secret_name
        ),
        None if spec.sigil.is_some() => format!(
            "Signing with the Sigil CA of trust domain {}",
            s.cfg.trust_domain
        ),
        None => "Each certificate signs itself".to_owned(),
    }
}

pub(super) fn cert_spec(stored: &StoredConfig) -> Result<CertificateSpec, String> {
    let v: serde_json::Value = serde_json::from_str(&stored.body)
        .map_err(|e| format!("stored object is unreadable: {e}"))?;
    serde_json::from_value(v.get("spec").cloned().unwrap_or_default())
        .map_err(|e| format!("stored spec is unreadable: {e}"))
}

/// Marks the Certificate not Ready for a problem the user must fix; retried on the next
/// configuration change (or [`RESYNC`]).
async fn refuse(
    s: &Shared,
    key: &ConfigKey,
    old: &StatusRecord,
    version: i64,
    generation: i64,
    reason: &str,
    message: &str,
) {
    let mut rec = old.clone();
    let now = rfc3339(now_unix());
    let changed = rec
        .status
        .set_condition(condition("Ready", false, reason, message, generation), &now);
    if changed {
        rec.event("Warning", reason, message, &now);
        warn!(certificate = %key, %reason, %message, "certificate cannot be issued");
    }
    save(s, key, old, &rec, version).await;
}

/// Reconciles one Certificate; returns when it next falls due.
async fn reconcile_certificate(s: &Shared, stored: &StoredConfig) -> Option<i64> {
    let key = &stored.key;
    let (old, version) = load(s, key).await?;
    let generation = stored.generation;
    let spec = match cert_spec(stored) {
        Ok(spec) => spec,
        Err(m) => {
            refuse(s, key, &old, version, generation, "InvalidSpec", &m).await;
            return None;
        }
    };
    let plan = match plan::plan(&spec) {
        Ok(p) => p,
        Err(r) => {
            refuse(s, key, &old, version, generation, r.reason, &r.message).await;
            return None;
        }
    };
    let issuer = match issuers::resolve(s, &key.namespace, &spec.issuer_ref).await {
        Ok(i) => i,
        Err(p) => {
            refuse(s, key, &old, version, generation, p.reason, &p.message).await;
            return None;
        }
    };
    let signing_key = issuer.signing.signing_key().unwrap_or(plan.key_type);
    if let Err(r) = plan::check_signature_algorithm(&spec, signing_key) {
        refuse(s, key, &old, version, generation, r.reason, &r.message).await;
        return None;
    }
    let secret = match secrets::read_secret(s, &key.namespace, &spec.secret_name).await {
        Ok(sec) => sec,
        Err(e) => {
            warn!(certificate = %key, error = %e, "cannot read the certificate's Secret; retrying");
            // Whatever else happens, an expired certificate is not Ready.
            let expired_at = old
                .status
                .not_after
                .as_deref()
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .filter(|t| t.unix_timestamp() <= now_unix());
            if let Some(t) = expired_at {
                let msg = format!(
                    "the certificate expired at {t} and its Secret cannot be read to renew it: {e}"
                );
                refuse(s, key, &old, version, generation, "Expired", &msg).await;
            }
            return Some(now_unix() + 5);
        }
    };
    let facts: Option<SecretFacts> = secret
        .as_ref()
        .map(|sec| secret_facts(sec.get("tls.crt"), sec.get("tls.key"), &sec.annotations));
    let ctx = Ctx {
        s,
        key,
        spec: &spec,
        plan: &plan,
        issuer: &issuer,
        generation,
    };
    ctx.step(old, version, facts, secret).await
}

struct Ctx<'a> {
    s: &'a Shared,
    key: &'a ConfigKey,
    spec: &'a CertificateSpec,
    plan: &'a IssuePlan,
    issuer: &'a ResolvedIssuer,
    generation: i64,
}

impl Ctx<'_> {
    fn expected<'b>(&'b self, issued_spec_hash: &'b str) -> Expected<'b> {
        Expected {
            cert_name: &self.key.name,
            issuer_name: &self.issuer.name,
            issuer_kind: self.issuer.kind,
            issuer_group: sigil_policy::CERT_MANAGER_GROUP,
            key_type: self.plan.key_type,
            spec_hash: &self.plan.spec_hash,
            issued_spec_hash,
        }
    }

    async fn step(
        &self,
        old: StatusRecord,
        version: i64,
        facts: Option<SecretFacts>,
        secret: Option<secrets::SecretData>,
    ) -> Option<i64> {
        let now = now_unix();
        let now_s = rfc3339(now);
        let mut rec = old.clone();
        let issued_hash = rec.sigil.issued_spec_hash.clone();
        let exp = self.expected(&issued_hash);
        let manual = rec
            .status
            .condition("Issuing")
            .is_some_and(|c| c.status == "True" && c.reason == "ManuallyTriggered");
        let attempts = Attempts {
            failed: rec.status.failed_issuance_attempts.unwrap_or(0),
            last_failure: rec.sigil.last_failure_unix,
            same_spec: rec.sigil.failed_spec_hash == self.plan.spec_hash,
            manual,
        };
        let action = decide::decide(
            facts.as_ref(),
            &exp,
            self.plan.renew_before,
            self.plan.renewal_disabled,
            attempts,
            now,
        );
        let (ready, reason, message) = decide::readiness(facts.as_ref(), &exp, now);
        rec.status.set_condition(
            condition("Ready", ready, reason, message, self.generation),
            &now_s,
        );
        if let Some(f) = facts.as_ref().filter(|f| f.has_cert) {
            rec.status.not_before = Some(rfc3339(f.not_before));
            rec.status.not_after = Some(rfc3339(f.not_after));
            rec.status.renewal_time = (!self.plan.renewal_disabled).then(|| {
                rfc3339(decide::renewal_time(
                    f.not_before,
                    f.not_after,
                    self.plan.renew_before,
                ))
            });
        }
        let expiry = facts.as_ref().filter(|f| f.has_cert).map(|f| f.not_after);
        match action {
            Action::UpToDate { wake_at } => {
                rec.status.remove_condition("Issuing");
                if let Some(sec) = &secret {
                    self.refresh_secret_metadata(sec).await;
                }
                save(self.s, self.key, &old, &rec, version).await;
                wake_at
            }
            Action::BackOff { until, trigger } => {
                let msg = format!(
                    "Issuing certificate as {}; a previous attempt failed, retrying at {} \
                     (backoff after {} failed attempts)",
                    trigger.message,
                    rfc3339(until),
                    attempts.failed
                );
                rec.status.set_condition(
                    condition("Issuing", false, "Failed", msg, self.generation),
                    &now_s,
                );
                save(self.s, self.key, &old, &rec, version).await;
                // An expiry already past is no reason to wake early (Ready is False already).
                Some(expiry.filter(|e| *e > now).map_or(until, |e| e.min(until)))
            }
            Action::Issue(trigger) => {
                let started = rec.status.set_condition(
                    condition(
                        "Issuing",
                        true,
                        trigger.reason,
                        trigger.message.clone(),
                        self.generation,
                    ),
                    &now_s,
                );
                // Another replica seeing the same trigger adds nothing (no event repeat).
                if started {
                    rec.event("Normal", "Issuing", &trigger.message, &now_s);
                }
                let Some(version) = save(self.s, self.key, &old, &rec, version).await else {
                    // Someone else wrote meanwhile (a replica, or `sigil cert renew`): look again.
                    return Some(now + 1);
                };
                let held = self
                    .s
                    .ds
                    .acquire_status_lease(
                        self.key,
                        &self.s.server_id,
                        now_unix_ms(),
                        now_unix_ms() + LEASE_MS,
                    )
                    .await
                    .unwrap_or(false);
                if !held {
                    return Some(now + 2);
                }
                // Under the lease, the row must still be the one this decision was made on: a
                // replica that issued meanwhile has moved its version.
                if !matches!(load(self.s, self.key).await, Some((_, v)) if v == version) {
                    let _ = self
                        .s
                        .ds
                        .release_status_lease(self.key, &self.s.server_id)
                        .await;
                    return Some(now + 1);
                }
                let after = self.issue_now(rec.clone(), version, secret.as_ref()).await;
                let _ = self
                    .s
                    .ds
                    .release_status_lease(self.key, &self.s.server_id)
                    .await;
                after
            }
        }
    }

    /// Issues, writes the Secret, the CertificateRequest record and the status.
    async fn issue_now(
        &self,
        before: StatusRecord,
        version: i64,
        secret: Option<&secrets::SecretData>,
    ) -> Option<i64> {
        let now = now_unix();
        let now_s = rfc3339(now);
        let revision = before.status.revision.unwrap_or(0) + 1;
        let plan = self.plan.clone();
        let signing = match &self.issuer.signing {
            issuers::Signing::SelfSigned => issuers::Signing::SelfSigned,
            issuers::Signing::Authority {
                authority,
                root,
                own_ca,
                crl_url,
            } => issuers::Signing::Authority {
                authority: authority.clone(),
                root: root.clone(),
                own_ca: *own_ca,
                crl_url: crl_url.clone(),
            },
        };
        let existing_key = secret
            .and_then(|s| s.get("tls.key"))
            .map(<[u8]>::to_vec)
            .map(zeroize::Zeroizing::new);
        let result = tokio::task::spawn_blocking(move || {
            issue::issue(
                &plan,
                &signing,
                existing_key.as_deref().map(Vec::as_slice),
                time::OffsetDateTime::now_utc(),
            )
        })
        .await
        .unwrap_or_else(|e| Err(format!("issuance task failed: {e}")));
        let meta = SecretMeta {
            cert_name: &self.key.name,
            issuer_name: &self.issuer.name,
            issuer_kind: self.issuer.kind,
            issuer_group: sigil_policy::CERT_MANAGER_GROUP,
            spec: self.spec,
        };
        let written = match result {
            Ok(issued) => {
                let data = issue::secret(&issued, &meta);
                secrets::write_secret(self.s, &self.key.namespace, &self.spec.secret_name, &data)
                    .await
                    .map(|()| issued)
                    .map_err(|e| format!("cannot write Secret {}: {e}", self.spec.secret_name))
            }
            Err(e) => Err(e),
        };
        let from = format!("{} {:?}", self.issuer.kind, self.issuer.name);
        if let (Ok(issued), issuers::Signing::Authority { own_ca: true, .. }) =
            (&written, &self.issuer.signing)
        {
            issue::record_issued(self.s, self.key, issued).await;
        }
        match &written {
            Ok(issued) => {
                info!(certificate = %self.key, serial = %issued.serial_hex, not_after = %rfc3339(issued.not_after), issuer = %from, revision, "certificate issued");
            }
            Err(e) => {
                warn!(certificate = %self.key, issuer = %from, error = %e, "certificate issuance failed");
            }
        }
        self.record_request(revision, &written, &now_s).await;
        // The outcome must land even if another writer (a replica that saw the same trigger,
        // `sigil cert renew`) touched the row meanwhile: re-read and re-apply on a conflict.
        let (mut base, mut version) = (before, version);
        let mut rec = base.clone();
        for _ in 0..5 {
            rec = base.clone();
            self.apply_outcome(&mut rec, &written, revision, now, &now_s, &from);
            if save(self.s, self.key, &base, &rec, version).await.is_some() {
                break;
            }
            match load(self.s, self.key).await {
                Some((latest, v)) => (base, version) = (latest, v),
                None => break,
            }
        }
        match written {
            Ok(i) => Some(decide::renewal_time(
                i.not_before,
                i.not_after,
                self.plan.renew_before,
            )),
            Err(_) => {
                Some(now + decide::backoff_secs(rec.status.failed_issuance_attempts.unwrap_or(1)))
            }
        }
    }

    /// Applies an issuance's outcome to a status record.
    fn apply_outcome(
        &self,
        rec: &mut StatusRecord,
        written: &Result<issue::Issued, String>,
        revision: i64,
        now: i64,
        now_s: &str,
        from: &str,
    ) {
        match &written {
            Ok(issued) => {
                rec.status.revision = Some(revision);
                rec.status.failed_issuance_attempts = None;
                rec.status.last_failure_time = None;
                rec.sigil.last_failure_unix = None;
                rec.sigil.failed_spec_hash.clear();
                rec.sigil.issued_spec_hash = self.plan.spec_hash.clone();
                rec.status.not_before = Some(rfc3339(issued.not_before));
                rec.status.not_after = Some(rfc3339(issued.not_after));
                let renewal = decide::renewal_time(
                    issued.not_before,
                    issued.not_after,
                    self.plan.renew_before,
                );
                rec.status.renewal_time = (!self.plan.renewal_disabled).then(|| rfc3339(renewal));
                rec.status.remove_condition("Issuing");
                rec.status.set_condition(
                    condition(
                        "Ready",
                        true,
                        "Ready",
                        "Certificate is up to date and has not expired",
                        self.generation,
                    ),
                    now_s,
                );
                rec.event(
                    "Normal",
                    "Issuing",
                    &format!("Successfully issued certificate from {from}"),
                    now_s,
                );
            }
            Err(e) => {
                let failed = rec.status.failed_issuance_attempts.unwrap_or(0) + 1;
                rec.status.failed_issuance_attempts = Some(failed);
                rec.status.last_failure_time = Some(now_s.to_owned());
                rec.sigil.last_failure_unix = Some(now);
                rec.sigil.failed_spec_hash = self.plan.spec_hash.clone();
                let msg = format!(
                    "The certificate request has failed to complete and will be retried: {e}"
                );
                rec.status.set_condition(
                    condition("Issuing", false, "Failed", msg.clone(), self.generation),
                    now_s,
                );
                rec.event("Warning", "Failed", &msg, now_s);
            }
        }
    }

    /// Keeps a CertificateRequest record per revision, pruned to `revisionHistoryLimit`.
    async fn record_request(
        &self,
        revision: i64,
        result: &Result<issue::Issued, String>,
        now_s: &str,
    ) {
        let name = format!("{}-{revision}", self.key.name);
        let (ready, reason, message, certificate) = match result {
            Ok(i) => (
                true,
                "Issued",
                "Certificate fetched from issuer successfully".to_owned(),
                Some(i.leaf_pem.clone()),
            ),
            Err(e) => (false, "Failed", e.clone(), None),
        };
        let body = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {
                "name": name,
                "namespace": self.key.namespace,
                "creationTimestamp": now_s,
                "annotations": {
                    decide::ANN_CERT_NAME: self.key.name,
                    decide::ANN_REVISION: revision.to_string(),
                },
            },
            "spec": {
                "issuerRef": {
                    "name": self.issuer.name,
                    "kind": self.issuer.kind,
                    "group": sigil_policy::CERT_MANAGER_GROUP,
                },
                "duration": self.spec.duration.clone().unwrap_or_else(|| "2160h".into()),
                "isCA": self.spec.is_ca,
                "usages": self.spec.usages,
            },
            "status": {
                "conditions": [
                    {"type": "Approved", "status": "True", "reason": "sigil", "message": "Certificate request has been approved by the Sigil server", "lastTransitionTime": now_s},
                    {"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": reason, "message": message, "lastTransitionTime": now_s},
                ],
                "certificate": certificate,
            },
        });
        let key = ConfigKey::new(CERTIFICATE_REQUEST, &self.key.namespace, &name);
        if let Err(e) = self
            .s
            .ds
            .put_status(&key, body.to_string(), 0, now_unix_ms())
            .await
        {
            warn!(request = %key, error = %e, "cannot record the CertificateRequest");
        }
        // Prune: keep the newest `revisionHistoryLimit` revisions of this certificate.
        let Ok(all) = self
            .s
            .ds
            .list_status(CERTIFICATE_REQUEST, Some(&self.key.namespace))
            .await
        else {
            return;
        };
        let mut mine: Vec<(i64, ConfigKey)> = all
            .into_iter()
            .filter_map(|r| {
                let rev = r
                    .key
                    .name
                    .strip_prefix(&format!("{}-", self.key.name))?
                    .parse()
                    .ok()?;
                Some((rev, r.key))
            })
            .collect();
        mine.sort();
        let extra = mine.len().saturating_sub(self.plan.revision_history_limit);
        for (_, k) in mine.into_iter().take(extra) {
            let _ = self.s.ds.delete_status(&k).await;
        }
    }

    /// Applies `secretTemplate` and `additionalOutputFormats` changes to an up-to-date Secret
    /// without re-issuing (as cert-manager does).
    async fn refresh_secret_metadata(&self, sec: &secrets::SecretData) {
        let meta = SecretMeta {
            cert_name: &self.key.name,
            issuer_name: &self.issuer.name,
            issuer_kind: self.issuer.kind,
            issuer_group: sigil_policy::CERT_MANAGER_GROUP,
            spec: self.spec,
        };
        let (labels, annotations) = issue::secret_metadata(&meta);
        let want_der = self.plan.der_output;
        let want_combined = self.plan.combined_pem_output;
        let has_der = sec.get("key.der").is_some();
        let has_combined = sec.get("tls-combined.pem").is_some();
        if labels == sec.labels
            && annotations == sec.annotations
            && want_der == has_der
            && want_combined == has_combined
        {
            return;
        }
        let mut data = sec.data.clone();
        let key = sec.get("tls.key").unwrap_or_default().to_vec();
        let crt = sec.get("tls.crt").unwrap_or_default().to_vec();
        data.remove("key.der");
        data.remove("tls-combined.pem");
        if want_der && let Some(der) = issue::key_der_of(&key) {
            data.insert("key.der".into(), der);
        }
        if want_combined {
            let mut c = zeroize::Zeroizing::new(key.clone());
            c.extend_from_slice(&crt);
            data.insert("tls-combined.pem".into(), c);
        }
        let updated = secrets::SecretData {
            type_: sec.type_.clone(),
            data,
            labels,
            annotations,
        };
        if let Err(e) = secrets::write_secret(
            self.s,
            &self.key.namespace,
            &self.spec.secret_name,
            &updated,
        )
        .await
        {
            warn!(certificate = %self.key, error = %e, "cannot update the Secret's metadata");
        }
    }
}

/// Drops the status and CertificateRequests of deleted Certificates.
async fn forget_deleted(s: &Shared, live: &BTreeSet<(String, String)>) {
    if let Ok(rows) = s.ds.list_status("Certificate", None).await {
        for r in rows {
            // Re-checked against the store: a Certificate applied during this round (and
            // already given a status by another replica) is not in `live` yet.
            if !live.contains(&(r.key.namespace.clone(), r.key.name.clone()))
                && matches!(s.ds.get_config(&r.key).await, Ok(None))
            {
                let _ = s.ds.delete_status(&r.key).await;
            }
        }
    }
    if let Ok(rows) = s.ds.list_status(CERTIFICATE_REQUEST, None).await {
        for r in rows {
            let owner: Option<String> = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| {
                    v.pointer("/metadata/annotations/cert-manager.io~1certificate-name")?
                        .as_str()
                        .map(str::to_owned)
                });
            if owner.is_some_and(|o| !live.contains(&(r.key.namespace.clone(), o))) {
                let _ = s.ds.delete_status(&r.key).await;
            }
        }
    }
}
