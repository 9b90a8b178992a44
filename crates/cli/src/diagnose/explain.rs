//! Certificate verification failures in plain words: which root was expected, which issuer was
//! presented, how long ago a certificate expired (and whether that smells of clock skew), which
//! X.509-SVID rule is broken, and the commands that fix each. Shared by `sigil diagnose tls`
//! (the server's chain) and `sigil x509 verify` (a chain from a file). Pure.

use sigil_spiffe::{ChainError, SvidError, VerifyError};

use super::certinfo::{CertInfo, human_duration};
use super::finding::Finding;

/// Expiry or start this close to now is more likely a wrong clock than a wrong certificate.
pub const SKEW_HINT_SECS: i64 = 15 * 60;

/// Why a chain was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// X.509-SVID verification (`sigil_spiffe::verify_x509_svid`) failed.
    Svid(VerifyError),
    /// The leaf is not an X.509-SVID (its chain verified, or was not checked).
    NotSvid(SvidError),
    /// Path validation of a leaf that is not an SVID failed.
    Chain(ChainError),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Svid(e) => e.fmt(f),
            Problem::NotSvid(e) => e.fmt(f),
            Problem::Chain(e) => e.fmt(f),
        }
    }
}

/// What the explanation needs to know besides the problem.
pub struct CertContext<'a> {
    /// "the server's certificate", or the file name.
    pub what: &'a str,
    /// The presented chain, leaf first.
    pub chain: &'a [CertInfo],
    /// The roots it was checked against.
    pub roots: &'a [CertInfo],
    /// Where the roots came from ("--ca ca.pem", "--bundle FILE", "the server's bundle").
    pub trust_source: &'a str,
    /// The trust domain the caller expected (from --expect-id, --as or the roots).
    pub expected_td: Option<&'a str>,
    /// `HOST:PORT` when probing a live server (fix commands then name it).
    pub target: Option<&'a str>,
}

impl CertContext<'_> {
    fn roots_text(&self) -> String {
        if self.roots.is_empty() {
            return "(none)".to_owned();
        }
        self.roots
            .iter()
            .map(|r| match r.trust_domain() {
                Some(td) => format!("{} (trust domain {td})", r.subject),
                None => r.subject.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn chain_text(&self) -> String {
        self.chain
            .iter()
            .map(|c| {
                let who = c.spiffe_id.as_deref().unwrap_or(&c.subject);
                format!("#{} {who}, issued by {}", c.index, c.issuer)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn leaf_td(&self) -> Option<String> {
        self.chain.first().and_then(CertInfo::trust_domain)
    }

    /// The shell line that shows the presented chain.
    fn show_chain_cmd(&self) -> String {
        match self.target {
            Some(t) => format!(
                "openssl s_client -connect {t} -showcerts </dev/null 2>/dev/null | sigil x509 inspect -"
            ),
            None => format!("sigil x509 inspect {}", self.what),
        }
    }

    fn cert_file(&self) -> String {
        match self.target {
            Some(_) => "server.pem".to_owned(),
            None => self.what.to_owned(),
        }
    }
}

/// Explains `p` for the chain in `ctx`.
pub fn explain(ctx: &CertContext<'_>, p: &Problem) -> Finding {
    use ChainError as C;
    let chain_err = match p {
        Problem::Svid(VerifyError::Chain { source, .. }) | Problem::Chain(source) => Some(source),
        _ => None,
    };
    match (p, chain_err) {
        (Problem::Svid(VerifyError::NoBundle(_) | VerifyError::EmptyBundle(_)), _)
        | (_, Some(C::UnknownIssuer | C::NoAnchors)) => unknown_authority(ctx, None),
        (_, Some(C::BadSignature)) => unknown_authority(
            ctx,
            Some(
                "A signature in the chain does not verify: the issuer named in the certificate \
                 has a different key than the trusted root of that name (a re-created CA), or \
                 the certificate was altered.",
            ),
        ),
        (
            _,
            Some(C::Expired {
                cert,
                not_after,
                now,
            }),
        ) => expired(
            ctx,
            &cert_label(ctx, cert),
            *not_after as i64,
            *now as i64,
            false,
        ),
        (
            _,
            Some(C::AuthorityExpired {
                subject,
                not_after,
                now,
            }),
        ) => expired(
            ctx,
            &format!("the trusted root {subject}"),
            *not_after as i64,
            *now as i64,
            true,
        ),
        (
            _,
            Some(C::NotYetValid {
                cert,
                not_before,
                now,
            }),
        ) => not_yet_valid(ctx, &cert_label(ctx, cert), *not_before as i64, *now as i64),
        (
            _,
            Some(C::AuthorityNotYetValid {
                subject,
                not_before,
                now,
            }),
        ) => not_yet_valid(
            ctx,
            &format!("the trusted root {subject}"),
            *not_before as i64,
            *now as i64,
        ),
        (Problem::Svid(VerifyError::Leaf(rule)) | Problem::NotSvid(rule), _) => not_svid(ctx, rule),
        (_, Some(other)) => Finding::new(
            "invalid-chain",
            false,
            format!(
                "CERTIFICATE_VERIFY_FAILED: {} does not pass path validation: {other}",
                ctx.what
            ),
        )
        .evidence("presented chain", ctx.chain_text())
        .evidence(
            format!("trusted roots ({})", ctx.trust_source),
            ctx.roots_text(),
        )
        .fix("# Look at every certificate of the chain and reissue the one named above:")
        .fix(ctx.show_chain_cmd()),
        (Problem::Svid(VerifyError::EmptyChain), _) => Finding::new(
            "invalid-chain",
            false,
            format!("{} holds no certificate", ctx.what),
        ),
        (_, None) => Finding::new(
            "invalid-chain",
            false,
            format!("{} is not a valid X.509-SVID: {p}", ctx.what),
        ),
    }
}

fn unknown_authority(ctx: &CertContext<'_>, extra: Option<&str>) -> Finding {
    let leaf_td = ctx.leaf_td();
    let presented_issuer = ctx
        .chain
        .last()
        .map_or_else(|| "(nothing)".to_owned(), |c| c.issuer.clone());
    let mut f = Finding::new(
        "unknown-authority",
        false,
        format!(
            "CERTIFICATE_VERIFY_FAILED (unknown authority): {} is not signed by a root you trust; \
             it was issued by {presented_issuer}",
            ctx.what
        ),
    );
    f = match extra {
        Some(x) => f.explain(x),
        None => f.explain(
            "No path leads from the presented certificates to a trusted root: they come from \
             another CA (another trust domain, a re-created CA, a different cluster), or an \
             intermediate is missing from the chain.",
        ),
    };
    if let (Some(want), Some(got)) = (ctx.expected_td, leaf_td.as_deref())
        && want != got
    {
        f = f.explain(format!(
            "The certificate belongs to trust domain {got}, not to the expected {want}."
        ));
    }
    f = f
        .evidence(
            "expected trust domain",
            ctx.expected_td.unwrap_or("(not given)"),
        )
        .evidence(
            format!("expected root ({})", ctx.trust_source),
            ctx.roots_text(),
        )
        .evidence("presented issuer", presented_issuer)
        .evidence("presented chain", ctx.chain_text());
    if let Some(aki) = ctx.chain.last().and_then(|c| c.authority_key_id.clone()) {
        let known = ctx
            .roots
            .iter()
            .any(|r| r.subject_key_id.as_deref() == Some(aki.as_str()));
        f = f.evidence(
            "issuer key ID",
            format!(
                "{aki} ({})",
                if known {
                    "matches a trusted root's key"
                } else {
                    "no trusted root has this key"
                }
            ),
        );
    }
    let td = leaf_td
        .as_deref()
        .or(ctx.expected_td)
        .unwrap_or("<trust domain>");
    f.fixes([
        format!(
            "# Both sides must use the same root. Fetch the root of {td} from a server of that trust domain:"
        ),
        "sigil bundle show --format pem > ca.pem".to_owned(),
        format!("# Check the chain against it (like `openssl verify -CAfile ca.pem {0}`):", ctx.cert_file()),
    ])
    .fixes(match ctx.target {
        Some(t) => vec![
            format!(
                "openssl s_client -connect {t} -showcerts </dev/null 2>/dev/null > server.pem"
            ),
            "sigil x509 verify --bundle ca.pem server.pem".to_owned(),
            "# Probe again with that root:".to_owned(),
            format!("sigil diagnose tls {t} --ca ca.pem"),
        ],
        None => vec![format!("sigil x509 verify --bundle ca.pem {}", ctx.what)],
    })
    .fix(
        "# If the peer is in another trust domain on purpose, its bundle must be added to yours (federation).",
    )
}

/// Names the certificate webpki reported: the leaf by its SPIFFE ID when it has one.
fn cert_label(ctx: &CertContext<'_>, cert: &sigil_spiffe::CertName) -> String {
    use sigil_spiffe::ChainPosition as P;
    match cert.position {
        P::Leaf => match ctx.chain.first().and_then(|c| c.spiffe_id.as_deref()) {
            Some(id) => format!("the leaf {id}"),
            None => format!("the leaf ({})", cert.subject),
        },
        P::Intermediate => format!("the intermediate CA {}", cert.subject),
        P::Unknown => "a certificate".to_owned(),
    }
}

fn skew_note(delta: i64, expired: bool) -> Option<String> {
    (delta <= SKEW_HINT_SECS).then(|| {
        let what = if expired {
            "Expired only minutes ago: if the certificate is renewed on time, this machine's clock \
             runs ahead of the issuer's"
        } else {
            "Valid in only a few minutes: the issuer's clock runs ahead of this machine's"
        };
        format!(
            "{what} ({}; clock skew). Compare `date -u` on both and sync them (`timedatectl`, \
             `chronyc tracking`).",
            human_duration(delta)
        )
    })
}

fn expired(ctx: &CertContext<'_>, which: &str, not_after: i64, now: i64, root: bool) -> Finding {
    let ago = now - not_after;
    let mut f = Finding::new(
        "expired",
        false,
        format!(
            "certificate expired: {which} in {} expired {} ago (at {})",
            ctx.what,
            human_duration(ago),
            crate::fmt_time(not_after)
        ),
    );
    if let Some(n) = skew_note(ago, true) {
        f = f.explain(n);
    }
    f = f
        .evidence("expired certificate", which)
        .evidence("not after", crate::fmt_time(not_after))
        .evidence("now (this machine)", crate::fmt_time(now))
        .evidence("presented chain", ctx.chain_text());
    if root {
        f.fixes([
            "# A root in your trust bundle expired: everything it signed is now untrusted.",
            "# Make sure the server's CA rotated (the new root is published before the old expires):",
            "sigil bundle show --format pem | sigil x509 inspect --no-svid -",
            "# then use the new bundle on the client (--ca / the agent's bundle).",
        ])
    } else {
        f.fixes([
            "# SVIDs are renewed by the agent at half-life; an expired one means renewal stopped.",
            "# On the peer's node: is the agent up, and can it reach the server?",
            "sigil agent healthcheck",
            "sigil server healthcheck",
            "# Inspect what the peer presents:",
        ])
        .fix(ctx.show_chain_cmd())
    }
}

fn not_yet_valid(ctx: &CertContext<'_>, which: &str, not_before: i64, now: i64) -> Finding {
    let ahead = not_before - now;
    let mut f = Finding::new(
        "not-yet-valid",
        false,
        format!(
            "certificate not yet valid: {which} in {} becomes valid only in {} (at {})",
            ctx.what,
            human_duration(ahead),
            crate::fmt_time(not_before)
        ),
    );
    f = match skew_note(ahead, false) {
        Some(n) => f.explain(n),
        None => f.explain(
            "That is far ahead: the issuer's clock is wrong, or the certificate was issued with a \
             future start date.",
        ),
    };
    f.evidence("certificate", which)
        .evidence("not before", crate::fmt_time(not_before))
        .evidence("now (this machine)", crate::fmt_time(now))
        .fixes([
            "# Check the clocks of this machine and of the issuing server:",
            "date -u",
            "timedatectl status",
        ])
        .fix(ctx.show_chain_cmd())
}

fn not_svid(ctx: &CertContext<'_>, rule: &SvidError) -> Finding {
    Finding::new(
        "not-an-svid",
        false,
        format!(
            "{} is not a valid X.509-SVID, so mesh peers reject it: {rule}",
            ctx.what
        ),
    )
    .explain(
        "Sigil proxies and SPIFFE libraries accept only X.509-SVIDs: one spiffe:// URI SAN, \
         critical keyUsage with digitalSignature, not a CA.",
    )
    .evidence("presented chain", ctx.chain_text())
    .fixes([
        "# See every field and every broken SVID rule:".to_owned(),
        ctx.show_chain_cmd(),
        "# Issue the certificate from the Sigil server instead:".to_owned(),
        "sigil x509 mint --spiffe-id spiffe://<trust-domain>/<path> --out-dir ./svid".to_owned(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_spiffe::{CertName, ChainPosition};

    pub(crate) fn info(subject: &str, issuer: &str, id: Option<&str>) -> CertInfo {
        CertInfo {
            index: 0,
            subject: subject.into(),
            issuer: issuer.into(),
            serial: "1".into(),
            not_before: 0,
            not_after: 100,
            dns_names: vec![],
            uris: id.map(|i| vec![i.to_owned()]).unwrap_or_default(),
            ip_addresses: vec![],
            emails: vec![],
            spiffe_id: id.map(str::to_owned),
            key: "ECDSA P-256".into(),
            signature_algorithm: "ecdsa-with-SHA256".into(),
            key_usage: None,
            key_usage_critical: false,
            extended_key_usage: None,
            is_ca: false,
            path_len: None,
            subject_key_id: None,
            authority_key_id: Some("aa:bb".into()),
        }
    }

    fn ctx<'a>(chain: &'a [CertInfo], roots: &'a [CertInfo]) -> CertContext<'a> {
        CertContext {
            what: "the server's certificate",
            chain,
            roots,
            trust_source: "--ca ca.pem",
            expected_td: Some("cluster.local"),
            target: Some("127.0.0.1:8443"),
        }
    }

    #[test]
    fn unknown_authority_names_expected_root_and_presented_issuer() {
        let chain = [info(
            "",
            "CN=other.org test root",
            Some("spiffe://other.org/ns/a/sa/b"),
        )];
        let mut root = info(
            "CN=cluster.local test root",
            "CN=cluster.local test root",
            None,
        );
        root.spiffe_id = Some("spiffe://cluster.local".into());
        root.subject_key_id = Some("cc:dd".into());
        let roots = [root];
        let f = explain(
            &ctx(&chain, &roots),
            &Problem::Chain(ChainError::UnknownIssuer),
        );
        assert_eq!(f.code, "unknown-authority");
        assert!(
            f.summary.contains("CERTIFICATE_VERIFY_FAILED"),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("CN=other.org test root"),
            "{}",
            f.summary
        );
        let text = f.human("t");
        assert!(
            text.contains("CN=cluster.local test root (trust domain cluster.local)"),
            "{text}"
        );
        assert!(
            text.contains("trust domain other.org, not to the expected cluster.local"),
            "{text}"
        );
        assert!(text.contains("no trusted root has this key"), "{text}");
        assert!(
            text.contains("sigil diagnose tls 127.0.0.1:8443 --ca ca.pem"),
            "{text}"
        );
    }

    #[test]
    fn expiry_by_minutes_hints_clock_skew_and_by_days_does_not() {
        let chain = [info("CN=x", "CN=r", None)];
        let e = |ago: i64| {
            explain(
                &ctx(&chain, &[]),
                &Problem::Chain(ChainError::Expired {
                    cert: CertName {
                        position: ChainPosition::Leaf,
                        subject: "CN=x".into(),
                    },
                    not_after: (10_000 - ago) as u64,
                    now: 10_000,
                }),
            )
        };
        let soon = e(120);
        assert_eq!(soon.code, "expired");
        assert!(
            soon.summary.contains("expired 2m 0s ago"),
            "{}",
            soon.summary
        );
        assert!(soon.explanation.join(" ").contains("clock skew"));
        let late = e(3 * 3600);
        assert!(
            late.summary.contains("expired 3h 0m ago"),
            "{}",
            late.summary
        );
        assert!(!late.explanation.join(" ").contains("clock skew"));
    }

    #[test]
    fn not_yet_valid_says_how_far_ahead() {
        let chain = [info("CN=x", "CN=r", None)];
        let f = explain(
            &ctx(&chain, &[]),
            &Problem::Chain(ChainError::NotYetValid {
                cert: CertName {
                    position: ChainPosition::Leaf,
                    subject: "CN=x".into(),
                },
                not_before: 10_300,
                now: 10_000,
            }),
        );
        assert_eq!(f.code, "not-yet-valid");
        assert!(f.summary.contains("only in 5m 0s"), "{}", f.summary);
        assert!(f.explanation.join(" ").contains("clock skew"));
    }

    #[test]
    fn svid_rule_violations_are_named() {
        let chain = [info("CN=x", "CN=r", None)];
        let f = explain(&ctx(&chain, &[]), &Problem::NotSvid(SvidError::NoUriSan));
        assert_eq!(f.code, "not-an-svid");
        assert!(f.summary.contains("no URI SAN"), "{}", f.summary);
    }
}
