//! The Certificate controller's decisions, as pure functions of (spec, Secret facts, stored
//! status, now): readiness, re-issuance triggers in cert-manager's order, the renewal time, and
//! the failure backoff. The async loop in `controller.rs` only gathers the inputs and carries
//! the decision out.

use std::collections::BTreeMap;

use sigil_ca::KeyType;

use super::plan::RenewBefore;

/// cert-manager annotations on the Secret.
pub const ANN_CERT_NAME: &str = "cert-manager.io/certificate-name";
pub const ANN_ISSUER_NAME: &str = "cert-manager.io/issuer-name";
pub const ANN_ISSUER_KIND: &str = "cert-manager.io/issuer-kind";
pub const ANN_ISSUER_GROUP: &str = "cert-manager.io/issuer-group";
pub const ANN_COMMON_NAME: &str = "cert-manager.io/common-name";
pub const ANN_ALT_NAMES: &str = "cert-manager.io/alt-names";
pub const ANN_IP_SANS: &str = "cert-manager.io/ip-sans";
pub const ANN_URI_SANS: &str = "cert-manager.io/uri-sans";
/// On CertificateRequest records: the Certificate revision they were made for.
pub const ANN_REVISION: &str = "cert-manager.io/certificate-revision";

/// Backoff after the first failed issuance (cert-manager: 1h × 2^(n−1)).
pub const BACKOFF_BASE_SECS: i64 = 3600;
/// The longest backoff (cert-manager: 32h).
pub const BACKOFF_MAX_SECS: i64 = 32 * 3600;

/// What the controller found in the Secret named by `spec.secretName`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFacts {
    /// `tls.crt` holds at least one parsable certificate.
    pub has_cert: bool,
    /// `tls.key` holds a parsable private key.
    pub has_key: bool,
    /// The key in `tls.key` is the one certified in `tls.crt`.
    pub key_matches: bool,
    pub key_type: Option<KeyType>,
    /// Unix seconds of the leaf's validity.
    pub not_before: i64,
    pub not_after: i64,
    pub annotations: BTreeMap<String, String>,
}

/// What the Secret should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected<'a> {
    pub cert_name: &'a str,
    pub issuer_name: &'a str,
    pub issuer_kind: &'a str,
    pub issuer_group: &'a str,
    pub key_type: KeyType,
    pub spec_hash: &'a str,
    /// The spec hash of the last successful issuance (empty: none recorded).
    pub issued_spec_hash: &'a str,
}

/// A reason to issue: cert-manager's condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub reason: &'static str,
    pub message: String,
}

fn trig(reason: &'static str, message: impl Into<String>) -> Trigger {
    Trigger {
        reason,
        message: message.into(),
    }
}

/// The first re-issuance trigger that fires, in cert-manager's order: Secret missing, data
/// missing, key/cert mismatch, issuer annotations, certificate-name annotation, key type,
/// spec changed, renewal due (or expired).
pub fn trigger(
    secret: Option<&SecretFacts>,
    exp: &Expected<'_>,
    renewal_time: Option<i64>,
    renewal_disabled: bool,
    now: i64,
) -> Option<Trigger> {
    let Some(s) = secret else {
        return Some(trig(
            "DoesNotExist",
            "Issuing certificate as Secret does not exist",
        ));
    };
    if !s.has_cert || !s.has_key {
        return Some(trig(
            "MissingData",
            "Issuing certificate as Secret does not contain a certificate and private key",
        ));
    }
    if !s.key_matches {
        return Some(trig(
            "InvalidKeyPair",
            "Issuing certificate as Secret contains a private key that does not match the \
             certificate",
        ));
    }
    let ann = |k: &str| s.annotations.get(k).map(String::as_str).unwrap_or("");
    if ann(ANN_ISSUER_NAME) != exp.issuer_name
        || ann(ANN_ISSUER_KIND) != exp.issuer_kind
        || ann(ANN_ISSUER_GROUP) != exp.issuer_group
    {
        return Some(trig(
            "IncorrectIssuer",
            format!(
                "Issuing certificate as Secret was previously issued by {}.{}/{}",
                ann(ANN_ISSUER_KIND),
                ann(ANN_ISSUER_GROUP),
                ann(ANN_ISSUER_NAME)
            ),
        ));
    }
    if ann(ANN_CERT_NAME) != exp.cert_name {
        return Some(trig(
            "IncorrectCertificate",
            format!(
                "Issuing certificate as Secret was previously issued for Certificate {:?}",
                ann(ANN_CERT_NAME)
            ),
        ));
    }
    if s.key_type != Some(exp.key_type) {
        return Some(trig(
            "SecretMismatch",
            format!(
                "Issuing certificate as the Secret's private key is {} but the spec asks for {}",
                s.key_type.map_or("unknown", KeyType::name),
                exp.key_type.name()
            ),
        ));
    }
    if exp.issued_spec_hash != exp.spec_hash {
        return Some(trig(
            "RequestChanged",
            "Issuing certificate as the spec changed since the last issuance",
        ));
    }
    if now >= s.not_after {
        return Some(trig(
            "Expired",
            "Issuing certificate as the certificate has expired",
        ));
    }
    if !renewal_disabled && renewal_time.is_some_and(|t| now >= t) {
        return Some(trig(
            "Renewing",
            "Renewing certificate as renewal was scheduled",
        ));
    }
    None
}

/// Readiness of what the Secret holds, ignoring issuer problems: `(ready, reason, message)`.
/// An expired certificate is never Ready, whatever else is going on (cert-manager#7895 is the
/// bug this avoids: Ready stayed True after expiry while a renewal was stuck).
pub fn readiness(
    secret: Option<&SecretFacts>,
    exp: &Expected<'_>,
    now: i64,
) -> (bool, &'static str, String) {
    if let Some(s) = secret
        && s.has_cert
        && s.has_key
        && now >= s.not_after
    {
        return (
            false,
            "Expired",
            format!(
                "Certificate expired on {}",
                crate::mesh::rfc3339_seconds(s.not_after * 1000)
            ),
        );
    }
    match trigger(secret, exp, None, true, now) {
        Some(t) => (false, t.reason, t.message),
        None => (
            true,
            "Ready",
            "Certificate is up to date and has not expired".to_owned(),
        ),
    }
}

/// When to renew a certificate valid `[not_before, not_after)`: cert-manager's
/// `RenewalTime`, truncated to whole seconds. A `renewBefore` at or beyond the actual
/// lifetime (e.g. the issuer shortened it) falls back to a third.
pub fn renewal_time(not_before: i64, not_after: i64, rb: RenewBefore) -> i64 {
    let life = (not_after - not_before).max(0);
    let mut before = match rb {
        RenewBefore::Default => life / 3,
        RenewBefore::Fixed(s) => s,
        RenewBefore::Percent(p) => life * p / 100,
    };
    if before >= life {
        before = life / 3;
    }
    not_after - before
}

/// How long to wait after `attempts` consecutive failures: 1h × 2^(attempts−1), at most 32h.
pub fn backoff_secs(attempts: i64) -> i64 {
    if attempts <= 0 {
        return 0;
    }
    let exp = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(10);
    (BACKOFF_BASE_SECS << exp).min(BACKOFF_MAX_SECS)
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Issue, for this reason.
    Issue(Trigger),
    /// An issuance is due but failed recently: wait until then.
    BackOff { until: i64, trigger: Trigger },
    /// Nothing due; look again at `wake_at` (renewal time or expiry).
    UpToDate { wake_at: Option<i64> },
}

/// The stored facts the decision needs about past attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub failed: i64,
    pub last_failure: Option<i64>,
    /// The failures were for the current spec (a changed spec retries at once).
    pub same_spec: bool,
    /// A user asked for renewal (`sigil cert renew`): bypasses backoff.
    pub manual: bool,
}

/// Decides the action for a Certificate whose spec and issuer are usable.
pub fn decide(
    secret: Option<&SecretFacts>,
    exp: &Expected<'_>,
    rb: RenewBefore,
    renewal_disabled: bool,
    attempts: Attempts,
    now: i64,
) -> Action {
    let renewal = secret.map(|s| renewal_time(s.not_before, s.not_after, rb));
    let due = if attempts.manual {
        Some(trig(
            "ManuallyTriggered",
            "Certificate re-issuance manually triggered",
        ))
    } else {
        trigger(secret, exp, renewal, renewal_disabled, now)
    };
    let Some(t) = due else {
        let expiry = secret.map(|s| s.not_after);
        let wake_at = match (renewal.filter(|_| !renewal_disabled), expiry) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        };
        return Action::UpToDate { wake_at };
    };
    if !attempts.manual
        && attempts.same_spec
        && attempts.failed > 0
        && let Some(last) = attempts.last_failure
    {
        let until = last + backoff_secs(attempts.failed);
        if now < until {
            return Action::BackOff { until, trigger: t };
        }
    }
    Action::Issue(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn exp() -> Expected<'static> {
        Expected {
            cert_name: "billing-service-cert",
            issuer_name: "internal-ca",
            issuer_kind: "ClusterIssuer",
            issuer_group: "cert-manager.io",
            key_type: KeyType::Rsa2048,
            spec_hash: "h1",
            issued_spec_hash: "h1",
        }
    }

    fn good(nb: i64, na: i64) -> SecretFacts {
        let annotations = [
            (ANN_CERT_NAME, "billing-service-cert"),
            (ANN_ISSUER_NAME, "internal-ca"),
            (ANN_ISSUER_KIND, "ClusterIssuer"),
            (ANN_ISSUER_GROUP, "cert-manager.io"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        SecretFacts {
            has_cert: true,
            has_key: true,
            key_matches: true,
            key_type: Some(KeyType::Rsa2048),
            not_before: nb,
            not_after: na,
            annotations,
        }
    }

    #[test]
    fn triggers_fire_in_cert_manager_order() {
        let now = 1000;
        let reason = |s: Option<&SecretFacts>, e: &Expected<'_>| {
            trigger(s, e, Some(now + H), false, now).map(|t| t.reason)
        };
        assert_eq!(reason(None, &exp()), Some("DoesNotExist"));
        // Several problems at once: the earliest in the order wins.
        let mut s = good(0, 10 * H);
        s.has_key = false;
        s.key_matches = false;
        assert_eq!(reason(Some(&s), &exp()), Some("MissingData"));
        let mut s = good(0, 10 * H);
        s.key_matches = false;
        s.annotations.clear();
        assert_eq!(reason(Some(&s), &exp()), Some("InvalidKeyPair"));
        let mut s = good(0, 10 * H);
        s.annotations.insert(ANN_ISSUER_NAME.into(), "other".into());
        s.key_type = Some(KeyType::EcP256);
        assert_eq!(reason(Some(&s), &exp()), Some("IncorrectIssuer"));
        let mut s = good(0, 10 * H);
        s.annotations.insert(ANN_CERT_NAME.into(), "other".into());
        assert_eq!(reason(Some(&s), &exp()), Some("IncorrectCertificate"));
        let mut s = good(0, 10 * H);
        s.key_type = Some(KeyType::EcP256);
        assert_eq!(reason(Some(&s), &exp()), Some("SecretMismatch"));
        let changed = Expected {
            spec_hash: "h2",
            ..exp()
        };
        assert_eq!(
            reason(Some(&good(0, 10 * H)), &changed),
            Some("RequestChanged")
        );
        assert_eq!(reason(Some(&good(0, 10 * H)), &exp()), None);
        assert_eq!(
            trigger(Some(&good(0, 10 * H)), &exp(), Some(now), false, now).map(|t| t.reason),
            Some("Renewing")
        );
        // Renewal disabled: no renewal, but an expired certificate is still replaced.
        assert_eq!(
            trigger(Some(&good(0, 10 * H)), &exp(), Some(now), true, now),
            None
        );
        assert_eq!(
            trigger(Some(&good(0, now)), &exp(), Some(now), true, now).map(|t| t.reason),
            Some("Expired")
        );
    }

    #[test]
    fn renewal_time_follows_cert_manager() {
        // The seed: 24h with renewBefore 8h renews at notAfter − 8h.
        let (nb, na) = (1_000_000, 1_000_000 + 24 * H);
        assert_eq!(renewal_time(nb, na, RenewBefore::Fixed(8 * H)), na - 8 * H);
        // Default: at two thirds of the actual life.
        assert_eq!(renewal_time(nb, na, RenewBefore::Default), nb + 16 * H);
        assert_eq!(renewal_time(nb, na, RenewBefore::Percent(25)), na - 6 * H);
        // renewBefore beyond the actual (e.g. issuer-shortened) life falls back to a third.
        assert_eq!(
            renewal_time(nb, nb + 3 * H, RenewBefore::Fixed(8 * H)),
            nb + 2 * H
        );
    }

    #[test]
    fn backoff_doubles_up_to_32h() {
        assert_eq!(
            (1..=8).map(backoff_secs).collect::<Vec<_>>(),
            [H, 2 * H, 4 * H, 8 * H, 16 * H, 32 * H, 32 * H, 32 * H]
        );
        assert_eq!(backoff_secs(0), 0);
        assert_eq!(backoff_secs(i64::MAX), 32 * H);
    }

    #[test]
    fn expiry_forces_ready_false_even_while_renewal_is_stuck() {
        let s = good(0, 10 * H);
        assert!(readiness(Some(&s), &exp(), 9 * H).0);
        let (ready, reason, msg) = readiness(Some(&s), &exp(), 10 * H);
        assert!(!ready);
        assert_eq!(reason, "Expired");
        assert!(msg.contains("expired"));
        // Renewal failing with backoff at the same moment does not change that.
        let a = Attempts {
            failed: 3,
            last_failure: Some(9 * H),
            same_spec: true,
            manual: false,
        };
        assert!(matches!(
            decide(Some(&s), &exp(), RenewBefore::Fixed(H), false, a, 10 * H),
            Action::BackOff { .. }
        ));
        assert!(!readiness(Some(&s), &exp(), 10 * H).0);
        assert_eq!(readiness(None, &exp(), 0).1, "DoesNotExist");
    }

    #[test]
    fn decisions_with_an_injected_clock() {
        let (nb, na) = (0, 24 * H);
        let s = good(nb, na);
        let rb = RenewBefore::Fixed(8 * H);
        let none = Attempts::default();
        // Before the renewal time: up to date, wake at notAfter − 8h.
        assert_eq!(
            decide(Some(&s), &exp(), rb, false, none, 15 * H),
            Action::UpToDate {
                wake_at: Some(16 * H)
            }
        );
        match decide(Some(&s), &exp(), rb, false, none, 16 * H) {
            Action::Issue(t) => assert_eq!(t.reason, "Renewing"),
            other => panic!("{other:?}"),
        }
        // After two failures: wait 2h from the last one, then try again.
        let failed = Attempts {
            failed: 2,
            last_failure: Some(16 * H),
            same_spec: true,
            manual: false,
        };
        assert_eq!(
            decide(Some(&s), &exp(), rb, false, failed, 17 * H),
            Action::BackOff {
                until: 18 * H,
                trigger: trig("Renewing", "Renewing certificate as renewal was scheduled")
            }
        );
        assert!(matches!(
            decide(Some(&s), &exp(), rb, false, failed, 18 * H),
            Action::Issue(_)
        ));
        // A new spec or a manual renewal retries at once.
        let new_spec = Attempts {
            same_spec: false,
            ..failed
        };
        assert!(matches!(
            decide(None, &exp(), rb, false, new_spec, 17 * H),
            Action::Issue(_)
        ));
        let manual = Attempts {
            manual: true,
            ..failed
        };
        match decide(Some(&s), &exp(), rb, false, manual, H) {
            Action::Issue(t) => assert_eq!(t.reason, "ManuallyTriggered"),
            other => panic!("{other:?}"),
        }
    }
}
