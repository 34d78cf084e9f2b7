//! The C sample (bindings/c/sample.c) and the C++ binding (bindings/cpp/dpopkit.hpp, driven by
//! tests/cpp/sample.cpp), compiled with warnings as errors against include/ and the cdylib
//! cargo just built, and run against the real peers with DPoP nonces required at both the AS
//! and the RS. Also: bindings/c/install.sh into a temporary PREFIX, then a build of the
//! sample through `pkg-config dpopkit`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Peers, fixture, repo};

/// target/<profile>/deps, where cargo leaves libdpopkit.so (and .a) for the tests.
fn lib_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
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

/// Runs a sample (KEY TOKEN_URL API PASSWORD LOG) against peers that require nonces.
fn run_sample(exe: &Path, peers: &Peers, log: &Path) -> Output {
    let _ = std::fs::remove_file(log);
    Command::new(exe)
        .arg(fixture("ec_pkcs8_enc.pem"))
        .arg(&peers.token_endpoint)
        .arg(&peers.api)
        .arg("test-password")
        .arg(log)
        .env_remove("DPOPKIT_CLIENT_SECRET")
        .env_remove("DPOPKIT_CLIENT_ID")
        .env_remove("DPOPKIT_SCOPE")
        // cargo test points LD_LIBRARY_PATH at target/<profile>, which would win over the
        // rpath: the programs must find the library the way a user's build does.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
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
    let stdout = check_output(&run_sample(&exe, &peers, &log));
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
    let stdout = check_output(&run_sample(&exe, &peers, &log));
    assert_claims(&stdout);
    assert!(stdout.contains("cpp checks: all passed"), "{stdout}");
    assert_eq!(peers.tokens_issued(), 1, "one token for every call of the process");
    assert_eq!(peers.rs_stats()["ok"], 4, "GET, POST, GET after the move, GET after key.reset()");
    assert_log_has_no_secret(&log);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&exe);
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

fn pkg_config() -> PathBuf {
    let out = Command::new("which").arg("pkg-config").output().expect("`which` is needed");
    assert!(
        out.status.success(),
        "pkg-config is not installed: the install test needs it (apt-get install pkg-config)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn install_sh_then_build_with_pkg_config() {
    let pkg_config = pkg_config();
    let prefix = scratch("prefix");
    let _ = std::fs::remove_dir_all(&prefix);

    // The already-built debug library, so the test needs no release build (and no cargo).
    let out = Command::new("sh")
        .arg(repo().join("bindings/c/install.sh"))
        .arg(&prefix)
        .env("DPOPKIT_LIB_DIR", lib_dir())
        .env("DPOPKIT_PROFILE", "debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "install.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let installed = ["include/dpopkit.h", "include/dpopkit.hpp", "lib/libdpopkit.so", "lib/libdpopkit.a"];
    for f in installed.iter().chain(&["lib/pkgconfig/dpopkit.pc"]) {
        assert!(prefix.join(f).is_file(), "install.sh did not install {f}");
    }
    assert_eq!(
        std::fs::read(prefix.join("include/dpopkit.h")).unwrap(),
        std::fs::read(repo().join("include/dpopkit.h")).unwrap()
    );

    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |args: &[&str]| -> String {
        let out = Command::new(&pkg_config).args(args).env("PKG_CONFIG_PATH", &pc_path).output().unwrap();
        assert!(out.status.success(), "pkg-config {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(pkg(&["--modversion", "dpopkit"]), env!("CARGO_PKG_VERSION"));
    let flags = pkg(&["--cflags", "--libs", "dpopkit"]);
    assert!(flags.contains(&format!("-I{}/include", prefix.display())), "{flags}");
    assert!(flags.contains("-ldpopkit"), "{flags}");

    // Shared: exactly what the README tells users to type, plus an rpath to run it.
    let exe = prefix.join("sample");
    let mut cmd = Command::new("gcc");
    cmd.args(C_FLAGS)
        .arg(repo().join("bindings/c/sample.c"))
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}/lib", prefix.display()));
    compile(cmd, "bindings/c/sample.c with pkg-config");

    // Static: libdpopkit.a plus the private libraries the .pc file lists.
    let exe_static = prefix.join("sample-static");
    let static_libs = pkg(&["--static", "--libs-only-l", "dpopkit"]);
    let mut cmd = Command::new("gcc");
    cmd.args(C_FLAGS)
        .args(pkg(&["--cflags", "dpopkit"]).split_whitespace())
        .arg(repo().join("bindings/c/sample.c"))
        .arg("-o")
        .arg(&exe_static)
        .arg(prefix.join("lib/libdpopkit.a"))
        .args(static_libs.split_whitespace().filter(|l| *l != "-ldpopkit"));
    compile(cmd, "bindings/c/sample.c statically with pkg-config --static");

    // C++: the quick start of bindings/cpp/README.md, with the installed dpopkit.hpp.
    let readme = std::fs::read_to_string(repo().join("bindings/cpp/README.md")).unwrap();
    let quick_start = readme.split("```cpp\n").nth(1).and_then(|s| s.split("```").next()).expect("a cpp block");
    let qs_src = prefix.join("quick_start.cpp");
    std::fs::write(&qs_src, quick_start).unwrap();
    let mut cmd = Command::new("g++");
    cmd.args(CPP_FLAGS).arg(&qs_src).arg("-o").arg(prefix.join("quick_start")).args(flags.split_whitespace());
    compile(cmd, "the C++ README quick start with pkg-config");

    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    for exe in [&exe, &exe_static] {
        let log = prefix.join("session.log");
        let stdout = check_output(&run_sample(exe, &peers, &log));
        assert_claims(&stdout);
        assert_log_has_no_secret(&log);
    }
    let linked = Command::new("ldd")
        .arg(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(ldd) = linked {
        assert!(ldd.contains(&format!("{}/lib/libdpopkit.so", prefix.display())), "uses the installed library:\n{ldd}");
    }
    let _ = std::fs::remove_dir_all(&prefix);
}

#[test]
fn install_sh_without_prefix_is_a_usage_error() {
    let out = Command::new("sh").arg(repo().join("bindings/c/install.sh")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
