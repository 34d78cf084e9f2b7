//! The token cache shared by processes (AuthToken "token_cache_dir", CLI --token-cache):
//! fleets of processes from C and from the CLI against the real peers, a lock holder that
//! is killed or stuck, corrupt, foreign and badly protected files, two keys, invalid_token,
//! and a disk that cannot be written. Every fleet test also runs the same fleet without the
//! cache and checks that it then asks for one token per process, so the tests can fail.
#![cfg(unix)]

use crate::common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::fault::{Action, FaultServer, json};
use crate::common::{Peers, fixture};

const PROCESSES: usize = 8;
const CALLS: usize = 5;

/// A private directory (mode 0700) for one test.
fn private_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dpopkit-fleet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The CLI with the sample client's options; `cache` adds --token-cache.
fn cli(token_endpoint: &str, url: &str, key: &Path, cache: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpopkit"));
    cmd.env_remove("DPOPKIT_KEY_PASSWORD").env_remove("DPOPKIT_TOKEN_CACHE").env("DPOPKIT_CLIENT_SECRET", "secret");
    cmd.args(["get", url, "--client-id", "m2m.dpop", "--scope", "api", "--token-endpoint", token_endpoint]).arg("--key").arg(key);
    if let Some(dir) = cache {
        cmd.arg("--token-cache").arg(dir);
    }
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    out
}

/// The token file of the only cache key used in `dir` (its name has no extension).
fn token_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_none()).collect();
    assert_eq!(files.len(), 1, "one token file expected in {}: {files:?}", dir.display());
    files[0].clone()
}

fn record(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("a JSON record")
}

fn reset_stats(peers: &Peers) {
    for base in [&peers.issuer, &peers.rs] {
        ureq::post(&format!("{base}/_stats/reset")).send("").unwrap();
    }
}

/// Starts `PROCESSES` C workers, releases them together, and waits for all of them.
fn run_c_fleet(exe: &Path, peers: &Peers, cache: &str) {
    let key = fixture("ec_sec1.pem");
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(exe)
                .arg(&key)
                .args([&peers.token_endpoint, &peers.api, cache, &CALLS.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).matches("status: 200").count(), CALLS, "{}", show(&out));
    }
}

#[test]
fn c_fleet_of_8_processes_asks_for_one_token() {
    let exe = common::compile_c("fleet", "exe");
    let peers = Peers::start(&["--rs-nonce"]);
    let dir = private_dir("c");
    run_c_fleet(&exe, &peers, dir.to_str().unwrap());
    assert_eq!(peers.token_requests(), 1, "8 processes x 5 calls through one cache directory: one token request");
    assert_eq!(peers.rs_stats()["ok"], (PROCESSES * CALLS) as u64);
    let file = token_file(&dir);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(record(&file)["version"], 1);

    // The same fleet without the member: one token per process.
    reset_stats(&peers);
    run_c_fleet(&exe, &peers, "-");
    assert_eq!(peers.token_requests(), PROCESSES as u64, "without token_cache_dir every process asks");
    let _ = std::fs::remove_file(&exe);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PROCESSES` workers, each running the CLI `runs` times in a row (as a shell script
/// would), all sharing `cache` (through --token-cache, or the environment variable for
/// odd-numbered workers).
fn run_cli_fleet(peers: &Peers, cache: Option<&Path>, runs: usize) {
    let key = fixture("ec_pkcs8.pem");
    std::thread::scope(|s| {
        for worker in 0..PROCESSES {
            let key = key.clone();
            s.spawn(move || {
                for _ in 0..runs {
                    let mut cmd = cli(&peers.token_endpoint, &peers.api, &key, None);
                    match cache {
                        Some(dir) if worker % 2 == 1 => cmd.env("DPOPKIT_TOKEN_CACHE", dir),
                        Some(dir) => cmd.arg("--token-cache").arg(dir),
                        None => &mut cmd,
                    };
                    let out = run_ok(&mut cmd);
                    assert!(String::from_utf8_lossy(&out.stdout).contains("m2m.dpop"), "{}", show(&out));
                }
            });
        }
    });
}

#[test]
fn cli_fleet_of_8_workers_asks_for_one_token() {
    let peers = Peers::start(&["--rs-nonce"]);
    let parent = private_dir("cli");
    // Missing: the CLI creates it, private.
    let dir = parent.join("tokens");
    run_cli_fleet(&peers, Some(&dir), CALLS);
    assert_eq!(peers.token_requests(), 1, "40 CLI runs from 8 workers through one cache directory: one token request");
    assert_eq!(peers.rs_stats()["ok"], (PROCESSES * CALLS) as u64);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700, "created for this user only");

    reset_stats(&peers);
    run_cli_fleet(&peers, None, 2);
    assert_eq!(peers.token_requests(), (PROCESSES * 2) as u64, "without --token-cache every run asks");
    let _ = std::fs::remove_dir_all(&parent);
}

/// A fake AS and RS on one fault server: the first token request hangs (its process holds
/// the lock meanwhile), the next ones get tokens "fleet-token-N"; /api answers 200.
fn hanging_first_token_server() -> (FaultServer, Arc<AtomicU32>) {
    let tokens = Arc::new(AtomicU32::new(0));
    let t = tokens.clone();
    let server = FaultServer::start(move |r| {
        if r.path == "/token" {
            let n = t.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                return Action::Hang;
            }
            return json(200, &format!(r#"{{"access_token":"fleet-token-{n}","token_type":"DPoP","expires_in":300}}"#));
        }
        json(200, r#"{"ok":true}"#)
    });
    (server, tokens)
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_lock_holder_releases_the_lock() {
    let (server, tokens) = hanging_first_token_server();
    let dir = private_dir("killed");
    let key = fixture("ec_sec1.pem");
    let (te, api) = (server.url("/token"), server.url("/api"));
    let mut holder =
        cli(&te, &api, &key, Some(&dir)).args(["--timeout-ms", "60000"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the first token request", Duration::from_secs(20), || tokens.load(Ordering::SeqCst) == 1);
    // The holder is inside its token request, with the lock.
    let log = dir.join("waiter.log");
    let mut waiter = cli(&te, &api, &key, Some(&dir))
        .args(["--timeout-ms", "60000", "--session-log", log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(waiter.try_wait().unwrap().is_none(), "the waiter waits for the lock holder's token");
    assert_eq!(tokens.load(Ordering::SeqCst), 1, "and does not ask meanwhile");
    holder.kill().unwrap(); // SIGKILL: no unlock, no cleanup; the kernel drops the lock
    let killed = Instant::now();
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    // Long before the 30 s (half the deadline) after which it would have asked anyway.
    assert!(killed.elapsed() < Duration::from_secs(15), "the waiter got the lock when the holder died");
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    assert_eq!(record(&token_file(&dir))["access_token"], "fleet-token-2");
    // The next run uses the file.
    run_ok(&mut cli(&te, &api, &key, Some(&dir)));
    assert_eq!(tokens.load(Ordering::SeqCst), 2, "the token written by the waiter is shared");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stuck_lock_holder_costs_half_the_deadline_not_the_call() {
    let (server, tokens) = hanging_first_token_server();
    let dir = private_dir("stuck");
    let key = fixture("ec_sec1.pem");
    let (te, api) = (server.url("/token"), server.url("/api"));
    let mut holder =
        cli(&te, &api, &key, Some(&dir)).args(["--timeout-ms", "60000"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the first token request", Duration::from_secs(20), || tokens.load(Ordering::SeqCst) == 1);
    let log = dir.join("waiter.log");
    let started = Instant::now();
    let out = cli(&te, &api, &key, Some(&dir)).args(["--timeout-ms", "3000", "--session-log", log.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "a stuck lock holder must not fail the call: {}", show(&out));
    assert!(started.elapsed() >= Duration::from_millis(1400), "it waited for the holder first");
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("another process has held the token cache lock"), "{logged}");
    assert!(!logged.contains("fleet-token-2"), "the token is masked in the log");
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_truncated_and_foreign_files_are_replaced() {
    let peers = Peers::start(&[]);
    let dir = private_dir("corrupt");
    let key = fixture("ec_sec1.pem");
    let run = || run_ok(&mut cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)));
    run();
    let file = token_file(&dir);
    let good = std::fs::read(&file).unwrap();
    let mut expected = 1;
    let mut other_version = record(&file);
    other_version["version"] = 99.into();
    for bad in [b"\x00garbage{".to_vec(), good[..good.len() / 2].to_vec(), Vec::new(), other_version.to_string().into_bytes()] {
        std::fs::write(&file, &bad).unwrap();
        run();
        expected += 1;
        assert_eq!(peers.token_requests(), expected, "a bad record is not used");
        assert_eq!(record(&file)["version"], 1, "and it is replaced");
        run();
        assert_eq!(peers.token_requests(), expected, "the replacement is used");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn badly_protected_directories_and_files_are_refused() {
    let peers = Peers::start(&[]);
    let dir = private_dir("perms");
    let key = fixture("ec_sec1.pem");
    let run = || cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)).output().unwrap();

    // A directory others can write to: refused, with the fix named, before any request.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("writable by group or others") && stderr.contains("chmod 700"), "{stderr}");
    assert_eq!(peers.token_requests(), 0);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    run_ok(&mut cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)));
    let file = token_file(&dir);
    let mut expected = 1;

    // A record others can read: not used (a new token is requested), replaced with 0600.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(run().status.success());
    expected += 1;
    assert_eq!(peers.token_requests(), expected, "a mode 0644 record is not used");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);

    // A symbolic link to a valid record: not followed, replaced by a regular file.
    let elsewhere = dir.join("elsewhere.json");
    std::fs::copy(&file, &elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    let planted = std::fs::read(&elsewhere).unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    assert!(run().status.success());
    expected += 1;
    assert_eq!(peers.token_requests(), expected, "a symlinked record is not followed");
    assert!(std::fs::symlink_metadata(&file).unwrap().file_type().is_file());
    assert_eq!(std::fs::read(&elsewhere).unwrap(), planted, "the link's target is untouched");

    // Owned by someone else (needs root to arrange).
    if std::fs::metadata(&dir).unwrap().uid() == 0 {
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        assert!(run().status.success());
        expected += 1;
        assert_eq!(peers.token_requests(), expected, "a record of another user is not used");
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let out = run();
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is owned by uid 65534"), "{}", show(&out));
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A FIFO or an oversized (sparse) file planted as the record, or a FIFO as its lock file,
/// neither blocks a run nor is read without bound: the record is ignored (a new token is
/// requested) and replaced by a regular file; a FIFO lock only turns the sharing off
/// (issue 18, item 4: the cache records go through the same bounded, non-blocking reader).
#[test]
fn a_fifo_or_an_oversized_file_as_record_or_lock_neither_blocks_nor_is_read() {
    use std::os::unix::fs::FileTypeExt;
    let peers = Peers::start(&[]);
    let dir = private_dir("fifo-record");
    let key = fixture("ec_sec1.pem");
    let run = || {
        let mut cmd = cli(&peers.token_endpoint, &peers.api, &key, Some(&dir));
        let out = common::guard::output_within(cmd.stdin(Stdio::null()), Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", show(&out));
    };
    run();
    let file = token_file(&dir);
    let mut expected = 1;
    for plant in ["fifo", "oversized"] {
        std::fs::remove_file(&file).unwrap();
        if plant == "fifo" {
            common::guard::mkfifo(&file);
        } else {
            common::guard::sparse_file(&file, 1 << 30);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        run();
        expected += 1;
        assert_eq!(peers.token_requests(), expected, "a {plant} record is not used");
        assert!(std::fs::symlink_metadata(&file).unwrap().file_type().is_file(), "the {plant} is replaced");
        assert_eq!(record(&file)["version"], 1);
    }
    let lock = dir.join(format!("{}.lock", file.file_name().unwrap().to_str().unwrap()));
    let _ = std::fs::remove_file(&lock);
    common::guard::mkfifo(&lock);
    run();
    assert!(std::fs::symlink_metadata(&lock).unwrap().file_type().is_fifo() || !lock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_keys_never_share_a_token() {
    let peers = Peers::start(&["--rs-nonce"]);
    let dir = private_dir("keys");
    let (a, b) = (fixture("ec_sec1.pem"), fixture("client_assertion_p256.pem"));
    let run = |key: &Path| run_ok(&mut cli(&peers.token_endpoint, &peers.api, key, Some(&dir)));
    run(&a);
    run(&b);
    assert_eq!(peers.token_requests(), 2, "one token per key");
    run(&a);
    run(&b);
    assert_eq!(peers.token_requests(), 2, "each key reuses its own");
    assert_eq!(peers.rs_stats()["ok"], 4, "the RS accepted every token with its key's proofs");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_none()).collect();
    assert_eq!(files.len(), 2);
    let (ra, rb) = (record(&files[0]), record(&files[1]));
    assert_ne!(ra["jkt"], rb["jkt"]);
    assert_ne!(ra["access_token"], rb["access_token"]);
    // A's record in B's place is not used with B's key.
    let a_jkt = std::fs::read_to_string(fixture("ec.jkt")).unwrap();
    let (a_file, b_file) = if ra["jkt"] == a_jkt.trim() { (&files[0], &files[1]) } else { (&files[1], &files[0]) };
    std::fs::copy(a_file, b_file).unwrap();
    run(&b);
    assert_eq!(peers.token_requests(), 3, "a token issued for key A is never sent with key B");
    assert_eq!(peers.rs_stats()["ok"], 5, "and key B's call succeeded with its own");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_token_removes_the_file() {
    // AS: token 1, then a failure, then token 3. RS: refuses "fleet-token-1".
    let tokens = Arc::new(AtomicU32::new(0));
    let t = tokens.clone();
    let server = FaultServer::start(move |r| {
        if r.path == "/token" {
            let n = t.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 2 {
                return json(503, r#"{"error":"temporarily_unavailable"}"#);
            }
            return json(200, &format!(r#"{{"access_token":"fleet-token-{n}","token_type":"DPoP","expires_in":300}}"#));
        }
        if r.header("authorization").is_some_and(|a| a.contains("fleet-token-1")) {
            return Action::Respond(
                401,
                vec![("WWW-Authenticate".into(), r#"DPoP error="invalid_token", algs="ES256""#.into())],
                Vec::new(),
            );
        }
        json(200, r#"{"ok":true}"#)
    });
    let dir = private_dir("invalid");
    let key = fixture("ec_sec1.pem");
    let (te, api) = (server.url("/token"), server.url("/api"));
    let out = cli(&te, &api, &key, Some(&dir)).output().unwrap();
    assert!(!out.status.success(), "the refetch failed: {}", show(&out));
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_none()).collect();
    assert!(left.is_empty(), "the refused token's file is removed: {left:?}");
    run_ok(&mut cli(&te, &api, &key, Some(&dir)));
    assert_eq!(record(&token_file(&dir))["access_token"], "fleet-token-3");
    run_ok(&mut cli(&te, &api, &key, Some(&dir)));
    assert_eq!(tokens.load(Ordering::SeqCst), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_disk_that_cannot_be_written_only_costs_the_sharing() {
    let peers = Peers::start(&[]);
    let dir = private_dir("rodisk");
    let key = fixture("ec_sec1.pem");
    run_ok(&mut cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)));
    let file = token_file(&dir);
    let lock = PathBuf::from(format!("{}.lock", file.display()));
    // The record and the lock file cannot be created: directories stand in their place
    // (what root meets on a read-only or full disk; chmod alone does not stop root).
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let log = std::env::temp_dir().join(format!("dpopkit-fleet-rodisk-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let out = cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)).arg("--session-log").arg(&log).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let logged = std::fs::read_to_string(&log).unwrap();
    for says in ["cannot write the token cache file", "without the cross-process lock", "cached in this process only"] {
        assert!(logged.contains(says), "no {says:?} in the session log:\n{logged}");
    }
    assert_eq!(peers.token_requests(), 2);
    // A read-only directory, where permissions apply (not root).
    if std::fs::metadata(&dir).unwrap().uid() != 0 {
        std::fs::remove_dir(&file).unwrap();
        std::fs::remove_dir(&lock).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        run_ok(&mut cli(&peers.token_endpoint, &peers.api, &key, Some(&dir)));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Settings that differ only in the cache directory share the in-process token; an
/// AuthToken naming a bad directory is refused when it is set, through the C ABI too.
#[test]
fn the_member_through_the_library() {
    use dpopkit::core::{EcKey, ErrorKind, HttpClient};
    let peers = Peers::start(&[]);
    let dir = private_dir("lib");
    let key = Arc::new(EcKey::load_file(&fixture("ec_sec1.pem"), None).unwrap());
    let auth = |cache: Option<&Path>| {
        let mut v: serde_json::Value = serde_json::from_str(&peers.auth_token()).unwrap();
        if let Some(d) = cache {
            v["token_cache_dir"] = d.to_str().unwrap().into();
        }
        v.to_string()
    };
    let with = HttpClient::new();
    with.set_dpop_key(key.clone());
    with.set_auth_token(&auth(Some(&dir))).unwrap();
    let without = HttpClient::new();
    without.set_dpop_key(key.clone());
    without.set_auth_token(&auth(None)).unwrap();
    with.request(Some("GET"), &peers.api, None, None).unwrap();
    without.request(Some("GET"), &peers.api, None, None).unwrap();
    assert_eq!(peers.token_requests(), 1, "the directory does not change which token is used");
    token_file(&dir);

    let open = private_dir("lib-open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o757)).unwrap();
    let e = with.set_auth_token(&auth(Some(&open))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::AuthToken);
    assert!(e.message.contains("token_cache_dir") && e.message.contains("chmod 700"), "{}", e.message);
    let e = with.set_auth_token(&auth(Some(&dir.join("missing")))).unwrap_err();
    assert!(e.message.contains("does not exist") && e.message.contains("mkdir -m 700"), "{}", e.message);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&open);
}

/// Issue 18, item 13: the parsed AuthToken is memoized by its text, but the directory is
/// checked every time the AuthToken is set: the same text again, after the directory was
/// opened to others or removed, is refused (through the C ABI, with the fix named).
#[test]
fn the_directory_is_checked_each_time_the_same_auth_token_is_set() {
    use crate::common::capi::{c, code, text};
    use dpopkit::capi::common::dpopkit_destroy;
    use dpopkit::capi::http::{dpopkit_http_new, dpopkit_http_set_auth_token};
    let dir = private_dir("memo");
    let auth = serde_json::json!({
        "token_endpoint": "https://127.0.0.1:9/token",
        "client_id": "memo-client",
        "client_secret": "memo-secret",
        "token_cache_dir": dir.to_str().unwrap(),
    })
    .to_string();
    let http = dpopkit_http_new();
    let set = || unsafe { dpopkit_http_set_auth_token(http, c(&auth).as_ptr()) };
    assert_eq!(set(), 1, "{}", text(http));
    assert_eq!(set(), 1, "the same text again (a memo hit): {}", text(http));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(set(), 0, "a directory opened to others since is refused, memo or not");
    assert_eq!(code(http), dpopkit::dpopkit_result::AuthToken as u32);
    let t = text(http);
    assert!(t.contains("token_cache_dir") && t.contains("writable by group or others") && t.contains("chmod 700"), "{t}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(set(), 1, "fixed: accepted again: {}", text(http));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(set(), 0, "a removed directory is refused");
    let t = text(http);
    assert!(t.contains("does not exist") && t.contains("mkdir -m 700"), "{t}");
    assert!(!t.contains("memo-secret"));
    dpopkit_destroy(http);
}

/// Issue 18, item 10: the directory is pruned when a record is written: expired records,
/// lock files without a record and temporary files of writers that died go, and the number
/// of records is bounded (the least recently written beyond 256 go); a lock another process
/// holds, a fresh temporary file, files of other names and the live records stay, and the
/// live record is still used.
#[test]
fn the_directory_is_pruned_and_bounded() {
    // The CLI prunes within a second at most: not while a CPU-heavy test of this binary runs.
    let _heavy = common::cpu_heavy();
    let peers = Peers::start(&["--rs-nonce"]);
    let dir = private_dir("prune");
    let (a, b) = (fixture("ec_sec1.pem"), fixture("client_assertion_p256.pem"));
    let run = |key: &Path| run_ok(&mut cli(&peers.token_endpoint, &peers.api, key, Some(&dir)));
    run(&a);
    let live = token_file(&dir);
    let version = record(&live)["version"].clone();
    assert_eq!(peers.token_requests(), 1);

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let hour = std::time::SystemTime::now() - Duration::from_secs(3600);
    let mut n = 0u32;
    let mut name = || {
        n += 1;
        format!("{:064x}", 0xfeed_0000_u64 + n as u64)
    };
    let plant = |path: &Path, text: &str, written: std::time::SystemTime| {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(written).unwrap();
    };
    let rec = |issued: u64, expires: u64| {
        serde_json::json!({"version": version, "binding": "planted", "jkt": "planted", "token_type": "DPoP", "access_token": "planted",
            "issued_at_ms": issued, "refresh_at_ms": expires - 2, "usable_until_ms": expires - 1, "expires_at_ms": expires})
        .to_string()
    };
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..5 {
        let p = dir.join(name());
        plant(&p, &rec(now_ms - 7_200_000, now_ms - 3_600_000), std::time::SystemTime::now());
        gone.push(p.clone());
        gone.push(PathBuf::from(format!("{}.lock", p.display())));
        plant(&PathBuf::from(format!("{}.lock", p.display())), "", hour);
    }
    for stale in [format!("{}.tmp", name()), format!("{}.4242.tmp", name()), "dpopkit-binding.key.4242.tmp".to_string()] {
        plant(&dir.join(&stale), "half", hour);
        gone.push(dir.join(stale));
    }
    for _ in 0..3 {
        let p = dir.join(format!("{}.lock", name()));
        plant(&p, "", hour);
        gone.push(p);
    }
    // Kept: a fresh temporary file (a writer at work), a lock another process holds, other names.
    let fresh_tmp = dir.join(format!("{}.4343.tmp", name()));
    plant(&fresh_tmp, "writing", std::time::SystemTime::now());
    let held = dir.join(format!("{}.lock", name()));
    plant(&held, "", hour);
    let held_file = std::fs::File::open(&held).unwrap();
    assert_eq!(unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&held_file), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    let other = [dir.join("notes.txt"), dir.join(format!("{}.bak", name())), dir.join("FEED")];
    for p in &other {
        plant(p, "mine", hour);
    }
    kept.extend([fresh_tmp, held.clone(), live.clone()]);
    kept.extend(other.iter().cloned());
    // 300 valid records, all written before the live one: with the live one and the next
    // key's, 46 too many; the least recently written go.
    let mut valid = Vec::new();
    for i in 0..300u64 {
        let p = dir.join(name());
        plant(&p, &rec(now_ms - 1000, now_ms + 3_600_000), hour - Duration::from_secs(i));
        valid.push(p);
    }
    let records = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_str().is_some_and(|n| n.len() == 64 && !n.contains('.')))
            .count()
    };
    assert_eq!(records(&dir), 1 + 5 + 300);

    // A call that writes a record (another key) prunes.
    run(&b);
    assert_eq!(peers.token_requests(), 2);
    for p in &gone {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    for p in &kept {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert_eq!(records(&dir), dpopkit::core::token_store::MAX_RECORDS, "bounded at 256 records");
    // The oldest planted ones went (they were written longest ago), the newest stayed.
    assert!(valid[..254].iter().all(|p| p.exists()) && valid[254..].iter().all(|p| !p.exists()));
    drop(held_file);
    // The live record still works: no new token for key A.
    run(&a);
    assert_eq!(peers.token_requests(), 2, "key A's record survived the pruning and is used");
    let _ = std::fs::remove_dir_all(&dir);
}
