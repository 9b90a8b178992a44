//! Syntax checks for the strings cert-manager fields hold: URIs, email addresses, OIDs,
//! CIDRs, RFC 4514 subjects and cron expressions. Used by `validate_certmanager.rs`.

use std::net::IpAddr;

/// An absolute RFC 3986 URI: `scheme:rest`, no spaces or control characters, `%` followed
/// by two hex digits, and a non-empty host when there is an authority (`//`).
pub(crate) fn check_uri(u: &str) -> Result<(), String> {
    let Some((scheme, rest)) = u.split_once(':') else {
        return Err("no scheme".into());
    };
    let mut sc = scheme.chars();
    let scheme_ok = sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("bad scheme {scheme:?}"));
    }
    if let Some(c) = u
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | '\\'))
    {
        return Err(format!("contains {c:?}"));
    }
    let b = u.as_bytes();
    for (i, _) in u.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err("`%` must be followed by two hex digits".into());
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.is_empty() {
            return Err("empty host".into());
        }
    } else if rest.is_empty() {
        return Err("nothing after the scheme".into());
    }
    Ok(())
}

/// A bare address: one `@` (outside a quoted local part), non-empty local part and a
/// dot-separated domain, no spaces, angle brackets or commas (display names are rejected).
pub(crate) fn is_email(e: &str) -> bool {
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    let local_ok = quoted
        || (!local.is_empty()
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let literal = domain.starts_with('[') && domain.ends_with(']');
    local_ok && (domain_ok || literal)
}

/// Dotted-decimal OID with at least two arcs; the first arc is 0, 1 or 2.
pub(crate) fn is_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && a.len() <= 19)
        && matches!(arcs.first().copied(), Some("0" | "1" | "2"))
}

pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits <= 32,
        Ok(IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// Attribute types cert-manager's literal-subject parser knows, besides dotted OIDs.
const SUBJECT_ATTRIBUTES: &[&str] = &[
    "CN",
    "C",
    "O",
    "OU",
    "L",
    "ST",
    "STREET",
    "POSTALCODE",
    "SERIALNUMBER",
    "DC",
    "UID",
];

/// Parses an RFC 4514 DN just enough to validate it and return its CN (if any).
pub(crate) fn literal_subject_cn(dn: &str) -> Result<Option<String>, String> {
    let mut cn = None;
    for rdn in split_unescaped(dn, &[',', ';']) {
        for atv in split_unescaped(&rdn, &['+']) {
            let Some((ty, value)) = atv.split_once('=') else {
                return Err(format!("`{}` is not `type=value`", atv.trim()));
            };
            let ty = ty.trim();
            let known = SUBJECT_ATTRIBUTES
                .iter()
                .any(|a| a.eq_ignore_ascii_case(ty))
                || is_oid(ty.trim_start_matches("OID.").trim_start_matches("oid."));
            if !known {
                return Err(format!("unknown attribute type `{ty}`"));
            }
            let value = unescape_dn_value(value.trim())?;
            if ty.eq_ignore_ascii_case("CN") || ty == "2.5.4.3" {
                cn = Some(value);
            }
        }
    }
    Ok(cn)
}

/// Splits on separator characters not preceded by a backslash escape.
fn split_unescaped(s: &str, seps: &[char]) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if seps.contains(&c) {
            parts.push(String::new());
            continue;
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// Removes RFC 4514 escapes: `\,` style and `\XX` hex pairs.
fn unescape_dn_value(v: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let next = b.get(i + 1).ok_or("trailing backslash")?;
            if next.is_ascii_hexdigit()
                && let Some(lo) = b.get(i + 2).filter(|c| c.is_ascii_hexdigit())
            {
                let hex = [*next, *lo];
                let text = std::str::from_utf8(&hex).map_err(|e| e.to_string())?;
                out.push(u8::from_str_radix(text, 16).map_err(|e| e.to_string())?);
                i += 3;
                continue;
            }
            out.push(*next);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escaped bytes are not UTF-8".to_owned())
}

/// Standard five-field cron (or an `@hourly`-style macro), checking each field's syntax
/// and range.
pub(crate) fn check_cron(expr: &str) -> Result<(), String> {
    let t = expr.trim();
    if t.starts_with('@') {
        return match t {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!("unknown macro `{t}`")),
        };
    }
    let fields: Vec<&str> = t.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("found {} fields", fields.len()));
    }
    let ranges = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 7),
    ];
    for (field, (name, lo, hi)) in fields.iter().zip(ranges) {
        if !cron_field_ok(field, lo, hi, name) {
            return Err(format!("bad {name} field `{field}`"));
        }
    }
    Ok(())
}

fn cron_field_ok(field: &str, lo: u32, hi: u32, name: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let value = |s: &str| -> Option<u32> {
        if let Ok(n) = s.parse::<u32>() {
            return (lo..=hi).contains(&n).then_some(n);
        }
        let lower = s.to_ascii_lowercase();
        let names: &[&str] = match name {
            "month" => &MONTHS,
            "day-of-week" => &DAYS,
            _ => &[],
        };
        let base = if name == "month" { 1 } else { 0 };
        names
            .iter()
            .position(|n| *n == lower)
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + base)
    };
    field.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        if step.is_some_and(|s| s.parse::<u32>().map_or(true, |n| n == 0)) {
            return false;
        }
        match range {
            "*" | "?" => true,
            r => match r.split_once('-') {
                Some((a, b)) => matches!((value(a), value(b)), (Some(a), Some(b)) if a <= b),
                None => value(r).is_some(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        for ok in [
            "spiffe://cluster.local/ns/payments/sa/billing-service",
            "https://example.com/crl.pem",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "http://[::1]:8080/a%20b",
        ] {
            assert_eq!(check_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "no-scheme",
            "/path",
            "1http://x",
            "http://",
            "http://a b",
            "http://x/%zz",
            "x:",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "ops@example.com",
            "a.b+c@sub.example.org",
            "\"a b\"@x.io",
            "x@[10.0.0.1]",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "Ops <ops@example.com>",
            "a@@b",
            "a..b@c",
            "a@b..c",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn oids() {
        assert!(is_oid("1.3.6.1.4.1.311.20.2.3"));
        assert!(is_oid("2.5"));
        for bad in ["", "1", "3.1", "1..2", "1.a", "1.2."] {
            assert!(!is_oid(bad), "{bad}");
        }
    }

    #[test]
    fn literal_subjects() {
        assert_eq!(
            literal_subject_cn("CN=web,O=Example\\, Inc.,C=DE"),
            Ok(Some("web".into()))
        );
        assert_eq!(literal_subject_cn("O=a+OU=b,DC=example,DC=com"), Ok(None));
        assert_eq!(literal_subject_cn("2.5.4.3=x"), Ok(Some("x".into())));
        assert_eq!(literal_subject_cn("CN=a\\2cb"), Ok(Some("a,b".into())));
        assert!(literal_subject_cn("CN").is_err());
        assert!(literal_subject_cn("FOO=bar").is_err());
        assert!(literal_subject_cn("CN=x\\").is_err());
    }

    #[test]
    fn crons() {
        for ok in [
            "0 2 * * 1-5",
            "*/15 * * * *",
            "0 0 1 jan,jul *",
            "30 4 * * sun",
            "@daily",
        ] {
            assert_eq!(check_cron(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "@often",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert!(is_cidr("10.0.0.0/8"));
        assert!(is_cidr("2001:db8::/32"));
        assert!(!is_cidr("10.0.0.1"));
        assert!(!is_cidr("10.0.0.0/33"));
    }
}
