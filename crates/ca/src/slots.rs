//! The rotation journal logic shared by X.509 CAs ([`crate::rotation::Journal`]) and JWT
//! signing keys ([`crate::jwt::JwtJournal`]), written once over [`RotatingKey`] entries.
//!
//! Each journal keeps at most one `Prepared` and one `Active` entry and any number of `Old`
//! ones; [`plan`] says what to do next with SPIRE's timing (see [`crate::rotation`]). These
//! functions are pure: the managers ([`crate::lifecycle`]) apply them.

use std::path::Path;

use time::OffsetDateTime;

use crate::keys::KeyType;
use crate::rotation::{Action, CaStatus, activate_threshold, prepare_threshold};

/// One generation of a rotating signing key, as its journal records it.
pub(crate) trait RotatingKey {
    /// How messages name one entry ("CA", "key").
    const NOUN: &'static str;
    /// How messages name several entries ("entries", "keys").
    const PLURAL: &'static str;

    fn id(&self) -> &str;
    fn status(&self) -> CaStatus;
    fn set_status(&mut self, status: CaStatus);
    fn set_activated_at(&mut self, at: OffsetDateTime);
    fn not_before(&self) -> OffsetDateTime;
    fn not_after(&self) -> OffsetDateTime;
    fn key_type(&self) -> KeyType;
    /// The private key file, relative to the key directory (or absolute).
    fn key_file(&self) -> &Path;
    /// What to do when this entry's key file cannot be loaded.
    fn lost_key_hint(&self) -> &'static str;
}

/// The [`RotatingKey`] accessors of an entry struct with `status`, `key_type`, `key_file`,
/// `not_before`, `not_after` and `activated_at` fields, its ID being the field `$id`.
macro_rules! rotating_key_fields {
    ($id:ident) => {
        fn id(&self) -> &str {
            &self.$id
        }

        fn status(&self) -> CaStatus {
            self.status
        }

        fn set_status(&mut self, status: CaStatus) {
            self.status = status;
        }

        fn set_activated_at(&mut self, at: OffsetDateTime) {
            self.activated_at = Some(at);
        }

        fn not_before(&self) -> OffsetDateTime {
            self.not_before
        }

        fn not_after(&self) -> OffsetDateTime {
            self.not_after
        }

        fn key_type(&self) -> KeyType {
            self.key_type
        }

        fn key_file(&self) -> &Path {
            &self.key_file
        }
    };
}
pub(crate) use rotating_key_fields;

pub(crate) fn with_status<E: RotatingKey>(entries: &[E], status: CaStatus) -> Option<&E> {
    entries.iter().find(|e| e.status() == status)
}

pub(crate) fn get<'a, E: RotatingKey>(entries: &'a [E], id: &str) -> Option<&'a E> {
    entries.iter().find(|e| e.id() == id)
}

/// Structural checks: known version, non-empty unique IDs, `notBefore < notAfter`, at most one
/// active and one prepared entry. The message says what is wrong.
pub(crate) fn validate<E: RotatingKey>(
    version: u32,
    supported: u32,
    entries: &[E],
) -> Result<(), String> {
    if version != supported {
        return Err(format!(
            "version {version} is not supported (this server reads version {supported})"
        ));
    }
    let noun = E::NOUN;
    for (i, e) in entries.iter().enumerate() {
        if e.id().is_empty() {
            return Err(format!("a {noun} has an empty ID"));
        }
        if entries[..i].iter().any(|o| o.id() == e.id()) {
            return Err(format!("{noun} {} appears twice", e.id()));
        }
        if e.not_before() >= e.not_after() {
            return Err(format!("{noun} {} has notBefore >= notAfter", e.id()));
        }
    }
    for status in [CaStatus::Active, CaStatus::Prepared] {
        let n = entries.iter().filter(|e| e.status() == status).count();
        if n > 1 {
            return Err(format!(
                "{n} {} are {}; at most one may be",
                E::PLURAL,
                status.as_str()
            ));
        }
    }
    Ok(())
}

/// Makes the prepared entry `id` active; the previously active one (returned) becomes `Old`.
pub(crate) fn activate<E: RotatingKey>(
    entries: &mut [E],
    id: &str,
    now: OffsetDateTime,
) -> Result<Option<String>, String> {
    if get(entries, id).map(RotatingKey::status) != Some(CaStatus::Prepared) {
        return Err(format!("{} {id} is not prepared", E::NOUN));
    }
    let mut previous = None;
    for e in entries {
        if e.status() == CaStatus::Active {
            e.set_status(CaStatus::Old);
            previous = Some(e.id().to_owned());
        } else if e.id() == id {
            e.set_status(CaStatus::Active);
            e.set_activated_at(now);
        }
    }
    Ok(previous)
}

/// Removes the given entries, returning them.
pub(crate) fn prune<E: RotatingKey>(entries: &mut Vec<E>, ids: &[String]) -> Vec<E> {
    let (gone, kept) = std::mem::take(entries)
        .into_iter()
        .partition(|e| ids.iter().any(|id| id == e.id()));
    *entries = kept;
    gone
}

/// The next rotation step at `now`. Priority: prune expired non-active entries; activate the
/// prepared entry when it is due or nothing usable is active; prepare when due or when there
/// is nothing to activate.
pub(crate) fn plan<E: RotatingKey>(entries: &[E], now: OffsetDateTime) -> Action {
    let expired: Vec<String> = entries
        .iter()
        .filter(|e| e.status() != CaStatus::Active && e.not_after() <= now)
        .map(|e| e.id().to_owned())
        .collect();
    if !expired.is_empty() {
        return Action::Prune(expired);
    }
    let prepared = with_status(entries, CaStatus::Prepared);
    let ready = prepared.filter(|p| p.not_before() <= now);
    match with_status(entries, CaStatus::Active) {
        Some(a) if a.not_after() > now => {
            if now >= activate_threshold(a.not_before(), a.not_after())
                && let Some(p) = ready
            {
                return Action::Activate(p.id().to_owned());
            }
            if now >= prepare_threshold(a.not_before(), a.not_after()) && prepared.is_none() {
                return Action::Prepare;
            }
            Action::None
        }
        // Nothing signs: take the prepared entry at once, or make one.
        _ => match (prepared, ready) {
            (_, Some(p)) => Action::Activate(p.id().to_owned()),
            (None, None) => Action::Prepare,
            (Some(_), None) => Action::None,
        },
    }
}

/// When [`plan`] will next return something other than [`Action::None`], if ever.
pub(crate) fn next_deadline<E: RotatingKey>(entries: &[E]) -> Option<OffsetDateTime> {
    let mut times: Vec<OffsetDateTime> = entries
        .iter()
        .filter(|e| e.status() != CaStatus::Active)
        .map(RotatingKey::not_after)
        .collect();
    let active = with_status(entries, CaStatus::Active);
    match (active, with_status(entries, CaStatus::Prepared)) {
        (Some(a), Some(p)) => {
            times.push(activate_threshold(a.not_before(), a.not_after()).max(p.not_before()));
        }
        (Some(a), None) => times.push(prepare_threshold(a.not_before(), a.not_after())),
        (None, Some(p)) => times.push(p.not_before()),
        (None, None) => return Some(OffsetDateTime::UNIX_EPOCH),
    }
    if let Some(a) = active {
        times.push(a.not_after());
    }
    times.into_iter().min()
}

/// The entries to publish at `now`: active, prepared, then old ones not yet expired.
pub(crate) fn published<E: RotatingKey>(entries: &[E], now: OffsetDateTime) -> Vec<&E> {
    let mut ordered: Vec<&E> = with_status(entries, CaStatus::Active).into_iter().collect();
    ordered.extend(with_status(entries, CaStatus::Prepared));
    ordered.extend(
        entries
            .iter()
            .filter(|e| e.status() == CaStatus::Old && e.not_after() > now),
    );
    ordered
}
