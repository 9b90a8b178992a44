//! The unix workload attestor against a fake `/proc` tree and against this very process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use sigil_agent::attestor::{AttestError, Caller, UnixAttestor, WorkloadAttestor};

/// A `/proc`-shaped tree plus passwd and group files in a temp dir.
struct FakeProc {
    dir: tempfile::TempDir,
}

struct Proc {
    pid: i32,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    start: u64,
    /// The exe link's target (a file in the temp dir unless given verbatim).
    exe: Exe,
}

enum Exe {
    /// A real file with these contents.
    File(&'static [u8]),
    /// A link whose target text is this (e.g. a deleted binary).
    Link(&'static str),
}

impl FakeProc {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("group"),
            "root:x:0:\nalice:x:1000:\nwheel:x:10:alice\ndocker:x:999:alice\n",
        )
        .unwrap();
        FakeProc { dir }
    }

    fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    fn attestor(&self) -> UnixAttestor {
        UnixAttestor::with_roots(
            self.proc_root(),
            self.dir.path().join("passwd"),
            self.dir.path().join("group"),
        )
    }

    fn stat_line(pid: i32, start: u64) -> String {
        // Fields 1..=22 with an awkward command name; field 22 is the start time.
        format!(
            "{pid} (my prog) x) S 1 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10\n"
        )
    }

    fn add(&self, p: &Proc) -> PathBuf {
        let d = self.proc_root().join(p.pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stat"), Self::stat_line(p.pid, p.start)).unwrap();
        let groups: Vec<String> = p.groups.iter().map(u32::to_string).collect();
        std::fs::write(
            d.join("status"),
            format!(
                "Name:\tprog\nUid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{g}\t{g}\t{g}\t{g}\nGroups:\t{}\n",
                groups.join(" "),
                u = p.uid,
                g = p.gid
            ),
        )
        .unwrap();
        let target = match p.exe {
            Exe::File(bytes) => {
                let f = self.dir.path().join(format!("bin-{}", p.pid));
                std::fs::write(&f, bytes).unwrap();
                f
            }
            Exe::Link(text) => PathBuf::from(text),
        };
        symlink(&target, d.join("exe")).unwrap();
        target
    }
}

fn strings(sel: &[sigil_agent::cache::Selector]) -> Vec<String> {
    sel.iter().map(ToString::to_string).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

const PROG: &[u8] = b"#!/bin/false\nnot really a program\n";

fn alice(pid: i32) -> Proc {
    Proc {
        pid,
        uid: 1000,
        gid: 1000,
        groups: vec![10, 999, 4242],
        start: 5000,
        exe: Exe::File(PROG),
    }
}

fn caller(p: &Proc) -> Caller {
    Caller {
        pid: p.pid,
        uid: p.uid,
        gid: p.gid,
    }
}

#[test]
fn fake_proc_yields_spire_unix_selectors_in_order() {
    let fake = FakeProc::new();
    let p = alice(4321);
    let exe = fake.add(&p);
    let got = strings(&fake.attestor().attest(&caller(&p)).unwrap());
    assert_eq!(
        got,
        [
            "unix:uid:1000".to_owned(),
            "unix:user:alice".to_owned(),
            "unix:gid:1000".to_owned(),
            "unix:group:alice".to_owned(),
            "unix:supplementary_gid:10".to_owned(),
            "unix:supplementary_gid:999".to_owned(),
            "unix:supplementary_gid:4242".to_owned(),
            // 4242 has no name: no supplementary_group selector for it.
            "unix:supplementary_group:wheel".to_owned(),
            "unix:supplementary_group:docker".to_owned(),
            format!("unix:path:{}", exe.display()),
            format!("unix:sha256:{}", sha256_hex(PROG)),
        ]
    );
}

#[test]
fn unknown_user_and_group_names_are_omitted() {
    let fake = FakeProc::new();
    let p = Proc {
        uid: 2001,
        gid: 2002,
        groups: vec![],
        ..alice(77)
    };
    fake.add(&p);
    let got = strings(&fake.attestor().attest(&caller(&p)).unwrap());
    assert_eq!(&got[..2], ["unix:uid:2001", "unix:gid:2002"]);
    assert!(
        got.iter()
            .all(|s| !s.starts_with("unix:user:") && !s.contains("group:"))
    );
}

#[test]
fn deleted_executable_gives_no_path_or_sha256() {
    let fake = FakeProc::new();
    let p = Proc {
        exe: Exe::Link("/usr/bin/python3 (deleted)"),
        ..alice(88)
    };
    fake.add(&p);
    let got = strings(&fake.attestor().attest(&caller(&p)).unwrap());
    assert!(got.contains(&"unix:uid:1000".to_owned()));
    assert!(
        got.iter()
            .all(|s| !s.starts_with("unix:path:") && !s.starts_with("unix:sha256:"))
    );
}

#[test]
fn pid_reuse_between_the_two_start_time_reads_is_detected() {
    let fake = FakeProc::new();
    let p = alice(99);
    fake.add(&p);
    let stat = fake.proc_root().join("99").join("stat");
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    let att = fake.attestor().with_gather_hook(move |pid| {
        // The original process exits and a new one gets the same pid.
        std::fs::write(&stat, FakeProc::stat_line(pid, 6000)).unwrap();
        f.store(true, Ordering::SeqCst);
    });
    let err = att.attest(&caller(&p)).unwrap_err();
    assert!(fired.load(Ordering::SeqCst));
    assert!(
        matches!(err, AttestError::ProcessChanged { pid: 99, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("process changed while being attested"),
        "{msg}"
    );
    assert!(msg.contains("5000") && msg.contains("6000"), "{msg}");
}

#[test]
fn uid_or_gid_differing_from_the_peer_credentials_is_rejected() {
    let fake = FakeProc::new();
    let p = alice(55);
    fake.add(&p);
    for c in [
        Caller {
            uid: 0,
            ..caller(&p)
        },
        Caller {
            gid: 0,
            ..caller(&p)
        },
    ] {
        let err = fake.attestor().attest(&c).unwrap_err();
        assert!(
            matches!(err, AttestError::ProcessChanged { pid: 55, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("process changed while being attested")
        );
        assert!(err.is_caller_fault());
    }
}

#[test]
fn missing_process_and_bad_pids() {
    let fake = FakeProc::new();
    let att = fake.attestor();
    let gone = att
        .attest(&Caller {
            pid: 31337,
            uid: 0,
            gid: 0,
        })
        .unwrap_err();
    assert!(
        matches!(gone, AttestError::ProcessGone { pid: 31337 }),
        "{gone:?}"
    );
    for pid in [0, -1] {
        let e = att
            .attest(&Caller {
                pid,
                uid: 0,
                gid: 0,
            })
            .unwrap_err();
        assert!(matches!(e, AttestError::NoPid), "{e:?}");
    }
}

#[test]
fn malformed_stat_is_an_error_not_a_guess() {
    let fake = FakeProc::new();
    let p = alice(66);
    fake.add(&p);
    std::fs::write(
        fake.proc_root().join("66").join("stat"),
        "66 (prog) S 1 2 3\n",
    )
    .unwrap();
    let err = fake.attestor().attest(&caller(&p)).unwrap_err();
    assert!(matches!(err, AttestError::Malformed { .. }), "{err:?}");
    assert!(!err.is_caller_fault());
}

#[test]
fn executable_hash_is_cached_until_the_file_changes() {
    let fake = FakeProc::new();
    let p = alice(11);
    let exe = fake.add(&p);
    let att = fake.attestor();
    let first = att.attest(&caller(&p)).unwrap();
    let second = att.attest(&caller(&p)).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        att.hashes_computed(),
        1,
        "second attestation must hit the cache"
    );

    // New contents (new size and mtime): hashed again, new selector.
    std::fs::write(&exe, b"a different program, longer than before").unwrap();
    let third = strings(&att.attest(&caller(&p)).unwrap());
    assert_eq!(att.hashes_computed(), 2);
    assert!(third.contains(&format!(
        "unix:sha256:{}",
        sha256_hex(b"a different program, longer than before")
    )));
}

#[test]
fn executables_over_the_cap_get_a_path_but_no_sha256() {
    let fake = FakeProc::new();
    let p = alice(12);
    let exe = fake.add(&p);
    let att = fake.attestor().max_hash_bytes(8);
    let got = strings(&att.attest(&caller(&p)).unwrap());
    assert!(got.contains(&format!("unix:path:{}", exe.display())));
    assert!(got.iter().all(|s| !s.starts_with("unix:sha256:")));
    assert_eq!(att.hashes_computed(), 0);
}

fn my_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("Gid:"))
}

fn name_of(file: &Path, id: u32) -> Option<String> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2)? == &id.to_string().as_str()).then(|| f[0].to_owned())
    })
}

#[test]
fn attests_this_very_process() {
    let (uid, gid) = my_ids();
    let me = Caller {
        pid: std::process::id() as i32,
        uid,
        gid,
    };
    let att = UnixAttestor::new();
    let got = strings(&att.attest(&me).unwrap());
    let exe = std::env::current_exe().unwrap();
    let digest = sha256_hex(&std::fs::read(&exe).unwrap());

    assert_eq!(got[0], format!("unix:uid:{uid}"));
    assert!(got.contains(&format!("unix:gid:{gid}")));
    if let Some(user) = name_of(Path::new("/etc/passwd"), uid) {
        assert!(got.contains(&format!("unix:user:{user}")), "{got:?}");
    }
    if let Some(group) = name_of(Path::new("/etc/group"), gid) {
        assert!(got.contains(&format!("unix:group:{group}")), "{got:?}");
    }
    assert!(
        got.contains(&format!("unix:path:{}", exe.display())),
        "{got:?}"
    );
    assert!(got.contains(&format!("unix:sha256:{digest}")), "{got:?}");

    // Claiming another uid than the kernel's view of the process fails.
    let err = att
        .attest(&Caller {
            uid: uid.wrapping_add(1),
            ..me
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("process changed while being attested")
    );
}

#[test]
fn nonblocking_attestation_defers_to_the_blocking_path_until_the_digest_is_known() {
    use sigil_agent::attestor::WorkloadAttestor as _;
    let fake = FakeProc::new();
    let p = alice(12);
    let exe = fake.add(&p);
    let att = fake.attestor();
    // Not hashed yet: the inline path declines and hashes nothing.
    assert!(att.attest_nonblocking(&caller(&p)).is_none());
    assert_eq!(att.hashes_computed(), 0);
    let full = att.attest(&caller(&p)).unwrap();
    // Now known: the inline path gives exactly the same answer, without hashing again.
    let inline = att.attest_nonblocking(&caller(&p)).unwrap().unwrap();
    assert_eq!(inline, full);
    assert_eq!(att.hashes_computed(), 1);
    // Changed contents: declined again.
    std::fs::write(&exe, b"replaced, with other contents").unwrap();
    assert!(att.attest_nonblocking(&caller(&p)).is_none());
}
