//! The Workload API end to end: a real server on a temp-dir Unix socket, the generated tonic
//! client, a cache snapshot whose entries match this test process by uid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod workload_common;

use std::collections::BTreeSet;
use std::time::Duration;

use sigil_proto::workload::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, WitBundlesRequest, WitsvidRequest,
    X509BundlesRequest, X509svidRequest,
};
use tonic::Code;
use workload_common::*;

const MSG_WAIT: Duration = Duration::from_secs(5);

fn assert_status(r: Result<impl std::fmt::Debug, tonic::Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} containing {needle:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(needle),
                "{:?} lacks {needle:?}",
                s.message()
            );
        }
    }
}

#[tokio::test]
async fn calls_without_the_security_header_are_invalid_argument() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.raw_client().await;
    const MSG: &str = "security header missing from request";
    assert_status(
        c.fetch_x509svid(X509svidRequest {}).await,
        Code::InvalidArgument,
        MSG,
    );
    assert_status(
        c.fetch_x509_bundles(X509BundlesRequest {}).await,
        Code::InvalidArgument,
        MSG,
    );
    assert_status(
        c.fetch_jwt_bundles(JwtBundlesRequest {}).await,
        Code::InvalidArgument,
        MSG,
    );
    let jwt = JwtsvidRequest {
        audience: vec!["a".into()],
        spiffe_id: String::new(),
    };
    assert_status(
        c.fetch_jwtsvid(jwt.clone()).await,
        Code::InvalidArgument,
        MSG,
    );
    let v = ValidateJwtsvidRequest {
        audience: "a".into(),
        svid: "x.y.z".into(),
    };
    assert_status(c.validate_jwtsvid(v).await, Code::InvalidArgument, MSG);
    assert_status(
        c.fetch_witsvid(WitsvidRequest::default()).await,
        Code::InvalidArgument,
        MSG,
    );

    // A wrong value is as good as none.
    let mut req = tonic::Request::new(jwt);
    req.metadata_mut()
        .insert("workload.spiffe.io", "false".parse().unwrap());
    assert_status(c.fetch_jwtsvid(req).await, Code::InvalidArgument, MSG);
    assert_eq!(
        h.api.stats().messages_sent,
        0,
        "no data may leave without the header"
    );
}

#[tokio::test]
async fn unmatched_workload_gets_permission_denied_naming_its_selectors() {
    let h = Harness::start(&[Entry::other("e1", "/someone-else")]).await;
    let mut c = h.client().await;
    let uid_sel = format!("unix:uid:{}", my_ids().0);
    let exe = std::env::current_exe().unwrap();
    let err = c.fetch_x509svid(X509svidRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let m = err.message();
    assert!(
        m.starts_with(
            "no identity issued: no registration entry matches this workload's selectors ["
        ),
        "{m}"
    );
    assert!(m.contains(&uid_sel), "{m}");
    assert!(m.contains(&format!("unix:path:{}", exe.display())), "{m}");
    assert!(m.contains("sigil entry create"), "{m}");

    // Bundles and JWT-SVIDs are withheld from unregistered callers too (SPIRE's default).
    assert_status(
        c.fetch_x509_bundles(X509BundlesRequest {}).await,
        Code::PermissionDenied,
        &uid_sel,
    );
    assert_status(
        c.fetch_jwt_bundles(JwtBundlesRequest {}).await,
        Code::PermissionDenied,
        &uid_sel,
    );
    let jwt = JwtsvidRequest {
        audience: vec!["a".into()],
        spiffe_id: String::new(),
    };
    assert_status(c.fetch_jwtsvid(jwt).await, Code::PermissionDenied, &uid_sel);
    assert_eq!(h.api.stats().live_streams, 0);
}

#[tokio::test]
async fn first_message_is_the_complete_state() {
    let h = Harness::start(&[
        Entry::mine("e1", "/w1")
            .hint("internal")
            .federates_with(FED_TD),
        Entry::mine("e2", "/w2").hint("external"),
        // Same hint as e1 and sorted after it: dropped.
        Entry::mine("e3", "/w3").hint("internal"),
        // Expired: not served.
        Entry::mine("e4", "/w4").not_after(now() - 10),
        Entry::other("e5", "/not-mine"),
    ])
    .await;
    let state = h.cache.borrow().clone();
    let chains = chains_by_id(&state);
    let mut c = h.client().await;
    let mut stream = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    let msg = tokio::time::timeout(MSG_WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let ids: Vec<&str> = msg.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    assert_eq!(ids, ["spiffe://example.org/w1", "spiffe://example.org/w2"]);
    let hints: Vec<&str> = msg.svids.iter().map(|s| s.hint.as_str()).collect();
    assert_eq!(hints, ["internal", "external"]);
    for s in &msg.svids {
        let cached = state
            .svids
            .iter()
            .find(|c| c.spiffe_id.as_str() == s.spiffe_id)
            .unwrap();
        assert_eq!(s.x509_svid, chains[&s.spiffe_id], "chain is leaf-first DER");
        assert_eq!(
            s.x509_svid_key,
            cached.key_pkcs8.to_vec(),
            "key is PKCS#8 DER"
        );
        assert_eq!(
            s.bundle,
            h.pki.own.cert.to_vec(),
            "own trust domain's CA, DER"
        );
    }
    // Only the trust domains the served entries federate with.
    let fed: BTreeSet<&str> = msg.federated_bundles.keys().map(String::as_str).collect();
    assert_eq!(fed, BTreeSet::from(["spiffe://other.org"]));
    assert_eq!(
        msg.federated_bundles["spiffe://other.org"],
        h.pki.fed.cert.to_vec()
    );
    assert!(msg.crl.is_empty());
}

#[tokio::test]
async fn updates_are_pushed_only_when_this_callers_view_changes() {
    let mut h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.client().await;
    let mut stream = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let sent_before = h.api.stats().messages_sent;

    // Someone else's entry appears, our SVID is unchanged (same Arc): nothing to push.
    let mine = h.cache.borrow().svids[0].clone();
    let other = h.pki.svid(&Entry::other("e9", "/else"));
    let state = h.pki.state(vec![mine, other], 2);
    h.cache.send_replace(state);
    let quiet = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(
        quiet.is_err(),
        "no message expected for a change this caller cannot see"
    );
    assert_eq!(h.api.stats().messages_sent, sent_before);

    // Our SVID is renewed (new serial, new key): pushed.
    h.publish(&[Entry::mine("e1", "/w1")], 3);
    let second = tokio::time::timeout(MSG_WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.svids.len(), 1);
    assert_ne!(second.svids[0].x509_svid, first.svids[0].x509_svid);
    assert_eq!(
        second.svids[0].x509_svid,
        chains_by_id(&h.cache.borrow())["spiffe://example.org/w1"]
    );
    h.stop();
}

#[tokio::test]
async fn removing_the_last_entry_ends_the_stream_with_permission_denied() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.client().await;
    let mut stream = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();

    h.publish(&[Entry::other("e2", "/else")], 2);
    let end = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("stream must end within 2 s");
    assert_status(end, Code::PermissionDenied, "no identity issued");
    assert!(Harness::eventually(Duration::from_secs(2), || h.api.stats().live_streams == 0).await);
}

#[tokio::test]
async fn an_expiring_svid_is_redacted_by_a_push() {
    let h = Harness::start(&[
        Entry::mine("e1", "/short").not_after(now() + 2),
        Entry::mine("e2", "/long"),
    ])
    .await;
    let mut c = h.client().await;
    let mut stream = c
        .fetch_x509svid(X509svidRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.svids.len(), 2);
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a push when the short-lived SVID expires")
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = next.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    assert_eq!(ids, ["spiffe://example.org/long"]);
}

#[tokio::test]
async fn x509_bundles_are_own_plus_federated_with() {
    let h = Harness::start(&[Entry::mine("e1", "/w1").federates_with(FED_TD)]).await;
    let mut c = h.client().await;
    let mut stream = c
        .fetch_x509_bundles(X509BundlesRequest {})
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let keys: BTreeSet<&str> = msg.bundles.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["spiffe://example.org", "spiffe://other.org"])
    );
    assert_eq!(msg.bundles["spiffe://example.org"], h.pki.own.cert.to_vec());
    assert_eq!(msg.bundles["spiffe://other.org"], h.pki.fed.cert.to_vec());

    // The entry stops federating: the foreign bundle is redacted by a push.
    h.publish(&[Entry::mine("e1", "/w1")], 2);
    let next = tokio::time::timeout(MSG_WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let keys: BTreeSet<&str> = next.bundles.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["spiffe://example.org"]));
}

#[tokio::test]
async fn jwt_bundles_are_jwks_of_jwt_authorities_only() {
    let h = Harness::start(&[Entry::mine("e1", "/w1").federates_with(FED_TD)]).await;
    let mut c = h.client().await;
    let mut stream = c
        .fetch_jwt_bundles(JwtBundlesRequest {})
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let keys: BTreeSet<&str> = msg.bundles.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["spiffe://example.org", "spiffe://other.org"])
    );

    let own: serde_json::Value =
        serde_json::from_slice(&msg.bundles["spiffe://example.org"]).unwrap();
    let own_keys = own["keys"].as_array().unwrap();
    assert_eq!(
        own_keys.len(),
        1,
        "the X.509 authority is not a JWT key: {own}"
    );
    assert_eq!(own_keys[0]["kid"], "k1");
    assert_eq!(own_keys[0]["use"], "jwt-svid");
    assert_eq!(own_keys[0]["kty"], "EC");
    assert_eq!(own_keys[0]["crv"], "P-256");
    assert!(own_keys[0].get("x5c").is_none());
    assert_eq!(own.as_object().unwrap().len(), 1, "plain JWKS: {own}");
    // The federated trust domain has no JWT authorities: an empty key set.
    let fed: serde_json::Value =
        serde_json::from_slice(&msg.bundles["spiffe://other.org"]).unwrap();
    assert_eq!(fed, serde_json::json!({"keys": []}));
}

#[tokio::test]
async fn fetch_jwtsvid_checks_audience_and_requested_id() {
    let h = Harness::start(&[
        Entry::mine("e1", "/w1").hint("one"),
        Entry::mine("e2", "/w2"),
    ])
    .await;
    let mut c = h.client().await;
    let req = |aud: &[&str], id: &str| JwtsvidRequest {
        audience: aud.iter().map(|s| (*s).to_owned()).collect(),
        spiffe_id: id.to_owned(),
    };
    assert_status(
        c.fetch_jwtsvid(req(&[], "")).await,
        Code::InvalidArgument,
        "audience must be specified",
    );
    assert_status(
        c.fetch_jwtsvid(req(&[""], "")).await,
        Code::InvalidArgument,
        "audience values must not be empty",
    );
    assert_status(
        c.fetch_jwtsvid(req(&["a"], "not-a-spiffe-id")).await,
        Code::InvalidArgument,
        "invalid requested SPIFFE ID",
    );

    let all = c
        .fetch_jwtsvid(req(&["a", "b"], ""))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(&str, &str, &str)> = all
        .svids
        .iter()
        .map(|s| (s.spiffe_id.as_str(), s.svid.as_str(), s.hint.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "spiffe://example.org/w1",
                "jwt:spiffe://example.org/w1:a,b",
                "one"
            ),
            (
                "spiffe://example.org/w2",
                "jwt:spiffe://example.org/w2:a,b",
                ""
            ),
        ]
    );

    let one = c
        .fetch_jwtsvid(req(&["a"], "spiffe://example.org/w2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.svids.len(), 1);
    assert_eq!(one.svids[0].svid, "jwt:spiffe://example.org/w2:a");

    assert_status(
        c.fetch_jwtsvid(req(&["a"], "spiffe://example.org/not-mine"))
            .await,
        Code::PermissionDenied,
        "not entitled to spiffe://example.org/not-mine",
    );
}

#[tokio::test]
async fn validate_jwtsvid_requires_audience_and_token() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.client().await;
    let v = |aud: &str, svid: &str| ValidateJwtsvidRequest {
        audience: aud.into(),
        svid: svid.into(),
    };
    assert_status(
        c.validate_jwtsvid(v("", "a.b.c")).await,
        Code::InvalidArgument,
        "audience must be specified",
    );
    assert_status(
        c.validate_jwtsvid(v("aud", "")).await,
        Code::InvalidArgument,
        "svid must be specified",
    );
    let garbage = c.validate_jwtsvid(v("aud", "not-a-jwt")).await.unwrap_err();
    assert_eq!(
        garbage.code(),
        Code::InvalidArgument,
        "{}",
        garbage.message()
    );
    assert!(
        garbage.message().contains("compact form"),
        "{}",
        garbage.message()
    );
}

/// An ES256 JWT signed with `key` under `kid`.
fn sign_jwt(key: &rcgen::KeyPair, kid: &str, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", b64(&header), b64(claims));
    let der = rcgen::SigningKey::sign(key, input.as_bytes()).unwrap();
    let raw = sigil_spiffe::jwt::ecdsa_der_to_raw(&der, 32).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw))
}

#[tokio::test]
async fn validate_jwtsvid_checks_tokens_against_the_callers_bundles() {
    let h = Harness::start(&[Entry::mine("e1", "/w1").federates_with(FED_TD)]).await;
    let mut c = h.client().await;
    let claims = |sub: &str| serde_json::json!({"sub": sub, "aud": ["svc"], "exp": now() + 300, "iat": now(), "team": 7});
    let token = sign_jwt(&h.pki.jwt_key, "k1", &claims("spiffe://example.org/peer"));
    let ok = c
        .validate_jwtsvid(ValidateJwtsvidRequest {
            audience: "svc".into(),
            svid: token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.spiffe_id, "spiffe://example.org/peer");
    let fields = ok.claims.unwrap().fields;
    use prost_types::value::Kind;
    assert_eq!(
        fields["sub"].kind,
        Some(Kind::StringValue("spiffe://example.org/peer".into()))
    );
    assert_eq!(fields["team"].kind, Some(Kind::NumberValue(7.0)));
    let Some(Kind::ListValue(aud)) = &fields["aud"].kind else {
        panic!("aud: {:?}", fields["aud"])
    };
    assert_eq!(aud.values[0].kind, Some(Kind::StringValue("svc".into())));

    let v = |aud: &str, svid: String| ValidateJwtsvidRequest {
        audience: aud.into(),
        svid,
    };
    assert_status(
        c.validate_jwtsvid(v("other", token)).await,
        Code::InvalidArgument,
        "audience",
    );
    let expired =
        serde_json::json!({"sub": "spiffe://example.org/peer", "aud": "svc", "exp": now() - 5});
    assert_status(
        c.validate_jwtsvid(v("svc", sign_jwt(&h.pki.jwt_key, "k1", &expired)))
            .await,
        Code::InvalidArgument,
        "expired",
    );
    // A federated trust domain is looked up (it has no such key) ...
    let fed = sign_jwt(&h.pki.jwt_key, "k1", &claims("spiffe://other.org/peer"));
    assert_status(
        c.validate_jwtsvid(v("svc", fed)).await,
        Code::InvalidArgument,
        "not a JWT authority of trust domain other.org",
    );
    // ... a trust domain the caller does not federate with is not, even though the agent has it.
    let unrelated = sign_jwt(&h.pki.jwt_key, "k1", &claims("spiffe://unrelated.org/peer"));
    assert_status(
        c.validate_jwtsvid(v("svc", unrelated)).await,
        Code::InvalidArgument,
        "no trust bundle for trust domain unrelated.org",
    );
}

#[tokio::test]
async fn wit_svid_profile_is_unimplemented() {
    let h = Harness::start(&[Entry::mine("e1", "/w1")]).await;
    let mut c = h.client().await;
    const MSG: &str = "WIT-SVID profile is not supported";
    assert_status(
        c.fetch_witsvid(WitsvidRequest::default()).await,
        Code::Unimplemented,
        MSG,
    );
    assert_status(
        c.fetch_wit_bundles(WitBundlesRequest {}).await,
        Code::Unimplemented,
        MSG,
    );
}
