//! Secrets delivered to agents, which write them as files for things without a proxy (an
//! ingress, a load balancer, a job): `Node.StreamSecrets`.
//!
//! Who may receive a Secret is written on the Secret: the annotation `sigil.io/deliver-to`
//! lists agents, comma-separated, each as its SPIFFE ID (`spiffe://td/spire/agent/...`), as a
//! node selector the agent was attested with (`x509pop:subject:cn:lb-1`, `join_token:…`), or
//! `*` for every agent of the trust domain. A Secret without the annotation goes to no agent.
//! cert-manager users set it through `Certificate.spec.secretTemplate.annotations`.
//!
//! The decision is pure ([`allowed`]); the stream re-reads the Secrets asked for at every
//! configuration revision and sends them when their content changed.

use std::collections::BTreeSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sigil_proto::node as pb;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};

use crate::metrics::ResultLabel;
use crate::node_api::AgentCaller;
use crate::secrets::{SecretData, read_secret};
use crate::state::Shared;

/// The annotation naming the agents a Secret is delivered to.
pub const DELIVER_TO: &str = "sigil.io/deliver-to";
/// Most Secrets one agent may follow on one stream.
pub const MAX_SECRETS_PER_STREAM: usize = 64;

/// Whether `agent` (its SPIFFE ID and attested node selectors) may receive a Secret with these
/// annotations; the reason when not.
pub fn allowed(
    annotations: &std::collections::BTreeMap<String, String>,
    agent_id: &str,
    agent_selectors: &BTreeSet<String>,
) -> Result<(), String> {
    let Some(list) = annotations.get(DELIVER_TO) else {
        return Err(format!(
            "the Secret has no {DELIVER_TO} annotation, so it is delivered to no agent; \
             add `{DELIVER_TO}: {agent_id}` (or a node selector, or *) to it \
             (for a Certificate: spec.secretTemplate.annotations)"
        ));
    };
    let items: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    let hit = items.iter().any(|item| {
        *item == "*"
            || *item == agent_id
            || (!item.starts_with("spiffe://") && agent_selectors.contains(*item))
    });
    if hit {
        Ok(())
    } else {
        Err(format!(
            "{DELIVER_TO} is {list:?}, which names neither this agent ({agent_id}) nor any of its \
             node selectors; add one of them to the annotation"
        ))
    }
}

fn ref_text(r: &pb::SecretRef) -> String {
    format!("{}/{}", r.namespace, r.name)
}

/// Checks a request: at most [`MAX_SECRETS_PER_STREAM`] distinct, well-formed names.
pub fn check_request(req: &pb::StreamSecretsRequest) -> Result<Vec<pb::SecretRef>, Status> {
    if req.secrets.is_empty() {
        return Err(Status::invalid_argument(
            "no Secret named; ask for at least one NAMESPACE/NAME",
        ));
    }
    if req.secrets.len() > MAX_SECRETS_PER_STREAM {
        return Err(Status::invalid_argument(format!(
            "{} Secrets asked for; one agent may follow at most {MAX_SECRETS_PER_STREAM}",
            req.secrets.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for r in &req.secrets {
        if !sigil_policy::is_dns1123_label(&r.namespace)
            || !sigil_policy::is_dns1123_subdomain(&r.name)
        {
            return Err(Status::invalid_argument(format!(
                "{:?} is not NAMESPACE/NAME of a Secret",
                ref_text(r)
            )));
        }
        seen.insert((r.namespace.clone(), r.name.clone()));
    }
    Ok(seen
        .into_iter()
        .map(|(namespace, name)| pb::SecretRef { namespace, name })
        .collect())
}

fn count(s: &Shared, result: &str) {
    s.metrics
        .secret_deliveries
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
}

/// Reads the Secrets for `caller`; each either with its content or with the reason it is not
/// delivered.
async fn read_all(
    s: &Shared,
    caller: &AgentCaller,
    refs: &[pb::SecretRef],
) -> Vec<pb::DeliveredSecret> {
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let problem = |p: String| pb::DeliveredSecret {
            r#ref: Some(r.clone()),
            problem: p,
            ..Default::default()
        };
        let item = match read_secret(s, &r.namespace, &r.name).await {
            Ok(None) => problem(format!(
                "Secret {} does not exist (yet); it is written when it is created",
                ref_text(r)
            )),
            Ok(Some(secret)) => {
                match allowed(
                    &secret.annotations,
                    &caller.id.to_string(),
                    &caller.selectors,
                ) {
                    Ok(()) => deliver(r, secret),
                    Err(why) => problem(format!("Secret {} is not delivered: {why}", ref_text(r))),
                }
            }
            Err(e) => problem(format!(
                "Secret {} cannot be read on the server: {e}",
                ref_text(r)
            )),
        };
        out.push(item);
    }
    out
}

fn deliver(r: &pb::SecretRef, secret: SecretData) -> pb::DeliveredSecret {
    pb::DeliveredSecret {
        r#ref: Some(r.clone()),
        r#type: secret.type_.clone(),
        data: secret
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.to_vec()))
            .collect(),
        problem: String::new(),
    }
}

/// A digest of what would be sent, to skip revisions that did not change these Secrets.
fn digest(items: &[pb::DeliveredSecret]) -> [u8; 32] {
    let mut h = Sha256::new();
    for i in items {
        if let Some(r) = &i.r#ref {
            h.update(r.namespace.as_bytes());
            h.update([0]);
            h.update(r.name.as_bytes());
            h.update([0]);
        }
        h.update(i.problem.as_bytes());
        h.update([0]);
        h.update(i.r#type.as_bytes());
        let mut keys: Vec<_> = i.data.keys().collect();
        keys.sort();
        for k in keys {
            h.update(k.as_bytes());
            h.update((i.data[k].len() as u64).to_be_bytes());
            h.update(&i.data[k]);
        }
    }
    h.finalize().into()
}

/// The stream's body: sends the Secrets now and after every change until the agent hangs up
/// or is no longer authorized (`still_authorized` is asked before every send).
pub fn spawn_stream<F, Fut>(
    shared: Arc<Shared>,
    caller: AgentCaller,
    refs: Vec<pb::SecretRef>,
    tx: mpsc::Sender<Result<pb::SecretsSnapshot, Status>>,
    still_authorized: F,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<AgentCaller, Status>> + Send,
{
    let names: Vec<String> = refs.iter().map(ref_text).collect();
    info!(agent = %caller.id, secrets = ?names, "agent opened a Secret stream");
    tokio::spawn(async move {
        let mut updates = shared.config.subscribe();
        let mut last: Option<[u8; 32]> = None;
        loop {
            let revision = updates.borrow_and_update().revision;
            let caller = match still_authorized().await {
                Ok(c) => c,
                Err(status) => {
                    warn!(agent = %caller.id, reason = %status.message(), "Secret stream closed: agent no longer authorized");
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            let items = read_all(&shared, &caller, &refs).await;
            let d = digest(&items);
            if last != Some(d) {
                for i in &items {
                    let name = i.r#ref.as_ref().map(ref_text).unwrap_or_default();
                    if i.problem.is_empty() {
                        count(&shared, "delivered");
                        info!(agent = %caller.id, secret = %name, keys = ?i.data.keys().collect::<Vec<_>>(), revision, "Secret delivered to agent");
                    } else {
                        count(
                            &shared,
                            if i.problem.contains("does not exist") {
                                "missing"
                            } else if i.problem.contains("not delivered") {
                                "denied"
                            } else {
                                "error"
                            },
                        );
                        warn!(agent = %caller.id, secret = %name, problem = %i.problem, "Secret not delivered to agent");
                    }
                }
                let snapshot = pb::SecretsSnapshot {
                    revision,
                    secrets: items,
                };
                if tx.send(Ok(snapshot)).await.is_err() {
                    return;
                }
                last = Some(d);
            }
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ann(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(DELIVER_TO.to_owned(), v.to_owned())])
    }

    #[test]
    fn delivery_needs_the_agent_named() {
        let id = "spiffe://cluster.local/spire/agent/join_token/abc";
        let sel = BTreeSet::from([
            "join_token:abc".to_owned(),
            "x509pop:subject:cn:lb-1".to_owned(),
        ]);
        let e = allowed(&BTreeMap::new(), id, &sel).unwrap_err();
        assert!(
            e.contains(DELIVER_TO) && e.contains("secretTemplate"),
            "{e}"
        );
        assert!(allowed(&ann(id), id, &sel).is_ok());
        assert!(
            allowed(
                &ann("spiffe://cluster.local/spire/agent/other, x509pop:subject:cn:lb-1"),
                id,
                &sel
            )
            .is_ok()
        );
        assert!(allowed(&ann("*"), id, &sel).is_ok());
        let e = allowed(
            &ann("spiffe://cluster.local/spire/agent/other,x509pop:subject:cn:lb-2"),
            id,
            &sel,
        )
        .unwrap_err();
        assert!(e.contains("names neither"), "{e}");
        // A SPIFFE ID is never read as a selector.
        let sel2 = BTreeSet::from(["spiffe://x".to_owned()]);
        assert!(allowed(&ann("spiffe://x"), id, &sel2).is_err());
    }

    #[test]
    fn requests_are_bounded_and_well_formed() {
        let r = |ns: &str, n: &str| pb::SecretRef {
            namespace: ns.into(),
            name: n.into(),
        };
        assert!(check_request(&pb::StreamSecretsRequest { secrets: vec![] }).is_err());
        assert!(
            check_request(&pb::StreamSecretsRequest {
                secrets: vec![r("Bad NS", "x")]
            })
            .is_err()
        );
        let many = (0..=MAX_SECRETS_PER_STREAM)
            .map(|i| r("ns", &format!("s{i}")))
            .collect();
        assert!(check_request(&pb::StreamSecretsRequest { secrets: many }).is_err());
        let ok = check_request(&pb::StreamSecretsRequest {
            secrets: vec![r("ns", "b"), r("ns", "a"), r("ns", "b")],
        })
        .unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn digest_changes_with_content_only() {
        let item = |v: &[u8]| pb::DeliveredSecret {
            r#ref: Some(pb::SecretRef {
                namespace: "ns".into(),
                name: "s".into(),
            }),
            r#type: "kubernetes.io/tls".into(),
            data: std::collections::HashMap::from([("tls.crt".to_owned(), v.to_vec())]),
            problem: String::new(),
        };
        assert_eq!(digest(&[item(b"a")]), digest(&[item(b"a")]));
        assert_ne!(digest(&[item(b"a")]), digest(&[item(b"b")]));
    }
}
