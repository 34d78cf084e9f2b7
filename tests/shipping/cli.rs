//! The `dpopkit` command-line tool (src/bin/dpopkit.rs), run as a user runs it, against the
//! real peers with DPoP nonces required at both the AS and the RS.

use crate::common;
use crate::common::tls as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Peers, fixture};

const SECRET_FLAG_VALUE: &str = "secret";

fn dpopkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpopkit"));
    cmd.env_remove("DPOPKIT_CLIENT_SECRET").env_remove("DPOPKIT_KEY_PASSWORD");
    cmd
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dpopkit-cli-{name}-{}", std::process::id()))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `get`/`request` options for the sample client, without the secret.
fn client_args(cmd: &mut Command, peers: &Peers, key: &Path) {
    cmd.arg("--key").arg(key).args(["--client-id", "m2m.dpop", "--token-endpoint", &peers.token_endpoint, "--scope", "api"]);
}

fn expected_jkt() -> String {
    std::fs::read_to_string(fixture("ec.jkt")).unwrap().trim().to_string()
}

#[test]
fn get_and_request_with_nonces_at_as_and_rs() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let log = scratch("session.log");
    let _ = std::fs::remove_file(&log);

    // get, secret on the command line, encrypted key, session log.
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8_enc.pem"));
    cmd.args(["--key-password", "test-password", "--client-secret", SECRET_FLAG_VALUE, "--timeout-ms", "20000"])
        .arg("--session-log")
        .arg(&log);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let body = text(&out.stdout);
    assert!(body.starts_with('['), "the body, and only the body, on stdout: {body}");
    assert!(body.contains(r#"{"type":"client_id","value":"m2m.dpop"}"#), "{body}");
    assert!(body.contains(&expected_jkt()), "token bound to the key: {body}");
    assert!(out.stderr.is_empty(), "{}", show(&out));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("GET /api/test HTTP/1.1") && logged.contains("use_dpop_nonce"), "{logged}");
    assert!(!logged.contains("=secret") && !common::contains_jwt(&logged), "a secret in the session log:\n{logged}");

    // The secret from the environment (the documented way), key password too.
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8_enc.pem"));
    cmd.env("DPOPKIT_CLIENT_SECRET", "secret").env("DPOPKIT_KEY_PASSWORD", "test-password");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("m2m.dpop"));

    // request POST with a body, client_secret_basic.
    let out = dpopkit()
        .args(["request", "POST", &peers.api, "--data", r#"{"n":1}"#, "--content-type", "application/json"])
        .arg("--key")
        .arg(fixture("ec_sec1.pem"))
        .args(["--client-id", "m2m.dpop.basic", "--auth-method", "client_secret_basic"])
        .args(["--token-endpoint", &peers.token_endpoint])
        .env("DPOPKIT_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let body = text(&out.stdout);
    assert!(body.contains(r#"{"type":"client_id","value":"m2m.dpop.basic"}"#), "{body}");
    assert!(body.contains(r#"{"type":"request_body","value":"{\"n\":1}"}"#), "{body}");

    assert_eq!(peers.tokens_issued(), 3, "one token per process");
    assert_eq!(peers.rs_stats()["ok"], 3);
    let _ = std::fs::remove_file(&log);
}

#[test]
fn failures_exit_non_zero_with_the_error_on_stderr() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let wrong = "wr0ng-s3cret-value";

    // Wrong secret: the token endpoint refuses; the error names it, never the secret.
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", wrong).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("invalid_client") && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains(wrong) && !text(&out.stdout).contains(wrong), "{}", show(&out));
    assert!(out.stdout.is_empty());

    // Also when the wrong secret is on the command line.
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api, "--client-secret", wrong]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8.pem"));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(!text(&out.stderr).contains(wrong), "{}", show(&out));

    // A non-2xx status from the URL: exit 1, status and the error document on stderr.
    let missing = format!("{}/missing", peers.rs);
    let mut cmd = dpopkit();
    cmd.args(["get", &missing]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("404") && stderr.contains("not_found"), "{stderr}");
    assert!(out.stdout.is_empty());

    // Nothing listening: a transport error, exit 3.
    let closed = format!("http://127.0.0.1:{}/api/test", common::closed_port());
    let mut cmd = dpopkit();
    cmd.args(["get", &closed, "--timeout-ms", "3000"]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // An encrypted key without its password.
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api]);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8_enc.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("ec_pkcs8_enc.pem"), "{}", show(&out));
}

#[test]
fn keygen_then_jwk_and_jkt_of_the_file() {
    let dir = scratch("keys");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("dpop.pem");

    let out = dpopkit().args(["keygen", "--out"]).arg(&pem).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let jkt = text(&out.stdout).trim().to_string();
    assert_eq!(jkt.len(), 43, "a base64url SHA-256: {jkt}");
    let data = std::fs::read_to_string(&pem).unwrap();
    assert!(data.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM: {data}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is private");
    }

    let out = dpopkit().args(["jkt", "--key"]).arg(&pem).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(text(&out.stdout).trim(), jkt);

    let key = dpopkit::core::EcKey::load_file(&pem, None).unwrap();
    assert_eq!(key.jkt(), jkt);
    let out = dpopkit().args(["jwk", "--key"]).arg(&pem).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let jwk = text(&out.stdout).trim().to_string();
    assert_eq!(jwk, key.public_jwk());
    assert!(!jwk.contains("\"d\""), "the public JWK only: {jwk}");

    // Never overwrite an existing key.
    let out = dpopkit().args(["keygen", "--out"]).arg(&pem).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("exists"), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(&pem).unwrap(), data, "the existing key is unchanged");

    // --jwk writes a private JWK that loads back to the same thumbprint.
    let jwk_file = dir.join("dpop.jwk");
    let out = dpopkit().args(["keygen", "--jwk", "--out"]).arg(&jwk_file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let jwk_jkt = text(&out.stdout).trim().to_string();
    assert!(std::fs::read_to_string(&jwk_file).unwrap().contains("\"d\""));
    let out = dpopkit().args(["jkt", "--key"]).arg(&jwk_file).output().unwrap();
    assert_eq!(text(&out.stdout).trim(), jwk_jkt);
    assert_ne!(jwk_jkt, jkt, "a new key each time");

    // To stdout: the key on stdout, the jkt on stderr.
    let out = dpopkit().arg("keygen").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(text(&out.stderr).starts_with("jkt: "));

    // jwk/jkt of the fixture agree with the thumbprint jose computed.
    let out = dpopkit().args(["jkt", "--key"]).arg(fixture("ec_pkcs8_enc.pem")).args(["--key-password", "test-password"]).output().unwrap();
    assert_eq!(text(&out.stdout).trim(), expected_jkt(), "{}", show(&out));
    let out = dpopkit().args(["jkt", "--key"]).arg(fixture("rsa1024.pem")).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("1024 bits") && text(&out.stderr).contains("2048"), "{}", show(&out));
    // An RSA key of 2048 bits: its thumbprint is the one node's crypto computed (RFC 7638).
    let rsa_jkt = std::fs::read_to_string(fixture("rsa.jkt")).unwrap();
    for file in ["rsa.pem", "rsa_pkcs1.pem", "rsa.jwk"] {
        let out = dpopkit().args(["jkt", "--key"]).arg(fixture(file)).output().unwrap();
        assert_eq!(text(&out.stdout).trim(), rsa_jkt.trim(), "{file}: {}", show(&out));
    }
    // keygen --alg PS256 [--bits]: an RSA key file whose jkt is printed.
    for (args, bits) in [(&["--alg", "PS256"][..], "2048"), (&["--alg", "RS256", "--bits", "3072"][..], "3072")] {
        let path = dir.join(format!("rsa-{bits}.pem"));
        let out = dpopkit().arg("keygen").args(args).arg("--out").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        let listed = std::process::Command::new("openssl").args(["pkey", "-noout", "-text", "-in"]).arg(&path).output().unwrap();
        assert!(text(&listed.stdout).contains(&format!("Private-Key: ({bits} bit")), "{bits}: openssl reads it");
        let jkt = dpopkit().args(["jkt", "--key"]).arg(&path).output().unwrap();
        assert_eq!(text(&jkt.stdout), text(&out.stdout), "{bits}");
    }
    let out = dpopkit().args(["keygen", "--alg", "PS256", "--bits", "1024"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains("2048 to 4096"), "{}", show(&out));

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2() {
    let key = fixture("ec_pkcs8.pem");
    let key = key.to_str().unwrap();
    let base = ["--key", key, "--client-id", "c", "--token-endpoint", "http://127.0.0.1:1/token"];
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["get"],
        vec!["get", "http://a/", "http://b/"],
        vec!["get", "http://a/", "--bogus"],
        vec!["get", "http://a/", "--key"],
        vec!["get", "http://a/", "--client-id", "c", "--token-endpoint", "http://127.0.0.1:1/t", "--client-secret", "s"],
        [&["get", "http://a/"][..], &base].concat(), // no secret anywhere
        [&["get", "http://a/", "--client-secret", "s", "--timeout-ms", "soon"][..], &base].concat(),
        [&["get", "http://a/", "--client-secret", "s", "--timeout-ms", "0"][..], &base].concat(),
        [&["get", "http://a/", "--client-secret", "s", "--auth-method", "private_key_jwt"][..], &base].concat(),
        [&["get", "http://a/", "--client-secret", "s", "--data", "x"][..], &base].concat(),
        [&["get", "http://a/", "--client-secret", "s", "--scope", "a", "--scope", "b"][..], &base].concat(),
        vec!["request", "POST"],
        vec!["keygen", "extra"],
        vec!["keygen", "--jwk=yes"],
        vec!["jwk"],
        vec!["jkt", "--key"],
    ];
    for args in cases {
        let out = dpopkit().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", show(&out));
        let stderr = text(&out.stderr);
        assert!(!stderr.is_empty() && !stderr.contains("panicked"), "{args:?}\n{stderr}");
        assert!(out.stdout.is_empty(), "{args:?}\n{}", show(&out));
        assert!(!stderr.contains("--client-secret s ") && !stderr.contains("\"s\""), "{stderr}");
    }
}

#[test]
fn help_and_version() {
    for flag in ["--help", "-h"] {
        let out = dpopkit().arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        for word in ["get", "request", "keygen", "jwk", "jkt", "DPOPKIT_CLIENT_SECRET", "--token-endpoint", "ps"] {
            assert!(help.contains(word), "help mentions {word}:\n{help}");
        }
    }
    let out = dpopkit().args(["get", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = dpopkit().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout).trim(), format!("dpopkit {}", env!("CARGO_PKG_VERSION")));
}

/// A hostile server echoes the access token, the proof and the secret back, with terminal
/// escape sequences and other control characters (issue 10, item 3): stderr shows neither
/// the credentials nor a raw control character; stdout on a terminal neither.
#[test]
fn hostile_server_echoes_and_terminal_escapes_are_neutralised() {
    use crate::common::fault::{Action, FaultServer};
    const TOKEN: &str = "cli-Acc3ss-Token-7e6d5c4b";
    const SECRET: &str = "cli-S3cret-Value-0a9b8c";
    const NASTY: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\rfake\u{8}\u{9b}31m\u{202e}evil";
    let srv = FaultServer::start(|r| {
        let auth = r.header("authorization").unwrap_or("").to_string();
        let proof = r.header("dpop").unwrap_or("").to_string();
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let echo = format!("{NASTY} you sent: {auth} | {proof} | {body}\n\ttabbed line\n");
        let headers = vec![("X-Echo".to_string(), format!("{auth} {proof}"))];
        match r.path.as_str() {
            "/token" => {
                let tok = serde_json::json!({"access_token": TOKEN, "token_type": "DPoP", "expires_in": 300});
                Action::Respond(200, vec![("Content-Type".into(), "application/json".into())], tok.to_string().into_bytes())
            }
            "/bad-token" => {
                let desc = format!("{NASTY} secret {SECRET} in {body}");
                let err = serde_json::json!({"error": "invalid_client", "error_description": desc});
                Action::Respond(401, headers, err.to_string().into_bytes())
            }
            "/ok" => Action::Respond(200, headers, echo.into_bytes()),
            _ => {
                let err = serde_json::json!({"error": "server_error", "error_description": format!("{NASTY} {auth}")});
                Action::Respond(500, headers, format!("{err}\n{echo}").into_bytes())
            }
        }
    });
    let run = |token_path: &str, api_path: &str| {
        let mut cmd = dpopkit();
        cmd.args(["get", &srv.url(api_path), "--key"]).arg(fixture("ec_pkcs8.pem")).args([
            "--client-id",
            "m2m.dpop",
            "--token-endpoint",
            &srv.url(token_path),
        ]);
        cmd.env("DPOPKIT_CLIENT_SECRET", SECRET).output().unwrap()
    };
    let clean = |what: &str, out: &[u8], full: &Output| {
        let t = text(out);
        for secret in [TOKEN, SECRET] {
            assert!(!t.contains(secret), "{what} shows a credential:\n{}", show(full));
        }
        assert!(!common::contains_jwt(&t), "{what} shows a proof:\n{}", show(full));
        let bad: Vec<char> = t.chars().filter(|c| (c.is_control() && *c != '\n' && *c != '\t') || *c == '\u{202e}').collect();
        assert!(bad.is_empty(), "{what} passes control characters {bad:?} to the terminal:\n{}", show(full));
    };
    // The RS answers 500: the error and the body go to stderr.
    let out = run("/token", "/api");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stderr).contains("server_error") && text(&out.stderr).contains("tabbed line"), "{}", show(&out));
    assert!(text(&out.stderr).contains("\ttabbed") && text(&out.stderr).contains("\\x1b[2J"), "tabs stay, ESC is shown: {}", show(&out));
    clean("stderr (RS 500)", &out.stderr, &out);
    // The token endpoint refuses and echoes the secret.
    let out = run("/bad-token", "/api");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("invalid_client"), "{}", show(&out));
    clean("stderr (token endpoint 401)", &out.stderr, &out);
    // 200: the body goes to stdout; the credentials are masked even in a pipe.
    let out = run("/token", "/ok");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("you sent: DPoP ****"), "{}", show(&out));
    assert!(!stdout.contains(TOKEN) && !common::contains_jwt(&stdout), "{}", show(&out));
    assert!(stdout.contains('\u{1b}'), "a pipe gets the body's bytes as they are (only credentials masked)");

    // On a terminal (a pty from script(1)), stdout is neutralised too.
    // script(1) is in Debian's essential bsdutils: missing, it is a broken machine, not a skip.
    assert!(
        std::process::Command::new("script").arg("--version").output().is_ok(),
        "script(1) (util-linux / bsdutils) is needed for the terminal case"
    );
    let cmdline = format!(
        "DPOPKIT_CLIENT_SECRET={SECRET} {} get {} --key {} --client-id m2m.dpop --token-endpoint {}",
        env!("CARGO_BIN_EXE_dpopkit"),
        srv.url("/ok"),
        fixture("ec_pkcs8.pem").display(),
        srv.url("/token")
    );
    let out = std::process::Command::new("script").args(["-qec", &cmdline, "/dev/null"]).output().unwrap();
    let tty = text(&out.stdout).replace("\r\n", "\n");
    assert!(tty.contains("you sent: DPoP ****") && tty.contains("\\x1b[2J"), "shown as a visible escape: {}", show(&out));
    clean("stdout on a terminal", tty.as_bytes(), &out);
}

/// Issue 12, item 6: a token endpoint that refuses the proof with `invalid_dpop_proof`
/// (here: the real AS accepting ES256 proofs only, the key is ES384, the token endpoint
/// given directly so no discovery checks the algorithm first) is the DPoP proof error, and
/// its text says the server may accept ES256 only and how to make such a key.
#[test]
fn invalid_dpop_proof_from_the_token_endpoint_names_es256() {
    use dpopkit::core::{EcKey, ErrorKind, HttpClient};
    use std::sync::Arc;
    let peers = Peers::start(&["--as-nonce", "--dpop-algs", "ES256"]);
    let http = HttpClient::new();
    http.set_dpop_key(Arc::new(EcKey::load_file(&fixture("p384_pkcs8.pem"), None).unwrap()));
    http.set_auth_token(&peers.auth_token()).unwrap();
    let e = http.request(Some("GET"), &peers.api, None, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DpopProof, "{}", e.message);
    for says in ["invalid_dpop_proof", "ES384", "ES256 only", "keygen --alg ES256"] {
        assert!(e.message.contains(says), "the text says {says:?}: {}", e.message);
    }
    // An ES256 key gets its token from the same server.
    http.set_dpop_key(Arc::new(EcKey::load_file(&fixture("ec_pkcs8.pem"), None).unwrap()));
    http.request(Some("GET"), &peers.api, None, None).unwrap();

    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api]);
    client_args(&mut cmd, &peers, &fixture("p384_pkcs8.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("ES256 only") && text(&out.stderr).contains("keygen --alg ES256"), "{}", show(&out));
}

// ---- issue 12, item 5 ----

/// `get`/`request` with the sample client, secret from the environment.
fn run_client(args: &[&str], peers: &Peers) -> Output {
    let mut cmd = dpopkit();
    cmd.args(args);
    client_args(&mut cmd, peers, &fixture("ec_pkcs8.pem"));
    cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap()
}

#[test]
fn keygen_alg_es384_and_eddsa() {
    let dir = scratch("keygen-alg");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (alg, crv) in [("ES256", "P-256"), ("ES384", "P-384"), ("EdDSA", "Ed25519")] {
        for jwk in [false, true] {
            let file = dir.join(format!("{alg}-{jwk}"));
            let mut cmd = dpopkit();
            cmd.args(["keygen", "--alg", alg, "--out"]).arg(&file);
            if jwk {
                cmd.arg("--jwk");
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{alg}: {}", show(&out));
            let key = dpopkit::core::EcKey::load_file(&file, None).unwrap();
            assert_eq!(key.alg(), alg);
            assert_eq!(text(&out.stdout).trim(), key.jkt());
            let out = dpopkit().args(["jwk", "--key"]).arg(&file).output().unwrap();
            assert!(text(&out.stdout).contains(&format!("\"crv\":\"{crv}\"")), "{alg}: {}", show(&out));
        }
    }
    // RS256 / PS256 keys: see keygen_then_jwk_and_jkt_of_the_file. An unknown algorithm:
    let out = dpopkit().args(["keygen", "--alg", "HS256"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    for alg in ["ES256", "EdDSA", "RS256", "PS256"] {
        assert!(text(&out.stderr).contains(alg), "{alg}: {}", show(&out));
    }
    assert!(out.stdout.is_empty(), "no key printed on a refused --alg");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_lists_the_key_types_and_options_that_work() {
    let help = text(&dpopkit().arg("--help").output().unwrap().stdout);
    for says in [
        "EC P-256 (ES256)",
        "EC P-384",
        "Ed25519 (EdDSA / Ed25519)",
        "RSA of 2048 to 4096",
        "PKCS#1 for RSA",
        "JWK",
        "keygen [--out FILE] [--jwk] [--alg ES256|ES384|EdDSA|RS256|PS256] [--bits N]",
        "keygen --pkcs11 URI [--key-password PIN] [--alg ES256|ES384|RS256|PS256]",
        "-H, --header",
        "-i, --include",
        "-o, --output FILE",
        "-X, --request METHOD",
        "@FILE",
        "--issuer URL",
        "private_key_jwt",
        "--assertion-key FILE",
        "--ca-file FILE",
        "--proxy URL",
        "--allow-insecure-http",
    ] {
        assert!(help.contains(says), "--help says {says:?}:\n{help}");
    }
    assert!(!help.contains("EC P-256 as PEM"), "the old --key text that named P-256 only:\n{help}");
}

#[test]
fn new_options_refuse_bad_command_lines_with_exit_2() {
    let key = fixture("ec_pkcs8.pem");
    let key = key.to_str().unwrap();
    let base = ["--key", key, "--client-id", "c", "--token-endpoint", "http://127.0.0.1:1/token", "--client-secret", "s"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["get", "http://a/", "-H", "X-Api-Key=hunter2-value"], "Name: value"),
        (vec!["get", "http://a/", "-H", "Authorization: DPoP abc"], "access token"),
        (vec!["get", "http://a/", "-H", "DPoP: x"], "proof"),
        (vec!["get", "http://a/", "-H", "Host: evil"], "URL"),
        (vec!["get", "http://a/", "-H", "X-Bad Name: v"], "Name: value"),
        (vec!["get", "http://a/", "-H", "X-Ok: a\u{1}b"], "X-Ok"),
        (vec!["get", "http://a/", "-X", "POST"], "request"),
        (vec!["get", "http://a/", "-H", "Content-Type: text/plain"], "body"),
        (vec!["request", "PUT", "http://a/", "-X", "POST"], "two methods"),
        (vec!["request", "POST", "http://a/", "--data", "x", "--content-type", "a/b", "-H", "content-type: c/d"], "twice"),
        (vec!["get", "http://a/", "--assertion-key", key], "private_key_jwt"),
        (vec!["get", "http://a/", "--auth-method", "private_key_jwt"], "--client-secret"),
        (vec!["get", "http://a/", "--auth-method", "tls_client_auth"], "private_key_jwt"),
        (vec!["get", "http://a/", "--proxy", "not a url"], "proxy"),
        (vec!["get", "http://a/", "--allow-insecure-http=yes"], "takes no value"),
        (vec!["keygen", "--pkcs11", "pkcs11:token=t;object=o", "--alg", "EdDSA"], "ES256, ES384, RS256 or PS256"),
        (vec!["keygen", "--alg", "ES256", "--bits", "2048"], "--bits goes with --alg RS256 or PS256"),
        (vec!["keygen", "--alg", "PS256", "--bits", "99999"], "2048 to 4096"),
    ];
    for (args, says) in cases {
        let full = if args[0] == "keygen" { args.clone() } else { [&args[..], &base].concat() };
        let out = dpopkit().args(&full).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{full:?}\n{}", show(&out));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{full:?}: stderr names {says:?}:\n{stderr}");
        assert!(!stderr.contains("hunter2") && !stderr.contains("DPoP abc"), "a header value is shown: {stderr}");
        assert!(out.stdout.is_empty(), "{full:?}\n{}", show(&out));
    }
    let out = dpopkit().args([&["get", "http://a/"][..], &base, &["-o"]].concat()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains("-o needs a value"), "{}", show(&out));
    // Without --token-endpoint, --issuer is named as the alternative.
    let out = dpopkit().args(["get", "http://a/", "--key", key, "--client-id", "c", "--client-secret", "s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains("--issuer"), "{}", show(&out));
}

#[test]
fn issuer_discovery_and_private_key_jwt() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    // --issuer: the token endpoint from the metadata.
    let out = dpopkit()
        .args(["get", &peers.api, "--issuer", &peers.issuer, "--client-id", "m2m.dpop", "--scope", "api", "--key"])
        .arg(fixture("ec_pkcs8.pem"))
        .env("DPOPKIT_CLIENT_SECRET", "secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains(r#"{"type":"client_id","value":"m2m.dpop"}"#), "{}", show(&out));

    // private_key_jwt: no secret (even one in the environment is not sent), the assertion
    // signed by --assertion-key, the proofs by the DPoP key.
    let out = dpopkit()
        .args(["get", &peers.api, "--token-endpoint", &peers.token_endpoint, "--client-id", "m2m.pkjwt", "--scope", "api"])
        .args(["--auth-method", "private_key_jwt", "--key"])
        .arg(fixture("ec_pkcs8.pem"))
        .arg("--assertion-key")
        .arg(fixture("client_assertion_p256.pem"))
        .env("DPOPKIT_CLIENT_SECRET", "not-sent-with-pkjwt")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let body = text(&out.stdout);
    assert!(body.contains(r#"{"type":"client_id","value":"m2m.pkjwt"}"#) && body.contains(&expected_jkt()), "{body}");

    // The DPoP key is not the registered assertion key: the AS refuses the client.
    let out = dpopkit()
        .args(["get", &peers.api, "--token-endpoint", &peers.token_endpoint, "--client-id", "m2m.pkjwt"])
        .args(["--auth-method", "private_key_jwt", "--key"])
        .arg(fixture("ec_pkcs8.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("invalid_client"), "{}", show(&out));
    assert!(!common::contains_jwt(&text(&out.stderr)), "an assertion on stderr: {}", show(&out));
    assert_eq!(peers.tokens_issued(), 2);
}

#[test]
fn ca_file_for_https_peers() {
    let pki = support::TestPki::new();
    let peers = pki.peers(&["--as-nonce", "--rs-nonce"]);
    let mut cmd = dpopkit();
    cmd.args(["get", &peers.api, "--proxy", ""]).arg("--ca-file").arg(&pki.ca);
    client_args(&mut cmd, &peers, &fixture("ec_pkcs8.pem"));
    let out = cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("m2m.dpop"), "{}", show(&out));
    // Without it the test CA is not trusted: a TLS error, exit 3.
    let out = run_client(&["get", &peers.api, "--proxy", ""], &peers);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).to_lowercase().contains("certificate"), "{}", show(&out));
    // A CA file that is not there.
    let out = run_client(&["get", &peers.api, "--ca-file", "/nonexistent/ca.pem"], &peers);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("--ca-file") && text(&out.stderr).contains("/nonexistent/ca.pem"), "{}", show(&out));
}

/// A CONNECT proxy on 127.0.0.1 that counts its tunnels (ureq tunnels http targets too).
/// Its threads end with the test process.
fn connect_proxy() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let tunnels = std::sync::Arc::new(AtomicUsize::new(0));
    let count = tunnels.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                let mut client = client;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = match head.split_whitespace().collect::<Vec<_>>()[..] {
                    ["CONNECT", t, ..] if t.starts_with("127.0.0.1:") || t.starts_with("0.0.0.0:") => t.to_string(),
                    _ => {
                        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
                        return;
                    }
                };
                let Ok(upstream) = TcpStream::connect(&target) else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (url, tunnels)
}

/// The peers addressed as another machine: `0.0.0.0` reaches their 127.0.0.1 sockets on
/// Linux but is no loopback literal, so it is proxied (loopback targets never are), and
/// plain http to it needs `--allow-insecure-http`.
fn run_client_far(args: &[&str], peers: &Peers) -> Output {
    let far = |u: &str| u.replacen("://127.0.0.1:", "://0.0.0.0:", 1);
    let mut cmd = dpopkit();
    cmd.args(args).arg("--key").arg(fixture("ec_pkcs8.pem"));
    cmd.args(["--client-id", "m2m.dpop", "--token-endpoint", &far(&peers.token_endpoint), "--scope", "api", "--allow-insecure-http"]);
    cmd.env("DPOPKIT_CLIENT_SECRET", "secret").output().unwrap()
}

#[test]
fn proxy_option_sends_every_request_through_the_proxy() {
    use std::sync::atomic::Ordering;
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let (proxy, tunnels) = connect_proxy();
    let api = peers.api.replacen("://127.0.0.1:", "://0.0.0.0:", 1);
    let out = run_client_far(&["get", &api, "--proxy", &proxy], &peers);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("m2m.dpop"), "{}", show(&out));
    let through = tunnels.load(Ordering::SeqCst);
    assert!(through >= 2, "token endpoint and API through the proxy: {through} tunnels");
    // Loopback targets never go through it (issue 18 item 3): straight to the peers.
    let out = run_client(&["get", &peers.api, "--proxy", &proxy], &peers);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(tunnels.load(Ordering::SeqCst), through, "a loopback target went through the proxy");
    // A proxy where nothing listens: the request fails (it does not go direct).
    let closed = format!("http://127.0.0.1:{}", common::closed_port());
    let out = run_client_far(&["get", &api, "--proxy", &closed, "--timeout-ms", "5000"], &peers);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(peers.tokens_issued(), 2, "the third run reached no server");
}

#[test]
fn allow_insecure_http_for_a_token_endpoint_on_another_machine() {
    use crate::common::fault::{FaultServer, json};
    let srv = FaultServer::start(|r| match r.path.as_str() {
        "/token" => json(200, r#"{"access_token":"cli-insecure-token","token_type":"DPoP","expires_in":300}"#),
        _ => json(200, r#"{"ok":true}"#),
    });
    // 2130706433 is 127.0.0.1 to the resolver, but not "this machine" to the URL rule.
    let te = format!("http://2130706433:{}/token", srv.port);
    let run = |extra: &[&str]| {
        let mut cmd = dpopkit();
        cmd.args(["get", &srv.url("/api"), "--client-id", "m2m.dpop", "--token-endpoint", &te, "--proxy", ""]).args(extra);
        cmd.arg("--key").arg(fixture("ec_pkcs8.pem")).env("DPOPKIT_CLIENT_SECRET", "cli-cleartext-secret").output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("--allow-insecure-http"), "the error names the option: {}", show(&out));
    assert!(srv.requests().is_empty(), "nothing sent without the option");
    let out = run(&["--allow-insecure-http"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("ok"), "{}", show(&out));
    assert!(srv.requests().iter().any(|r| r.method == "POST" && r.path == "/token"));
}

/// Issue 12, "done when" for the CLI: against the real peers with nonces required at both,
/// a custom Accept header (and a correlation id, and an API key that stays masked), a POST
/// of JSON with an Idempotency-Key read back with -i (201, Location, ETag), a binary
/// download of the bytes 0..255 to -o FILE, byte-exact, and a binary upload with --data @FILE.
#[test]
fn porting_flow_headers_post_bytes_location() {
    let peers = Peers::start(&["--as-nonce", "--rs-nonce"]);
    let rs = &peers.rs;
    let dir = scratch("porting");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("session.log");

    // Custom request headers, repeatable -H.
    let api_key = "cli-Api-K3y-9f8e7d";
    let echo = format!("{rs}/api/echo-headers");
    let out = run_client(
        &[
            "get",
            &echo,
            "-H",
            "Accept: application/json",
            "-H",
            "X-Correlation-Id:  corr-123 ",
            "--header=X-Api-Key: cli-Api-K3y-9f8e7d",
            "--session-log",
            log.to_str().unwrap(),
        ],
        &peers,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!(v["method"], "GET");
    assert_eq!(v["headers"]["accept"], "application/json", "{v}");
    assert_eq!(v["headers"]["x-correlation-id"], "corr-123", "the value trimmed as curl does: {v}");
    assert!(v["headers"]["x-api-key"].is_string(), "the API key was sent: {v}");
    assert!(!text(&out.stdout).contains(api_key), "an echoed API key is masked on stdout: {}", show(&out));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Accept: application/json") || logged.contains("accept: application/json"), "{logged}");
    assert!(!logged.contains(api_key), "the API key in the session log:\n{logged}");

    // POST JSON with an Idempotency-Key; -i shows the status line and the Location.
    let out = run_client(
        &[
            "request",
            &format!("{rs}/api/items"),
            "-X",
            "POST",
            "--data",
            r#"{"name":"x"}"#,
            "-H",
            "Content-Type: application/json",
            "-H",
            "Idempotency-Key: idem-42",
            "-i",
        ],
        &peers,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = text(&out.stdout);
    let (head, body) = stdout.split_once("\n\n").unwrap_or_else(|| panic!("headers, an empty line, the body: {stdout}"));
    assert_eq!(head.lines().next(), Some("HTTP/1.1 201 Created"), "{stdout}");
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    };
    assert_eq!(header("location").as_deref(), Some("/api/items/1"), "{stdout}");
    assert_eq!(header("etag").as_deref(), Some("\"item-1\""), "{stdout}");
    let item: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(item["idempotency_key"], "idem-42", "{item}");
    assert_eq!(item["content_type"], "application/json", "{item}");
    assert_eq!(item["received"], r#"{"name":"x"}"#, "{item}");

    // Binary download, byte for byte, to -o FILE; nothing on stdout.
    let file = dir.join("bytes.bin");
    let out = run_client(&["get", &format!("{rs}/api/bytes"), "-o", file.to_str().unwrap()], &peers);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
    assert_eq!(std::fs::read(&file).unwrap(), (0..=255u8).collect::<Vec<u8>>(), "bytes 0..255, byte-exact");

    // Binary upload from @FILE (the request method defaults to POST with --data), echoed
    // back and written with -o: every byte value survives both ways.
    let upload: Vec<u8> = (0..=255u8).rev().chain([0, 0xff, 0xc3]).collect();
    let up = dir.join("upload.bin");
    std::fs::write(&up, &upload).unwrap();
    let back = dir.join("echo.bin");
    let out = run_client(
        &[
            "request",
            &format!("{rs}/api/echo-bytes"),
            "--data",
            &format!("@{}", up.display()),
            "--content-type",
            "application/octet-stream",
            "-o",
            back.to_str().unwrap(),
        ],
        &peers,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(std::fs::read(&back).unwrap(), upload);

    // -i on a non-2xx: the status line and headers still on stdout, exit 1.
    let out = run_client(&["get", &format!("{rs}/missing"), "-i"], &peers);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(text(&out.stdout).starts_with("HTTP/1.1 404 Not Found\n"), "{}", show(&out));

    assert_eq!(peers.rs_stats()["ok"], 4, "{}", peers.rs_stats());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `cmd` (stdin empty) with its memory capped; panics when it is still running after
/// 10 s (it blocked).
fn guarded(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null());
    common::guard::output_within(cmd, std::time::Duration::from_secs(10)).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Every file the CLI reads — `--key`, `--assertion-key`, `--ca-file`, a `pin-source` PIN
/// file, `--data @FILE` — that is `/dev/zero` (read until memory ran out), a FIFO (blocked
/// the run forever), a directory or over its bound is refused at once, exit 3, with a
/// text; `--data @-` from an endless stdin is cut at the bound (issue 18, item 4).
#[test]
fn files_on_the_command_line_that_are_devices_fifos_directories_or_too_large_are_refused_at_once() {
    let dir = scratch("hostile-files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = fixture("ec_pkcs8.pem");
    let good = good.to_str().unwrap();
    let port = common::closed_port();
    let api = format!("http://127.0.0.1:{port}/api");
    let token = format!("http://127.0.0.1:{port}/token");
    let client = ["--client-id", "m2m.dpop", "--token-endpoint", token.as_str()];
    type Args = fn(&str, &str, &str) -> Vec<String>;
    let kinds: [(&str, u64, Args); 6] = [
        ("--key (jkt)", 1 << 20, |p, _, _| vec!["jkt".into(), "--key".into(), p.into()]),
        ("--key (get)", 1 << 20, |p, api, _| vec!["get".into(), api.into(), "--key".into(), p.into()]),
        ("--assertion-key", 1 << 20, |p, api, good| {
            ["get", api, "--key", good, "--auth-method", "private_key_jwt", "--assertion-key", p].map(String::from).to_vec()
        }),
        ("--ca-file", 16 << 20, |p, api, good| ["get", api, "--key", good, "--ca-file", p].map(String::from).to_vec()),
        ("pin-source", 4096, |p, _, _| {
            let uri = format!("pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source={p}");
            vec!["jkt".into(), "--key".into(), uri]
        }),
        ("--data @FILE", 64 << 20, |p, api, good| ["request", api, "--key", good, "--data", &format!("@{p}")].map(String::from).to_vec()),
    ];
    for (kind, max, args) in kinds {
        let sub = dir.join(kind.replace([' ', '(', ')', '@', '-'], ""));
        std::fs::create_dir_all(&sub).unwrap();
        for (path, expect) in common::guard::hostile_paths(&sub, max) {
            let mut cmd = dpopkit();
            let args = args(path.to_str().unwrap(), &api, good);
            cmd.args(&args).env("DPOPKIT_CLIENT_SECRET", "secret");
            if args[0] != "jkt" {
                cmd.args(client);
            }
            let out = guarded(&mut cmd);
            assert_eq!(out.status.code(), Some(3), "{kind} {}: {}", path.display(), show(&out));
            assert!(text(&out.stderr).contains(&expect), "{kind} {}: {}", path.display(), show(&out));
        }
    }
    // Standard input has no size to check first: it is read up to the bound, no further.
    let mut cmd = dpopkit();
    cmd.args(["request", &api, "--key", good, "--data", "@-"]).args(client).env("DPOPKIT_CLIENT_SECRET", "secret");
    let out = common::guard::output_within(cmd.stdin(std::fs::File::open("/dev/zero").unwrap()), std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("--data @- from /dev/zero: {e}"));
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains(&format!("larger than the {} bytes", 64 << 20)), "{}", show(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that issues a DPoP token and answers `/file` with a fixed body.
fn file_server() -> common::fault::FaultServer {
    use crate::common::fault::{Action, FaultServer, json};
    FaultServer::start(|r| match r.path.as_str() {
        "/token" => json(200, r#"{"access_token":"cli-o-token","token_type":"DPoP","expires_in":300}"#),
        _ => Action::Respond(200, vec![], b"the body\n".to_vec()),
    })
}

fn get_to(srv: &common::fault::FaultServer, out: &Path, timeout_ms: &str) -> Output {
    let mut cmd = dpopkit();
    cmd.args(["get", &srv.url("/file"), "--key"]).arg(fixture("ec_pkcs8.pem"));
    cmd.args(["--client-id", "m2m.dpop", "--token-endpoint", &srv.url("/token"), "--timeout-ms", timeout_ms, "-o"]).arg(out);
    guarded(cmd.env("DPOPKIT_CLIENT_SECRET", "secret"))
}

/// `-o FILE` writes a new file (mode 0600) renamed over FILE: a symbolic link planted at
/// FILE is replaced, never written through; an existing 0666 file becomes 0600; a FIFO,
/// a directory or a device at FILE is refused at once instead of blocking past
/// --timeout-ms (issue 18, item 14).
#[test]
fn output_file_is_replaced_by_a_private_file_never_through_a_link_never_blocking() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = scratch("output-file");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let srv = file_server();
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    let no_temp_left = || {
        let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.contains("tmp")), "a temporary file was left: {names:?}");
    };

    // A new file: the body, mode 0600 (whatever the umask).
    let new = dir.join("new.txt");
    let out = get_to(&srv, &new, "5000");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(std::fs::read(&new).unwrap(), b"the body\n");
    assert_eq!(mode(&new), 0o600, "a new -o file is private");

    // An existing file that others may read and write is replaced by a private one.
    let open = dir.join("open.txt");
    std::fs::write(&open, "old").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = get_to(&srv, &open, "5000");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(std::fs::read(&open).unwrap(), b"the body\n");
    assert_eq!(mode(&open), 0o600, "an existing 0666 -o file is replaced by a 0600 one");

    // A symbolic link planted at FILE: the link is replaced, its target is untouched.
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.join("link.txt");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = get_to(&srv, &link, "5000");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "written through the link planted at FILE");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_file(), "the link is replaced by the file");
    assert_eq!(std::fs::read(&link).unwrap(), b"the body\n");
    assert_eq!(mode(&link), 0o600);

    // A FIFO at FILE: refused at once (it blocked past --timeout-ms).
    let fifo = dir.join("fifo");
    common::guard::mkfifo(&fifo);
    let started = std::time::Instant::now();
    let out = get_to(&srv, &fifo, "2000");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).contains("is not a regular file (a FIFO)"), "{}", show(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is left alone");

    // A directory, and a device: refused with a text.
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for (path, what) in [(sub.as_path(), "a directory"), (Path::new("/dev/null"), "a character device")] {
        let out = get_to(&srv, path, "5000");
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        assert!(text(&out.stderr).contains(&format!("is not a regular file ({what})")), "{}", show(&out));
    }
    no_temp_left();
    let _ = std::fs::remove_dir_all(&dir);
}
