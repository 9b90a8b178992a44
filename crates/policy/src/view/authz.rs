//! Selection and compilation of AuthorizationPolicies for one workload.
//!
//! Selection: a policy applies when it is in the workload's namespace or in the root
//! namespace (mesh-wide) and its `selector.matchLabels` ⊆ the workload's labels (no selector
//! = every workload in scope). `targetRef`/`targetRefs` policies attach to gateways and
//! waypoints only, so they never apply to a sidecar workload and are reported as such.
//!
//! Compilation turns every string into a [`StringMatcher`] (or path template, CIDR, port),
//! groups policies by action and indexes rules by the peer principal (exact, prefix, suffix)
//! or namespace ([`PeerIndex`]), so a decision touches only the rules that can match.

use crate::authz::{Action, AuthorizationPolicySpec};
use crate::meta::Object;
use crate::resource::Resource;

use super::compile::compile_rule;
use super::index::{ALLOW, AUDIT, CUSTOM, DENY, Hits, PeerIndex};
use super::matcher::{Cidr, PathTemplate, StringMatcher};
use super::{MeshContext, PolicyId, Workload, authorization_policies, selects};

/// `istio.io/dry-run: "true"` makes a policy shadow-only.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// Why a policy in scope (own or root namespace) does not apply to the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAppliedReason {
    /// It uses `targetRef`/`targetRefs`: gateways and waypoints only, never sidecars.
    TargetRef,
    /// Its selector does not match the workload's labels.
    SelectorMismatch,
}

/// A policy in scope that was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyNotApplied {
    /// The policy.
    pub id: PolicyId,
    /// Why.
    pub reason: NotAppliedReason,
}

/// A request attribute a clause reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attr {
    Principal,
    Namespace,
    /// `serviceAccounts`: matchers are [`Matcher::ServiceAccount`].
    ServiceAccount,
    TrustDomain,
    SourceIp,
    RemoteIp,
    DestIp,
    DestPort,
    Sni,
    RequestPrincipal,
    Host,
    Method,
    Path,
    Header(Box<str>),
    Claim(Box<[String]>),
    /// Something Sigil cannot evaluate (`experimental.envoy.filters.*`, an unparseable value):
    /// an ALLOW rule using it never matches, a DENY/AUDIT/CUSTOM rule ignores the clause.
    Unsupported,
}

impl Attr {
    /// Attributes only an HTTP request carries.
    pub(crate) fn http_only(&self) -> bool {
        matches!(
            self,
            Attr::RequestPrincipal
                | Attr::Host
                | Attr::Method
                | Attr::Path
                | Attr::Header(_)
                | Attr::Claim(_)
        )
    }
}

/// One compiled value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matcher {
    Str(StringMatcher),
    Template(PathTemplate),
    Cidr(Cidr),
    Port(u16),
    ServiceAccount {
        ns: Box<str>,
        sa: Box<str>,
    },
    RequestPrincipal {
        iss: StringMatcher,
        sub: StringMatcher,
    },
}

/// `field: [values]` (any must match) or `notField: [values]` (none may match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    pub(crate) attr: Attr,
    pub(crate) negated: bool,
    pub(crate) matchers: Box<[Matcher]>,
    /// Field path for explanations, e.g. `from[0].source.notPrincipals`.
    pub(crate) label: Box<str>,
}

/// One `from.source` or `to.operation`: all clauses must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) clauses: Box<[Clause]>,
}

/// A compiled rule: any `from` AND any `to` AND all `when`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledRule {
    pub(crate) from: Option<Box<[Entry]>>,
    pub(crate) to: Option<Box<[Entry]>>,
    pub(crate) when: Box<[Clause]>,
    /// Uses an HTTP-only attribute somewhere (an ALLOW rule never matches TCP).
    pub(crate) http_only: bool,
    /// Uses an attribute Sigil cannot evaluate (an ALLOW rule never matches).
    pub(crate) unsupported: bool,
}

/// One applied policy, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    /// `namespace/name`.
    pub id: PolicyId,
    /// Its action.
    pub action: Action,
    /// Annotated `istio.io/dry-run: "true"`: evaluated, never enforced.
    pub dry_run: bool,
    /// CUSTOM provider name.
    pub provider: Option<String>,
    pub(crate) rules: Vec<CompiledRule>,
}

/// Rules of one action, flattened in (policy, rule) order, with a principal index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) policies: Vec<CompiledPolicy>,
    /// (policy, rule) per flat position.
    pub(crate) flat: Vec<(u32, u32)>,
    /// Positions the peer index cannot rule out: always checked.
    residual: Vec<u32>,
}

impl Group {
    /// Sorts by `namespace/name`, flattens and registers each rule in `index` as group `gid`.
    fn build(mut policies: Vec<CompiledPolicy>, gid: usize, index: &mut PeerIndex) -> Self {
        policies.sort_by(|a, b| a.id.cmp(&b.id));
        let mut g = Group::default();
        for (p, policy) in policies.iter().enumerate() {
            for (r, rule) in policy.rules.iter().enumerate() {
                let pos = g.flat.len() as u32;
                g.flat.push((p as u32, r as u32));
                if !index.insert(gid, pos, rule) {
                    g.residual.push(pos);
                }
            }
        }
        g.policies = policies;
        g
    }

    pub(crate) fn rule(&self, pos: u32) -> (&CompiledPolicy, usize, &CompiledRule) {
        let (p, r) = self.flat[pos as usize];
        let policy = &self.policies[p as usize];
        (policy, r as usize, &policy.rules[r as usize])
    }

    /// The smallest flat position among the candidates in `hits` for which `pred` holds.
    /// Candidate lists are ascending, so each is scanned only up to the best so far.
    pub(crate) fn first_match(
        &self,
        gid: usize,
        hits: &Hits<'_>,
        mut pred: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        if self.flat.is_empty() {
            return None;
        }
        if !hits.complete {
            return (0..self.flat.len() as u32).find(|&pos| pred(pos));
        }
        let mut best: Option<u32> = None;
        let mut scan = |list: &[u32]| {
            for &pos in list {
                if best.is_some_and(|b| pos >= b) {
                    return;
                }
                if pred(pos) {
                    best = Some(pos);
                    return;
                }
            }
        };
        scan(&self.residual);
        for list in hits.lists(gid) {
            scan(list);
        }
        best
    }
}

/// The compiled authorization view of one workload.
#[derive(Debug, Clone, Default)]
pub struct CompiledAuthz {
    pub(crate) custom: Group,
    pub(crate) deny: Group,
    pub(crate) allow: Group,
    pub(crate) audit: Group,
    /// Principal/namespace index over all four groups.
    pub(crate) index: PeerIndex,
    /// Enforced (non-dry-run) ALLOW policies: if zero, no-ALLOW-matched cannot deny.
    pub(crate) enforced_allow: usize,
    pub(crate) has_dry_run: bool,
    not_applied: Vec<PolicyNotApplied>,
}

impl CompiledAuthz {
    /// Selects and compiles the AuthorizationPolicies that apply to `workload`.
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = &'a Object<AuthorizationPolicySpec>>,
        workload: &Workload,
        mesh: &MeshContext,
    ) -> Self {
        let mut by_action: [Vec<CompiledPolicy>; 4] = Default::default();
        let mut not_applied = Vec::new();
        for o in policies {
            let id = PolicyId::of(o, mesh);
            if id.namespace != workload.namespace && id.namespace != mesh.root_namespace {
                continue;
            }
            let spec = &o.spec;
            if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
                not_applied.push(PolicyNotApplied {
                    id,
                    reason: NotAppliedReason::TargetRef,
                });
                continue;
            }
            if spec
                .selector
                .as_ref()
                .is_some_and(|s| !selects(s, &workload.labels))
            {
                not_applied.push(PolicyNotApplied {
                    id,
                    reason: NotAppliedReason::SelectorMismatch,
                });
                continue;
            }
            let dry_run = o
                .metadata
                .annotations
                .get(DRY_RUN_ANNOTATION)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let rules = spec
                .rules
                .iter()
                .flatten()
                .map(|r| compile_rule(r, &id.namespace))
                .collect();
            let slot = match spec.action {
                Action::Custom => 0,
                Action::Deny => 1,
                Action::Allow => 2,
                Action::Audit => 3,
            };
            by_action[slot].push(CompiledPolicy {
                id,
                action: spec.action,
                dry_run,
                provider: spec.provider.as_ref().map(|p| p.name.clone()),
                rules,
            });
        }
        let [custom, deny, allow, audit] = by_action;
        let mut index = PeerIndex::default();
        let has_dry_run = [&custom, &deny, &allow, &audit]
            .iter()
            .any(|g| g.iter().any(|p| p.dry_run));
        let enforced_allow = allow.iter().filter(|p| !p.dry_run).count();
        CompiledAuthz {
            custom: Group::build(custom, CUSTOM, &mut index),
            deny: Group::build(deny, DENY, &mut index),
            allow: Group::build(allow, ALLOW, &mut index),
            audit: Group::build(audit, AUDIT, &mut index),
            index: index.finish(),
            enforced_allow,
            has_dry_run,
            not_applied,
        }
    }

    /// Compiles from parsed resources (non-AuthorizationPolicy ones are skipped).
    pub fn from_resources(resources: &[Resource], workload: &Workload, mesh: &MeshContext) -> Self {
        Self::compile(authorization_policies(resources), workload, mesh)
    }

    /// Applied policies in evaluation order: CUSTOM, DENY, ALLOW, AUDIT.
    pub fn policies(&self) -> impl Iterator<Item = &CompiledPolicy> {
        [&self.custom, &self.deny, &self.allow, &self.audit]
            .into_iter()
            .flat_map(|g| g.policies.iter())
    }

    /// Policies in scope that do not apply, and why.
    pub fn not_applied(&self) -> &[PolicyNotApplied] {
        &self.not_applied
    }
}
