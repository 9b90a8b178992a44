//! Every outcome of `sigil diagnose tls`, classified from hand-built observations. The
//! integration tests (tests/diagnose.rs) build the same situations with real sockets.

use std::time::Duration;

use super::*;

const T: &str = "127.0.0.1:8443";

fn info(id: Option<&str>, issuer: &str) -> CertInfo {
    CertInfo {
        index: 0,
        subject: "<empty>".into(),
        issuer: issuer.into(),
        serial: "1".into(),
        not_before: 0,
        not_after: 20_000,
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
        authority_key_id: None,
    }
}

fn obs(outcome: Outcome) -> Observation {
    Observation {
        target: T.into(),
        now: 10_000,
        timeout: Duration::from_secs(5),
        expect: Expectation::default(),
        outcome,
        server_chain: vec![info(
            Some("spiffe://cluster.local/ns/payments/sa/billing"),
            "CN=root",
        )],
        check: PeerCheck::Verified {
            spiffe_id: "spiffe://cluster.local/ns/payments/sa/billing".into(),
        },
    }
}

fn completed(after: After) -> Outcome {
    Outcome::Tls(Handshake::Completed {
        params: TlsParams {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
            alpn: Some("h2".into()),
        },
        after,
    })
}

fn with_client(mut o: Observation) -> Observation {
    o.expect.client = Some((
        info(Some("spiffe://cluster.local/ns/a/sa/b"), "CN=foreign root"),
        "--cert client.pem".into(),
    ));
    o
}

#[test]
fn a_quiet_verified_connection_is_ok_and_shows_peer_and_parameters() {
    let f = classify(&obs(completed(After::Quiet)));
    assert_eq!((f.code, f.ok), ("ok", true));
    let text = f.human(T);
    for want in [
        "spiffe://cluster.local/ns/payments/sa/billing",
        "TLSv1.3",
        "TLS13_AES_128_GCM_SHA256",
        "h2",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
}

#[test]
fn unverified_success_says_so() {
    let mut o = obs(completed(After::Data));
    o.check = PeerCheck::Unverified { spiffe_id: None };
    let f = classify(&o);
    assert!(f.ok);
    assert!(f.summary.contains("NOT verified"), "{}", f.summary);
}

#[test]
fn certificate_required_alert_is_strict_without_sidecar() {
    for o in [
        obs(completed(After::Alert(Alert::CERTIFICATE_REQUIRED))),
        obs(Outcome::Tls(Handshake::Alert(Alert::CERTIFICATE_REQUIRED))),
        obs(completed(After::Closed)),
        // TLS 1.2 servers say bad_certificate to a client that sent none.
        obs(Outcome::Tls(Handshake::Alert(Alert::BAD_CERTIFICATE))),
    ] {
        let f = classify(&o);
        assert_eq!(f.code, "client-cert-required", "{o:?}");
        assert!(
            f.summary
                .contains("STRICT mTLS rejected a client without a sidecar"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains("connection termination"));
        assert!(f.fix.iter().any(|l| l.contains("portLevelMtls")));
        assert!(f.fix.iter().any(|l| l.contains("--as ")));
    }
}

#[test]
fn rejected_client_certificate_is_certificate_verify_failed() {
    for a in [
        Alert::UNKNOWN_CA,
        Alert::BAD_CERTIFICATE,
        Alert::DECRYPT_ERROR,
    ] {
        for outcome in [
            completed(After::Alert(a)),
            Outcome::Tls(Handshake::Alert(a)),
        ] {
            let f = classify(&with_client(obs(outcome)));
            assert_eq!(f.code, "client-cert-rejected");
            assert!(
                f.summary.contains(
                    "the server does not trust the CA that signed your client certificate"
                ),
                "{}",
                f.summary
            );
            assert!(f.summary.contains("CERTIFICATE_VERIFY_FAILED"));
            assert!(f.summary.contains(&a.name()));
            assert!(
                f.fix
                    .iter()
                    .any(|l| l == "sigil x509 verify --bundle ca.pem client.pem"),
                "{:?}",
                f.fix
            );
        }
    }
}

#[test]
fn expired_client_certificate_alert_says_expired() {
    let f = classify(&with_client(obs(completed(After::Alert(
        Alert::CERTIFICATE_EXPIRED,
    )))));
    assert_eq!(f.code, "client-cert-rejected");
    assert!(f.summary.contains("as expired"), "{}", f.summary);
}

#[test]
fn close_after_handshake_with_a_certificate_points_at_policy_or_trust() {
    let f = classify(&with_client(obs(completed(After::Reset))));
    assert_eq!(f.code, "closed-after-handshake");
    assert!(f.explanation.join(" ").contains("AuthorizationPolicy"));
}

#[test]
fn alpn_mismatch() {
    let mut o = obs(Outcome::Tls(Handshake::Alert(
        Alert::NO_APPLICATION_PROTOCOL,
    )));
    o.expect.alpn = vec!["grpc-exp".into()];
    let f = classify(&o);
    assert_eq!(f.code, "alpn-mismatch");
    assert!(f.summary.contains("ALPN mismatch"));
    assert!(f.summary.contains("grpc-exp"));
}

#[test]
fn plaintext_reply_to_tls_is_rx_record_too_long_with_first_bytes() {
    let f = classify(&obs(Outcome::Tls(Handshake::NotTls(
        b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
    ))));
    assert_eq!(f.code, "not-tls");
    assert!(f.summary.starts_with("SSL_ERROR_RX_RECORD_TOO_LONG"));
    assert!(f.summary.contains("plaintext HTTP"));
    let text = f.human(T);
    assert!(text.contains(r#""HTTP/1.1 400 Bad Request\r\n""#), "{text}");
    assert!(text.contains("sigil get destinationrule -A -o yaml"));
}

#[test]
fn plaintext_outcomes() {
    let f = classify(&obs(Outcome::Plaintext(Plain::Reset)));
    assert_eq!(f.code, "plaintext-rejected");
    assert!(f.summary.contains("connection termination"));
    assert!(f.summary.contains("requires mTLS (STRICT)"));
    let f = classify(&obs(Outcome::Plaintext(Plain::Answered(vec![
        0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32,
    ]))));
    assert_eq!(f.code, "plaintext-to-tls");
    assert!(f.human(T).contains(r#""\x15\x03\x03"#));
    let f = classify(&obs(Outcome::Plaintext(Plain::Answered(
        b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
    ))));
    assert_eq!((f.code, f.ok), ("ok", true));
    assert!(f.summary.contains("HTTP/1.1 200 OK"));
}

#[test]
fn connection_failures_in_plain_words() {
    let f = classify(&obs(Outcome::NoConnection(Connect::Refused)));
    assert_eq!(f.code, "connection-refused");
    assert!(f.summary.contains("nothing listens on 127.0.0.1:8443"));
    let f = classify(&obs(Outcome::NoConnection(Connect::Timeout)));
    assert_eq!(f.code, "connect-timeout");
    let f = classify(&obs(Outcome::Tls(Handshake::Timeout)));
    assert_eq!(f.code, "no-tls-answer");
    let f = classify(&obs(Outcome::Tls(Handshake::Closed)));
    assert_eq!(f.code, "connection-terminated");
}

#[test]
fn spiffe_id_mismatch_names_both_ids() {
    let mut o = obs(Outcome::Tls(Handshake::RejectedServer));
    o.expect.expect_id = Some("spiffe://cluster.local/ns/payments/sa/other".into());
    let f = classify(&o);
    assert_eq!(f.code, "spiffe-id-mismatch");
    assert!(
        f.summary
            .contains("presented spiffe://cluster.local/ns/payments/sa/billing")
    );
    assert!(
        f.summary
            .contains("expected spiffe://cluster.local/ns/payments/sa/other")
    );
}

#[test]
fn failed_server_check_is_explained_before_the_handshake_result() {
    let mut o = obs(Outcome::Tls(Handshake::RejectedServer));
    o.check = PeerCheck::Failed(Problem::Chain(sigil_spiffe::ChainError::UnknownIssuer));
    o.expect.trust_domain = Some("cluster.local".into());
    let f = classify(&o);
    assert_eq!(f.code, "unknown-authority");
}

#[test]
fn bytes_are_shown_readably() {
    assert_eq!(show_bytes(b"HTTP/1.1\r\n\x00"), r#""HTTP/1.1\r\n\x00""#);
    assert!(show_bytes(&[b'a'; 100]).ends_with("…\""));
}
