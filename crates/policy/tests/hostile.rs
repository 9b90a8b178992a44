//! The YAML front door under hostile or broken input: every case fails fast with a precise
//! error kind and location. None of these may hang or allocate in proportion to the blow-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sigil_policy::{
    ErrorKind, ParseError, ParseLimits, parse_documents, parse_documents_with_limits,
};

fn one_error(text: &str) -> ParseError {
    let mut errors = parse_documents("hostile.yaml", text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

#[test]
fn syntax_error_names_line_and_column() {
    let e = one_error("apiVersion: v1\nkind: Namespace\nmetadata: {name: [b\n");
    assert!(
        matches!(&e.kind, ErrorKind::Syntax { message } if message.contains("unclosed")),
        "{e:?}"
    );
    // The bracket that is never closed.
    assert_eq!((e.line, e.column, e.document), (3, 18, 0), "{e}");
    assert!(
        e.to_string()
            .starts_with("hostile.yaml:3:18: document 0: invalid YAML")
    );
}

/// The classic "billion laughs": nine levels of nine aliases expand to 9^9 strings.
fn billion_laughs() -> String {
    let mut text = String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lol\n");
    text.push_str(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let (prev, name) = (pair[0], pair[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    text
}

#[test]
fn alias_bomb_is_refused_with_a_precise_error() {
    let e = one_error(&billion_laughs());
    let ErrorKind::AliasBomb { detail } = &e.kind else {
        panic!("expected AliasBomb, got {e:?}")
    };
    assert!(detail.contains("10000"), "{detail}");
    // The alias whose replay crossed the limit: the second `*d` in `e: &e [...]`, line 9.
    assert_eq!((e.line, e.column), (9, 8), "{e}");
    assert!(e.column > 1, "{e}");
    assert!(e.to_string().contains("billion laughs"), "{e}");
}

#[test]
fn modest_alias_use_is_fine() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: &l {team: x}\n\
                ---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n  labels: *l\n";
    let docs = parse_documents("alias.yaml", text);
    // Anchors do not cross documents in YAML; kubectl rejects this file too.
    assert!(docs.is_err());
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: &l {team: x}\n  annotations: *l\n";
    let docs = parse_documents("alias.yaml", text).unwrap();
    assert_eq!(docs[0].metadata().annotations["team"], "x");
}

#[test]
fn fifty_megabyte_document_is_refused_before_parsing() {
    let header = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: big\n  labels:\n";
    let line = "    key-000000000000000000000000000000000000000000000000: value\n";
    let mut text = String::with_capacity(50 * 1024 * 1024 + line.len());
    text.push_str(header);
    while text.len() < 50 * 1024 * 1024 {
        text.push_str(line);
    }
    let e = one_error(&text);
    assert_eq!(
        e.kind,
        ErrorKind::InputTooLarge {
            size: text.len(),
            limit: ParseLimits::DEFAULT_MAX_BYTES
        }
    );
    // Reported where the 4 MiB limit is crossed.
    let limit = ParseLimits::DEFAULT_MAX_BYTES;
    let lines_before = text.as_bytes()[..limit]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(e.line, lines_before as u64 + 1);
    assert!(e.column >= 1 && e.column <= line.len() as u64, "{e}");
    assert!(e.to_string().contains("split it into several files"), "{e}");
}

#[test]
fn size_limit_is_configurable() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
    let limits = ParseLimits {
        max_bytes: 20,
        ..ParseLimits::default()
    };
    let errors = parse_documents_with_limits("small.yaml", text, &limits).unwrap_err();
    assert_eq!(
        errors[0].kind,
        ErrorKind::InputTooLarge {
            size: text.len(),
            limit: 20
        }
    );
    assert_eq!((errors[0].line, errors[0].column), (2, 6));
    assert!(parse_documents_with_limits("small.yaml", text, &ParseLimits::default()).is_ok());
}

#[test]
fn deep_block_nesting_is_refused() {
    let mut text =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: deep\nspec:\n");
    for depth in 1..200 {
        text.push_str(&"  ".repeat(depth));
        text.push_str("a:\n");
    }
    let e = one_error(&text);
    assert_eq!(e.kind, ErrorKind::TooDeep { limit: 32 }, "{e}");
    // Depth 33 is reached on the 32nd `a:` line (the document mapping is depth 1).
    assert_eq!(e.line, 5 + 32, "{e}");
}

#[test]
fn deep_flow_nesting_is_refused() {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: deep\nspec: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = one_error(&text);
    assert_eq!(e.kind, ErrorKind::TooDeep { limit: 32 }, "{e}");
    assert_eq!(e.line, 5, "{e}");
}

#[test]
fn too_many_documents_are_refused() {
    let doc = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n";
    let limits = ParseLimits {
        max_documents: 3,
        ..ParseLimits::default()
    };
    let errors = parse_documents_with_limits("many.yaml", &doc.repeat(5), &limits).unwrap_err();
    assert_eq!(errors[0].kind, ErrorKind::TooManyDocuments { limit: 3 });
    // The `---` that starts the fourth document.
    assert_eq!((errors[0].line, errors[0].column), (15, 1), "{errors:?}");
    let e = one_error(&"---\n".repeat(5000));
    assert_eq!(e.kind, ErrorKind::TooManyDocuments { limit: 1000 });
}

#[test]
fn duplicate_keys_are_refused_at_the_second_key() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    team: x\n    team: y\n";
    let e = one_error(text);
    assert_eq!(e.kind, ErrorKind::DuplicateKey { key: "team".into() });
    assert_eq!((e.line, e.column), (7, 5));
    assert_eq!(e.path, "metadata.labels.team");
}

#[test]
fn wrong_kind_lists_the_supported_pairs() {
    let e = one_error("apiVersion: cert-manager.io/v1\nkind: Certificat\nmetadata:\n  name: a\n");
    assert!(matches!(&e.kind, ErrorKind::UnsupportedKind { kind, .. } if kind == "Certificat"));
    assert_eq!((e.path.as_str(), e.line, e.column), ("kind", 2, 7));
    let text = e.to_string();
    for pair in [
        "Certificate (cert-manager.io/v1)",
        "ClusterIssuer (cert-manager.io/v1)",
        "Namespace (v1)",
        "PeerAuthentication (security.istio.io/v1, security.istio.io/v1beta1)",
    ] {
        assert!(text.contains(pair), "{pair} missing from: {text}");
    }
}

#[test]
fn wrong_api_version_for_a_known_kind_points_at_api_version() {
    let e = one_error(
        "apiVersion: cert-manager.io/v1alpha2\nkind: Certificate\nmetadata:\n  name: a\n",
    );
    assert!(
        matches!(&e.kind, ErrorKind::UnsupportedKind { api_version, .. }
        if api_version == "cert-manager.io/v1alpha2")
    );
    assert_eq!((e.path.as_str(), e.line, e.column), ("apiVersion", 1, 13));
    assert!(
        e.to_string().contains("Certificate (cert-manager.io/v1)"),
        "{e}"
    );
}

#[test]
fn tab_indentation_is_named() {
    let e = one_error("apiVersion: v1\nkind: Namespace\nmetadata:\n\tname: x\n");
    assert_eq!(e.kind, ErrorKind::TabIndentation, "{e}");
    assert_eq!(e.line, 4, "{e}");
    assert!(
        e.to_string().contains("replace the tabs with spaces"),
        "{e}"
    );
}

#[test]
fn non_mapping_documents_and_binary_garbage_fail_cleanly() {
    let e = one_error("- just\n- a list\n");
    assert!(matches!(e.kind, ErrorKind::WrongType { .. }), "{e:?}");
    let garbage: String = (0u8..=255).map(char::from).collect();
    assert!(parse_documents("garbage.yaml", &garbage).is_err());
}
