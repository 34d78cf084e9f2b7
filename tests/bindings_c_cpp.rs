//! The C sample (bindings/c/sample.c) and the C++ binding (bindings/cpp/dpopkit.hpp, driven by
//! tests/cpp/sample.cpp), compiled with warnings as errors against include/ and the cdylib
//! cargo just built, and run against the real peers with DPoP nonces required at both the AS
//! and the RS. The installed layout (bindings/c/install.sh, pkg-config, shared and static)
//! is tested by tests/shipping.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Peers, fixture, repo};

/// target/<profile>/deps, where cargo leaves libdpopkit.so (and .a) for the tests.
fn lib_dir() -> PathBuf {
    common::cdylib_dir() // with the SONAME link libdpopkit.so.0.1
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dpopkit-bind-{name}-{}", std::process::id()))
}

/// Runs a compiler command and fails the test with its output.
fn compile(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run the compiler for {what}: {e}"));
    assert!(
        out.status.success(),
        "compiling {what} failed:\n{cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `compiler` with the flags, the source and -o, linked to the cdylib in the test exe's dir.
fn build_against_deps(compiler: &str, flags: &[&str], source: &Path, includes: &[PathBuf], out: &Path) {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-g");
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg(source)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-ldpopkit")
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    compile(cmd, &source.display().to_string());
}

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
const CPP_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"];

fn expected_jkt() -> String {
    std::fs::read_to_string(fixture("ec.jkt")).unwrap().trim().to_string()
}

/// The claims the RS echoes: our client, our scope, and a token bound to our key.
fn assert_claims(stdout: &str) {
    assert!(stdout.contains("status: 200"), "{stdout}");
    assert!(stdout.contains(r#"{"type":"client_id","value":"m2m.dpop"}"#), "{stdout}");
    assert!(stdout.contains(r#"{"type":"scope","value":"api"}"#), "{stdout}");
    assert!(stdout.contains(&expected_jkt()), "token not bound to the fixture key: {stdout}");
}

fn assert_log_has_no_secret(log: &Path) {
    let logged = std::fs::read_to_string(log).expect("the session log was written");
    assert!(logged.contains("POST /token HTTP/1.1"), "{logged}");
    assert!(logged.contains("GET /api/test HTTP/1.1"), "{logged}");
    assert!(logged.contains("use_dpop_nonce"), "nonces were required: {logged}");
    assert!(logged.contains("client_secret=****"), "{logged}");
    assert!(!logged.contains("=secret") && !common::contains_jwt(&logged), "a secret in the session log:\n{logged}");
}

fn check_output(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout
}

#[test]
fn c_sample_with_nonces_at_as_and_rs() {
    let exe = scratch("c-sample");
    build_against_deps("gcc", C_FLAGS, &repo().join("bindings/c/sample.c"), &[repo().join("include")], &exe);
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = scratch("c-sample-log.txt");
    let stdout = check_output(&common::run_c_sample(&exe, &peers, &log));
    assert_claims(&stdout);
    assert_eq!(peers.tokens_issued(), 1);
    assert_eq!(peers.rs_stats()["ok"], 1);
    assert_log_has_no_secret(&log);

    // A failure prints the error text and exits 1: a wrong secret, given the documented way.
    let out = Command::new(&exe)
        .arg(fixture("ec_pkcs8.pem"))
        .arg(&peers.token_endpoint)
        .arg(&peers.api)
        .env("DPOPKIT_CLIENT_SECRET", "not-the-s3cret")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid_client") && stderr.contains("code 14"), "{stderr}");
    assert!(!stderr.contains("not-the-s3cret"), "{stderr}");

    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn cpp_binding_with_nonces_at_as_and_rs() {
    let exe = scratch("cpp-sample");
    build_against_deps(
        "g++",
        CPP_FLAGS,
        &repo().join("tests/cpp/sample.cpp"),
        &[repo().join("include"), repo().join("bindings/cpp")],
        &exe,
    );
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = scratch("cpp-sample-log.txt");
    let stdout = check_output(&common::run_c_sample(&exe, &peers, &log));
    assert_claims(&stdout);
    assert!(stdout.contains("cpp checks: all passed"), "{stdout}");
    assert_eq!(peers.tokens_issued(), 1, "one token for every call of the process");
    assert_eq!(peers.rs_stats()["ok"], 4, "GET, POST, GET after the move, GET after key.reset()");
    assert_log_has_no_secret(&log);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&exe);
}

/// The issue 12 porting flow through dpopkit.hpp (headers, POST + Location, bytes 0..255 as
/// std::vector<uint8_t>, status text, std::optional header lookup, every transport setting),
/// with nonces required at the AS and the RS.
#[test]
fn cpp_porting_flow_with_nonces_at_as_and_rs() {
    let exe = scratch("cpp-porting");
    build_against_deps(
        "g++",
        CPP_FLAGS,
        &repo().join("tests/cpp/porting.cpp"),
        &[repo().join("include"), repo().join("bindings/cpp")],
        &exe,
    );
    // A CA file for set_ca_file (a self-signed certificate made here by openssl).
    let ca = scratch("cpp-porting-ca.pem");
    let ca_key = scratch("cpp-porting-ca.key");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=dpopkit test CA", "-days", "1"])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl is needed to make a test CA");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let out = Command::new(&exe).arg(&peers.token_endpoint).arg(&peers.rs).arg(&ca).output().unwrap();
    let stdout = check_output(&out);
    assert!(stdout.contains("echo: 200 OK"), "{stdout}");
    assert!(stdout.contains("created: 201 Created location /api/items/"), "{stdout}");
    assert!(stdout.contains("bytes: 256") && stdout.contains("cpp porting: ok"), "{stdout}");
    assert_eq!(peers.tokens_issued(), 1);
    for f in [exe, ca, ca_key] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn cpp_header_alone_compiles_cleanly() {
    // Every function of the header in one translation unit, with the strictest flags we use.
    let src = scratch("hpp-only.cpp");
    std::fs::write(&src, "#include \"dpopkit.hpp\"\n#include \"dpopkit.hpp\"\nint main() { return 0; }\n").unwrap();
    let mut cmd = Command::new("g++");
    cmd.args(CPP_FLAGS)
        .args(["-Wshadow", "-Wconversion", "-Wsign-conversion", "-fsyntax-only"])
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("bindings/cpp"))
        .arg(&src);
    compile(cmd, "bindings/cpp/dpopkit.hpp");
    let _ = std::fs::remove_file(&src);
}

#[test]
fn install_sh_without_prefix_is_a_usage_error() {
    let out = Command::new("sh").arg(repo().join("bindings/c/install.sh")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
