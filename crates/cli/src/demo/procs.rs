//! The demo's child processes: every one is registered here, so that every path out of the
//! demo (success, a failed check, an error, Ctrl-C / SIGTERM) kills and reaps all of them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow};

/// Registered children; `shutdown` kills and reaps them all and refuses new ones.
#[derive(Default)]
pub struct Procs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    closed: bool,
    next: u64,
    kids: Vec<Kid>,
}

struct Kid {
    key: u64,
    name: String,
    child: Child,
    log: PathBuf,
}

/// What a finished short command printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Procs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `cmd` with stdout/stderr to `log`; returns its registry key.
    pub fn spawn(&self, name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<u64> {
        let mut g = self.lock();
        if g.closed {
            return Err(anyhow!("shutting down: not starting {name}"));
        }
        let out = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        g.next += 1;
        let key = g.next;
        g.kids.push(Kid {
            key,
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        });
        Ok(key)
    }

    /// Runs a short command to completion (bounded by `timeout`), capturing its output in
    /// files under `dir`. Killed with the rest if the demo is interrupted meanwhile.
    pub async fn run(
        &self,
        name: &str,
        cmd: &mut Command,
        dir: &Path,
        timeout: Duration,
    ) -> anyhow::Result<Output> {
        let n = {
            let mut g = self.lock();
            g.next += 1;
            g.next
        };
        let out_path = dir.join(format!("cmd-{n}.out"));
        let err_path = dir.join(format!("cmd-{n}.err"));
        {
            let mut g = self.lock();
            if g.closed {
                return Err(anyhow!("shutting down: not running {name}"));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out_path)?)
                .stderr(std::fs::File::create(&err_path)?)
                .spawn()
                .with_context(|| format!("cannot run {name}"))?;
            g.kids.push(Kid {
                key: n,
                name: name.to_owned(),
                child,
                log: err_path.clone(),
            });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.try_wait(n)? {
                break s;
            }
            if tokio::time::Instant::now() > deadline {
                self.kill(n);
                return Err(anyhow!("{name} did not finish within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let o = Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        };
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Ok(o)
    }

    /// `Some(status)` once the child exited (it is then forgotten).
    pub fn try_wait(&self, key: u64) -> anyhow::Result<Option<ExitStatus>> {
        let mut g = self.lock();
        let Some(i) = g.kids.iter().position(|k| k.key == key) else {
            return Err(anyhow!("process {key} is not running (interrupted?)"));
        };
        match g.kids[i].child.try_wait()? {
            Some(s) => {
                g.kids.remove(i);
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    /// Whether a long-running child is still alive; its name and log when it is not.
    pub fn exited(&self, key: u64) -> Option<(String, PathBuf)> {
        let mut g = self.lock();
        let k = g.kids.iter_mut().find(|k| k.key == key)?;
        match k.child.try_wait() {
            Ok(None) => None,
            _ => Some((k.name.clone(), k.log.clone())),
        }
    }

    fn kill(&self, key: u64) {
        let mut g = self.lock();
        if let Some(i) = g.kids.iter().position(|k| k.key == key) {
            let mut k = g.kids.remove(i);
            let _ = k.child.kill();
            let _ = k.child.wait();
        }
    }

    /// Process ids of the running children (for the endpoints file).
    pub fn pid(&self, key: u64) -> Option<u32> {
        self.lock()
            .kids
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.child.id())
    }

    /// Kills and reaps every child; no new one starts afterwards.
    pub fn shutdown(&self) {
        let mut g = self.lock();
        g.closed = true;
        for k in &mut g.kids {
            let _ = k.child.kill();
        }
        for k in &mut g.kids {
            let _ = k.child.wait();
        }
        g.kids.clear();
    }

    /// The last lines of every running child's log, for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let g = self.lock();
        let mut out = String::new();
        for k in &g.kids {
            let text = std::fs::read_to_string(&k.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!("--- {} ({})\n", k.name, k.log.display()));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// The uid of this process (from /proc, no unsafe).
pub fn my_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// How the three workloads are told apart by the agent's workload attestation.
#[derive(Debug, Clone)]
pub enum Attestation {
    /// Root: each app+proxy pair runs under its own uid; entries select `unix:uid:N`.
    Uid,
    /// Not root: each proxy runs from its own copy of the binary; entries select `unix:path:P`.
    Path,
}

/// One workload's process identity: the binary it runs, its uid (root mode) and its selector.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub exe: PathBuf,
    pub uid: Option<u32>,
    pub selector: String,
}

impl RunAs {
    pub fn command(&self) -> Command {
        use std::os::unix::process::CommandExt as _;
        let mut c = Command::new(&self.exe);
        if let Some(u) = self.uid {
            c.uid(u).gid(u);
        }
        c
    }
}

/// Whether every directory above `p` and `p` itself can be traversed/executed by others.
fn world_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.ancestors().all(|a| {
        a.as_os_str().is_empty()
            || std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    })
}

/// Hard link (fast) or copy `exe` to `to`, mode 0755.
fn place_binary(exe: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    if std::fs::hard_link(exe, to).is_err() {
        std::fs::copy(exe, to)
            .with_context(|| format!("cannot copy {} to {}", exe.display(), to.display()))?;
    }
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Chooses how each workload runs: as root, uids 65531.. (one per workload); otherwise one copy
/// of the binary per workload under `dir/bin/NAME/sigil`.
pub fn identities(
    exe: &Path,
    dir: &Path,
    names: &[&str],
) -> anyhow::Result<(Attestation, Vec<RunAs>)> {
    if my_uid() == 0 {
        let exe = if world_executable(exe) {
            exe.to_owned()
        } else {
            let to = dir.join("bin").join("sigil");
            place_binary(exe, &to)?;
            to
        };
        let v = (0..names.len())
            .map(|i| {
                let uid = 65531 + i as u32;
                RunAs {
                    exe: exe.clone(),
                    uid: Some(uid),
                    selector: format!("unix:uid:{uid}"),
                }
            })
            .collect();
        Ok((Attestation::Uid, v))
    } else {
        let mut v = Vec::new();
        for n in names {
            let to = dir.join("bin").join(n).join("sigil");
            place_binary(exe, &to)?;
            v.push(RunAs {
                selector: format!("unix:path:{}", to.display()),
                exe: to,
                uid: None,
            });
        }
        Ok((Attestation::Path, v))
    }
}

/// A panic (or any early return) that drops the last handle still kills and reaps every child.
impl Drop for Procs {
    fn drop(&mut self) {
        self.shutdown();
    }
}
