//! The example of `examples/payments`, compiled into the binary (so `sigil demo` works from any
//! directory): the mesh YAML written out verbatim for `sigil apply -f`, and the three proxy
//! configs used as templates, with the addresses the demo could bind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

/// (relative path, YAML) of every mesh file, verbatim.
pub const MESH: &[(&str, &str)] = &[
    (
        "base/destination-rule.yaml",
        include_str!("../../../../examples/payments/mesh/base/destination-rule.yaml"),
    ),
    (
        "base/placement.yaml",
        include_str!("../../../../examples/payments/mesh/base/placement.yaml"),
    ),
    (
        "base/certificate.yaml",
        include_str!("../../../../examples/payments/mesh/base/certificate.yaml"),
    ),
    (
        "base/cluster-issuer.yaml",
        include_str!("../../../../examples/payments/mesh/base/cluster-issuer.yaml"),
    ),
    (
        "base/authorization-policy.yaml",
        include_str!("../../../../examples/payments/mesh/base/authorization-policy.yaml"),
    ),
    (
        "base/health-authorization-policy.yaml",
        include_str!("../../../../examples/payments/mesh/base/health-authorization-policy.yaml"),
    ),
    (
        "permissive/peer-authentication.yaml",
        include_str!("../../../../examples/payments/mesh/permissive/peer-authentication.yaml"),
    ),
    (
        "strict/peer-authentication.yaml",
        include_str!("../../../../examples/payments/mesh/strict/peer-authentication.yaml"),
    ),
    (
        "strict/health-port-exception.yaml",
        include_str!("../../../../examples/payments/mesh/strict/health-port-exception.yaml"),
    ),
];

const BILLING: &str = include_str!("../../../../examples/payments/proxies/billing-service.yaml");
const CHECKOUT: &str = include_str!("../../../../examples/payments/proxies/checkout-service.yaml");
const FRONTEND: &str = include_str!("../../../../examples/payments/proxies/frontend.yaml");

/// Writes the mesh files under `dir/mesh/` (world-readable); returns that directory.
pub fn write_mesh(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("mesh");
    for (rel, yaml) in MESH {
        let p = root.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, yaml).with_context(|| format!("{}", p.display()))?;
    }
    Ok(root)
}

/// The example's port if it is free on 127.0.0.1, else a free one.
pub fn port(preferred: u16) -> anyhow::Result<u16> {
    if std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every address of the demo mesh.
#[derive(Debug, Clone)]
pub struct Ports {
    pub server: u16,
    /// billing-service inbound API port (8080 in the example).
    pub billing: u16,
    /// billing-service health port: always 9090, the port the example's policies name.
    pub health: u16,
    pub billing_app: u16,
    pub billing_health_app: u16,
    pub checkout_app: u16,
    pub frontend_app: u16,
    pub checkout_out: u16,
    pub frontend_out: u16,
    /// (admin, stats) of billing, checkout, frontend.
    pub admin: [(u16, u16); 3],
}

impl Ports {
    pub fn choose() -> anyhow::Result<Ports> {
        if std::net::TcpListener::bind("127.0.0.1:9090").is_err() {
            return Err(anyhow!(
                "port 9090 on 127.0.0.1 is in use: the example's health-port exception \
                 (examples/payments/mesh/strict/health-port-exception.yaml, portLevelMtls 9090) \
                 and its health policy name port 9090, so billing-service's proxy must listen \
                 there; stop what uses it (ss -ltnp 'sport = :9090') and run sigil demo again"
            ));
        }
        Ok(Ports {
            server: port(8081)?,
            billing: port(8080)?,
            health: 9090,
            billing_app: port(18080)?,
            billing_health_app: port(19090)?,
            checkout_app: port(18081)?,
            frontend_app: port(18082)?,
            checkout_out: port(15001)?,
            frontend_out: port(15002)?,
            admin: [
                (port(15000)?, port(15090)?),
                (port(15100)?, port(15190)?),
                (port(15200)?, port(15290)?),
            ],
        })
    }

    pub fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }
}

/// Replaces `from` by `to` in `text`, which must contain it (the example is the template).
fn subst(text: String, from: &str, to: &str, file: &str) -> anyhow::Result<String> {
    if !text.contains(from) {
        return Err(anyhow!(
            "examples/payments/proxies/{file} no longer contains {from:?}; update \
             crates/cli/src/demo/mesh.rs to the example's new shape"
        ));
    }
    Ok(text.replace(from, to))
}

/// The three proxy configs (billing, checkout, frontend): the example files with the demo's
/// socket and ports.
pub fn proxy_configs(p: &Ports, socket: &Path) -> anyhow::Result<[String; 3]> {
    let sock = format!("unix://{}", socket.display());
    let api = "unix:///tmp/sigil-agent/public/api.sock";
    let f = "billing-service.yaml";
    let mut b = subst(BILLING.to_owned(), api, &sock, f)?;
    b = subst(b, "port: 8080", &format!("port: {}", p.billing), f)?;
    b = subst(
        b,
        "127.0.0.1:18080",
        &format!("127.0.0.1:{}", p.billing_app),
        f,
    )?;
    b = subst(
        b,
        "127.0.0.1:19090",
        &format!("127.0.0.1:{}", p.billing_health_app),
        f,
    )?;
    b = subst(
        b,
        "127.0.0.1:15000",
        &format!("127.0.0.1:{}", p.admin[0].0),
        f,
    )?;
    b = subst(
        b,
        "127.0.0.1:15090",
        &format!("127.0.0.1:{}", p.admin[0].1),
        f,
    )?;
    let client = |text: &str, f: &str, out: u16, listen: &str, i: usize, a: &str, s: &str| {
        let mut c = subst(text.to_owned(), api, &sock, f)?;
        c = subst(c, listen, &format!("listen: 127.0.0.1:{out}"), f)?;
        c = subst(c, "port: 8080", &format!("port: {}", p.billing), f)?;
        c = subst(c, a, &format!("127.0.0.1:{}", p.admin[i].0), f)?;
        subst(c, s, &format!("127.0.0.1:{}", p.admin[i].1), f)
    };
    let c = client(
        CHECKOUT,
        "checkout-service.yaml",
        p.checkout_out,
        "listen: 127.0.0.1:15001",
        1,
        "127.0.0.1:15100",
        "127.0.0.1:15190",
    )?;
    let fr = client(
        FRONTEND,
        "frontend.yaml",
        p.frontend_out,
        "listen: 127.0.0.1:15002",
        2,
        "127.0.0.1:15200",
        "127.0.0.1:15290",
    )?;
    Ok([b, c, fr])
}
