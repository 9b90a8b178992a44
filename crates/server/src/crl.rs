//! The CRLs of this replica: signed by each CA that can sign one (see
//! [`CaHandle::crl_authorities`]), written to the CRL directory (DER and PEM, atomic rename)
//! and served over plain HTTP when `--crl-listen` is given.
//!
//! A CRL is re-signed on every revocation (the admin API wakes the publisher; revocations
//! through another replica arrive with the configuration revision), when the signing CA
//! changes, and at half of its validity, so that it never passes its nextUpdate. The CRL
//! number is `max(previous + 1, unix seconds)`: it grows across restarts too.
//!
//! Files and URLs, per CA id (the CA's subject key id, hex): `<ca>.crl` (DER), `<ca>.pem`, and
//! `all.pem` with every CRL (what nginx `ssl_crl` and HAProxy `crl-file` take: they check the
//! whole chain and need a CRL from every CA in it).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sigil_ca::{Crl, Reason, RevokedSerial, sign_crl};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::CrlConfig;
use crate::metrics::ResultLabel;
use crate::state::Shared;

/// What was published last.
#[derive(Default)]
struct Published {
    /// CA id → its CRL.
    crls: BTreeMap<String, Arc<Crl>>,
    number: u64,
    signed_at: Option<OffsetDateTime>,
    /// The configuration revision (which moves with every revocation) it was signed at.
    revision: i64,
    /// The id of the signing CA it was signed with.
    active_ca: Option<String>,
}

/// Signs, writes and serves this replica's CRLs.
pub struct CrlPublisher {
    cfg: CrlConfig,
    state: RwLock<Published>,
    wake: Notify,
    /// The address the HTTP endpoint bound.
    bound: OnceLock<SocketAddr>,
}

impl CrlPublisher {
    pub fn new(cfg: CrlConfig) -> Self {
        CrlPublisher {
            cfg,
            state: RwLock::default(),
            wake: Notify::new(),
            bound: OnceLock::new(),
        }
    }

    /// Asks the publishing task to re-sign now (after a revocation).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`CrlPublisher::wake`] was called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The current CRL of CA `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Crl>> {
        self.read().crls.get(id).cloned()
    }

    /// Every current CRL as PEM, concatenated.
    pub fn all_pem(&self) -> String {
        self.read().crls.values().map(|c| c.pem.as_str()).collect()
    }

    /// The URLs of the published CRLs: under `--crl-url` if given, else the bound endpoint.
    pub fn urls(&self) -> Vec<String> {
        let base = match (&self.cfg.url, self.bound.get()) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => format!("http://{a}"),
            (None, None) => return Vec::new(),
        };
        self.read()
            .crls
            .keys()
            .map(|id| sigil_ca::template::crl_url(&base, id))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the CRLs must be re-signed: revocations changed (`revision`), the signing CA
    /// changed, or half of the validity has passed.
    pub fn due(&self, revision: i64, active_ca: Option<&str>, now: OffsetDateTime) -> bool {
        let p = self.read();
        let Some(at) = p.signed_at else { return true };
        let half =
            time::Duration::try_from(self.cfg.validity / 2).unwrap_or(time::Duration::MINUTE);
        p.revision != revision || p.active_ca.as_deref() != active_ca || now >= at + half
    }

    /// Signs every CRL from the stored revocations and writes the files.
    pub async fn publish(&self, s: &Shared) -> anyhow::Result<()> {
        let result = self.publish_inner(s).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        s.metrics
            .crl_publications
            .get_or_create(&ResultLabel {
                result: label.into(),
            })
            .inc();
        result
    }

    async fn publish_inner(&self, s: &Shared) -> anyhow::Result<()> {
        // The revision first: revocations stored after it are included anyway (harmless),
        // and the next round sees a newer revision.
        let revision = s.config.current().revision;
        let now = OffsetDateTime::now_utc();
        let all =
            s.ds.list_revocations()
                .await
                .context("cannot read the revocations")?;
        // An intermediate CA (recorded with the trust domain's ID) is listed by its issuer,
        // the upstream CA; everything else by this replica's signing CA.
        let listed = |ca: bool| -> Vec<RevokedSerial> {
            all.iter()
                .filter(|r| r.issued_by == s.server_id && r.not_after >= now.unix_timestamp())
                .filter(|r| r.spiffe_id.is_root() == ca)
                .map(|r| RevokedSerial {
                    serial_hex: r.serial_hex.clone(),
                    revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    reason: r.reason.parse().unwrap_or(Reason::Unspecified),
                })
                .collect()
        };
        let ours = listed(false);
        let intermediates = listed(true);
        s.metrics.revoked.set(all.len() as i64);
        let authorities = s.ca.crl_authorities();
        let active_ca = authorities
            .iter()
            .find(|a| a.signs_svids)
            .map(|a| a.authority.id());
        let number = {
            let p = self.read();
            (p.number + 1).max(u64::try_from(now.unix_timestamp()).unwrap_or(0))
        };
        let this_update = now - sigil_ca::template::NOT_BEFORE_BACKDATE;
        let next_update = now + self.cfg.validity;
        let mut crls = BTreeMap::new();
        for a in &authorities {
            let listed: &[RevokedSerial] = if a.signs_svids { &ours } else { &intermediates };
            let crl = sign_crl(&a.authority, listed, number, this_update, next_update)
                .with_context(|| format!("cannot sign the CRL of CA {}", a.authority.id()))?;
            crls.insert(a.authority.id(), Arc::new(crl));
        }
        // Self-signed roots signed their only CRL before their key was dropped.
        for pem in s.ca.root_crls() {
            match sigil_ca::crl::parse_crl_pem(&pem) {
                Ok((crl, id)) => {
                    crls.entry(id).or_insert_with(|| Arc::new(crl));
                }
                Err(e) => {
                    warn!(error = %e, "a root CRL in the CA journal is unreadable; not published")
                }
            }
        }
        write_files(&self.cfg.dir, &crls)?;
        info!(
            cas = crls.len(),
            revoked = ours.len(),
            crl_number = number,
            next_update = %next_update,
            dir = %self.cfg.dir.display(),
            "CRLs published"
        );
        let mut p = self.state.write().unwrap_or_else(|p| p.into_inner());
        *p = Published {
            crls,
            number,
            signed_at: Some(now),
            revision,
            active_ca,
        };
        Ok(())
    }

    /// Binds the HTTP endpoint (loopback is the expected choice; anything else is logged).
    pub async fn bind(&self) -> anyhow::Result<Option<TcpListener>> {
        let Some(addr) = self.cfg.listen else {
            return Ok(None);
        };
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the CRL endpoint {addr} (--crl-listen)"))?;
        let a = l.local_addr()?;
        if !a.ip().is_loopback() {
            warn!(addr = %a, "the CRL endpoint listens beyond loopback; CRLs are public, but check this is intended");
        }
        let _ = self.bound.set(a);
        Ok(Some(l))
    }

    /// The address the endpoint bound, if any.
    pub fn bound_addr(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }
}

/// Writes `<ca>.crl`, `<ca>.pem` and `all.pem` atomically (temporary file, then rename) and
/// removes the files of CAs no longer published.
fn write_files(dir: &Path, crls: &BTreeMap<String, Arc<Crl>>) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| {
            format!(
                "cannot create the CRL directory {} (--crl-dir)",
                dir.display()
            )
        })?;
    let mut all = String::new();
    for (id, crl) in crls {
        write_atomic(&dir.join(format!("{id}.crl")), &crl.der)?;
        write_atomic(&dir.join(format!("{id}.pem")), crl.pem.as_bytes())?;
        all.push_str(&crl.pem);
    }
    write_atomic(&dir.join("all.pem"), all.as_bytes())?;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((stem, ext)) = name.rsplit_once('.') else {
                continue;
            };
            let ours = (ext == "crl" || ext == "pem")
                && stem.len() >= 16
                && stem.bytes().all(|b| b.is_ascii_hexdigit());
            if ours && !crls.contains_key(stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// What `GET path` answers: (status, content type, body).
fn answer(p: &CrlPublisher, path: &str) -> (u16, &'static str, Vec<u8>) {
    let Some(file) = path.strip_prefix("/crl/") else {
        return (
            404,
            "text/plain",
            b"not found; CRLs are under /crl/\n".to_vec(),
        );
    };
    if file == "all.pem" {
        return (200, "application/x-pem-file", p.all_pem().into_bytes());
    }
    let found = match file.rsplit_once('.') {
        Some((id, "crl")) => p.get(id).map(|c| ("application/pkix-crl", c.der.clone())),
        Some((id, "pem")) => p
            .get(id)
            .map(|c| ("application/x-pem-file", c.pem.clone().into_bytes())),
        _ => None,
    };
    match found {
        Some((ct, body)) => (200, ct, body),
        None => {
            let known: Vec<String> = p.read().crls.keys().cloned().collect();
            let msg = format!(
                "no CRL {file:?}; published: {} (as <ca>.crl or <ca>.pem), and all.pem\n",
                known.join(", ")
            );
            (404, "text/plain", msg.into_bytes())
        }
    }
}

/// Serves `GET /crl/…` until the task is dropped.
pub async fn serve(listener: TcpListener, s: Arc<Shared>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning on the error.
                tracing::warn!(error = %e, "CRL endpoint cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let s = s.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (status, ct, body) = answer(&s.crl, req.uri().path());
                let resp = Response::builder()
                    .status(status)
                    .header("content-type", ct)
                    .header("cache-control", "max-age=60")
                    .body(Full::new(Bytes::from(body)));
                async move { Ok::<_, Infallible>(resp.unwrap_or_default()) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
