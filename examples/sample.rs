//! The sample flow end to end against the bundled local servers:
//! `cargo run --example sample` starts the test authorization server (oidc-provider) and
//! the DPoP-validating resource server on 127.0.0.1 (nonces required at both), then does
//! exactly what the Chilkat sample does, through the C ABI, and prints status and body.
//!
//! Pass `--url URL --token-endpoint URL` to skip the local servers and use your own
//! (client m2m.dpop / secret, scope api, key tests/fixtures/ec_sec1.pem unless
//! `--key FILE` is given).

use std::ffi::{CStr, CString, c_char};
use std::io::BufRead;
use std::process::{Command, Stdio};

use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::capi::json::*;
use dpopkit::capi::key::*;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in arguments")
}

fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { dpopkit_string_free(p) };
    Some(s)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let repo = env!("CARGO_MANIFEST_DIR");
    let key_path = opt("--key").unwrap_or_else(|| format!("{repo}/tests/fixtures/ec_sec1.pem"));

    let mut _servers = None;
    let (token_url, api_url) = match (opt("--token-endpoint"), opt("--url")) {
        (Some(t), Some(u)) => (t, u),
        _ => {
            let peers = format!("{repo}/tests/peers");
            if !std::path::Path::new(&format!("{peers}/node_modules/oidc-provider")).exists() {
                eprintln!("installing the local test servers (npm ci in tests/peers)...");
                let ok = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&peers).status();
                assert!(ok.is_ok_and(|s| s.success()), "npm ci failed: Node 20+ and npm are needed");
            }
            let mut child = Command::new("node")
                .args([format!("{peers}/server.mjs").as_str(), "--as-nonce", "--rs-nonce"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("node is needed for the local servers");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).expect("the local servers did not start");
            eprintln!("local authorization server {}, resource server {}", v["issuer"], v["rs"]);
            let urls = (v["token_endpoint"].as_str().unwrap().to_string(), v["api"].as_str().unwrap().to_string());
            _servers = Some(child); // stdin closes when this ends: the servers exit
            urls
        }
    };
    let log_path = opt("--session-log").unwrap_or_else(|| "sessionLog.txt".to_string());

    // The sample, call for call.
    let priv_key = dpopkit_key_new();
    if unsafe { dpopkit_key_load_any_format_file(priv_key, c(&key_path).as_ptr(), c("").as_ptr()) } != 1 {
        eprintln!("{}", take(dpopkit_last_error_text(priv_key)).unwrap_or_default());
        std::process::exit(1);
    }
    let json = dpopkit_json_new();
    unsafe {
        dpopkit_json_update_string(json, c("client_secret").as_ptr(), c("secret").as_ptr());
        dpopkit_json_update_string(json, c("client_id").as_ptr(), c("m2m.dpop").as_ptr());
        dpopkit_json_update_string(json, c("token_endpoint").as_ptr(), c(&token_url).as_ptr());
        dpopkit_json_update_string(json, c("scope").as_ptr(), c("api").as_ptr());
    }
    let http = dpopkit_http_new();
    dpopkit_http_set_dpop_key(http, priv_key);
    let auth = dpopkit_json_emit(json);
    unsafe {
        dpopkit_http_set_auth_token(http, auth);
        dpopkit_string_free(auth);
        dpopkit_http_set_session_log_filename(http, c(&log_path).as_ptr());
    }
    let resp = take(unsafe { dpopkit_http_quick_get_str(http, c(&api_url).as_ptr()) });
    let status = dpopkit_http_last_status(http);
    println!("status: {status}");
    match resp {
        Some(body) => {
            println!("{body}");
            eprintln!("session log (secrets masked): {log_path}");
        }
        None => {
            println!("{}", take(dpopkit_last_error_text(http)).unwrap_or_default());
        }
    }
    for h in [http, json, priv_key] {
        dpopkit_destroy(h);
    }
    if status != 200 {
        std::process::exit(1);
    }
}
