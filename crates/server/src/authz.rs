//! Which registration entries an agent may obtain SVIDs for. Pure.
//!
//! An agent is authorized for an entry when the entry's parent is the agent's own SPIFFE ID,
//! the SPIFFE ID of a node alias that matches the agent (an entry parented to the server whose
//! selectors are all among the agent's attested selectors), or — recursively — the SPIFFE ID of
//! an entry the agent is already authorized for (SPIRE's descendant crawl, for nested agents).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sigil_spiffe::SpiffeId;

/// An entry, as far as authorization cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    pub id: String,
    pub spiffe_id: SpiffeId,
    pub parent_id: SpiffeId,
    /// `type:value` strings.
    pub selectors: BTreeSet<String>,
}

/// The server's own ID in a trust domain: the parent of node aliases.
pub fn server_id(td: &sigil_spiffe::TrustDomain) -> String {
    format!("{}/spire/server", td.id_string())
}

/// True when `path` names an agent (`/spire/agent/...`).
pub fn is_agent_path(id: &SpiffeId) -> bool {
    id.path().starts_with("/spire/agent/")
}

/// The node aliases (their SPIFFE IDs) that apply to an agent with these selectors.
pub fn matching_aliases<'a>(
    aliases: impl IntoIterator<Item = &'a EntryRef>,
    agent_selectors: &BTreeSet<String>,
) -> Vec<SpiffeId> {
    aliases
        .into_iter()
        .filter(|a| !a.selectors.is_empty() && a.selectors.is_subset(agent_selectors))
        .map(|a| a.spiffe_id.clone())
        .collect()
}

/// Crawls from the agent's ID and its aliases through parent links. `children` maps a parent
/// ID to the entries parented to it. Returns the authorized entries in discovery order.
pub fn authorized_entries<'a>(
    agent_id: &SpiffeId,
    aliases: &[SpiffeId],
    children: &'a BTreeMap<SpiffeId, Vec<EntryRef>>,
) -> Vec<&'a EntryRef> {
    let mut seen_parents = BTreeSet::new();
    let mut seen_entries = BTreeSet::new();
    let mut queue: VecDeque<&SpiffeId> = VecDeque::new();
    queue.push_back(agent_id);
    queue.extend(aliases.iter());
    let mut out = Vec::new();
    while let Some(parent) = queue.pop_front() {
        if !seen_parents.insert(parent.clone()) {
            continue;
        }
        for e in children.get(parent).map(Vec::as_slice).unwrap_or_default() {
            if seen_entries.insert(e.id.as_str()) {
                out.push(e);
                queue.push_back(&e.spiffe_id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    fn entry(n: &str, spiffe: &str, parent: &str, sels: &[&str]) -> EntryRef {
        EntryRef {
            id: n.into(),
            spiffe_id: id(spiffe),
            parent_id: id(parent),
            selectors: sels.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn index(es: &[EntryRef]) -> BTreeMap<SpiffeId, Vec<EntryRef>> {
        let mut m: BTreeMap<SpiffeId, Vec<EntryRef>> = BTreeMap::new();
        for e in es {
            m.entry(e.parent_id.clone()).or_default().push(e.clone());
        }
        m
    }

    #[test]
    fn direct_alias_and_descendants_are_authorized_others_not() {
        let agent = id("spiffe://td/spire/agent/join_token/t1");
        let alias = entry(
            "a",
            "spiffe://td/node/web",
            "spiffe://td/spire/server",
            &["x509pop:subject:cn:web"],
        );
        let es = vec![
            entry("1", "spiffe://td/w/direct", agent.as_str(), &["unix:uid:1"]),
            entry(
                "2",
                "spiffe://td/w/via-alias",
                "spiffe://td/node/web",
                &["unix:uid:2"],
            ),
            entry(
                "3",
                "spiffe://td/w/nested",
                "spiffe://td/w/direct",
                &["unix:uid:3"],
            ),
            entry(
                "4",
                "spiffe://td/w/other-agent",
                "spiffe://td/spire/agent/join_token/t2",
                &["unix:uid:4"],
            ),
        ];
        let kids = index(&es);
        let sels: BTreeSet<String> = ["x509pop:subject:cn:web".to_string()].into();
        let aliases = matching_aliases([&alias], &sels);
        assert_eq!(aliases, vec![id("spiffe://td/node/web")]);
        let got: Vec<_> = authorized_entries(&agent, &aliases, &kids)
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(got, ["1", "2", "3"]);
        let none: Vec<_> = authorized_entries(&agent, &[], &kids)
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(none, ["1", "3"]);
    }

    #[test]
    fn alias_needs_all_its_selectors_and_at_least_one() {
        let a = entry(
            "a",
            "spiffe://td/node/a",
            "spiffe://td/spire/server",
            &["s:1", "s:2"],
        );
        let empty = entry("e", "spiffe://td/node/e", "spiffe://td/spire/server", &[]);
        let one: BTreeSet<String> = ["s:1".to_string()].into();
        let both: BTreeSet<String> =
            ["s:1".to_string(), "s:2".to_string(), "s:3".to_string()].into();
        assert!(matching_aliases([&a, &empty], &one).is_empty());
        assert_eq!(
            matching_aliases([&a, &empty], &both),
            vec![id("spiffe://td/node/a")]
        );
    }

    #[test]
    fn cycles_terminate() {
        let agent = id("spiffe://td/spire/agent/x/1");
        let es = vec![
            entry("1", "spiffe://td/a", agent.as_str(), &["k:v"]),
            entry("2", "spiffe://td/b", "spiffe://td/a", &["k:v"]),
            entry("3", "spiffe://td/a", "spiffe://td/b", &["k:v"]),
        ];
        let kids = index(&es);
        assert_eq!(authorized_entries(&agent, &[], &kids).len(), 3);
    }
}
