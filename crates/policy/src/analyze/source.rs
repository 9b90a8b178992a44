//! Resources with the place they were read from, so a finding can name `file:line`.

use crate::error::ParseError;
use crate::limits::{ParseLimits, yaml_options};
use crate::node::{Node, Value};
use crate::resource::{Resource, parse_documents};

/// Where a resource was read from: the file and its located YAML tree.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name as given (`-` for stdin).
    pub file: String,
    tree: Node,
}

impl Source {
    /// Line (1-based) of the deepest part of `path` (`spec.rules[0].from`) that exists.
    pub fn line_of(&self, path: &str) -> u64 {
        self.tree.locate(path).line
    }
}

/// A resource, and its source when it came from a file (`None` when read from the server).
#[derive(Debug, Clone)]
pub struct Located {
    /// The validated resource.
    pub resource: Resource,
    /// Its file and YAML tree.
    pub source: Option<Source>,
}

impl Located {
    /// A resource without a file (e.g. read from the running server).
    pub fn live(resource: Resource) -> Self {
        Located {
            resource,
            source: None,
        }
    }

    /// Gives a namespaced resource without `metadata.namespace` the namespace `ns`, as
    /// `sigil apply -n` does.
    pub fn default_namespace(&mut self, ns: &str) {
        let meta = match &mut self.resource {
            Resource::Namespace(_) | Resource::ClusterIssuer(_) => return,
            Resource::PeerAuthentication(o) => &mut o.metadata,
            Resource::AuthorizationPolicy(o) => &mut o.metadata,
            Resource::RequestAuthentication(o) => &mut o.metadata,
            Resource::DestinationRule(o) => &mut o.metadata,
            Resource::ServiceEntry(o) => &mut o.metadata,
            Resource::WorkloadEntry(o) => &mut o.metadata,
            Resource::Certificate(o) => &mut o.metadata,
            Resource::Issuer(o) => &mut o.metadata,
            Resource::Secret(o) => &mut o.metadata,
        };
        if meta.namespace.is_none() {
            meta.namespace = Some(ns.to_owned());
        }
    }

    /// `(file, line)` of `path` inside this resource, when it came from a file.
    pub fn position(&self, path: &str) -> Option<(String, u64)> {
        self.source
            .as_ref()
            .map(|s| (s.file.clone(), s.line_of(path)))
    }
}

/// [`parse_documents`], keeping each resource's position. Same errors, same all-or-nothing.
pub fn parse_located(file: &str, text: &str) -> Result<Vec<Located>, Vec<ParseError>> {
    let resources = parse_documents(file, text)?;
    // The text parsed once already, so this second pass cannot fail; if it somehow did, the
    // resources are still returned, only without positions.
    let trees: Vec<Node> =
        serde_saphyr::from_multiple_with_options(text, yaml_options(&ParseLimits::default()))
            .unwrap_or_default();
    let mut trees = trees
        .into_iter()
        .filter(|n| !matches!(n.value, Value::Null));
    Ok(resources
        .into_iter()
        .map(|resource| Located {
            resource,
            source: trees.next().map(|tree| Source {
                file: file.to_owned(),
                tree,
            }),
        })
        .collect())
}
