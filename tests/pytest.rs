//! The Python bindings (bindings/python) under pytest, each pytest case reported as a test of
//! its own: the cases are collected with `pytest --collect-only -q`, and the first case that
//! is run starts pytest ONCE for every selected case (with --junitxml); each case then
//! reports its own outcome from that report. A case pytest skipped or marked xfail FAILS:
//! a skip is not a pass.
//!
//! DPOPKIT_LIBRARY points at the libdpopkit.so cargo built for this test run (the test
//! executable's own directory, target/<profile>/deps). The suite starts the real test peers
//! with node, so it needs node and tests/peers' npm packages like the Rust tests, and pytest:
//! the virtual environment target/py that scripts/setup.sh makes (never the system Python),
//! or the interpreter DPOPKIT_PYTHON names.
//!
//! `harness = false` (Cargo.toml): libtest-mimic takes the usual test arguments (a filter,
//! `--exact`, `--skip`, `--list`, `--test-threads`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Failed, Trial};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cdylib next to this test executable, i.e. the one built for this `cargo test` run.
fn library() -> Result<PathBuf, String> {
    let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let name = if cfg!(target_os = "windows") {
        "dpopkit.dll"
    } else if cfg!(target_os = "macos") {
        "libdpopkit.dylib"
    } else {
        "libdpopkit.so"
    };
    let lib = dir.join(name);
    if lib.exists() { Ok(lib) } else { Err(format!("{} not found: cargo should build the cdylib for the tests", lib.display())) }
}

/// DPOPKIT_PYTHON, else the tests' virtual environment that scripts/setup.sh makes
/// (target/py, with pytest). Neither: the trials fail and say to run setup.sh.
fn python() -> Result<String, String> {
    if let Ok(p) = std::env::var("DPOPKIT_PYTHON") {
        return Ok(p);
    }
    let venv = repo().join("target/py/bin/python");
    if venv.exists() {
        Ok(venv.display().to_string())
    } else {
        Err(format!(
            "{} not found and DPOPKIT_PYTHON not set: run `bash scripts/setup.sh` (it makes the virtual environment with pytest)",
            venv.display()
        ))
    }
}

fn pytest(py: &str, lib: &Path) -> Command {
    let mut cmd = Command::new(py);
    cmd.args(["-m", "pytest", "-p", "no:cacheprovider"])
        .current_dir(repo())
        .env("DPOPKIT_LIBRARY", lib)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONPATH");
    cmd
}

/// The node ids of tests/python (`tests/python/test_api.py::test_x[param]`).
fn collect() -> Result<Vec<String>, String> {
    let (py, lib) = (python()?, library()?);
    match Command::new(&py).args(["-m", "pytest", "--version"]).output() {
        Err(e) => {
            return Err(format!("{py} could not be run ({e}): the Python binding tests need Python 3 and pytest (bash scripts/setup.sh)"));
        }
        Ok(out) if !out.status.success() => {
            return Err(format!("pytest is not installed for {py}: bash scripts/setup.sh\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(_) => {}
    }
    let out = pytest(&py, &lib).args(["tests/python", "--collect-only", "-q"]).output().map_err(|e| format!("{py} -m pytest: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ids: Vec<String> = stdout.lines().filter(|l| l.contains("::")).map(str::to_string).collect();
    if !out.status.success() || ids.is_empty() {
        return Err(format!(
            "pytest --collect-only tests/python failed ({}) or found no test:\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(ids)
}

/// What pytest's JUnit XML report says of one case: None when it passed, else why not.
type Outcomes = std::collections::HashMap<(String, String), Option<String>>;

/// The (classname, name) pytest's JUnit XML gives node id `id`:
/// `tests/python/test_a.py::TestB::test_c[x]` -> ("tests.python.test_a.TestB", "test_c[x]").
fn junit_key(id: &str) -> (String, String) {
    let plain = id.find('[').map_or(id, |i| &id[..i]);
    let cut = plain.rfind("::").unwrap_or(0);
    let (path, name) = (&id[..cut], &id[cut + 2..]);
    let mut parts = path.split("::");
    let file = parts.next().unwrap_or("").trim_end_matches(".py").replace('/', ".");
    let class: Vec<&str> = std::iter::once(file.as_str()).chain(parts).collect();
    (class.join("."), name.to_string())
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = at + tag[at..].find('"')?;
    Some(unescape(&tag[at..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&#10;", "\n").replace("&amp;", "&")
}

/// The outcome of every `<testcase>` of a JUnit XML report.
fn parse_junit(xml: &str) -> Outcomes {
    let mut out = Outcomes::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<testcase ") {
        rest = &rest[at..];
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        let (body, next) = if tag.ends_with('/') {
            ("", &rest[tag_end..])
        } else {
            let close = rest.find("</testcase>").unwrap_or(rest.len());
            (&rest[tag_end..close], &rest[close..])
        };
        let key = (attr(tag, "classname").unwrap_or_default(), attr(tag, "name").unwrap_or_default());
        let verdict = ["failure", "error", "skipped"].iter().find(|k| body.contains(&format!("<{k}"))).map(|k| {
            let what = if *k == "skipped" { "skipped (a skip is not a pass: install what it needs, scripts/setup.sh)" } else { k };
            format!("pytest: {what}\n{}", unescape(body))
        });
        // A case can appear twice (a failure in its teardown after it passed): the worst wins.
        let entry = out.entry(key).or_insert(None);
        if entry.is_none() {
            *entry = verdict;
        }
        rest = next;
    }
    out
}

/// Runs pytest once for `ids` and reads its report (or says why there is none).
fn run(ids: &[String]) -> Result<Outcomes, String> {
    let (py, lib) = (python()?, library()?);
    let xml = std::env::temp_dir().join(format!("dpopkit-pytest-{}.xml", std::process::id()));
    let out = pytest(&py, &lib)
        .args(["-q", "-rfEs", &format!("--junitxml={}", xml.display())])
        .args(ids)
        .output()
        .map_err(|e| format!("running {py} -m pytest: {e}"))?;
    let report = std::fs::read_to_string(&xml);
    let _ = std::fs::remove_file(&xml);
    let text =
        || format!("--- stdout ---\n{}\n--- stderr ---\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let report = report.map_err(|e| format!("pytest ({}) wrote no report {} ({e}):\n{}", out.status, xml.display(), text()))?;
    let outcomes = parse_junit(&report);
    if outcomes.is_empty() {
        return Err(format!("pytest ({}) reported no case:\n{}", out.status, text()));
    }
    // Anything pytest says beyond its cases (an error at collection, in a session fixture):
    // the cases are then not to be trusted.
    if !out.status.success() && outcomes.values().all(Option::is_none) {
        return Err(format!("pytest failed ({}) although every case passed:\n{}", out.status, text()));
    }
    Ok(outcomes)
}

/// The harness itself can fail: a JUnit report with a failed, an erroring and a skipped case
/// gives each of them a reason, a passed one none, and node ids map to the report's keys.
fn the_report_reader_fails_what_did_not_pass() -> Result<(), Failed> {
    let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="pytest">
<testcase classname="tests.python.test_a" name="test_ok" time="0.1" />
<testcase classname="tests.python.test_a" name="test_bad[x]" time="0.1"><failure message="assert 1 == 2">a &lt;b&gt;</failure></testcase>
<testcase classname="tests.python.test_a.TestC" name="test_err" time="0.1"><error message="fixture">boom</error></testcase>
<testcase classname="tests.python.test_a" name="test_skip" time="0.0"><skipped type="pytest.skip" message="no softhsm">skip</skipped></testcase>
</testsuite></testsuites>"#;
    let o = parse_junit(xml);
    let get = |id: &str| o.get(&junit_key(id)).cloned().ok_or_else(|| format!("{id} not found in {o:?}"));
    if get("tests/python/test_a.py::test_ok")?.is_some() {
        return Err("a passed case was failed".into());
    }
    let bad = get("tests/python/test_a.py::test_bad[x]")?.ok_or("a failure passed")?;
    let err = get("tests/python/test_a.py::TestC::test_err")?.ok_or("an error passed")?;
    let skip = get("tests/python/test_a.py::test_skip")?.ok_or("a skip passed")?;
    if !(bad.contains("failure") && bad.contains("a <b>") && err.contains("error") && skip.contains("a skip is not a pass")) {
        return Err(format!("reasons: {bad:?} {err:?} {skip:?}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let ids = match collect() {
        Ok(ids) => ids,
        Err(e) => {
            let trial = Trial::test("pytest_collects_tests_python", move || Err(Failed::from(e)));
            libtest_mimic::run(&args, vec![trial]).exit();
        }
    };
    // The cases this run selects (the same rules as the harness's: a substring, or --exact;
    // --skip), so that a filtered run starts pytest for those only.
    let selected = |id: &String| {
        let name = id.as_str();
        let pass = match &args.filter {
            None => true,
            Some(f) if args.exact => name == f,
            Some(f) => name.contains(f.as_str()),
        };
        pass && !args.skip.iter().any(|s| if args.exact { name == s } else { name.contains(s.as_str()) })
    };
    let to_run: Vec<String> = ids.iter().filter(|id| selected(id)).cloned().collect();
    static OUTCOMES: OnceLock<Result<Outcomes, String>> = OnceLock::new();
    let own = Trial::test("the_report_reader_fails_what_did_not_pass", the_report_reader_fails_what_did_not_pass);
    let trials = std::iter::once(own)
        .chain(ids.into_iter().map(|id| {
            let to_run = to_run.clone();
            let key = junit_key(&id);
            Trial::test(id.clone(), move || {
                let outcomes = OUTCOMES.get_or_init(|| run(&to_run)).as_ref().map_err(|e| Failed::from(e.as_str()))?;
                match outcomes.get(&key) {
                    None => Err(format!("pytest did not report {id} (looked for {key:?} in its JUnit XML)").into()),
                    Some(None) => Ok(()),
                    Some(Some(why)) => Err(why.as_str().into()),
                }
            })
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
