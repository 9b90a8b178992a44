//! Limits for the YAML front door: policy files come from users and CI, so a hostile or
//! broken file must fail fast with a precise error instead of exhausting memory or CPU.
//!
//! - **Size** is checked before any parsing: a 50 MB file costs one comparison.
//! - **Aliases** (`*name`) are replayed by the parser; a "billion laughs" file that
//!   expands exponentially is stopped once the replayed events pass
//!   [`ParseLimits::max_alias_expansion`] (serde-saphyr's `AliasLimits`), or when aliases
//!   outnumber anchors more than tenfold (its alias/anchor ratio heuristic).
//! - **Depth**, **document count** and **node count** use serde-saphyr's `Budget`, which is
//!   enforced on the event stream while parsing, before any tree is built.

use serde_saphyr::budget::BudgetBreach;

use crate::error::ErrorKind;
use crate::node::Pos;

/// Limits applied by [`crate::parse_documents_with_limits`];
/// [`crate::parse_documents`] uses [`ParseLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted input in bytes, checked before parsing. Default 4 MiB — far above
    /// any hand-written policy file (the full Istio + cert-manager example set is < 10 KiB).
    pub max_bytes: usize,
    /// Most YAML documents (`---` separated) in one file. Default 1,000.
    pub max_documents: usize,
    /// Deepest nesting of mappings and lists. Default 32; the deepest Kubernetes objects
    /// Sigil reads (AuthorizationPolicy rules, ACME solvers) stay under 12.
    pub max_depth: usize,
    /// Most YAML events that alias references (`*name`) may replay in total. Default
    /// 10,000: enough to share blocks between documents, far below an alias bomb's blow-up.
    pub max_alias_expansion: usize,
    /// Most nodes (scalars, lists, mappings) in the whole file. Default 250,000.
    pub max_nodes: usize,
}

impl ParseLimits {
    /// Default [`ParseLimits::max_bytes`]: 4 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_documents: 1_000,
            max_depth: 32,
            max_alias_expansion: 10_000,
            max_nodes: 250_000,
        }
    }
}

/// The size check, done before parsing. On failure, the position is where the limit is
/// crossed (found by scanning at most `max_bytes` bytes).
pub(crate) fn check_size(text: &str, limits: &ParseLimits) -> Option<(Pos, ErrorKind)> {
    if text.len() <= limits.max_bytes {
        return None;
    }
    let head = &text.as_bytes()[..limits.max_bytes];
    let line = head.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let line_start = head.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = (limits.max_bytes - line_start) as u64 + 1;
    Some((
        Pos { line, column },
        ErrorKind::InputTooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        },
    ))
}

/// serde-saphyr options for policy files: strict booleans, plus the limits.
pub(crate) fn yaml_options(limits: &ParseLimits) -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.flow_nesting_limit = limits.max_depth;
    budget.max_documents = limits.max_documents;
    budget.max_nodes = limits.max_nodes;
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_alias_expansion;
    options
}

/// Maps a parser error caused by a limit to its own [`ErrorKind`]; `None` for other errors.
pub(crate) fn limit_error(e: &serde_saphyr::Error, limits: &ParseLimits) -> Option<ErrorKind> {
    use serde_saphyr::Error as E;
    let mut e = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    let bomb = |detail: String| Some(ErrorKind::AliasBomb { detail });
    match e {
        E::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => bomb(format!(
            "more than {max_total_replayed_events} events replayed from aliases"
        )),
        E::AliasExpansionLimitExceeded {
            max_expansions_per_anchor,
            ..
        } => bomb(format!(
            "one anchor expanded more than {max_expansions_per_anchor} times"
        )),
        E::AliasReplayStackDepthExceeded { max_depth, .. } => {
            bomb(format!("aliases nested more than {max_depth} deep"))
        }
        E::AliasReplayCounterOverflow { .. } => bomb("alias replay counter overflow".into()),
        E::Budget { breach, .. } => Some(budget_error(breach, limits)),
        other => {
            let text = other.to_string();
            if text.contains("recursion limit exceeded") {
                Some(ErrorKind::TooDeep {
                    limit: limits.max_depth,
                })
            } else if text.contains("tabs disallowed") {
                Some(ErrorKind::TabIndentation)
            } else {
                None
            }
        }
    }
}

fn budget_error(breach: &BudgetBreach, limits: &ParseLimits) -> ErrorKind {
    match breach {
        BudgetBreach::Depth { .. } => ErrorKind::TooDeep {
            limit: limits.max_depth,
        },
        BudgetBreach::Documents { .. } => ErrorKind::TooManyDocuments {
            limit: limits.max_documents,
        },
        BudgetBreach::Aliases { aliases } => ErrorKind::AliasBomb {
            detail: format!("{aliases} alias references"),
        },
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => ErrorKind::AliasBomb {
            detail: format!("{aliases} alias references to only {anchors} anchors"),
        },
        BudgetBreach::RecordedAnchorEvents { .. } | BudgetBreach::RecordedAnchorBytes { .. } => {
            ErrorKind::AliasBomb {
                detail: "anchored content too large to replay".into(),
            }
        }
        BudgetBreach::Nodes { .. } => ErrorKind::TooComplex {
            detail: format!("more than {} nodes", limits.max_nodes),
        },
        other => ErrorKind::TooComplex {
            detail: format!("parser budget exceeded ({other:?})"),
        },
    }
}
