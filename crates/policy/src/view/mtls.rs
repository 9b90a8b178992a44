//! Effective inbound mTLS mode (PeerAuthentication), per workload and port.
//!
//! Rules (istio `ComposePeerAuthentication`):
//! - levels: **mesh** = no selector (or empty `matchLabels`) in the root namespace;
//!   **namespace** = no selector in the workload's namespace; **workload** = a selector that
//!   matches, in the workload's namespace. A selector policy in the root namespace is ignored.
//! - several candidates at one level: the oldest `creationTimestamp` wins (missing sorts
//!   oldest, like Go's zero time), then the smaller name; the others are shadowed.
//! - start PERMISSIVE; each level's mode replaces it unless UNSET (or `mtls` absent).
//! - `portLevelMtls` only from the winning workload policy; an UNSET port takes the resolved
//!   workload mode.

use std::cmp::Ordering;

use crate::meta::Object;
use crate::peer_authn::{MtlsMode, PeerAuthenticationSpec};
use crate::resource::Resource;

use super::{MeshContext, PolicyId, Workload, parse_timestamp, peer_authentications, selects};

/// Where a PeerAuthentication sits in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No selector, root namespace.
    Mesh,
    /// No selector, workload's namespace.
    Namespace,
    /// Matching selector, workload's namespace.
    Workload,
    /// A `portLevelMtls` entry of the workload policy.
    Port(u16),
}

/// What set a mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No policy set a mode: Istio's default, PERMISSIVE.
    Default,
    /// This policy, at this level.
    Policy {
        /// The policy.
        id: PolicyId,
        /// Its level (or the port entry that decided).
        level: Level,
    },
}

/// Why a PeerAuthentication that could concern the workload has no effect on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredReason {
    /// Selector policies in the root namespace are ignored by Istio (they never apply).
    SelectorInRootNamespace,
    /// An older policy at the same level won.
    Shadowed {
        /// The winner.
        by: PolicyId,
        /// The level both are at.
        level: Level,
    },
}

/// A policy reported as having no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredPolicy {
    /// The policy.
    pub id: PolicyId,
    /// Why.
    pub reason: IgnoredReason,
}

/// The mode of one port, and what set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMtls {
    /// Workload (container) port.
    pub port: u16,
    /// Effective mode: never [`MtlsMode::Unset`].
    pub mode: MtlsMode,
    /// What set it.
    pub origin: Origin,
}

/// A `describe`-style report: the asked ports, the winners per level, the ignored policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsReport {
    /// The workload-wide mode and its origin.
    pub workload: (MtlsMode, Origin),
    /// One entry per asked port, in the order asked.
    pub ports: Vec<PortMtls>,
    /// The selected policy at each level present (mesh, namespace, workload).
    pub selected: Vec<(Level, PolicyId)>,
    /// Policies that concern the workload but have no effect.
    pub ignored: Vec<IgnoredPolicy>,
}

/// The compiled inbound mTLS view of one workload. [`mode_for_port`](Self::mode_for_port)
/// is a binary search over the few port overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledMtls {
    mode: MtlsMode,
    origin: Origin,
    /// Sorted by port.
    ports: Vec<(u16, MtlsMode, Origin)>,
    selected: Vec<(Level, PolicyId)>,
    ignored: Vec<IgnoredPolicy>,
}

struct Candidate<'a> {
    id: PolicyId,
    created: Option<(i64, u32)>,
    spec: &'a PeerAuthenticationSpec,
}

fn older(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.created
        .cmp(&b.created)
        .then_with(|| a.id.name.cmp(&b.id.name))
        .then_with(|| a.id.namespace.cmp(&b.id.namespace))
}

fn set_mode(mode: Option<crate::peer_authn::Mtls>) -> Option<MtlsMode> {
    mode.map(|m| m.mode).filter(|m| *m != MtlsMode::Unset)
}

impl CompiledMtls {
    /// Compiles the PeerAuthentications relevant to `workload` (others are skipped).
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = &'a Object<PeerAuthenticationSpec>>,
        workload: &Workload,
        mesh: &MeshContext,
    ) -> Self {
        let mut levels: [Vec<Candidate<'a>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        let mut ignored = Vec::new();
        for o in policies {
            let id = PolicyId::of(o, mesh);
            let spec = &o.spec;
            let in_root = id.namespace == mesh.root_namespace;
            let in_own = id.namespace == workload.namespace;
            let namespace_wide = spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty());
            let level = match (namespace_wide, in_root, in_own) {
                (true, true, _) => 0,
                (true, false, true) => 1,
                (false, true, _) => {
                    ignored.push(IgnoredPolicy {
                        id,
                        reason: IgnoredReason::SelectorInRootNamespace,
                    });
                    continue;
                }
                (false, false, true)
                    if spec
                        .selector
                        .as_ref()
                        .is_some_and(|s| selects(s, &workload.labels)) =>
                {
                    2
                }
                _ => continue,
            };
            let created = o
                .metadata
                .creation_timestamp
                .as_deref()
                .and_then(parse_timestamp);
            levels[level].push(Candidate { id, created, spec });
        }

        let mut mode = MtlsMode::Permissive;
        let mut origin = Origin::Default;
        let mut selected = Vec::new();
        let mut winner_spec = None;
        for (i, mut candidates) in levels.into_iter().enumerate() {
            let level = [Level::Mesh, Level::Namespace, Level::Workload][i];
            candidates.sort_by(older);
            let mut it = candidates.into_iter();
            let Some(win) = it.next() else { continue };
            for loser in it {
                ignored.push(IgnoredPolicy {
                    id: loser.id,
                    reason: IgnoredReason::Shadowed {
                        by: win.id.clone(),
                        level,
                    },
                });
            }
            if let Some(m) = set_mode(win.spec.mtls) {
                mode = m;
                origin = Origin::Policy {
                    id: win.id.clone(),
                    level,
                };
            }
            if level == Level::Workload {
                winner_spec = Some((win.id.clone(), win.spec));
            }
            selected.push((level, win.id));
        }

        let mut ports = Vec::new();
        if let Some((id, spec)) = winner_spec {
            for (port, m) in spec.port_level_mtls.iter().flatten() {
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                let entry = match set_mode(Some(*m)) {
                    Some(m) => (
                        port,
                        m,
                        Origin::Policy {
                            id: id.clone(),
                            level: Level::Port(port),
                        },
                    ),
                    None => (port, mode, origin.clone()),
                };
                ports.push(entry);
            }
        }
        ports.sort_by_key(|p| p.0);
        CompiledMtls {
            mode,
            origin,
            ports,
            selected,
            ignored,
        }
    }

    /// Compiles from parsed resources (non-PeerAuthentication ones are skipped).
    pub fn from_resources(resources: &[Resource], workload: &Workload, mesh: &MeshContext) -> Self {
        Self::compile(peer_authentications(resources), workload, mesh)
    }

    /// The mode for an inbound connection to `port`, and what set it.
    #[inline]
    pub fn mode_for_port(&self, port: u16) -> (MtlsMode, &Origin) {
        match self.ports.binary_search_by_key(&port, |p| p.0) {
            Ok(i) => (self.ports[i].1, &self.ports[i].2),
            Err(_) => (self.mode, &self.origin),
        }
    }

    /// The workload-wide mode (ports without an override).
    pub fn workload_mode(&self) -> (MtlsMode, &Origin) {
        (self.mode, &self.origin)
    }

    /// Policies that concern the workload but have no effect.
    pub fn ignored(&self) -> &[IgnoredPolicy] {
        &self.ignored
    }

    /// The winner at each level present.
    pub fn selected(&self) -> &[(Level, PolicyId)] {
        &self.selected
    }

    /// A report for `ports` (for `describe` / `analyze`).
    pub fn report(&self, ports: &[u16]) -> MtlsReport {
        MtlsReport {
            workload: (self.mode, self.origin.clone()),
            ports: ports
                .iter()
                .map(|&port| {
                    let (mode, origin) = self.mode_for_port(port);
                    PortMtls {
                        port,
                        mode,
                        origin: origin.clone(),
                    }
                })
                .collect(),
            selected: self.selected.clone(),
            ignored: self.ignored.clone(),
        }
    }
}
