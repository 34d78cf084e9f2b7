//! The C ABI from C: tests/c/*.c compiled against include/dpopkit.h
//! (-std=c11 -Wall -Wextra -Werror -pedantic), linked to the cdylib cargo just built, and run
//! against the real peers in every nonce mode. The header also compiles as C++17. The C
//! tests (misuse.c, flow.c, porting.c) run once more under valgrind memcheck, which must find
//! no error and no definitely lost byte (and does find a planted leak and invalid read).

use crate::common;

use std::process::Command;

use crate::common::{Peers, fixture, repo};

use crate::common::compile_c;

fn run_flow(args: &[&str]) {
    let exe = compile_c("flow", &args.join("").replace('-', ""));
    let peers = Peers::start(args);
    let log = std::env::temp_dir().join(format!("dpopkit-c-log-{}-{}.txt", std::process::id(), args.join("")));
    let _ = std::fs::remove_file(&log);
    let out = Command::new(&exe)
        .arg(fixture("ec_pkcs8_enc.pem"))
        .arg("test-password")
        .arg(&peers.token_endpoint)
        .arg(&peers.api)
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.matches("status: 200").count(), 3, "{stdout}");
    assert_eq!(peers.tokens_issued(), 1, "one token for all calls");
    assert_eq!(peers.rs_stats()["ok"], 4);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("GET /api/test HTTP/1.1"));
    assert!(!logged.contains("=secret") && !common::contains_jwt(&logged), "secret in the C flow's session log");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn c_sample_flow_without_nonces() {
    run_flow(&[]);
}

#[test]
fn c_sample_flow_nonce_at_as() {
    run_flow(&["--as-nonce"]);
}

#[test]
fn c_sample_flow_nonce_at_rs() {
    run_flow(&["--rs-nonce"]);
}

#[test]
fn c_sample_flow_nonce_at_both() {
    run_flow(&["--as-nonce", "--rs-nonce"]);
}

/// The porting flow of issue 12 from C (headers, POST + Location, bytes 0..255, status
/// text), nonces required at both servers.
#[test]
fn c_porting_flow_with_nonces() {
    let exe = compile_c("porting", "plain");
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let out = Command::new(&exe).arg(&peers.token_endpoint).arg(&peers.rs).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("created: 201 Created location /api/items/") && stdout.contains("bytes: 256"), "{stdout}");
    assert!(stdout.contains("porting: ok"), "{stdout}");
    assert_eq!(peers.tokens_issued(), 1);
    let _ = std::fs::remove_file(&exe);
}

#[test]
fn header_compiles_as_cpp17() {
    let status = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c++"])
        .arg(repo().join("include/dpopkit.h"))
        .status()
        .expect("a C++ compiler (c++) is needed");
    assert!(status.success());
}

/// The misuse matrix in C: every function with bad handles and bad strings.
#[test]
fn c_misuse_matrix() {
    let exe = compile_c("misuse", "plain");
    let out = Command::new(&exe).current_dir(repo()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed") && !stdout.starts_with("0 passed"), "{stdout}");
    let _ = std::fs::remove_file(&exe);
}

/// Runs a program under valgrind memcheck: Ok(stdout) when it exited 0 with no memcheck
/// error (an invalid read or write, a use of uninitialised memory, ...) and no definitely
/// lost byte; Err with what valgrind said otherwise.
fn memcheck(exe: &std::path::Path, args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-origins=no",
            "-q",
        ])
        .arg(exe)
        .args(args)
        .current_dir(repo())
        .output()
        .expect("valgrind is needed (apt-get install valgrind; scripts/setup.sh does it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("definitely lost") {
        return Err(format!("valgrind found errors or the program failed (exit {:?}):\n{stdout}\n{stderr}", out.status.code()));
    }
    Ok(stdout)
}

/// [`memcheck`], failing the test on any finding.
fn valgrind(exe: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    memcheck(exe, args).unwrap_or_else(|e| panic!("{e}"))
}

/// The memcheck run can fail: a C program that leaks a block and one that reads past the
/// end of a block (written here, never committed broken) are each refused, and the same
/// program without the bug passes — so a clean run of the C tests below means something.
#[test]
fn memcheck_refuses_a_leak_and_an_invalid_read() {
    let dir = std::env::temp_dir().join(format!("dpopkit-memcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let build = |name: &str, body: &str| {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, format!("#include <stdio.h>\n#include <stdlib.h>\nint main(void) {{\n{body}\n    return 0;\n}}\n")).unwrap();
        let exe = dir.join(name);
        let status =
            Command::new("cc").args(["-std=c11", "-O0", "-g"]).arg(&src).arg("-o").arg(&exe).status().expect("a C compiler (cc) is needed");
        assert!(status.success(), "compiling {name}.c");
        exe
    };
    // The block's only pointer is overwritten: definitely lost.
    let leak = build("leak", "    char *volatile p = malloc(100);\n    p[0] = 1;\n    p = NULL;\n    printf(\"%p\\n\", (void *)p);");
    // One int past the end of a block of four.
    let overread = build(
        "overread",
        "    int *p = malloc(4 * sizeof(int));\n    for (int i = 0; i < 4; i++) p[i] = i;\n    volatile int x = p[4];\n    printf(\"%d\\n\", x);\n    free(p);",
    );
    let clean = build(
        "clean",
        "    int *p = malloc(4 * sizeof(int));\n    for (int i = 0; i < 4; i++) p[i] = i;\n    volatile int x = p[3];\n    printf(\"%d\\n\", x);\n    free(p);",
    );
    let e = memcheck(&leak, &[]).expect_err("a leak must fail the memcheck run");
    assert!(e.contains("definitely lost"), "{e}");
    let e = memcheck(&overread, &[]).expect_err("an invalid read must fail the memcheck run");
    assert!(e.contains("Invalid read"), "{e}");
    memcheck(&clean, &[]).expect("the same program without the bug passes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn valgrind_misuse_matrix_and_sample_flow() {
    let misuse = compile_c("misuse", "valgrind");
    let stdout = valgrind(&misuse, &[]);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let flow = compile_c("flow", "valgrind");
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = std::env::temp_dir().join(format!("dpopkit-vg-log-{}.txt", std::process::id()));
    let key = fixture("ec_sec1.pem");
    let args = [key.as_os_str(), "".as_ref(), peers.token_endpoint.as_ref(), peers.api.as_ref(), log.as_os_str()];
    let stdout = valgrind(&flow, &args);
    assert_eq!(stdout.matches("status: 200").count(), 3, "{stdout}");
    let porting = compile_c("porting", "valgrind");
    let args = [peers.token_endpoint.as_ref(), peers.rs.as_ref()];
    let stdout = valgrind(&porting, &args);
    assert!(stdout.contains("porting: ok"), "{stdout}");
    for f in [misuse, flow, porting, log] {
        let _ = std::fs::remove_file(f);
    }
}

/// RSA keys in every format and generated, and Ed25519, from C against servers that take
/// only RS256, only PS256, only Ed25519 (issue 23): 200 each; a 1024-bit key and an RSA key
/// at an ES256-only server are refused with the fix.
#[test]
fn c_rsa_and_ed25519_keys_against_servers_that_take_one_algorithm() {
    let exe = compile_c("algs", "algs");
    let run = |peers: &Peers, keys: &[(String, &str)]| -> String {
        let mut cmd = Command::new(&exe);
        cmd.arg(&peers.issuer).arg(&peers.api);
        for (k, pw) in keys {
            cmd.arg(k).arg(pw);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let file = |f: &str| fixture(f).to_str().unwrap().to_string();
    let rsa: Vec<(String, &str)> = vec![
        (file("rsa.pem"), "-"),
        (file("rsa_pkcs1.pem"), "-"),
        (file("rsa_pkcs1.der"), "-"),
        (file("rsa_pkcs8.der"), "-"),
        (file("rsa_pkcs8_enc.pem"), "test-password"),
        (file("rsa.jwk"), "-"),
        (file("rsa4096.pem"), "-"),
        ("generate:PS256".to_string(), "-"),
        ("generate:RS256".to_string(), "-"),
    ];
    for only in ["RS256", "PS256"] {
        let peers = Peers::start(&["--as-nonce", "--rs-nonce", "--dpop-algs", only]);
        let out = run(&peers, &rsa);
        assert_eq!(out.matches("status=200 code=0").count(), rsa.len(), "{only}:\n{out}");
        assert!(peers.rs_stats()["ok_algs"].as_array().unwrap().iter().all(|a| a == only), "{only}: {}", peers.rs_stats());
    }
    let peers = Peers::start(&["--dpop-algs", "Ed25519"]);
    let out = run(&peers, &[(file("ed25519.pem"), "-"), ("generate:Ed25519".to_string(), "-")]);
    assert_eq!(out.matches("alg=EdDSA status=200 code=0").count(), 2, "{out}");
    assert!(peers.rs_stats()["ok_algs"].as_array().unwrap().iter().all(|a| a == "Ed25519"), "{}", peers.rs_stats());
    // Refusals: 1024 bits (never loaded), RSA at an ES256-only server (no token request).
    let peers = Peers::start(&["--dpop-algs", "ES256"]);
    let out = run(&peers, &[(file("rsa1024.pem"), "-"), (file("rsa.pem"), "-")]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("load=0") && lines[0].contains(&format!("code={}", dpopkit::dpopkit_result::KeyUnsupported as u32)), "{out}");
    assert!(lines[1].contains("1024 bits") && lines[1].contains("keygen --alg PS256"), "{out}");
    assert!(
        lines[2].contains("load=1 alg=RS256") && lines[2].contains(&format!("code={}", dpopkit::dpopkit_result::DpopProof as u32)),
        "{out}"
    );
    assert!(lines[3].contains("ES256 only") && lines[3].contains("an RSA key") && lines[3].contains("--alg ES256"), "{out}");
    assert_eq!(peers.token_requests(), 0);
    let _ = std::fs::remove_file(&exe);
}
