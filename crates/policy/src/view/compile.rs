//! Rule compilation: every `from`/`to`/`when` field of an AuthorizationPolicy rule becomes
//! [`Clause`]s of precompiled [`Matcher`]s, labelled with their field path for `explain`.

use crate::authz::{Condition, Operation, Rule, Source};

use super::authz::{Attr, Clause, CompiledRule, Entry, Matcher};
use super::matcher::{Cidr, PathTemplate, StringMatcher};

/// Compiles one value of a field.
type Compile<'a> = &'a dyn Fn(&str) -> Option<Matcher>;

fn clause(attr: Attr, negated: bool, matchers: Vec<Matcher>, label: String) -> Option<Clause> {
    (!matchers.is_empty()).then(|| Clause {
        attr,
        negated,
        matchers: matchers.into(),
        label: label.into(),
    })
}

/// Compiles `values`/`notValues` of one field into up to two clauses.
fn field(
    out: &mut Vec<Clause>,
    attr: &Attr,
    label: &str,
    (name, values): (&str, &[String]),
    (not_name, not_values): (&str, &[String]),
    compile: Compile<'_>,
) {
    for (negated, name, values) in [(false, name, values), (true, not_name, not_values)] {
        let mut ok = Vec::with_capacity(values.len());
        let mut unsupported = false;
        for v in values {
            match compile(v) {
                Some(m) => ok.push(m),
                None => unsupported = true,
            }
        }
        let label = format!("{label}.{name}");
        if unsupported {
            // Fail closed: an unparseable value makes the clause unevaluable.
            out.extend(clause(
                Attr::Unsupported,
                negated,
                vec![Matcher::Port(0)],
                label,
            ));
        } else {
            out.extend(clause(attr.clone(), negated, ok, label));
        }
    }
}

fn string(v: &str) -> Option<Matcher> {
    Some(Matcher::Str(StringMatcher::parse(v)))
}

fn header_string(v: &str) -> Option<Matcher> {
    Some(Matcher::Str(StringMatcher::parse_header(v)))
}

fn cidr(v: &str) -> Option<Matcher> {
    Cidr::parse(v).map(Matcher::Cidr)
}

fn port(v: &str) -> Option<Matcher> {
    v.parse().ok().map(Matcher::Port)
}

fn path(v: &str) -> Option<Matcher> {
    Some(match PathTemplate::parse(v) {
        Some(t) => Matcher::Template(t),
        None => Matcher::Str(StringMatcher::parse(v)),
    })
}

/// Istio's `<iss>/<sub>` pattern, split at the last `/`.
fn request_principal(v: &str) -> Option<Matcher> {
    use StringMatcher::{Exact, NonEmpty, Prefix, Suffix};
    let split = v.rsplit_once('/');
    let (iss, sub) = if v == "*" {
        (NonEmpty, NonEmpty)
    } else if let Some(rest) = v.strip_prefix('*') {
        match split {
            Some(("*", sub)) => (NonEmpty, Exact(sub.into())),
            Some((iss, sub)) => (Suffix(iss[1..].into()), Exact(sub.into())),
            None => (NonEmpty, Suffix(rest.into())),
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        match split {
            Some((iss, "*")) => (Exact(iss.into()), NonEmpty),
            Some((iss, sub)) => (Exact(iss.into()), Prefix(sub[..sub.len() - 1].into())),
            None => (Prefix(rest.into()), NonEmpty),
        }
    } else {
        match split {
            Some((iss, sub)) => (Exact(iss.into()), Exact(sub.into())),
            None => (Exact(v.into()), Exact("".into())),
        }
    };
    Some(Matcher::RequestPrincipal { iss, sub })
}

fn compile_source(s: &Source, label: &str, policy_ns: &str) -> Entry {
    let mut c = Vec::new();
    let sa = |v: &str| -> Option<Matcher> {
        let (ns, sa) = v.split_once('/').unwrap_or((policy_ns, v));
        Some(Matcher::ServiceAccount {
            ns: ns.into(),
            sa: sa.into(),
        })
    };
    let l = label;
    field(
        &mut c,
        &Attr::Principal,
        l,
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        &string,
    );
    field(
        &mut c,
        &Attr::Namespace,
        l,
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        &string,
    );
    field(
        &mut c,
        &Attr::ServiceAccount,
        l,
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        &sa,
    );
    field(
        &mut c,
        &Attr::TrustDomain,
        l,
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
        &string,
    );
    field(
        &mut c,
        &Attr::SourceIp,
        l,
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        &cidr,
    );
    field(
        &mut c,
        &Attr::RemoteIp,
        l,
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        &cidr,
    );
    field(
        &mut c,
        &Attr::RequestPrincipal,
        l,
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        &request_principal,
    );
    Entry { clauses: c.into() }
}

fn compile_operation(o: &Operation, label: &str) -> Entry {
    let mut c = Vec::new();
    let l = label;
    field(
        &mut c,
        &Attr::DestPort,
        l,
        ("ports", &o.ports),
        ("notPorts", &o.not_ports),
        &port,
    );
    field(
        &mut c,
        &Attr::Method,
        l,
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        &header_string,
    );
    field(
        &mut c,
        &Attr::Path,
        l,
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
        &path,
    );
    field(
        &mut c,
        &Attr::Host,
        l,
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        &header_string,
    );
    Entry { clauses: c.into() }
}

/// `a[b]` → `b`; `request.auth.claims[a][b]` → `[a, b]`.
fn bracketed(rest: &str) -> Option<Vec<String>> {
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    let parts: Vec<String> = inner.split("][").map(str::to_owned).collect();
    parts.iter().all(|p| !p.is_empty()).then_some(parts)
}

fn compile_condition(out: &mut Vec<Clause>, cond: &Condition, i: usize, policy_ns: &str) {
    let key = cond.key.as_str();
    let label = format!("when[{i}]");
    let (attr, compile): (Attr, Compile<'_>) = match key {
        "source.ip" => (Attr::SourceIp, &cidr),
        "remote.ip" => (Attr::RemoteIp, &cidr),
        "destination.ip" => (Attr::DestIp, &cidr),
        "destination.port" => (Attr::DestPort, &port),
        "source.principal" => (Attr::Principal, &string),
        "source.namespace" => (Attr::Namespace, &string),
        "source.trustDomain" => (Attr::TrustDomain, &string),
        "connection.sni" => (Attr::Sni, &string),
        "request.auth.principal" => (Attr::RequestPrincipal, &request_principal),
        "request.auth.audiences" => (Attr::Claim(vec!["aud".to_owned()].into()), &string),
        "request.auth.presenter" => (Attr::Claim(vec!["azp".to_owned()].into()), &string),
        "source.serviceAccount" => {
            let ns = policy_ns.to_owned();
            let mut tmp = Vec::new();
            let sa = move |v: &str| -> Option<Matcher> {
                let (n, s) = v.split_once('/').unwrap_or((&ns, v));
                Some(Matcher::ServiceAccount {
                    ns: n.into(),
                    sa: s.into(),
                })
            };
            field(
                &mut tmp,
                &Attr::ServiceAccount,
                &label,
                ("values", &cond.values),
                ("notValues", &cond.not_values),
                &sa,
            );
            out.extend(tmp);
            return;
        }
        k => match (
            k.strip_prefix("request.headers").and_then(bracketed),
            k.strip_prefix("request.auth.claims").and_then(bracketed),
        ) {
            (Some(mut h), _) if h.len() == 1 => {
                let name = h.remove(0).to_ascii_lowercase();
                (Attr::Header(name.into()), &header_string)
            }
            (_, Some(path)) => (Attr::Claim(path.into()), &string),
            _ => (Attr::Unsupported, &string),
        },
    };
    let label = format!("{label}[{key}]");
    field(
        out,
        &attr,
        &label,
        ("values", &cond.values),
        ("notValues", &cond.not_values),
        compile,
    );
}

pub(crate) fn compile_rule(rule: &Rule, policy_ns: &str) -> CompiledRule {
    let from = rule.from.as_ref().map(|from| {
        from.iter()
            .enumerate()
            .map(|(j, f)| {
                let label = format!("from[{j}].source");
                f.source.as_ref().map_or_else(
                    || Entry {
                        clauses: Box::new([]),
                    },
                    |s| compile_source(s, &label, policy_ns),
                )
            })
            .collect()
    });
    let to = rule.to.as_ref().map(|to| {
        to.iter()
            .enumerate()
            .map(|(j, t)| {
                let label = format!("to[{j}].operation");
                t.operation.as_ref().map_or_else(
                    || Entry {
                        clauses: Box::new([]),
                    },
                    |o| compile_operation(o, &label),
                )
            })
            .collect()
    });
    let mut when = Vec::new();
    for (i, c) in rule.when.iter().enumerate() {
        compile_condition(&mut when, c, i, policy_ns);
    }
    let mut r = CompiledRule {
        from,
        to,
        when: when.into(),
        http_only: false,
        unsupported: false,
    };
    let all = r
        .from
        .iter()
        .chain(r.to.iter())
        .flat_map(|e| e.iter())
        .flat_map(|e| e.clauses.iter())
        .chain(r.when.iter());
    for c in all {
        r.http_only |= c.attr.http_only();
        r.unsupported |= c.attr == Attr::Unsupported;
    }
    r
}
