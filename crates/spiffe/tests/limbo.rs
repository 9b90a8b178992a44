//! x509-limbo harness for the path-validation core that X.509-SVID verification uses
//! ([`sigil_spiffe::verify_chain_to_anchors`]: webpki path building plus trust-anchor validity).
//!
//! Data: `tests/data/x509-limbo/limbo.json` (C2SP/x509-limbo, Apache-2.0, see the LICENSE and
//! README beside it). Each case runs the core with `trusted_certs` as anchors,
//! `untrusted_intermediates` as the pool, `peer_certificate` as the leaf, `validation_time`
//! (or now) and `Usage::Server` for SERVER cases / `Usage::Client` for CLIENT cases, and
//! compares SUCCESS/FAILURE with `expected_result`.
//!
//! Filter (a case is SKIPPED, by the first reason that applies):
//! - `has-crl`: SPIFFE has no CRLs (revocation is removal from the bundle); the core takes none.
//! - `max-chain-depth`: webpki has no configurable depth limit, so the core has none.
//! - `key-usage-constraint`: the case asks the verifier to require leaf keyUsage bits; the core
//!   does not look at keyUsage (the SVID leaf rules do, and limbo leaves are not SVIDs).
//! - `eku-constraint` / `signature-algorithm-constraint`: constraints other than the EKU that
//!   matches the validation kind.
//! - `peer-name-decides`: a SERVER case whose DNS/IP `expected_peer_name` the peer certificate
//!   does not match (decided with webpki's own name matching, used here only as a classifier).
//!   SVID verification has no host names; those cases test name matching, not paths. When the
//!   name does match, the name cannot be what decides the case, so it runs.
//!
//! Every other case runs. Divergences are listed in `tests/data/limbo-exceptions.txt`
//! (`<id>  # reason`); the test fails on an unlisted divergence and on a listed case that now
//! matches or no longer runs, so the list stays exact.

// Harness helpers may unwrap: a panic is a clear test failure (as clippy.toml allows in tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use sigil_spiffe::pem::decode_certificates;
use sigil_spiffe::{ChainError, Usage, verify_chain_to_anchors};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Deserialize)]
struct Limbo {
    version: u32,
    testcases: Vec<Testcase>,
}

#[derive(Deserialize)]
struct PeerName {
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Testcase {
    id: String,
    features: Vec<String>,
    validation_kind: String,
    trusted_certs: Vec<String>,
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    validation_time: Option<String>,
    signature_algorithms: Vec<String>,
    key_usage: Vec<String>,
    extended_key_usage: Vec<String>,
    expected_result: String,
    expected_peer_name: Option<PeerName>,
    max_chain_depth: Option<u32>,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Why a case is not run, or None to run it.
fn skip_reason(tc: &Testcase) -> Option<&'static str> {
    if tc.features.iter().any(|f| f == "has-crl") {
        return Some("has-crl");
    }
    if tc.max_chain_depth.is_some() || tc.features.iter().any(|f| f == "max-chain-depth") {
        return Some("max-chain-depth");
    }
    if !tc.key_usage.is_empty() {
        return Some("key-usage-constraint");
    }
    if !tc.signature_algorithms.is_empty() {
        return Some("signature-algorithm-constraint");
    }
    let kind_eku = if tc.validation_kind == "SERVER" {
        "serverAuth"
    } else {
        "clientAuth"
    };
    if tc.extended_key_usage.iter().any(|e| e != kind_eku) {
        return Some("eku-constraint");
    }
    if tc.validation_kind == "SERVER"
        && let Some(name) = &tc.expected_peer_name
        && (name.kind == "DNS" || name.kind == "IP")
        && !peer_name_matches(tc, &name.value)
    {
        return Some("peer-name-decides");
    }
    None
}

/// Classifier only: does the peer certificate carry the expected DNS/IP name (per webpki)?
fn peer_name_matches(tc: &Testcase, name: &str) -> bool {
    let Ok(certs) = decode_certificates(&tc.peer_certificate) else {
        return true; // unreadable leaf: path validation fails regardless of the name
    };
    let Some(leaf) = certs.first() else {
        return true;
    };
    let Ok(ee) = webpki::EndEntityCert::try_from(leaf) else {
        return true;
    };
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    ee.verify_is_valid_for_subject_name(&server_name).is_ok()
}

fn validation_time(tc: &Testcase) -> UnixTime {
    match &tc.validation_time {
        // Whole seconds, truncated: webpki's UnixTime has no sub-second precision.
        Some(t) => {
            let secs = OffsetDateTime::parse(t, &Rfc3339)
                .unwrap_or_else(|e| panic!("{}: bad validation_time {t:?}: {e}", tc.id))
                .unix_timestamp();
            UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
        }
        None => UnixTime::since_unix_epoch(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        ),
    }
}

enum Outcome {
    Success,
    Failure(String),
}

fn pems(
    tc: &Testcase,
    what: &str,
    list: &[String],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for pem in list {
        out.extend(decode_certificates(pem).map_err(|e| format!("{}: {what}: {e}", tc.id))?);
    }
    Ok(out)
}

fn run(tc: &Testcase) -> Outcome {
    let certs = (|| {
        let anchors = pems(tc, "trusted_certs", &tc.trusted_certs)?;
        let pool = pems(tc, "untrusted_intermediates", &tc.untrusted_intermediates)?;
        let leaf = pems(
            tc,
            "peer_certificate",
            std::slice::from_ref(&tc.peer_certificate),
        )?;
        Ok::<_, String>((anchors, pool, leaf))
    })();
    let (anchors, pool, leaf) = match certs {
        Ok(c) => c,
        Err(e) => return Outcome::Failure(format!("PEM: {e}")),
    };
    let Some(leaf) = leaf.first() else {
        return Outcome::Failure("no peer certificate".into());
    };
    let usage = if tc.validation_kind == "CLIENT" {
        Usage::Client
    } else {
        Usage::Server
    };
    match verify_chain_to_anchors(leaf, &pool, &anchors, validation_time(tc), usage) {
        Ok(_) => Outcome::Success,
        Err(e) => Outcome::Failure(describe(&e)),
    }
}

fn describe(e: &ChainError) -> String {
    format!("{e} [{e:?}]")
}

/// `<id>  # reason` per line; blank and comment-only lines are ignored.
fn load_exceptions() -> BTreeMap<String, String> {
    let path = data_dir().join("limbo-exceptions.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let (id, reason) = line.split_once('#').unwrap_or((line, ""));
        let id = id.trim();
        if id.is_empty() {
            continue;
        }
        assert!(
            !reason.trim().is_empty(),
            "limbo-exceptions.txt line {}: {id} has no `# reason`",
            n + 1
        );
        let dup = map.insert(id.to_owned(), reason.trim().to_owned());
        assert!(
            dup.is_none(),
            "limbo-exceptions.txt line {}: {id} listed twice",
            n + 1
        );
    }
    map
}

#[test]
fn x509_limbo() {
    let path = data_dir().join("x509-limbo/limbo.json");
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let limbo: Limbo = serde_json::from_slice(&raw).expect("limbo.json parses");
    assert_eq!(limbo.version, 1, "limbo schema version");
    let exceptions = load_exceptions();

    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut ran, mut matched, mut excepted) = (0usize, 0usize, 0usize);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for tc in &limbo.testcases {
        seen.insert(tc.id.as_str());
        if let Some(reason) = skip_reason(tc) {
            *skipped.entry(reason).or_default() += 1;
            if exceptions.contains_key(&tc.id) {
                problems.push(format!(
                    "{}: listed as an exception but skipped ({reason})",
                    tc.id
                ));
            }
            continue;
        }
        ran += 1;
        let (actual, detail) = match run(tc) {
            Outcome::Success => ("SUCCESS", String::new()),
            Outcome::Failure(why) => ("FAILURE", why),
        };
        let listed = exceptions.contains_key(&tc.id);
        match (actual == tc.expected_result, listed) {
            (true, false) => matched += 1,
            (false, true) => excepted += 1,
            (true, true) => problems.push(format!(
                "{}: now matches ({actual}); remove it from limbo-exceptions.txt",
                tc.id
            )),
            (false, false) => problems.push(format!(
                "{}: expected {}, got {actual} {detail}",
                tc.id, tc.expected_result
            )),
        }
    }
    for id in exceptions.keys() {
        if !seen.contains(id.as_str()) {
            problems.push(format!(
                "{id}: listed in limbo-exceptions.txt but not in limbo.json"
            ));
        }
    }
    let total_skipped: usize = skipped.values().sum();
    let by_reason: Vec<String> = skipped.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    println!(
        "x509-limbo: ran {ran}, matched {matched}, exceptions {excepted}, skipped {total_skipped} ({})",
        by_reason.join(", ")
    );
    // Guards against a filter or data change that would make the comparison vacuous.
    assert!(
        ran > total_skipped && matched > excepted,
        "x509-limbo no longer exercises the core: ran {ran} (skipped {total_skipped}), matched \
         {matched} (exceptions {excepted})"
    );
    assert!(
        problems.is_empty(),
        "{} x509-limbo problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
