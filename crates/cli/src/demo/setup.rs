//! Starts the demo mesh: `sigil server run` (SQLite in the temp dir), `sigil agent run` (join
//! token), one registration entry per workload, the three demo apps and their `sigil proxy run`,
//! each a child process of this same binary, and the two client certificates of the debugging
//! section (one from the mesh CA through `sigil x509 mint`, one from a foreign CA).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde_json::json;

use super::mesh::{self, Ports};
use super::procs::{Attestation, Output, Procs, RunAs, identities};

pub const TD: &str = "cluster.local";
pub const NAMES: [&str; 3] = ["billing-service", "checkout-service", "frontend"];
/// Short enough that rotation happens during the demo (agents renew at half-life).
pub const SVID_TTL_SECS: u32 = 20;

pub fn spiffe_id(name: &str) -> String {
    format!("spiffe://{TD}/ns/payments/sa/{name}")
}

/// The running mesh.
pub struct Mesh {
    pub dir: PathBuf,
    pub procs: Arc<Procs>,
    pub exe: PathBuf,
    pub ports: Ports,
    pub admin_socket: PathBuf,
    pub agent_socket: PathBuf,
    pub agent_admin_socket: PathBuf,
    pub bundle: PathBuf,
    pub mesh_dir: PathBuf,
    pub attestation: Attestation,
    pub run_as: Vec<RunAs>,
    /// Registry keys of the long-running children, by name.
    pub kids: Vec<(String, u64)>,
    /// Mesh-CA client certificate (checkout-service's ID): cert, key.
    pub mesh_client: (PathBuf, PathBuf),
    /// A client certificate for the same ID from a CA the mesh does not trust: cert, key.
    pub foreign_client: (PathBuf, PathBuf),
}

impl Mesh {
    /// Runs `sigil ARGS` to completion (30 s bound).
    pub async fn sigil(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut c = Command::new(&self.exe);
        c.args(args);
        self.procs
            .run(
                &format!("sigil {}", args.join(" ")),
                &mut c,
                &self.dir.join("logs"),
                Duration::from_secs(30),
            )
            .await
    }

    /// Runs `sigil ARGS --socket-path <server admin socket>`, which must succeed; its stdout.
    pub async fn admin_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let sock = self.admin_socket.to_string_lossy().into_owned();
        let mut all = args.to_vec();
        all.extend(["--socket-path", &sock]);
        let o = self.sigil(&all).await?;
        if !o.status.success() {
            bail!(
                "sigil {} failed ({}): {}{}",
                all.join(" "),
                o.status,
                o.stderr.trim(),
                o.stdout.trim()
            );
        }
        Ok(o.stdout)
    }

    fn ensure_running(&self) -> anyhow::Result<()> {
        for (_, k) in &self.kids {
            if let Some((name, log)) = self.procs.exited(*k) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("{name} exited; its log ends:\n{}", tail.join("\n"));
            }
        }
        Ok(())
    }

    /// Polls `f` every 100 ms until it yields, for at most `secs`; fails naming `what`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, secs: u64, mut f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            self.ensure_running()?;
            match f().await {
                Ok(v) => return Ok(v),
                Err(last) if tokio::time::Instant::now() > deadline => {
                    bail!("{what}: not within {secs}s (last: {last})")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> anyhow::Result<()> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let k = self.procs.spawn(name, cmd, &log)?;
        self.kids.push((name.to_owned(), k));
        Ok(())
    }

    pub async fn start(exe: &Path, dir: &Path, procs: &Arc<Procs>) -> anyhow::Result<Mesh> {
        std::fs::create_dir_all(dir.join("logs"))?;
        let ports = Ports::choose()?;
        let (attestation, run_as) = identities(exe, dir, &NAMES)?;
        let server_dir = dir.join("server");
        let mut m = Mesh {
            dir: dir.to_owned(),
            procs: procs.clone(),
            exe: exe.to_owned(),
            admin_socket: server_dir.join("admin.sock"),
            agent_socket: dir.join("public").join("api.sock"),
            agent_admin_socket: dir.join("agent").join("admin.sock"),
            bundle: dir.join("bundle.pem"),
            mesh_dir: mesh::write_mesh(dir)?,
            ports,
            attestation,
            run_as,
            kids: Vec::new(),
            mesh_client: (dir.join("client/svid.pem"), dir.join("client/svid.key")),
            foreign_client: (dir.join("foreign/svid.pem"), dir.join("foreign/svid.key")),
        };
        m.start_control_plane(&server_dir).await?;
        let parent = m.agent_id().await?;
        for (name, who) in NAMES.iter().zip(m.run_as.clone()) {
            m.admin_ok(&[
                "entry",
                "create",
                "-spiffeID",
                &spiffe_id(name),
                "-parentID",
                &parent,
                "-selector",
                &who.selector,
                "-x509SVIDTTL",
                &SVID_TTL_SECS.to_string(),
            ])
            .await?;
        }
        println!(
            "  server, agent and 3 registration entries ({}; X.509-SVID TTL {SVID_TTL_SECS}s)",
            match m.attestation {
                Attestation::Uid => "workloads told apart by uid 65531..65533: unix:uid",
                Attestation::Path =>
                    "not root: workloads told apart by their own copy of the binary: unix:path",
            }
        );
        m.apply(&[
            "base/placement.yaml",
            "base/destination-rule.yaml",
            "base/certificate.yaml",
        ])
        .await?;
        m.apply(&["base/cluster-issuer.yaml", "permissive"]).await?;
        println!(
            "  applied the placement (ServiceEntry/WorkloadEntry), PeerAuthentication PERMISSIVE and DestinationRule ISTIO_MUTUAL \
             (the AuthorizationPolicy comes after STRICT, as in the document)"
        );
        m.start_workloads().await?;
        m.client_certs().await?;
        Ok(m)
    }

    /// `sigil apply -f` of example files or folders (relative to examples/payments/mesh).
    pub async fn apply(&self, rel: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["apply".to_owned()];
        for r in rel {
            args.push("-f".into());
            args.push(self.mesh_dir.join(r).to_string_lossy().into_owned());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.admin_ok(&a).await
    }

    async fn start_control_plane(&mut self, server_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(server_dir)?;
        let mut c = Command::new(&self.exe);
        c.args(["server", "run", "--data-dir"])
            .arg(server_dir)
            .arg("--socket-path")
            .arg(&self.admin_socket)
            .args(["--bind-address", "127.0.0.1", "--metrics-address", "off"])
            .args(["--bind-port", &self.ports.server.to_string()]);
        self.spawn("server", &mut c)?;
        let sock = self.admin_socket.to_string_lossy().into_owned();
        self.eventually("server healthy", 30, || async {
            match self
                .sigil(&["server", "healthcheck", "--socket-path", &sock])
                .await
            {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(o.stderr),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        let bundle = self.admin_ok(&["bundle", "show"]).await?;
        std::fs::write(&self.bundle, bundle)?;
        let token = self.admin_ok(&["token", "generate"]).await?;
        let token = token
            .trim()
            .strip_prefix("Token: ")
            .ok_or_else(|| anyhow!("unexpected `sigil token generate` output: {token}"))?
            .to_owned();
        let mut c = Command::new(&self.exe);
        c.args(["agent", "run", "--server-address"])
            .arg(format!("127.0.0.1:{}", self.ports.server))
            .args(["--join-token", &token, "--trust-bundle"])
            .arg(&self.bundle)
            .arg("--data-dir")
            .arg(self.dir.join("agent"))
            .arg("--socket-path")
            .arg(&self.agent_socket)
            .arg("--admin-socket-path")
            .arg(&self.agent_admin_socket);
        self.spawn("agent", &mut c)?;
        let asock = self.agent_socket.to_string_lossy().into_owned();
        self.eventually("agent healthy", 30, || async {
            match self
                .sigil(&["agent", "healthcheck", "--socket-path", &asock])
                .await
            {
                Ok(o) if o.status.success() => Ok(()),
                Ok(o) => Err(o.stderr),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    async fn agent_id(&self) -> anyhow::Result<String> {
        let out = self.admin_ok(&["agent", "list", "-output", "json"]).await?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        v["agents"][0]["spiffe_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no attested agent in `sigil agent list`: {out}"))
    }

    async fn start_workloads(&mut self) -> anyhow::Result<()> {
        let p = self.ports.clone();
        let configs = mesh::proxy_configs(&p, &self.agent_socket)?;
        let cfg_dir = self.dir.join("proxies");
        std::fs::create_dir_all(&cfg_dir)?;
        let apps = [
            (p.billing_app, Some(p.billing_health_app)),
            (p.checkout_app, None),
            (p.frontend_app, None),
        ];
        for (i, name) in NAMES.iter().enumerate() {
            let who = self.run_as[i].clone();
            let mut c = who.command();
            c.args(["demo", "app", "--name", name, "--listen"])
                .arg(Ports::addr(apps[i].0).to_string());
            if let Some(h) = apps[i].1 {
                c.arg("--health").arg(Ports::addr(h).to_string());
            }
            self.spawn(&format!("{name} app"), &mut c)?;
            let cfg = cfg_dir.join(format!("{name}.yaml"));
            std::fs::write(&cfg, &configs[i])?;
            let mut c = who.command();
            c.args(["proxy", "run", "--config"]).arg(&cfg);
            self.spawn(&format!("{name} proxy"), &mut c)?;
        }
        for (i, name) in NAMES.iter().enumerate() {
            let admin = Ports::addr(p.admin[i].0);
            self.eventually(&format!("{name} proxy ready"), 30, || async move {
                match super::app::request(admin, "GET", "/ready", None).await {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(r.body),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
        }
        println!("  3 demo apps and their proxies up, each with its own SVID");
        Ok(())
    }

    /// checkout-service's ID from the mesh CA (`sigil x509 mint`), and from a foreign CA.
    async fn client_certs(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let out = self.dir.join("client");
        self.admin_ok(&[
            "x509",
            "mint",
            "--spiffe-id",
            &spiffe_id("checkout-service"),
            "--ttl",
            "1h",
            "--out-dir",
            &out.to_string_lossy(),
        ])
        .await?;
        let foreign = sigil_proxy::testing::TestCa::new(TD)
            .map_err(|e| anyhow!("cannot generate the foreign CA: {e}"))?;
        let now = crate::now_unix();
        let leaf = foreign
            .issue(&spiffe_id("checkout-service"), &[], now - 60, now + 3600)
            .map_err(|e| anyhow!("cannot issue from the foreign CA: {e}"))?;
        let fdir = self.dir.join("foreign");
        std::fs::create_dir_all(&fdir)?;
        std::fs::write(&self.foreign_client.0, leaf.cert_pem())?;
        std::fs::write(fdir.join("ca.pem"), foreign.root_pem())?;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.foreign_client.1)
            .context("the foreign client key")?;
        std::io::Write::write_all(&mut key, leaf.key_pem().as_bytes())?;
        Ok(())
    }

    /// The endpoints file of `--endpoints-file`: every address, socket and certificate path.
    pub fn write_endpoints(&self, path: &Path) -> anyhow::Result<()> {
        let p = &self.ports;
        let a = |port: u16| Ports::addr(port).to_string();
        let pid = |name: &str| {
            self.kids
                .iter()
                .find(|k| k.0 == name)
                .and_then(|k| self.procs.pid(k.1))
        };
        let workloads: Vec<_> = NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (inbound, outbound, app) = match i {
                    0 => (
                        json!([a(p.billing), a(p.health)]),
                        json!([]),
                        json!({"api": a(p.billing_app), "health": a(p.billing_health_app)}),
                    ),
                    1 => (
                        json!([]),
                        json!([a(p.checkout_out)]),
                        json!({"api": a(p.checkout_app)}),
                    ),
                    _ => (
                        json!([]),
                        json!([a(p.frontend_out)]),
                        json!({"api": a(p.frontend_app)}),
                    ),
                };
                json!({
                    "name": n,
                    "namespace": "payments",
                    "spiffe_id": spiffe_id(n),
                    "selector": self.run_as[i].selector,
                    "uid": self.run_as[i].uid,
                    "app": app,
                    "app_pid": pid(&format!("{n} app")),
                    "proxy": {
                        "config": self.dir.join("proxies").join(format!("{n}.yaml")),
                        "inbound": inbound,
                        "outbound": outbound,
                        "admin": a(p.admin[i].0),
                        "stats": a(p.admin[i].1),
                        "pid": pid(&format!("{n} proxy")),
                    },
                })
            })
            .collect();
        let v = json!({
            "dir": self.dir,
            "attestation": match self.attestation { Attestation::Uid => "unix:uid", Attestation::Path => "unix:path" },
            "server": {
                "admin_socket": self.admin_socket,
                "node_api": a(p.server),
                "pid": pid("server"),
            },
            "agent": {
                "workload_api_socket": self.agent_socket,
                "admin_socket": self.agent_admin_socket,
                "pid": pid("agent"),
            },
            "trust_bundle": self.bundle,
            "mesh_yaml": self.mesh_dir,
            "workloads": workloads,
            "certs": {
                "mesh_client": {
                    "spiffe_id": spiffe_id("checkout-service"),
                    "cert": self.mesh_client.0,
                    "key": self.mesh_client.1,
                    "bundle": self.dir.join("client").join("bundle.pem"),
                },
                "foreign_client": {
                    "spiffe_id": spiffe_id("checkout-service"),
                    "cert": self.foreign_client.0,
                    "key": self.foreign_client.1,
                    "ca": self.dir.join("foreign").join("ca.pem"),
                },
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
            .with_context(|| format!("--endpoints-file {}", path.display()))
    }
}
