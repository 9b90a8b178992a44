//! `sigil x509 inspect|verify|mint` (and `revoke`, `revocations`: see [`crate::revoke_cmd`]): certificates as a person debugging mTLS needs to see them.
//!
//! - `inspect FILE|-`: every certificate of a PEM or DER file, then the X.509-SVID rules it
//!   breaks (rules from `sigil-spiffe`);
//! - `verify --bundle FILE CERT`: `openssl verify -CAfile` plus the SPIFFE rules, and on failure
//!   the reason in plain words with the fix;
//! - `mint --spiffe-id ID --out-dir DIR`: a key generated here (never sent anywhere), a CSR to
//!   the server's admin API (`MintX509SVID`), and `svid.pem`, `svid.key` (0600), `bundle.pem`.
//!
//! Exit codes: 0 when the check passes, 2 when it finds a problem (after printing the
//! report), 1 when a file or the server cannot be read, 64 for bad usage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::json;
use sigil_proto::admin;
use sigil_spiffe::{Bundle, SpiffeId, TrustDomain, Usage, leaf_spiffe_id};

use crate::diagnose::certinfo::{self, CertInfo};
use crate::diagnose::explain::{self, CertContext, Problem};
use crate::diagnose::finding::Finding;
use crate::entry::SocketArg;
use crate::output::OutputFormat;
use crate::{EXIT_CONFIG, now_unix};

/// Exit code when the check finds a problem.
pub const EXIT_PROBLEM: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum X509Cmd {
    /// Shows every certificate in a PEM or DER file (`-` reads stdin): subject, issuer, serial,
    /// validity, SANs, SPIFFE ID, key, usages, constraints, key IDs; then the X.509-SVID rules
    /// it breaks. Exit 2 if it breaks one (unless --no-svid), 0 otherwise.
    Inspect(InspectArgs),
    /// Verifies CERT (leaf first, then intermediates; PEM or DER, `-` for stdin) against the
    /// roots in --bundle (PEM, or SPIFFE bundle JSON), like `openssl verify -CAfile`, plus the
    /// X.509-SVID rules. Prints `CERT: OK` (exit 0) or the failure and its fix (exit 2).
    Verify(VerifyArgs),
    /// Mints an X.509-SVID from the server, like `spire-server x509 mint`: the key is generated
    /// here and stays here; writes svid.pem (leaf + intermediates), svid.key (0600) and
    /// bundle.pem to --out-dir.
    Mint(MintArgs),
    /// Revokes certificates: one (--serial), every one of a registration entry (--entry) or
    /// of an agent (--agent: its own SVIDs and what it obtained). Every proxy refuses them
    /// within a second; the server's CRLs list them.
    Revoke(crate::revoke_cmd::RevokeArgs),
    /// Lists the revoked certificates that have not expired, and the CRL URLs.
    Revocations(crate::revoke_cmd::RevocationsArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// PEM or DER file; `-` reads stdin (e.g. the output of `openssl s_client -showcerts`).
    pub file: String,
    /// Ordinary certificates: do not check the X.509-SVID rules (exit 0 whenever it parses).
    #[arg(long = "no-svid")]
    pub no_svid: bool,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Trusted roots: PEM certificates, or a SPIFFE bundle (JSON, as `sigil bundle show
    /// --format spiffe` prints it).
    #[arg(long = "bundle", alias = "CAfile")]
    pub bundle: PathBuf,
    /// The chain to verify (leaf first); `-` reads stdin.
    pub cert: String,
    /// Also require this SPIFFE ID.
    #[arg(long = "expect-id")]
    pub expect_id: Option<String>,
    /// Path validation only, for certificates that are not X.509-SVIDs.
    #[arg(long = "no-svid")]
    pub no_svid: bool,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// SPIFFE ID of the SVID (in the server's trust domain).
    #[arg(long = "spiffe-id", alias = "spiffeID")]
    pub spiffe_id: String,
    /// Lifetime (e.g. 10m, 1h; plain seconds too); default the server's X.509-SVID TTL.
    /// Capped by the server at its CA's expiry.
    #[arg(long = "ttl")]
    pub ttl: Option<String>,
    /// DNS SANs to add (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Directory for svid.pem, svid.key and bundle.pem (created if missing).
    #[arg(long = "out-dir", alias = "write")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub socket: SocketArg,
    #[arg(long = "output", short = 'o', value_enum, default_value_t = OutputFormat::Pretty)]
    pub output: OutputFormat,
}

pub async fn run(cmd: X509Cmd) -> Result<(), (u8, anyhow::Error)> {
    match cmd {
        X509Cmd::Inspect(a) => inspect(&a),
        X509Cmd::Verify(a) => verify(&a),
        X509Cmd::Mint(a) => mint(a).await.map_err(|e| (1, e)),
        X509Cmd::Revoke(a) => crate::revoke_cmd::revoke(a).await,
        X509Cmd::Revocations(a) => crate::revoke_cmd::revocations(a).await,
    }
}

/// Reads a file, or stdin for `-`.
pub fn read_input(name: &str) -> anyhow::Result<Vec<u8>> {
    if name == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("cannot read stdin")?;
        return Ok(b);
    }
    std::fs::read(name).with_context(|| format!("cannot read {name}"))
}

/// Certificates from a PEM/DER file or stdin, with a clear error.
pub fn read_chain(name: &str) -> anyhow::Result<(Vec<CertificateDer<'static>>, Vec<String>)> {
    let bytes = read_input(name)?;
    certinfo::read_certificates(&bytes).map_err(|e| anyhow!("{name}: {e}"))
}

/// Trusted roots from PEM/DER certificates or a SPIFFE bundle JSON file. `td` labels the JSON
/// bundle (it does not carry its trust domain).
pub fn read_roots(
    path: &Path,
    td: Option<&TrustDomain>,
) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let roots = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        // The JSON does not name its trust domain; the label only appears in messages.
        let td = match td {
            Some(t) => t.clone(),
            None => TrustDomain::new("bundle")?,
        };
        Bundle::from_spiffe_json(td, &bytes)
            .map_err(|e| anyhow!("{}: not a usable SPIFFE bundle: {e}", path.display()))?
            .x509_authorities()
            .to_vec()
    } else {
        certinfo::read_certificates(&bytes)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
            .0
    };
    // Every root must be usable as a trust anchor; say which one is not, before connecting.
    Bundle::from_x509_authorities(TrustDomain::new("bundle")?, roots.clone())
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if roots.is_empty() {
        anyhow::bail!(
            "{} holds no X.509 authority; give the roots as PEM (`sigil bundle show --format pem`)",
            path.display()
        );
    }
    Ok(roots)
}

pub fn describe_all(certs: &[CertificateDer<'_>]) -> anyhow::Result<Vec<CertInfo>> {
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| certinfo::describe(i, c).map_err(|e| anyhow!(e)))
        .collect()
}

fn inspect(a: &InspectArgs) -> Result<(), (u8, anyhow::Error)> {
    let (certs, skipped) = read_chain(&a.file).map_err(|e| (1, e))?;
    let infos = describe_all(&certs).map_err(|e| (1, e))?;
    let now = now_unix();
    let authorities = infos.iter().all(|i| i.is_ca);
    let violations = if a.no_svid {
        Vec::new()
    } else {
        certinfo::svid_violations(&certs, &infos)
    };
    match a.output {
        OutputFormat::Json => {
            let certs_json: Vec<_> = infos
                .iter()
                .map(|i| {
                    let mut v = serde_json::to_value(i).unwrap_or_default();
                    v["validity"] =
                        certinfo::validity_phrase(i.not_before, i.not_after, now).into();
                    v
                })
                .collect();
            println!(
                "{}",
                json!({
                    "certificates": certs_json,
                    "svid": {
                        "checked": !a.no_svid,
                        "kind": if authorities { "authorities" } else { "svid" },
                        "spiffe_id": infos.first().and_then(|i| i.spiffe_id.clone()),
                        "violations": violations,
                    },
                    "skipped_blocks": skipped,
                })
            );
        }
        OutputFormat::Pretty => {
            for i in &infos {
                let role = match (i.index, i.is_ca, i.self_issued()) {
                    (_, true, true) => "root CA",
                    (_, true, false) => "intermediate CA",
                    (0, false, _) => "leaf",
                    _ => "end-entity (not a CA; out of place after the leaf)",
                };
                println!("Certificate #{} ({role})", i.index);
                print!("{}", certinfo::human(i, now));
            }
            for s in &skipped {
                println!("Skipped PEM block {s} (not a certificate)");
            }
            if a.no_svid {
                println!("X.509-SVID rules: not checked (--no-svid)");
            } else if violations.is_empty() {
                match (
                    authorities,
                    infos.first().and_then(|i| i.spiffe_id.as_deref()),
                ) {
                    (true, _) => println!(
                        "X.509-SVID rules: OK ({} CA certificate(s), all valid SVID signing certificates)",
                        infos.len()
                    ),
                    (false, id) => println!(
                        "X.509-SVID rules: OK ({} is a valid X.509-SVID)",
                        id.unwrap_or("the leaf")
                    ),
                }
            } else {
                println!("X.509-SVID rule violations:");
                for v in &violations {
                    println!("  #{}: {}", v.index, v.rule);
                }
                println!(
                    "  (mesh peers reject this certificate; `sigil x509 mint` issues valid SVIDs; \
                     --no-svid inspects ordinary certificates)"
                );
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err((
            EXIT_PROBLEM,
            anyhow!("{}: breaks {} X.509-SVID rule(s)", a.file, violations.len()),
        ))
    }
}

/// The outcome of `sigil x509 verify`.
fn verify_chain(
    a: &VerifyArgs,
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<Option<String>, Problem> {
    let (leaf, rest) = chain
        .split_first()
        .ok_or(Problem::Svid(sigil_spiffe::VerifyError::EmptyChain))?;
    if a.no_svid {
        sigil_spiffe::verify_chain_to_anchors(leaf, rest, roots, now, Usage::Any)
            .map_err(Problem::Chain)?;
        return Ok(None);
    }
    match leaf_spiffe_id(leaf) {
        Ok(id) => {
            let bundle = Bundle::from_x509_authorities(id.trust_domain().clone(), roots.to_vec())
                .map_err(|_| Problem::Chain(sigil_spiffe::ChainError::NoAnchors))?;
            let v = sigil_spiffe::verify_x509_svid(chain, &bundle, now, Usage::Any)
                .map_err(Problem::Svid)?;
            Ok(Some(v.id().to_string()))
        }
        Err(rule) => {
            sigil_spiffe::verify_chain_to_anchors(leaf, rest, roots, now, Usage::Any)
                .map_err(Problem::Chain)?;
            Err(Problem::NotSvid(rule))
        }
    }
}

fn verify(a: &VerifyArgs) -> Result<(), (u8, anyhow::Error)> {
    let expect = match &a.expect_id {
        Some(s) => {
            Some(SpiffeId::parse(s).map_err(|e| (EXIT_CONFIG, anyhow!("--expect-id {s:?}: {e}")))?)
        }
        None => None,
    };
    let (chain, _) = read_chain(&a.cert).map_err(|e| (1, e))?;
    let leaf_td = chain
        .first()
        .and_then(|l| leaf_spiffe_id(l).ok())
        .map(|id| id.trust_domain().clone());
    let td_hint = expect
        .as_ref()
        .map(|i| i.trust_domain().clone())
        .or(leaf_td);
    let roots = read_roots(&a.bundle, td_hint.as_ref()).map_err(|e| (1, e))?;
    let chain_info = describe_all(&chain).map_err(|e| (1, e))?;
    let root_info = describe_all(&roots).map_err(|e| (1, e))?;
    let now = now_unix();
    let trust_source = format!("--bundle {}", a.bundle.display());
    let expected_td = expect
        .as_ref()
        .map(|i| i.trust_domain().to_string())
        .or_else(|| common_td(&root_info));
    let finding = match verify_chain(a, &chain, &roots, UnixTime::now()) {
        Ok(id) => match (&expect, &id) {
            (Some(want), got) if got.as_deref() != Some(want.as_str()) => Finding::new(
                "spiffe-id-mismatch",
                false,
                format!(
                    "SPIFFE ID mismatch: {} carries {}, expected {want}",
                    a.cert,
                    got.as_deref().unwrap_or("no SPIFFE ID")
                ),
            )
            .fix(format!(
                "sigil x509 mint --spiffe-id {want} --out-dir ./svid   # issue one with the right ID"
            )),
            _ => {
                let leaf = &chain_info[0];
                let mut f = Finding::new(
                    "ok",
                    true,
                    format!(
                        "{} chains to a trusted root{}",
                        id.as_deref().unwrap_or("the certificate"),
                        if a.no_svid {
                            " (SVID rules not checked)"
                        } else {
                            " and follows the X.509-SVID rules"
                        }
                    ),
                );
                if let Some(id) = &id {
                    f = f.evidence("SPIFFE ID", id.clone());
                }
                f.evidence(
                    "validity",
                    certinfo::validity_phrase(leaf.not_before, leaf.not_after, now),
                )
                .evidence("issuer", leaf.issuer.clone())
            }
        },
        Err(p) => {
            let ctx = CertContext {
                what: &a.cert,
                chain: &chain_info,
                roots: &root_info,
                trust_source: &trust_source,
                expected_td: expected_td.as_deref(),
                target: None,
            };
            explain::explain(&ctx, &p)
        }
    };
    print_finding(&finding, &a.cert, a.output, json!({"cert": a.cert}));
    if finding.ok {
        Ok(())
    } else {
        Err((EXIT_PROBLEM, anyhow!("{}: verification failed", a.cert)))
    }
}

/// The trust domain all roots name in their URI SAN, if they agree.
pub fn common_td(roots: &[CertInfo]) -> Option<String> {
    let mut tds = roots.iter().filter_map(CertInfo::trust_domain);
    let first = tds.next()?;
    tds.all(|t| t == first).then_some(first)
}

/// Prints a finding as text or as JSON (merged into `extra`).
pub fn print_finding(
    f: &Finding,
    subject: &str,
    output: OutputFormat,
    mut extra: serde_json::Value,
) {
    match output {
        OutputFormat::Pretty => print!("{}", f.human(subject)),
        OutputFormat::Json => {
            if let (Some(m), Ok(serde_json::Value::Object(fm))) =
                (extra.as_object_mut(), serde_json::to_value(f))
            {
                m.extend(fm);
            }
            println!("{extra}");
        }
    }
}

/// An SVID minted by the server for a key generated here.
pub struct Minted {
    pub id: SpiffeId,
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: zeroize::Zeroizing<Vec<u8>>,
    pub bundle: Vec<CertificateDer<'static>>,
    pub serial: String,
    pub expires_at: i64,
}

/// Parses a TTL: `10m`, `1h`, `500ms`… or plain seconds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    sigil_proxy::config::parse_duration(s)
}

/// Generates a key, sends its CSR to the server's `MintX509SVID`, returns the SVID.
pub async fn mint_svid(
    socket: &Path,
    id: &SpiffeId,
    ttl: Option<Duration>,
    dns: &[String],
) -> anyhow::Result<Minted> {
    let kc = sigil_server::node_client::new_key_and_csr()?;
    let mut c = crate::admin::connect(socket).await?;
    let r = c
        .mint_x509svid(admin::MintX509svidRequest {
            csr: kc.csr_der.clone(),
            spiffe_id: id.to_string(),
            ttl: match ttl {
                None => 0,
                Some(d) => i32::try_from(d.as_secs().max(1))
                    .map_err(|_| anyhow!("--ttl {d:?} is too long"))?,
            },
            dns_names: dns.to_vec(),
        })
        .await
        .map_err(crate::admin::status)?
        .into_inner();
    if r.cert_chain.is_empty() {
        anyhow::bail!("the server answered without a certificate");
    }
    Ok(Minted {
        id: id.clone(),
        chain: r.cert_chain.into_iter().map(CertificateDer::from).collect(),
        key_pkcs8: zeroize::Zeroizing::new(kc.key.serialize_der()),
        bundle: r.bundle.into_iter().map(CertificateDer::from).collect(),
        serial: r.serial,
        expires_at: r.expires_at,
    })
}

async fn mint(a: MintArgs) -> anyhow::Result<()> {
    let id =
        SpiffeId::parse(&a.spiffe_id).map_err(|e| anyhow!("--spiffe-id {:?}: {e}", a.spiffe_id))?;
    let ttl = match &a.ttl {
        None => None,
        Some(s) => Some(parse_ttl(s).map_err(|e| anyhow!("--ttl: {e}"))?),
    };
    if ttl.is_some_and(|d| d.is_zero()) {
        anyhow::bail!("--ttl must be positive (or left out for the server's default)");
    }
    let m = mint_svid(&a.socket.socket_path, &id, ttl, &a.dns).await?;
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("cannot create --out-dir {}", a.out_dir.display()))?;
    let svid = a.out_dir.join("svid.pem");
    let key = a.out_dir.join("svid.key");
    let bundle = a.out_dir.join("bundle.pem");
    let pk = sigil_ca::PrivateKey::from_pkcs8_der(&m.key_pkcs8)
        .map_err(|e| anyhow!("the generated key is unusable: {e}"))?;
    sigil_ca::files::write_key_file(&key, &pk)
        .with_context(|| format!("cannot write {}", key.display()))?;
    sigil_ca::files::write_cert_file(&svid, &m.chain)
        .with_context(|| format!("cannot write {}", svid.display()))?;
    sigil_ca::files::write_cert_file(&bundle, &m.bundle)
        .with_context(|| format!("cannot write {}", bundle.display()))?;
    match a.output {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "spiffe_id": m.id.to_string(),
                "serial": m.serial,
                "expires_at": m.expires_at,
                "svid": svid,
                "key": key,
                "bundle": bundle,
            })
        ),
        OutputFormat::Pretty => {
            println!("SPIFFE ID:  {}", m.id);
            println!("Serial:     {}", m.serial);
            println!(
                "Expires at: {} ({})",
                crate::fmt_time(m.expires_at),
                certinfo::validity_phrase(now_unix(), m.expires_at, now_unix())
            );
            println!(
                "Wrote {} (leaf + {} intermediate(s))",
                svid.display(),
                m.chain.len() - 1
            );
            println!("Wrote {} (mode 0600)", key.display());
            println!("Wrote {} ({} root(s))", bundle.display(), m.bundle.len());
        }
    }
    Ok(())
}
