//! What the Certificate controller stores per object (the `resource_status` rows): the
//! cert-manager `status` block as users see it, the object's events, and the controller's own
//! bookkeeping. Pure data with serde; no IO.

use serde::{Deserialize, Serialize};

/// Kind name under which CertificateRequest records are stored.
pub const CERTIFICATE_REQUEST: &str = "CertificateRequest";

/// How many events one object keeps (oldest dropped first).
pub const MAX_EVENTS: usize = 20;

/// `True`, `False` or `Unknown`, as Kubernetes condition statuses.
pub type ConditionStatus = String;

/// One status condition (`Ready`, `Issuing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339.
    #[serde(default)]
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// cert-manager's `Certificate.status` (and `Issuer.status`, which uses `conditions` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
}

impl ResourceStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Sets a condition; `lastTransitionTime` moves only when the status changes (as
    /// Kubernetes does). Returns whether anything changed.
    pub fn set_condition(&mut self, mut c: Condition, now_rfc3339: &str) -> bool {
        match self.conditions.iter_mut().find(|o| o.type_ == c.type_) {
            Some(old) => {
                c.last_transition_time = if old.status == c.status {
                    old.last_transition_time.clone()
                } else {
                    now_rfc3339.to_owned()
                };
                let changed = *old != c;
                *old = c;
                changed
            }
            None => {
                c.last_transition_time = now_rfc3339.to_owned();
                self.conditions.push(c);
                true
            }
        }
    }

    /// Removes a condition; returns whether it was there.
    pub fn remove_condition(&mut self, type_: &str) -> bool {
        let before = self.conditions.len();
        self.conditions.retain(|c| c.type_ != type_);
        before != self.conditions.len()
    }
}

/// One event, as `kubectl describe` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i64,
    /// RFC 3339.
    pub first_timestamp: String,
    pub last_timestamp: String,
}

/// The controller's bookkeeping, not shown as status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bookkeeping {
    /// Hash of the issuance-relevant spec (and issuer reference) of the last issuance.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issued_spec_hash: String,
    /// Unix seconds of the last failed issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_unix: Option<i64>,
    /// The spec hash the failures counted in `failedIssuanceAttempts` were for; a new spec
    /// starts again without backoff.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failed_spec_hash: String,
}

/// One stored row: status, events and bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    #[serde(default)]
    pub status: ResourceStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    #[serde(default)]
    pub sigil: Bookkeeping,
}

impl StatusRecord {
    /// Parses a stored body; an unreadable one starts afresh (the controller rewrites it).
    pub fn parse(body: &str) -> StatusRecord {
        serde_json::from_str(body).unwrap_or_default()
    }

    /// Records an event; a repeat of the last one (same type, reason, message) bumps its count.
    pub fn event(&mut self, type_: &str, reason: &str, message: &str, now_rfc3339: &str) {
        if let Some(last) = self.events.last_mut()
            && last.type_ == type_
            && last.reason == reason
            && last.message == message
        {
            last.count += 1;
            now_rfc3339.clone_into(&mut last.last_timestamp);
            return;
        }
        self.events.push(Event {
            type_: type_.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            count: 1,
            first_timestamp: now_rfc3339.to_owned(),
            last_timestamp: now_rfc3339.to_owned(),
        });
        if self.events.len() > MAX_EVENTS {
            let extra = self.events.len() - MAX_EVENTS;
            self.events.drain(..extra);
        }
    }
}

/// A condition with the given fields (transition time filled in by
/// [`ResourceStatus::set_condition`]).
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: i64,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        last_transition_time: String::new(),
        observed_generation: Some(generation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut s = ResourceStatus::default();
        assert!(s.set_condition(condition("Ready", false, "DoesNotExist", "m", 1), "t1"));
        assert!(s.set_condition(condition("Ready", false, "Other", "m2", 1), "t2"));
        assert_eq!(s.condition("Ready").unwrap().last_transition_time, "t1");
        assert!(!s.set_condition(condition("Ready", false, "Other", "m2", 1), "t3"));
        assert!(s.set_condition(condition("Ready", true, "Ready", "ok", 1), "t4"));
        assert_eq!(s.condition("Ready").unwrap().last_transition_time, "t4");
        assert!(s.remove_condition("Ready"));
        assert!(!s.remove_condition("Ready"));
    }

    #[test]
    fn repeated_events_are_counted_and_bounded() {
        let mut r = StatusRecord::default();
        r.event("Warning", "Failed", "boom", "t1");
        r.event("Warning", "Failed", "boom", "t2");
        assert_eq!(r.events.len(), 1);
        assert_eq!(
            (r.events[0].count, r.events[0].last_timestamp.as_str()),
            (2, "t2")
        );
        for i in 0..(MAX_EVENTS + 5) {
            r.event("Normal", "Issuing", &format!("n{i}"), "t");
        }
        assert_eq!(r.events.len(), MAX_EVENTS);
        assert_eq!(
            r.events.last().unwrap().message,
            format!("n{}", MAX_EVENTS + 4)
        );
    }

    #[test]
    fn unreadable_body_starts_afresh() {
        assert_eq!(StatusRecord::parse("{}"), StatusRecord::default());
        assert_eq!(StatusRecord::parse("not json"), StatusRecord::default());
    }
}
