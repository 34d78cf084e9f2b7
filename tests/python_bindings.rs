//! The Python bindings (bindings/python) under pytest: runs `python3 -m pytest tests/python -q`
//! with DPOPKIT_LIBRARY pointing at the libdpopkit.so cargo built for this test run (the
//! test executable's own directory, target/<profile>/deps). The suite starts the real test
//! peers with node, so it needs node and tests/peers' npm packages like the Rust tests, and
//! pytest: the virtual environment target/py that scripts/setup.sh makes (never the system
//! Python), or the interpreter DPOPKIT_PYTHON names.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cdylib next to this test executable, i.e. the one built for this `cargo test` run.
fn library() -> PathBuf {
    let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let name = if cfg!(target_os = "windows") {
        "dpopkit.dll"
    } else if cfg!(target_os = "macos") {
        "libdpopkit.dylib"
    } else {
        "libdpopkit.so"
    };
    let lib = dir.join(name);
    assert!(lib.exists(), "{} not found: cargo should build the cdylib for the tests", lib.display());
    lib
}

/// DPOPKIT_PYTHON, else the tests' virtual environment that scripts/setup.sh makes
/// (target/py, with pytest), else python3.
fn python() -> String {
    if let Ok(p) = std::env::var("DPOPKIT_PYTHON") {
        return p;
    }
    let venv = repo().join("target/py/bin/python");
    if venv.exists() { venv.display().to_string() } else { "python3".to_string() }
}

#[test]
fn python_bindings_pass_pytest() {
    let py = python();
    match Command::new(&py).args(["-m", "pytest", "--version"]).output() {
        Err(e) => panic!("{py} could not be run ({e}): the Python binding tests need Python 3 and pytest"),
        Ok(out) if !out.status.success() => panic!(
            "pytest is not installed for {py}: pip install pytest\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
    let lib = library();
    let out = Command::new(&py)
        .args(["-m", "pytest", "tests/python", "-q", "-p", "no:cacheprovider", "-rfEs"])
        .current_dir(repo())
        .env("DPOPKIT_LIBRARY", &lib)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap_or_else(|e| panic!("running {py} -m pytest: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest tests/python failed ({}) with DPOPKIT_LIBRARY={}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status,
        lib.display()
    );
    // Every test must really run: a skip is not a pass.
    let summary = stdout.lines().rev().find(|l| l.contains(" passed")).unwrap_or("");
    assert!(summary.contains(" passed"), "pytest ran no test:\n{stdout}");
    assert!(!summary.contains("skipped") && !summary.contains("xfail"), "pytest skipped tests:\n{stdout}");
    println!("{stdout}");
}
