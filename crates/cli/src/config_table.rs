//! `sigil get` tables: the columns kubectl prints for each kind (Istio's and cert-manager's
//! printer columns), one table per kind.

use serde_json::Value;
use sigil_proto::config::ConfigResource;

/// kubectl's AGE: `45s`, `12m`, `5h`, `3d`.
pub fn age(created_rfc3339: &str, now_unix: i64) -> String {
    let Ok(t) = time::OffsetDateTime::parse(
        created_rfc3339,
        &time::format_description::well_known::Rfc3339,
    ) else {
        return "<unknown>".into();
    };
    let secs = (now_unix - t.unix_timestamp()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn join_at(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur.as_array() {
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        None => String::new(),
    }
}

/// The `Ready` condition's message (cert-manager's wide STATUS column).
fn ready_message(v: &Value) -> String {
    v.get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("message").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

/// The `Ready` condition's status from `status.conditions`, as cert-manager prints it.
fn ready(v: &Value) -> String {
    v.get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned()
}

/// Extra columns between NAME and AGE (and after AGE for wide output).
fn columns(kind: &str, wide: bool) -> (Vec<&'static str>, Vec<&'static str>) {
    let (main, extra): (&[&str], &[&str]) = match kind {
        "PeerAuthentication" => (&["MODE"], &[]),
        "AuthorizationPolicy" => (&["ACTION"], &[]),
        "DestinationRule" => (&["HOST"], &["TLS MODE"]),
        "ServiceEntry" => (&["HOSTS", "LOCATION", "RESOLUTION"], &[]),
        "WorkloadEntry" => (&["ADDRESS"], &["SERVICE ACCOUNT"]),
        "Certificate" => (&["READY", "SECRET"], &["ISSUER", "STATUS"]),
        "Issuer" | "ClusterIssuer" => (&["READY"], &[]),
        "Namespace" => (&["STATUS"], &[]),
        "Secret" => (&["TYPE", "DATA"], &[]),
        _ => (&[], &[]),
    };
    (
        main.to_vec(),
        if wide { extra.to_vec() } else { Vec::new() },
    )
}

fn cell(kind: &str, column: &str, v: &Value) -> String {
    match (kind, column) {
        ("PeerAuthentication", "MODE") => {
            let m = str_at(v, &["spec", "mtls", "mode"]);
            if m.is_empty() {
                "UNSET".into()
            } else {
                m.into()
            }
        }
        ("AuthorizationPolicy", "ACTION") => {
            let a = str_at(v, &["spec", "action"]);
            if a.is_empty() {
                "ALLOW".into()
            } else {
                a.into()
            }
        }
        ("DestinationRule", "HOST") => str_at(v, &["spec", "host"]).into(),
        ("DestinationRule", "TLS MODE") => {
            str_at(v, &["spec", "trafficPolicy", "tls", "mode"]).into()
        }
        ("ServiceEntry", "HOSTS") => join_at(v, &["spec", "hosts"]),
        ("ServiceEntry", "LOCATION") => str_at(v, &["spec", "location"]).into(),
        ("ServiceEntry", "RESOLUTION") => str_at(v, &["spec", "resolution"]).into(),
        ("WorkloadEntry", "ADDRESS") => str_at(v, &["spec", "address"]).into(),
        ("WorkloadEntry", "SERVICE ACCOUNT") => str_at(v, &["spec", "serviceAccount"]).into(),
        ("Certificate", "READY") | ("Issuer", "READY") | ("ClusterIssuer", "READY") => ready(v),
        ("Certificate", "SECRET") => str_at(v, &["spec", "secretName"]).into(),
        ("Certificate", "ISSUER") => str_at(v, &["spec", "issuerRef", "name"]).into(),
        ("Certificate", "STATUS") => ready_message(v),
        ("Namespace", "STATUS") => "Active".into(),
        ("Secret", "TYPE") => match str_at(v, &["type"]) {
            "" => "Opaque".into(),
            t => t.into(),
        },
        ("Secret", "DATA") => v
            .get("data")
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
            .to_string(),
        _ => String::new(),
    }
}

/// Columns padded to the widest cell, three spaces apart (kubectl's layout).
pub fn layout(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; width];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One table per kind, in the order the server listed them; names are `kind.group/name` when
/// several kinds are shown, as `kubectl get all` does.
pub fn render(
    resources: &[ConfigResource],
    objects: &[Value],
    all_namespaces: bool,
    wide: bool,
    qualify: bool,
    now_unix: i64,
) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < resources.len() {
        let kind = resources[i].kind.as_str();
        let (main, extra) = columns(kind, wide);
        let mut header = Vec::new();
        if all_namespaces {
            header.push("NAMESPACE".to_owned());
        }
        header.push("NAME".to_owned());
        header.extend(main.iter().map(|s| (*s).to_owned()));
        header.push("AGE".to_owned());
        header.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut rows = vec![header];
        while i < resources.len() && resources[i].kind == kind {
            let (r, v) = (&resources[i], &objects[i]);
            let mut row = Vec::new();
            if all_namespaces {
                row.push(r.namespace.clone());
            }
            row.push(if qualify {
                let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                if group.is_empty() {
                    format!("{}/{}", kind.to_ascii_lowercase(), r.name)
                } else {
                    format!("{}.{group}/{}", kind.to_ascii_lowercase(), r.name)
                }
            } else {
                r.name.clone()
            });
            row.extend(main.iter().map(|c| cell(kind, c, v)));
            row.push(age(str_at(v, &["metadata", "creationTimestamp"]), now_unix));
            row.extend(extra.iter().map(|c| cell(kind, c, v)));
            rows.push(row);
            i += 1;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&layout(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let t = "2026-01-01T00:00:00Z";
        let base = 1_767_225_600;
        assert_eq!(age(t, base + 5), "5s");
        assert_eq!(age(t, base + 600), "10m");
        assert_eq!(age(t, base + 5 * 3600), "5h");
        assert_eq!(age(t, base + 3 * 86400), "3d");
        assert_eq!(age("garbage", base), "<unknown>");
    }

    #[test]
    fn peer_authentication_table() {
        let v: Value = serde_json::json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"mtls": {"mode": "STRICT"}}});
        let r = ConfigResource {
            api_version: "security.istio.io/v1beta1".into(),
            kind: "PeerAuthentication".into(),
            namespace: "payments".into(),
            name: "default".into(),
            ..Default::default()
        };
        let t = render(&[r], &[v], true, false, false, 1_767_225_660);
        assert_eq!(
            t,
            "NAMESPACE   NAME      MODE     AGE\npayments    default   STRICT   60s\n"
        );
    }
}
