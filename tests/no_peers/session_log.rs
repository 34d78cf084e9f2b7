//! The session log file (issue 10, item 6): never through a symlink, never a FIFO or a
//! device (and never a hang on one), never a hard link or another user's file, created
//! readable by the owner only, and capped in size with one rotated file; hostile bodies are
//! masked in linear time, and a secret that straddles the 64 KiB cut leaves no piece.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::fault::Action;
use crate::common::fault::{FaultServer, json};
use crate::common::hostile::{client, long_token, piece_of, scratch, token_ok};
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
        assert!(
            text.contains("session.log.1") && text.contains("emptied instead of rotated"),
            "a note says why the log started again:\n{text}"
        );
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

/// Bodies made to make masking quadratic (issue 18, items 2 and 15): runs of `password=`
/// (each value, scanned on its own, reaches the end of the text), `password=x&` runs,
/// thousands of distinct secret-named JSON members, and nested overlapping values. With
/// the log on and a 2 s request timeout, each call returns its 200 well before the
/// timeout (the work is linear: a few milliseconds); the values are masked in the log.
#[test]
fn hostile_bodies_are_logged_in_linear_time() {
    let _heavy = common::cpu_heavy(); // timed: not while a fuzz test loads the CPU
    let members: Vec<String> = (0..30_000).map(|i| format!(r#"{{"access_token":"tok-{i:06}-abcdefgh"}}"#)).collect();
    let bodies: Vec<(&str, String)> = vec![
        ("576 KB of password=", "password=".repeat(64_000)),
        ("password=x& runs", "password=x&".repeat(50_000)),
        ("distinct secret-named members", format!(r#"{{"m":[{}]}}"#, members.join(","))),
        ("overlapping values", "access_token=password=client_secret=\"d\":".repeat(15_000)),
    ];
    for (name, body) in bodies {
        let d = dir("hostile");
        let log = d.join("session.log");
        let b = body.clone();
        let srv = FaultServer::start(move |_| {
            common::fault::Action::Respond(200, vec![("Content-Type".into(), "text/plain".into())], b.clone().into_bytes())
        });
        let http = HttpClient::new();
        http.set_session_log(Some(&log)).unwrap();
        let mut s = http.settings();
        s.request_timeout = Duration::from_secs(2);
        http.set_settings(s).unwrap();
        let url = srv.url("/api");
        let started = std::time::Instant::now();
        let got = bounded(name, move || http.quick_get_bytes(&url).map(|r| r.body.len()));
        let took = started.elapsed();
        assert_eq!(got.as_ref().ok(), Some(&body.len()), "{name}: {got:?}");
        assert!(took < Duration::from_secs(2), "{name}: the call took {took:?}, past its 2 s request timeout");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("HTTP/1.1 200") && text.contains("bytes in all"), "{name}: the response is logged, cut");
        assert!(!text.contains("tok-0") && !text.contains("=x&"), "{name}: a secret-named value is in the log");
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// The session log does not give away the client secret's length (issue 25, item 6): the
/// token request of a 24-character secret and of a 6-character one are logged alike — the
/// body was followed by its real size ("(97 bytes in all)" against 79), now by none, since
/// the masked body is shown whole.
#[test]
fn the_log_does_not_tell_the_secrets_length() {
    let d = dir("secret-length");
    let srv = FaultServer::start(|_| json(400, r#"{"error":"invalid_client"}"#));
    let mut logs = Vec::new();
    for secret in ["s3cr3t", "a-much-longer-secret-0123"] {
        let log = d.join(format!("{}.log", secret.len()));
        let http = HttpClient::new();
        http.set_dpop_key(Arc::new(EcKey::generate().unwrap()));
        http.set_session_log(Some(&log)).unwrap();
        let auth =
            format!(r#"{{"client_id":"m2m.dpop","client_secret":"{secret}","token_endpoint":"{}","scope":"api"}}"#, srv.url("/token"));
        http.set_auth_token(&auth).unwrap();
        assert!(http.quick_get_str(&srv.url("/api")).is_err());
        let sent = srv.requests().last().unwrap().body.len();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("client_secret=****"), "{text}");
        // As the log writes a size ("(97 bytes in all)"); the bare number may be in a port or a date.
        assert!(!text.contains(&format!("({sent} bytes")), "the log names the real size {sent} of a body that held the secret:\n{text}");
        let body_lines: Vec<String> = text.lines().filter(|l| l.contains("client_secret=")).map(String::from).collect();
        logs.push(body_lines);
    }
    assert_eq!(logs[0], logs[1], "the logged token requests differ with the secret's length");
    let _ = std::fs::remove_dir_all(&d);
}

/// The session log cuts bodies at 64 KiB. A server that echoes the access token (or the
/// proof) so that it straddles the cut must not get the part before the cut written down:
/// the whole of it is masked before the body is cut.
#[test]
fn a_secret_echoed_across_the_64_kib_log_cut_leaves_no_piece_in_the_log() {
    let token = long_token();
    let t = token.clone();
    let srv = FaultServer::start(move |r| {
        if r.path.starts_with("/token") {
            return token_ok(&t);
        }
        // The token starts 300 bytes before the cut, the proof 100 bytes before a second
        // run of the same (so a plain body and a JSON-looking one are both tried).
        let proof = r.header("dpop").unwrap_or_default().to_string();
        let mut body = "x".repeat(64 * 1024 - 300);
        body.push_str(&t);
        body.push_str(&"y".repeat(64 * 1024));
        body.push_str(&proof);
        let status = if r.path.ends_with("/500") { 500 } else { 200 };
        Action::Respond(status, vec![("Content-Type".into(), "text/plain".into())], body.into_bytes())
    });
    for path in ["/api/200", "/api/500"] {
        let log = scratch("cut.log");
        let http = client(&srv.url("/token"), "secret-of-the-client");
        http.set_session_log(Some(&log)).unwrap();
        let _ = http.quick_get_str(&srv.url(path));
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(text.contains("bytes in all"), "the body was cut: {}", text.len());
        assert!(piece_of(&token, &text, 24).is_none(), "{path}: the log holds a piece of the token: {:?}", piece_of(&token, &text, 24));
    }
}

/// A shared host: in a directory others can write to, the log path can already be a hard
/// link to another file (the log would be appended to that file: server-chosen text in
/// someone's ~/.profile), or a file that another user created (mode 0666: they would read
/// every logged response). Both are refused, and nothing is written to them.
#[cfg(unix)]
#[test]
fn a_log_path_that_is_a_hard_link_or_another_users_file_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let d = scratch("shared");
    std::fs::create_dir_all(&d).unwrap();
    let victim = d.join("profile");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = d.join("session.log");
    std::fs::hard_link(&victim, &link).unwrap();
    let e = HttpClient::new().set_session_log(Some(&link)).unwrap_err();
    assert!(e.message.contains("hard link"), "{}", e.message);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // Another user's file: only a test run as root can make one (chown).
    let theirs = d.join("theirs.log");
    std::fs::write(&theirs, "").unwrap();
    let me = std::fs::metadata(&theirs).unwrap().uid();
    let other = if me == 0 { 65534 } else { 0 };
    if std::os::unix::fs::chown(&theirs, Some(other), None).is_ok() {
        let e = HttpClient::new().set_session_log(Some(&theirs)).unwrap_err();
        assert!(e.message.contains("another user"), "{}", e.message);
    }
    // A file of our own is still appended to.
    let mine = d.join("mine.log");
    std::fs::write(&mine, "kept\n").unwrap();
    HttpClient::new().set_session_log(Some(&mine)).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}
