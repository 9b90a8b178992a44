//! `sigil-bench`: the Rust tools behind `bench/run`.
//!
//! - `sigil-bench crypto [--secs S]`: ECDSA P-256 sign/verify, X25519 and X25519MLKEM768 key
//!   exchange (server share), AES-128-GCM on 16 KiB records, one core, with aws-lc-rs (the
//!   library Sigil's rustls uses), and the server-side mTLS handshake bound derived from them;
//! - `sigil-bench handshake --connect ADDR --cert PEM --key PEM --ca PEM [--secs S] [--conns N]`:
//!   new mTLS connections (full handshake, no resumption, one `GET /small` each) as fast as the
//!   server answers, from N concurrent tasks on one thread.
//!
//! Output is `key=value` lines for the script to read.

mod crypto;
mod handshake;

use std::process::ExitCode;

/// Usage errors exit 64, runtime failures 1.
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "usage: sigil-bench crypto [--secs S]\n       \
    sigil-bench handshake --connect ADDR --cert CHAIN.pem --key KEY.pem --ca ROOTS.pem \
    [--secs S] [--conns N] [--path /small]";

/// `--name value` pairs after the subcommand.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_owned(), v.clone()));
        }
        Ok(Flags(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?}: expected a number")),
        }
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            Some((n, _)) => Err(format!("unknown flag --{n}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(EXIT_USAGE);
    };
    let flags = match Flags::parse(rest) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match cmd.as_str() {
        "crypto" => crypto_cmd(&flags),
        "handshake" => handshake_cmd(&flags),
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Run(anyhow::Error),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Usage(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Run(e)
    }
}

fn crypto_cmd(f: &Flags) -> Result<(), Failure> {
    f.check_known(&["secs"])?;
    let secs: f64 = f.number("secs", 1.0)?;
    let r = crypto::measure(secs)?;
    for (k, v) in r.lines() {
        println!("{k}={v}");
    }
    Ok(())
}

fn handshake_cmd(f: &Flags) -> Result<(), Failure> {
    f.check_known(&["connect", "cert", "key", "ca", "secs", "conns", "path"])?;
    let opts = handshake::Options {
        connect: f
            .required("connect")?
            .parse()
            .map_err(|_| "--connect: expected IP:PORT".to_owned())?,
        cert: f.required("cert")?.into(),
        key: f.required("key")?.into(),
        ca: f.required("ca")?.into(),
        secs: f.number("secs", 5.0)?,
        conns: f.number("conns", 16usize)?.max(1),
        path: f.get("path").unwrap_or("/small").to_owned(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    let r = rt.block_on(handshake::run(&opts))?;
    println!("handshakes={}", r.ok);
    println!("errors={}", r.errors);
    println!("secs={:.3}", r.elapsed);
    println!("rate={:.0}", r.ok as f64 / r.elapsed.max(1e-9));
    println!("group={}", r.group);
    if let Some(e) = r.first_error {
        println!("first_error={e}");
    }
    Ok(())
}
