//! The one harness of the C sample flow: bindings/c/sample.c (and tests/cpp/sample.cpp, which
//! takes the same arguments) built against the cdylib of this test run, run against the
//! peers as `KEY TOKEN_URL API [PASSWORD [LOG]]` with what differs passed in ([`Run`]: the
//! key — a file or a PKCS#11 URI —, the password or PIN, extra environment), and its output
//! and session log checked alike ([`check`]). tests/bindings (source tree), tests/shipping
//! (an installed prefix, shared and static) and tests/servers/pkcs11.rs (a key in a token)
//! all run it through here.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Peers, cdylib_dir, contains_jwt, fixture, repo};

pub const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
pub const CPP_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// Runs a compiler command and fails the test with its output.
pub fn compile(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run the compiler for {what}: {e}"));
    assert!(
        out.status.success(),
        "compiling {what} failed:\n{cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `compiler` with the flags (and -g), the source and -o `out`, linked to the cdylib of this
/// test run (with its SONAME link, rpath set).
pub fn build(compiler: &str, flags: &[&str], source: &Path, includes: &[PathBuf], out: &Path) {
    let lib = cdylib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-g");
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg(source).arg("-o").arg(out).arg(format!("-L{}", lib.display())).arg("-ldpopkit").arg(format!("-Wl,-rpath,{}", lib.display()));
    compile(cmd, &source.display().to_string());
}

/// bindings/c/sample.c built into `out` (C11, warnings as errors).
pub fn build_c_sample(out: &Path) {
    build("gcc", C_FLAGS, &repo().join("bindings/c/sample.c"), &[repo().join("include")], out);
}

/// What a run of the sample is given besides the peers and the log.
pub struct Run {
    /// A key file or a PKCS#11 URI.
    pub key: OsString,
    /// The key file's password, or the token's PIN.
    pub password: String,
    /// Extra environment variables.
    pub env: Vec<(String, OsString)>,
}

impl Default for Run {
    /// The encrypted fixture key and its password.
    fn default() -> Run {
        Run { key: fixture("ec_pkcs8_enc.pem").into(), password: "test-password".into(), env: Vec::new() }
    }
}

/// Runs a sample program (`exe`) against `peers` with the default [`Run`].
pub fn run(exe: &Path, peers: &Peers, log: &Path) -> Output {
    run_with(exe, peers, log, Run::default())
}

/// Runs a sample program (KEY TOKEN_URL API PASSWORD LOG) against `peers`, with none of the
/// sample's DPOPKIT_* overrides, and without cargo's LD_LIBRARY_PATH (which would win over
/// the rpath: the program must find the library the way a user's build does).
pub fn run_with(exe: &Path, peers: &Peers, log: &Path, run: Run) -> Output {
    let _ = std::fs::remove_file(log);
    let mut cmd = Command::new(exe);
    cmd.arg(&run.key)
        .arg(&peers.token_endpoint)
        .arg(&peers.api)
        .arg(&run.password)
        .arg(log)
        .env_remove("DPOPKIT_CLIENT_SECRET")
        .env_remove("DPOPKIT_CLIENT_ID")
        .env_remove("DPOPKIT_SCOPE")
        .env_remove("LD_LIBRARY_PATH");
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
}

/// The checks every run of the sample flow makes (peers requiring DPoP nonces at the AS and
/// the RS): it succeeded, printed `status: 200` and the RS's echo of our client (bound to
/// the key of thumbprint `jkt`, when given), and its session log shows the token request
/// and the nonce retry with the client secret masked and no JWT. Returns its stdout.
pub fn check(out: &Output, log: &Path, jkt: Option<&str>) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("status: 200"), "{stdout}");
    assert!(stdout.contains(r#"{"type":"client_id","value":"m2m.dpop"}"#), "{stdout}");
    if let Some(jkt) = jkt {
        assert!(stdout.contains(jkt), "the token is not bound to the key {jkt}: {stdout}");
    }
    let logged = std::fs::read_to_string(log).expect("the session log was written");
    assert!(logged.contains("POST /token HTTP/1.1"), "{logged}");
    assert!(logged.contains("GET /api/test HTTP/1.1"), "{logged}");
    assert!(logged.contains("use_dpop_nonce"), "nonces were required: {logged}");
    assert!(logged.contains("client_secret=****"), "{logged}");
    assert!(!logged.contains("=secret") && !contains_jwt(&logged), "a secret in the session log:\n{logged}");
    stdout
}
