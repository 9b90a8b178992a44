//! `sigil create secret tls NAME --cert FILE --key FILE [-n NS]`, in kubectl's shape: the pair is
//! checked here (both parse, the key belongs to the certificate) before anything is sent.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use sigil_proto::admin as api;
use zeroize::Zeroizing;

use crate::admin::{connect, status};
use crate::entry::SocketArg;

/// Largest certificate or key file read.
const MAX_PEM: u64 = 1 << 20;

#[derive(Debug, Subcommand)]
pub enum CreateCmd {
    /// Secrets.
    #[command(subcommand)]
    Secret(SecretKind),
}

#[derive(Debug, Subcommand)]
pub enum SecretKind {
    /// A `kubernetes.io/tls` Secret from a PEM certificate (chain) and its private key.
    Tls(TlsArgs),
}

#[derive(Debug, Args)]
pub struct TlsArgs {
    /// The Secret's name.
    pub name: String,
    /// PEM certificate, leaf first, then any intermediates (stored as `tls.crt`).
    #[arg(long)]
    pub cert: PathBuf,
    /// PEM private key of the certificate: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (stored as `tls.key`).
    #[arg(long)]
    pub key: PathBuf,
    /// Namespace (default: default).
    #[arg(long = "namespace", short = 'n', default_value = "default")]
    pub namespace: String,
    /// `client`: only print what would be created; `server`: also validate on the server.
    #[arg(long = "dry-run", num_args = 0..=1, default_missing_value = "client", value_parser = ["client", "server", "none"])]
    pub dry_run: Option<String>,
    /// With --dry-run=client: print the Secret as yaml or json (includes the private key).
    #[arg(long = "output", short = 'o', value_parser = ["yaml", "json"])]
    pub output: Option<String>,
    #[command(flatten)]
    pub socket: SocketArg,
}

pub async fn run(c: CreateCmd) -> anyhow::Result<()> {
    match c {
        CreateCmd::Secret(SecretKind::Tls(a)) => secret_tls(a).await,
    }
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read --{what} {}", path.display()))?;
    if meta.len() > MAX_PEM {
        bail!(
            "--{what} {} is {} bytes; a PEM {what} file is far smaller: is this the right file?",
            path.display(),
            meta.len()
        );
    }
    Ok(Zeroizing::new(std::fs::read(path).with_context(|| {
        format!("cannot read --{what} {}", path.display())
    })?))
}

/// Checks the pair as kubectl does (and more plainly): the certificate parses, the key parses,
/// and the key is the certificate's.
pub fn check_pair(cert_pem: &[u8], key_pem: &[u8], cert: &Path, key: &Path) -> anyhow::Result<()> {
    let text = std::str::from_utf8(cert_pem)
        .map_err(|_| anyhow::anyhow!("--cert {} is not PEM text", cert.display()))?;
    let certs = sigil_spiffe::pem::decode_certificates(text)
        .with_context(|| format!("--cert {}", cert.display()))?;
    let Some(leaf) = certs.first() else {
        bail!(
            "--cert {} holds no CERTIFICATE block; give the PEM certificate (leaf first)",
            cert.display()
        );
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        anyhow::anyhow!(
            "--cert {}: the first certificate does not parse: {e}",
            cert.display()
        )
    })?;
    let private = sigil_ca::PrivateKey::from_pem(key_pem)
        .map_err(|e| anyhow::anyhow!("--key {}: {e}", key.display()))?;
    if private.public_key_spki_der() != parsed.tbs_certificate.subject_pki.raw {
        bail!(
            "tls: private key does not match public key: --key {} is not the key of the first certificate in --cert {} (subject {}); \
             give the key the certificate was issued for",
            key.display(),
            cert.display(),
            parsed.subject()
        );
    }
    Ok(())
}

async fn secret_tls(a: TlsArgs) -> anyhow::Result<()> {
    if !sigil_policy::is_dns1123_subdomain(&a.name) {
        bail!(
            "invalid Secret name {:?}: use lower-case letters, digits, '-' and '.', e.g. ca-key-pair",
            a.name
        );
    }
    if !sigil_policy::is_dns1123_label(&a.namespace) {
        bail!("invalid namespace {:?}", a.namespace);
    }
    let cert_pem = read_pem(&a.cert, "cert")?;
    let key_pem = read_pem(&a.key, "key")?;
    check_pair(&cert_pem, &key_pem, &a.cert, &a.key)?;
    let object = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": a.name, "namespace": a.namespace},
        "type": sigil_policy::SECRET_TYPE_TLS,
        "data": {
            "tls.crt": STANDARD.encode(cert_pem.as_slice()),
            "tls.key": STANDARD.encode(key_pem.as_slice()),
        },
    });
    let text = Zeroizing::new(object.to_string());
    if a.dry_run.as_deref() == Some("client") {
        match a.output.as_deref() {
            Some("json") => println!("{}", serde_json::to_string_pretty(&object)?),
            Some(_) => print!("{}", serde_saphyr::to_string(&object)?),
            None => println!("secret/{} created (dry run)", a.name),
        }
        return Ok(());
    }
    if a.output.is_some() {
        bail!("-o is for --dry-run=client (it prints the Secret, private key included)");
    }
    let mut client = connect(&a.socket.socket_path).await?;
    let exists = client
        .get_config(api::GetConfigRequest {
            kind: "Secret".into(),
            name: a.name.clone(),
            namespace: a.namespace.clone(),
            ..Default::default()
        })
        .await;
    match exists {
        Ok(_) => bail!(
            "secrets {:?} already exists in namespace {:?}; to replace it: sigil create secret tls {} --cert … --key … -n {} --dry-run=client -o yaml | sigil apply -f -",
            a.name,
            a.namespace,
            a.name,
            a.namespace
        ),
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(status(s)),
    }
    let resp = client
        .apply_config(api::ApplyConfigRequest {
            documents: vec![api::ConfigDocument {
                file_name: format!("secret/{}", a.name),
                text: text.to_string(),
            }],
            namespace: a.namespace.clone(),
            namespace_explicit: true,
            dry_run: a.dry_run.as_deref() == Some("server"),
        })
        .await
        .map_err(status)?
        .into_inner();
    if !resp.errors.is_empty() {
        for e in &resp.errors {
            eprintln!("error: {e}");
        }
        bail!("the server refused the Secret; nothing was created");
    }
    let suffix = if a.dry_run.as_deref() == Some("server") {
        " (server dry run)"
    } else {
        ""
    };
    println!("secret/{} created{suffix}", a.name);
    Ok(())
}
