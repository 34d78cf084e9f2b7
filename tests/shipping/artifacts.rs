//! Shipping like a system library (issue 14):
//! - the shared library's SONAME is libdpopkit.so.MAJOR.MINOR (0.x) and it exports only
//!   dpopkit_* (exactly the functions of the header);
//! - the header's DPOPKIT_VERSION_* macros equal Cargo.toml's version and dpopkit_version();
//! - the release build ships without debug info; bindings/c/install.sh lays out
//!   libdpopkit.so.X.Y.Z + symlinks, libdpopkit.a, the headers and a dpopkit.pc whose
//!   Libs.private is what rustc said the static library needs, and the C sample builds
//!   against an installed prefix with pkg-config alone, shared and static, and runs against
//!   the real peers.
//!
//! The release tests build target/release with install.sh (scripts/test.sh has already done
//! it in CI, so cargo finds it current). Needs gcc, g++, pkg-config and binutils.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common::{Peers, repo};

/// target/<profile>/deps, where cargo leaves the libdpopkit.so of this test run (with the
/// SONAME link, for programs linked to it).
fn lib_dir() -> PathBuf {
    common::cdylib_dir()
}

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("dpopkit-ship-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Runs a command; fails the test with its output unless it succeeds. Returns stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{cmd:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The version in Cargo.toml's [package] table, read from the file (not from cargo's env).
fn cargo_toml_version() -> String {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let package = manifest.split("[package]").nth(1).unwrap().split("\n[").next().unwrap();
    let line = package.lines().find(|l| l.trim_start().starts_with("version")).expect("a version in [package]");
    line.split('"').nth(1).unwrap().to_string()
}

fn major_minor_patch(v: &str) -> (String, String, String) {
    let core = v.split(['-', '+']).next().unwrap();
    let mut it = core.split('.').map(str::to_string);
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

fn expected_soname() -> String {
    let (major, minor, _) = major_minor_patch(&cargo_toml_version());
    if major == "0" { format!("libdpopkit.so.0.{minor}") } else { format!("libdpopkit.so.{major}") }
}

fn readelf_dynamic(file: &Path) -> String {
    run(Command::new("readelf").arg("-d").arg(file), "readelf -d (binutils)")
}

fn soname_of(file: &Path) -> Option<String> {
    readelf_dynamic(file)
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .map(|s| s.trim_end_matches(']').to_string())
}

fn needed_of(file: &Path) -> Vec<String> {
    readelf_dynamic(file)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1))
        .map(|s| s.trim_end_matches(']').to_string())
        .collect()
}

/// Functions declared in include/dpopkit.h.
fn header_functions() -> Vec<String> {
    let h = std::fs::read_to_string(repo().join("include/dpopkit.h")).unwrap();
    let mut names = common::header::function_names(&h);
    names.sort();
    names
}

#[test]
fn shared_library_has_the_soname() {
    let lib = lib_dir().join("libdpopkit.so");
    assert_eq!(soname_of(&lib).as_deref(), Some(expected_soname().as_str()), "{}", readelf_dynamic(&lib));
}

#[test]
fn only_the_header_functions_are_exported() {
    let lib = lib_dir().join("libdpopkit.so");
    let out = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib), "nm -D --defined-only (binutils)");
    let mut exported: Vec<String> = out.lines().filter_map(|l| l.split_whitespace().nth(2)).map(str::to_string).collect();
    exported.sort();
    let foreign: Vec<_> = exported.iter().filter(|s| !s.starts_with("dpopkit_")).collect();
    assert!(foreign.is_empty(), "libdpopkit.so exports symbols that are not dpopkit_*: {foreign:?}");
    let header = header_functions();
    assert!(header.len() >= 30, "found only {} functions in the header", header.len());
    assert_eq!(exported, header, "the exported functions and the header's differ");
}

const VERSION_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include "dpopkit.h"

#if DPOPKIT_VERSION_MAJOR != EXPECT_MAJOR || DPOPKIT_VERSION_MINOR != EXPECT_MINOR || DPOPKIT_VERSION_PATCH != EXPECT_PATCH
#error "the DPOPKIT_VERSION_* macros are not Cargo.toml's version"
#endif

int main(void) {
    char numbers[64];
    char *lib = dpopkit_version();
    int ok;
    snprintf(numbers, sizeof numbers, "%d.%d.%d", DPOPKIT_VERSION_MAJOR, DPOPKIT_VERSION_MINOR, DPOPKIT_VERSION_PATCH);
    ok = lib != NULL && strcmp(lib, DPOPKIT_VERSION) == 0 && strncmp(DPOPKIT_VERSION, numbers, strlen(numbers)) == 0;
    printf("macros=%s string=%s library=%s\n", numbers, DPOPKIT_VERSION, lib ? lib : "(null)");
    dpopkit_string_free(lib);
    return ok ? 0 : 1;
}
"#;

#[test]
fn version_macros_equal_cargo_toml_and_dpopkit_version() {
    let dir = scratch("version");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("version.c");
    std::fs::write(&src, VERSION_C).unwrap();
    let version = cargo_toml_version();
    let (major, minor, patch) = major_minor_patch(&version);
    let compile = |major: &str, exe: &Path| -> Output {
        Command::new("gcc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(format!("-DEXPECT_MAJOR={major}"))
            .arg(format!("-DEXPECT_MINOR={minor}"))
            .arg(format!("-DEXPECT_PATCH={patch}"))
            .arg("-I")
            .arg(repo().join("include"))
            .arg(&src)
            .arg("-o")
            .arg(exe)
            .arg(format!("-L{}", lib_dir().display()))
            .arg("-ldpopkit")
            .arg(format!("-Wl,-rpath,{}", lib_dir().display()))
            .output()
            .unwrap()
    };
    let exe = dir.join("version");
    let out = compile(&major, &exe);
    assert!(out.status.success(), "the version check does not compile:\n{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&exe).env_remove("LD_LIBRARY_PATH").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the macros and dpopkit_version() differ: {stdout}");
    assert_eq!(stdout.trim(), format!("macros={major}.{minor}.{patch} string={version} library={version}"));

    // The compile-time check can fail: another major is an #error.
    let out = compile("99", &dir.join("never"));
    assert!(!out.status.success(), "a wrong EXPECT_MAJOR compiled");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not Cargo.toml's version"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn python_package_version_is_cargo_toml_version() {
    let pyproject = std::fs::read_to_string(repo().join("bindings/python/pyproject.toml")).unwrap();
    let line = pyproject.lines().find(|l| l.starts_with("version = ")).expect("a version in pyproject.toml");
    assert_eq!(line.split('"').nth(1).unwrap(), cargo_toml_version(), "bindings/python/pyproject.toml");
}

// ---- the release build and the install layout ----

fn install_sh() -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg(repo().join("bindings/c/install.sh")).env_remove("DESTDIR");
    cmd
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"))
}

/// target/release, built once per test process by install.sh (cargo: a no-op when current).
fn release() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        run(install_sh().arg("--build-only"), "install.sh --build-only (cargo rustc --profile release)");
        target_dir().join("release")
    })
}

fn has_debug_info(file: &Path) -> bool {
    let out = run(Command::new("readelf").args(["-S", "-W"]).arg(file), "readelf -S");
    out.contains(".debug_info")
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> String {
    run(Command::new("pkg-config").args(args).env("PKG_CONFIG_PATH", pc_dir).env_remove("PKG_CONFIG_LIBDIR"), "pkg-config")
        .trim()
        .to_string()
}

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// Runs the C sample (KEY TOKEN_URL API PASSWORD LOG) against peers that require nonces.
fn run_sample(exe: &Path, peers: &Peers, log: &Path) -> String {
    common::c_sample::check(&common::c_sample::run(exe, peers, log), log, None)
}

#[test]
fn release_libraries_ship_without_debug_info() {
    let dir = release();
    let so = dir.join("libdpopkit.so");
    assert!(!has_debug_info(&so), "target/release/libdpopkit.so carries DWARF: the release profile must strip it");
    assert_eq!(soname_of(&so).as_deref(), Some(expected_soname().as_str()));
    // Still symbolized: the symbol table stays for backtraces and profilers.
    let syms = run(Command::new("nm").arg(&so), "nm");
    assert!(syms.contains("dpopkit_http_quick_get_str"), "the release .so lost its symbol table");
}

#[test]
fn install_then_build_the_c_sample_with_pkg_config_shared_and_static() {
    let dir = release();
    let version = cargo_toml_version();
    let soname = expected_soname();
    let prefix = scratch("prefix");
    run(install_sh().arg("--prefix").arg(&prefix), "install.sh --prefix");
    let lib = prefix.join("lib");

    // Layout: the real file, the SONAME link, the development link.
    let real = format!("libdpopkit.so.{version}");
    assert!(lib.join(&real).is_file() && !lib.join(&real).is_symlink(), "{real} is installed as a file");
    assert_eq!(std::fs::read_link(lib.join(&soname)).unwrap(), PathBuf::from(&real));
    assert_eq!(std::fs::read_link(lib.join("libdpopkit.so")).unwrap(), PathBuf::from(&soname));
    assert_eq!(soname_of(&lib.join(&real)).as_deref(), Some(soname.as_str()));
    for f in ["include/dpopkit.h", "include/dpopkit.hpp", "lib/libdpopkit.a", "lib/pkgconfig/dpopkit.pc"] {
        assert!(prefix.join(f).is_file(), "install.sh did not install {f}");
    }
    assert_eq!(std::fs::read(prefix.join("include/dpopkit.h")).unwrap(), std::fs::read(repo().join("include/dpopkit.h")).unwrap());
    assert!(!has_debug_info(&lib.join(&real)), "the installed .so carries debug info");
    assert!(!has_debug_info(&lib.join("libdpopkit.a")), "the installed .a carries debug info");

    // dpopkit.pc: Libs.private is what rustc reported for this static library.
    let pc_dir = lib.join("pkgconfig");
    assert_eq!(pkg_config(&pc_dir, &["--modversion", "dpopkit"]), version);
    let rustc_says = std::fs::read_to_string(dir.join("dpopkit-native-static-libs.txt")).unwrap();
    assert!(rustc_says.contains("-lc"), "{rustc_says}");
    let pc = std::fs::read_to_string(pc_dir.join("dpopkit.pc")).unwrap();
    assert!(pc.contains(&format!("\nLibs.private: {}\n", rustc_says.trim())), "{pc}");
    assert_eq!(pkg_config(&pc_dir, &["--static", "--libs", "dpopkit"]), format!("-L{} -ldpopkit {}", lib.display(), rustc_says.trim()));

    // Shared: exactly the README's line, plus an rpath to run it; it needs the SONAME.
    let flags = pkg_config(&pc_dir, &["--cflags", "--libs", "dpopkit"]);
    let exe = prefix.join("sample");
    run(
        Command::new("gcc")
            .args(C_FLAGS)
            .arg(repo().join("bindings/c/sample.c"))
            .arg("-o")
            .arg(&exe)
            .args(flags.split_whitespace())
            .arg(format!("-Wl,-rpath,{}", lib.display())),
        "gcc sample.c $(pkg-config --cflags --libs dpopkit)",
    );
    assert!(needed_of(&exe).contains(&soname), "the program must record the SONAME: {:?}", needed_of(&exe));

    // C++: the quick start of bindings/cpp/README.md with the installed dpopkit.hpp.
    let readme = std::fs::read_to_string(repo().join("bindings/cpp/README.md")).unwrap();
    let quick_start = readme.split("```cpp\n").nth(1).and_then(|s| s.split("```").next()).expect("a cpp block");
    let qs = prefix.join("quick_start.cpp");
    std::fs::write(&qs, quick_start).unwrap();
    run(
        Command::new("g++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg(&qs)
            .arg("-o")
            .arg(prefix.join("quick_start"))
            .args(flags.split_whitespace()),
        "the C++ README quick start with pkg-config",
    );

    // Static: a static-only install, where `pkg-config --static --libs` alone links the .a.
    let sprefix = scratch("prefix-static");
    run(install_sh().arg("--prefix").arg(&sprefix).args(["--library-type", "static"]), "install.sh static");
    assert!(!sprefix.join("lib/libdpopkit.so").exists() && sprefix.join("lib/libdpopkit.a").is_file());
    let sflags = pkg_config(&sprefix.join("lib/pkgconfig"), &["--static", "--cflags", "--libs", "dpopkit"]);
    let exe_static = sprefix.join("sample-static");
    run(
        Command::new("gcc")
            .args(C_FLAGS)
            .arg(repo().join("bindings/c/sample.c"))
            .arg("-o")
            .arg(&exe_static)
            .args(sflags.split_whitespace()),
        "gcc sample.c $(pkg-config --static --cflags --libs dpopkit)",
    );
    assert!(
        !needed_of(&exe_static).iter().any(|n| n.starts_with("libdpopkit")),
        "the static build still needs the shared library: {:?}",
        needed_of(&exe_static)
    );

    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    for exe in [&exe, &exe_static] {
        run_sample(exe, &peers, &prefix.join("session.log"));
    }
    assert_eq!(peers.tokens_issued(), 2, "one token per process");
    let ldd = run(Command::new("ldd").arg(&exe).env_remove("LD_LIBRARY_PATH"), "ldd");
    assert!(ldd.contains(&format!("{soname} => {}/{soname}", lib.display())), "uses the installed library:\n{ldd}");
    let _ = std::fs::remove_dir_all(&prefix);
    let _ = std::fs::remove_dir_all(&sprefix);
}

#[test]
fn install_stages_under_destdir_and_the_pc_file_names_the_final_prefix() {
    release();
    let stage = scratch("destdir");
    let prefix = "/opt/dpopkit-staged-test";
    run(
        install_sh().env("DESTDIR", &stage).args([
            "--prefix",
            prefix,
            "--libdir",
            "/opt/dpopkit-staged-test/lib64",
            "--library-type",
            "shared",
        ]),
        "DESTDIR=... install.sh",
    );
    assert!(!Path::new(prefix).exists(), "install.sh wrote outside DESTDIR");
    let lib = stage.join("opt/dpopkit-staged-test/lib64");
    assert!(lib.join(format!("libdpopkit.so.{}", cargo_toml_version())).is_file());
    assert!(lib.join("libdpopkit.so").is_symlink() && !lib.join("libdpopkit.a").exists());
    let pc = std::fs::read_to_string(lib.join("pkgconfig/dpopkit.pc")).unwrap();
    assert!(pc.contains("\nprefix=/opt/dpopkit-staged-test\n"), "{pc}");
    assert!(pc.contains("\nlibdir=/opt/dpopkit-staged-test/lib64\n"), "{pc}");
    assert!(!pc.contains(&stage.display().to_string()), "the staging directory leaked into dpopkit.pc:\n{pc}");
    let _ = std::fs::remove_dir_all(&stage);
}

#[test]
fn install_sh_rejects_bad_arguments() {
    for args in [&[][..], &["--library-type", "dynamic", "/tmp/x"][..], &["--frobnicate"][..]] {
        let out = install_sh().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage") || String::from_utf8_lossy(&out.stderr).contains("--library-type"));
    }
}

/// bindings/cpp/README.md's "from the source tree" build line, run as written (with the
/// test's C++ sample as app.cpp and the program written to a scratch directory): it links
/// against target/release, and the program finds the library at run time through the
/// SONAME link the build puts there (it used to fail: no libdpopkit.so.0.1 in target/release).
#[test]
fn the_cpp_readme_source_tree_build_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("bindings/cpp/README.md")).unwrap();
    let marker = readme.find("<!-- cpp-source-tree").expect("the <!-- cpp-source-tree --> marker");
    let rest = &readme[marker..];
    let open = rest.find("\n`").expect("a code line follows the marker") + 2;
    let line = &rest[open..open + rest[open..].find('`').unwrap()];
    assert!(line.contains("-L target/release -ldpopkit") && line.ends_with("-o app"), "{line}");
    let release = release();
    assert!(release.join(expected_soname()).exists(), "the build put {} beside the library", expected_soname());
    let dir = scratch("cpp-source-tree");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("app");
    let cmd = line
        .replace("app.cpp", &repo().join("tests/cpp/sample.cpp").display().to_string())
        .replace(" -o app", &format!(" -o '{}'", exe.display()));
    let target = target_dir();
    let cmd =
        if target != repo().join("target") { cmd.replace("target/release", &target.join("release").display().to_string()) } else { cmd };
    run(Command::new("sh").arg("-ec").arg(&cmd).current_dir(repo()), "the C++ README's source-tree build");
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = dir.join("log.txt");
    let stdout = common::c_sample::check(&common::c_sample::run(&exe, &peers, &log), &log, None);
    assert!(stdout.contains("cpp checks: all passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The declared MSRV (Cargo.toml `rust-version`) holds for what the library needs: no
/// dependency the library links (normal dependencies, every platform, every default
/// feature) declares a newer `rust-version`. (The library's own use of std is checked
/// against it by clippy's `incompatible_msrv` in scripts/test.sh; this machine has no older
/// toolchain to build with.)
#[test]
fn no_dependency_of_the_library_needs_a_newer_rust_than_declared() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out =
        Command::new(cargo).args(["metadata", "--format-version", "1", "--offline"]).current_dir(repo()).output().expect("cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: std::collections::HashMap<&str, &serde_json::Value> =
        m["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
    let nodes: std::collections::HashMap<&str, &serde_json::Value> =
        m["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let version = |v: &str| -> Vec<u32> {
        let mut parts: Vec<u32> = v.split('.').map(|x| x.parse().unwrap()).collect();
        parts.resize(3, 0);
        parts
    };
    let root = m["resolve"]["root"].as_str().expect("the workspace root is dpopkit");
    let ours = packages[root]["rust_version"].as_str().expect("Cargo.toml declares rust-version");
    let (mut seen, mut todo, mut newer) = (std::collections::HashSet::new(), vec![root], Vec::new());
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
        let p = packages[id];
        match p["rust_version"].as_str() {
            Some(rv) if version(rv) > version(ours) => newer.push(format!("{} {} needs Rust {rv}", p["name"], p["version"])),
            _ => {}
        }
    }
    assert!(seen.len() > 20, "the library's dependencies were found ({})", seen.len());
    assert!(newer.is_empty(), "Cargo.toml declares rust-version {ours}, but: {newer:?}");
}
