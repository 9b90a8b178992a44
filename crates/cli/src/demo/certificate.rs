//! The seed document's cert-manager section as one check: the `ca-key-pair` Secret created
//! with `sigil create secret tls` (a CA made here, its key 0600), the ClusterIssuer
//! `internal-ca` and Certificate `billing-service-cert` (applied with the rest of
//! `mesh/base`), then READY True and the issued certificate's SANs and lifetime read back from
//! the Secret.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use serde_json::Value;
use sigil_ca::{CaSubject, KeyType, PrivateKey, X509Authority};
use x509_parser::extensions::GeneralName;

use super::Table;
use super::setup::{Mesh, TD};

const DNS: [&str; 2] = [
    "billing-service.payments.svc.cluster.local",
    "billing-service.payments.svc",
];
const URI: &str = "spiffe://cluster.local/ns/payments/sa/billing-service";

/// Writes `ca.crt` and `ca.key` (0600) for the `ca-key-pair` Secret.
fn make_ca(dir: &std::path::Path) -> anyhow::Result<()> {
    let key = Arc::new(PrivateKey::generate(KeyType::EcP256)?);
    let subject = CaSubject {
        common_name: Some("internal-ca".into()),
        organization: Some("corp.example.com".into()),
        ..CaSubject::default()
    };
    let ca = X509Authority::self_signed(
        sigil_spiffe::TrustDomain::new(TD).map_err(|e| anyhow!("{e}"))?,
        &subject,
        key.clone(),
        Duration::from_secs(30 * 86400),
        time::OffsetDateTime::now_utc(),
    )?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("ca.crt"),
        sigil_spiffe::pem::encode_block("CERTIFICATE", ca.cert_der()),
    )?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("ca.key"))
        .context("ca.key")?;
    f.write_all(key.to_pkcs8_pem()?.as_bytes())?;
    Ok(())
}

/// What the issued certificate says: (SANs, lifetime in seconds).
fn leaf_facts(tls_crt: &[u8]) -> Result<(Vec<String>, i64), String> {
    let text = std::str::from_utf8(tls_crt).map_err(|e| e.to_string())?;
    let certs = sigil_spiffe::pem::decode_certificates(text).map_err(|e| e.to_string())?;
    let der = certs.first().ok_or("tls.crt holds no certificate")?;
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let sans = c
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
    Ok((sans, life))
}

pub async fn run(m: &Mesh, t: &mut Table) -> anyhow::Result<()> {
    println!("cert-manager: ClusterIssuer internal-ca and Certificate billing-service-cert");
    let dir = m.dir.join("cert-manager");
    make_ca(&dir)?;
    let crt = dir.join("ca.crt").to_string_lossy().into_owned();
    let key = dir.join("ca.key").to_string_lossy().into_owned();
    m.admin_ok(&[
        "create",
        "secret",
        "tls",
        "ca-key-pair",
        "--cert",
        &crt,
        "--key",
        &key,
        "-n",
        "cert-manager",
    ])
    .await?;
    let sock = m.admin_socket.to_string_lossy().into_owned();
    let got = m
        .eventually("billing-service-cert READY True", 20, || async {
            let o = m
                .sigil(&[
                    "get",
                    "certificate",
                    "billing-service-cert",
                    "-n",
                    "payments",
                    "-o",
                    "json",
                    "--socket-path",
                    &sock,
                ])
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(&o.stdout).map_err(|e| e.to_string())?;
            let ready = v["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .cloned()
                .unwrap_or_default();
            if ready["status"] == "True" {
                Ok(ready)
            } else {
                Err(format!("{}: {}", ready["reason"], ready["message"]))
            }
        })
        .await;
    let facts = match &got {
        Ok(_) => {
            let out = m
                .admin_ok(&[
                    "get",
                    "secret",
                    "billing-service-tls",
                    "-n",
                    "payments",
                    "-o",
                    "json",
                    "--show-secrets",
                ])
                .await?;
            let v: Value = serde_json::from_str(&out)?;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(v["data"]["tls.crt"].as_str().unwrap_or_default())?;
            leaf_facts(&pem)
        }
        Err(e) => Err(e.to_string()),
    };
    let want: Vec<String> = DNS
        .iter()
        .copied()
        .chain([URI])
        .map(str::to_owned)
        .collect();
    let (text, pass) = match &facts {
        Ok((sans, life)) => (
            format!("READY True; SANs {}; {}h", sans.join(", "), life / 3600),
            *sans == want && *life == 24 * 3600,
        ),
        Err(e) => (e.clone(), false),
    };
    t.add(
        "cert-manager: billing-service-cert from ClusterIssuer internal-ca",
        "READY True; 2 DNS SANs + SPIFFE URI; 24h",
        text,
        pass,
    );
    Ok(())
}
