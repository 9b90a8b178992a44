//! Load-balancer checks (upstream `validateLoadBalancer`, `ValidateLocalityLbSetting`).

use super::Out;
use super::checks;
use crate::error::ErrorKind;
use crate::networking::{ConsistentHashLb, LoadBalancerSettings, LocalityLoadBalancerSetting};

pub(super) fn load_balancer(lb: &LoadBalancerSettings, path: &str, out: &mut Out) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        out.push(
            format!("{path}.consistentHash"),
            ErrorKind::OnlyOneOf {
                fields: vec!["simple".into(), "consistentHash".into()],
            },
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        consistent_hash(ch, &format!("{path}.consistentHash"), out);
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality(l, &format!("{path}.localityLbSetting"), out);
    }
    if let Some(d) = &lb.warmup_duration_secs {
        checks::duration(d, &format!("{path}.warmupDurationSecs"), out);
    }
    if let Some(w) = &lb.warmup {
        let wp = format!("{path}.warmup");
        match &w.duration {
            None => out.push(
                wp.as_str(),
                ErrorKind::MissingField {
                    field: "duration".into(),
                },
            ),
            Some(d) => checks::duration(d, &format!("{wp}.duration"), out),
        }
        if let Some(p) = w.minimum_percent
            && !(0.0..=100.0).contains(&p)
        {
            out.push(
                format!("{wp}.minimumPercent"),
                ErrorKind::OutOfRange {
                    value: p.to_string(),
                    expected: "0..100".into(),
                },
            );
        }
        if let Some(a) = w.aggression
            && a < 1.0
        {
            out.push(
                format!("{wp}.aggression"),
                ErrorKind::OutOfRange {
                    value: a.to_string(),
                    expected: "1 or more".into(),
                },
            );
        }
    }
}

fn consistent_hash(ch: &ConsistentHashLb, path: &str, out: &mut Out) {
    let keys: Vec<String> = [
        ("httpHeaderName", ch.http_header_name.is_some()),
        ("httpCookie", ch.http_cookie.is_some()),
        ("useSourceIp", ch.use_source_ip.is_some()),
        (
            "httpQueryParameterName",
            ch.http_query_parameter_name.is_some(),
        ),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| (*name).to_owned())
    .collect();
    if keys.len() > 1 {
        out.push(path, ErrorKind::OnlyOneOf { fields: keys });
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        out.push(
            path,
            ErrorKind::OnlyOneOf {
                fields: vec!["ringHash".into(), "maglev".into()],
            },
        );
    }
    if ch.minimum_ring_size.unwrap_or(0) != 0 && (ch.ring_hash.is_some() || ch.maglev.is_some()) {
        let algorithm = if ch.maglev.is_some() {
            "maglev"
        } else {
            "ringHash"
        };
        out.push(
            format!("{path}.minimumRingSize"),
            ErrorKind::OnlyOneOf {
                fields: vec!["minimumRingSize".into(), algorithm.into()],
            },
        );
    }
    if let Some(cookie) = &ch.http_cookie {
        let cp = format!("{path}.httpCookie");
        if cookie.name.is_empty() {
            out.push(
                cp.as_str(),
                ErrorKind::MissingField {
                    field: "name".into(),
                },
            );
        }
        if let Some(ttl) = &cookie.ttl {
            checks::duration_syntax(ttl, &format!("{cp}.ttl"), out);
        }
    }
    if let Some(m) = &ch.maglev {
        let size = m.table_size.unwrap_or(0);
        if size == 0 || size >= 5_000_011 || !is_prime(size) {
            out.push(
                format!("{path}.maglev.tableSize"),
                ErrorKind::InvalidMaglevTableSize { value: size },
            );
        }
    }
}

/// Envoy's primality test, which upstream copies (1, 2 and 3 count as prime).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// Upstream `ValidateLocalityLbSetting`.
fn locality(l: &LocalityLoadBalancerSetting, path: &str, out: &mut Out) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        out.push(
            path,
            ErrorKind::OnlyOneOf {
                fields: vec!["distribute".into(), "failover".into()],
            },
        );
        return;
    }
    if !l.failover.is_empty()
        && let Some(label) = l
            .failover_priority
            .iter()
            .find(|p| TOPOLOGY_LABELS.contains(&p.as_str()))
    {
        out.push(
            format!("{path}.failoverPriority"),
            ErrorKind::ConflictingFields {
                field: "failoverPriority".into(),
                other: "failover".into(),
                hint: format!(
                    "the topology label `{label}` already orders failover; remove it or remove `failover`"
                ),
            },
        );
        return;
    }
    for (i, d) in l.distribute.iter().enumerate() {
        let dp = format!("{path}.distribute[{i}]");
        let mut total: u64 = 0;
        for (to, weight) in &d.to {
            if *weight == 0 || *weight > 100 {
                out.push(
                    checks::key_path(&format!("{dp}.to"), to),
                    ErrorKind::OutOfRange {
                        value: weight.to_string(),
                        expected: "1..100".into(),
                    },
                );
                return;
            }
            total += u64::from(*weight);
        }
        if total != 100 {
            out.push(format!("{dp}.to"), ErrorKind::LocalityWeightTotal { total });
            return;
        }
        if let Some(kind) = localities(d.to.keys().map(String::as_str)) {
            out.push(format!("{dp}.to"), kind);
        }
    }
    if let Some(kind) = localities(l.distribute.iter().map(|d| d.from.as_str())) {
        out.push(format!("{path}.distribute"), kind);
    }
    for (i, f) in l.failover.iter().enumerate() {
        let hint = if f.from == f.to {
            "failover must go to a different region than `from`"
        } else if f.from.contains('/') || f.to.contains('/') {
            "failover takes regions only, without `/zone`"
        } else if f.from.contains('*') || f.to.contains('*') {
            "failover regions cannot contain the `*` wildcard"
        } else {
            continue;
        };
        out.push(
            format!("{path}.failover[{i}]"),
            ErrorKind::InvalidLocality {
                value: format!("{} -> {}", f.from, f.to),
                hint: hint.into(),
            },
        );
    }
}

/// Upstream `validateLocalities`: at most one trailing `*`, no empty segment, no overlap.
fn localities<'a>(list: impl Iterator<Item = &'a str>) -> Option<ErrorKind> {
    let mut seen: Vec<Vec<&str>> = Vec::new();
    for loc in list {
        let stars = loc.matches('*').count();
        let bad = |hint: &str| {
            Some(ErrorKind::InvalidLocality {
                value: loc.into(),
                hint: hint.into(),
            })
        };
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return bad("use at most one `*`, as the last segment (`us-west/*`)");
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return bad("region, zone and subzone must not be empty (`region/zone/subzone`)");
        }
        // `a/*` covers everything under `a`; two entries overlap when one is a prefix of
        // the other (with `*` standing for "anything below").
        let key: Vec<&str> = parts.into_iter().take_while(|p| *p != "*").collect();
        if seen.iter().any(|s| s.iter().zip(&key).all(|(a, b)| a == b)) {
            return bad("overlaps with an earlier entry; list each locality once");
        }
        seen.push(key);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maglev_primes_match_envoy() {
        for p in [2, 3, 5, 65537, 4_999_999] {
            assert!(is_prime(p), "{p}");
        }
        for n in [4, 9, 65536, 1_000_000] {
            assert!(!is_prime(n), "{n}");
        }
    }

    #[test]
    fn locality_overlap() {
        assert!(localities(["us-west/zone1/*", "us-west/zone2/*"].into_iter()).is_none());
        assert!(localities(["us-west/*", "us-west/zone1"].into_iter()).is_some());
        assert!(localities(["*", "us-east"].into_iter()).is_some());
        assert!(localities(["us-west/zone1", "us-west/zone1"].into_iter()).is_some());
        assert!(localities(["us-*/zone1"].into_iter()).is_some());
        assert!(localities(["us-west//a"].into_iter()).is_some());
    }
}
