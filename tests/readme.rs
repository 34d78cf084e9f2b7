//! README.md's C quick start, run as written (issue 12, item 6): the block after the
//! `<!-- c-quick-start -->` marker is run by `sh -e` from the top of the source tree, with
//! HOME in a scratch directory (so `$HOME/.local` is a fresh prefix) and only the two fixed
//! ports replaced by free ones. It installs with bindings/c/install.sh, compiles
//! bindings/c/sample.c with pkg-config and the rpath the README shows, starts the bundled
//! peers with nonces required, and must print `status: 200` and the API's answer.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{closed_port, repo};

/// The fenced `sh` block after the marker line.
fn quick_start_block(readme: &str) -> String {
    let marker = readme.find("<!-- c-quick-start").expect("README.md has the <!-- c-quick-start --> marker");
    let rest = &readme[marker..];
    let open = rest.find("```sh\n").expect("an ```sh block follows the marker") + "```sh\n".len();
    let close = rest[open..].find("\n```").expect("the block is closed");
    rest[open..open + close + 1].to_string()
}

fn home_of_user() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).expect("HOME is set")
}

#[test]
fn readme_c_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = quick_start_block(&readme);
    for needed in ["install.sh --prefix", "PKG_CONFIG_PATH", "-Wl,-rpath", "./sample "] {
        assert!(block.contains(needed), "the quick start shows {needed}:\n{block}");
    }
    let (as_port, rs_port) = (closed_port().to_string(), closed_port().to_string());
    let script = block.replace("4010", &as_port).replace("4011", &rs_port);
    assert_ne!(script, block, "the quick start names the ports 4010 and 4011");

    let scratch = std::env::temp_dir().join(format!("dpopkit-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let (out_file, err_file) = (scratch.join("stdout"), scratch.join("stderr"));
    let outputs = [repo().join("sample"), repo().join("peers.json")];
    for f in &outputs {
        let _ = std::fs::remove_file(f);
    }

    // cargo and rustup keep living where they are; everything else sees the scratch HOME.
    let user_home = home_of_user();
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(user_home.join(".cargo"), PathBuf::from);
    let rustup_home = std::env::var_os("RUSTUP_HOME").map_or(user_home.join(".rustup"), PathBuf::from);
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(repo().join("target"), PathBuf::from);
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-ec")
            .arg(&script)
            .current_dir(repo())
            .env("HOME", &scratch)
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
    let deadline = Instant::now() + Duration::from_secs(1200);
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
    let (stdout, stderr) = (read(&out_file), read(&err_file));
    let sample_built = repo().join("sample").exists();
    for f in &outputs {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let status = status.unwrap_or_else(|| panic!("the quick start did not finish in 20 minutes\n{stdout}\n{stderr}"));
    assert!(status.success(), "the README's C quick start failed ({status}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(sample_built, "no ./sample was built");
    assert!(stdout.contains("status: 200"), "{stdout}\n{stderr}");
    assert!(stdout.contains("m2m.dpop"), "the API's answer (the token's claims): {stdout}");
}
