//! The peer index: which rules can possibly match a given peer identity.
//!
//! A rule is indexed when every `from` entry requires a positive principal (exact, prefix or
//! suffix, not `*`) or an exact namespace: then a request can match it only if the peer hits
//! one of its keys. All other rules are "residual" and always checked. One lookup per request
//! serves all four action groups.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::authz::{Attr, CompiledRule, Matcher};
use super::matcher::{StringMatcher, any_namespace, strip_scheme};

pub(crate) const CUSTOM: usize = 0;
pub(crate) const DENY: usize = 1;
pub(crate) const ALLOW: usize = 2;
pub(crate) const AUDIT: usize = 3;
const GROUPS: usize = 4;

/// Keys a single peer may hit before the lookup gives up and the groups are scanned whole.
const MAX_HITS: usize = 32;

/// A word-at-a-time multiplicative hash (FxHash's mixing step). Keys come from
/// configuration and lookups never insert, so flooding is not a concern; speed is.
#[derive(Default)]
pub(crate) struct FastHash(u64);

impl FastHash {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHash {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.mix(u64::from(b));
    }
}

/// Ascending flat positions per group.
type Lists = [Vec<u32>; GROUPS];
type Buckets = HashMap<Box<str>, Lists, BuildHasherDefault<FastHash>>;

#[derive(Debug, Clone, Default)]
pub(crate) struct PeerIndex {
    exact: Buckets,
    prefix: Buckets,
    prefix_lens: Vec<usize>,
    suffix: Buckets,
    suffix_lens: Vec<usize>,
    namespace: Buckets,
}

enum Key<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
    Namespace(&'a str),
}

fn key(m: &Matcher) -> Option<Key<'_>> {
    match m {
        Matcher::Str(StringMatcher::Exact(s)) => Some(Key::Exact(s)),
        Matcher::Str(StringMatcher::Prefix(s)) => Some(Key::Prefix(s)),
        Matcher::Str(StringMatcher::Suffix(s)) => Some(Key::Suffix(s)),
        _ => None,
    }
}

fn ns_key(m: &Matcher) -> Option<Key<'_>> {
    match m {
        Matcher::Str(StringMatcher::Exact(s)) => Some(Key::Namespace(s)),
        _ => None,
    }
}

/// Keys such that a request can match `rule` only if its peer hits one of them.
fn index_keys(rule: &CompiledRule) -> Option<Vec<Key<'_>>> {
    let mut keys = Vec::new();
    for entry in rule.from.as_deref()? {
        let positive = |attr: Attr| entry.clauses.iter().find(|c| c.attr == attr && !c.negated);
        let principals =
            positive(Attr::Principal).and_then(|c| c.matchers.iter().map(key).collect());
        let namespaces =
            || positive(Attr::Namespace).and_then(|c| c.matchers.iter().map(ns_key).collect());
        let entry_keys: Vec<Key<'_>> = principals.or_else(namespaces)?;
        keys.extend(entry_keys);
    }
    Some(keys)
}

fn push(b: &mut Buckets, key: &str, gid: usize, pos: u32) {
    let list = &mut b.entry(key.into()).or_default()[gid];
    if list.last() != Some(&pos) {
        list.push(pos);
    }
}

impl PeerIndex {
    /// Registers `rule` at `pos` of group `gid`; false when it cannot be indexed.
    pub(crate) fn insert(&mut self, gid: usize, pos: u32, rule: &CompiledRule) -> bool {
        let Some(keys) = index_keys(rule) else {
            return false;
        };
        for k in keys {
            match k {
                Key::Exact(s) => push(&mut self.exact, s, gid, pos),
                Key::Prefix(s) => {
                    push(&mut self.prefix, s, gid, pos);
                    self.prefix_lens.push(s.len());
                }
                Key::Suffix(s) => {
                    push(&mut self.suffix, s, gid, pos);
                    self.suffix_lens.push(s.len());
                }
                Key::Namespace(s) => push(&mut self.namespace, s, gid, pos),
            }
        }
        true
    }

    pub(crate) fn finish(mut self) -> Self {
        for lens in [&mut self.prefix_lens, &mut self.suffix_lens] {
            lens.sort_unstable();
            lens.dedup();
        }
        self
    }

    /// The buckets `peer` hits. Plaintext hits none: indexed rules need a principal.
    pub(crate) fn lookup(&self, peer: Option<&str>) -> Hits<'_> {
        let mut hits = Hits {
            lists: [None; MAX_HITS],
            n: 0,
            complete: true,
        };
        let Some(peer) = peer else { return hits };
        let id = strip_scheme(peer);
        if !self.exact.is_empty() {
            hits.add(self.exact.get(id));
        }
        for &len in &self.prefix_lens {
            if len > id.len() {
                break;
            }
            hits.add(id.get(..len).and_then(|k| self.prefix.get(k)));
        }
        for &len in &self.suffix_lens {
            if len > id.len() {
                break;
            }
            hits.add(id.get(id.len() - len..).and_then(|k| self.suffix.get(k)));
        }
        if !self.namespace.is_empty() {
            any_namespace(peer, |ns| {
                hits.add(self.namespace.get(ns));
                false
            });
        }
        hits
    }
}

/// The buckets one peer hit, on the stack.
pub(crate) struct Hits<'a> {
    lists: [Option<&'a Lists>; MAX_HITS],
    n: usize,
    /// False when more than `MAX_HITS` buckets were hit: callers then scan whole groups.
    pub(crate) complete: bool,
}

impl<'a> Hits<'a> {
    #[inline]
    fn add(&mut self, lists: Option<&'a Lists>) {
        let Some(lists) = lists else { return };
        match self.lists.get_mut(self.n) {
            Some(slot) => {
                *slot = Some(lists);
                self.n += 1;
            }
            None => self.complete = false,
        }
    }

    /// The hit candidate lists of group `gid`.
    pub(crate) fn lists(&self, gid: usize) -> impl Iterator<Item = &'a [u32]> + '_ {
        self.lists[..self.n]
            .iter()
            .flatten()
            .map(move |l| l[gid].as_slice())
    }
}
