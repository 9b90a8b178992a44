//! The kinds `sigil apply/get/delete` know, with the names kubectl accepts for them, their
//! scope, and whether the data plane receives them.

/// One kind of mesh configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// As in YAML: `PeerAuthentication`.
    pub kind: &'static str,
    /// kubectl's plural resource name: `peerauthentications`.
    pub plural: &'static str,
    /// The API group, for `plural.group` names and messages.
    pub group: &'static str,
    /// Short names (`pa`, `dr`, `se`…).
    pub short: &'static [&'static str],
    /// Namespaced (`false`: cluster-scoped, stored with an empty namespace).
    pub namespaced: bool,
    /// Sent to agents and proxies (Istio kinds and namespaces); cert-manager kinds stay in the
    /// control plane, where their controller runs.
    pub delivered: bool,
}

/// Every kind, in the order `sigil get all` prints them.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        kind: "Namespace",
        plural: "namespaces",
        group: "",
        short: &["ns"],
        namespaced: false,
        delivered: true,
    },
    KindInfo {
        kind: "PeerAuthentication",
        plural: "peerauthentications",
        group: "security.istio.io",
        short: &["pa"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "AuthorizationPolicy",
        plural: "authorizationpolicies",
        group: "security.istio.io",
        short: &["ap"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "RequestAuthentication",
        plural: "requestauthentications",
        group: "security.istio.io",
        short: &["ra"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "DestinationRule",
        plural: "destinationrules",
        group: "networking.istio.io",
        short: &["dr"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "ServiceEntry",
        plural: "serviceentries",
        group: "networking.istio.io",
        short: &["se"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "WorkloadEntry",
        plural: "workloadentries",
        group: "networking.istio.io",
        short: &["we"],
        namespaced: true,
        delivered: true,
    },
    KindInfo {
        kind: "Certificate",
        plural: "certificates",
        group: "cert-manager.io",
        short: &["cert", "certs"],
        namespaced: true,
        delivered: false,
    },
    KindInfo {
        kind: "Issuer",
        plural: "issuers",
        group: "cert-manager.io",
        short: &[],
        namespaced: true,
        delivered: false,
    },
    KindInfo {
        kind: "ClusterIssuer",
        plural: "clusterissuers",
        group: "cert-manager.io",
        short: &[],
        namespaced: false,
        delivered: false,
    },
    KindInfo {
        kind: "Secret",
        plural: "secrets",
        group: "",
        short: &[],
        namespaced: true,
        delivered: false,
    },
];

/// Kinds `sigil get all` leaves out, as `kubectl get all` leaves out Secrets.
pub fn in_get_all(k: &KindInfo) -> bool {
    k.kind != "Secret"
}

/// The kind named `name` as kubectl would resolve it: the kind (any case), its plural, singular,
/// short names, or `plural.group` (`peerauthentications.security.istio.io`).
pub fn resolve(name: &str) -> Option<&'static KindInfo> {
    let n = name.to_ascii_lowercase();
    KINDS.iter().find(|k| {
        let singular = k.kind.to_ascii_lowercase();
        n == singular
            || n == k.plural
            || k.short.contains(&n.as_str())
            || (!k.group.is_empty()
                && (n == format!("{}.{}", k.plural, k.group)
                    || n == format!("{singular}.{}", k.group)))
    })
}

/// The kind as stored (`PeerAuthentication`), if known.
pub fn info(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind == kind)
}

/// For error messages: `peerauthentications (pa), authorizationpolicies (ap), …`.
pub fn known_names() -> String {
    KINDS
        .iter()
        .map(|k| {
            if k.short.is_empty() {
                k.plural.to_owned()
            } else {
                format!("{} ({})", k.plural, k.short.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        for (name, kind) in [
            ("pa", "PeerAuthentication"),
            ("PeerAuthentication", "PeerAuthentication"),
            ("peerauthentications", "PeerAuthentication"),
            (
                "peerauthentications.security.istio.io",
                "PeerAuthentication",
            ),
            ("authorizationpolicy", "AuthorizationPolicy"),
            ("dr", "DestinationRule"),
            ("serviceentries", "ServiceEntry"),
            ("certs", "Certificate"),
            ("certificate.cert-manager.io", "Certificate"),
            ("clusterissuer", "ClusterIssuer"),
            ("ns", "Namespace"),
            ("secrets", "Secret"),
            ("secret", "Secret"),
        ] {
            assert_eq!(resolve(name).map(|k| k.kind), Some(kind), "{name}");
        }
        assert!(resolve("pods").is_none());
        assert!(resolve("").is_none());
    }

    #[test]
    fn scope_and_delivery() {
        assert!(!info("ClusterIssuer").unwrap().namespaced);
        assert!(!info("Namespace").unwrap().namespaced);
        assert!(info("Certificate").unwrap().namespaced);
        assert!(!info("Certificate").unwrap().delivered);
        assert!(info("DestinationRule").unwrap().delivered);
    }
}
