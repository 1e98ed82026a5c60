//! Who may drive a process-pool worker: only the program that started it on purpose.
//!
//! Each attack here is what an attacker can do with nothing but the program file: learn the marker
//! from a real worker's environment (`/proc/<pid>/environ`), the code offsets from the file's symbol
//! table, start the program with that marker and a socket of its own as stdin, read the `Hello` frame
//! for the trampoline's offset, and ask for a function of its choice ([`cf_trust_pwned`], which leaves
//! a file behind). The worker must refuse before it reveals or calls anything, and say why.
//!
//! The attack code speaks the wire format by hand (it is what an attacker would write), and works
//! against a worker that does not check its parent: there, the function gets called.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concurrent_futures::{ProcessPoolExecutor, Queued};

/// What the attacker wants called: leaves the file named by `CF_TRUST_PWNED` behind.
#[no_mangle]
pub fn cf_trust_pwned(x: u64) -> u64 {
    if let Some(path) = std::env::var_os("CF_TRUST_PWNED") {
        let _ = std::fs::write(path, b"pwned");
    }
    x + 1
}

/// A worker's own environment, as the kernel keeps it.
fn worker_environ((): ()) -> Vec<u8> {
    std::fs::read("/proc/self/environ").unwrap_or_default()
}

/// The worker marker of this program, `(name, value)`, read from a real worker's environment.
fn marker_of_a_real_worker() -> (String, String) {
    std::hint::black_box(cf_trust_pwned as fn(u64) -> u64);
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let environ = pool
        .submit(worker_environ, ())
        .unwrap()
        .result(Some(Duration::from_secs(60)))
        .unwrap();
    pool.shutdown(Queued::Run);
    let environ = String::from_utf8_lossy(&environ).into_owned();
    let var = environ
        .split('\0')
        .find(|v| v.starts_with("CONCURRENT_FUTURES_PROCESS_WORKER"))
        .expect("a worker's environment holds its marker");
    let (name, value) = var.split_once('=').unwrap();
    (name.to_owned(), value.to_owned())
}

/// The marker value with its parent pid replaced by `pid` (the format is `protocol:pid:cap`).
fn forge(value: &str, pid: &str) -> String {
    let mut parts: Vec<&str> = value.split(':').collect();
    parts[1] = pid;
    parts.join(":")
}

/// The offset of [`cf_trust_pwned`] from the crate's base symbol, from the ELF symbol table (what
/// `nm` shows).
fn pwned_offset(exe: &Path) -> u64 {
    let elf = std::fs::read(exe).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    let section = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum)
        .map(section)
        .find(|&s| u32_at(s + 4) == 2)
        .expect("the test binary has a symbol table");
    let strtab = section(u32_at(symtab + 0x28));
    let (strings, syms) = (
        u64_at(strtab + 0x18) as usize,
        u64_at(symtab + 0x18) as usize,
    );
    let count = u64_at(symtab + 0x20) as usize / 24;
    let name = |sym: usize| {
        let start = strings + u32_at(sym);
        let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
        &elf[start..end]
    };
    let (mut anchor, mut pwned) = (None, None);
    for sym in (0..count).map(|i| syms + i * 24) {
        let n = name(sym);
        if n.starts_with(b"_ZN18concurrent_futures12process_pool4code6anchor") {
            anchor = Some(u64_at(sym + 8));
        } else if n == b"cf_trust_pwned" {
            pwned = Some(u64_at(sym + 8));
        }
    }
    pwned
        .unwrap()
        .wrapping_sub(anchor.expect("the base symbol"))
}

/// Reads one frame (`u32` length, `u32` tail length, then the body) within the deadline; `None` at
/// end-of-file.
fn read_frame(sock: &mut UnixStream) -> Option<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut header = [0; 8];
    sock.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes(header[..4].try_into().unwrap());
    let mut body = vec![0; len as usize];
    sock.read_exact(&mut body).ok()?;
    Some(body)
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0;
    for shift in (0..).step_by(7) {
        let (&byte, rest) = b.split_first().unwrap();
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    v
}

/// The trampoline offset (`run_one::<u64, u64>`, the first layout entry) from a `Hello` body.
fn trampoline_of_hello(body: &[u8]) -> u64 {
    let mut b = &body[1..];
    varint(&mut b); // magic
    varint(&mut b); // pid
    varint(&mut b); // protocol
    let n = varint(&mut b) as usize; // crate version
    b = &b[n..];
    if b[0] == 1 {
        b = &b[1..];
        for _ in 0..5 {
            varint(&mut b); // executable identity
        }
    } else {
        b = &b[1..];
    }
    if b[0] == 1 {
        b = &b[1..];
        let n = varint(&mut b) as usize; // image
        b = &b[n..];
    } else {
        b = &b[1..];
    }
    varint(&mut b)
}

/// How an attack ended.
#[derive(Debug)]
enum Outcome {
    /// The worker called the function: the reply frame.
    Served(Vec<u8>),
    /// The worker ended before it served; its first frame, if any, and its stderr.
    Refused {
        first: Option<Vec<u8>>,
        stderr: String,
    },
}

/// Waits for `child` to exit within a minute (a hang is a failure) and returns its stderr.
fn finish(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Talks to a worker started with `sock`'s peer as stdin: the attack proper.
fn drive(mut sock: UnixStream, child: Child, func_offset: u64) -> Outcome {
    let first = read_frame(&mut sock);
    let Some(hello) = first.as_ref().filter(|b| b.first() == Some(&b'H')) else {
        return Outcome::Refused {
            first,
            stderr: finish(child),
        };
    };
    let mut run = vec![b'R'];
    run.extend(trampoline_of_hello(hello).to_le_bytes());
    run.extend(func_offset.to_le_bytes());
    run.push(41); // the argument, a postcard u64
    let mut frame = (run.len() as u32).to_le_bytes().to_vec();
    frame.extend(0u32.to_le_bytes()); // no tail
    frame.extend(run);
    sock.write_all(&frame).unwrap();
    let reply = read_frame(&mut sock);
    drop(sock);
    let stderr = finish(child);
    match reply {
        Some(reply) => Outcome::Served(reply),
        None => Outcome::Refused {
            first: Some(hello.clone()),
            stderr,
        },
    }
}

/// Runs `start` (which executes a copy of the program this process just wrote), again while it fails
/// with `ETXTBSY`: a child that another test's thread forks meanwhile briefly holds the copy's write
/// descriptor, until its own `exec` closes it (rust-lang/rust#114554).
fn unless_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                assert!(Instant::now() < deadline, "the copy stays busy: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r.unwrap(),
        }
    }
}

/// A fresh directory for one test's files, readable and enterable by everyone.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-trust-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Asserts the attack was refused before anything was revealed or called, with `why` on stderr.
fn assert_refused(outcome: Outcome, pwned: &Path, why: &str) {
    assert!(!pwned.exists(), "the attacker's function was called");
    match outcome {
        Outcome::Served(reply) => panic!("the worker served a stranger: {reply:?}"),
        Outcome::Refused { first, stderr } => {
            assert!(
                stderr.contains("refusing to run as a process-pool worker") && stderr.contains(why),
                "stderr does not say why ({why}): {stderr}"
            );
            if let Some(first) = first {
                assert_eq!(first[0], b'!', "the first frame is a refusal, not a Hello");
            }
        }
    }
}

// ---- 1. A launcher that is not the worker's parent ----------------------------------------------

/// The test process makes the socket, but a shell starts the program (its parent) with a marker
/// naming the shell: the marker's pid is right, the channel's maker is not.
#[test]
fn a_launcher_that_is_not_the_parent_gets_nothing_called() {
    let (name, value) = marker_of_a_real_worker();
    let dir = scratch("not-parent");
    let pwned = dir.join("pwned");
    let exe = std::env::current_exe().unwrap();
    let (sock, theirs) = UnixStream::pair().unwrap();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"p=${2%%:*}; r=${2#*:}; export "$1=$p:$$:${r#*:}"; "$0"; exit 0"#)
        .arg(&exe)
        .arg(&name)
        .arg(forge(&value, "0"))
        .env("CF_TRUST_PWNED", &pwned)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outcome = drive(sock, child, pwned_offset(&exe));
    assert_refused(outcome, &pwned, "the channel was made by pid");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- 2. A parent that runs another executable -----------------------------------------------------

/// The launcher is the worker's real parent and names itself in the marker, but it runs a copy of the
/// program (another file): the worker checks what its parent runs.
#[test]
fn a_parent_running_another_executable_gets_nothing_called() {
    let (name, value) = marker_of_a_real_worker();
    let dir = scratch("other-exe");
    let pwned = dir.join("pwned");
    let exe = std::env::current_exe().unwrap();
    let launcher = dir.join("launcher");
    std::fs::copy(&exe, &launcher).unwrap();
    let mut cmd = Command::new(&launcher);
    cmd.args([
        "--exact",
        "launcher_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CF_TRUST_LAUNCH", "1")
    .env("CF_TRUST_TARGET", &exe)
    .env("CF_TRUST_MARKER", format!("{name}={value}"))
    .env("CF_TRUST_PWNED", &pwned);
    let out = unless_busy(|| cmd.output());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| Some(l.split_once("CF_TRUST_OUTCOME=")?.1))
        .unwrap_or_else(|| panic!("no report from the launcher: {stdout}"));
    assert!(!pwned.exists(), "the attacker's function was called");
    assert!(report.starts_with("refused"), "{report}");
    assert!(
        report.contains("refusing to run as a process-pool worker"),
        "{report}"
    );
    assert!(report.contains("runs a different executable"), "{report}");
    assert!(report.contains("first frame: Some(33)") || report.contains("first frame: None"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The launcher's side of the test above; does nothing unless started as that launcher.
#[test]
fn launcher_entry() {
    if std::env::var_os("CF_TRUST_LAUNCH").is_none() {
        return;
    }
    let target = PathBuf::from(std::env::var_os("CF_TRUST_TARGET").unwrap());
    let marker = std::env::var("CF_TRUST_MARKER").unwrap();
    let (name, value) = marker.split_once('=').unwrap();
    let (sock, theirs) = UnixStream::pair().unwrap();
    let child = Command::new(&target)
        .env_remove("CF_TRUST_LAUNCH")
        .env(name, forge(value, &std::process::id().to_string()))
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let report = match drive(sock, child, pwned_offset(&target)) {
        Outcome::Served(reply) => format!("served {reply:?}"),
        Outcome::Refused { first, stderr } => format!(
            "refused; first frame: {:?}; stderr: {}",
            first.and_then(|f| f.first().copied()),
            stderr.replace('\n', " | ")
        ),
    };
    println!("CF_TRUST_OUTCOME={report}");
}

// ---- 3. A secure-exec (setuid) program ------------------------------------------------------------

/// A setuid-root copy of the program, started by an unprivileged user with a marker and socket of
/// their own, as its real parent: were it to serve, the user would run code as root.
#[test]
fn a_setuid_program_refuses_to_be_a_worker() {
    let (uid, gid) = match unprivileged_user() {
        Ok(ids) => ids,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let (name, value) = marker_of_a_real_worker();
    let dir = scratch("setuid");
    let pwned = dir.join("pwned");
    let exe = std::env::current_exe().unwrap();
    let copy = dir.join("setuid-copy");
    std::fs::copy(&exe, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();

    // Does the kernel honour the setuid bit here (not a `nosuid` mount, no `no_new_privs`)?
    let mut cmd = Command::new(&copy);
    cmd.args(["--exact", "euid_probe", "--nocapture", "--test-threads=1"])
        .env("CF_TRUST_PROBE", "1")
        .uid(uid)
        .gid(gid);
    let probe = unless_busy(|| cmd.output());
    if !String::from_utf8_lossy(&probe.stdout).contains("CF_TRUST_EUID=0") {
        println!(
            "skipped: the setuid bit has no effect in {} (nosuid mount?): {}",
            dir.display(),
            String::from_utf8_lossy(&probe.stdout)
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let (sock, theirs) = UnixStream::pair().unwrap();
    let mut cmd = Command::new(&copy);
    cmd.env(&name, forge(&value, &std::process::id().to_string()))
        .env("CF_TRUST_PWNED", &pwned)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .uid(uid)
        .gid(gid);
    let child = unless_busy(|| cmd.spawn());
    let outcome = drive(sock, child, pwned_offset(&copy));
    assert_refused(outcome, &pwned, "secure-exec");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prints the effective uid; the setuid test's probe.
#[test]
fn euid_probe() {
    if std::env::var_os("CF_TRUST_PROBE").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let euid = uids.split_whitespace().nth(2).unwrap();
        println!("CF_TRUST_EUID={euid}");
    }
}

/// The ids of `nobody` if this test runs as root (it needs root to make a setuid-root file).
fn unprivileged_user() -> Result<(u32, u32), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    if uids.split_whitespace().nth(2) != Some("0") {
        return Err("not running as root: cannot make a setuid-root copy".into());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"nobody") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| "no `nobody` user in /etc/passwd".into())
}

// ---- 4. What a worker gets although `main` never runs ---------------------------------------------

/// A task's view of its standard descriptors: whether 1 and 2 are open, and the descriptor a newly
/// opened file gets.
fn std_fds((): ()) -> (bool, bool, i32) {
    use std::os::fd::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: F_GETFD only inspects the descriptor table.
    let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    let file = std::fs::File::open("/proc/self/status").unwrap();
    (open(1), open(2), file.as_raw_fd())
}

/// A pool started while the program's stdout is closed: its workers get `/dev/null` there (as std
/// gives a `main`), so a file a task opens does not become its stdout.
#[test]
fn workers_of_a_program_with_stdout_closed_get_dev_null() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "closed_stdout_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CF_TRUST_CLOSED_STDOUT", "1")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CF_TRUST_FDS=(true, true, "),
        "the worker's fds: {stderr}"
    );
    assert!(!stderr.contains("CF_TRUST_FDS=(true, true, 1)"), "{stderr}");
}

/// The other side of the test above: closes stdout, then runs a task.
#[test]
fn closed_stdout_entry() {
    if std::env::var_os("CF_TRUST_CLOSED_STDOUT").is_none() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: closing fd 1 leaves std's stdout writing to a closed descriptor, which it tolerates.
    unsafe {
        libc::close(1);
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let fds = pool
        .submit(std_fds, ())
        .unwrap()
        .result(Some(Duration::from_secs(60)));
    pool.shutdown(Queued::Run);
    eprintln!("CF_TRUST_FDS={:?}", fds.unwrap());
}

/// A parent that made itself non-dumpable hides `/proc/<pid>/exe` from its unprivileged workers, so
/// they cannot verify it: the pool breaks with a start error that says so, instead of serving an
/// unverified parent or hanging.
#[test]
fn a_non_dumpable_parent_gets_a_clear_start_error() {
    let dir = scratch("nondumpable");
    let copy = dir.join("program");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let mut cmd = Command::new(&copy);
    cmd.args([
        "--exact",
        "non_dumpable_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CF_TRUST_NON_DUMPABLE", "1");
    // Root may trace anything, so it is verified even so: run as `nobody` then.
    if let Ok((uid, gid)) = unprivileged_user() {
        cmd.uid(uid).gid(gid);
    }
    let out = unless_busy(|| cmd.output());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = stderr
        .lines()
        .find_map(|l| Some(l.split_once("CF_TRUST_ND=")?.1))
        .unwrap_or_else(|| panic!("no report: {stderr}"));
    if report.starts_with("served") {
        println!("skipped: this user may trace a non-dumpable process (CAP_SYS_PTRACE)");
    } else {
        assert!(report.contains("refused to serve this process"), "{report}");
        assert!(report.contains("non-dumpable"), "{report}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other side of the test above: a non-dumpable program that uses a pool.
#[test]
fn non_dumpable_entry() {
    if std::env::var_os("CF_TRUST_NON_DUMPABLE").is_none() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let r = pool
        .submit(std_fds, ())
        .unwrap()
        .result(Some(Duration::from_secs(60)));
    pool.shutdown(Queued::Run);
    match r {
        Ok(_) => eprintln!("CF_TRUST_ND=served"),
        Err(e) => eprintln!("CF_TRUST_ND={e}"),
    }
}
