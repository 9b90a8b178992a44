//! Test PKI made with the `openssl` command line, as an operator would: CAs, leaves, serials.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A self-signed P-256 CA: (`ca.crt`, `ca.key`) in `dir`.
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&crt),
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    (crt, key)
}

/// A localhost server certificate with `serial`, signed by the CA.
pub fn make_leaf(dir: &Path, ca: &(PathBuf, PathBuf), serial: &str) -> (PathBuf, PathBuf) {
    let crt = dir.join(format!("leaf-{serial}.crt"));
    let key = dir.join(format!("leaf-{serial}.key"));
    let csr = dir.join(format!("leaf-{serial}.csr"));
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        p(&csr),
        "-CA",
        p(&ca.0),
        "-CAkey",
        p(&ca.1),
        "-set_serial",
        serial,
        "-days",
        "2",
        "-out",
        p(&crt),
        "-extfile",
        p(&ext),
    ]);
    (crt, key)
}

pub fn b64(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
}

pub fn pem_body_line(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .unwrap()
        .to_owned()
}

pub fn file_serial(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_owned()
}
