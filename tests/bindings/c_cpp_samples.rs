//! The C sample (bindings/c/sample.c) and the C++ binding (bindings/cpp/dpopkit.hpp, driven by
//! tests/cpp/sample.cpp), compiled with warnings as errors against include/ and the cdylib
//! cargo just built, and run against the real peers with DPoP nonces required at both the AS
//! and the RS. The installed layout (bindings/c/install.sh, pkg-config, shared and static)
//! is tested by tests/shipping/artifacts.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::c_sample::{self, CPP_FLAGS, compile};
use crate::common::{Peers, fixture, repo};

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dpopkit-bind-{name}-{}", std::process::id()))
}

fn expected_jkt() -> String {
    std::fs::read_to_string(fixture("ec.jkt")).unwrap().trim().to_string()
}

fn check_output(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout
}

/// The sample's checks, and the scope the RS echoes.
fn check_sample(out: &Output, log: &Path) -> String {
    let stdout = c_sample::check(out, log, Some(&expected_jkt()));
    assert!(stdout.contains(r#"{"type":"scope","value":"api"}"#), "{stdout}");
    stdout
}

#[test]
fn c_sample_with_nonces_at_as_and_rs() {
    let exe = scratch("c-sample");
    c_sample::build_c_sample(&exe);
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = scratch("c-sample-log.txt");
    check_sample(&c_sample::run(&exe, &peers, &log), &log);
    assert_eq!(peers.tokens_issued(), 1);
    assert_eq!(peers.rs_stats()["ok"], 1);

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
    c_sample::build(
        "g++",
        c_sample::CPP_FLAGS,
        &repo().join("tests/cpp/sample.cpp"),
        &[repo().join("include"), repo().join("bindings/cpp")],
        &exe,
    );
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = scratch("cpp-sample-log.txt");
    let stdout = check_sample(&c_sample::run(&exe, &peers, &log), &log);
    assert!(stdout.contains("cpp checks: all passed"), "{stdout}");
    assert_eq!(peers.tokens_issued(), 1, "one token for every call of the process");
    assert_eq!(peers.rs_stats()["ok"], 4, "GET, POST, GET after the move, GET after key.reset()");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&exe);
}

/// The issue 12 porting flow through dpopkit.hpp (headers, POST + Location, bytes 0..255 as
/// std::vector<uint8_t>, status text, std::optional header lookup, every transport setting),
/// with nonces required at the AS and the RS.
#[test]
fn cpp_porting_flow_with_nonces_at_as_and_rs() {
    let exe = scratch("cpp-porting");
    c_sample::build(
        "g++",
        c_sample::CPP_FLAGS,
        &repo().join("tests/cpp/porting.cpp"),
        &[repo().join("include"), repo().join("bindings/cpp")],
        &exe,
    );
    // A CA file for set_ca_file (a self-signed certificate made here by openssl).
    let ca = scratch("cpp-porting-ca.pem");
    let ca_key = scratch("cpp-porting-ca.key");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=dpopkit test CA",
            "-days",
            "1",
        ])
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
