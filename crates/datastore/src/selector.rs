//! Selectors (`type:value`) and the four ways a selector set can match, as in SPIRE.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One selector: a type (`unix`, `k8s`, `join_token`…) and a value that may itself contain
/// colons (`k8s:ns:payments` is type `k8s`, value `ns:payments`).
///
/// Ordered by type then value; entry and agent selector lists are kept sorted and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Selector {
    pub r#type: String,
    pub value: String,
}

impl Selector {
    /// Builds a selector from its two parts, checking both (see [`Selector::validate`]).
    pub fn new(r#type: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let s = Selector {
            r#type: r#type.into(),
            value: value.into(),
        };
        s.validate()?;
        Ok(s)
    }

    /// Parses `type:value`, splitting at the first colon.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((ty, value)) = s.split_once(':') else {
            return Err(Error::Invalid(format!(
                "selector {s:?} has no value: write it as type:value (for example unix:uid:1000)"
            )));
        };
        let sel = Selector {
            r#type: ty.to_owned(),
            value: value.to_owned(),
        };
        sel.validate()?;
        Ok(sel)
    }

    /// Checks that the type and value are non-empty and that the type has no colon (so that
    /// `type:value` reads back as the same selector).
    pub fn validate(&self) -> Result<()> {
        let shown = self.to_string();
        if self.r#type.is_empty() {
            return Err(Error::Invalid(format!(
                "selector {shown:?} has no type: write it as type:value (for example unix:uid:1000)"
            )));
        }
        if self.r#type.contains(':') {
            return Err(Error::Invalid(format!(
                "selector type {:?} contains ':'; the type ends at the first colon (for example \
                 type \"k8s\", value \"ns:payments\")",
                self.r#type
            )));
        }
        if self.value.is_empty() {
            return Err(Error::Invalid(format!(
                "selector {shown:?} has no value: write it as type:value (for example unix:uid:1000)"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.r#type, self.value)
    }
}

impl FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Selector::parse(s)
    }
}

/// Validates every selector, then sorts and deduplicates the list (the stored form).
pub fn normalize_selectors(mut selectors: Vec<Selector>) -> Result<Vec<Selector>> {
    for s in &selectors {
        s.validate()?;
    }
    selectors.sort();
    selectors.dedup();
    Ok(selectors)
}

/// How a filter's set `S` is compared with a record's set `R` (SPIRE's `MatchBehavior`).
/// Used for selectors and for `federates_with`. Records with an empty set never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectorMatch {
    /// `R == S`.
    Exact,
    /// `R ⊆ S`: every selector of the record is in the given set. This is how workloads and
    /// node aliases are matched: the given set is everything known about the caller.
    Subset,
    /// `R ⊇ S`: the record has every given selector (and maybe more).
    Superset,
    /// `R ∩ S ≠ ∅`: the record has at least one of the given selectors.
    Any,
}

impl SelectorMatch {
    /// The lowercase name used on the command line (`exact`, `subset`, `superset`, `any`).
    pub fn as_str(self) -> &'static str {
        match self {
            SelectorMatch::Exact => "exact",
            SelectorMatch::Subset => "subset",
            SelectorMatch::Superset => "superset",
            SelectorMatch::Any => "any",
        }
    }
}

impl FromStr for SelectorMatch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exact" => Ok(SelectorMatch::Exact),
            "subset" => Ok(SelectorMatch::Subset),
            "superset" => Ok(SelectorMatch::Superset),
            "any" => Ok(SelectorMatch::Any),
            other => Err(Error::Invalid(format!(
                "match behaviour {other:?} is not one of exact, subset, superset, any"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_at_first_colon() {
        let cases = [
            ("k8s:ns:payments", "k8s", "ns:payments"),
            ("unix:uid:1000", "unix", "uid:1000"),
            ("join_token:abc", "join_token", "abc"),
            ("unix:path:/usr/bin/app", "unix", "path:/usr/bin/app"),
        ];
        for (input, ty, value) in cases {
            let s = Selector::parse(input).unwrap();
            assert_eq!(
                (s.r#type.as_str(), s.value.as_str()),
                (ty, value),
                "{input}"
            );
            assert_eq!(s.to_string(), input);
        }
    }

    #[test]
    fn parse_rejects_missing_parts_and_says_which() {
        let cases = [
            ("k8s", "has no value"),
            ("unix:", "has no value"),
            (":uid:1000", "has no type"),
            ("", "has no value"),
        ];
        for (input, says) in cases {
            match Selector::parse(input) {
                Err(Error::Invalid(msg)) => assert!(msg.contains(says), "{input}: {msg}"),
                other => panic!("{input}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn new_rejects_colon_in_type() {
        match Selector::new("k8s:ns", "payments") {
            Err(Error::Invalid(msg)) => assert!(msg.contains("contains ':'"), "{msg}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn normalize_sorts_and_dedups() {
        let v = ["unix:uid:1000", "k8s:ns:a", "unix:uid:1000", "k8s:sa:b"]
            .iter()
            .map(|s| Selector::parse(s).unwrap())
            .collect();
        let got: Vec<String> = normalize_selectors(v)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["k8s:ns:a", "k8s:sa:b", "unix:uid:1000"]);
    }

    #[test]
    fn serde_uses_type_and_value_fields() {
        let s = Selector::parse("unix:uid:0").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"type":"unix","value":"uid:0"}"#);
        assert_eq!(serde_json::from_str::<Selector>(&json).unwrap(), s);
    }

    #[test]
    fn match_names_round_trip() {
        for m in [
            SelectorMatch::Exact,
            SelectorMatch::Subset,
            SelectorMatch::Superset,
            SelectorMatch::Any,
        ] {
            assert_eq!(m.as_str().parse::<SelectorMatch>().unwrap(), m);
        }
        assert!(matches!(
            "all".parse::<SelectorMatch>(),
            Err(Error::Invalid(_))
        ));
    }
}
