//! Pure decisions of the agent's sync loop: which SVIDs to mint, rotate or withdraw, and when
//! the agent's own SVID is due for renewal. No IO; time is passed in.

use std::collections::{BTreeMap, BTreeSet};

/// What the agent holds for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The entry's revision when its SVID was signed: a changed entry gets a new SVID.
    pub entry_revision: i64,
    pub not_before: i64,
    pub not_after: i64,
    /// The SVID (or a CA above it) was revoked: replace it now rather than at half-life.
    pub revoked: bool,
}

/// An authorized entry as the server describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub entry_id: String,
    pub revision: i64,
}

/// What to do to make the held SVIDs match the authorized entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries that need a (new) SVID: never signed, changed, revoked, or past half-life.
    pub sign: Vec<String>,
    /// Entries no longer authorized: withdraw their SVIDs now.
    pub drop: Vec<String>,
}

/// True at or after half of the certificate's life (SPIRE and Istio rotate at 50 %).
pub fn past_half_life(not_before: i64, not_after: i64, now: i64) -> bool {
    now >= not_before + (not_after - not_before) / 2
}

pub fn plan(wanted: &[Wanted], held: &BTreeMap<String, Held>, now: i64) -> Plan {
    let mut p = Plan::default();
    let ids: BTreeSet<&str> = wanted.iter().map(|w| w.entry_id.as_str()).collect();
    for w in wanted {
        let due = match held.get(&w.entry_id) {
            None => true,
            Some(h) => {
                h.revoked
                    || h.entry_revision != w.revision
                    || past_half_life(h.not_before, h.not_after, now)
            }
        };
        if due {
            p.sign.push(w.entry_id.clone());
        }
    }
    p.drop = held
        .keys()
        .filter(|k| !ids.contains(k.as_str()))
        .cloned()
        .collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, rev: i64) -> Wanted {
        Wanted {
            entry_id: id.into(),
            revision: rev,
        }
    }

    #[test]
    fn mint_rotate_and_withdraw() {
        let mut held = BTreeMap::new();
        held.insert(
            "fresh".to_string(),
            Held {
                entry_revision: 1,
                not_before: 0,
                not_after: 100,
                revoked: false,
            },
        );
        held.insert(
            "old".to_string(),
            Held {
                entry_revision: 1,
                not_before: 0,
                not_after: 100,
                revoked: false,
            },
        );
        held.insert(
            "changed".to_string(),
            Held {
                entry_revision: 1,
                not_before: 40,
                not_after: 140,
                revoked: false,
            },
        );
        held.insert(
            "gone".to_string(),
            Held {
                entry_revision: 1,
                not_before: 40,
                not_after: 140,
                revoked: false,
            },
        );
        // At t=49 "fresh"/"old" (0..100) are before half-life; at 50 they are due.
        let wanted = [w("fresh", 1), w("changed", 2), w("new", 1)];
        let p = plan(&wanted, &held, 49);
        assert_eq!(p.sign, ["changed", "new"]);
        assert_eq!(p.drop, ["gone", "old"]);
        let p = plan(&[w("old", 1)], &held, 50);
        assert_eq!(p.sign, ["old"]);
    }

    #[test]
    fn a_revoked_svid_is_replaced_at_once() {
        let mut held = BTreeMap::new();
        let h = |revoked| Held {
            entry_revision: 1,
            not_before: 0,
            not_after: 100,
            revoked,
        };
        held.insert("ok".to_string(), h(false));
        held.insert("revoked".to_string(), h(true));
        let p = plan(&[w("ok", 1), w("revoked", 1)], &held, 10);
        assert_eq!(p.sign, ["revoked"]);
    }

    #[test]
    fn half_life() {
        assert!(!past_half_life(0, 3600, 1799));
        assert!(past_half_life(0, 3600, 1800));
    }
}
