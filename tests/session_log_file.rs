//! The session log file (issue 10, item 6): never through a symlink, never a FIFO or a
//! device (and never a hang on one), created readable by the owner only, and capped in
//! size with one rotated file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::fault::{FaultServer, json};
use dpopkit::core::{EcKey, ErrorKind, HttpClient};

fn dir(name: &str) -> PathBuf {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(std::time::Instant::now());
    let d = std::env::temp_dir().join(format!("dpopkit-logfile-{name}-{}-{r}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `f` on a thread; fails the test if it has not returned after a minute (a FIFO
/// opened for writing without O_NONBLOCK blocks until a reader comes: forever).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what}: still blocked after 60 s"))
}

fn open(path: &Path) -> Result<(), dpopkit::core::Error> {
    HttpClient::new().set_session_log(Some(path))
}

#[cfg(unix)]
#[test]
fn a_symlink_is_refused_and_its_target_untouched() {
    let d = dir("symlink");
    let target = d.join("victim");
    std::fs::write(&target, "precious\n").unwrap();
    let link = d.join("session.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = open(&link).unwrap_err();
    assert_eq!(e.kind, ErrorKind::FileIo, "{e}");
    assert!(e.message.contains("symbolic link"), "the error says why: {}", e.message);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    // A dangling link must not create its target either.
    let dangling = d.join("dangling.log");
    std::os::unix::fs::symlink(d.join("created-through-link"), &dangling).unwrap();
    assert!(open(&dangling).is_err());
    assert!(!d.join("created-through-link").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_hanging() {
    let d = dir("fifo");
    let fifo = d.join("session.log");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let f = fifo.clone();
    let e = bounded("opening a FIFO as the session log", move || open(&f)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::FileIo, "{e}");
    assert!(e.message.contains("regular file") || e.message.contains("FIFO"), "{}", e.message);
    // Also with a reader present (open succeeds at the OS level, fstat refuses it).
    let f = fifo.clone();
    let reader = std::thread::spawn(move || {
        let _ = std::fs::File::open(&f); // blocks until a writer opens, or forever; harmless
    });
    std::thread::sleep(Duration::from_millis(100));
    let f = fifo.clone();
    let e = bounded("opening a FIFO that has a reader", move || open(&f)).unwrap_err();
    assert!(e.message.contains("regular file"), "{}", e.message);
    drop(reader);
    // A directory and a device are not regular files either.
    assert!(open(&d).is_err());
    assert!(bounded("/dev/null", || open(Path::new("/dev/null"))).is_err());
    let _ = std::fs::remove_dir_all(&d);
}

#[cfg(unix)]
#[test]
fn a_new_log_is_private_and_an_existing_one_is_appended() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("mode");
    let path = d.join("session.log");
    let http = HttpClient::new();
    http.set_session_log(Some(&path)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "created readable by the owner only, whatever the umask");
    drop(http);
    std::fs::write(&path, "earlier\n").unwrap();
    let http = HttpClient::new();
    http.set_session_log(Some(&path)).unwrap();
    let srv = FaultServer::start(|_| json(200, "[]"));
    http.quick_get_str(&srv.url("/x")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("earlier\n") && text.contains("GET /x HTTP/1.1"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_log_rotates_at_its_size_cap() {
    let d = dir("rotate");
    let path = d.join("session.log");
    let old = d.join("session.log.1");
    let limit = 8 * 1024;
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
    http.set_session_log_with_limit(Some(&path), limit).unwrap();
    let srv = FaultServer::start(|_| json(200, &format!("[\"{}\"]", "x".repeat(1500))));
    for i in 0..30 {
        http.quick_get_str(&srv.url(&format!("/r{i}"))).unwrap();
        let cur = std::fs::metadata(&path).unwrap().len();
        assert!(cur <= limit, "request {i}: the log is {cur} bytes, over its cap of {limit}");
    }
    let rotated = std::fs::read_to_string(&old).expect("the full log was moved to session.log.1");
    assert!(rotated.len() as u64 <= limit && rotated.contains("GET /r"), "{} bytes", rotated.len());
    let current = std::fs::read_to_string(&path).unwrap();
    assert!(current.contains("GET /r29 HTTP/1.1"), "the newest exchange is in the current file");
    assert!(!d.join("session.log.2").exists(), "one rotated file only");
    // The default cap is the documented 10 MiB.
    assert_eq!(dpopkit::core::session_log::DEFAULT_MAX_LOG_SIZE, 10 * 1024 * 1024);
    let _ = std::fs::remove_dir_all(&d);
}

/// Issue 18, item 8: a `<log>.1` that cannot or must not be replaced — a directory, a
/// symbolic link, another user's file in a sticky directory (root could replace it; the
/// code checks the owner itself) — is left alone, and the log still stays within its cap:
/// it starts again with a note instead of growing without bound.
#[cfg(unix)]
#[test]
fn a_failed_rotation_keeps_the_log_within_its_cap() {
    use dpopkit::core::session_log::SessionLog;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let limit = 4096u64;
    let fill = |log: &SessionLog, path: &Path| {
        for i in 0..300 {
            log.note(&format!("entry {i:04} {}", "y".repeat(100)));
            let cur = std::fs::metadata(path).unwrap().len();
            assert!(cur <= limit, "entry {i}: the log is {cur} bytes, over its cap of {limit}");
        }
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("entry 0299"), "the newest entry is logged");
        assert!(text.contains("session.log.1") && text.contains("emptied instead of rotated"), "a note says why the log started again:\n{text}");
    };
    // A directory in the place of the rotated file.
    let d = dir("rotate-dir");
    let path = d.join("session.log");
    std::fs::create_dir(d.join("session.log.1")).unwrap();
    std::fs::write(d.join("session.log.1").join("inside"), "kept\n").unwrap();
    fill(&SessionLog::open_with_limit(&path, limit).unwrap(), &path);
    assert_eq!(std::fs::read_to_string(d.join("session.log.1").join("inside")).unwrap(), "kept\n");
    let _ = std::fs::remove_dir_all(&d);

    // A symbolic link: not replaced, not followed, its target untouched.
    let d = dir("rotate-link");
    let path = d.join("session.log");
    let victim = d.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("session.log.1")).unwrap();
    fill(&SessionLog::open_with_limit(&path, limit).unwrap(), &path);
    assert!(std::fs::symlink_metadata(d.join("session.log.1")).unwrap().file_type().is_symlink(), "the link is refused, not replaced");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let _ = std::fs::remove_dir_all(&d);

    // Another user's file in a sticky directory (/tmp-like, mode 1777): needs root to set
    // up, and root could rename over it, so only the owner check refuses it.
    let d = dir("rotate-sticky");
    if std::fs::metadata(&d).unwrap().uid() == 0 {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let path = d.join("session.log");
        let theirs = d.join("session.log.1");
        std::fs::write(&theirs, "theirs\n").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        fill(&SessionLog::open_with_limit(&path, limit).unwrap(), &path);
        let meta = std::fs::symlink_metadata(&theirs).unwrap();
        assert_eq!(meta.uid(), 65534, "another user's file is not replaced");
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs\n");
    }
    let _ = std::fs::remove_dir_all(&d);
}
