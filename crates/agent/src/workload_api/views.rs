//! What one caller sees: pure functions from a cache snapshot and the caller's selectors to
//! Workload API messages. No IO, no clock (time is a parameter).
//!
//! A caller is *entitled* to the unexpired SVIDs whose entries' selectors are all among its
//! own ([`CacheState::svids_for`]), with duplicate hints removed. It receives the bundles of
//! its own trust domain and of the trust domains those entries federate with; with no
//! entitlement it gets no identity and no bundles (SPIRE's behaviour without
//! `allow_unauthenticated_verifiers`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use sigil_proto::workload::{JwtBundlesResponse, X509BundlesResponse, X509svid, X509svidResponse};
use sigil_spiffe::{Bundle, BundleSource, TrustDomain};
use tonic::Status;

use crate::cache::{CacheState, CachedSvid, Selector};

/// The selectors named in a "no identity" message; the rest are counted.
const MAX_SELECTORS_SHOWN: usize = 40;

/// A message for one caller, plus when it must be recomputed even without a cache change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct View<M> {
    pub msg: M,
    /// Earliest `not_after` (unix seconds) among the SVIDs the message depends on.
    pub expires: Option<i64>,
    /// Entries left out because an earlier one had the same hint: (entry ID, hint).
    pub dropped_hints: Vec<(String, String)>,
}

/// The SVIDs a caller gets, after hint de-duplication.
#[derive(Debug, Default)]
pub(crate) struct Entitlement {
    pub svids: Vec<Arc<CachedSvid>>,
    pub dropped_hints: Vec<(String, String)>,
}

impl Entitlement {
    /// Unexpired matching SVIDs in cache order (SPIFFE ID, then entry ID); an SVID whose
    /// non-empty hint was already taken by an earlier one is dropped (hints must be unique in
    /// one response).
    pub fn of(state: &CacheState, selectors: &[Selector], now: i64) -> Self {
        let mut out = Entitlement::default();
        let mut hints = HashSet::new();
        for svid in state.svids_for(selectors, now) {
            if !svid.hint.is_empty() && !hints.insert(svid.hint.clone()) {
                out.dropped_hints
                    .push((svid.entry_id.clone(), svid.hint.clone()));
                continue;
            }
            out.svids.push(svid);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.svids.is_empty()
    }

    fn expires(&self) -> Option<i64> {
        self.svids.iter().map(|s| s.not_after).min()
    }

    /// Foreign trust domains the entitled entries federate with.
    pub fn federated(&self, own: &TrustDomain) -> BTreeSet<TrustDomain> {
        self.svids
            .iter()
            .flat_map(|s| s.federates_with.iter())
            .filter(|td| *td != own)
            .cloned()
            .collect()
    }

    fn view<M>(self, msg: M) -> View<M> {
        View {
            msg,
            expires: self.expires(),
            dropped_hints: self.dropped_hints,
        }
    }
}

/// The answer for a caller with no entitlement: Unavailable if the agent itself cannot serve
/// yet (the caller may simply retry), otherwise PermissionDenied naming its selectors.
pub(crate) fn no_identity(state: &CacheState, selectors: &[Selector]) -> Status {
    if let Some(reason) = &state.unavailable {
        return Status::unavailable(format!(
            "no identity issued: the agent cannot serve identities yet ({reason}); retry later"
        ));
    }
    Status::permission_denied(no_identity_message(selectors))
}

/// "no identity issued: no registration entry matches this workload's selectors [...]".
pub fn no_identity_message(selectors: &[Selector]) -> String {
    if selectors.is_empty() {
        return "no identity issued: the workload was attested with no selectors, so no \
                registration entry can match it; check the agent's workload attestors"
            .to_owned();
    }
    let mut shown: Vec<String> = selectors
        .iter()
        .take(MAX_SELECTORS_SHOWN)
        .map(ToString::to_string)
        .collect();
    if selectors.len() > MAX_SELECTORS_SHOWN {
        shown.push(format!(
            "... and {} more",
            selectors.len() - MAX_SELECTORS_SHOWN
        ));
    }
    format!(
        "no identity issued: no registration entry matches this workload's selectors [{}]; \
         create one with sigil entry create -parentID <this agent's SPIFFE ID> -spiffeID \
         <SPIFFE ID for the workload> -selector {}",
        shown.join(", "),
        selectors[0]
    )
}

fn concat_der(bundle: &Bundle) -> Vec<u8> {
    bundle
        .x509_authorities()
        .iter()
        .flat_map(|c| c.as_ref().iter().copied())
        .collect()
}

/// The federated bundles of `tds` that the agent has, keyed `spiffe://<td>`.
fn federated_map(
    state: &CacheState,
    tds: &BTreeSet<TrustDomain>,
    encode: impl Fn(&Bundle) -> Vec<u8>,
) -> HashMap<String, Vec<u8>> {
    tds.iter()
        .filter_map(|td| state.federated.get(td).map(|b| (td.id_string(), encode(b))))
        .collect()
}

/// The FetchX509SVID message: every entitled SVID, the own X.509 bundle with each, and the
/// federated bundles of the entries' `federates_with` trust domains.
pub(crate) fn x509_svid(
    state: &CacheState,
    selectors: &[Selector],
    now: i64,
) -> Result<View<X509svidResponse>, Status> {
    let ent = Entitlement::of(state, selectors, now);
    if ent.is_empty() {
        return Err(no_identity(state, selectors));
    }
    let bundle = concat_der(&state.own_bundle);
    let svids = ent
        .svids
        .iter()
        .map(|s| X509svid {
            spiffe_id: s.spiffe_id.to_string(),
            x509_svid: s
                .chain
                .iter()
                .flat_map(|c| c.as_ref().iter().copied())
                .collect(),
            x509_svid_key: s.key_pkcs8.to_vec(),
            bundle: bundle.clone(),
            hint: s.hint.clone(),
        })
        .collect();
    let federated_bundles = federated_map(state, &ent.federated(&state.trust_domain), concat_der);
    Ok(ent.view(X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles,
    }))
}

/// The FetchX509Bundles message: own and federated X.509 bundles (concatenated DER).
pub(crate) fn x509_bundles(
    state: &CacheState,
    selectors: &[Selector],
    now: i64,
) -> Result<View<X509BundlesResponse>, Status> {
    let ent = Entitlement::of(state, selectors, now);
    if ent.is_empty() {
        return Err(no_identity(state, selectors));
    }
    let mut bundles = federated_map(state, &ent.federated(&state.trust_domain), concat_der);
    bundles.insert(
        state.trust_domain.id_string(),
        concat_der(&state.own_bundle),
    );
    Ok(ent.view(X509BundlesResponse {
        crl: Vec::new(),
        bundles,
    }))
}

/// The FetchJWTBundles message: own and federated JWT authorities as JWKS JSON.
pub(crate) fn jwt_bundles(
    state: &CacheState,
    selectors: &[Selector],
    now: i64,
) -> Result<View<JwtBundlesResponse>, Status> {
    let ent = Entitlement::of(state, selectors, now);
    if ent.is_empty() {
        return Err(no_identity(state, selectors));
    }
    let mut bundles = federated_map(state, &ent.federated(&state.trust_domain), jwks);
    bundles.insert(state.trust_domain.id_string(), jwks(&state.own_bundle));
    Ok(ent.view(JwtBundlesResponse { bundles }))
}

/// A standard JWK Set (`{"keys":[...]}`) of the bundle's JWT authorities only: each key with
/// its parameters, `kid`, `use: "jwt-svid"` and `alg` when known. No X.509 authorities and no
/// SPIFFE-specific members, as SPIRE serves it.
pub fn jwks(bundle: &Bundle) -> Vec<u8> {
    let keys: Vec<Value> = bundle
        .jwt_authorities()
        .iter()
        .map(|(kid, auth)| {
            let mut obj = Map::new();
            auth.key.write_jwk_params(&mut obj);
            obj.insert("kid".into(), kid.as_str().into());
            obj.insert("use".into(), "jwt-svid".into());
            if let Some(alg) = &auth.alg {
                obj.insert("alg".into(), alg.as_str().into());
            }
            Value::Object(obj)
        })
        .collect();
    let mut top = Map::new();
    top.insert("keys".into(), Value::Array(keys));
    // A Value built from strings cannot fail to serialize.
    serde_json::to_vec(&Value::Object(top)).unwrap_or_default()
}

/// The bundles a caller may validate JWT-SVIDs against: its own trust domain's, plus those of
/// the trust domains its entries federate with.
pub(crate) struct CallerBundles<'a> {
    state: &'a CacheState,
    federated: BTreeSet<TrustDomain>,
}

impl<'a> CallerBundles<'a> {
    pub fn new(state: &'a CacheState, ent: &Entitlement) -> Self {
        CallerBundles {
            state,
            federated: ent.federated(&state.trust_domain),
        }
    }
}

impl BundleSource for CallerBundles<'_> {
    fn bundle_for(&self, td: &TrustDomain) -> Option<&Bundle> {
        if *td == self.state.trust_domain {
            return Some(&self.state.own_bundle);
        }
        if self.federated.contains(td) {
            return self.state.federated.get(td);
        }
        None
    }
}

/// JSON claims as a protobuf `Struct` (numbers become doubles, as in JSON).
pub fn claims_to_struct(claims: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: claims
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(claims_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rustls_pki_types::CertificateDer;
    use sigil_spiffe::{JwtAuthority, PublicKey, SpiffeId};
    use tonic::Code;
    use zeroize::Zeroizing;

    use super::*;

    fn td(s: &str) -> TrustDomain {
        TrustDomain::new(s).unwrap()
    }

    fn svid(entry: &str, path: &str, hint: &str, fed: &[&str]) -> Arc<CachedSvid> {
        Arc::new(CachedSvid {
            entry_id: entry.to_owned(),
            spiffe_id: SpiffeId::parse(&format!("spiffe://example.org{path}")).unwrap(),
            selectors: vec![Selector::new("unix", "uid:1")],
            chain: vec![
                CertificateDer::from(vec![1, 2]),
                CertificateDer::from(vec![3]),
            ],
            key_pkcs8: Zeroizing::new(vec![9]),
            not_after: 100,
            hint: hint.to_owned(),
            federates_with: fed.iter().map(|t| td(t)).collect(),
            jwt_svid_ttl: 0,
        })
    }

    fn state(svids: Vec<Arc<CachedSvid>>) -> CacheState {
        let mut st = CacheState::empty(td("example.org"));
        st.svids = svids;
        st.federated = BTreeMap::from([
            (td("a.org"), Bundle::new(td("a.org"))),
            (td("b.org"), Bundle::new(td("b.org"))),
        ]);
        st
    }

    const ME: &[Selector] = &[];

    fn me() -> Vec<Selector> {
        vec![
            Selector::new("unix", "uid:1"),
            Selector::new("unix", "gid:1"),
        ]
    }

    #[test]
    fn later_duplicate_hints_are_dropped_empty_hints_are_not() {
        let st = state(vec![
            svid("e1", "/a", "h", &[]),
            svid("e2", "/b", "", &[]),
            svid("e3", "/c", "h", &[]),
            svid("e4", "/d", "", &[]),
        ]);
        let ent = Entitlement::of(&st, &me(), 50);
        let ids: Vec<&str> = ent.svids.iter().map(|s| s.entry_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e4"]);
        assert_eq!(ent.dropped_hints, [("e3".to_owned(), "h".to_owned())]);
    }

    #[test]
    fn x509_view_concatenates_der_and_reports_expiry() {
        let st = state(vec![svid(
            "e1",
            "/a",
            "",
            &["a.org", "example.org", "z.org"],
        )]);
        let v = x509_svid(&st, &me(), 50).unwrap();
        assert_eq!(v.msg.svids[0].x509_svid, [1, 2, 3]);
        assert_eq!(v.msg.svids[0].x509_svid_key, [9]);
        // Own trust domain and unknown ones (no bundle yet) are not in federated_bundles.
        let keys: Vec<&String> = v.msg.federated_bundles.keys().collect();
        assert_eq!(keys, ["spiffe://a.org"]);
        assert_eq!(v.expires, Some(100));
        // At not_after the SVID is expired.
        assert_eq!(
            x509_svid(&st, &me(), 100).unwrap_err().code(),
            Code::PermissionDenied
        );
    }

    #[test]
    fn no_identity_names_selectors_or_says_why_the_agent_cannot_serve() {
        let st = state(vec![]);
        let s = x509_bundles(&st, &me(), 0).unwrap_err();
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(
            s.message().contains("selectors [unix:uid:1, unix:gid:1]"),
            "{}",
            s.message()
        );
        assert!(
            s.message().ends_with("-selector unix:uid:1"),
            "{}",
            s.message()
        );

        let mut down = state(vec![]);
        down.unavailable = Some("server unreachable".to_owned());
        let s = jwt_bundles(&down, &me(), 0).unwrap_err();
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("server unreachable"));

        assert!(no_identity_message(ME).contains("attested with no selectors"));
        let many: Vec<Selector> = (0..50)
            .map(|i| Selector::new("k", format!("v:{i}")))
            .collect();
        assert!(no_identity_message(&many).contains("... and 10 more"));
    }

    #[test]
    fn caller_bundles_cover_own_and_federated_with_only() {
        let st = state(vec![svid("e1", "/a", "", &["a.org"])]);
        let ent = Entitlement::of(&st, &me(), 0);
        let src = CallerBundles::new(&st, &ent);
        assert!(src.bundle_for(&td("example.org")).is_some());
        assert!(src.bundle_for(&td("a.org")).is_some());
        assert!(src.bundle_for(&td("b.org")).is_none());
    }

    #[test]
    fn jwks_has_only_jwt_keys_with_kid_and_use() {
        let mut b = Bundle::new(td("example.org"));
        let key = PublicKey::Ed25519 { x: vec![7; 32] };
        b.add_jwt_authority(
            "kid-1",
            JwtAuthority {
                key,
                alg: Some("EdDSA".to_owned()),
            },
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&jwks(&b)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
                "kid": "kid-1", "use": "jwt-svid", "alg": "EdDSA"
            }]})
        );
    }

    #[test]
    fn claims_become_a_protobuf_struct() {
        use prost_types::value::Kind;
        let Value::Object(m) = serde_json::json!({
            "s": "x", "n": 1.5, "b": true, "z": null, "l": [1], "o": {"k": "v"}
        }) else {
            unreachable!()
        };
        let st = claims_to_struct(m);
        assert_eq!(st.fields["s"].kind, Some(Kind::StringValue("x".into())));
        assert_eq!(st.fields["n"].kind, Some(Kind::NumberValue(1.5)));
        assert_eq!(st.fields["b"].kind, Some(Kind::BoolValue(true)));
        assert_eq!(st.fields["z"].kind, Some(Kind::NullValue(0)));
        assert!(matches!(&st.fields["l"].kind, Some(Kind::ListValue(l)) if l.values.len() == 1));
        assert!(matches!(&st.fields["o"].kind, Some(Kind::StructValue(o)) if o.fields.len() == 1));
    }
}
