//! `sigil-proxy`: the proxy alone, for sidecar images. Same flags as `sigil proxy run`.

use std::process::ExitCode;

use clap::Parser;
use sigil_proxy::cli::{EXIT_CONFIG, RunArgs};

/// The Sigil mTLS proxy beside one workload (the proxy-only build of `sigil proxy run`).
#[derive(Debug, Parser)]
#[command(name = "sigil-proxy", version)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let rt = match cli.run.runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(sigil_proxy::cli::run(cli.run)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
