//! README.md's C quick start, run as written (issue 12, item 6): the block after the
//! `<!-- c-quick-start -->` marker is run by `sh -e` from the top of the source tree, with
//! HOME in a scratch directory (so `$HOME/.local` is a fresh prefix). It installs with
//! bindings/c/install.sh, compiles bindings/c/sample.c with pkg-config and the rpath the
//! README shows, starts the bundled peers on free ports with nonces required, and must print
//! `status: 200` and the API's answer — also while the ports 4010 and 4011 are taken — and
//! must end, showing why, when the servers cannot start. It leaves the checkout as it was.
//! bindings/c/README.md shows the same block (checked equal). bindings/python/README.md's
//! quick start (a virtual environment, `pip install -v ./bindings/python`) is run the same
//! way, then the sample flow with the virtual environment's python against the real peers.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Peers, repo};

/// The fenced `sh` block after README.md's `<!-- c-quick-start` marker line.
fn quick_start_block(readme: &str) -> String {
    block_after(readme, "<!-- c-quick-start")
}

/// The fenced `sh` block after the line starting with `marker`.
fn block_after(readme: &str, marker: &str) -> String {
    let marker = readme.find(marker).unwrap_or_else(|| panic!("the README has the {marker} --> marker"));
    let rest = &readme[marker..];
    let open = rest.find("```sh\n").expect("an ```sh block follows the marker") + "```sh\n".len();
    let close = rest[open..].find("\n```").expect("the block is closed");
    rest[open..open + close + 1].to_string()
}

fn home_of_user() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).expect("HOME is set")
}

struct Run {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `script` with `sh -e` from the top of the tree, HOME in a scratch directory, and
/// `path_first` (if any) in front of PATH. Everything it starts is killed afterwards.
fn run_block(script: &str, tag: &str, path_first: Option<&std::path::Path>, limit: Duration) -> Run {
    let scratch = std::env::temp_dir().join(format!("dpopkit-readme-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let (out_file, err_file) = (scratch.join("stdout"), scratch.join("stderr"));
    // cargo and rustup keep living where they are; everything else sees the scratch HOME.
    let user_home = home_of_user();
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(user_home.join(".cargo"), PathBuf::from);
    let rustup_home = std::env::var_os("RUSTUP_HOME").map_or(user_home.join(".rustup"), PathBuf::from);
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo().join("target"), PathBuf::from);
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(first) = path_first {
        let mut p = first.as_os_str().to_owned();
        p.push(":");
        p.push(&path);
        path = p;
    }
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(repo())
            .env("HOME", &scratch)
            .env("PATH", path)
            .env("TMPDIR", &scratch)
            .env("CARGO_HOME", cargo_home)
            .env("RUSTUP_HOME", rustup_home)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("PKG_CONFIG_PATH")
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("DPOPKIT_CLIENT_ID")
            .env_remove("DPOPKIT_CLIENT_SECRET")
            .env_remove("DESTDIR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_file).unwrap())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .process_group(0) // the peers it starts in the background go with it
            .spawn()
            .expect("sh")
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever happened, nothing it started stays behind.
    let _ = Command::new("kill").arg("--").arg(format!("-{}", child.id())).stderr(Stdio::null()).status();
    let _ = child.wait();
    let read = |p: &PathBuf| {
        let mut s = String::new();
        let _ = std::fs::File::open(p).and_then(|mut f| f.read_to_string(&mut s));
        s
    };
    let run = Run { status, stdout: read(&out_file), stderr: read(&err_file) };
    let _ = std::fs::remove_dir_all(&scratch);
    run
}

/// What the quick start must not touch in the checkout (it works in a temporary directory).
fn checkout_outputs() -> Vec<(PathBuf, bool)> {
    ["sample", "peers.json", "sessionLog.txt"]
        .iter()
        .map(|n| repo().join(n))
        .map(|p| {
            let e = p.exists();
            (p, e)
        })
        .collect()
}

#[test]
fn readme_c_quick_start_runs_as_written_with_the_usual_ports_busy() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = quick_start_block(&readme);
    for needed in ["install.sh --prefix", "PKG_CONFIG_PATH", "-Wl,-rpath", "/sample\" tests/fixtures"] {
        assert!(block.contains(needed), "the quick start shows {needed}:\n{block}");
    }
    // Ports a newcomer's machine may have taken already (the ones the servers' docs and
    // earlier versions of this block use): held for the whole run.
    let _busy: Vec<std::net::TcpListener> =
        [4010u16, 4011].iter().filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).ok()).collect();
    let before = checkout_outputs();
    let run = run_block(&block, "ok", None, Duration::from_secs(1200));
    for (p, existed) in before {
        assert_eq!(p.exists(), existed, "the quick start changed {} in the checkout", p.display());
    }
    let Run { status, stdout, stderr } = run;
    let status = status.unwrap_or_else(|| panic!("the quick start did not finish in 20 minutes\n{stdout}\n{stderr}"));
    assert!(
        status.success(),
        "the README's C quick start failed ({status}):\n--- script\n{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("status: 200"), "{stdout}\n{stderr}");
    assert!(stdout.contains("m2m.dpop"), "the API's answer (the token's claims): {stdout}");
}

/// When the local servers cannot start, the block ends (it used to wait for their output
/// forever) and shows why. A `node` in front of PATH fails for server.mjs as a busy port
/// does and runs the real node for everything else.
#[test]
fn readme_c_quick_start_ends_and_says_why_when_the_servers_fail() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = quick_start_block(&readme);
    let real_node = String::from_utf8(Command::new("sh").arg("-c").arg("command -v node").output().unwrap().stdout).unwrap();
    let bin = std::env::temp_dir().join(format!("dpopkit-readme-node-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("node");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$1\" in *server.mjs) echo 'server.mjs: cannot listen on 127.0.0.1:4010 (EADDRINUSE)' >&2; exit 1;; esac\nexec {} \"$@\"\n",
            real_node.trim()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = run_block(&block, "fail", Some(&bin), Duration::from_secs(1200));
    let _ = std::fs::remove_dir_all(&bin);
    let status = run.status.unwrap_or_else(|| panic!("the quick start still waits when the servers fail\n{}\n{}", run.stdout, run.stderr));
    assert!(!status.success(), "it must fail: {}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("EADDRINUSE") || run.stderr.contains("EADDRINUSE"),
        "the servers' error is shown:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn bindings_c_readme_shows_the_tested_quick_start() {
    let top = quick_start_block(&std::fs::read_to_string(repo().join("README.md")).unwrap());
    let c = quick_start_block(&std::fs::read_to_string(repo().join("bindings/c/README.md")).unwrap());
    assert_eq!(c, top, "bindings/c/README.md's quick start must be README.md's (which the tests run) word for word");
}

/// bindings/python/README.md's quick start on a fresh HOME: a virtual environment, pip
/// install from the source tree (pip fetches setuptools for the build, as it does for a
/// user), the version printed; then the sample flow with that environment's python, against
/// the real peers with nonces: status 200, the package and its library from the venv.
#[test]
fn python_readme_quick_start_runs_as_written_in_a_fresh_virtual_environment() {
    let readme = std::fs::read_to_string(repo().join("bindings/python/README.md")).unwrap();
    let block = block_after(&readme, "<!-- python-quick-start");
    for needed in ["python3 -m venv", "/bin/activate", "pip install", "./bindings/python"] {
        assert!(block.contains(needed), "the quick start shows {needed}:\n{block}");
    }
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    // After the block, in the same shell (the venv active): the flow, then where it ran from.
    let script = format!(
        "{block}\ncd \"$TMPDIR\"\npython {} {} {} {} test-password\n",
        repo().join("tests/python/sample_flow.py").display(),
        peers.token_endpoint,
        peers.api,
        repo().join("tests/fixtures/ec_pkcs8_enc.pem").display()
    );
    let leftovers = || {
        ["bindings/python/build", "bindings/python/dpopkit.egg-info", "bindings/python/dpopkit/libdpopkit.so"]
            .iter()
            .filter(|p| repo().join(p).exists())
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    let before = leftovers();
    let Run { status, stdout, stderr } = run_block(&script, "python", None, Duration::from_secs(1200));
    assert_eq!(leftovers(), before, "pip install left build files in the checkout");
    let status = status.unwrap_or_else(|| panic!("the Python quick start did not finish in 20 minutes\n{stdout}\n{stderr}"));
    assert!(
        status.success(),
        "the Python quick start failed ({status}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(stdout.lines().any(|l| l.trim() == version), "the block prints dpopkit.version() = {version}:\n{stdout}");
    let last =
        stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no result line from the flow:\n{stdout}\n{stderr}"));
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["status"], 200, "{last}");
    assert_eq!(v["client_id"], "m2m.dpop", "{last}");
    let package = v["package"].as_str().unwrap_or_default();
    assert!(package.contains(".venvs/dpopkit/"), "dpopkit imported from the quick start's venv, not the tree: {last}");
}
