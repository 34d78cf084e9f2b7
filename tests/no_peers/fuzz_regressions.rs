//! Replays fuzz inputs through the fuzz targets' own checks on every `cargo test`:
//! every file under fuzz/regressions/<target>/ (crash inputs kept from fuzzing and small
//! hand-made ones), plus large inputs built here rather than committed (a 1 MB header
//! value, a PEM block of 10,000 lines, JSON nested 100,000 deep).
//!
//! The checks live in fuzz/src/lib.rs and are shared with the libFuzzer targets, so an
//! input fails here exactly as it failed under `bash scripts/fuzz.sh`: a panic in dpopkit,
//! a Result that is not sensible (wrong error kind, a token outside its bounds), or a
//! secret that survives redaction. Each input must also finish within a time limit.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Per input. Generous: the test profile is unoptimised; the slowest legitimate input (a
/// PBKDF2-encrypted key, a 1 MB header value) takes a second or two there.
const LIMIT: Duration = Duration::from_secs(15);

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("regressions")
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// Runs `check` on each input; returns one line per input that panicked or was too slow.
/// Each input runs on its own thread so that one that hangs (quadratic parsing) is
/// reported after LIMIT instead of stalling the suite; such a thread is left behind and
/// ends with the test process.
fn replay(check: checks::Check, inputs: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, data) in inputs {
        let (tx, rx) = std::sync::mpsc::channel();
        let owned = data.clone();
        let start = Instant::now();
        std::thread::spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&owned)));
            let _ = tx.send(outcome.map_err(|e| panic_text(&*e)));
        });
        match rx.recv_timeout(LIMIT) {
            Ok(Ok(())) => {}
            Ok(Err(mut msg)) => {
                if msg.len() > 600 {
                    let mut end = 600;
                    while !msg.is_char_boundary(end) {
                        end -= 1;
                    }
                    msg.truncate(end);
                    msg.push_str("...");
                }
                failures.push(format!("{name} ({} bytes): panicked: {msg}", data.len()));
            }
            Err(_) => failures.push(format!(
                "{name} ({} bytes): still running after {:?} (hang or super-linear time)",
                data.len(),
                start.elapsed()
            )),
        }
    }
    failures
}

fn files(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = regressions_dir().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (format!("fuzz/regressions/{target}/{}", path.file_name().unwrap().to_string_lossy()), data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}: the replay would test nothing", dir.display());
    out
}

fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Inputs too large to commit, built the same way every run.
fn generated(target: &str) -> Vec<(String, Vec<u8>)> {
    let mb = 1 << 20;
    let no_pw = |data: &[u8]| [&[0u8][..], data].concat();
    let g = |name: &str, data: Vec<u8>| (format!("generated/{target}/{name}"), data);
    match target {
        "key_any_format" => {
            let line = "MHcCAQEEIHJYBsKV/ToqCjwLV2w2Hg4+82pCbQljuzC3o26Cd6ZroAoGCCqGSM49\n";
            let pem_10k = format!("-----BEGIN EC PRIVATE KEY-----\n{}-----END EC PRIVATE KEY-----\n", line.repeat(10_000));
            let many_blocks = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".repeat(10_000);
            let long_pw: Vec<u8> = [&[1u8, 255][..], &[b'p'; 255][..], include_bytes!("../fixtures/ec_pkcs8_enc.pem")].concat();
            vec![
                g("pem-10k-lines", no_pw(pem_10k.as_bytes())),
                g("pem-10k-foreign-blocks", no_pw(many_blocks.as_bytes())),
                g("pem-begin-1mb-no-end", no_pw(format!("-----BEGIN PRIVATE KEY-----\n{}", "A".repeat(mb)).as_bytes())),
                g("jwk-nested-100k", no_pw(format!("{{\"kty\":{}}}", nested(100_000, "")).as_bytes())),
                g("der-1mb-zeros", no_pw(&vec![0u8; mb])),
                g("der-huge-length", no_pw(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00])),
                g("encrypted-255-byte-password", long_pw),
            ]
        }
        "token_response" => vec![
            g("nested-100k", nested(100_000, "").into_bytes()),
            g("object-nested-100k", format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes()),
            g("1mb-access-token", format!(r#"{{"access_token":"{}","token_type":"DPoP","expires_in":5}}"#, "t".repeat(mb)).into_bytes()),
            g("1mb-token-type", format!(r#"{{"access_token":"secret-token-value","token_type":"{}"}}"#, "x".repeat(mb)).into_bytes()),
            g(
                "1mb-expires-in-digits",
                format!(r#"{{"access_token":"a","token_type":"DPoP","expires_in":{}}}"#, "9".repeat(mb)).into_bytes(),
            ),
        ],
        "www_authenticate" => {
            let k64 = 64 << 10; // ureq's default limit for a response's headers
            vec![
                g("1mb-unterminated-quote", format!("DPoP error=\"{}", "a".repeat(mb)).into_bytes()),
                g("1mb-token68", format!("Negotiate {}==", "a".repeat(mb)).into_bytes()),
                g("1mb-commas", ",".repeat(mb).into_bytes()),
                g("64k-quoted-backslashes", format!("DPoP error=\"{}\"", "\\\"".repeat(k64 / 2)).into_bytes()),
                g("64k-params", format!("DPoP {}", "a=b, ".repeat(k64 / 5)).into_bytes()),
                g("64k-schemes", "DPoP ".repeat(k64 / 5).into_bytes()),
                g("64k-equals", "=".repeat(k64).into_bytes()),
                g("64k-values", "DPoP error=x\n".repeat(k64 / 13).into_bytes()),
                // Each `a` after a `/` starts a new challenge whose token68 scan reads to the
                // end of the value: quadratic.
                g("64k-slashes", format!("x {}", "a/".repeat(k64 / 2)).into_bytes()),
            ]
        }
        "auth_token_json" => vec![
            g("nested-100k", nested(100_000, "").into_bytes()),
            g("member-nested-100k", format!("{{\"client_id\":{}}}", nested(100_000, "")).into_bytes()),
            g(
                "1mb-client-id",
                format!(r#"{{"client_id":"{}","client_secret":"b","token_endpoint":"http://127.0.0.1:1/token"}}"#, "c".repeat(mb))
                    .into_bytes(),
            ),
            g(
                "1mb-endpoint",
                format!(r#"{{"client_id":"a","client_secret":"b","token_endpoint":"https://h/{}"}}"#, "p".repeat(mb)).into_bytes(),
            ),
        ],
        "redact_body" => {
            // [content type, spaces, spaces/escape, damage, max, nth object, value length]
            let case = |header: [u8; 7], doc: &str| [&header[..], b"SeCrEtVaLuE12345", doc.as_bytes()].concat();
            vec![
                g("doc-nested-127", case([0, 0, 0, 0, 255, 0, 8], &nested(127, "{}"))),
                g("doc-nested-100k", case([0, 0, 0, 0, 255, 0, 8], &nested(100_000, "{}"))),
                g("1mb-html", case([2, 9, 1, 4, 255, 0, 8], &format!("{{\"a\":\"{}\"}}", "<p>x</p>".repeat(mb / 8)))),
                g("1mb-raw-binary", (0..mb).map(|i| (i * 7 % 256) as u8).collect()),
                g("1mb-form", [&[3u8][..], "access_token=x&".repeat(mb / 15).as_bytes()].concat()),
                // Each name starts a value that, scanned on its own, runs to the end: the
                // redaction of issue 10 item 1 took minutes on these.
                g("2mb-password-runs", [&[4u8][..], "password=".repeat(2 * mb / 9).as_bytes()].concat()),
                g("2mb-mixed-runs", [&[2u8][..], "access_token=\"client_secret\": password=".repeat(2 * mb / 40).as_bytes()].concat()),
                g("2mb-unclosed-quotes", [&[1u8][..], "\"password\":\"".repeat(2 * mb / 13).as_bytes()].concat()),
            ]
        }
        "scrub_secrets" => {
            let secret = |s: &str, text: String| [&[(s.len() - 1) as u8][..], s.as_bytes(), text.as_bytes()].concat();
            vec![
                g("2mb-periodic", secret(&"a".repeat(64), "a".repeat(2 * mb))),
                g("2mb-short-everywhere", secret("-", "-a".repeat(mb))),
                g("2mb-near-misses", secret("Tok3n-value-aaaaaaaa", "Tok3n-value-aaaaaaa".repeat(2 * mb / 19))),
                // Issue 18: the decoded view and the dump forms on megabytes of hostile text.
                // Escapes everywhere (each decoded, each match mapped back), the secret
                // written raw between them.
                g(
                    "2mb-dotnet-escapes",
                    secret("S3cr&t/Value+42", "S3cr\\u0026t\\u002FValue\\u002B42 S3cr&t/Value+42 ".repeat(2 * mb / 54)),
                ),
                g("2mb-html-references", secret("S3cr&t/Value+42", "S3cr&amp;t&#x2F;Value&#43;42&#X34;2 &#".repeat(2 * mb / 38))),
                // The UTF-16 of a periodic secret matching at every other byte.
                g("2mb-utf16-periodic", secret(&"a".repeat(16), "a\0".repeat(mb))),
                g("2mb-percent-runs", secret("%%%%%%%%%", "%25".repeat(2 * mb / 3))),
            ]
        }
        other => panic!("no generated inputs for {other}"),
    }
}

fn run_target(target: &str) {
    let _heavy = crate::common::cpu_heavy();
    let check = checks::TARGETS.iter().find(|(t, _)| *t == target).expect("a fuzz target").1;
    let mut inputs = files(target);
    inputs.extend(generated(target));
    let failures = replay(check, &inputs);
    assert!(failures.is_empty(), "{} of {} {target} regression inputs failed:\n{}", failures.len(), inputs.len(), failures.join("\n"));
}

#[test]
fn key_any_format() {
    run_target("key_any_format");
}

#[test]
fn token_response() {
    run_target("token_response");
}

#[test]
fn www_authenticate() {
    run_target("www_authenticate");
}

#[test]
fn auth_token_json() {
    run_target("auth_token_json");
}

#[test]
fn redact_body() {
    run_target("redact_body");
}

#[test]
fn scrub_secrets() {
    run_target("scrub_secrets");
}

#[test]
fn no_stray_regression_folders() {
    let known: Vec<&str> = checks::TARGETS.iter().map(|(t, _)| *t).collect();
    for entry in std::fs::read_dir(regressions_dir()).expect("fuzz/regressions exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(known.contains(&name.as_str()), "fuzz/regressions/{name} is not a fuzz target: its files would never run");
    }
}

/// The replay reports panics rather than swallowing them (the suite can fail).
#[test]
fn replay_reports_panics_and_names_the_input() {
    let failures = replay(|d| assert!(d.is_empty(), "boom"), &[("a".into(), vec![]), ("b".into(), vec![1])]);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].starts_with("b (1 bytes)") && failures[0].contains("boom"), "{failures:?}");
}
