//! SPIFFE ID and trust domain parsing, one table row per rule.

use sigil_spiffe::{IdError, SpiffeId, TrustDomain};

type Expect = Result<(&'static str, &'static str), IdError>;

fn ok(td: &'static str, path: &'static str) -> Expect {
    Ok((td, path))
}

fn bad_td(found: char, at: usize) -> Expect {
    Err(IdError::BadTrustDomainChar { found, at })
}

fn bad_path(found: char, at: usize) -> Expect {
    Err(IdError::BadPathChar { found, at })
}

#[test]
fn spiffe_id_table() {
    let long_path = format!("spiffe://td/{}", "a".repeat(2048 - "spiffe://td/".len()));
    let too_long_path = format!("{long_path}b");
    let td_255 = format!("spiffe://{}/p", "a".repeat(255));
    let td_256 = format!("spiffe://{}/p", "a".repeat(256));
    let cases: Vec<(&str, String, Expect)> = vec![
        // Accepted shapes.
        (
            "trust domain only",
            "spiffe://example.org".into(),
            ok("example.org", ""),
        ),
        (
            "simple path",
            "spiffe://example.org/ns/default/sa/web".into(),
            ok("example.org", "/ns/default/sa/web"),
        ),
        (
            "all TD chars",
            "spiffe://a-b_c.0-9/x".into(),
            ok("a-b_c.0-9", "/x"),
        ),
        (
            "all path chars",
            "spiffe://td/AZaz09.-_".into(),
            ok("td", "/AZaz09.-_"),
        ),
        (
            "path case preserved",
            "spiffe://td/PATH1/Path2".into(),
            ok("td", "/PATH1/Path2"),
        ),
        (
            "dot-prefixed segments",
            "spiffe://td/.path/..path/...".into(),
            ok("td", "/.path/..path/..."),
        ),
        (
            "IPv4-looking TD",
            "spiffe://1.2.3.4/service".into(),
            ok("1.2.3.4", "/service"),
        ),
        (
            "uuid path",
            "spiffe://td/9eebccd2-12bf-40a6-b262-65fe0487d453".into(),
            ok("td", "/9eebccd2-12bf-40a6-b262-65fe0487d453"),
        ),
        // Length limits.
        ("exactly 2048 bytes", long_path.clone(), Ok(("td", ""))),
        ("2049 bytes", too_long_path, Err(IdError::TooLong(2049))),
        ("TD of 255 bytes", td_255, Ok(("", "/p"))),
        (
            "TD of 256 bytes",
            td_256,
            Err(IdError::TrustDomainTooLong(256)),
        ),
        // Scheme and structure.
        ("empty", "".into(), Err(IdError::Empty)),
        (
            "no scheme",
            "example.org/path".into(),
            Err(IdError::WrongScheme),
        ),
        (
            "http scheme",
            "http://example.org/path".into(),
            Err(IdError::WrongScheme),
        ),
        (
            "one slash",
            "spiffe:/example.org/path".into(),
            Err(IdError::WrongScheme),
        ),
        ("opaque", "spiffe:path".into(), Err(IdError::WrongScheme)),
        (
            "prefixed scheme",
            "xspiffe://td/path".into(),
            Err(IdError::WrongScheme),
        ),
        (
            "uppercase scheme",
            "SPIFFE://example.org/path".into(),
            Err(IdError::WrongScheme),
        ),
        (
            "mixed-case scheme",
            "Spiffe://example.org/path".into(),
            Err(IdError::WrongScheme),
        ),
        (
            "missing TD",
            "spiffe://".into(),
            Err(IdError::MissingTrustDomain),
        ),
        (
            "missing TD with slash",
            "spiffe:///".into(),
            Err(IdError::MissingTrustDomain),
        ),
        (
            "missing TD with path",
            "spiffe:///path".into(),
            Err(IdError::MissingTrustDomain),
        ),
        // Trust domain rules.
        (
            "uppercase TD",
            "spiffe://Example.ORG/path".into(),
            Err(IdError::UppercaseTrustDomain {
                td: "Example.ORG".into(),
                lower: "example.org".into(),
            }),
        ),
        (
            "port",
            "spiffe://example.org:8443/path".into(),
            Err(IdError::Port("8443".into())),
        ),
        (
            "empty port",
            "spiffe://example.org:/path".into(),
            Err(IdError::Port("".into())),
        ),
        (
            "userinfo",
            "spiffe://user@example.org/path".into(),
            Err(IdError::UserInfo),
        ),
        (
            "userinfo with password",
            "spiffe://u:p@example.org/path".into(),
            Err(IdError::UserInfo),
        ),
        (
            "IPv6 literal",
            "spiffe://[::1]/path".into(),
            Err(IdError::Ipv6Literal("[::1]".into())),
        ),
        (
            "percent in TD",
            "spiffe://ex%61mple.org/path".into(),
            Err(IdError::PercentEncoded(11)),
        ),
        (
            "dollar in TD",
            "spiffe://ex$mple.org/path".into(),
            bad_td('$', 11),
        ),
        (
            "non-ASCII TD",
            "spiffe://exämple.org/path".into(),
            bad_td('ä', 11),
        ),
        (
            "space in TD",
            "spiffe://ex ample/path".into(),
            bad_td(' ', 11),
        ),
        // Path rules.
        (
            "trailing slash on TD",
            "spiffe://td/".into(),
            Err(IdError::TrailingSlash),
        ),
        (
            "trailing slash on path",
            "spiffe://td/path/".into(),
            Err(IdError::TrailingSlash),
        ),
        (
            "empty segment",
            "spiffe://td//path".into(),
            Err(IdError::EmptySegment),
        ),
        (
            "only empty segments",
            "spiffe://td//".into(),
            Err(IdError::EmptySegment),
        ),
        (
            "empty middle segment",
            "spiffe://td/a//b".into(),
            Err(IdError::EmptySegment),
        ),
        (
            "dot segment",
            "spiffe://td/.".into(),
            Err(IdError::DotSegment),
        ),
        (
            "dot segment inside",
            "spiffe://td/a/./b".into(),
            Err(IdError::DotSegment),
        ),
        (
            "dotdot segment",
            "spiffe://td/..".into(),
            Err(IdError::DotSegment),
        ),
        (
            "dotdot segment inside",
            "spiffe://td/a/../b".into(),
            Err(IdError::DotSegment),
        ),
        (
            "percent-encoded path",
            "spiffe://td/%62ad".into(),
            Err(IdError::PercentEncoded(12)),
        ),
        (
            "percent later in path",
            "spiffe://td/a/b%2F".into(),
            Err(IdError::PercentEncoded(15)),
        ),
        (
            "dollar in path",
            "spiffe://td/a$b".into(),
            bad_path('$', 13),
        ),
        ("space in path", "spiffe://td/a b".into(), bad_path(' ', 13)),
        (
            "non-ASCII path",
            "spiffe://td/caf\u{e9}".into(),
            bad_path('\u{e9}', 15),
        ),
        ("colon in path", "spiffe://td/a:b".into(), bad_path(':', 13)),
        ("at in path", "spiffe://td/a@b".into(), bad_path('@', 13)),
        ("query", "spiffe://td/path?x=1".into(), Err(IdError::Query)),
        (
            "query without path",
            "spiffe://td?x".into(),
            Err(IdError::Query),
        ),
        (
            "fragment",
            "spiffe://td/path#frag".into(),
            Err(IdError::Fragment),
        ),
        (
            "fragment without path",
            "spiffe://td#frag".into(),
            Err(IdError::Fragment),
        ),
    ];
    let mut failures = Vec::new();
    for (name, input, expect) in &cases {
        let got = SpiffeId::parse(input);
        let matches = match (&got, expect) {
            (Ok(id), Ok((td, path))) => {
                // Long-input rows only pin what is short enough to write down.
                (td.is_empty() || id.trust_domain().as_str() == *td)
                    && (path.is_empty() && input.len() > 200 || id.path() == *path)
                    && id.as_str() == input
            }
            (Err(e), Err(want)) => e == want,
            _ => false,
        };
        if !matches {
            failures.push(format!(
                "{name}: input {input:?}: got {got:?}, want {expect:?}"
            ));
        }
    }
    crate::assert_rows_pass(&failures);
}

#[test]
fn accessors_and_principal() {
    let id = SpiffeId::parse("spiffe://cluster.local/ns/payments/sa/checkout").unwrap();
    assert_eq!(id.trust_domain().as_str(), "cluster.local");
    assert_eq!(id.path(), "/ns/payments/sa/checkout");
    assert_eq!(id.principal(), "cluster.local/ns/payments/sa/checkout");
    assert!(!id.is_root());
    assert!(SpiffeId::parse("spiffe://cluster.local").unwrap().is_root());
    assert_eq!(id.to_string(), id.as_str());
    assert_eq!("spiffe://a/b".parse::<SpiffeId>().unwrap().path(), "/b");
}

#[test]
fn trust_domain_table() {
    let long_td = "a".repeat(256);
    let cases: Vec<(&str, Result<&str, IdError>)> = vec![
        ("example.org", Ok("example.org")),
        ("1.2.3.4", Ok("1.2.3.4")),
        ("spiffe://example.org", Ok("example.org")),
        ("spiffe://example.org/path/x", Ok("example.org")),
        ("", Err(IdError::MissingTrustDomain)),
        (
            "Example.org",
            Err(IdError::UppercaseTrustDomain {
                td: "Example.org".into(),
                lower: "example.org".into(),
            }),
        ),
        ("example.org:80", Err(IdError::Port("80".into()))),
        ("[::1]", Err(IdError::Ipv6Literal("[::1]".into()))),
        (
            "ex/ample",
            Err(IdError::BadTrustDomainChar { found: '/', at: 2 }),
        ),
        ("spiffe:example.org", Err(IdError::WrongScheme)),
        ("SPIFFE://example.org", Err(IdError::WrongScheme)),
        ("http://example.org", Err(IdError::WrongScheme)),
        (long_td.as_str(), Err(IdError::TrustDomainTooLong(256))),
    ];
    for (input, want) in cases {
        let got = TrustDomain::new(input);
        match (&got, &want) {
            (Ok(td), Ok(name)) => assert_eq!(td.as_str(), *name, "input {input:?}"),
            (Err(e), Err(w)) => assert_eq!(e, w, "input {input:?}"),
            _ => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn trust_domain_builds_ids() {
    let td = TrustDomain::new("example.org").unwrap();
    assert_eq!(td.id_string(), "spiffe://example.org");
    assert_eq!(td.id("/a/b").unwrap().as_str(), "spiffe://example.org/a/b");
    assert!(td.id("").unwrap().is_root());
    // A path without its leading slash must not be glued onto the trust domain name.
    assert_eq!(td.id("foo"), Err(IdError::RelativePath("foo".into())));
    assert_eq!(td.id("/a/"), Err(IdError::TrailingSlash));
}

#[test]
fn serde_round_trip_and_rejection() {
    let id: SpiffeId = serde_json::from_str("\"spiffe://td/a\"").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"spiffe://td/a\"");
    let err = serde_json::from_str::<SpiffeId>("\"spiffe://TD/a\"").unwrap_err();
    assert!(
        err.to_string().contains("contains uppercase letters"),
        "{err}"
    );
    let td: TrustDomain = serde_json::from_str("\"td\"").unwrap();
    assert_eq!(serde_json::to_string(&td).unwrap(), "\"td\"");
}

#[test]
fn error_messages_say_what_to_do() {
    let e = SpiffeId::parse("spiffe://Example.org/x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "trust domain \"Example.org\" contains uppercase letters; SPIFFE trust domains are \
         lowercase (use \"example.org\")"
    );
    let e = SpiffeId::parse("SPIFFE://example.org/x").unwrap_err();
    assert!(e.to_string().contains("\"spiffe://\" (lowercase)"), "{e}");
}
