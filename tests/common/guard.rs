//! Hang and memory guards for tests of hostile local files (a FIFO that blocks a reader
//! forever, `/dev/zero` that a careless reader reads until memory runs out): the code under
//! test runs in a child process with its address space capped, and the child is killed
//! when it overruns its time. A regression then fails the test in seconds instead of
//! hanging it or taking the machine's memory.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The address space a guarded child may use: far more than any refusal needs, far less
/// than the machine has.
pub const MEMORY_LIMIT: u64 = 768 << 20;

/// Caps the address space of the process `cmd` starts at [`MEMORY_LIMIT`].
pub fn limit_memory(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: MEMORY_LIMIT as libc::rlim_t, rlim_max: MEMORY_LIMIT as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Runs `cmd` with its memory capped (stdin as the caller set it); Err when it has not
/// ended within `limit` (it is killed then), with what it printed so far.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    limit_memory(cmd).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "still running after {limit:?} (killed): it blocks\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CHILD_VAR: &str = "DPOPKIT_GUARDED_TEST";

/// Runs `body` in a child process — this test binary again, running only the test `name`
/// (the test function's name) of the module `module` (`module_path!()`) — with its memory
/// capped and at most `limit` of time. Panics when the child fails, crashes (an allocation
/// past the cap aborts it) or overruns.
pub fn in_child(module: &str, name: &str, limit: Duration, body: impl FnOnce()) {
    let path = super::test_path(module, name);
    let name = path.as_str();
    if std::env::var(CHILD_VAR).as_deref() == Ok(name) {
        body();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]).env(CHILD_VAR, name).stdin(Stdio::null());
    let started = Instant::now();
    let out = output_within(&mut cmd, limit).unwrap_or_else(|e| panic!("the test '{name}' in a child process: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the test '{name}' failed in its child process ({:?} after {:?}; a crash is the memory cap of {} MiB):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        started.elapsed(),
        MEMORY_LIMIT >> 20,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A FIFO (named pipe) at `path`: a reader that opens it without O_NONBLOCK blocks until a
/// writer comes, which never happens here.
pub fn mkfifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let out = Command::new("mkfifo").arg(path).output().expect("mkfifo");
    assert!(out.status.success(), "mkfifo {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// A sparse regular file of `len` bytes (no disk used).
pub fn sparse_file(path: &std::path::Path, len: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
}

/// A new empty directory for one test (of this process).
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dpopkit-guard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Paths that must never be read as a file of a kind whose bound is `max` bytes, made in
/// `dir`, each with a piece of the text its refusal must show: `/dev/zero` (endless), a
/// FIFO (blocks an opener), a directory, and a sparse regular file one byte over `max`.
pub fn hostile_paths(dir: &std::path::Path, max: u64) -> Vec<(std::path::PathBuf, String)> {
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let sub = dir.join("a-directory");
    std::fs::create_dir_all(&sub).unwrap();
    let big = dir.join("too-large");
    sparse_file(&big, max + 1);
    vec![
        (fifo, "is not a regular file (a FIFO)".into()),
        ("/dev/zero".into(), "is not a regular file (a character device)".into()),
        (sub, "is not a regular file (a directory)".into()),
        (big, format!("larger than the {max} bytes")),
    ]
}
