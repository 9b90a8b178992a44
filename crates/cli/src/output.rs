//! Human (SPIRE-like) and JSON output for entries and agents.

use serde_json::json;
use sigil_proto::admin::Agent;
use sigil_proto::node::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Pretty,
    Json,
}

fn ttl(v: i32) -> String {
    if v == 0 {
        "default".to_owned()
    } else {
        v.to_string()
    }
}

pub fn entry_json(e: &Entry) -> serde_json::Value {
    json!({
        "id": e.id,
        "spiffe_id": e.spiffe_id,
        "parent_id": e.parent_id,
        "selectors": e.selectors.iter().map(|s| json!({"type": s.r#type, "value": s.value})).collect::<Vec<_>>(),
        "x509_svid_ttl": e.x509_svid_ttl,
        "jwt_svid_ttl": e.jwt_svid_ttl,
        "federates_with": e.federates_with,
        "admin": e.admin,
        "downstream": e.downstream,
        "expires_at": e.expires_at,
        "dns_names": e.dns_names,
        "revision_number": e.revision_number,
        "store_svid": e.store_svid,
        "hint": e.hint,
        "created_at": e.created_at,
    })
}

pub fn entry_text(e: &Entry) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<17}: {v}\n"));
    line("Entry ID", &e.id);
    line("SPIFFE ID", &e.spiffe_id);
    line("Parent ID", &e.parent_id);
    line("Revision", &e.revision_number.to_string());
    if e.downstream {
        line("Downstream", "true");
    }
    if e.expires_at != 0 {
        line("Entry Expiry", &crate::fmt_time(e.expires_at));
    } else {
        line("Entry Expiry", "never");
    }
    line("X509-SVID TTL", &ttl(e.x509_svid_ttl));
    line("JWT-SVID TTL", &ttl(e.jwt_svid_ttl));
    for s in &e.selectors {
        line("Selector", &format!("{}:{}", s.r#type, s.value));
    }
    for f in &e.federates_with {
        line("FederatesWith", f);
    }
    for d in &e.dns_names {
        line("DNS name", d);
    }
    if e.admin {
        line("Admin", "true");
    }
    if e.store_svid {
        line("StoreSvid", "true");
    }
    if !e.hint.is_empty() {
        line("Hint", &e.hint);
    }
    out
}

pub fn print_entry(e: &Entry, f: OutputFormat) {
    match f {
        OutputFormat::Json => println!("{}", entry_json(e)),
        OutputFormat::Pretty => print!("{}", entry_text(e)),
    }
}

pub fn print_entries(es: &[Entry], f: OutputFormat) {
    match f {
        OutputFormat::Json => {
            println!(
                "{}",
                json!({ "entries": es.iter().map(entry_json).collect::<Vec<_>>() })
            )
        }
        OutputFormat::Pretty => {
            match es.len() {
                1 => println!("Found 1 entry"),
                n => println!("Found {n} entries"),
            }
            for e in es {
                println!("{}", entry_text(e));
            }
        }
    }
}

pub fn agent_json(a: &Agent) -> serde_json::Value {
    json!({
        "spiffe_id": a.spiffe_id,
        "attestation_type": a.attestation_type,
        "x509svid_serial_number": a.cert_serial,
        "x509svid_expires_at": a.cert_expires_at,
        "selectors": a.selectors.iter().map(|s| json!({"type": s.r#type, "value": s.value})).collect::<Vec<_>>(),
        "banned": a.banned,
        "can_reattest": a.can_reattest,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    })
}

pub fn agent_text(a: &Agent) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<17}: {v}\n"));
    line("SPIFFE ID", &a.spiffe_id);
    line("Attestation type", &a.attestation_type);
    line("Expiration time", &crate::fmt_time(a.cert_expires_at));
    line("Serial number", &a.cert_serial);
    line("Can re-attest", &a.can_reattest.to_string());
    if a.banned {
        line("Banned", "true");
    }
    for s in &a.selectors {
        line("Selector", &format!("{}:{}", s.r#type, s.value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::node::Selector;

    #[test]
    fn entry_text_shows_every_selector_and_default_ttls() {
        let e = Entry {
            id: "abc".into(),
            spiffe_id: "spiffe://cluster.local/ns/payments/sa/billing-service".into(),
            parent_id: "spiffe://cluster.local/spire/agent/k8s_sat/payments/node-1".into(),
            selectors: vec![
                Selector {
                    r#type: "k8s".into(),
                    value: "ns:payments".into(),
                },
                Selector {
                    r#type: "k8s".into(),
                    value: "sa:billing-service".into(),
                },
            ],
            ..Default::default()
        };
        let t = entry_text(&e);
        assert!(t.contains("Selector         : k8s:ns:payments\n"), "{t}");
        assert!(
            t.contains("Selector         : k8s:sa:billing-service\n"),
            "{t}"
        );
        assert!(t.contains("X509-SVID TTL    : default\n"), "{t}");
        let j = entry_json(&e);
        assert_eq!(j["selectors"][1]["value"], "sa:billing-service");
    }
}
