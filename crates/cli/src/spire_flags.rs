//! SPIRE's CLI writes long flags with one dash (`-spiffeID`, `-socketPath`). clap wants two, so
//! before parsing, a single-dash argument whose name is one of the command tree's long flags is
//! rewritten to the double-dash form. Short flags (`-n`, `-o`) and values are left alone.

use std::collections::HashSet;
use std::ffi::OsString;

/// Every long flag name and alias anywhere in the command tree.
fn long_names(cmd: &clap::Command, out: &mut HashSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(l) = arg.get_long() {
            out.insert(l.to_owned());
        }
        if let Some(aliases) = arg.get_all_aliases() {
            out.extend(aliases.into_iter().map(str::to_owned));
        }
    }
    for sub in cmd.get_subcommands() {
        long_names(sub, out);
    }
}

/// Rewrites `-name` and `-name=value` to `--name…` when `name` is a known long flag.
pub fn rewrite(cmd: &clap::Command, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut names = HashSet::new();
    long_names(cmd, &mut names);
    let mut after_double_dash = false;
    args.into_iter()
        .map(|a| {
            if after_double_dash {
                return a;
            }
            let Some(s) = a.to_str() else { return a };
            if s == "--" {
                after_double_dash = true;
                return a;
            }
            if let Some(rest) = s.strip_prefix('-')
                && !rest.starts_with('-')
                && rest.len() > 1
                && names.contains(rest.split('=').next().unwrap_or(rest))
            {
                return OsString::from(format!("-{s}"));
            }
            a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("t").subcommand(
            Command::new("create")
                .arg(Arg::new("spiffe").long("spiffeID"))
                .arg(Arg::new("sel").long("selector").action(ArgAction::Append))
                .arg(Arg::new("ns").short('n'))
                .arg(Arg::new("sock").long("socket-path").alias("socketPath")),
        )
    }

    #[test]
    fn rewrites_known_single_dash_long_flags_only() {
        let args = [
            "t",
            "create",
            "-spiffeID",
            "spiffe://a/b",
            "-selector",
            "k8s:ns:x",
            "-n",
            "x",
        ]
        .map(OsString::from);
        let out = rewrite(&cmd(), args);
        let out: Vec<_> = out.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            out,
            [
                "t",
                "create",
                "--spiffeID",
                "spiffe://a/b",
                "--selector",
                "k8s:ns:x",
                "-n",
                "x"
            ]
        );
        let m = cmd().get_matches_from(rewrite(
            &cmd(),
            ["t", "create", "-socketPath=/s"].map(OsString::from),
        ));
        let (_, sub) = m.subcommand().unwrap();
        assert_eq!(sub.get_one::<String>("sock").unwrap(), "/s");
    }

    #[test]
    fn leaves_values_and_unknown_names() {
        let args = ["t", "create", "-spiffeID", "-weird", "--", "-selector"].map(OsString::from);
        let out = rewrite(&cmd(), args);
        let out: Vec<_> = out.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            out,
            ["t", "create", "--spiffeID", "-weird", "--", "-selector"]
        );
    }
}
