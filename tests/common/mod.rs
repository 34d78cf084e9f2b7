//! Starts the real test peers (tests/peers/server.mjs: oidc-provider as the authorization
//! server, a jose-validating resource server) on 127.0.0.1 and stops them on drop.
#![allow(dead_code)]

pub mod c_sample;
pub mod capi;
pub mod fault;
pub mod guard;
#[path = "../../build/header.rs"]
pub mod header;
pub mod hostile;
pub mod tls;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Once;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// Installs the peers' npm packages once (npm ci from the committed lockfile), under a
/// file lock so parallel test binaries do not race.
fn ensure_node_modules() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = repo().join("tests/peers");
        let lock = std::fs::File::create(std::env::temp_dir().join("dpopkit-npm-ci.lock")).unwrap();
        // flock(2), not File::lock: that is Rust 1.89 and the crate declares rust-version 1.85
        // (CI's clippy checks incompatible_msrv). Released when `lock` is closed.
        {
            use std::os::fd::AsRawFd;
            assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0, "flock on the npm ci lock");
        }
        if !dir.join("node_modules/oidc-provider").exists() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .expect("npm is needed for the test peers (Node 20+)");
            assert!(out.status.success(), "npm ci in tests/peers failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        drop(lock);
    });
}

pub struct Peers {
    child: Child,
    _stdin: ChildStdin,
    stderr_path: PathBuf,
    pub issuer: String,
    pub token_endpoint: String,
    pub rs: String,
    pub api: String,
}

impl Peers {
    /// Starts AS and RS with `server.mjs` options, e.g. `["--as-nonce", "--ttl", "2"]`.
    pub fn start(args: &[&str]) -> Peers {
        ensure_node_modules();
        let stderr_path = std::env::temp_dir().join(format!("dpopkit-peers-{}-{}.log", std::process::id(), rand_suffix()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new("node")
            .arg(repo().join("tests/peers/server.mjs"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("node is needed for the test peers");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            let _ = child.kill();
            let mut err = String::new();
            let _ = std::fs::File::open(&stderr_path).and_then(|mut f| f.read_to_string(&mut err));
            panic!("test peers did not start: {err}");
        }
        let v: serde_json::Value = serde_json::from_str(&line).expect("peers print one JSON line");
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        Peers { child, _stdin: stdin, stderr_path, issuer: s("issuer"), token_endpoint: s("token_endpoint"), rs: s("rs"), api: s("api") }
    }

    /// The sample's AuthToken JSON (client m2m.dpop / secret, scope api).
    pub fn auth_token(&self) -> String {
        serde_json::json!({
            "client_secret": "secret",
            "client_id": "m2m.dpop",
            "token_endpoint": self.token_endpoint,
            "scope": "api",
        })
        .to_string()
    }

    fn get_json(url: &str) -> serde_json::Value {
        let body = ureq::get(url).call().unwrap().body_mut().read_to_string().unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Token responses with status 200 counted by the AS.
    pub fn tokens_issued(&self) -> u64 {
        Self::get_json(&format!("{}/_stats", self.issuer))["token_issued"].as_u64().unwrap()
    }

    /// POSTs to /token counted by the AS.
    pub fn token_requests(&self) -> u64 {
        Self::get_json(&format!("{}/_stats", self.issuer))["token_requests"].as_u64().unwrap()
    }

    pub fn as_stats(&self) -> serde_json::Value {
        Self::get_json(&format!("{}/_stats", self.issuer))
    }

    pub fn rs_stats(&self) -> serde_json::Value {
        Self::get_json(&format!("{}/_stats", self.rs))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether `text` holds a JWT (an access token or a DPoP proof): `eyJ…` (a base64url JSON
/// header), a dot, `eyJ…` (the JSON claims). A bare "eyJ" can occur by chance inside a
/// random nonce or jti; a header-dot-claims pair does not.
pub fn contains_jwt(text: &str) -> bool {
    text.match_indices("eyJ").any(|(i, _)| {
        let rest = &text[i..];
        let header_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(rest.len());
        rest[header_len..].starts_with(".eyJ")
    })
}

/// target/<profile>/deps, where cargo leaves the libdpopkit.so of this test run, with the
/// SONAME link the dynamic loader looks for (libdpopkit.so.0.1 -> libdpopkit.so, see
/// build.rs): cargo creates none; an install does (bindings/c/install.sh). For C programs
/// linked with -L/-rpath to this directory.
pub fn cdylib_dir() -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    if let Some(soname) = option_env!("DPOPKIT_SONAME") {
        let link = dir.join(soname);
        if std::fs::read_link(&link).ok().as_deref() != Some(Path::new("libdpopkit.so")) {
            // Unique per call: tests of one process run this on several threads at once.
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!("{soname}.tmp{}-{n}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink("libdpopkit.so", &tmp).expect("create the SONAME link");
            std::fs::rename(&tmp, &link).expect("create the SONAME link"); // atomic: tests run in parallel
        }
    }
    dir
}

/// Compiles tests/c/NAME.c against include/dpopkit.h (-std=c11 -Wall -Wextra -Werror
/// -pedantic), linked to the cdylib of this test run (rpath set), into a program named after
/// `tag` (tests run in parallel).
pub fn compile_c(name: &str, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("dpopkit-{name}-{tag}-{}", std::process::id()));
    let lib = cdylib_dir();
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(repo().join("include"))
        .arg(repo().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&out)
        .arg(format!("-L{}", lib.display()))
        .arg("-ldpopkit")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "compiling tests/c/{name}.c failed");
    out
}

/// The name the test harness gives the test function `name` of the module `module` (pass
/// `module_path!()`): the module path without the crate (the test binary), then `name` —
/// what `--exact` needs to run it alone, e.g. `servers::pkcs11` + `x` -> `pkcs11::x`.
pub fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, m)) => format!("{m}::{name}"),
        None => name.to_string(),
    }
}

const ALONE_VAR: &str = "DPOPKIT_ALONE_CHILD";

/// Runs the test `name` of `module` (`module_path!()`) in a child process of its own (this
/// test binary again, `--exact`): returns false in the parent once the child has passed
/// (and panics when it failed), true in the child, which then runs the test's body. For
/// tests that read or change process-wide state (handle counts, per-thread state, the
/// bounded stores of earlier values, the connection pool) while the other tests of the
/// binary run meanwhile. These tests load the CPU (thousands of threads or objects): the
/// parent holds [`cpu_heavy`] while its child runs.
pub fn alone(module: &str, name: &str) -> bool {
    let path = test_path(module, name);
    if std::env::var(ALONE_VAR).is_ok_and(|v| v == path) {
        return true;
    }
    let _heavy = cpu_heavy();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &path, "--nocapture", "--test-threads=1"])
        .env(ALONE_VAR, &path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the test {path}, run alone in a child process, failed:\n{stdout}\n{stderr}"
    );
    false
}

static CPU_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Held by the tests of a binary that load the CPU for seconds (fuzz inputs of megabytes)
/// and by the ones that time work against a tight bound, so that the two never overlap on
/// a loaded 2-core machine (each was once a test binary of its own).
pub fn cpu_heavy() -> std::sync::MutexGuard<'static, ()> {
    CPU_HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}
