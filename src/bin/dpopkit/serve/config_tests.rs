//! Unit tests of the gateway's config file reader (serve/config.rs).

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "GW_KEY" => Some("0123456789abcdef0123".into()),
        "SECRET" => Some("secret".into()),
        "SHORT" => Some("short".into()),
        _ => None,
    }
}

const GOOD: &str = r#"
listen = "127.0.0.1:9443"
caller_secret_env = "GW_KEY"

[[route]]
prefix = "/orders/"
upstream = "https://api.example.com/v1/"
key = "/etc/dpopkit/key.pem"
methods = ["GET", "post"]
timeout_ms = 5000

[route.auth_token]
client_id = "c"
token_endpoint = "https://as.example.com/token"
scope = "api"
client_secret_env = "SECRET"
"#;

fn refusal(text: &str) -> ConfigError {
    match parse(text, Path::new("/etc/dpopkit"), &env) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn a_good_file_is_read() {
    let c = parse(GOOD, Path::new("/etc"), &env).map_err(|e| e.message).unwrap();
    assert_eq!(c.server.listen.port(), 9443);
    assert_eq!(c.routes.len(), 1);
    let r = &c.routes[0];
    assert_eq!(r.methods, ["GET", "POST"]);
    assert_eq!(r.timeout, Some(Duration::from_millis(5000)));
    assert_eq!(r.caller_secret.as_deref().map(String::as_str), Some("0123456789abcdef0123"));
    let v: serde_json::Value = serde_json::from_str(&r.auth_token).unwrap();
    assert_eq!(v["client_secret"], "secret");
    assert!(v.get("client_secret_env").is_none());
}

#[test]
fn refusals_name_the_line_and_the_fix() {
    let e = refusal(&GOOD.replace("timeout_ms = 5000", "timeout_ms = 5000\nfollow = true"));
    assert_eq!(e.line, 11);
    assert!(e.message.contains("unknown setting 'follow'") && e.message.contains("timeout_ms"), "{}", e.message);
    let e = refusal(&GOOD.replace("client_secret_env = \"SECRET\"", "client_secret = \"hunter2\""));
    assert_eq!(e.line, 16);
    assert!(e.message.contains("client_secret_env") && !e.message.contains("hunter2"), "{}", e.message);
    let e = refusal(&GOOD.replace("timeout_ms = 5000", "timeout_ms = \"5s\""));
    assert_eq!(e.line, 10);
    assert!(e.message.contains("whole number"), "{}", e.message);
    let e = refusal(&GOOD.replace("prefix = \"/orders/\"", "prefix = \"/orders\""));
    assert_eq!(e.line, 6);
    assert!(e.message.contains("ends with '/'"), "{}", e.message);
    let e = refusal(&GOOD.replace("v1/\"", "v1/?x=1\""));
    assert_eq!(e.line, 7);
    let e = refusal(&GOOD.replace("caller_secret_env = \"GW_KEY\"", "caller_secret_env = \"SHORT\""));
    assert!(e.message.contains("at least 16"), "{}", e.message);
    let e = refusal(&GOOD.replace("caller_secret_env = \"GW_KEY\"\n", ""));
    assert!(e.message.contains("caller_secret_env"), "{}", e.message);
    let e = refusal(&GOOD.replace("listen = \"127.0.0.1:9443\"", "listen = \"0.0.0.0:9443\"\nplain_http = true"));
    assert_eq!(e.line, 3);
    assert!(e.message.contains("loopback"), "{}", e.message);
    let e = refusal("listen = [\n");
    assert!(e.message.contains("not valid TOML"), "{}", e.message);
    let e = refusal(&GOOD.replace("methods = [\"GET\", \"post\"]", "methods = [\"CONNECT\"]"));
    assert!(e.message.contains("CONNECT"), "{}", e.message);
    let e = refusal(&GOOD.replace("timeout_ms = 5000", "timeout_ms = 5000\ncaller_auth = \"client_cert\""));
    assert_eq!(e.line, 11);
    assert!(e.message.contains("client_ca_file"), "{}", e.message);
    let c = parse(
        &format!("client_ca_file = \"ca.pem\"\n{}", GOOD.replace("timeout_ms = 5000", "caller_auth = \"client_cert\"")),
        Path::new("/etc"),
        &env,
    )
    .map_err(|e| e.message)
    .unwrap();
    assert!(c.routes[0].caller_secret.is_none());
    assert_eq!(c.server.client_ca.as_deref(), Some(Path::new("/etc/ca.pem")));
    let e = refusal(&format!("{GOOD}\n[[route]]\nprefix = \"/orders/\"\n"));
    assert!(e.message.contains("upstream") || e.message.contains("already"), "{}", e.message);
}

#[test]
fn the_caller_credential_can_come_from_a_file() {
    let dir = std::env::temp_dir().join(format!("dpopkit-gw-callerfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("caller.key"), "from-a-file-0123456789\n").unwrap();
    std::fs::write(dir.join("short.key"), "short\n").unwrap();
    #[cfg(unix)]
    for f in ["caller.key", "short.key"] {
        // A secret file others can read is refused (tests/shipping/gateway/hostile.rs).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let with = |line: &str| GOOD.replace("timeout_ms = 5000", &format!("timeout_ms = 5000\n{line}"));
    let c = parse(&with("caller_secret_file = \"caller.key\""), &dir, &env).map_err(|e| e.message).unwrap();
    assert_eq!(
        c.routes[0].caller_secret.as_deref().map(String::as_str),
        Some("from-a-file-0123456789"),
        "read beside the config, newline cut"
    );
    let e = parse(&with("caller_secret_file = \"short.key\""), &dir, &env).err().expect("a short secret is refused");
    assert!(e.message.contains("at least 16"), "{}", e.message);
    let e = parse(&with("caller_secret_file = \"caller.key\"\ncaller_secret_env = \"GW_KEY\""), &dir, &env).err().expect("both refused");
    assert!(e.message.contains("give one of them"), "{}", e.message);
    let e = parse(&with("caller_secret_file = \"missing.key\""), &dir, &env).err().expect("a missing file is refused");
    assert!(e.message.contains("missing.key"), "{}", e.message);
    let _ = std::fs::remove_dir_all(&dir);
}
